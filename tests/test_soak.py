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
