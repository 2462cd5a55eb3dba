"""MAVEN on the m-step game (m = 10, 105k frames, 5 seeds): the authors' defaults beside an entropy-regularised π_z.

    python benchmarks/bench_maven_defaults.py both OUT [--workers 1] [--seeds 0-4]   # authors s0, entropy s0, ...
    python benchmarks/bench_maven_defaults.py authors OUT               # MavenOptions' defaults (authors' m-step)
    python benchmarks/bench_maven_defaults.py entropy OUT               # tests/test_maven.py ENTROPY_MAVEN

Same game, budget and learner as tests/test_maven.py ``mstep_config`` (GRU 64, RMSprop 5e-4, one update of 32
sequences per episode, ε 1 → 0.01 over 100 frames, the GRU discriminator ``rnn_discrim``). One thread per run.
Each finished run appends a row to ``OUT/rows.jsonl``; a rerun skips the runs already there (resumable).
Each row: the run's ``final_eval_return`` (its ``eval_z``: uniform z for the authors', π_z's mode for entropy),
the greedy return of every z (``per_z``), of π_z's mode (``mode_return``) and their mean (``uniform_mean``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_maven as tm  # noqa: E402  (the shared m-step setup)

from torchrl_vd.train.config import parse_seeds  # noqa: E402

CONFIGS = {"authors": {"last_action": True}, "entropy": tm.ENTROPY_MAVEN}
FRAMES = 105_000  # the authors' m-step t_max (AnujMahajanOxf/MAVEN)


def _finished(rows_file: Path) -> list[dict]:
    if not rows_file.exists():
        return []
    return [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["both", *CONFIGS], nargs="?", default="both")
    parser.add_argument("out", nargs="?", default=None)
    parser.add_argument("--workers", type=int, default=1, help="runs at once (one process each)")
    parser.add_argument("--seeds", default="0-4", help="seeds to run: a range '0-4' or a list '3,4'")
    args = parser.parse_args()
    out = Path(args.out or f"runs/maven-mstep-{args.which}")
    out.mkdir(parents=True, exist_ok=True)
    rows_file = out / "rows.jsonl"
    names = list(CONFIGS) if args.which == "both" else [args.which]
    done = {(r["config"], r["seed"]) for r in _finished(rows_file)}
    seeds = parse_seeds(args.seeds)
    todo = [(name, s) for s in seeds for name in names if (name, s) not in done]
    # one job per run; each row is written as soon as its run ends, so a stopped driver loses at most the runs
    # in flight
    for start in range(0, len(todo), args.workers):
        chunk = todo[start:start + args.workers]
        jobs = [("maven", 10, s, FRAMES, out / f"{name}-{s}", CONFIGS[name]) for name, s in chunk]
        for job in jobs:  # a run stopped half-way has no row: start it again (the trainer refuses a used run dir)
            shutil.rmtree(job[4], ignore_errors=True)
        rows = tm._run_many(jobs) if len(jobs) > 1 else [tm._run_job(jobs[0])]
        stopped = False
        with rows_file.open("a") as f:
            for (name, _), row in zip(chunk, rows):
                if row["frames"] < FRAMES:  # stopped by a signal (the trainer checkpoints and returns): no row
                    stopped = True
                    continue
                f.write(json.dumps({"config": name, **row}) + "\n")
                print(json.dumps({"config": name, **row}), flush=True)
        if stopped:
            print("stopped by a signal: rerun the same command to continue", flush=True)
            return
    rows = _finished(rows_file)
    for name in names:
        mine = [r for r in rows if r["config"] == name]
        for key in ("greedy_return", "mode_return", "uniform_mean"):
            values = [r[key] for r in mine]
            if values:
                print(f"{name}: {key} per seed {values}, median {statistics.median(values)}", flush=True)


if __name__ == "__main__":
    main()
