"""The ``torchrl-vd reproduce`` / ``python -m torchrl_vd.reproduce`` command line.

    torchrl-vd reproduce quick                           # tiny smoke suite (under a minute on 2 cores)
    torchrl-vd reproduce mpe --out runs/reproduce        # MARLlib's MPE table: 8 (task, algo) x 4 seeds x 2M frames
    torchrl-vd reproduce vmas --seeds 0-4 --workers 16
    torchrl-vd reproduce smax --dry-run                  # the plan and the references; nothing trained or written
    python -m torchrl_vd.reproduce vmas --quick          # a smoke pass of a long suite, in OUT/vmas-quick
    torchrl-vd reproduce quick --export-marl-eval quick.json   # also the suite's runs as marl-eval JSON

Importing this module imports no torch, numpy or Ray (the top-level ``torchrl-vd`` parser is built from
:func:`add_arguments`): the suite's machinery is imported by :func:`run_from_args` only.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from torchrl_vd.reproduce import suites

DESCRIPTION = "Run a reproduction suite through Ray, continue it where it stopped, and compare with published numbers."


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``reproduce`` command line: SUITE [--quick] [--out DIR] [--seeds ...] [--workers N] [--dry-run]."""
    from torchrl_vd.train.config import SEEDS_FORMS

    p.add_argument("suite", help=f"suite name ({', '.join(sorted(suites.SUITES))})")
    p.add_argument("--quick", action="store_true", help="the suite's short smoke version (in OUT/<suite>-quick)")
    p.add_argument("--out", default="runs/reproduce", help="output root (default: runs/reproduce)")
    p.add_argument("--seeds", default=None, help=f"replace every entry's seeds: {SEEDS_FORMS}")
    p.add_argument("--tasks", default=None, help="only these tasks of the suite, comma-separated (default: all)")
    p.add_argument("--algos", default=None, help="only these algorithms, comma-separated (default: all)")
    p.add_argument("--frames", type=int, default=None,
                   help="replace every entry's frame budget (a shorter study; use a fresh --out)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs at a time (local Ray: its CPUs; default: every core, or the whole cluster)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned runs (trained, resumed or skipped) and every entry's resolved reference; "
                        "train and write nothing")
    p.add_argument("--export-marl-eval", metavar="FILE.json", default=None,
                   help="when every run has finished, also write the selected runs as marl-eval JSON (the greedy "
                        "evaluations in the env's units, not the table's metric or scale; = torchrl-vd export "
                        "OUT/<suite> --format marl-eval --out FILE.json)")
    return p


def _names(text: str | None) -> list[str] | None:
    """A comma-separated ``--tasks`` / ``--algos`` value as a list (None: all)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _command(args: argparse.Namespace, prog: str) -> str:
    """The command line that reruns (continues) this invocation, for RESULTS.md and the interrupt message."""
    return shlex.join([*shlex.split(prog), args.suite, *(["--quick"] if args.quick else []), "--out", args.out,
                       *(["--seeds", args.seeds] if args.seeds is not None else []),
                       *(["--tasks", args.tasks] if args.tasks else []), *(["--algos", args.algos] if args.algos else []),
                       *(["--frames", str(args.frames)] if args.frames is not None else []),
                       *(["--workers", str(args.workers)] if args.workers is not None else []),
                       *(["--export-marl-eval", args.export_marl_eval] if _export_path(args) else [])])


def _export_path(args: argparse.Namespace) -> str | None:
    """``--export-marl-eval``'s file (None when not asked; a namespace built without the flag counts as not asked)."""
    return getattr(args, "export_marl_eval", None)


def run_from_args(args: argparse.Namespace, prog: str) -> int:
    """Run the parsed command line; 0 when every run succeeded (or the dry run planned), 1 when some failed."""
    from torchrl_vd.train.config import parse_seeds

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1 (got {args.workers}).")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    selection = {"quick": args.quick, "seeds": seeds, "tasks": _names(args.tasks), "algos": _names(args.algos),
                 "frames": args.frames}
    if getattr(args, "dry_run", False):
        from torchrl_vd.reproduce.run import dry_run

        dry_run(args.suite, args.out, **selection)
        if _export_path(args):
            print(f"would write the runs as marl-eval JSON to {_export_path(args)} once every run has finished")
        return 0
    from torchrl_vd.reproduce.run import run_suite

    command = _command(args, prog)
    try:
        report = run_suite(args.suite, args.out, workers=args.workers, command=command, **selection)
    except KeyboardInterrupt:
        print(f"interrupted: rerun `{command}` to continue (finished runs are kept, runs resume from their last "
              "checkpoint)", file=sys.stderr)
        return 130
    if report.failures:
        if _export_path(args):
            print(f"not writing {_export_path(args)}: {len(report.failures)} run(s) failed; rerun `{command}`",
                  file=sys.stderr)
        return 1
    if _export_path(args):
        from torchrl_vd.export.marl_eval import describe, write_marl_eval

        data = write_marl_eval([run.run_dir for run, _, _ in report.planned], _export_path(args))
        print(f"{describe(data)}\nwrote {_export_path(args)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m torchrl_vd.reproduce SUITE ...``."""
    p = add_arguments(argparse.ArgumentParser(prog="python -m torchrl_vd.reproduce", description=DESCRIPTION))
    args = p.parse_args(argv)
    try:
        return run_from_args(args, p.prog)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2


__all__ = ["add_arguments", "main", "run_from_args"]
