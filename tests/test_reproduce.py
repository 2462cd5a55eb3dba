"""``torchrl-vd reproduce`` (torchrl_vd/reproduce/): statistics on known numbers, suites, references (package
data), the dry run, and the quick suite end to end on a local Ray instance (first run, rerun, interrupted suite)."""

import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
stats = pytest.importorskip("scipy.stats")

import torchrl_vd as vd  # noqa: E402
from torchrl_vd import cli  # noqa: E402
from torchrl_vd import reproduce as rp  # noqa: E402
from torchrl_vd.reproduce import suites as reproduce_suites  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ statistics
def test_t_interval_on_known_numbers():
    mean, half = rp.t_interval([1, 2, 3, 4])  # s = 1.2910, t(0.975, 3) = 3.1824: 3.1824 * 1.2910 / 2
    assert mean == 2.5
    assert half == pytest.approx(2.0543, abs=1e-4)
    assert rp.t_interval([3.0])[0] == 3.0 and math.isnan(rp.t_interval([3.0])[1])
    assert all(math.isnan(v) for v in rp.t_interval([]))


def test_t_quantile_equals_the_printed_table():
    """The t quantiles computed without SciPy (train/stats.py) against the standard table's values (e.g.
    Abramowitz & Stegun Table 26.10; t(0.975, 1) = 12.7062 is the Cauchy's tan(0.475 pi))."""
    from torchrl_vd.train.stats import t_cdf, t_quantile

    table = {(0.975, 1): 12.706205, (0.975, 2): 4.302653, (0.975, 3): 3.182446, (0.975, 7): 2.364624,
             (0.975, 29): 2.045230, (0.975, 120): 1.979930, (0.995, 10): 3.169273, (0.95, 5): 2.015048}
    for (p, df), value in table.items():
        assert t_quantile(p, df) == pytest.approx(value, abs=2e-6)
        assert t_quantile(1 - p, df) == pytest.approx(-value, abs=2e-6)  # symmetry
        assert t_cdf(value, df) == pytest.approx(p, abs=1e-7)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)


def test_iqm_and_numpy_bootstrap():
    assert rp.iqm([1, 2, 3, 4]) == 2.5
    assert rp.iqm([100, 0, 7, 1, 6, 2, 5, 3]) == 4.0  # sorted 0 1 [2 3 5 6] 7 100
    assert rp.iqm([1, 2, 3]) == 2.0  # int(0.75) = 0 cut: the mean
    point, low, high, backend = rp.iqm_interval([1, 2, 3, 4], reps=2_000, backend="numpy")
    # IQM of a resample of 4 = the mean of its middle two: 1 when ≥ 3 of the 4 draws are 1, P = 13/256 ≈ 5.1% > 2.5%,
    # so the 95% interval's ends are the extremes 1 and 4 (the 2000 seeded draws put > 2.5% there)
    assert (point, low, high, backend) == (2.5, 1.0, 4.0, "numpy")
    assert rp.iqm_interval([1, 2, 3, 4], reps=2_000, backend="numpy") == (point, low, high, backend)  # seeded
    assert rp.iqm_interval([5.0, 5.0], reps=100, backend="numpy")[:3] == (5.0, 5.0, 5.0)
    # two tasks (columns): runs are resampled within each column
    scores = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    point, low, high, _ = rp.iqm_interval(scores, reps=2_000, backend="numpy")
    assert point == rp.iqm(scores) and low <= point <= high
    with pytest.raises(ValueError, match="backend must be"):
        rp.iqm_interval([1.0], backend="scipy")


def test_rliable_and_numpy_bootstraps_agree():
    pytest.importorskip("rliable.library")
    values = [-3.0, 1.0, 2.0, 2.5, 4.0, 9.0, 3.0, 0.5]
    a = rp.iqm_interval(values, reps=2_000, backend="rliable")
    b = rp.iqm_interval(values, reps=2_000, backend="numpy")
    assert a[3] == "rliable" and a[0] == pytest.approx(b[0])
    assert a[1] == pytest.approx(b[1], abs=0.25) and a[2] == pytest.approx(b[2], abs=0.25)


