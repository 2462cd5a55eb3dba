"""Where one gradient step of RESULTS.md §1's config goes, op by op: ``torch.profiler`` over the learner's own
``update`` (the trainer's code path: sampling, loss, backward, clipping, Adam, the target update).

    python benchmarks/profile_update.py [--updates 200] [--rows 25]

Builds the §1 config's ``Training`` (VMAS balance, 4 agents, MLP 2x256, QMIX, batch 128, one collected batch of
6,000 frames in the buffer), warms up, times ``--updates`` steps unprofiled (ms per update), then profiles as
many and prints the ops by self CPU time, with the matrix products' (``addmm`` + ``mm``) share of the step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_whole_process import ours_settings  # noqa: E402  (the §1 config)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--rows", type=int, default=25)
    a = p.parse_args()
    torch.set_num_threads(1)
    import torchrl_vd as vd
    from torch.profiler import ProfilerActivity, profile

    from torchrl_vd.train.loop import Training

    settings = {**ours_settings(60_000), "collector": "single"}  # one batch collected here, no worker
    with tempfile.TemporaryDirectory() as out:
        cfg = vd.TrainConfig(algo="qmix", env="vmas/balance", frames=12_000, progress=False, out_dir=out, **settings)
        training = Training([cfg], [Path(out)])
        try:
            batch = next(iter(training.collector))  # [num_envs, T]
            training.learner.add(batch.reshape(1, *batch.shape))  # [N = 1, num_envs, T]
            training.learner.update(50)  # warm-up
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                training.learner.update(a.updates)
                best = min(best, (time.perf_counter() - t) / a.updates)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                training.learner.update(a.updates)
        finally:
            training.collector.shutdown()
            for files in training.files:
                files.close()
            training._release()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / a.updates / 1e3  # ms per update
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm")) / a.updates / 1e3
    print(f"unprofiled: {best * 1e3:.2f} ms per update (best of 3 x {a.updates}); profiled: {total:.2f} ms of self "
          f"CPU per update, of which addmm + mm {gemm:.2f} ms ({gemm / total:.0%}); profiler events per update "
          f"{sum(e.count for e in events) / a.updates:.0f}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=a.rows))


if __name__ == "__main__":
    main()
