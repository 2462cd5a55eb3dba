"""``torchrl-vd export --format marl-eval`` (torchrl_vd/export/marl_eval.py).

The JSON's layout and every refusal on hand-written run directories; then marl-eval's own
``data_process_pipeline`` and ``create_matrices_for_rliable`` (and rliable's IQM) on the export, whose IQM must
equal the reproduction harness's: on hand-written runs with five seeds (the IQM trims), and on the export of
real short runs (VMAS balance, VDN and QMIX, two seeds each). The marl-eval tests run where marl-eval is
installed (``pip install 'torchrl-vd[marl-eval]'`` then ``pip install --no-deps id-marl-eval==0.0.4``, as
.ci/setup does: its own pins, pandas 1.4.4 among them, do not install on Python 3.11 / numpy 2).
"""

from __future__ import annotations

import copy
import csv
import json
import warnings
from pathlib import Path

import pytest

import torchrl_vd as vd
from torchrl_vd import cli
from torchrl_vd.export.marl_eval import marl_eval_data, read_run, write_marl_eval
from torchrl_vd.train.run_files import METRIC_COLUMNS, WIN_RATE_COLUMNS


def fake_run(path: Path, *, algo="qmix", env="vmas/balance", seed=0, evals=((200, 1.0), (400, 2.0)), frames=400,
             final=2.0, win=None, finished=True, stopped_at=None, **config) -> Path:
    """A run directory as the trainer leaves it: config.json, metrics.csv (a row every 100 frames, ``evals`` as
    ``(frames, eval_return)``), summary.json (``final``: the final greedy return; ``stopped_at``: a run stopped by a
    signal at those frames). ``win``: SMAX's win-rate columns, ``{frames: eval_win_rate}``, the final one at
    ``frames``."""
    path.mkdir(parents=True)
    cfg = {**vd.TrainConfig().to_dict(), "algo": algo, "env": env, "seed": seed, "frames": frames, **config}
    (path / "config.json").write_text(json.dumps(cfg))
    evals, columns = dict(evals), METRIC_COLUMNS + (WIN_RATE_COLUMNS if win is not None else [])
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for t in range(100, frames + 1, 100):
            writer.writerow({"frames": t, "train_return": 0.5, "eval_return": evals.get(t, ""),
                             **({"eval_win_rate": win.get(t, "")} if win is not None and t in evals else {})})
    if finished:
        summary = {"algo": algo, "env": env, "seed": seed, "frames": stopped_at or frames, "final_eval_return": final,
                   "interrupted": stopped_at is not None, **({"final_eval_win_rate": win[frames]} if win is not None else {})}
        (path / "summary.json").write_text(json.dumps(summary))
    return path


# ------------------------------------------------------------------------------------------ the layout
def test_layout_keys_order_and_values(tmp_path):
    fake_run(tmp_path / "q0", seed=0, evals=((200, 1.0), (400, 2.0)), final=2.0)
    fake_run(tmp_path / "q1", seed=1, evals=((200, 3.0), (400, 4.5)), final=4.5)
    data = marl_eval_data([tmp_path])
    assert list(data) == ["vmas"] and list(data["vmas"]) == ["balance"] and list(data["vmas"]["balance"]) == ["qmix"]
    runs = data["vmas"]["balance"]["qmix"]
    assert list(runs) == ["seed_0", "seed_1"]
    assert runs["seed_1"] == {  # absolute metrics first, then the evaluations in time order (marl-eval's order)
        "absolute_metrics": {"return": [4.5]},
        "step_0": {"step_count": 200, "return": [3.0]},
        "step_1": {"step_count": 400, "return": [4.5]},
    }
    assert list(runs["seed_1"]) == ["absolute_metrics", "step_0", "step_1"]


def test_final_evaluation_off_the_eval_grid_becomes_the_last_step(tmp_path):
    # eval_every 200, frames 500: metrics.csv evaluates at 200 and 400, the final evaluation (500) is summary.json's
    run = read_run(fake_run(tmp_path / "r", evals=((200, 1.0), (400, 2.0)), frames=500, final=7.25))
    assert [f for f, _ in run.steps] == [200, 400, 500]
    assert run.steps[-1][1] == {"return": 7.25} and run.absolute == {"return": 7.25}
    # eval_every 0: the final evaluation is the only step
    only = read_run(fake_run(tmp_path / "o", evals=(), frames=300, final=-3.0))
    assert only.steps == ((300, {"return": -3.0}),)


def test_win_rate_where_the_env_marks_won_battles(tmp_path):
    fake_run(tmp_path / "s", env="smax/3m", evals=((200, 1.0), (400, 2.0)), win={200: 0.25, 400: 0.75})
    seed = marl_eval_data([tmp_path])["smax"]["3m"]["qmix"]["seed_0"]
    assert seed["absolute_metrics"] == {"return": [2.0], "win_rate": [0.75]}
    assert seed["step_0"] == {"step_count": 200, "return": [1.0], "win_rate": [0.25]}


