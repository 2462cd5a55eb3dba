"""Tutorial 06 — recurrent agents: utilities of the observation *history* h_i, not of the last observation.

    python tutorials/06_recurrent_agents.py --quick     # ~30 s
    python tutorials/06_recurrent_agents.py             # 3 seeds, delay 4

The value-decomposition papers write every utility as Q(h_i, a_i; θ_i), with h_i agent i's observation
history. A feed-forward agent approximates h_i by the current observation o_i; that is exact only when
o_i tells the agent all it needs. ``matrix/memory`` is built to break it:

    t = 0:          every agent sees a cue c ∈ {0, 1}
    t = 1 .. d-1:   the cue is gone (observation [1, 0, 0, onehot(t)])
    t = d:          reward 1 if *every* agent plays a = c, else 0; the episode ends

At t = d an MLP agent sees the same observation for both cues, so the best it can do is guess: 0.5.
A GRU agent carries a hidden state h_i^t = GRU(o_i^t, h_i^{t-1}) from the cue to the decision: 1.0.

What changes for recurrent agents (the library does it; this tutorial shows where):

* the policy reads and writes ``("agents", "rnn_hidden")``; an ``InitTracker`` and a
  ``TensorDictPrimer`` on the env (``vd.agent_transforms(agent, env)``) zero it at every episode start;
* the replay buffer stores *sequences* [B, T] instead of single transitions, and the loss unrolls
  the GRU over them from the stored hidden state (``TrainConfig.seq_len``, ``burn_in``);
* everything else — the mixer, the TD loss, check_igm — is unchanged.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

torch.set_num_threads(1)  # small nets on a (possibly shared) 2-core CPU: one thread is fastest

import torchrl_vd as vd  # noqa: E402  (after set_num_threads on purpose)
from torchrl.envs import TransformedEnv  # noqa: E402
from torchrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from torchrl_vd.modules.gru_agent import GRUAgent  # noqa: E402


# ------------------------------------------------------------------------------------------ config
@dataclass
class Config:
    delay: int = 4
    """Steps between the cue (t = 0) and the decision (t = delay); episodes last delay + 1 steps."""
    algo: str = "qmix"
    """Mixer/loss for both agent types (``vdn`` works too)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds per agent type."""
    num_envs: int = 32
    """Games played in parallel."""
    episodes_per_batch: int = 2
    """Episodes per env in each collected batch (a batch is num_envs x episodes x (delay + 1) frames)."""
    batches: int = 50
    """Collected batches."""
    updates_per_batch: int = 4
    """Gradient steps per batch."""
    lr: float = 3e-3
    """Adam learning rate."""
    hidden: tuple[int, ...] = (32,)
    """MLP: hidden layer sizes. GRU: input layer, and the last size is the GRU width."""
    eval_episodes: int = 1024
    """Greedy evaluation episodes (many: a guessing policy's 0.5 is then exact to ±0.03)."""


QUICK = dict(delay=2, seeds=(0,), batches=32)


def parse_args() -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="delay 2, one seed (about 30 s)")
    args = p.parse_args()
    return replace(Config(), **QUICK) if args.quick else Config()


# ------------------------------------------------------------------------------------------ train
def train(agent: str, seed: int, cfg: Config, run_dir: Path) -> vd.TrainResult:
    steps = cfg.delay + 1  # episode length
    frames_per_batch = cfg.num_envs * cfg.episodes_per_batch * steps
    return vd.train(vd.TrainConfig(
        algo=cfg.algo,
        env="matrix/memory",
        env_kwargs={"delay": cfg.delay},
        agent=agent,  # "mlp": Q(o_i^t, ·)   "gru": Q(h_i^t, ·), h_i^t = GRU(o_i^t, h_i^{t-1})
        hidden=cfg.hidden,
        # Recurrent agents learn from sequences: seq_len consecutive steps of one env, stored with the
        # hidden state the collecting policy had at their first step. Here a sequence holds exactly the
        # batch's episodes of one env; it may also start or end mid-episode (the GRU resets at "is_init").
        seq_len=cfg.episodes_per_batch * steps if agent == "gru" else 0,
        num_envs=cfg.num_envs,
        frames_per_batch=frames_per_batch,
        frames=frames_per_batch * cfg.batches,
        batch_size=frames_per_batch,  # transitions per update (GRU: frames / seq_len sequences)
        updates_per_batch=cfg.updates_per_batch,
        lr=cfg.lr,
        eps_frames=frames_per_batch * cfg.batches // 2,  # ε: 1 -> 0.05 over the first half
        target_update=0.01,
        eval_episodes=cfg.eval_episodes,
        seed=seed,
        progress=False,
        out_dir=str(run_dir / f"{agent}-{seed}"),
    ))


