"""train(): published matrix-game outcomes, exact resume, run-dir contents, CLI, config validation."""

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main

# VDN's least-squares additive fit of the QTRAN paper's matrix game (Son et al. 2019, Table 1):
# row mean + column mean - grand mean of the payoff
VDN_FIT = torch.tensor([[-6.22, -4.89, -4.89], [-4.89, -3.56, -3.56], [-4.89, -3.56, -3.56]])


def uniform_cfg(algo, env=None, out_dir=None, **kw):
    """Uniform exploration (ε = 1 throughout) on a one-step matrix game, as in the QTRAN paper."""
    base = dict(algo=algo, env=env, num_envs=256, frames=256 * 120, frames_per_batch=256, batch_size=1024,
                updates_per_batch=4, lr=5e-4, eps_start=1.0, eps_end=1.0, target_update=0.05, hidden=(32,),
                progress=False, out_dir=out_dir, eval_episodes=4)
    base.update(kw)
    return vd.TrainConfig(**base)


def learned_table(result):
    td = result.env.reset()[:1]
    report = vd.check_igm(result.loss_module, td)
    return report, report.joint_q[0]


def test_vdn_and_qmix_on_the_qtran_game_match_the_published_outcome(tmp_path):
    vdn = vd.train(uniform_cfg("vdn", "matrix/qtran", str(tmp_path / "vdn")))
    report, table = learned_table(vdn)
    assert (table - VDN_FIT).abs().max() < 0.3, table  # the least-squares additive fit
    assert vdn.summary["final_eval_return"] == 0.0  # greedy joint action lands in the {B,C}^2 block
    assert report.holds.all()  # IGM holds for VDN by construction

    qmix = vd.train(uniform_cfg("qmix", "matrix/qtran", str(tmp_path / "qmix")))
    report, table = learned_table(qmix)
    row_col_a = torch.cat([table[0], table[1:, 0]])
    assert (row_col_a + 8).abs().max() < 1.0, table  # ≈ -8 on row and column A
    assert table[1:, 1:].abs().max() < 1.0, table  # ≈ 0 on the {B,C}^2 block
    assert qmix.summary["final_eval_return"] == 0.0
    assert report.holds.all()


# An asymmetric variant of the climbing game (matrix/climbing is the symmetric original): (2,1) != (1,2).
CLIMBING = torch.tensor([[11.0, -30.0, 0.0], [-30.0, 7.0, 0.0], [0.0, 6.0, 5.0]])


def additive_fit(payoff):
    """Least-squares additive fit under uniform data: row mean + column mean - grand mean."""
    return payoff.mean(1, keepdim=True) + payoff.mean(0, keepdim=True) - payoff.mean()


def test_vdn_fits_the_asymmetric_climbing_game_additively_with_the_default_agent_id(tmp_path):
    """Shared parameters + identical observations: only the default one-hot agent id lets the two agents'
    utilities differ, so VDN can reach the least-squares additive fit of an asymmetric payoff."""
    fit = additive_fit(CLIMBING)
    game = dict(env="matrix/custom", env_kwargs={"payoff": CLIMBING.tolist()})
    default = vd.train(uniform_cfg("vdn", out_dir=str(tmp_path / "default"), updates_per_batch=12, **game))
    assert default.loss_module.agent_net.agent_id  # share_params=True -> agent id on by default
    table = learned_table(default)[1]
    assert (table - fit).abs().max() < 0.5, table
    no_id = vd.train(uniform_cfg("vdn", out_dir=str(tmp_path / "no-id"), agent_id=False, frames=256 * 30, **game))
    table = learned_table(no_id)[1]
    assert torch.allclose(table, table.T, atol=1e-4)  # identical utilities: a symmetric table
    assert (table - fit).abs().max() > 2.0, table  # so it cannot be the (asymmetric) additive fit


