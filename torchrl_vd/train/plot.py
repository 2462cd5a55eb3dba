"""Figures: learning curves from run directories (metrics.csv), and the helpers the tutorials draw with.

:func:`save_curves` draws x-y curves (optional shaded bands, horizontal reference lines) into a PNG;
:func:`new_figure` / :func:`savefig` are its two halves, for figures of another kind (tutorial 03's
heat maps). Figures are made with ``matplotlib.figure.Figure``, not pyplot, so drawing a PNG never
switches the caller's matplotlib backend or leaves figures open; matplotlib is imported only here.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

from torchrl_vd.train.run_files import read_metric_columns

DPI = 110  # every PNG the library and the tutorials write


def read_metrics(run_dir: str | Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats (empty cells -> nan): :func:`torchrl_vd.train.run_files.read_metric_columns`."""
    return read_metric_columns(run_dir)


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.4, 3.8), **subplots_kw):
    """``(fig, axes)``: a constrained-layout ``Figure`` of ``nrows x ncols`` axes, drawn without pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **subplots_kw)


def savefig(fig, path: str | Path, *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (its folder created) and release it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: pyplot holds it until closed
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def save_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    bands: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
    hlines: Mapping[str, float] | None = None,
    styles: Mapping[str, dict] | None = None,
    ylim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (6.4, 3.8),
) -> Path:
    """Curves ``label -> [(x, y), ...]`` in one PNG at ``path``; returns the path.

    Args:
        series: one line per label, in order (colors C0, C1, ...); an empty list draws nothing.
        path: the PNG to write (its folder is created).

    Keyword Args:
        xlabel / ylabel / title: axis labels and title.
        bands: ``label -> [(x, low, high), ...]``: a shaded band behind that label's line, in its color
            (e.g. the spread over seeds around a median).
        hlines: ``label -> y``: horizontal reference lines (a random policy's return, an optimum).
        styles: ``label -> matplotlib line keywords`` (``color``, ``ls``, ``marker``, ...), per series.
        ylim: y-axis limits.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> png = save_curves({"vdn": [(0, 0.0), (100, 2.5)], "qmix": [(0, 0.1), (100, 3.0)]},
        ...                   Path(tempfile.mkdtemp()) / "figs" / "curves.png", xlabel="frames",
        ...                   ylabel="return", hlines={"random policy": -0.2},
        ...                   bands={"qmix": [(0, 0.0, 0.2), (100, 2.0, 4.0)]})
        >>> png.name, png.read_bytes()[:4] == b"\\x89PNG"
        ('curves.png', True)
    """
    fig, ax = new_figure(figsize=figsize)
    styles, bands = styles or {}, bands or {}
    for i, (label, points) in enumerate(series.items()):
        style = {"color": f"C{i % 10}", **styles.get(label, {})}
        if points:
            ax.plot(*zip(*points), label=label, **style)
        if bands.get(label):
            x, low, high = zip(*bands[label])
            ax.fill_between(x, low, high, color=style["color"], alpha=0.2, lw=0)
    for (label, y), ls in zip((hlines or {}).items(), ("--", ":", "-.", (0, (5, 5)))):
        ax.axhline(y, color="gray", ls=ls, lw=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return savefig(fig, path)


def _overlay(run_dirs, columns) -> tuple[dict, dict]:
    """``(series, styles)`` of ``columns`` = ``[(column, kind, style), ...]`` for each run, one color per run."""
    series, styles = {}, {}
    for i, run in enumerate(run_dirs):
        m = read_metrics(run)
        name, frames = Path(run).name, m.get("frames", [])
        for column, kind, style in columns:
            label = f"{name} ({kind})" if f"{name} ({kind})" not in series else f"{name} #{i + 1} ({kind})"
            series[label] = [(f, r) for f, r in zip(frames, m.get(column, [])) if not math.isnan(r)]
            styles[label] = {"color": f"C{i % 10}", **style}
    return series, styles


def plot_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Overlay the training return (line) and greedy evaluations (markers) of several runs into a PNG.

    When the runs logged the IGM gap at their evaluations (``igm_violation_rate``, ``igm_value_gap``), a
    second PNG beside it, ``<out stem>_igm.png``, overlays both (violation rate solid, value gap dashed)."""
    series, styles = _overlay(run_dirs, (("train_return", "train, ε-greedy", {"alpha": 0.8}),
                                         ("eval_return", "greedy eval", {"ls": "--", "marker": "o"})))
    path = save_curves(series, out, xlabel="frames", ylabel="episode return", title=title or "learning curve",
                       styles=styles, figsize=(7, 4.2))
    igm, igm_styles = _overlay(run_dirs, (("igm_violation_rate", "IGM violation rate", {"marker": "o"}),
                                          ("igm_value_gap", "IGM value gap", {"ls": "--", "marker": "x"})))
    if any(igm.values()):
        save_curves(igm, path.with_name(f"{path.stem}_igm.png"), xlabel="frames",
                    ylabel="violation rate / value gap", title=f"{title or 'learning curve'}: IGM gap at evaluations",
                    styles=igm_styles, figsize=(7, 4.2))
    return path


def draw_beside(jobs: Sequence[tuple[Sequence[str | Path], str | Path, str]]) -> Callable[[], dict[str, str]]:
    """Start drawing ``plot_runs(runs, png, title)`` for every ``(runs, png, title)`` of ``jobs`` in a forked
    child (:func:`~torchrl_vd.train.threads.beside`), so the PNGs cost no wall time while the caller runs its
    final evaluation; returns ``finish()``, which waits for them and returns ``{png: error}`` for those that
    failed (drawn again in this process to name the error; empty when all were written). Where forking is not
    safe the PNGs are drawn at once, here. Matplotlib is imported (about 0.3-0.5 s) only by the drawing code.
    """
    from torchrl_vd.train.threads import beside

    def draw_all() -> None:
        for runs, png, title in jobs:
            plot_runs(list(runs), png, title=title)

    try:
        wait = beside(draw_all)
    except Exception:  # drawn here and failed: finish() draws each again to name its error
        wait = None

    def finish() -> dict[str, str]:
        try:
            if wait is not None:
                wait()
                return {}
        except RuntimeError:  # the child failed (its traceback is on stderr): draw again below to name why
            warnings.warn("drawing the learning curves in a forked child failed; drawing them here",
                          RuntimeWarning, stacklevel=2)
        errors = {}
        for runs, png, title in jobs:
            try:
                plot_runs(list(runs), png, title=title)
            except Exception as err:  # a plotting failure must never lose a finished run
                errors[str(png)] = repr(err)
        return errors

    return finish
