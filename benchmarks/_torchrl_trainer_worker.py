"""Runs pytorch/rl's ``sota-implementations/multiagent_trainer/train.py`` unmodified (its Hydra entry point, the
command line after ``--`` as its own) and prints ``RESULT {json}`` with the seconds ``Trainer.train()`` took.

The timing wraps ``torchrl.trainers.Trainer.train`` from outside (the file and its yaml are not touched), as
``_benchmarl_worker.py`` times BenchMARL with a callback. Used by ``benchmarks/peers.py --pair torchrl``.

    python benchmarks/_torchrl_trainer_worker.py RL_SRC -- --config-name qmix collector.total_frames=60000 ...
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from pathlib import Path


def main() -> None:
    src, rest = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
    script = src / "sota-implementations" / "multiagent_trainer" / "train.py"
    if not script.exists():
        raise SystemExit(f"no {script}: pass a pytorch/rl checkout (benchmarks/setup_peers.sh torchrl)")
    from torchrl.trainers import Trainer

    train, spent = Trainer.train, {}

    def timed_train(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return train(self, *args, **kwargs)
        finally:
            spent["loop_s"] = time.perf_counter() - t0
            spent["frames"] = int(getattr(self, "collected_frames", 0))

    Trainer.train = timed_train
    sys.argv = [str(script), *rest]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:  # hydra exits after the task
        if stop.code not in (None, 0):
            raise
    print("RESULT " + json.dumps(spent), flush=True)


if __name__ == "__main__":
    main()
