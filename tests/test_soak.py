"""Long-run health (opt-in: pytest -m slow): ≥ 10 minutes of training, memory flat once the replay buffer is
full, throughput without decay. Prints the figures."""

import time

import pytest

import torchrl_vd as vd


@pytest.mark.slow
def test_ten_minute_soak_memory_and_throughput(tmp_path):
    cfg = vd.TrainConfig(algo="qmix", env="vmas/balance", env_kwargs={"max_steps": 100}, num_envs=32,
                         frames=3_000_000, frames_per_batch=3200, buffer_size=50_000, batch_size=128,
                         updates_per_batch=50, progress=False, out_dir=str(tmp_path / "soak"), eval_every=100_000)
    # stop by time: the trainer checkpoints and stops on SIGINT; here we bound frames by the measured rate
    t0 = time.time()
    result = vd.train(cfg.with_overrides({"frames": 3200 * 8}))
    per_batch = (time.time() - t0) / 8
    n_batches = max(40, int(600 / per_batch) + 1)  # >= 10 minutes
    result = vd.train(cfg.with_overrides({"frames": 3200 * n_batches, "out_dir": str(tmp_path / "soak2")}))
    rows = result.metrics
    full = [r for r in rows if r["frames"] >= 2 * cfg.buffer_size]  # buffer full, allocator settled
    rss = [r["rss_mb"] for r in full]
    rate = [3200 / (r["collect_time"] + r["update_time"]) for r in full]
    q = len(full) // 4
    early_rate, late_rate = sorted(rate[q:2 * q])[q // 2], sorted(rate[-q:])[q // 2]
    print(f"\nsoak: {result.summary['wall_time_s']:.0f} s, {len(rows)} batches, rss {rss[0]:.0f} -> {max(rss):.0f} MiB "
          f"(end {rss[-1]:.0f}), frames/s median early {early_rate:.0f} late {late_rate:.0f}")
    assert result.summary["wall_time_s"] >= 600
    assert max(rss) - rss[0] < 0.05 * rss[0] + 50  # no growth after the buffer fills
    assert late_rate > 0.75 * early_rate  # no throughput decay (noisy shared machine: 25% slack)


DETERMINISTIC = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return"]


def _train_cmd(cfg) -> list[str]:
    import json
    import sys

    return [sys.executable, "-c", "import json, sys, torchrl_vd as vd; vd.train(vd.TrainConfig.from_dict(json.loads(sys.argv[1])))",
            json.dumps(cfg.to_dict())]


@pytest.mark.slow
@pytest.mark.parametrize("minutes", [2, 30], ids=["2min", "30min"])
def test_soak_with_periodic_checkpoints_and_a_sigkill_in_the_middle(tmp_path, minutes):
    """``minutes`` of training with a checkpoint every 10 batches, SIGKILLed once around the middle and resumed:
    metrics.csv contiguous and equal (deterministic columns) to an uninterrupted run of the same seed (single
    collector, CPU), RSS flat once the replay buffer is full, no throughput decay. Runs the uninterrupted
    reference too, so it takes about 2 x ``minutes``."""
    import csv
    import os
    import signal
    import subprocess

    fpb = 1600
    cfg = vd.TrainConfig(algo="qmix", env="vmas/balance", env_kwargs={"max_steps": 50}, num_envs=32, frames=fpb * 8,
                         frames_per_batch=fpb, buffer_size=20_000, batch_size=128, updates_per_batch=25, progress=False,
                         eval_every=fpb * 20, checkpoint_every=fpb * 10, seed=11, hidden=(64, 64))
    t0 = time.time()
    vd.train(cfg.with_overrides({"out_dir": str(tmp_path / "calibrate")}))
    per_batch = (time.time() - t0) / 8
    n_batches = max(40, int(minutes * 60 / per_batch))
    cfg = cfg.with_overrides({"frames": fpb * n_batches})

    ref = subprocess.run(_train_cmd(cfg.with_overrides({"out_dir": str(tmp_path / "ref")})), capture_output=True,
                         text=True, timeout=minutes * 60 * 4 + 600)
    assert ref.returncode == 0, ref.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg.with_overrides({"out_dir": str(out)})), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = out / "metrics.csv"
    while proc.poll() is None and not (metrics.exists() and len(metrics.read_text().splitlines()) > n_batches // 2 + 3):
        time.sleep(0.2)
    time.sleep(per_batch * 0.37)  # mid-batch
    assert proc.poll() is None, "the run ended before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from torchrl_vd.train.checkpoint import load_checkpoint

    ckpt_frames = load_checkpoint(out)["frames"]
    assert ckpt_frames > 0
    resumed = vd.train(vd.train_config_for_resume(out))

    def rows(d):
        with open(d / "metrics.csv") as f:
            return list(csv.DictReader(f))

    got, want = rows(out), rows(tmp_path / "ref")
    assert [int(r["frames"]) for r in got] == list(range(fpb, fpb * n_batches + 1, fpb))
    assert [{k: r[k] for k in DETERMINISTIC} for r in got] == [{k: r[k] for k in DETERMINISTIC} for r in want]
    # health of the resumed process (rows after the checkpoint it resumed from), once the buffer is full
    after = [r for r in resumed.metrics if r["frames"] >= ckpt_frames + 3 * fpb]  # buffer restored full
    rss = [r["rss_mb"] for r in after]
    rate = [fpb / (r["collect_time"] + r["update_time"]) for r in after]
    q = max(1, len(after) // 4)
    early, late = sorted(rate[:q])[q // 2], sorted(rate[-q:])[q // 2]
    print(f"\nsoak {minutes} min: {n_batches} batches, killed after frame {ckpt_frames} checkpoint, rss "
          f"{rss[0]:.0f} -> {max(rss):.0f} MiB (end {rss[-1]:.0f}), frames/s early {early:.0f} late {late:.0f}, "
          f"load {os.getloadavg()[0]:.1f}")
    assert len(after) >= 8
    assert max(rss) - rss[0] < 0.05 * rss[0] + 50
    assert late > 0.75 * early