def test_verdict():
    ref = rp.Reference(-189.3, 3.2, "", "", "")
    assert rp.verdict(-190.0, ref) == "within"
    assert rp.verdict(-180.0, ref) == "above"
    assert rp.verdict(-200.0, ref) == "below"
    assert rp.verdict(-190.0, rp.NO_REFERENCE) == "no reference"
    assert rp.verdict(math.nan, ref) == "no runs"


def _eval_rows(run_dir: Path, rows: list[tuple[int, float, float]]) -> Path:
    """A run directory whose metrics.csv logs (frames, train_return, eval_return) rows (nan: not evaluated)."""
    run_dir.mkdir(parents=True)
    lines = ["frames,train_return,eval_return"] + [f"{f},{t},{e}" for f, t, e in rows]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def test_eval_return_metrics_on_known_curves(tmp_path):
    nan = math.nan
    a = _eval_rows(tmp_path / "a", [(500, 0, nan), (1000, 0, 0.2), (1500, 0, nan), (2000, 0, 0.9), (3000, 0, 0.5)])
    b = _eval_rows(tmp_path / "b", [(1000, 0, 0.6), (2000, 0, 0.1), (3000, 0, 0.7)])
    # seed means per evaluation step: 1000 -> 0.4, 2000 -> 0.5, 3000 -> 0.6: step 3000 is EPyMARL's pick,
    # not each seed's own best (0.9 at 2000 for a, 0.7 at 3000 for b)
    metric = rp.METRICS["epymarl_max_return"]
    assert metric.per_seed([a, b]) == [0.5, 0.7]
    assert metric.per_seed([a]) == [0.9]
    c = _eval_rows(tmp_path / "c", [(1000, 0, 0.3)])  # only the step every seed logged counts
    assert metric.per_seed([a, c]) == [0.2, 0.3]
    none = _eval_rows(tmp_path / "none", [(1000, 0.5, nan)])
    assert all(math.isnan(v) for v in metric.per_seed([a, none]))
    mean = rp.METRICS["mean_eval_return"]
    assert mean.per_seed([a, b]) == [pytest.approx((0.2 + 0.9 + 0.5) / 3), pytest.approx((0.6 + 0.1 + 0.7) / 3)]
    assert rp.METRICS["last10_train_return"].per_seed([b]) == [0.0]


def test_eval_curves_against_frames_and_cumulative_wall_clock(tmp_path):
    """A suite with ``curves``: the greedy evaluation (win rate where the run logs it, else return) of the finished
    seeds on a common grid, its mean and 95% t half-width, against frames and against training wall-clock summed
    over resumed segments (metrics.csv ``time`` restarts at a resume); ``final_eval`` is the win rate where there
    is one."""
    from torchrl_vd.reproduce.report import aggregate, curve_table

    def run(name, rows, summary):  # rows: (frames, time, eval_win_rate)
        d = tmp_path / name
        d.mkdir()
        lines = ["frames,time,train_return,eval_return,eval_win_rate"]
        lines += [f"{f},{t},0,{9 * w},{w}" for f, t, w in rows]
        (d / "metrics.csv").write_text("\n".join(lines) + "\n")
        (d / "summary.json").write_text(json.dumps({"frames": rows[-1][0], **summary}))
        return d

    a = run("a", [(100, 1.0, 0.0), (200, 2.0, 0.5), (300, 0.5, 1.0)], {"final_eval_return": 9.0,
                                                                         "final_eval_win_rate": 1.0})  # resumed
    b = run("b", [(100, 2.0, 0.5), (200, 4.0, 0.5), (300, 6.0, 0.5)], {"final_eval_return": 4.5,
                                                                         "final_eval_win_rate": 0.5})
    assert rp.METRICS["final_eval"].per_seed([a, b]) == [1.0, 0.5]
    entry = rp.Entry("smax/3m", "pqn-vdn", {}, (0, 1), 300, 1.0, None)
    suite = rp.Suite("s", "d", rp.METRICS["final_eval"], (entry,), ("frames", "wall_s"))
    runs = [rp.RunSpec(entry, k, d, None) for k, d in enumerate((a, b))]
    curves = curve_table(suite, runs)["smax/3m pqn-vdn"]
    assert curves["frames"]["x"] == [100.0, 200.0, 300.0] and curves["frames"]["mean"] == [0.25, 0.5, 0.75]
    assert curves["frames"]["ci95"][0] == pytest.approx(12.706204736174696 * 0.25)  # t(0.975, 1) s / √2, s = 0.25 √2
    assert curves["wall_s"]["x"] == [2.0, 2.5]  # a: 1, 2, 2.5 (resumed after 2 s); b: 2, 4, 6; in common: 2 to 2.5
    assert curves["wall_s"]["mean"] == [0.5, 0.75]
    row = aggregate(suite, runs, reps=100, iqm_backend="numpy")[0]
    assert row["mean"] == 0.75 and row["wall_s"] == pytest.approx((2.5 + 6.0) / 2)


