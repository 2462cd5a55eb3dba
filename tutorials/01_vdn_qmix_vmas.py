"""Tutorial 01 — VDN and QMIX on a VMAS scenario, composed by hand from TorchRL parts.

    python tutorials/01_vdn_qmix_vmas.py --quick            # ~30 s: 8k frames per algorithm
    python tutorials/01_vdn_qmix_vmas.py --out runs/t01     # full: 60k frames each + learning-curve PNG

torchrl_vd gives you three pieces and lets TorchRL do the rest:

* a per-agent utility network Q(h_i, a_i; θ_i)            -> ``vd.MLPAgent`` (or ``GRUAgent``)
* a mixer that combines the chosen utilities into Q_tot   -> ``vd.VDNMixer`` / ``vd.QMixer``
* the TD loss on Q_tot, as a torchrl ``LossModule``       -> ``vd.MixingQLoss``

Everything else in this file is plain TorchRL: a ``Collector`` drives ε-greedy decentralized policies in
a batch of VMAS worlds, a ``TensorDictReplayBuffer`` over a ``LazyTensorStorage`` stores the
transitions, and ``SoftUpdate`` moves the target networks θ̄ toward θ. Nothing here calls
``vd.train``: this is the loop it runs, written out, so that you can change any line of it.

The VDN / QMIX loss (Sunehag et al. 2018; Rashid et al. 2018), which ``MixingQLoss`` computes at every
gradient step below:

    L(θ) = 1/|B| Σ_B ( r + γ max_a Q(h', z', a; θ̄) − Q(h, z, a; θ) )²
    VDN:   Q(h, z, a) = Σ_i Q(h_i, a_i; θ_i)
    QMIX:  Q(h, z, a) = f_mix(Q(h_1, a_1), ..., Q(h_n, a_n); θ_mix(z)),  ∂Q/∂Q_i ≥ 0

The scenario is VMAS ``navigation``: each agent must reach its own goal without colliding, and they
share one team reward (shaped by the distance to the goals).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

torch.set_num_threads(1)  # small nets on a (possibly shared) 2-core CPU: one thread is fastest

import torchrl_vd as vd  # noqa: E402  (after set_num_threads on purpose)
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer  # noqa: E402
from torchrl.envs import RewardSum, TransformedEnv  # noqa: E402
from torchrl.objectives import SoftUpdate  # noqa: E402
from torchrl_vd.train import evaluate  # noqa: E402  (greedy rollouts: mean episode return)
from torchrl_vd.train.plot import save_curves  # noqa: E402  (the learning-curve PNG)


# ------------------------------------------------------------------------------------------ config
@dataclass
class Config:
    env: str = "vmas/navigation"
    """Any ``vmas/<scenario>`` with discrete actions (``torchrl-vd list``)."""
    env_kwargs: dict = field(default_factory=lambda: {"n_agents": 2, "max_steps": 50})
    """Scenario arguments and the episode horizon (``max_steps``: truncation, not termination)."""
    algos: tuple[str, ...] = ("vdn", "qmix")
    """Which mixers to train, one after the other, with everything else identical."""
    num_envs: int = 40
    """VMAS worlds simulated in one batch."""
    frames: int = 60_000
    """Environment steps per algorithm (one frame = one step of one world)."""
    frames_per_batch: int = 2_000
    """Frames per collector batch (40 worlds x 50 steps: one episode each)."""
    updates_per_batch: int = 40
    """Gradient steps after every collected batch."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay capacity in transitions."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.9
    """Discount γ of the TD target."""
    tau: float = 0.005
    """Polyak factor of SoftUpdate: θ̄ ← (1 − τ) θ̄ + τ θ after every gradient step."""
    eps_start: float = 1.0
    """Initial ε of the ε-greedy collection policy."""
    eps_end: float = 0.05
    """Final ε."""
    eps_frames: int = 20_000
    """Frames over which ε anneals linearly."""
    hidden: tuple[int, ...] = (64, 64)
    """Agent MLP hidden sizes (one network shared by all agents)."""
    mixing_embed_dim: int = 32
    """QMIX mixing-layer width (pymarl default)."""
    eval_envs: int = 32
    """Worlds (= episodes) in each greedy evaluation."""
    seed: int = 0
    """Seed for torch and the environments."""
    out: str | None = None
    """Where the learning-curve PNG goes (``--out DIR``); default: a fresh temporary directory."""


# --quick runs the same code on a budget too small to learn reliably (the greedy return after 8k frames
# varies from seed to seed); it shows the pipeline and the IGM check. The full run learns (README).
QUICK = dict(frames=8_000, eps_frames=3_000, updates_per_batch=50)


