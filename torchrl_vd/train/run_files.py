"""A run directory's files and the progress bar: config.json, metrics.csv (one row per collected batch,
a fixed header), optional TensorBoard / W&B, and the guard that never overwrites a finished run silently.

This module owns the format, both ways: :class:`RunFiles` writes it, ``read_config`` / ``read_summary`` /
``read_metrics`` / ``read_metric_columns`` read it (the reproduction harness, the plots)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from pathlib import Path

from torchrl_vd.keys import BATTLE_WON, DONE, EPISODE_REWARD, NEXT

RUN_FILES = ("config.json", "metrics.csv", "summary.json", "checkpoint.pt", "checkpoint.prev.pt")


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so that a rename inside it survives a power loss (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # file systems that cannot fsync a directory: the rename itself is still atomic
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` so that a crash leaves the old content or the new one, never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def check_run_dir(out_dir: Path, resume: str | None) -> None:
    """Refuse to write a new run into a directory that already holds one (unless it is being resumed).

    A second ``train()`` into the same ``out_dir`` would silently replace its metrics and checkpoint.
    """
    if resume is not None and Path(resume).resolve() == Path(out_dir).resolve():
        return
    found = [name for name in RUN_FILES if (Path(out_dir) / name).exists()]
    if found:
        raise FileExistsError(
            f"{out_dir} already holds a run ({', '.join(found)}); not overwriting it. Continue it with "
            f"`torchrl-vd train --resume {out_dir}` (TrainConfig(resume=...)), or choose a new directory with "
            "--out (out_dir=...), or delete the old one."
        )


class RunFiles:
    """metrics.csv (one row per batch, a fixed header), config.json, summary.json, optional TensorBoard."""

    def __init__(self, out_dir: Path, cfg, columns: list[str], keep_rows: int | None = None):
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        self.columns = columns
        path = out_dir / "metrics.csv"
        if keep_rows is not None:
            # resuming: keep the rows up to the checkpoint, drop those logged after it (a run killed after its
            # last checkpoint logged a few more), rewritten atomically: a kill now loses nothing
            kept: list[dict] = []
            if path.exists():
                with open(path, newline="") as f:
                    kept = list(csv.DictReader(f))[:keep_rows]
            if len(kept) < keep_rows:
                warnings.warn(f"{path} holds {len(kept)} rows, the checkpoint counts {keep_rows}: the missing rows "
                              "are lost (the file was damaged or replaced); training continues.", RuntimeWarning)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
            atomic_write_text(path, buf.getvalue())
            self._csv = open(path, "a", newline="")
        else:
            self._csv = open(path, "w", newline="")
        self._writer = csv.DictWriter(self._csv, fieldnames=columns, extrasaction="ignore")
        if keep_rows is None:
            self._writer.writeheader()
        self.loggers = []  # torchrl loggers besides metrics.csv
        if "tensorboard" in cfg.loggers:
            from torchrl.record.loggers import TensorboardLogger

            self.loggers.append(TensorboardLogger(exp_name="tb", log_dir=str(out_dir)))
        if "wandb" in cfg.loggers:
            try:
                import wandb  # noqa: F401
            except ImportError as err:
                raise ImportError("loggers=['wandb'] needs W&B: pip install 'torchrl-vd[wandb]'") from err
            from torchrl.record.loggers import WandbLogger

            self.loggers.append(WandbLogger(exp_name=out_dir.name, offline=True, save_dir=str(out_dir),
                                            config=cfg.to_dict()))

    def log(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._csv.flush()
        for logger in self.loggers:
            for k, v in row.items():
                if k != "frames" and isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                    logger.log_scalar(k, v, step=int(row["frames"]))

    def sync(self) -> None:
        """Force metrics.csv to disk (before a checkpoint that counts its rows)."""
        self._csv.flush()
        os.fsync(self._csv.fileno())

    def write_summary(self, summary: dict) -> None:
        """summary.json: frames, wall time, frames/s, final greedy evaluation return."""
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2))

    def close(self) -> None:
        self._csv.close()


def _fmt(v):
    """A metrics.csv cell: floats to 6 significant digits; a value not measured (None, NaN) an empty cell."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return "" if v is None else v


METRIC_COLUMNS = ["frames", "updates", "skipped_updates", "eps", "loss", "train_return", "episodes", "eval_return",
                  "igm_violation_rate", "igm_value_gap", "fps", "time", "collect_time", "update_time", "cpu_time",
                  "rss_mb"]