# -------------------------------------------------------------------------------------- suites and args
def test_parse_seeds():
    assert rp.parse_seeds("0-3") == [0, 1, 2, 3]
    assert rp.parse_seeds("0,2,5") == [0, 2, 5]
    assert rp.parse_seeds("5, 0-2") == [0, 1, 2, 5]
    for bad in ("", "a", "3-1", "1;2", "-1", "0-"):
        with pytest.raises(ValueError, match=r"'0-3'.*'0,2,5'"):
            rp.parse_seeds(bad)


def test_unknown_suite_names_close_matches_and_the_list():
    with pytest.raises(ValueError, match=r"Unknown suite 'qick'\. Did you mean quick\? "
                                         r"Suites: lbf, mpe, mpe-xuance, pqn-compare, quick, smax, vmas\."):
        rp.load_suite("qick")


def test_cli_reports_bad_suite_and_seeds(capsys):
    assert cli.main(["reproduce", "vmass"]) == 2
    assert "Did you mean vmas?" in capsys.readouterr().err
    assert cli.main(["reproduce", "quick", "--seeds", "two"]) == 2
    assert "'0-3'" in capsys.readouterr().err
    assert rp.main(["quick", "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("quick", [False, True])
def test_every_suite_builds_valid_configs(tmp_path, quick):
    for name in reproduce_suites.SUITES:
        suite = rp.load_suite(name, quick=quick)
        runs = rp.suite_runs(suite, tmp_path)
        assert len(runs) == sum(len(e.seeds) for e in suite.entries)
        assert len({r.run_dir for r in runs}) == len(runs)
        for r in runs:
            rel = r.run_dir.relative_to(tmp_path.resolve())
            assert len(rel.parts) == 4 and rel.parts[0] == suite.name and rel.parts[3] == f"seed{r.seed}"
            assert r.config.env == r.entry.task and r.config.frames == r.entry.frames and r.config.threads == 1
    mpe = rp.load_suite("mpe")
    assert {(e.task, e.algo) for e in mpe.entries if e.reference} == set(reproduce_suites.MPE_REFERENCES)
    assert all(e.frames == 2_000_000 and len(e.seeds) == 4 for e in mpe.entries)
    assert rp.load_suite("vmas", seeds=[0, 1, 2, 3, 4]).entries[0].seeds == (0, 1, 2, 3, 4)
    assert rp.load_suite("vmas", quick=True).name == "vmas-quick"
    some = rp.load_suite("vmas", tasks=["vmas/balance"], algos=["qmix"])
    assert [(e.task, e.algo) for e in some.entries] == [("vmas/balance", "qmix")]
    with pytest.raises(ValueError, match="no task 'vmas/balanse'; its tasks: vmas/balance, vmas/navigation"):
        rp.load_suite("vmas", tasks=["vmas/balanse"])
    short = rp.load_suite("mpe", tasks=["pettingzoo/simple_spread_v3"], seeds=[0], frames=100_000)
    assert [(e.algo, e.frames, e.seeds) for e in short.entries] == [
        ("vdn", 100_000, (0,)), ("qmix", 100_000, (0,)), ("qtran", 100_000, (0,)), ("qtran-alt", 100_000, (0,))]
    assert [r.config.frames for r in rp.suite_runs(short, Path("runs"))] == [100_000] * 4
    with pytest.raises(ValueError, match="frames must be >= 1"):
        rp.load_suite("mpe", frames=0)


def test_references_from_constants_and_files(tmp_path):
    ref = rp.resolve_reference(reproduce_suites.MPE_REFERENCES[("pettingzoo/simple_spread_v3", "vdn")],
                               "pettingzoo/simple_spread_v3", "vdn")
    # MARLlib's -189.3 ± 3.2 in our units: T = (M + 112.5) / 3 (n x team sum, old self-collision charge)
    assert (ref.value, ref.ci) == (pytest.approx(-25.6), pytest.approx(3.2 / 3)) and "MARLlib" in ref.source
    assert "M = -189.3 ± 3.2" in ref.source
    assert rp.resolve_reference(None, "t", "a").value is None

    per_seed = tmp_path / "benchmarl.csv"
    per_seed.write_text("task,algo,seed,value\nvmas/balance,qmix,0,1\nvmas/balance,qmix,1,2\n"
                        "vmas/balance,qmix,2,3\nvmas/balance,qmix,3,4\nvmas/balance,vdn,0,9\n")
    spec = {"file": str(per_seed), "units": "u", "source": "s"}
    ref = rp.resolve_reference(spec, "vmas/balance", "qmix")
    assert ref.value == 2.5 and ref.ci == pytest.approx(2.0543, abs=1e-4) and "4 rows" in ref.ci_kind
    summarized = tmp_path / "ref.json"
    summarized.write_text(json.dumps([{"task": "balance", "algo": "QMIX", "value": 7.5, "ci": 0.5}]))
    ref = rp.resolve_reference({"file": str(summarized), "task": "balance", "algo": "QMIX"}, "vmas/balance", "qmix")
    assert (ref.value, ref.ci) == (7.5, 0.5)
    assert "missing" in rp.resolve_reference({"file": str(tmp_path / "nope.csv")}, "t", "a").cell()
    assert "no vmas/sampling/qmix row" in rp.resolve_reference(spec, "vmas/sampling", "qmix").cell()


@pytest.mark.parametrize("name, source", [("vmas", "BenchMARL"), ("smax", "JaxMARL")])
def test_dry_run_plans_and_resolves_references_from_package_data(tmp_path, capsys, name, source):
    """``--dry-run`` prints every run's action and every entry's reference, read from the package's reference
    files (not pending), and trains and writes nothing."""
    suite = rp.load_suite(name)
    for e in suite.entries:
        assert rp.reference_file(e.reference["file"]).is_file()
        assert rp.resolve_reference(e.reference, e.task, e.algo).value is not None
    out = tmp_path / "out"
    assert rp.main([name, "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "pending" not in text and "nothing is trained or written" in text
    for e in suite.entries:
        ref = rp.resolve_reference(e.reference, e.task, e.algo)
        head = f"{e.task} {e.algo}: seeds {','.join(map(str, e.seeds))} x {e.frames} frames"
        assert f"{head}\n  reference: {ref.cell()} (" in text and source in text
    assert text.count(": start (no run directory)") == sum(len(e.seeds) for e in suite.entries)
    assert cli.main(["reproduce", name, "--dry-run", "--quick", "--out", str(out)]) == 0
    assert f"runs in {out.resolve() / (name + '-quick')}" in capsys.readouterr().out and not out.exists()


def test_command_line_module_imports_no_heavy_package():
    """``torchrl-vd --help`` builds its parser from reproduce/cli.py: importing it (and the suites) imports
    no torch, numpy or Ray (the package's own ``__init__`` left out: it is the top-level API)."""
    import subprocess
    import sys

    package = Path(vd.__file__).parent
    code = ("import sys, types\n"
            f"pkg = types.ModuleType('torchrl_vd'); pkg.__path__ = [{str(package)!r}]; sys.modules['torchrl_vd'] = pkg\n"
            "import argparse, torchrl_vd.reproduce, torchrl_vd.reproduce.cli, torchrl_vd.reproduce.suites\n"
            "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'numpy', 'ray', 'torchrl', 'tensordict', 'matplotlib', 'scipy'}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_mirror_files_writes_only_what_differs(tmp_path):
    run_dir = tmp_path / "a" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("same")
    (run_dir / "summary.json").write_text("stale")
    before = (run_dir / "config.json").stat().st_mtime_ns
    rp.mirror_files(run_dir, {"config.json": "same", "summary.json": "{}", "metrics.csv": "frames"})
    assert (run_dir / "config.json").stat().st_mtime_ns == before
    assert (run_dir / "summary.json").read_text() == "{}" and (run_dir / "metrics.csv").read_text() == "frames"


# ---------------------------------------------------------------------------------- the quick suite on Ray
@pytest.fixture(scope="module")
def local_ray():
    started = rp.init_ray(2)  # the harness's own start: a local instance with 2 CPUs
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory, local_ray):
    """The quick suite, run once for this module's tests: (OUT, report). IQM intervals by the numpy
    bootstrap here (rliable's takes seconds per row; the two are compared above)."""
    out = tmp_path_factory.mktemp("reproduce")
    report = rp.run_suite("quick", out, iqm_backend="numpy", log=lambda line: None)
    return out, report


def test_local_ray_runs_workers_at_normal_priority(local_ray):
    """Ray renices its workers to 15 by default (then any other process starves a suite's runs); the
    harness starts local Ray with RAY_worker_niceness=0 unless the user set it: workers keep the driver's
    priority (0 on a plain shell; the driver's own under `nice`)."""
    if os.environ.get("RAY_worker_niceness", "0") != "0":
        pytest.skip("RAY_worker_niceness set by the user")
    assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == os.nice(0)


def _table(results_md: Path) -> list[list[str]]:
    """The cells of RESULTS.md's main table (the rows above '## References')."""
    head = results_md.read_text().split("## References")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in head.splitlines()
            if line.startswith("| ") and not line.startswith("| task")]


def _summaries(out: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in sorted((out / "quick").glob("*/*/seed*/summary.json"))}


def test_quick_suite_end_to_end(quick_out):
    out, report = quick_out
    assert not report.failures
    assert [a for _, a, _ in report.planned] == ["start"] * 8
    rows = _table(out / "quick" / "RESULTS.md")
    assert len(rows) == 4
    tasks, algos = ("matrix/climbing", "vmas/balance"), ("vdn", "qmix")
    assert {(r[0], r[1]) for r in rows} == {(t, a) for t in tasks for a in algos}
    for task, algo, seeds, frames, mean_ci, iqm_cell, ref, verdict in rows:
        assert seeds == "2/2"
        run_dirs = sorted((out / "quick" / task.replace("/", "_") / algo).glob("seed*"))
        assert [d.name for d in run_dirs] == ["seed0", "seed1"]
        values = np.array([json.loads((d / "summary.json").read_text())["final_eval_return"] for d in run_dirs])
        assert all(json.loads((d / "summary.json").read_text())["frames"] >= int(frames) for d in run_dirs)
        mean = values.mean()
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        shown_mean, shown_half = (float(x) for x in re.fullmatch(r"(\S+) ± (\S+)", mean_ci).groups())
        assert shown_mean == pytest.approx(mean, rel=1e-3, abs=1e-3)
        assert shown_half == pytest.approx(half, rel=1e-3, abs=1e-3)
        iqm, low, high = (float(x) for x in re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", iqm_cell).groups())
        assert iqm == pytest.approx(mean, rel=1e-3, abs=1e-3)  # two seeds: nothing is trimmed
        assert low == pytest.approx(values.min(), rel=1e-3, abs=1e-3)
        assert high == pytest.approx(values.max(), rel=1e-3, abs=1e-3)
        if task == "matrix/climbing":
            assert ref == "11 ± 0" and verdict == ("within" if mean == 11 else "below" if mean < 11 else "above")
        else:
            assert verdict == "no reference"
    text = (out / "quick" / "RESULTS.md").read_text()
    for needle in ("command:", "machine: `Linux", "load average", "total wall time", "start 8",
                   "bootstrap over seeds in numpy"):
        assert needle in text
    for task in ("matrix_climbing", "vmas_balance"):
        png = out / "quick" / f"curves_{task}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        from PIL import Image

        with Image.open(png) as im:
            im.verify()
    assert len(json.loads((out / "quick" / "results.json").read_text())["rows"]) == 4


def test_rerun_skips_finished_runs(quick_out):
    out, _ = quick_out
    before = _summaries(out)
    report = rp.run_suite("quick", out, iqm_backend="numpy", log=lambda line: None)
    assert [a for _, a, _ in report.planned] == ["skip"] * 8
    assert _summaries(out) == before
    assert "skip 8" in report.results_md.read_text()


def test_dry_run_after_a_run_plans_skips_and_writes_nothing(quick_out):
    out, _ = quick_out
    before = {p: p.stat().st_mtime_ns for p in (out / "quick").rglob("*")}
    lines = []
    planned = rp.dry_run("quick", out, log=lines.append)
    assert [a for _, a, _ in planned] == ["skip"] * 8
    assert "(skip 8, resume 0, restart 0, start 0)" in lines[0]
    assert "11 ± 0 (exact)" in lines[0] and "none published" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in (out / "quick").rglob("*")} == before


def test_export_marl_eval_after_the_suite(quick_out, tmp_path, monkeypatch, capsys):
    """``--export-marl-eval``: the suite's runs as marl-eval JSON, absolute metrics = the table's per-seed values
    (the quick suite's metric is final_eval_return at scale 1); not written when a run failed."""
    import argparse
    import dataclasses

    from torchrl_vd.reproduce import run as run_module

    out, report = quick_out
    monkeypatch.setattr(run_module, "run_suite", lambda *args, **kwargs: report)  # the finished suite, not rerun
    target = tmp_path / "quick.json"
    args = rp.add_arguments(argparse.ArgumentParser()).parse_args(
        ["quick", "--out", str(out), "--export-marl-eval", str(target)])
    assert rp.run_from_args(args, "torchrl-vd reproduce") == 0
    data = json.loads(target.read_text())
    assert sorted(data) == ["matrix", "vmas"]  # one marl-eval environment per env family
    for row in report.rows:
        env, task = row["task"].split("/")
        for seed, value in row["per_seed"].items():
            assert data[env][task][row["algo"]][f"seed_{seed}"]["absolute_metrics"]["return"] == [value]
    assert f"wrote {target}" in capsys.readouterr().out
    failed = dataclasses.replace(report, failures={"matrix/climbing vdn seed0": "boom"})
    monkeypatch.setattr(run_module, "run_suite", lambda *args, **kwargs: failed)
    args.export_marl_eval = str(tmp_path / "not_written.json")
    assert rp.run_from_args(args, "torchrl-vd reproduce") == 1
    assert not (tmp_path / "not_written.json").exists() and "1 run(s) failed" in capsys.readouterr().err


def test_edited_suite_config_is_an_error(quick_out, tmp_path):
    out, _ = quick_out
    shutil.copytree(out / "quick", tmp_path / "quick")
    config = tmp_path / "quick" / "matrix_climbing" / "vdn" / "seed1" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "lr": 0.1}))
    with pytest.raises(ValueError, match=r"seed1: lr=0\.1 \(suite: 0\.0005\)"):
        rp.plan(rp.suite_runs(rp.load_suite("quick"), tmp_path))


