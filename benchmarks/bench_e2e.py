"""End-to-end QMIX on VMAS balance: torchrl_vd vs BenchMARL 1.5.2 vs a hand-built torchrl QMixerLoss loop.

The config (the BenchMARL anchor's, benchmarks/RESULTS.md §0): VMAS ``balance`` with 4 agents (BenchMARL's balance.yaml default;
VMAS's own default is 3, so ``n_agents=4`` is passed), 100-step episodes, 60 envs x 100 steps = 6000
frames per iteration, 200 gradient steps per iteration, batch 128, shared MLP agent 2x256 (ReLU),
QMIX mixer (embed 32, 2-layer hypernets of width 64), Adam lr 5e-5, grad-norm clip 5, Polyak tau
0.005, gamma 0.99, eps-greedy 0.8 -> 0.01 over a third of the frames (BenchMARL's defaults), no
double Q (torchrl's QMixerLoss has none), team reward = mean of the agents' rewards (BenchMARL's QMIX
``process_batch``), replay buffer holding every frame.

Each variant runs in its own subprocess; rounds interleave the variants (rotating order) and every
figure is the median over rounds; ratios are taken within a round, then the median is reported.
Round r trains every variant with seed ``--seed + r``, so the greedy return is a median over seeds.
Greedy return: the trained greedy policy on ``--eval-envs`` fresh envs (seed 12345), one 100-step
episode each, per-agent mean reward summed up to the first done, same protocol for all variants.

    python benchmarks/bench_e2e.py                 # default: 3 iterations x 3 rounds (about 3-4 min on an idle box)
    python benchmarks/bench_e2e.py --iters 10 --rounds 1 --variants ours,benchmarl   # returns at 60k frames
    python benchmarks/bench_e2e.py --variants ours,ours-multi2,benchmarl,qmixerloss  # + train(collector="multi")
    python benchmarks/bench_e2e.py --variants ours,ours-before --name bench_e2e_before_after
    python benchmarks/bench_e2e.py --variants ours,ours-async,benchmarl,qmixerloss --name bench_e2e_async

``ours-before`` is train() with this change's learner optimizations undone (bench_update.py lists them).
``ours-async`` is train() with ``collector="async"``: a worker process collects batch k+1 while the
learner trains on batch k (the acting policy lags one batch; needs the second core free to pay).
Its "collect frames/s" is frames over the time the learner *waited* for batches, and its CPU time adds
the worker's collecting CPU seconds to the trainer's.
``ours-multi2`` is train() with ``collector="multi", num_workers=2, num_envs=30``: the same 60 envs
stepped by two worker processes (one per core), learner unchanged.

BenchMARL 1.5.2 needs torchrl < 0.12: it runs from its own venv (``--benchmarl-python``, default
``.venv-benchmarl/bin/python``), created by ``benchmarks/setup_benchmarl.sh`` when missing. If it
cannot be installed, the table falls back to the anchor figure (867 frames/s, RESULTS.md §0) and says so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BALANCE_KWARGS, ROOT, emit, median, run_worker, setup, table, write_results  # noqa: E402

ANCHOR = {"frames_per_s": 867.0, "collect_frames_per_s": 2495.0, "grad_steps_per_s": 48.7}  # benchmarks/RESULTS.md §0
HPARAMS = dict(num_envs=60, frames_per_batch=6000, updates=200, batch_size=128, hidden=(256, 256), lr=5e-5,
               grad_clip=5.0, tau=0.005, gamma=0.99, eps_start=0.8, eps_end=0.01)


# ---------------------------------------------------------------------------------------------- workers
def worker_ours(iters: int, seed: int, eval_envs: int, eval_seed: int, extra: dict) -> dict:
    import torchrl_vd as vd
    from torchrl_vd.envs.registry import make_env
    from torchrl_vd.train.evaluation import evaluate

    frames = iters * HPARAMS["frames_per_batch"]
    kw = {"num_envs": HPARAMS["num_envs"], **extra}
    cfg = vd.TrainConfig(
        algo="qmix", env="vmas/balance", env_kwargs=dict(BALANCE_KWARGS),
        frames=frames, frames_per_batch=HPARAMS["frames_per_batch"], updates_per_batch=HPARAMS["updates"],
        batch_size=HPARAMS["batch_size"], hidden=HPARAMS["hidden"], lr=HPARAMS["lr"], grad_clip=HPARAMS["grad_clip"],
        target_update=HPARAMS["tau"], gamma=HPARAMS["gamma"], eps_start=HPARAMS["eps_start"],
        eps_end=HPARAMS["eps_end"], eps_frames=frames // 3, double_q=False, buffer_size=frames,
        mixer_kwargs=dict(mixing_embed_dim=32, hypernet_layers=2, hypernet_embed=64),
        eval_episodes=2, progress=False, seed=seed, out_dir=f"/tmp/torchrl_vd_bench_e2e_{seed}", **kw,
    )
    res = vd.train(cfg)
    rows = res.metrics
    env = make_env("vmas/balance", num_envs=eval_envs, seed=eval_seed, **BALANCE_KWARGS)
    ev = evaluate(res.policy, env, seed=eval_seed)
    return {"frames": frames, "wall_s": rows[-1]["time"], "cpu_s": rows[-1]["cpu_time"], "collect_s": [r["collect_time"] for r in rows],
            "train_s": [r["update_time"] for r in rows], "grad_steps": rows[-1]["updates"],
            "greedy_return": ev["eval_return"], "greedy_return_std": ev["eval_return_std"]}


def worker_qmixerloss(iters: int, seed: int, eval_envs: int, eval_seed: int, extra: dict) -> dict:
    """BenchMARL's QMIX rebuilt by hand from torchrl 0.14 parts (no BenchMARL plumbing)."""
    import torch
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.envs import RewardSum, TransformedEnv
    from torchrl.envs.libs.vmas import VmasEnv
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from _torchrl_qmix import build_qmixerloss

    torch.manual_seed(seed)
    H = HPARAMS
    frames = iters * H["frames_per_batch"]

    from torchrl_vd.objectives.common import total_loss

    def make(num_envs, s):
        return VmasEnv("balance", num_envs=num_envs, continuous_actions=False, categorical_actions=True,
                       max_steps=BALANCE_KWARGS["max_steps"], n_agents=BALANCE_KWARGS["n_agents"], seed=s, device="cpu")

    env = make(H["num_envs"], seed)
    env = TransformedEnv(env, RewardSum(in_keys=[env.reward_key], out_keys=[("agents", "episode_reward")]))
    parts = build_qmixerloss(env, hidden=H["hidden"][0], eps_start=H["eps_start"], eps_end=H["eps_end"],
                             anneal_frames=frames // 3, gamma=H["gamma"], tau=H["tau"], lr=H["lr"])
    loss, updater, optim, greedy, egreedy = parts["loss"], parts["updater"], parts["optim"], parts["greedy"], parts["egreedy"]
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(frames), batch_size=H["batch_size"])
    collector = Collector(env, parts["explore"], frames_per_batch=H["frames_per_batch"], total_frames=frames)

    collect, train = [], []
    t0 = t_iter = time.perf_counter()
    cpu0 = time.process_time()
    for batch in collector:
        t_col = time.perf_counter()
        batch.set(("next", "reward"), batch.get(("next", "agents", "reward")).mean(-2))  # team reward (BenchMARL)
        rb.extend(batch.reshape(-1))
        for _ in range(H["updates"]):
            out = loss(rb.sample())
            optim.zero_grad()
            total_loss(out).backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), H["grad_clip"])
            optim.step()
            updater.step()
        egreedy.step(batch.numel())
        collector.update_policy_weights_()
        t_end = time.perf_counter()
        collect.append(t_col - t_iter)
        train.append(t_end - t_col)
        t_iter = t_end
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    collector.shutdown()

    eval_env = make(eval_envs, eval_seed)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = eval_env.rollout(BALANCE_KWARGS["max_steps"], greedy, break_when_any_done=False)
    reward = roll["next", "agents", "reward"].mean(-2).squeeze(-1)  # [E, T]
    done = roll["next", "done"].squeeze(-1)
    first = done.long().cumsum(-1) - done.long()
    returns = (reward * (first == 0)).sum(-1)
    return {"frames": frames, "wall_s": wall, "cpu_s": cpu, "collect_s": collect, "train_s": train,
            "grad_steps": H["updates"] * iters, "greedy_return": returns.mean().item(),
            "greedy_return_std": returns.std().item()}


