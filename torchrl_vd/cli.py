"""``torchrl-vd`` console script: train, eval, plot, list.

    torchrl-vd train --algo qmix --env vmas/balance --frames 200000 --seed 0 --out runs/x \
        --set lr=1e-3 --set mixer_kwargs.mixing_embed_dim=64
    torchrl-vd eval runs/x [--episodes 32]
    torchrl-vd plot runs/x runs/y [--out curves.png]
    torchrl-vd list
    torchrl-vd reproduce quick [--quick] [--out DIR] [--seeds 0-3] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrl-vd", description="Value decomposition (VDN, QMIX, QTRAN, MAVEN) on TorchRL.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train an algorithm on an environment")
    t.add_argument("--algo", help="algorithm (torchrl-vd list)")
    t.add_argument("--env", help="environment family/task (torchrl-vd list)")
    t.add_argument("--frames", type=int, help="total environment frames")
    t.add_argument("--seed", type=int, help="random seed")
    t.add_argument("--out", help="run directory")
    t.add_argument("--device", help="cpu or cuda")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field (repeatable; dotted keys reach into dicts)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="reload a run's checkpoint and evaluate the greedy policy")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: the run's)")
    e.add_argument("--render", metavar="GIF", default=None, help="also render one greedy episode to a GIF (VMAS)")

    pl = sub.add_parser("plot", help="learning-curve PNG of one or several runs")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", default=None, help="PNG path (default: <first run>/learning_curve.png)")

    sub.add_parser("list", help="registered algorithms and environments")

    from torchrl_vd import reproduce

    reproduce.add_arguments(sub.add_parser("reproduce", help="run a reproduction suite through Ray, compare with "
                                           "published numbers (torchrl_vd/reproduce.py)"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "eval": _eval, "plot": _plot, "list": _list, "reproduce": _reproduce}[args.cmd](args)
    except (ValueError, KeyError, FileNotFoundError, ImportError) as err:
        print(f"torchrl-vd {args.cmd}: error: {err}", file=sys.stderr)
        return 2


def _train(args) -> int:
    from torchrl_vd.train import TrainConfig, train
    from torchrl_vd.train.checkpoint import config_for_resume

    if args.resume:
        cfg = config_for_resume(args.resume)
    else:
        cfg = TrainConfig()
    direct = {"algo": args.algo, "env": args.env, "frames": args.frames, "seed": args.seed, "out_dir": args.out,
              "device": args.device}
    overrides = {k: v for k, v in direct.items() if v is not None}
    if args.quiet:
        overrides["progress"] = False
    if not args.resume and "algo" in overrides:
        cfg = cfg.with_preset(overrides["algo"])
    cfg = cfg.with_overrides(overrides).with_overrides(args.set)
    result = train(cfg)
    print(json.dumps(result.summary, indent=2))
    print(f"run directory: {result.out_dir}")
    return 0


def _eval(args) -> int:
    from torchrl_vd.train.checkpoint import evaluate_run

    out = evaluate_run(args.run_dir, episodes=args.episodes, render=args.render)
    print(json.dumps(out, indent=2))
    return 0


def _plot(args) -> int:
    from torchrl_vd.train.plot import plot_runs

    out = args.out or str(Path(args.run_dirs[0]) / "learning_curve.png")
    print(plot_runs(args.run_dirs, out))
    return 0


def _reproduce(args) -> int:
    from torchrl_vd import reproduce

    return reproduce.run_from_args(args, prog="torchrl-vd reproduce")


def _list(args) -> int:
    from torchrl_vd.envs.registry import env_families
    from torchrl_vd.train.registry import algorithms

    print("Algorithms:")
    for name, spec in sorted(algorithms().items()):
        print(f"  {name:<10} {spec.description}")
    print("\nEnvironments (family/task):")
    for name, fam in sorted(env_families().items()):
        extra = f"  [pip install 'torchrl-vd[{fam.extra}]']" if fam.extra else ""
        print(f"  {name}/  {fam.description}{extra}")
        print(f"      e.g. {', '.join(f'{name}/{e}' for e in fam.examples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
