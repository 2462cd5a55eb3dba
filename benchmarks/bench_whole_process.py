"""One training run as a whole process, ours vs BenchMARL 1.5.2, interleaved rounds.

The vmas suite's balance config on both sides (VMAS balance, 4 agents, 60 envs x 100 steps, 200 updates of 128 per
batch, ReLU MLP 2x256, QMIX embed 32, BenchMARL's learner: Adam 5e-5, clip 5, Polyak 0.005, ε 0.8 -> 0.01
over a third of the frames, no double Q on either side). Each side is timed from spawn to exit:

* ours: ``torchrl-vd train`` with ``torchrl_vd.reproduce.suites.VMAS_TRAIN`` (+ ``collector=async``, no evaluation during
  training and 16 final evaluation episodes, as BenchMARL's side), as a user runs it: metrics.csv, summary.json,
  the final checkpoint and learning_curve.png;
* BenchMARL: ``_benchmarl_worker.py`` (its ``Experiment.run()`` with loggers, checkpoints and periodic
  evaluation off, then 16 evaluation episodes), in its own venv (``benchmarks/setup_benchmarl.sh``).

Each row prints the load and both sides' frames/s, so the load each side ran under is visible.

    python benchmarks/bench_whole_process.py [--frames 60000] [--rounds 3] [--bound]

(``BENCHMARL_PYTHON`` names another BenchMARL venv's interpreter.) ``--bound`` prints our median over the bound
too; benchmarks/peers.py --pair benchmarl --bound runs the same comparison with CPU times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from torchrl_vd.reproduce import suites as rs  # noqa: E402  (plain data)


def ours_settings(frames: int) -> dict:
    """Our side's ``--set`` values: the section 1 config (also benchmarks/peers.py's benchmarl pair)."""
    return {**rs.VMAS_TRAIN, **rs.VMAS_ALGO["qmix"], "env_kwargs": rs.VMAS_ENV["vmas/balance"],
            "collector": "async", "eval_episodes": 16, "eps_frames": frames // 3, "buffer_size": frames,
            "checkpoint_every": 0, "eval_every": 0}  # BenchMARL's periodic evaluation is off too: one at the end


def ours_cmd(frames: int, out: str) -> list[str]:
    cli = ROOT / ".venv/bin/torchrl-vd"
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "torchrl_vd"]  # (a worktree without its .venv)
    cmd += ["train", "--algo", "qmix", "--env", "vmas/balance", "--frames", str(frames), "--out", out, "--quiet"]
    for key, value in ours_settings(frames).items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def benchmarl_cmd(frames: int) -> list[str]:
    return [os.environ.get("BENCHMARL_PYTHON", str(ROOT / ".venv-benchmarl/bin/python")), str(ROOT / "benchmarks/_benchmarl_worker.py"),
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
    p.add_argument("--bound", action="store_true",
                   help="after the rounds, also time the imports and the update's matrix products alone and print "
                        "the best whole-process ratio any implementation of this config could reach on this machine")
    a = p.parse_args()
    print("| round | side | whole process s | outside the loop s | frames/s (whole process) | loop frames/s | "
          "load before |")
    print("|---|---|---|---|---|---|---|", flush=True)
    ratios, benchmarl_walls, ours_walls = [], [], []
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
        benchmarl_walls.append(walls["benchmarl"])
        ours_walls.append(walls["ours"])
    ratios.sort()
    print(f"\nwhole-process speed ratio ours vs BenchMARL per round: {[round(x, 2) for x in ratios]}, "
          f"median {ratios[len(ratios) // 2]:.2f}x", flush=True)
    if a.bound:
        print_bound(a.frames, sorted(benchmarl_walls)[len(benchmarl_walls) // 2], sorted(ours_walls)[len(ours_walls) // 2])


# A learner's matrix products, alone: the agents' MLP (obs 16 -> 256 -> 256 -> 9; for the section 1 config 4 agents
# x 128 transitions = 512 rows) forward and backward on the current step and the target copy's forward on the next.
# No optimizer, sampling, mixer, target update or Python around them: no implementation of that update can take
# less time on this core.
GEMM_FLOOR_SNIPPET = """
import time, torch
torch.set_num_threads(1)
def mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.{act}(), torch.nn.Linear(256, 256), torch.nn.{act}(),
                               torch.nn.Linear(256, 9))
online, target = mlp(), mlp().requires_grad_(False)
obs, next_obs = torch.randn({rows}, 16), torch.randn({rows}, 16)
actions = torch.randint(0, 9, ({rows}, 1))
def step():
    q = online(obs).gather(-1, actions)                      # [rows, 1]
    with torch.no_grad():
        y = target(next_obs).max(-1, keepdim=True).values    # [rows, 1]
    ((q - y) ** 2).mean().backward()
for _ in range({warmup}):
    step()
best = float("inf")
for _ in range({rounds}):
    t = time.perf_counter()
    for _ in range({steps}):
        step()
    best = min(best, (time.perf_counter() - t) / {steps})
print(best)
"""
IMPORTS_SNIPPET = "import torchrl_vd.cli, vmas, torchrl.collectors"


def bound_parts(frames: int) -> dict:
    """The bound's parts, timed now: our imports (best of 3 processes) and the update's matrix products alone (best
    of 7 x 100 steps), for ``frames`` of the section 1 config (200 updates per 6,000 frames)."""
    imports = imports_s()
    gemm = gemm_floor_s(rows=512, activation="ReLU")
    updates = frames // 6000 * 200
    return {"imports_s": imports, "gemm_s": gemm, "updates": updates, "floor_s": imports + updates * gemm,
            "load": os.getloadavg()[0]}


def imports_s() -> float:
    """Seconds of the imports our training process needs (``IMPORTS_SNIPPET``), best of 3 fresh processes."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS_SNIPPET], check=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
    return best


def gemm_floor_s(rows: int, activation: str, rounds: int = 7, steps: int = 100, warmup: int = 50) -> float:
    """Seconds of one update's matrix products alone (``GEMM_FLOOR_SNIPPET``: ``rows`` agent rows, best of
    ``rounds`` x ``steps`` after ``warmup`` steps), in a fresh process with one thread."""
    code = GEMM_FLOOR_SNIPPET.format(rows=rows, act=activation, rounds=rounds, steps=steps, warmup=warmup)
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                cwd=ROOT).stdout.strip())


def print_bound(frames: int, benchmarl_wall: float, ours_wall: float) -> None:
    """The best whole-process ratio reachable here: BenchMARL's wall time over (our imports + the updates' matrix
    products alone, on the learner's one core), with collection, setup and evaluation taken as free; and our
    whole-process time over that bound."""
    b = bound_parts(frames)
    print(f"\nbound: imports {b['imports_s']:.2f} s (best of 3), the update's matrix products alone "
          f"{b['gemm_s'] * 1e3:.2f} ms x {b['updates']} updates = {b['updates'] * b['gemm_s']:.1f} s -> no "
          f"implementation below {b['floor_s']:.1f} s here; BenchMARL's median {benchmarl_wall:.1f} s -> at most "
          f"{benchmarl_wall / b['floor_s']:.2f}x; ours' median {ours_wall:.1f} s = {ours_wall / b['floor_s']:.2f}x "
          f"the bound (target <= 1.25x) | load {b['load']:.2f}", flush=True)


if __name__ == "__main__":
    main()
