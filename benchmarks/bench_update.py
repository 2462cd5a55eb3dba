"""What each optimization of the gradient step is worth: QMIX, VMAS balance data, the bench_e2e config.

Cumulative ablation of one gradient step (sample -> loss -> backward -> clip -> optimizer -> target
update), each variant on the same replay buffer (random-action VMAS balance transitions, 4 agents,
MLP 2x256, batch 128, no double Q), interleaved round by round; each figure is the median step time
over the round's steps, then the median over rounds. CPU time (``time.thread_time``) is reported next
to wall time because the shared box preempts us: CPU time is the cost, wall time what a user waits.

    0 before       torchrl SoftUpdate, Adam (per-tensor loop), check_inputs on every minibatch, rb.sample() per step
    1 +fused lerp  FusedSoftUpdate (torchrl_vd/objectives/utils.py)
    2 +fused Adam  torch.optim.Adam(fused=True)
    3 +validate once  inputs validated when they enter the buffer, not on every minibatch
    4 +chunked sampling  one storage gather per 32 minibatches (train/learner.py _minibatches)
    double Q before/after  (TrainConfig default double_q=True) stacked online pass vs next step under no_grad
    torchrl QMixerLoss  the hand-built torchrl loop's step (torchrl SoftUpdate, Adam), same data
    MixingQLoss on torchrl's modules  that loop with only the loss line changed (its MultiAgentMLP policy and
                   torchrl QMixer module, double_q=False; torchrl SoftUpdate, Adam): docs/COMING_FROM_TORCHRL.md

    python benchmarks/bench_update.py [--rounds 5] [--steps 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BALANCE_KWARGS, median, setup, sync, table, write_results  # noqa: E402


def balance_buffer(num_envs: int = 60, steps: int = 100, seed: int = 0, n_agents: int = 4, capacity: int | None = None,
                   batch_size: int = 128, device: str = "cpu"):
    """Our VMAS balance env and a replay buffer filled with a random-action rollout [num_envs * steps], both on
    ``device`` (the env simulates there; the buffer stores there, as train()'s does)."""
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.data.replay_buffers.samplers import RandomSampler

    from torchrl_vd.envs.registry import make_env

    env = make_env("vmas/balance", num_envs=num_envs, seed=seed, device=device,
                   **{**BALANCE_KWARGS, "n_agents": n_agents})
    roll = env.rollout(steps, break_when_any_done=False)  # [num_envs, steps]
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity or num_envs * steps, device=device),
                                sampler=RandomSampler(), batch_size=batch_size)
    rb.extend(roll.reshape(-1))
    return env, rb


def our_loss(env, algo: str = "qmix", hidden=(256, 256), agent: str = "mlp", double_q: bool = False,
             device: str = "cpu"):
    import torchrl_vd as vd
    from torchrl_vd.envs.registry import describe_env
    from torchrl_vd.train.algos import algorithms

    cfg = vd.TrainConfig(algo=algo, env="vmas/balance", hidden=hidden, agent=agent, double_q=double_q, progress=False,
                         agent_id=False)  # as BenchMARL (and the VMAS preset): no agent id
    loss = algorithms()[algo].parts(cfg, describe_env(env)).to(device).loss_module
    loss.make_value_estimator(gamma=0.99)
    return loss


def step_fn(loss, rb, *, fused_lerp: bool, fused_adam: bool, validate_once: bool, chunked: bool, steps: int,
            grad_clip: float = 5.0, device: str = "cpu"):
    """A closure running ``steps`` gradient steps as train() did before/after each optimization (and waiting for
    ``device`` to finish them)."""
    import torch
    from torchrl.objectives import SoftUpdate

    from torchrl_vd.objectives.utils import FusedSoftUpdate
    from torchrl_vd.train.learner import _minibatches

    params = list(loss.parameters())
    updater = (FusedSoftUpdate if fused_lerp else SoftUpdate)(loss, tau=0.005)
    optim = torch.optim.Adam(params, lr=5e-5, fused=fused_adam)

    from torchrl_vd.objectives.common import total_loss

    def run():
        loss.check_inputs = not validate_once
        batches = _minibatches(rb, steps) if chunked else (rb.sample() for _ in range(steps))
        for td in batches:
            out = loss(td)
            optim.zero_grad(set_to_none=True)
            total_loss(out).backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optim.step()
            updater.step()
        sync(device)

    return run


