"""Collection beyond one process: torchrl's multi-process collector and its Ray collector (local Ray)."""

import pytest

import torchrl_vd as vd


def linear_game_cfg(collector, out_dir):
    # matrix/linear pays [[1, 5], [5, 9]]: greedy play earns 9, uniform play 5. ε drops to 0 after the first
    # batch, so later batches earn 9 only if the workers received the new weights *and* the new ε.
    return vd.TrainConfig(algo="vdn", env="matrix/linear", num_envs=32, frames=64 * 8, frames_per_batch=64,
                          batch_size=64, updates_per_batch=40, lr=1e-2, eps_start=1.0, eps_end=0.0, eps_frames=64,
                          collector=collector, num_workers=2, progress=False, out_dir=out_dir, hidden=(16,))


@pytest.mark.parametrize("collector", ["multi", "ray"])
def test_worker_collectors_train_and_receive_weights(tmp_path, collector):
    if collector == "ray":
        ray = pytest.importorskip("ray")
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        result = vd.train(linear_game_cfg(collector, str(tmp_path / collector)))
    finally:
        if collector == "ray":
            ray.shutdown()
    rows = result.metrics
    assert [r["frames"] for r in rows] == list(range(64, 513, 64))
    assert rows[0]["train_return"] == pytest.approx(5.0, abs=1.5)  # ε = 1: uniform joint actions
    assert [r["train_return"] for r in rows[-3:]] == [9.0, 9.0, 9.0]  # workers act greedily with new weights
    assert result.summary["final_eval_return"] == 9.0


def test_worker_collector_config_is_validated():
    with pytest.raises(ValueError, match="divisible by num_workers \\* num_envs"):
        vd.TrainConfig(num_envs=32, frames_per_batch=96, collector="multi", num_workers=2)
    with pytest.raises(ValueError, match="collector must be"):
        vd.TrainConfig(collector="mpi")