def test_interrupted_suite_reruns_only_what_it_lacks(quick_out, tmp_path):
    out, _ = quick_out
    shutil.copytree(out / "quick", tmp_path / "quick")
    suite_dir = tmp_path / "quick"
    deleted = suite_dir / "vmas_balance" / "qmix" / "seed1"  # never started
    no_summary = suite_dir / "matrix_climbing" / "vdn" / "seed0"  # checkpoint at the target, no summary
    halfway = suite_dir / "vmas_balance" / "vdn" / "seed0"  # stopped at 400 of 1000 frames
    shutil.rmtree(deleted)
    (no_summary / "summary.json").unlink()
    config = vd.TrainConfig.from_dict(json.loads((halfway / "config.json").read_text()))
    shutil.rmtree(halfway)
    vd.train(config.with_overrides({"frames": 400, "out_dir": str(halfway)}))
    rows_before = (halfway / "metrics.csv").read_text().splitlines()
    untouched = {p: t for p, t in _summaries(tmp_path).items() if p.parent not in (deleted, no_summary, halfway)}
    assert len(untouched) == 5

    report = rp.run_suite("quick", tmp_path, iqm_backend="numpy", log=lambda line: None)
    actions = {r.run_dir: a for r, a, _ in report.planned}
    assert actions[deleted] == "start" and actions[no_summary] == "restart" and actions[halfway] == "resume"
    assert sorted(actions.values()).count("skip") == 5
    assert not report.failures
    assert {p: t for p, t in _summaries(tmp_path).items() if p in untouched} == untouched
    for d in (deleted, no_summary, halfway):
        assert json.loads((d / "summary.json").read_text())["frames"] == (1_000 if "vmas" in d.parts[-3] else 2_048)
    rows_after = (halfway / "metrics.csv").read_text().splitlines()
    assert rows_after[:len(rows_before)] == rows_before  # resumed: the first 400 frames' rows are kept
    assert [int(r.split(",")[0]) for r in rows_after[1:]] == [200, 400, 600, 800, 1000]
    assert all(row[2] == "2/2" for row in _table(report.results_md))