def test_qmix_represents_a_monotonic_non_additive_game_that_vdn_cannot(tmp_path):
    payoff = torch.tensor([[0.0, 0.0], [0.0, 10.0]])  # "monotonic": non-additive, monotonic
    errors = {}
    for algo in ("vdn", "qmix"):
        res = vd.train(uniform_cfg(algo, "matrix/monotonic", str(tmp_path / algo)))
        errors[algo] = (learned_table(res)[1] - payoff).abs().max().item()
    assert errors["vdn"] > 2.0  # best additive fit is off by 2.5 on every entry
    assert errors["qmix"] < 1.0


def _metric_rows(run_dir):
    cols = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return"]
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: r[k] for k in cols} for r in csv.DictReader(f)]


@pytest.mark.parametrize("env, kwargs", [("matrix/m-step", {"steps": 4}), ("vmas/balance", {"max_steps": 20})])
def test_resumed_run_reproduces_the_uninterrupted_metrics(tmp_path, env, kwargs):
    base = dict(algo="qmix", env=env, env_kwargs=kwargs, num_envs=8, frames=8 * 20 * 8, frames_per_batch=160,
                batch_size=32, updates_per_batch=2, eps_frames=600, progress=False, checkpoint_every=640,
                eval_every=640, eval_episodes=2)
    vd.train(vd.TrainConfig(**base, out_dir=str(tmp_path / "full")))
    vd.train(vd.TrainConfig(**{**base, "frames": 640}, out_dir=str(tmp_path / "part")))  # "killed" at 640
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 1280}))
    assert resumed.summary["frames"] == 1280
    full, part = _metric_rows(tmp_path / "full"), _metric_rows(tmp_path / "part")
    assert len(full) == len(part) == 8
    assert full == part


@pytest.mark.parametrize("seeds", [None, (0, 1)])
def test_an_evaluation_after_the_last_batch_is_the_final_one(tmp_path, monkeypatch, seeds):
    """eval_every dividing frames: the evaluation logged after the last batch is summary.json's final one, not
    repeated (same weights, env and seed); otherwise the final evaluation runs once more after training."""
    from torchrl_vd.train import evaluation

    calls = []
    real = evaluation.return_stats

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(importlib.import_module("torchrl_vd.train.loop"), "return_stats", counted)  # once per seed
    base = dict(algo="vdn", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=8 * 4 * 4,
                frames_per_batch=32, batch_size=32, updates_per_batch=2, progress=False, eval_episodes=2,
                seeds=seeds)
    for every, expected in ((64, 2), (96, 2)):  # evaluations at 64, 128 (= final) / at 96, then a final one
        calls.clear()
        result = vd.train(vd.TrainConfig(**base, eval_every=every, out_dir=str(tmp_path / str(every))))
        n = 1 if seeds is None else len(seeds)
        assert len(calls) == expected * n
        runs = [result] if seeds is None else result.runs
        for run in runs:
            logged = [r["eval_return"] for r in run.metrics if r["eval_return"] == r["eval_return"]]
            assert len(logged) == 2 if every == 64 else len(logged) == 1
            if every == 64:
                assert run.summary["final_eval_return"] == logged[-1]