# ------------------------------------------------------------------------------------------ look inside
@torch.no_grad()
def decision_values(result: vd.TrainResult, delay: int, num_envs: int = 256) -> torch.Tensor:
    """Mean utilities at the decision step t = delay, per cue: [cue, agent, action].

    One greedy episode per env; the env gets the agent's own transforms (for a GRU: InitTracker and
    the hidden-state primer), exactly as ``train`` adds them to its envs.
    """
    env = TransformedEnv(vd.make_env("matrix/memory", num_envs=num_envs, seed=123, delay=delay))
    for transform in vd.agent_transforms(result.loss_module.agent_net, env):
        env.append_transform(transform)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        episode = env.rollout(delay + 1, result.policy)  # [N, T = delay + 1]
    cue = episode["agents", "observation"][:, 0, 0, 1:3].argmax(-1)  # [N]: obs = [1, onehot(c) at t=0, onehot(t)]
    q = episode["agents", "action_value"][:, delay]  # [N, n, A] at the decision step
    return torch.stack([q[cue == c].mean(0) for c in (0, 1)])  # [2, n, A]


def main() -> None:
    cfg = parse_args()
    print(f"matrix/memory, delay {cfg.delay}: cue at t=0, reward at t={cfg.delay} if every agent plays the cue")

    # One recurrent agent up close: utilities for a [B, T] batch of sequences, resetting where is_init.
    probe = GRUAgent(n_agents=2, n_actions=2, obs_dim=cfg.delay + 5, hidden=(8,))
    obs = torch.zeros(1, cfg.delay + 1, 2, cfg.delay + 5)  # [B, T, n, F]
    q_seq, h_seq = probe.unroll(obs)  # Q [B, T, n, A] and hidden states [B, T, n, H], from zeros
    print(f"GRUAgent.unroll: obs {list(obs.shape)} -> Q {list(q_seq.shape)}, hidden {list(h_seq.shape)}")

    returns: dict[str, list[float]] = {"gru": [], "mlp": []}
    probes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in cfg.seeds:
            for agent in returns:
                result = train(agent, seed, cfg, Path(tmp))
                returns[agent].append(result.summary["final_eval_return"])
                is_gru = isinstance(result.loss_module.agent_net, GRUAgent)
                print(f"  {agent} (GRUAgent: {is_gru}) seed {seed}: greedy return "
                      f"{returns[agent][-1]:.3f} over {cfg.eval_episodes} episodes")
                if seed == cfg.seeds[0]:
                    probes[agent] = decision_values(result, cfg.delay)

    # What each agent "believes" at the decision step. The GRU's utilities depend on the cue it saw
    # delay steps earlier; the MLP's cannot (its input at t = delay is the same for both cues).
    # Utilities are not returns: the mixer turns them into Q_tot, and under IGM only their argmax
    # matters for acting — the GRU's argmax follows the cue, the MLP's is the same guess for both.
    print(f"\nMean utilities of agent 1 at t = {cfg.delay}, by the cue shown at t = 0 (first seed):")
    for agent, q in probes.items():
        print(f"  {agent}: cue 0 -> Q(a=0), Q(a=1) = {q[0, 0, 0]:6.3f}, {q[0, 0, 1]:6.3f}   "
              f"cue 1 -> {q[1, 0, 0]:6.3f}, {q[1, 0, 1]:6.3f}")

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    print(f"\nRESULT: matrix/memory delay {cfg.delay} greedy return: gru {mean(returns['gru']):.3f}, "
          f"mlp {mean(returns['mlp']):.3f} (optimum 1.0; memoryless best 0.5); seeds {len(cfg.seeds)}, "
          f"gru per seed {[round(r, 3) for r in returns['gru']]}, mlp per seed {[round(r, 3) for r in returns['mlp']]}")


if __name__ == "__main__":
    main()