def test_a_failing_run_is_reported_and_the_others_finish(local_ray, tmp_path):
    good, bad = rp.suite_runs(rp.load_suite("quick", seeds=[0]), tmp_path)[:2]
    bad = rp.RunSpec(bad.entry, bad.seed, bad.run_dir, bad.config.with_overrides({"env_kwargs": {"bogus": 1}}))
    lines = []
    failures = rp.dispatch([(good, "start"), (bad, "start")], workers=None, log=lines.append)
    assert list(failures) == [str(bad.run_dir)] and "bogus" in failures[str(bad.run_dir)]
    assert rp.finished(good) and any("FAILED" in line and "qmix" in line for line in lines)
    kept = (bad.run_dir / "failure.txt").read_text()  # the whole worker traceback, not only its last line
    assert 'File "' in kept and "bogus" in kept and "\x1b[" not in kept and len(kept.splitlines()) > 3
    assert not (good.run_dir / "failure.txt").exists()


@pytest.mark.slow
def test_pqn_compare_quick_on_vmas_writes_curves_and_wall_clock(local_ray, tmp_path):
    """``pqn-compare --quick`` on VMAS (SMAX needs the ``smax`` extra): PQN-VDN, QMIX and IQL train with the
    suite's settings; RESULTS.md has the wall-clock table, results.json the curves, the PNG both panels (~1.5 min)."""
    report = rp.run_suite("pqn-compare", tmp_path, quick=True, seeds=[0], tasks=["vmas/balance"],
                          iqm_backend="numpy", log=lambda line: None)
    assert not report.failures and [r["algo"] for r in report.rows] == ["pqn-vdn", "qmix", "iql"]
    text = report.results_md.read_text()
    assert "## Wall-clock" in text and all(f"| vmas/balance | {a} | " in text for a in ("pqn-vdn", "qmix", "iql"))
    curves = json.loads((report.results_md.parent / "results.json").read_text())["curves"]
    assert set(curves) == {"vmas/balance pqn-vdn", "vmas/balance qmix", "vmas/balance iql"}
    assert all(set(c) == {"frames", "wall_s"} and c["frames"]["n"] == 1 for c in curves.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mpe", "vmas"])
def test_long_suites_quick_version_runs_every_entry(local_ray, tmp_path, name):
    """Every (task, algo) of the long suites trains with its settings (``--quick``, one seed: 2-4 min each)."""
    report = rp.run_suite(name, tmp_path, quick=True, seeds=[0], iqm_backend="numpy", log=lambda line: None)
    assert not report.failures
    assert all(row[2] == "1/1" for row in _table(report.results_md))
    assert len(report.plots) == len({e.task for e in report.suite.entries})


def test_a_reference_made_here_names_its_command_while_pending(tmp_path):
    """A reference file that a script of ours writes (a spec's ``make``) says, while missing, how to make it."""
    from torchrl_vd.reproduce.references import resolve_reference

    spec = {"file": str(tmp_path / "absent.csv"), "units": "u", "source": "s", "make": "python make_it.py"}
    ref = resolve_reference(spec, "smax/3m", "pqn-vdn")
    assert ref.value is None
    assert ref.note.startswith("pending (") and "absent.csv missing; make it with: python make_it.py" in ref.note
