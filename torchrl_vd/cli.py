"""``torchrl-vd`` console script: train, eval, plot, list, reproduce, export.

    torchrl-vd train --algo qmix --env vmas/balance --frames 200000 --seed 0 --out runs/x \
        --set lr=1e-3 --set mixer_kwargs.mixing_embed_dim=64
    torchrl-vd eval runs/x [--episodes 32]
    torchrl-vd plot runs/x runs/y [--out curves.png]
    torchrl-vd list
    torchrl-vd reproduce quick [--quick] [--out DIR] [--seeds 0-3] [--workers N] [--dry-run]
    torchrl-vd export runs/reproduce/quick [RUN_DIR ...] --format marl-eval --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torchrl_vd.train.run_lock import RunDirectoryLocked


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrl-vd", description=(
        "Cooperative multi-agent value decomposition (VDN, QMIX, QTRAN, MAVEN, Weighted QMIX, QPLEX, IQL) on TorchRL."))
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train an algorithm on an environment",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train an algorithm. Every TrainConfig field is a flag below (or --set KEY=VALUE); "
                                   "each algorithm's typed options are listed at the end (--set mixer.NAME=VALUE, "
                                   "--set loss.NAME=VALUE).",
                       epilog=_algo_options_help())
    t.add_argument("--out", dest="out_dir", help="run directory (= --out-dir)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field (repeatable; dotted keys reach into dicts: mixer.NAME, loss.NAME)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--benchmarl", nargs="+", metavar="SOURCE",
                   help="start from a BenchMARL config (QMIX, VDN, IQL on vmas/* or pettingzoo/*): its conf directory "
                        "or yaml files, a fine-tuned config.yaml or a Hydra run directory, and overrides as on its "
                        "command line (algorithm=qmix task=vmas/balance experiment.gamma=0.9); the flags and --set "
                        "apply after the import (docs/COMING_FROM_BENCHMARL.md)")
    _add_config_flags(t)

    e = sub.add_parser("eval", help="reload a run's checkpoint and evaluate the greedy policy")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: the run's)")
    e.add_argument("--render", metavar="GIF", default=None, help="also render one greedy episode to a GIF (VMAS)")
    e.add_argument("--device", default=None, help="where to evaluate (default: the run's device), e.g. cpu for a "
                   "run trained on a GPU")

    pl = sub.add_parser("plot", help="learning-curve PNG of one or several runs")
    pl.add_argument("run_dirs", nargs="+")
    pl.add_argument("--out", default=None, help="PNG path (default: <first run>/learning_curve.png)")

    sub.add_parser("list", help="registered algorithms and environments")

    from torchrl_vd.reproduce.cli import add_arguments as add_reproduce_arguments  # no torch, numpy or Ray

    add_reproduce_arguments(sub.add_parser("reproduce", help="run a reproduction suite through Ray, compare with "
                                           "published numbers"))
    _add_export_parser(sub)
    return p


def _add_export_parser(sub) -> None:
    """``torchrl-vd export PATH... --format marl-eval --out FILE.json`` (torchrl_vd/export/; no torch)."""
    from torchrl_vd.export import FORMATS

    x = sub.add_parser("export", help="write finished runs in another tool's results format (marl-eval JSON)",
                       description="Write finished runs in another tool's results format. marl-eval: one JSON "
                                   "env -> task -> algorithm -> seed_<k> -> step_<i> of the greedy evaluations, and "
                                   "absolute_metrics from the final one (torchrl_vd/export/marl_eval.py).")
    x.add_argument("paths", nargs="+", metavar="RUN_OR_SUITE_DIR",
                   help="run directories, or folders holding runs at any depth (a suite's OUT/<suite>, a --seeds run)")
    x.add_argument("--format", dest="export_format", choices=sorted(FORMATS), default="marl-eval",
                   help="results format (default: marl-eval)")
    x.add_argument("--out", dest="export_out", required=True, metavar="FILE.json", help="file to write")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "eval": _eval, "plot": _plot, "list": _list, "reproduce": _reproduce,
                "export": _export}[args.cmd](args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError, MemoryError, FloatingPointError,
            RunDirectoryLocked) as err:  # the library's own errors name their fix: no traceback
        print(f"torchrl-vd {args.cmd}: error: {err}", file=sys.stderr)
        return 2


def _config_fields():
    import dataclasses

    from torchrl_vd.train.config import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if f.name not in ("resume", "out_dir")]


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--eps-frames`` for ``eps_frames``): its docstring, its choices (``Literal``
    fields; registered names for ``--algo``) and its default as help. A field left out takes its preset for the
    algorithm and env family (docs/PRESETS.md), else this default."""
    import dataclasses
    import typing

    from torchrl_vd.train.algos import algorithms
    from torchrl_vd.train.config import TrainConfig
    from torchrl_vd.train.options import field_docs

    docs, hints = field_docs(TrainConfig), typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("TrainConfig fields (values parsed as JSON where possible; a field left out "
                                      "takes its preset for the algorithm and env family, else the default)")
    for f in _config_fields():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        doc = " ".join(docs.get(f.name, "").split()).replace("%", "%%")
        choices = sorted(algorithms()) if f.name == "algo" else _choices(hints[f.name])
        listed = f" Choices: {', '.join(map(str, choices))}." if choices else ""
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", metavar="V", default=None,
                           help=f"{doc}{listed} (default: {json.dumps(default) if not isinstance(default, str) else default})")


