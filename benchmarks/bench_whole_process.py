"""One training run as a whole process, ours vs BenchMARL 1.5.2, interleaved rounds (issue #18, item 4).

The issue-#9 config on both sides (VMAS balance, 4 agents, 60 envs x 100 steps, 200 updates of 128 per
batch, ReLU MLP 2x256, QMIX embed 32, BenchMARL's learner: Adam 5e-5, clip 5, Polyak 0.005, ε 0.8 -> 0.01
over a third of the frames, no double Q on either side). Each side is timed from spawn to exit:

* ours: ``torchrl-vd train`` with ``reproduce_suites.VMAS_TRAIN`` (+ ``collector=async``, no evaluation during
  training and 16 final evaluation episodes, as BenchMARL's side), as a user runs it: metrics.csv, summary.json,
  the final checkpoint and learning_curve.png;
* BenchMARL: ``_benchmarl_worker.py`` (its ``Experiment.run()`` with loggers, checkpoints and periodic
  evaluation off, then 16 evaluation episodes), in its own venv (``benchmarks/setup_benchmarl.sh``).

Each row prints the load and both sides' frames/s, so the load each side ran under is visible.

    python benchmarks/bench_whole_process.py [--frames 60000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from torchrl_vd import reproduce_suites as rs  # noqa: E402  (plain data)


def ours_cmd(frames: int, out: str) -> list[str]:
    cfg = {**rs.VMAS_TRAIN, **rs.VMAS_ALGO["qmix"], "env_kwargs": rs.VMAS_ENV["vmas/balance"],
           "collector": "async", "eval_episodes": 16, "eps_frames": frames // 3, "buffer_size": frames,
           "checkpoint_every": 0, "eval_every": 0}  # BenchMARL's periodic evaluation is off too: one at the end
    cmd = [str(ROOT / ".venv/bin/torchrl-vd"), "train", "--algo", "qmix", "--env", "vmas/balance",
           "--frames", str(frames), "--out", out, "--quiet"]
    for key, value in cfg.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def benchmarl_cmd(frames: int) -> list[str]:
    return [str(ROOT / ".venv-benchmarl/bin/python"), str(ROOT / "benchmarks/_benchmarl_worker.py"),
            "--iters", str(frames // 6000), "--eval-envs", "16"]


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(" ".join(cmd[:3]) + "\n" + proc.stderr[-3000:])
    return time.perf_counter() - t, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print("| round | side | whole process s | outside the loop s | frames/s (whole process) | loop frames/s | "
          "load before |")
    print("|---|---|---|---|---|---|---|", flush=True)
    ratios = []
    for r in range(a.rounds):
        sides = ["ours", "benchmarl"] if r % 2 == 0 else ["benchmarl", "ours"]
        walls = {}
        for side in sides:
            load = Path("/proc/loadavg").read_text().split()[0]
            if side == "ours":
                with tempfile.TemporaryDirectory() as d:
                    wall, _ = timed(ours_cmd(a.frames, f"{d}/run"))
                    summary = json.loads((Path(d) / "run" / "summary.json").read_text())
                loop, loop_s = summary["frames_per_s"], summary["wall_time_s"]
            else:
                wall, out = timed(benchmarl_cmd(a.frames))
                res = json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])
                loop_s = res.get("wall_s", float("nan"))
                loop = a.frames / loop_s
            walls[side] = wall
            print(f"| {r} | {side} | {wall:.1f} | {wall - loop_s:.1f} | {a.frames / wall:.0f} | {loop:.0f} | {load} |",
                  flush=True)
        ratios.append(walls["benchmarl"] / walls["ours"])
    ratios.sort()
    print(f"\nwhole-process speed ratio ours vs BenchMARL per round: {[round(x, 2) for x in ratios]}, "
          f"median {ratios[len(ratios) // 2]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