def torchrl_step_fn(env, rb, steps: int):
    import torch

    from _torchrl_qmix import build_qmixerloss

    parts = build_qmixerloss(env)
    loss, optim, updater = parts["loss"], parts["optim"], parts["updater"]

    from torchrl_vd.objectives.common import total_loss

    def run():
        for _ in range(steps):
            out = loss(rb.sample())
            optim.zero_grad()
            total_loss(out).backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 5.0)
            optim.step()
            updater.step()

    return run


def torchrl_modules_step_fn(env, rb, steps: int):
    """QMixerLoss's loop with our loss line: its MultiAgentMLP policy and QMixer module in MixingQLoss."""
    from _torchrl_qmix import build_qmixerloss

    import torchrl_vd as vd

    parts = build_qmixerloss(env)
    loss = vd.MixingQLoss(parts["greedy"], parts["mixer"], double_q=False)
    loss.make_value_estimator(gamma=0.99)
    return step_fn(loss, rb, steps=steps, **VARIANTS["0 before"])


VARIANTS = {
    "0 before": dict(fused_lerp=False, fused_adam=False, validate_once=False, chunked=False),
    "1 +fused lerp (FusedSoftUpdate)": dict(fused_lerp=True, fused_adam=False, validate_once=False, chunked=False),
    "2 +fused Adam": dict(fused_lerp=True, fused_adam=True, validate_once=False, chunked=False),
    "3 +validate once per batch": dict(fused_lerp=True, fused_adam=True, validate_once=True, chunked=False),
    "4 +chunked sampling (= train())": dict(fused_lerp=True, fused_adam=True, validate_once=True, chunked=True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=64, help="gradient steps per variant per round")
    a = p.parse_args()
    setup()
    env, rb = balance_buffer()
    runs = {}
    for name, kw in VARIANTS.items():
        runs[name] = step_fn(our_loss(env), rb, steps=a.steps, **kw)
    runs["torchrl QMixerLoss"] = torchrl_step_fn(env, rb, a.steps)
    runs["MixingQLoss on torchrl's modules"] = torchrl_modules_step_fn(env, rb, a.steps)
    # double Q (TrainConfig's default): online next-step utilities stacked with the current step in one
    # graph (before) vs a separate no-grad pass (ValueDecompositionLoss.online_utilities)
    stacked = our_loss(env, double_q=True)
    stacked.online_utilities = lambda b, need_next: stacked.utilities(b, need_next=need_next)  # the old path
    runs["double Q, before: stacked [2,B] pass"] = step_fn(stacked, rb, steps=a.steps, **VARIANTS["4 +chunked sampling (= train())"])
    runs["double Q, after: next step under no_grad"] = step_fn(our_loss(env, double_q=True), rb, steps=a.steps,
                                                               **VARIANTS["4 +chunked sampling (= train())"])
    for f in runs.values():  # warm-up
        f()
    cpu = {k: [] for k in runs}
    wall = {k: [] for k in runs}
    names = list(runs)
    for r in range(a.rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            t, c = time.perf_counter(), time.thread_time()
            runs[k]()
            cpu[k].append((time.thread_time() - c) / a.steps * 1e3)
            wall[k].append((time.perf_counter() - t) / a.steps * 1e3)
    rows = []
    for k in names:
        base = "double Q, before: stacked [2,B] pass" if k.startswith("double Q") else "0 before"
        ratio_cpu = median(b / x for b, x in zip(cpu[base], cpu[k]))
        ratio_tr = median(b / x for b, x in zip(cpu["torchrl QMixerLoss"], cpu[k]))
        rows.append([k, median(cpu[k]), median(wall[k]), ratio_cpu, ratio_tr])
    headers = ["variant", "CPU ms/step", "wall ms/step", "speed-up vs before (CPU)", "speed-up vs QMixerLoss (CPU)"]
    print(f"QMIX gradient step, VMAS balance 4 agents, MLP 2x256, batch 128; medians of {a.rounds} interleaved "
          f"rounds x {a.steps} steps, 1 torch thread")
    print(table(headers, rows))
    path = write_results("bench_update", {"cpu_ms": cpu, "wall_ms": wall, "table": {"headers": headers, "rows": rows}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