WIN_RATE_COLUMNS = ["win_rate", "eval_win_rate"]
"""Appended for envs that mark won episodes (``EnvInfo.has_battle_won``): training and greedy win rates."""


def metric_columns(info, algo_columns) -> list[str]:
    """metrics.csv's columns: :data:`METRIC_COLUMNS`, the win rates where the env has them, the algorithm's."""
    base = METRIC_COLUMNS + (WIN_RATE_COLUMNS if info.has_battle_won else [])
    return base + [c for c in algo_columns if c not in base]


def metric_row(batch, *, frames: int, updates: int, eps: float, loss, evaluation: dict, fps: float, elapsed: float,
               times: tuple[float, float, float], cpu_time: float, extra: dict | None = None,
               skipped_updates: int = 0) -> dict:
    """One metrics.csv row for a collected ``batch [num_envs, T]``: its finished episodes' mean return, the
    mean ``loss`` of the batch's updates (a tensor, None without updates), ``evaluation`` (the eval columns)
    and where the wall time went (``times`` = batch start, collected, updated; perf_counter seconds)."""
    done = batch[NEXT, DONE].squeeze(-1)  # [num_envs, T]
    ep_returns = batch[NEXT, EPISODE_REWARD].squeeze(-1)[done]  # [episodes]
    t_iter, t_collected, t_updated = times
    if (NEXT, BATTLE_WON) in batch.keys(True):  # SMAX: the share of the batch's finished episodes won
        won = batch[NEXT, BATTLE_WON].squeeze(-1)[done]  # [episodes]
        extra = {"win_rate": won.float().mean().item() if won.numel() else float("nan"), **(extra or {})}
    return {
        "frames": frames,
        "updates": updates,
        "skipped_updates": skipped_updates,
        "eps": eps,
        "loss": loss.item() if loss is not None else float("nan"),
        "train_return": ep_returns.mean().item() if ep_returns.numel() else float("nan"),
        "episodes": int(ep_returns.numel()),
        **evaluation,
        "fps": fps,
        "time": elapsed,
        "collect_time": t_collected - t_iter,
        "update_time": t_updated - t_collected,
        "cpu_time": cpu_time,
        "rss_mb": rss_mb(),
        **(extra or {}),
    }


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; nan elsewhere), for long-run health checks."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


class Progress:
    """tqdm bar with frames, frames/s, recent return, loss, ε and the last evaluation's IGM gap
    (``igm=violation rate/value gap``) (no-op when ``progress=False``)."""

    def __init__(self, cfg, total: int, initial: int = 0):
        self.bar, self.igm = None, ""
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="frames", desc=f"{cfg.algo} {cfg.env}",
                            dynamic_ncols=True)

    def update(self, n: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if not math.isnan(row.get("igm_violation_rate", math.nan)):  # the last evaluation's IGM gap
                self.igm = f"{row['igm_violation_rate']:.2f}/{row['igm_value_gap']:.3g}"
            extra = {"igm": self.igm} if self.igm else {}
            self.bar.set_postfix(ret=f"{row['train_return']:.3g}", loss=f"{row['loss']:.3g}", eps=f"{row['eps']:.2f}",
                                 fps=f"{row['fps']:.0f}", **extra, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------------------------- readers
# The run directory's format is written above and read here, so a reader never guesses at a writer's details.
def read_config(run_dir: str | Path) -> dict | None:
    """config.json as written by :class:`RunFiles` (``TrainConfig.to_dict()``, tuples as lists); None without one."""
    path = Path(run_dir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def read_summary(run_dir: str | Path) -> dict | None:
    """summary.json (frames, wall time, frames/s, the final greedy evaluation); None while the run has none."""
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def _number(cell: str | None) -> float:
    """One metrics.csv cell as a float: an empty or unparseable cell (a column not logged that batch) is nan."""
    if cell in ("", None):
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return math.nan


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """metrics.csv's rows, every cell a float (empty or unparseable cells are nan).

    Raises FileNotFoundError when ``run_dir`` has no metrics.csv.
    """
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a torchrl-vd run directory?")
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_metric_columns(run_dir: str | Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats, one list per header name, in row order (see :func:`read_metrics`)."""
    cols: dict[str, list[float]] = {}
    for row in read_metrics(run_dir):
        for k, v in row.items():
            cols.setdefault(k, []).append(v)
    return cols
