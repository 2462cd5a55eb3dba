"""Tutorial 04 — MAVEN: committed exploration through a latent variable, vs QMIX on the m-step game.

    python tutorials/04_maven_committed_exploration.py --quick           # < 1 min: m = 10, 6.4k frames, 1 seed
    python tutorials/04_maven_committed_exploration.py --out runs/t04    # full: 5 seeds x 105k frames + PNG (~50 min)

**The game** (Mahajan et al. 2019; ``matrix/m-step``): 2 agents, 2 actions, m steps. The joint action at
t = 0 picks a branch: (0,0) → branch 0, (0,1) → 1, (1,0) → 2, (1,1) → 3. On branches 0 and 3 the team
earns 1 per step as long as it repeats the branch's joint action; any other joint action ends the
episode. Branch 3 pays m in total. Branch 0 pays m−1 and then, at the last step, [[1,1],[1,4]][a_1][a_2]:
m+3 if the agents switch to (1,1) exactly then. Observation = state = onehot(t) ++ onehot(branch).

**Why ε-greedy QMIX misses it.** Uniform exploration reaches the last step of branch 0 with probability
(1/4)^(m−1); once ε is small the single greedy policy commits to one branch, and the monotonic Q_tot
gives it no reason to try (1,1) at the end of branch 0 (ε = 0.01 explores it with probability 2.5e-5
per visit). It usually settles at a return of m: the trap branch 3, or branch 0 without the switch.

**MAVEN's answer (Mahajan et al. 2019).** Draw a latent z once per episode and condition every utility and
the mixer on it. *Fixing z gives a monotonic approximation* of Q* (a QMIX per z), so each z is one
deterministic, *committed* mode of joint behaviour. Three objectives train it:

    max  L_RL(θ)  +  λ_MI · L_V(υ, φ, η, ψ)  −  λ_QL · L_QL(φ, η, ψ)

* L_QL — the QMIX TD loss with z fixed for the episode: Q(s_t, a_t; z) → r + γ max Q̄(s_{t+1}, ·; z).
* L_V  — a variational lower bound of MI(σ(τ), z): a discriminator q_υ(z | σ(τ)) reads the agents'
  Boltzmann policies σ along the trajectory and must guess z; its cross-entropy gradient flows into
  the agents, pushing different z's towards *distinguishable* behaviour (diverse commitments).
* L_RL — a hierarchical policy π_z(z | s_0), trained by REINFORCE on the episode return with the Q side
  frozen, learns which z (which mode) pays.

In the library: ``vd.MavenAgent`` (GRU trunk, z-dependent output layer), ``vd.MavenMixer`` (QMIX on
[s, z]), ``vd.MavenDiscriminator`` (q_υ), ``vd.NoiseTransform`` (draws z at every reset from π_z and
keeps it in the tensordict), ``vd.MavenLoss`` (L_QL + L_MI) and the z-policy trainer, all assembled by
``vd.train(TrainConfig(algo="maven"))``. This tutorial trains both methods, plots greedy return vs
frames, and then looks at what every fixed z does.

**What to expect.** The full run uses the configuration of the opt-in test
``tests/test_maven.py::test_maven_solves_m_step_where_qmix_is_trapped`` (5 seeds x 105k frames, one
gradient step per episode), which measured MAVEN [10, 10, 13, 13, 13] (median 13, the optimum) and
QMIX [10, 10, 13, 13, 10] (median 10, the trap): the paper's medians (20 seeds there). On the MAVEN seeds
that reach 13, several z's take branch 0 and switch to (1,1) at the end, and π_z's greedy z is one of
them; on the others every z sits at 10 (branch 3, or branch 0 without the switch). QMIX's 2 escapes come
from the last step, where all four joint actions pay ≥ 1 and nothing stops the utilities from drifting
to (1,1). ``--quick`` (6.4k frames) shows the pieces working; both methods are at the trap there.

**Two things that matter** (measured; see CHANGELOG): the game as the authors wrote it shows branch 0
at t = 0 (``matrix/m-step``'s default), and π_z must not collapse before some z has found the better
mode: trained with 100 REINFORCE steps per batch and no floor, its entropy fell from ln 16 to 0 within
~7k frames and MAVEN became one QMIX. ``z_epsilon=0.5`` draws half of the z's uniformly while
collecting (greedy evaluation still takes π_z's mode).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

torch.set_num_threads(1)  # small nets on a (possibly shared) 2-core CPU: one thread is fastest

import torchrl_vd as vd  # noqa: E402  (after set_num_threads on purpose)
from torchrl.envs import TransformedEnv  # noqa: E402
from torchrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from torchrl_vd.train.plot import save_curves  # noqa: E402  (the return-vs-frames PNG)


# ------------------------------------------------------------------------------------------ config
@dataclass
class Config:
    steps: int = 10
    """m, the episode length: optimum m + 3, trap m (the paper's figure uses m = 10)."""
    algos: tuple[str, ...] = ("maven", "qmix")
    """Methods to compare (both with GRU agents, as in the paper)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds per method (the paper reports the median over 20; a median needs a few)."""
    frames: int = 105_000
    """Environment steps per run (the authors' t_max; the paper: MAVEN reaches the optimum within 100k)."""
    num_envs: int = 16
    """Games played in parallel."""
    episodes_per_batch: int = 1
    """Collected batch = num_envs x episodes_per_batch x m frames."""
    updates_per_batch: int = 16
    """Gradient steps per collected batch (each on 32 sequences of m steps): one per episode, as the authors."""
    lr: float = 5e-4
    """RMSprop learning rate (pymarl's 5e-4)."""
    eps_frames: int = 100
    """ε anneals 1 → 0.01 over this many frames (the authors' m-step config): after that, exploration
    is the latent's job."""
    hidden: tuple[int, ...] = (64,)
    """GRU width."""
    maven: dict = field(default_factory=lambda: {"noise_dim": 16, "lambda_mi": 1.0, "z_policy": "learned",
                                                 "rnn_discrim": False, "z_updates": 100, "z_epsilon": 0.5,
                                                 "discrim_layers": 1, "z_lr": 1e-3, "z_objective": "entropy",
                                                 "eval_z": "mode"})
    """MAVEN options (``loss_kwargs`` of ``algo="maven"``): |z|, λ_MI, π_z learned or uniform, the
    per-step discriminator, π_z's REINFORCE steps per batch, the share of uniform z's while collecting.
    The authors' m-step config (noise_dim 16, mi_loss 1, a learned hierarchical π_z with 100 steps per
    episode, their per-step discriminator option) plus a uniform-z floor of 0.5 (see ``z_epsilon``) and an
    entropy-regularised π_z, the measured configuration (a 1-hidden-layer discriminator, π_z by Adam 1e-3 on a
    mean-baseline + entropy objective, π_z's mode at evaluation, 2-layer mixer hypernetworks, no agent id);
    ``MavenOptions`` defaults to the authors' own choices (see its docstring)."""
    evals: int = 10
    """Greedy evaluations per run (points of the return-vs-frames curve)."""
    out: str | None = None
    """Where the plot goes (``--out DIR``); default: a fresh temporary directory."""


QUICK = dict(seeds=(0,), frames=6_400, evals=4)  # 40 batches x 16 updates per method


def parse_args() -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6.4k frames, one seed (under a minute)")
    p.add_argument("--out", default=None, help="directory for the plot (default: a temporary one)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0-4; quick: 0)")
    p.add_argument("--frames", type=int, default=None, help="frames per run")
    args = p.parse_args()
    cfg = replace(Config(), **QUICK) if args.quick else Config()
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(args.seeds))
    if args.frames:
        cfg = replace(cfg, frames=args.frames)
    return replace(cfg, out=args.out)


