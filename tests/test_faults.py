"""Fault injection: kill -9 at any instant loses at most one checkpoint interval, a damaged checkpoint is
detected and the previous one used, a full disk is a clear error that leaves the previous checkpoint intact,
and a dead collector worker is reported (which worker, what to do), never a hang.

The kill tests fork the training process (this process has torch imported already: a fork starts training
in milliseconds), SIGKILL it at random instants, resume it (``TrainConfig(resume=...)``, what
``torchrl-vd train --resume`` runs) until it finishes, then compare its metrics.csv with an uninterrupted
run of the same seed: checkpoints fall on episode boundaries, so a resumed run equals the uninterrupted one
exactly (single collector, CPU), row for row.
"""

from __future__ import annotations

import csv
import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _checkpoint_faults import die_in_checkpoint_write

import torchrl_vd as vd
from torchrl_vd.train import checkpoint as ckpt_mod
from torchrl_vd.train.checkpoint import load_checkpoint

DETERMINISTIC = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return"]


def rows(run_dir) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: r[k] for k in DETERMINISTIC} for r in csv.DictReader(f)]


def tiny(out_dir, **kw) -> vd.TrainConfig:
    """matrix/m-step (4 steps): 64 frames per batch, a checkpoint every 2 batches, 16 batches."""
    base = dict(algo="qmix", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=64 * 16,
                frames_per_batch=64, batch_size=32, updates_per_batch=2, eps_frames=500, hidden=(16,),
                checkpoint_every=128, eval_every=256, eval_episodes=2, progress=False, seed=5, out_dir=str(out_dir))
    return vd.TrainConfig(**{**base, **kw})


def tiny_vmas(out_dir, **kw) -> vd.TrainConfig:
    return tiny(out_dir, env="vmas/balance", env_kwargs={"max_steps": 16}, num_envs=4, frames_per_batch=64,
                frames=64 * 24, **kw)


def _child(cfg: vd.TrainConfig, fault: str | None) -> None:
    if fault:  # "STAGE:N": die at STAGE of this process's N-th checkpoint write (tests/_checkpoint_faults.py)
        die_in_checkpoint_write(fault)
    import warnings

    warnings.simplefilter("ignore")
    vd.train(cfg)