def parse_args() -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8k frames per algorithm (about 30 s)")
    p.add_argument("--out", default=None, help="directory for the learning-curve PNG (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = replace(Config(), **QUICK) if args.quick else Config()
    return replace(cfg, out=args.out, seed=args.seed)


# ------------------------------------------------------------------------------------------ one run
def run(algo: str, cfg: Config) -> dict:
    torch.manual_seed(cfg.seed)

    # ---- environment: a batch of VMAS worlds in torchrl_vd's multi-agent layout
    # ("agents", "observation") [N, n, F], ("agents", "action") [N, n], team "reward" [N, 1], "state" [N, S].
    # RewardSum adds the running episode return, for logging only.
    env = TransformedEnv(
        vd.make_env(cfg.env, num_envs=cfg.num_envs, seed=cfg.seed, **cfg.env_kwargs),
        RewardSum(in_keys=["reward"], out_keys=["episode_reward"]),
    )
    info = vd.describe_env(env)  # n_agents, n_actions, obs/state shapes, read off the specs

    # ---- modules: per-agent utilities Q(h_i, ·; θ_i) and the mixer
    agent = vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1], hidden=cfg.hidden)
    if algo == "vdn":
        mixer = vd.VDNMixer(info.n_agents)  # Q = Σ_i Q_i
    else:
        mixer = vd.QMixer(info.n_agents, info.state_shape, mixing_embed_dim=cfg.mixing_embed_dim)  # Q = f_mix(Q_i; z)

    # ---- loss: VDN's / QMIX's TD loss on the mixed value (a torchrl LossModule with target copies θ̄)
    loss = vd.MixingQLoss(agent, mixer, double_q=True)
    loss.make_value_estimator(gamma=cfg.gamma)  # TD(0): y = r + γ (1 − terminated) max_a Q(h', z', a; θ̄)
    updater = SoftUpdate(loss, tau=cfg.tau)  # finds the target parameters by name
    optim = torch.optim.Adam(loss.parameters(), lr=cfg.lr)

    # ---- policies: decentralized execution. Each agent takes argmax_{a_i} Q(h_i, a_i) on its own
    # observation; by IGM this is the greedy joint action of Q_tot (checked with check_igm at the end).
    greedy, explore = vd.make_agent_policies(
        agent, action_mask=info.has_action_mask, eps_init=cfg.eps_start, eps_end=cfg.eps_end,
        annealing_num_steps=cfg.eps_frames,
    )
    egreedy = explore[-1]  # torchrl's EGreedyModule

    # ---- data: torchrl collector + replay buffer
    collector = Collector(env, explore, frames_per_batch=cfg.frames_per_batch, total_frames=cfg.frames,
                          auto_register_policy_transforms=False)  # a feed-forward agent needs no env transforms
    collector.set_seed(cfg.seed)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(cfg.buffer_size), batch_size=cfg.batch_size)
    eval_env = vd.make_env(cfg.env, num_envs=cfg.eval_envs, seed=cfg.seed + 1000, **cfg.env_kwargs)

    curve = []  # (frames, mean training-episode return)
    frames, t0 = 0, time.perf_counter()
    for batch in collector:  # [num_envs, T] of transitions (h, z, a, r, h', z') — "next" holds h', z', r
        frames += batch.numel()
        buffer.extend(batch.reshape(-1))  # store single transitions [num_envs * T]

        for _ in range(cfg.updates_per_batch):
            # ============================ the algorithm: one TD step on Q_tot ============================
            losses = loss(buffer.sample())  # TensorDict of scalars: "loss" (the TD loss)
            optim.zero_grad()
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 10.0)  # pymarl's clip
            optim.step()
            updater.step()  # θ̄ ← (1 − τ) θ̄ + τ θ
            # ==============================================================================================

        egreedy.step(batch.numel())  # anneal ε by the frames just collected
        done = batch["next", "done"].squeeze(-1)  # [num_envs, T]
        ep_return = batch["next", "episode_reward"][done].mean().item()
        curve.append((frames, ep_return))
        print(f"  {algo:<5} frames {frames:6d}  ε {egreedy.eps.item():.2f}  train return {ep_return:7.3f}  "
              f"loss {losses['loss'].item():.4f}")
    collector.shutdown()

    # ---- result: greedy (decentralized) evaluation, and the IGM check on states the agents visited
    final = evaluate(greedy, eval_env, max_steps=cfg.env_kwargs.get("max_steps"), seed=cfg.seed + 1000)
    states = buffer.sample()  # check_igm enumerates all joint actions of every sampled state
    igm = vd.check_igm(loss, states)
    return {"curve": curve, "return": final["eval_return"], "igm": igm.fraction, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    cfg = parse_args()
    print(f"{cfg.env} {cfg.env_kwargs}: {cfg.frames} frames per algorithm")
    eval_env = vd.make_env(cfg.env, num_envs=cfg.eval_envs, seed=cfg.seed + 1000, **cfg.env_kwargs)
    # A baseline: uniformly random joint actions (policy=None in a torchrl rollout).
    torch.manual_seed(cfg.seed)
    horizon = cfg.env_kwargs.get("max_steps")
    random_return = evaluate(None, eval_env, max_steps=horizon, seed=cfg.seed + 1000)["eval_return"]
    print(f"random policy: return {random_return:.3f}")

    results = {}
    for algo in cfg.algos:
        results[algo] = run(algo, cfg)
        r = results[algo]
        print(f"{algo}: greedy return {r['return']:.3f}, IGM holds on {100 * r['igm']:.0f}% of sampled states, "
              f"{r['seconds']:.0f} s")

    out_dir = Path(cfg.out) if cfg.out else Path(tempfile.mkdtemp(prefix="tutorial01-"))
    png = save_curves({f"{algo} (greedy eval {r['return']:.2f})": r["curve"] for algo, r in results.items()},
                      out_dir / "vdn_qmix_vmas.png", xlabel="frames", ylabel="training episode return",
                      hlines={f"random policy ({random_return:.2f})": random_return})
    print(f"learning curves: {png}")
    returns = ", ".join(f"{a} {r['return']:.3f}" for a, r in results.items())
    igm = ", ".join(f"{a} {100 * r['igm']:.0f}%" for a, r in results.items())
    print(f"RESULT: {cfg.env} greedy return after {cfg.frames} frames: {returns} (random policy "
          f"{random_return:.3f}); IGM holds: {igm}")


if __name__ == "__main__":
    main()
