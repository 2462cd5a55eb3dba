"""Checkpoint overhead on the end-to-end config of bench_e2e.py (VMAS balance, 4 agents, 60 envs x 100 steps per batch,
200 updates of 128 per batch, MLP 2x256: ``TrainConfig(algo="qmix", env="vmas/balance")``).

Trains with a checkpoint after every batch (``checkpoint_every = frames_per_batch``) until the replay
buffer is full (the largest checkpoint), and prints per batch: the iteration's wall time (collect +
update), the checkpoint's time and size. The overhead of an interval of k batches is then
``ckpt_time / (k * iter_time)``; the default ``checkpoint_every`` is chosen from that.

    python benchmarks/checkpoint_overhead.py [--frames 120000] [--out /tmp/ckpt-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torchrl_vd as vd
from torchrl_vd.train import checkpoint as ckpt_mod


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=120_000)
    p.add_argument("--out", default="/tmp/ckpt-overhead")
    args = p.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    writes = []  # (frames, seconds, bytes) of each checkpoint file write
    original = ckpt_mod.write_checkpoint_file

    def timed(path, state):
        t = time.perf_counter()
        original(path, state)
        writes.append((state["frames"], time.perf_counter() - t, Path(path).stat().st_size))

    ckpt_mod.write_checkpoint_file = timed
    cfg = vd.TrainConfig(algo="qmix", env="vmas/balance", frames=args.frames, out_dir=args.out, progress=False,
                                checkpoint_every=6000, eval_every=0)
    t0 = time.perf_counter()
    result = vd.train(cfg)
    wall = time.perf_counter() - t0
    iters = [r["collect_time"] + r["update_time"] for r in result.metrics]
    s = result.summary
    per_ckpt = s["checkpoint_time_s"] / s["checkpoints"]
    last = writes[-3:]
    full_ckpt = sum(w[1] for w in last) / len(last)
    iter_time = sorted(iters)[len(iters) // 2]
    out = {
        "load_before": os.getloadavg(), "wall_s": wall, "batches": len(iters),
        "iteration_time_median_s": iter_time,
        "checkpoint_time_mean_s": per_ckpt,  # incl. env reseed/reset and the metrics.csv fsync
        "checkpoint_write_full_buffer_s": full_ckpt,
        "checkpoint_size_full_buffer_mb": last[-1][2] / 2**20,
        "writes": [(f, round(t, 3), round(b / 2**20, 1)) for f, t, b in writes],
        "batches_for_2pct": full_ckpt / (0.02 * iter_time),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