def _metrics_rows(out_dir: Path) -> int:
    try:
        return max(0, len((out_dir / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def run_forked(cfg: vd.TrainConfig, kill_after: float | tuple[int, float] | None = None, fault: str | None = None,
               timeout: float = 120) -> int:
    """Train ``cfg`` in a forked process; SIGKILL it after ``kill_after`` s, or, for ``(rows, delay)``, ``delay`` s
    after it logged ``rows`` new metrics rows (None: let it finish). Returns the exit code."""
    global last_run_s
    t = time.perf_counter()
    rows0 = _metrics_rows(Path(cfg.out_dir))
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(cfg, fault))
    proc.start()
    if isinstance(kill_after, tuple):  # an instant inside the run, however slow the machine is
        new_rows, delay = kill_after
        while proc.is_alive() and _metrics_rows(Path(cfg.out_dir)) < rows0 + new_rows:
            time.sleep(0.005)
        kill_after = delay
    proc.join(timeout if kill_after is None else kill_after)
    if proc.is_alive():
        if kill_after is None:
            proc.kill()
            proc.join()
            raise AssertionError(f"training did not finish within {timeout} s")
        os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    last_run_s = time.perf_counter() - t
    return proc.exitcode


last_run_s = 0.0  # wall time of the last run_forked


def kill_and_resume(make_cfg, base_dir: Path, n_kills: int, batch_time: float, rng: random.Random,
                    faults: dict[int, str] | None = None) -> dict:
    """Train, SIGKILL the process at a random instant (after a random 0-3 new metrics rows, then a random
    delay of up to one batch's wall time, ``batch_time``) and resume it after every kill, until ``n_kills``
    kills; the last run is then resumed until it finishes. A run that finishes before its kill is checked and
    a new one started (``base_dir/run<k>``). ``faults``: kill number -> checkpoint fault (that attempt dies
    inside a checkpoint write instead). Counts what happened."""
    counts = {"kills": 0, "kills_in_checkpoint_write": 0, "resumes": 0, "restarts_from_0": 0,
              "finished_before_their_kill": 0, "killed_before_any_file": 0}
    faults = faults or {}
    runs, out, killed = [], base_dir / "run0", False
    for _ in range(20 * n_kills + 1):
        kill_after = (rng.randint(0, 3), rng.uniform(0.0, batch_time)) if counts["kills"] < n_kills else None
        fault = faults.get(counts["kills"]) if kill_after is not None else None
        if (out / "config.json").exists():
            cfg = make_cfg(out, resume=str(out))
            counts["resumes"] += 1
            counts["restarts_from_0"] += load_checkpoint(out, missing_ok=True) is None
        else:
            cfg = make_cfg(out)
            counts["killed_before_any_file"] += killed  # killed before config.json: a start again, not a resume
        code = run_forked(cfg, kill_after=None if fault else kill_after, fault=fault)
        killed = code == -signal.SIGKILL
        if killed:
            counts["kills"] += 1
            counts["kills_in_checkpoint_write"] += fault is not None
            continue
        assert code == 0, f"exited with {code}"
        runs.append(out)
        if kill_after is None:
            break
        counts["finished_before_their_kill"] += 1
        out = base_dir / f"run{len(runs)}"  # the kill comes too late for this run: aim it at a new one
    else:
        raise AssertionError(f"no progress: {counts}")
    counts["finished_runs"] = runs
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of :func:`tiny` (same seed), and its wall time per batch."""
    out = tmp_path_factory.mktemp("ref")
    result = vd.train(tiny(out / "run"))
    return rows(out / "run"), result.summary["wall_time_s"] / len(result.metrics)


def _check_finished_like(reference_rows, out_dir: Path, frames: int, per_batch: int) -> None:
    got = rows(out_dir)
    assert [int(r["frames"]) for r in got] == list(range(per_batch, frames + 1, per_batch))  # contiguous rows
    assert json.loads((out_dir / "summary.json").read_text())["frames"] == frames
    assert got == reference_rows  # bit-exact: resumed from complete checkpoints only


def test_sigkill_at_20_random_instants_always_resumes_to_the_uninterrupted_result(tmp_path, reference):
    """20 kills: 16 at random instants, 4 inside checkpoint writes (temp file half written, temp file complete,
    previous kept but the new one not renamed, and mid-write again); every run ends equal to the reference."""
    ref_rows, batch_time = reference
    faults = {2: "write:2", 7: "written:1", 11: "linked:2", 16: "write:1"}  # kill number -> dies in a checkpoint
    counts = kill_and_resume(tiny, tmp_path, 20, batch_time, random.Random(19), faults)
    print(f"\nkills {counts}, uninterrupted run {batch_time:.3f} s per batch")
    for out in counts["finished_runs"]:
        _check_finished_like(ref_rows, out, 64 * 16, 64)
        assert not (out / "checkpoint.pt.tmp").exists()
    assert counts["kills"] == 20 and counts["kills_in_checkpoint_write"] == 4
    # every kill was followed by a resume (or, killed before writing config.json, a start), each run finished
    assert counts["resumes"] + counts["killed_before_any_file"] == counts["kills"]


@pytest.mark.slow
def test_sigkill_at_100_random_instants_on_vmas(tmp_path):
    ref = tmp_path / "ref"
    result = vd.train(tiny_vmas(ref))
    batch_time = result.summary["wall_time_s"] / len(result.metrics)
    rng = random.Random(7)
    faults = {i: f"{rng.choice(['write', 'written', 'linked'])}:{rng.randint(1, 3)}" for i in range(5, 100, 9)}
    counts = kill_and_resume(tiny_vmas, tmp_path, 100, batch_time, rng, faults)
    print(f"\nkills {counts}, uninterrupted run {batch_time:.3f} s per batch")
    for out in counts["finished_runs"]:
        _check_finished_like(rows(ref), out, 64 * 24, 64)
    assert counts["kills"] == 100 and counts["resumes"] + counts["killed_before_any_file"] == counts["kills"]


@pytest.mark.parametrize("stage", ["write", "written", "linked"])
def test_a_kill_inside_a_checkpoint_write_leaves_the_last_complete_one(tmp_path, reference, stage):
    out = tmp_path / "run"
    assert run_forked(tiny(out), fault=f"{stage}:3") == -signal.SIGKILL  # dies writing the frame-384 checkpoint
    state = load_checkpoint(out)  # no warning needed: checkpoint.pt is still the frame-256 one
    assert state["frames"] == 256
    assert (out / "checkpoint.prev.pt").exists()
    assert run_forked(tiny(out, resume=str(out))) == 0
    _check_finished_like(reference[0], out, 64 * 16, 64)


def _write_two_checkpoints(run_dir: Path, fault: str) -> None:
    die_in_checkpoint_write(fault)
    for k in (1, 2):
        state = {"format_version": ckpt_mod.FORMAT_VERSION, "frames": k, "w": torch.full((4096,), float(k))}  # 16 KiB
        ckpt_mod.write_checkpoint_file(run_dir / ckpt_mod.CHECKPOINT, {**state, "sha256": ckpt_mod.state_digest(state)})


@pytest.mark.parametrize("stage", ["write", "written", "linked"])
def test_the_injected_fault_dies_at_the_stage_it_names(tmp_path, stage):
    """tests/_checkpoint_faults.py kills the second of two checkpoint writes where the files show it: a half
    temp file (write), a complete temp file beside the old checkpoint (written), the old one also kept as
    checkpoint.prev.pt, a hard link (linked)."""
    proc = multiprocessing.get_context("fork").Process(target=_write_two_checkpoints, args=(tmp_path, f"{stage}:2"))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    latest, tmp, prev = (tmp_path / name for name in (ckpt_mod.CHECKPOINT, ckpt_mod.TEMP, ckpt_mod.PREVIOUS))
    assert ckpt_mod.read_checkpoint_file(latest)["frames"] == 1
    if stage == "write":
        assert 4096 < tmp.stat().st_size < latest.stat().st_size  # 4 KiB flushed, not the whole file
        with pytest.raises(ValueError, match="is corrupt"):
            ckpt_mod.read_checkpoint_file(tmp)
    else:
        assert ckpt_mod.read_checkpoint_file(tmp)["frames"] == 2
    assert prev.exists() == (stage == "linked")
    if stage == "linked":
        assert os.path.samefile(prev, latest)


# ------------------------------------------------------------------------------- damaged checkpoint files
@pytest.fixture
def two_checkpoints(tmp_path):
    """A finished run: checkpoint.pt at 512 frames, checkpoint.prev.pt at 384."""
    out = tmp_path / "run"
    vd.train(tiny(out, frames=512))
    assert load_checkpoint(out)["frames"] == 512
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_tensor_bit(path: Path) -> None:
    """Flip one bit of a tensor inside the checkpoint and save it again with its old sha256: what a flipped
    bit on disk looks like once the zip container has been read."""
    state = torch.load(path, weights_only=True)
    w = next(v for v in state["loss_module"].values() if v.is_floating_point() and v.numel() > 4)
    w.view(-1).view(torch.int32)[3] ^= 1 << 12
    torch.save(state, path)


def _flip_a_byte(path: Path) -> None:
    # a byte of the zip's central directory (the file's index): a flip in the middle of the file can land in
    # the archive's alignment padding, which holds no data (the load is then correct, nothing to detect)
    data = bytearray(path.read_bytes())
    data[-60] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_a_tensor_bit, _flip_a_byte])
def test_a_damaged_latest_checkpoint_is_detected_and_the_previous_one_used(two_checkpoints, damage, reference):
    out = two_checkpoints
    damage(out / "checkpoint.pt")
    with pytest.warns(RuntimeWarning, match=r"latest checkpoint could not be used .*checkpoint\.pt.*; using the "
                                            r"previous one, .*checkpoint\.prev\.pt \(frame 384\)"):
        state = load_checkpoint(out)
    assert state["frames"] == 384
    with pytest.warns(RuntimeWarning, match="using the previous one"):
        result = vd.train(vd.train_config_for_resume(out).with_overrides({"frames": 1024}))
    assert result.summary["frames"] == 1024
    assert rows(out) == reference[0]  # frames 384-512 trained again, exactly as the first time


def test_the_checksum_catches_what_the_container_does_not(two_checkpoints):
    path = two_checkpoints / "checkpoint.pt"
    _flip_a_tensor_bit(path)
    torch.load(path, weights_only=True)  # the file itself reads fine
    with pytest.raises(ValueError, match=r"checkpoint\.pt is corrupt: its contents do not match the sha256"):
        ckpt_mod.read_checkpoint_file(path)


def test_both_checkpoints_damaged_is_an_error_naming_both_files(two_checkpoints):
    out = two_checkpoints
    _truncate(out / "checkpoint.pt")
    _flip_a_tensor_bit(out / "checkpoint.prev.pt")
    with pytest.raises(ValueError, match=r"Both checkpoints of .* are unusable: .*checkpoint\.pt is corrupt.* AND "
                                         r".*checkpoint\.prev\.pt is corrupt: its contents do not match the sha256"):
        vd.train_config_for_resume(out)


# ------------------------------------------------------------------------------------------- full disk
class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes (a disk filling up mid-checkpoint)."""

    def __init__(self, path, room):
        self.f, self.room = open(path, "wb"), room

    def write(self, b):
        if self.room < len(b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    calls = []

    def open_for_write(path):
        calls.append(path)
        return _FullDisk(path, room=10**9 if len(calls) < 3 else 2000)  # the third checkpoint finds the disk full

    monkeypatch.setattr(ckpt_mod, "_open_for_write", open_for_write)
    with pytest.raises(OSError, match=r"Could not write the checkpoint .*checkpoint\.pt \(No space left on device\); "
                                      r"the previous checkpoint .*checkpoint\.pt is intact\. Free disk space .*"
                                      r"torchrl-vd train --resume") as err:
        vd.train(tiny(out))
    assert err.value.errno == errno.ENOSPC
    assert not (out / "checkpoint.pt.tmp").exists()
    assert load_checkpoint(out)["frames"] == 256  # the second checkpoint, untouched
    monkeypatch.undo()  # space freed: the run continues from it
    vd.train(vd.train_config_for_resume(out))
    _check_finished_like(reference[0], out, 64 * 16, 64)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, reference):
    out = tmp_path / "run"
    assert run_forked(tiny(out), fault="write:1") == -signal.SIGKILL
    assert load_checkpoint(out, missing_ok=True) is None and (out / "metrics.csv").exists()
    with pytest.warns(RuntimeWarning, match="has no checkpoint yet .* starting it again from frame 0"):
        vd.train(vd.train_config_for_resume(out))
    _check_finished_like(reference[0], out, 64 * 16, 64)


def test_a_run_killed_after_its_final_checkpoint_only_finishes(tmp_path, reference):
    out = tmp_path / "run"
    vd.train(tiny(out))
    (out / "summary.json").unlink()  # killed between the final checkpoint and summary.json
    result = vd.train(vd.train_config_for_resume(out))
    assert result.summary["frames"] == 64 * 16 and result.summary["checkpoints"] == 0
    _check_finished_like(reference[0], out, 64 * 16, 64)
    with pytest.raises(ValueError, match="already reached 1024 frames"):
        vd.train(vd.train_config_for_resume(out))


# ------------------------------------------------------------------------------ dead collector workers
_WORKER_KILL = textwrap.dedent("""
    import os, signal, sys, threading, time, psutil
    import torchrl_vd as vd
    collector, out = sys.argv[1], sys.argv[2]
    cfg = vd.TrainConfig(algo="vdn", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=128 * 400,
                         frames_per_batch=128, updates_per_batch=2, batch_size=32, checkpoint_every=256,
                         collector=collector, num_workers=2, progress=False, out_dir=out, hidden=(16,))
    if collector == "ray":
        import ray
        from torchrl_vd.train.threads import ray_workers_at_normal_priority
        ray_workers_at_normal_priority()
        ray.init(num_cpus=2, include_dashboard=False)

    def killer():
        metrics = os.path.join(out, "metrics.csv")
        while not (os.path.exists(metrics) and len(open(metrics).read().splitlines()) >= 4):
            time.sleep(0.1)
        me = psutil.Process()
        kids = [p for p in me.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
                or "ray::" in " ".join(p.cmdline())]
        victim = kids[-1]
        print("KILLED", victim.pid, flush=True)
        victim.kill()

    threading.Thread(target=killer, daemon=True).start()
    vd.train(cfg)
""")


@pytest.mark.parametrize("collector", ["async", pytest.param("multi", marks=pytest.mark.slow),
                                       pytest.param("ray", marks=pytest.mark.slow)])
def test_a_killed_collector_worker_is_reported_never_a_hang(tmp_path, collector):
    if collector == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _WORKER_KILL, collector, str(out)], capture_output=True, text=True,
                          timeout=400, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert "KILLED" in proc.stdout, proc.stderr[-3000:]
    if collector == "ray" and proc.returncode == 0:  # Ray restarted the process it lost: the run finished
        assert json.loads((out / "summary.json").read_text())["frames"] == 128 * 400
        return
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"RuntimeError: collector={collector!r}: "), proc.stderr[-3000:]
    if collector != "ray":
        pid = proc.stdout.split("KILLED")[1].split()[0]
        assert f"(pid {pid}, killed by SIGKILL) stopped mid-run" in last
    assert f"continue it from its last checkpoint with `torchrl-vd train --resume {out}`" in last
    # and it does continue
    state = load_checkpoint(out)
    cfg = vd.train_config_for_resume(out).with_overrides({"frames": state["frames"] + 256, "collector": "single"})
    assert vd.train(cfg).summary["frames"] == state["frames"] + 256