def test_cli_train_writes_the_run_directory_and_eval_plot_work(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["train", "--algo", "vdn", "--env", "matrix/climbing", "--frames", "2048", "--out", str(out),
                   "--quiet", "--set", "num_envs=64", "--set", "frames_per_batch=256", "--set", "eval_every=1024",
                   "--set", "loggers=[\"csv\",\"tensorboard\"]"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2048 and summary["frames_per_s"] > 0
    rows = _metric_rows(out)
    assert [int(r["frames"]) for r in rows] == list(range(256, 2049, 256))
    assert any(r["eval_return"] not in ("", "nan") for r in rows)
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert list(out.rglob("events.out.tfevents*")), "TensorBoard events missing"
    # eval rebuilds the run from its checkpoint and re-seeds its env as the trainer's final evaluation does
    # (seed + 10_000, as many episodes): the same greedy policy on the same episodes, the same returns
    assert cli_main(["eval", str(out), "--episodes", str(summary["eval_episodes"])]) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    assert evaluated["episodes"] == summary["eval_episodes"] == 16
    assert evaluated["eval_return"] == summary["final_eval_return"]
    assert evaluated["eval_return_std"] == summary["final_eval_return_std"]
    # and the same IGM gap on those states (VDN is additive: IGM holds everywhere, gap 0)
    assert evaluated["igm_violation_rate"] == summary["final_igm_violation_rate"] == 0.0
    assert evaluated["igm_value_gap"] == summary["final_igm_value_gap"]
    png = tmp_path / "both.png"
    assert cli_main(["plot", str(out), str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_short_vmas_run_through_the_console_script(tmp_path):
    """The README's main job, shortened: the installed `torchrl-vd` script on VMAS balance."""
    out = tmp_path / "vmas"
    exe = Path(sys.executable).with_name("torchrl-vd")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "torchrl_vd"]),
           "train", "--algo", "qmix", "--env", "vmas/balance", "--frames", "4000", "--out", str(out),
           "--set", "num_envs=20", "--set", "frames_per_batch=2000", "--set", "updates_per_batch=20"]
    root = str(Path(__file__).resolve().parents[1])  # the script imports this checkout's torchrl_vd
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frames" in proc.stderr  # the progress bar
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4000 and summary["updates"] == 40
    # seed 0, measured on CPU (the same in repeated runs, with 1 or the default number of threads); float32: rel 1e-6
    final = (summary["final_eval_return"], summary["final_eval_return_std"], summary["eval_episodes"])
    assert final == pytest.approx((-34.176128, 8.992572, 16), rel=1e-6)
    # eval reloads the checkpoint and renders one greedy VMAS episode to a GIF; on the final evaluation's
    # episodes (same count, same seed: VMAS draws the same initial positions) it gives the same returns
    assert cli_main(["eval", str(out), "--episodes", str(summary["eval_episodes"]),
                     "--render", str(out / "episode.gif")]) == 0
    evaluated = json.loads((out / "eval.json").read_text())
    assert (evaluated["eval_return"], evaluated["eval_return_std"]) == (
        summary["final_eval_return"], summary["final_eval_return_std"])
    assert (evaluated["igm_violation_rate"], evaluated["igm_value_gap"]) == (
        summary["final_igm_violation_rate"], summary["final_igm_value_gap"])
    from PIL import Image

    gif = Image.open(out / "episode.gif")
    assert gif.n_frames > 10 and gif.size[0] > 100


def test_bad_config_values_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="lr must be > 0"):
        vd.TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match=r"eps_start must lie in \[0, 1\]"):
        vd.TrainConfig(eps_start=1.5)
    with pytest.raises(ValueError, match="must be divisible by num_envs"):
        vd.TrainConfig(num_envs=32, frames_per_batch=1000)
    with pytest.raises(ValueError, match="Unknown config key 'lrr'. Did you mean lr"):
        vd.TrainConfig().with_overrides(["lrr=0.1"])
    with pytest.raises(ValueError, match="Option 'frames' expects int, got 'lots'"):
        vd.TrainConfig().with_overrides(["frames=lots"])
    with pytest.raises(ValueError, match="Did you mean qmix"):
        vd.train(vd.TrainConfig(algo="qmx"))
    with pytest.raises(ValueError, match="Did you mean"):
        vd.make_env("matrix/qtrn")


def test_sigint_writes_a_checkpoint_and_the_run_resumes(tmp_path):
    """Ctrl-C mid-run: the trainer checkpoints at the end of the batch, exits cleanly, and --resume finishes."""
    import signal
    import time

    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "torchrl_vd", "train", "--algo", "vdn", "--env", "matrix/m-step", "--frames", "400000",
           "--out", str(out), "--quiet", "--set", "num_envs=16", "--set", "frames_per_batch=256",
           "--set", "updates_per_batch=4", "--set", "env_kwargs.steps=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = out / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["frames"] < 400_000
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["frames"] == summary["frames"] and len(_metric_rows(out)) == summary["frames"] // 256
    rc = cli_main(["train", "--resume", str(out), "--quiet", "--set", f"frames={summary['frames'] + 512}"])
    assert rc == 0
    rows = _metric_rows(out)
    assert int(rows[-1]["frames"]) == summary["frames"] + 512
    assert [int(r["frames"]) for r in rows] == list(range(256, summary["frames"] + 513, 256))


