"""MAVEN on the m-step game (m = 10, 105k frames, 5 seeds): the authors' defaults beside this library's earlier ones.

    python benchmarks/bench_maven_defaults.py authors    # MavenOptions' defaults (the authors' m-step config)
    python benchmarks/bench_maven_defaults.py earlier    # tests/test_maven.py EARLIER_MAVEN

Same game, budget and learner as tests/test_maven.py ``mstep_config`` (GRU 64, RMSprop 5e-4, one update of 32
sequences per episode, ε 1 → 0.01 over 100 frames, the GRU discriminator ``rnn_discrim``). One process per core.
Each row: the run's ``final_eval_return`` (its ``eval_z``: uniform z for the authors', π_z's mode for the earlier),
the greedy return of every z (``per_z``), of π_z's mode (``mode_return``) and their mean (``uniform_mean``).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_maven as tm  # noqa: E402  (the shared m-step setup)

CONFIGS = {"authors": {"last_action": True}, "earlier": tm.EARLIER_MAVEN}


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "authors"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else f"runs/maven-mstep-{which}")
    jobs = [("maven", 10, s, 105_000, out / f"maven-{s}", CONFIGS[which]) for s in range(5)]
    rows = tm._run_many(jobs)
    for r in rows:
        print(json.dumps(r), flush=True)
    for key in ("greedy_return", "mode_return", "uniform_mean"):
        values = [r[key] for r in rows]
        print(f"{which}: {key} per seed {values}, median {statistics.median(values)}", flush=True)


if __name__ == "__main__":
    main()