def worker_ours_multi2(iters: int, seed: int, eval_envs: int, eval_seed: int, extra: dict) -> dict:
    """train() with its multi-process collector: 2 worker processes x 30 envs (60 envs in all)."""
    return worker_ours(iters, seed, eval_envs, eval_seed, dict(collector="multi", num_workers=2, num_envs=30))


def worker_ours_async(iters: int, seed: int, eval_envs: int, eval_seed: int, extra: dict) -> dict:
    """train() with ``collector="async"``: one worker process collects batch k+1 while this one trains on k."""
    return worker_ours(iters, seed, eval_envs, eval_seed, dict(collector="async"))


def worker_ours_before(iters: int, seed: int, eval_envs: int, eval_seed: int, extra: dict) -> dict:
    """train() with the learner optimizations undone (see bench_update.py): the before/after figure.

    torchrl's SoftUpdate instead of FusedSoftUpdate, Adam's per-tensor loop instead of fused, input
    validation on every minibatch, one ``rb.sample()`` per step.
    """
    from torchrl.objectives import SoftUpdate

    from torchrl_vd.objectives.common import ValueDecompositionLoss
    from torchrl_vd.train import loop

    loop.FusedSoftUpdate = SoftUpdate
    loop._fused_ok = lambda params: False
    loop._minibatches = lambda rb, n, chunk=32: (rb.sample() for _ in range(n))
    ValueDecompositionLoss.check_inputs = property(lambda self: True, lambda self, value: None)  # always validate
    return worker_ours(iters, seed, eval_envs, eval_seed, extra)


