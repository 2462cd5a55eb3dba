"""End to end on a GPU: QMIX on VMAS balance (4 agents) with 4096 envs, simulation and learner on CUDA.

train() with device="cuda": VMAS steps its 4096 worlds on the GPU, the replay buffer lives there, the
update runs there. 4096 envs x 100 steps = 409,600 frames per iteration, ``--updates`` gradient steps
of ``--batch-size`` transitions each (default 200 x 4096), MLP 2x256, otherwise bench_e2e's config.
Prints frames/s, collection frames/s and gradient steps/s; skips (exit 0) with a message when CUDA is
absent.

    python benchmarks/bench_gpu.py [--iters 3] [--num-envs 4096] [--updates 200] [--batch-size 4096]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BALANCE_KWARGS, median, setup, table, write_results  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--num-envs", type=int, default=4096)
    p.add_argument("--steps", type=int, default=100, help="steps per env per iteration")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4096)
    a = p.parse_args()
    setup()
    import torch

    if not torch.cuda.is_available():
        msg = "CUDA is not available on this machine (torch.cuda.is_available() is False): bench_gpu skipped."
        print(msg)
        write_results("bench_gpu", {"skipped": msg})
        return

    import torchrl_vd as vd

    fpb = a.num_envs * a.steps
    frames = a.iters * fpb
    cfg = vd.TrainConfig(
        algo="qmix", env="vmas/balance", env_kwargs=dict(BALANCE_KWARGS), num_envs=a.num_envs, frames=frames,
        frames_per_batch=fpb, updates_per_batch=a.updates, batch_size=a.batch_size, hidden=(256, 256), lr=5e-5,
        grad_clip=5.0, target_update=0.005, eps_start=0.8, eps_end=0.01, eps_frames=frames // 3, double_q=False,
        buffer_size=frames, eval_episodes=256, progress=False, device="cuda", out_dir="/tmp/torchrl_vd_bench_gpu",
    )
    res = vd.train(cfg)
    rows = res.metrics
    steady = rows[1:] or rows
    fps = median(fpb / (r1["time"] - r0["time"]) for r0, r1 in zip(rows[:-1], rows[1:])) if len(rows) > 1 else rows[0]["fps"]
    collect = median(fpb / r["collect_time"] for r in steady)
    steps = median(a.updates / r["update_time"] for r in steady if r["update_time"] > 0)
    headers = ["device", "num_envs", "frames/s (steady)", "collect frames/s", "grad steps/s", "batch",
               "greedy return (final eval)"]
    rows_t = [[torch.cuda.get_device_name(0), a.num_envs, fps, collect, steps, a.batch_size,
               res.summary["final_eval_return"]]]
    print(f"QMIX on vmas/balance (4 agents), {a.num_envs} envs x {a.steps} steps/iter on CUDA, {a.updates} updates/iter; "
          f"medians over iterations after the first")
    print(table(headers, rows_t))
    path = write_results("bench_gpu", {"metrics": rows, "summary": res.summary, "table": {"headers": headers, "rows": rows_t}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
