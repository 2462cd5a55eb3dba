"""BenchMARL's returns for the ``vmas`` reproduction suite: one BenchMARL 1.5.2 run per (task, algo, seed).

``torchrl-vd reproduce vmas`` compares our QMIX/VDN with BenchMARL runs of the same config; this script
makes those runs and appends one row per run to ``torchrl_vd/reproduce/references/benchmarl_vmas.csv`` (columns
``task, algo, seed, value`` — the greedy return over 100 evaluation episodes, team reward = mean of the
agents' rewards — then ``std, frames, wall_s, load_before, load_after, date, versions``). Rows already in
the file are skipped, so an interrupted driver continues where it stopped; a run in flight is redone.

BenchMARL runs its own yaml defaults (``conf/experiment/base_experiment.yaml``, ``conf/algorithm/
{qmix,vdn}.yaml``, ``conf/task/vmas/<task>.yaml``) with the suite's batch layout (60 envs x 100 steps, 200
updates of 128) and ReLU MLP 2x256 (BenchMARL's default activation is Tanh; ReLU makes its networks the
same as ours). ``torchrl_vd.reproduce.suites.BENCHMARL_VMAS_CHANGES`` lists these changes in BenchMARL's own keys;
the suite's entries on our side are their BenchMARL import (``TrainConfig.from_benchmarl``).

Usage (after ``bash benchmarks/setup_benchmarl.sh``)::

    python benchmarks/benchmarl_reference.py [--tasks vmas/balance] [--algos qmix,vdn] [--seeds 0-2]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torchrl_vd.reproduce import suites as reproduce_suites  # noqa: E402  (plain data: the entries, the file name)
from torchrl_vd.train.config import parse_seeds  # noqa: E402

# the package's reference folder in this checkout: the file the vmas suite reads (package data)
REFERENCES = ROOT / "torchrl_vd" / "reproduce" / "references"

COLUMNS = ["task", "algo", "seed", "value", "std", "frames", "wall_s", "load_before", "load_after", "date",
           "versions"]


def done_rows(path: Path) -> set[tuple[str, str, int]]:
    """The (task, algo, seed) runs already in the reference file."""
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {(r["task"], r["algo"], int(r["seed"])) for r in csv.DictReader(f)}


def append_row(path: Path, row: dict) -> None:
    """One complete row, appended and flushed (the header first when the file is new)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def run_one(python: str, task: str, algo: str, seed: int, frames: int, eval_envs: int) -> dict:
    """One BenchMARL run in its own venv; its ``RESULT {json}`` line, parsed."""
    fpb = reproduce_suites.VMAS_TRAIN["frames_per_batch"]
    if frames % fpb:
        raise ValueError(f"frames {frames} is not a multiple of the batch {fpb}")
    cmd = [python, str(ROOT / "benchmarks/_benchmarl_worker.py"), "--iters", str(frames // fpb), "--seed", str(seed),
           "--task", task.split("/", 1)[1], "--algo", algo, "--eval-envs", str(eval_envs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"BenchMARL run {task} {algo} seed {seed} failed (exit {out.returncode}):\n"
                           f"{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    suite = reproduce_suites.VMAS
    tasks_all = list(dict.fromkeys(e["task"] for e in suite["entries"]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default=",".join(tasks_all))
    p.add_argument("--algos", default="qmix,vdn")
    p.add_argument("--seeds", default=None, help="default: the suite's seeds")
    p.add_argument("--frames", type=int, default=None, help="default: the suite's frames")
    p.add_argument("--python", default=str(ROOT / ".venv-benchmarl/bin/python"))
    p.add_argument("--out", default=str(REFERENCES / reproduce_suites.BENCHMARL_VMAS_FILE))
    a = p.parse_args()
    if not Path(a.python).exists():
        p.error(f"no BenchMARL python at {a.python}: run `bash benchmarks/setup_benchmarl.sh` first")
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    algos = [x.strip() for x in a.algos.split(",") if x.strip()]
    bad = [t for t in tasks if t not in tasks_all]
    if bad:
        p.error(f"unknown task(s) {bad}; the vmas suite has {tasks_all}")
    out = Path(a.out)
    for entry in suite["entries"]:
        if entry["task"] not in tasks or entry["algo"] not in algos:
            continue
        seeds = parse_seeds(a.seeds) if a.seeds else entry["seeds"]
        frames = a.frames or entry["frames"]
        for seed in seeds:
            if (entry["task"], entry["algo"], seed) in done_rows(out):
                print(f"skip {entry['task']} {entry['algo']} seed {seed} (in {out.name})", flush=True)
                continue
            load0, t0 = os.getloadavg()[0], time.perf_counter()
            res = run_one(a.python, entry["task"], entry["algo"], seed, frames, suite_eval_episodes())
            row = {"task": entry["task"], "algo": entry["algo"], "seed": seed, "value": f"{res['greedy_return']:.4f}",
                   "std": f"{res['greedy_return_std']:.4f}", "frames": res["frames"], "wall_s": f"{res['wall_s']:.1f}",
                   "load_before": f"{load0:.2f}", "load_after": f"{os.getloadavg()[0]:.2f}",
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "versions": json.dumps(res["versions"], sort_keys=True)}
            append_row(out, row)
            print(f"{entry['task']} {entry['algo']} seed {seed}: greedy {res['greedy_return']:.2f} "
                  f"({time.perf_counter() - t0:.0f} s, load {load0:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)
    return 0


def suite_eval_episodes() -> int:
    """Evaluation episodes of our side (one episode per BenchMARL evaluation env)."""
    return int(reproduce_suites.VMAS_TRAIN["eval_episodes"])


if __name__ == "__main__":
    sys.exit(main())