WORKERS = {"ours": worker_ours, "ours-async": worker_ours_async, "ours-before": worker_ours_before,
           "ours-multi2": worker_ours_multi2,
           "qmixerloss": worker_qmixerloss}


# ---------------------------------------------------------------------------------------------- driver
def summarize(r: dict) -> dict:
    frames_per_iter = r["frames"] / len(r["collect_s"])
    steps_per_iter = r["grad_steps"] / len(r["train_s"])
    return {
        "frames_per_s": r["frames"] / r["wall_s"],
        "frames_per_cpu_s": r["frames"] / r["cpu_s"],
        "collect_frames_per_s": frames_per_iter * len(r["collect_s"]) / sum(r["collect_s"]),
        "grad_steps_per_s": steps_per_iter * len(r["train_s"]) / sum(r["train_s"]),
        "ms_per_grad_step": 1e3 * sum(r["train_s"]) / r["grad_steps"],
        "greedy_return": r["greedy_return"],
    }


def ensure_benchmarl(python: Path, install: bool) -> str | None:
    """None when the BenchMARL venv works, else the reason it does not."""
    check = [str(python), "-c", "import benchmarl, torchrl, vmas; assert benchmarl.__version__ == '1.5.2'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return None
    if not install:
        return f"{python} has no BenchMARL 1.5.2 (run benchmarks/setup_benchmarl.sh)"
    venv = python.parent.parent
    print(f"Installing BenchMARL 1.5.2 into {venv} (benchmarks/setup_benchmarl.sh) ...", flush=True)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/setup_benchmarl.sh"), str(venv)], capture_output=True, text=True)
    if proc.returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        return "setup_benchmarl.sh failed: " + (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=3, help="iterations (6000 frames + 200 updates each) per run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians over rounds")
    p.add_argument("--variants", default="ours,benchmarl,qmixerloss")
    p.add_argument("--seed", type=int, default=0, help="round r trains every variant with seed + r")
    p.add_argument("--eval-envs", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--benchmarl-python", default=str(ROOT / ".venv-benchmarl/bin/python"))
    p.add_argument("--no-install", action="store_true", help="do not create the BenchMARL venv when missing")
    p.add_argument("--name", default="bench_e2e", help="results/<name>.json")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    a = p.parse_args()
    setup()
    if a.worker:
        emit(WORKERS[a.worker](a.iters, a.seed, a.eval_envs, a.eval_seed, {}))
        return

    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    benchmarl_error = ensure_benchmarl(Path(a.benchmarl_python), not a.no_install) if "benchmarl" in variants else None
    if benchmarl_error:
        print(f"BenchMARL unavailable ({benchmarl_error}); using the anchor figure (RESULTS.md §0) instead.")
        variants.remove("benchmarl")
    common = ["--iters", str(a.iters), "--eval-envs", str(a.eval_envs), "--eval-seed", str(a.eval_seed)]
    cmds = {v: [sys.executable, __file__, "--worker", v, *common] for v in variants if v in WORKERS}
    if "benchmarl" in variants:
        cmds["benchmarl"] = [a.benchmarl_python, str(ROOT / "benchmarks/_benchmarl_worker.py"), *common]

    runs: dict[str, list[dict]] = {v: [] for v in cmds}
    names = list(cmds)
    for r in range(a.rounds):
        for v in names[r % len(names):] + names[: r % len(names)]:
            t, load0 = time.perf_counter(), os.getloadavg()[0]
            out = run_worker([*cmds[v], "--seed", str(a.seed + r)])  # round r: training seed seed + r for all
            out["summary"] = summarize(out)
            out["load"] = [load0, os.getloadavg()[0]]  # 1-minute load average before / after the run
            runs[v].append(out)
            print(f"round {r + 1}/{a.rounds} {v}: {out['summary']['frames_per_s']:.0f} frames/s "
                  f"(run {time.perf_counter() - t:.0f} s, load {load0:.2f} -> {out['load'][1]:.2f})", flush=True)

    def med(v, k):
        return median(run["summary"][k] for run in runs[v])

    def ratio(v, base, k):
        if base in runs:
            return median(a_["summary"][k] / b_["summary"][k] for a_, b_ in zip(runs[v], runs[base]))
        if base == "benchmarl" and k in ANCHOR:  # fallback: the anchor figure measured on this kind of box
            return med(v, k) / ANCHOR[k]
        return float("nan")

    keys = ["frames_per_s", "frames_per_cpu_s", "collect_frames_per_s", "grad_steps_per_s", "ms_per_grad_step", "greedy_return"]
    rows = []
    for v in runs:
        rows.append([v, *(med(v, k) for k in keys), ratio(v, "benchmarl", "frames_per_s"),
                     ratio(v, "qmixerloss", "frames_per_s"), ratio(v, "benchmarl", "frames_per_cpu_s"),
                     ratio(v, "qmixerloss", "frames_per_cpu_s")])
        if "ours-before" in runs:
            rows[-1] += [ratio(v, "ours-before", "frames_per_s"), ratio(v, "ours-before", "grad_steps_per_s")]
    if "benchmarl" not in runs:
        rows.append(["benchmarl (RESULTS.md §0 anchor, not measured here)", ANCHOR["frames_per_s"], float("nan"),
                     ANCHOR["collect_frames_per_s"], ANCHOR["grad_steps_per_s"], 1e3 / ANCHOR["grad_steps_per_s"],
                     float("nan"), 1.0, float("nan"), float("nan"), float("nan")])
    headers = ["variant", "frames/s (wall)", "frames/CPU-s", "collect frames/s", "grad steps/s", "ms/grad step",
               f"greedy return @{a.iters * 6000} frames", "x BenchMARL (wall)", "x QMixerLoss (wall)",
               "x BenchMARL (CPU)", "x QMixerLoss (CPU)"]
    if "ours-before" in runs:
        headers += ["x ours-before (frames/s)", "x ours-before (grad steps/s)"]
    rows = [r + [float("nan")] * (len(headers) - len(r)) for r in rows]
    print()
    print(f"QMIX on vmas/balance (4 agents), {a.iters} iterations x 6000 frames, 200 updates/iter; "
          f"medians of {a.rounds} interleaved rounds, 1 torch thread")
    print(table(headers, rows))
    path = write_results(a.name, {"config": {**HPARAMS, **BALANCE_KWARGS, "iters": a.iters, "rounds": a.rounds},
                                  "runs": runs, "table": {"headers": headers, "rows": rows},
                                  "benchmarl_error": benchmarl_error})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