# ------------------------------------------------------------------------------- PNGs beside the final evaluation
def test_beside_runs_in_a_forked_child_or_here_when_forking_is_unsafe(tmp_path, monkeypatch):
    import os

    from torchrl_vd.train import threads

    where = tmp_path / "pid"
    monkeypatch.setattr(threads, "fork_is_safe", lambda device="cpu": True)  # earlier tests may leave threads
    wait = threads.beside(lambda: where.write_text(str(os.getpid())))
    wait()
    assert int(where.read_text()) != os.getpid()  # a child wrote it
    with pytest.raises(RuntimeError, match="forked child failed"):
        threads.beside(lambda: 1 / 0)()
    monkeypatch.setattr(threads, "fork_is_safe", lambda device="cpu": False)
    threads.beside(lambda: where.write_text(str(os.getpid())))()
    assert int(where.read_text()) == os.getpid()  # drawn here, at once


@pytest.mark.parametrize("forkable", [True, False])
def test_learning_curves_are_drawn_beside_and_failures_are_named(tmp_path, monkeypatch, forkable):
    from torchrl_vd.train import threads
    from torchrl_vd.train.plot import draw_beside

    monkeypatch.setattr(threads, "fork_is_safe", lambda device="cpu": forkable)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("frames,train_return,eval_return\n100,1.0,nan\n200,2.0,3.0\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    good, bad = tmp_path / "out" / "curve.png", blocker / "curve.png"  # bad: its folder is a file
    finish = draw_beside([([run], good, "t"), ([run], bad, "t")])
    if forkable:  # the child fails on the bad path: warned, then both drawn here to name the error
        with pytest.warns(RuntimeWarning, match="forked child failed; drawing them here"):
            errors = finish()
    else:
        errors = finish()
    assert good.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(errors) == [str(bad)]
    assert errors[str(bad)].startswith(("FileExistsError", "NotADirectoryError"))  # mkdir of a file's path


# ------------------------------------------------------------------------------------------------- win rates
def test_win_rates_count_the_won_episodes():
    """win_rate (a collected batch's finished episodes) and eval_win_rate (each env's first episode) on a
    hand-made batch of 3 envs x 4 steps; envs without ("next", "battle_won") log neither."""
    from tensordict import TensorDict

    from torchrl_vd.train.evaluation import win_stats
    from torchrl_vd.train.run_files import metric_row

    done = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)  # 4 finished episodes
    won = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)  # 2 of them won
    batch = TensorDict({"next": {"done": done.unsqueeze(-1), "episode_reward": torch.ones(3, 4, 1),
                                 "battle_won": won.unsqueeze(-1)}}, batch_size=[3, 4])
    row = metric_row(batch, frames=12, updates=0, eps=1.0, loss=None, evaluation={}, fps=1.0, elapsed=1.0,
                     times=(0.0, 0.0, 0.0), cpu_time=0.0)
    assert row["win_rate"] == 0.5 and row["episodes"] == 4
    valid = (done.long().cumsum(-1) - done.long()) == 0  # up to and including the first done
    assert win_stats(batch, valid) == {"eval_win_rate": pytest.approx(2 / 3)}  # envs 0 and 1 won their first
    del batch["next", "battle_won"]
    assert win_stats(batch, valid) == {}
    assert "win_rate" not in metric_row(batch, frames=12, updates=0, eps=1.0, loss=None, evaluation={}, fps=1.0,
                                        elapsed=1.0, times=(0.0, 0.0, 0.0), cpu_time=0.0)
