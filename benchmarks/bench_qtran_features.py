"""QTRAN on its 3x3 matrix game, 5 seeds: Q_jt on the agents' hidden features (default, pymarl's) vs observations.

    python benchmarks/bench_qtran_features.py [OUT_DIR]

Same game, budget and learner as tests/test_qtran.py ``MATRIX`` (uniform exploration ε = 1, 50 batches of 256
one-step episodes, 20 updates of 256 per batch, Adam 2e-3, hard target every 100 updates, agents MLP 32).
Each row: algorithm, features, seed, the greedy joint action, its payoff (8 = optimal (A, A)), max |Q_jt − payoff|
over the 9 joint actions and whether IGM holds; then the seeds solving the game per setting (payoff 8, Q_jt within
0.5 of the payoff, IGM holds: ``check_qtran_solves``' criterion). One torch thread, one run at a time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import setup  # noqa: E402

setup()
import test_qtran as tq  # noqa: E402  (the shared matrix-game setup)

import torchrl_vd as vd  # noqa: E402

FEATURES = ("hidden", "obs")


def run(algo: str, features: str, seed: int, out: Path) -> dict:
    result = vd.train(vd.TrainConfig(algo=algo, seed=seed, out_dir=str(out), loss_kwargs={"features": features},
                                     **tq.MATRIX))
    report = vd.check_igm(result.loss_module, result.env.reset()[:1])
    greedy = tuple(report.local_argmax[0].tolist())
    payoff = tq.PAYOFF[greedy].item()
    err = (report.joint_q[0] - tq.PAYOFF).abs().max().item()
    holds = bool(report.holds.all())
    return {"algo": algo, "features": features, "seed": seed, "greedy": list(greedy), "payoff": payoff,
            "max_err": round(err, 3), "igm_holds": holds, "solved": payoff == 8.0 and err < 0.5 and holds}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/qtran-features")
    rows = []
    for algo in ("qtran", "qtran-alt"):
        for features in FEATURES:
            for seed in range(5):
                d = out / f"{algo}-{features}-{seed}"
                row = run(algo, features, seed, d)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| algo | features | seeds solving (payoff 8, Q_jt within 0.5, IGM) | greedy payoff per seed |")
    print("|---|---|---|---|")
    for algo in ("qtran", "qtran-alt"):
        for features in FEATURES:
            sel = [r for r in rows if r["algo"] == algo and r["features"] == features]
            print(f"| {algo} | {features} | {sum(r['solved'] for r in sel)}/5 | {[r['payoff'] for r in sel]} |")


if __name__ == "__main__":
    main()