# ------------------------------------------------------------------------------------------ train
def train(algo: str, seed: int, cfg: Config, run_dir: Path) -> vd.TrainResult:
    m = cfg.steps
    frames_per_batch = cfg.num_envs * cfg.episodes_per_batch * m
    frames = (cfg.frames // frames_per_batch) * frames_per_batch
    return vd.train(vd.TrainConfig(
        algo=algo,
        env="matrix/m-step",
        env_kwargs={"steps": m},
        agent="gru",  # MAVEN always uses its GRU MavenAgent; QMIX gets a GRU too for a fair comparison
        hidden=cfg.hidden,
        num_envs=cfg.num_envs,
        frames_per_batch=frames_per_batch,
        seq_len=m,  # sequences of m steps (an episode's worth; they may straddle an early episode end)
        batch_size=32 * m,  # 32 sequences of m steps per update (pymarl: 32 episodes)
        buffer_size=1000 * m,  # ~1000 episodes (the authors')
        optimizer="rmsprop",
        grad_clip=10.0,
        updates_per_batch=cfg.updates_per_batch,
        frames=frames,
        lr=cfg.lr,
        eps_start=1.0,
        eps_end=0.01,
        eps_frames=cfg.eps_frames,
        target_update=200,  # hard target copy every 200 updates
        loss_kwargs=cfg.maven if algo == "maven" else {},
        mixer_kwargs={"hypernet_layers": 2} if algo == "maven" else {},  # the measured configuration (see ``maven``)
        agent_id=False if algo == "maven" else None,
        eval_every=max(frames_per_batch, frames // cfg.evals),
        eval_episodes=16,
        seed=seed,
        progress=False,
        out_dir=str(run_dir / f"{algo}-{seed}"),
    ))


def curve(result: vd.TrainResult) -> list[tuple[int, float]]:
    """(frames, greedy evaluation return) points from the run's metrics."""
    return [(row["frames"], row["eval_return"]) for row in result.metrics if row["eval_return"] == row["eval_return"]]


# ------------------------------------------------------------------------------------------ one mode per z
BRANCH = {(0, 0): "0 (pays m+3 if (1,1) at the end)", (0, 1): "1 (ends)", (1, 0): "2 (ends)", (1, 1): "3 (trap, m)"}


@torch.no_grad()
def returns_per_z(result: vd.TrainResult, m: int) -> list[tuple[int, tuple[int, int], float]]:
    """Greedy episode of every fixed z: (z, joint action at t = 0, return).

    One env per z: reset (the NoiseTransform draws some z), overwrite ``"noise"`` with onehot(z), and
    roll out without another reset; the NoiseTransform then carries our z through the episode.
    """
    noise_dim = result.loss_module.noise_dim
    env = TransformedEnv(vd.make_env("matrix/m-step", steps=m, num_envs=noise_dim, seed=0))
    for transform in vd.agent_transforms(result.loss_module.agent_net, env):  # GRU: InitTracker + hidden primer
        env.append_transform(transform)
    for make_transform in result.parts.env_transforms:  # MAVEN: the NoiseTransform
        env.append_transform(make_transform())
    td = env.reset()
    td["noise"] = torch.eye(noise_dim)  # [Z, Z]: env k plays with z = k
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        # break_when_any_done=False: an env whose z ends its episode early must not stop the others
        # (steps after each env's first done are masked out below)
        episode = env.rollout(m, result.policy, tensordict=td, auto_reset=False, break_when_any_done=False)
    reward = episode["next", "reward"].squeeze(-1)  # [Z, T]
    done = episode["next", "done"].squeeze(-1)  # [Z, T]
    alive = (done.long().cumsum(-1) - done.long()) == 0  # [Z, T]: steps up to and including the first done
    ret = (reward * alive).sum(-1)  # [Z]
    first = episode["agents", "action"][:, 0]  # [Z, n]
    return [(z, tuple(first[z].tolist()), ret[z].item()) for z in range(noise_dim)]


# ------------------------------------------------------------------------------------------ plot
def save_plot(curves: dict[str, list[list[tuple[int, float]]]], m: int, path: Path) -> Path:
    """Per method: the median over seeds of the greedy return at each evaluation, shaded from the worst
    seed to the best (outcomes are bimodal, 10 or 13: the band shows whether any seed escaped)."""
    series, bands, styles = {}, {}, {}
    for (algo, runs), marker in zip(curves.items(), "os^"):
        label = f"{algo} (median of {len(runs)})"
        at_x = [[run[i][1] for run in runs] for i in range(len(runs[0]))]  # returns of every seed, per evaluation
        series[label] = [(x, statistics.median(ys)) for (x, _), ys in zip(runs[0], at_x)]
        bands[label] = [(x, min(ys), max(ys)) for (x, _), ys in zip(runs[0], at_x)]
        styles[label] = {"marker": marker, "lw": 2}
    return save_curves(series, path, xlabel="frames", ylabel="greedy return", title=f"m-step game, m = {m}",
                       bands=bands, styles=styles, ylim=(-0.5, m + 4),
                       hlines={f"optimum m+3 = {m + 3}": m + 3, f"trap m = {m}": m})


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    cfg = parse_args()
    m = cfg.steps
    print(f"m-step game, m = {m}: optimum {m + 3} (branch 0, then (1,1) at the end), trap {m} (branch 3); "
          f"{cfg.frames} frames per run, seeds {list(cfg.seeds)}")
    curves: dict[str, list] = {algo: [] for algo in cfg.algos}
    finals: dict[str, list[float]] = {algo: [] for algo in cfg.algos}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in cfg.seeds:
            for algo in cfg.algos:
                result = train(algo, seed, cfg, Path(tmp))
                curves[algo].append(curve(result))
                finals[algo].append(result.summary["final_eval_return"])
                print(f"  {algo:<6} seed {seed}: greedy return {finals[algo][-1]:g}  "
                      f"({result.summary['wall_time_s']:.0f} s; curve {[round(r, 1) for _, r in curves[algo][-1]]})")
                if algo == "maven" and seed == cfg.seeds[0]:
                    # Each z is a committed mode: which branch does its greedy policy take, what does it earn?
                    modes: dict[tuple, list[int]] = {}
                    for z, first, ret in returns_per_z(result, m):
                        modes.setdefault((first, ret), []).append(z)
                    print("    what every fixed z does (greedy, first seed):")
                    for (first, ret), zs in sorted(modes.items(), key=lambda kv: -kv[0][1]):
                        print(f"      z in {zs}: t=0 joint action {first} -> branch {BRANCH[first]}, return {ret:g}")

    out_dir = Path(cfg.out) if cfg.out else Path(tempfile.mkdtemp(prefix="tutorial04-"))
    print(f"return vs frames: {save_plot(curves, m, out_dir / 'maven_vs_qmix.png')}")
    med = {algo: statistics.median(f) for algo, f in finals.items()}
    hits = ", ".join(f"{a} {sum(f == m + 3 for f in finals[a])}/{len(cfg.seeds)}" for a in cfg.algos)
    rets = ", ".join(f"{a} {med[a]:g}" for a in cfg.algos)
    print(f"RESULT: m-step m={m} greedy return: {rets} (median of {len(cfg.seeds)} seeds; optimum {m + 3}, "
          f"trap {m}); seeds reaching the optimum: {hits}")


if __name__ == "__main__":
    main()