def test_cli_writes_the_same_json(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "a", algo="vdn", evals=((200, 1.0), (400, 2.0)))
    out = tmp_path / "deep" / "marl_eval.json"
    assert cli.main(["export", str(tmp_path / "runs"), "--format", "marl-eval", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == marl_eval_data([tmp_path / "runs"])
    assert "vmas: tasks balance; algorithms vdn; 1 seeds (0); 2 evaluations each" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ refusals
def test_paths_that_hold_no_run(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        marl_eval_data([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a torchrl-vd run directory"):
        marl_eval_data([tmp_path / "empty"])
    assert cli.main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "x.json")]) == 2
    assert "torchrl-vd export: error:" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_unfinished_and_interrupted_runs(tmp_path):
    with pytest.raises(ValueError, match="has not finished.*--resume"):
        marl_eval_data([fake_run(tmp_path / "a", finished=False)])
    with pytest.raises(ValueError, match="stopped at 400 of 800 frames"):
        marl_eval_data([fake_run(tmp_path / "b", stopped_at=400, frames=800)])


def test_one_seed_twice(tmp_path):
    fake_run(tmp_path / "a", seed=3)
    fake_run(tmp_path / "b", seed=3)
    with pytest.raises(ValueError, match="Two runs of vmas/balance qmix seed 3"):
        marl_eval_data([tmp_path])


def test_seeds_of_one_experiment_with_different_configs(tmp_path):
    fake_run(tmp_path / "a", seed=0, lr=1e-3, threads=1, device="cpu")
    fake_run(tmp_path / "b", seed=1, lr=5e-4, threads=2)  # threads: how it ran, not what was trained
    with pytest.raises(ValueError, match=r"different configs \(lr=0.001 vs 0.0005\)"):
        marl_eval_data([tmp_path])


def test_seeds_evaluated_at_different_frames(tmp_path):
    fake_run(tmp_path / "a", seed=0, evals=((200, 1.0), (400, 2.0)))
    fake_run(tmp_path / "b", seed=1, evals=((300, 1.0), (400, 2.0)))
    with pytest.raises(ValueError, match=r"evaluated at different frames: seed 0 at \[200, 400\], seed 1 at "
                                         r"\[300, 400\]"):
        marl_eval_data([tmp_path])


def test_environment_grid_must_be_complete(tmp_path):
    fake_run(tmp_path / "bq", env="vmas/balance", algo="qmix")
    fake_run(tmp_path / "bv", env="vmas/balance", algo="vdn")
    fake_run(tmp_path / "nq", env="vmas/navigation", algo="qmix")
    with pytest.raises(ValueError, match="every algorithm on every task.*no runs of: navigation vdn"):
        marl_eval_data([tmp_path])
    fake_run(tmp_path / "nv", env="vmas/navigation", algo="vdn", seed=1)
    with pytest.raises(ValueError, match=r"same seeds.*seeds \[1\] vs \[0\]"):
        marl_eval_data([tmp_path])


def test_tasks_of_one_environment_on_different_frames(tmp_path):
    fake_run(tmp_path / "b", env="vmas/balance")
    fake_run(tmp_path / "n", env="vmas/navigation", evals=((200, 1.0), (400, 2.0), (600, 3.0)), frames=600)
    with pytest.raises(ValueError, match="one frame axis"):
        marl_eval_data([tmp_path])
    fake_run(tmp_path / "other" / "m", env="matrix/climbing", frames=600, evals=((300, 1.0), (600, 2.0)))
    data = marl_eval_data([tmp_path / "b", tmp_path / "other"])  # separate environments: separate grids
    assert list(data) == ["matrix", "vmas"]


def test_non_finite_values(tmp_path):
    with pytest.raises(ValueError, match="summary.json final_eval_return is nan"):
        marl_eval_data([fake_run(tmp_path / "a", final=float("nan"))])


# ------------------------------------------------------------------------------------------ marl-eval itself
def _marl_eval_iqm(data: dict, env: str, normalize: list[str]) -> tuple[dict, dict, dict]:
    """marl-eval's processing of ``data`` and rliable's IQM per algorithm of its comparison matrix, as
    marl-eval's ``aggregate_scores`` computes it (fewer bootstrap reps): ``(iqm, env matrix, efficiency matrix)``."""
    import numpy as np
    from marl_eval.utils.data_processing_utils import create_matrices_for_rliable, data_process_pipeline
    from rliable import library as rly
    from rliable import metrics

    processed = data_process_pipeline(raw_data=copy.deepcopy(data), metrics_to_normalize=normalize)
    assert "extra" in processed  # on bad input the pipeline prints and returns its input
    env_mat, eff_mat = create_matrices_for_rliable(data_dictionary=processed, environment_name=env,
                                                   metrics_to_normalize=normalize)
    key = "mean_norm_return" if normalize else "mean_return"
    with warnings.catch_warnings():  # arch deprecates the random_state that rliable passes it
        warnings.simplefilter("ignore", FutureWarning)
        point, _ = rly.get_interval_estimates(env_mat[key], lambda x: np.array([metrics.aggregate_iqm(x)]), reps=200)
    return {algo: float(v[0]) for algo, v in point.items()}, env_mat[key], eff_mat[key]


def _task_range(data: dict, env: str, task: str) -> tuple[float, float]:
    """The min and max of every return of a task (steps and absolute metrics): marl-eval's normalisation bounds."""
    values = [v for algo in data[env][task].values() for run in algo.values() for step in run.values()
              for v in step["return"]]
    return min(values), max(values)


def test_marl_eval_iqm_trims_like_ours_on_five_seeds(tmp_path):
    pytest.importorskip("marl_eval.utils.data_processing_utils")
    pytest.importorskip("rliable.library")
    from torchrl_vd.reproduce.stats import iqm

    finals = {"qmix": [5.0, -1.0, 2.0, 9.0, 3.5], "vdn": [0.5, 0.25, 8.0, -4.0, 1.0]}
    for algo, values in finals.items():
        for seed, v in enumerate(values):
            fake_run(tmp_path / algo / f"seed{seed}", algo=algo, seed=seed, final=v, evals=((200, v / 2), (400, v)))
    data = marl_eval_data([tmp_path])
    theirs, env_mat, _ = _marl_eval_iqm(data, "vmas", [])
    assert env_mat["qmix"].shape == (5, 1)
    assert theirs == pytest.approx({"qmix": 10.5 / 3, "vdn": 1.75 / 3})  # sorted, int(1.25) = 1 cut from each end
    assert theirs == pytest.approx({algo: iqm(v) for algo, v in finals.items()})


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """VMAS balance, VDN and QMIX, seeds 0 and 1, 600 frames, evaluated every 200 (the quick suite's entries at a
    shorter budget), and the harness's table rows for them: ``(suite dir, rows)``."""
    pytest.importorskip("vmas")
    pytest.importorskip("scipy.stats")
    from torchrl_vd.reproduce.report import aggregate
    from torchrl_vd.reproduce.spec import RunSpec, load_suite, suite_runs

    out = tmp_path_factory.mktemp("export")
    suite = load_suite("quick", tasks=["vmas/balance"], frames=600)
    runs = [RunSpec(r.entry, r.seed, r.run_dir, r.config.with_overrides({"eval_every": 200}))
            for r in suite_runs(suite, out)]
    for run in runs:
        vd.train(run.config)
    return out / suite.name, aggregate(suite, runs, reps=200, iqm_backend="numpy")


def test_export_of_short_runs_holds_their_evaluations(short_runs, tmp_path):
    suite_dir, rows = short_runs
    out = tmp_path / "quick.json"
    data = write_marl_eval([suite_dir], out)
    assert json.loads(out.read_text()) == data
    for row in rows:
        for seed, final in row["per_seed"].items():
            run = data["vmas"]["balance"][row["algo"]][f"seed_{seed}"]
            assert [run[f"step_{i}"]["step_count"] for i in range(3)] == [200, 400, 600]
            assert run["absolute_metrics"]["return"] == [final] == run["step_2"]["return"]


def test_marl_eval_iqm_equals_the_harness_iqm(short_runs):
    pytest.importorskip("marl_eval.utils.data_processing_utils")
    pytest.importorskip("rliable.library")
    from marl_eval.utils.diagnose_data_errors import DiagnoseData

    suite_dir, rows = short_runs
    data = marl_eval_data([suite_dir])
    assert all(DiagnoseData(copy.deepcopy(data)).check_data()["vmas"].values())  # marl-eval's own format check
    ours = {row["algo"]: row["iqm"] for row in rows}
    theirs, env_mat, eff_mat = _marl_eval_iqm(data, "vmas", [])
    assert theirs == pytest.approx(ours, rel=1e-12)
    assert env_mat["qmix"].shape == (2, 1) and eff_mat["qmix"].shape == (2, 1, 3)
    # normalised as marl-eval's examples do: (x - min) / (max - min + 1e-6) over the task's returns
    low, high = _task_range(data, "vmas", "balance")
    normed, _, _ = _marl_eval_iqm(data, "vmas", ["return"])
    assert {a: v * (high - low + 1e-6) + low for a, v in normed.items()} == pytest.approx(ours, rel=1e-9)