def _choices(hint) -> list:
    """The values a ``Literal`` type (also inside ``X | Literal[...]`` or ``tuple[Literal[...], ...]``) allows."""
    import typing

    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [c for arg in typing.get_args(hint) if arg is not Ellipsis for c in _choices(arg)]


def _algo_options_help() -> str:
    """Each algorithm's typed mixer/loss options with their docstrings and defaults (``train --help``)."""
    import dataclasses

    from torchrl_vd.train.algos import algorithms
    from torchrl_vd.train.options import field_docs

    lines = ["algorithm options (--set mixer.NAME=VALUE / --set loss.NAME=VALUE):"]
    for name, spec in sorted(algorithms().items()):
        lines.append(f"  {name}: {spec.description}")
        for part, cls in (("mixer", spec.mixer_options), ("loss", spec.loss_options)):
            docs = field_docs(cls)
            for f in dataclasses.fields(cls):
                doc = " ".join(docs.get(f.name, "").split())
                lines.append(f"    {part}.{f.name} = {f.default!r}  {doc}")
    return "\n".join(lines)


def config_from_args(args):
    """The ``TrainConfig`` of ``torchrl-vd train`` arguments: the flags, then ``--set`` (the later wins), on the
    saved config of ``--resume``, else on the BenchMARL import of ``--benchmarl``, else on the presets exactly as
    ``TrainConfig(...)`` applies them."""
    from torchrl_vd.train.config import TrainConfig, split_assignment

    overrides = {f.name: getattr(args, f"cfg_{f.name}") for f in _config_fields()
                 if getattr(args, f"cfg_{f.name}") is not None}
    if args.out_dir is not None:
        overrides["out_dir"] = args.out_dir
    if args.quiet:
        overrides["progress"] = False
    overrides.update(split_assignment(a) for a in args.set)
    if args.resume and getattr(args, "benchmarl", None):
        raise ValueError("--resume continues a run with its saved config; --benchmarl starts a new one: give one.")
    if args.resume:  # the saved config, complete; the overrides on top
        from torchrl_vd.train.resume import config_for_resume

        return config_for_resume(args.resume).with_overrides(overrides)
    if getattr(args, "benchmarl", None):
        return TrainConfig.from_benchmarl(*args.benchmarl).with_overrides(overrides)
    return TrainConfig().with_overrides(overrides)


def _train(args) -> int:
    import warnings

    from torchrl_vd.train.benchmarl_import import BenchmarlImportWarning
    from torchrl_vd.train.loop import train

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # the import's warnings as plain lines, not source lines
            warnings.simplefilter("always", BenchmarlImportWarning)
            cfg = config_from_args(args)
    finally:  # also when the config is refused: the warnings may say why
        for w in caught:
            if issubclass(w.category, BenchmarlImportWarning):
                print(f"torchrl-vd train: warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    result = train(cfg)
    print(json.dumps(result.summary, indent=2))
    print(f"run directory: {result.out_dir}")
    return 0


def _eval(args) -> int:
    from torchrl_vd.train.evaluation import evaluate_run

    out = evaluate_run(args.run_dir, episodes=args.episodes, render=args.render, device=args.device)
    print(json.dumps(out, indent=2))
    return 0


def _plot(args) -> int:
    from torchrl_vd.train.plot import plot_runs

    out = args.out or str(Path(args.run_dirs[0]) / "learning_curve.png")
    print(plot_runs(args.run_dirs, out))
    return 0


def _reproduce(args) -> int:
    from torchrl_vd.reproduce.cli import run_from_args

    return run_from_args(args, prog="torchrl-vd reproduce")


def _export(args) -> int:
    from torchrl_vd.export import FORMATS, describe

    data = FORMATS[args.export_format](args.paths, args.export_out)
    print(describe(data))
    print(f"wrote {args.export_out}")
    return 0


def _list(args) -> int:
    from torchrl_vd.envs.registry import env_families
    from torchrl_vd.train.algos import algorithms

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
