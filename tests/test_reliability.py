"""Reliability: bad inputs rejected clearly, reproducible runs for every algorithm, seed properties."""

import csv
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from _helpers import env_family
from hypothesis import strategies as st
from torchrl.envs import Transform, TransformedEnv

import torchrl_vd as vd
from torchrl_vd.envs.matrix import make_matrix_env
from torchrl_vd.testing import random_batch
from torchrl_vd.train.algos import algorithms

DETERMINISTIC_COLUMNS = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return"]


def _rows(run_dir):
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: r[k] for k in DETERMINISTIC_COLUMNS} for r in csv.DictReader(f)]


def tiny_cfg(algo, env, out_dir, **kw):
    base = dict(algo=algo, env=env, num_envs=8, frames=8 * 16 * 3, frames_per_batch=8 * 16, batch_size=32,
                updates_per_batch=2, eps_frames=200, progress=False, out_dir=str(out_dir), eval_every=128,
                eval_episodes=2, hidden=(16,), seed=3)
    base.update(kw)
    spec = algorithms()[algo]
    base = {k: v for k, v in base.items() if k not in spec.not_used}  # PQN: no replay buffer, its own ε schedule
    return vd.TrainConfig(**{**spec.presets, **base})  # e.g. MAVEN's GRU agent


@pytest.mark.parametrize("algo", sorted(algorithms()))
@pytest.mark.parametrize("env, env_kwargs", [("matrix/m-step", {"steps": 4}), ("vmas/balance", {"max_steps": 16})])
def test_same_seed_gives_identical_metrics(tmp_path, algo, env, env_kwargs):
    a = vd.train(tiny_cfg(algo, env, tmp_path / "a", env_kwargs=env_kwargs))
    b = vd.train(tiny_cfg(algo, env, tmp_path / "b", env_kwargs=env_kwargs))
    assert _rows(a.out_dir) == _rows(b.out_dir)
    assert len(_rows(a.out_dir)) == 3


class _NaNRewardAt(Transform):
    """Test env corruption: the reward of env 1 turns NaN at its step ``at``."""

    def __init__(self, at):
        super().__init__(in_keys=[], out_keys=[])
        self.at, self.t = at, 0

    def _step(self, td, next_td):
        self.t += 1
        if self.t == self.at:
            next_td["reward"][1] = float("nan")
        return next_td

    def _reset(self, td, td_reset):
        return td_reset


def _make_nan_env(task, *, num_envs, device, seed, at=3, **kw):
    return TransformedEnv(make_matrix_env(task, num_envs=num_envs, device=device, seed=seed, **kw), _NaNRewardAt(at))


@pytest.fixture
def nan_family():
    """Matrix games whose reward turns NaN, as the env family ``test-nan`` for the test's duration."""
    with env_family("test-nan", _make_nan_env, examples=["qtran"],
                    description="matrix games whose reward turns NaN (tests)"):
        yield


def test_nan_reward_from_the_env_is_reported_with_env_and_step(tmp_path, nan_family):
    cfg = tiny_cfg("qmix", "test-nan/qtran", tmp_path, env_kwargs={"at": 3})
    with pytest.raises(ValueError, match=r"Non-finite reward from env 1 at step 2 of the batch starting at frame 0"):
        vd.train(cfg)


def test_corrupt_and_incompatible_checkpoints_are_clear_errors(tmp_path):
    run = tmp_path / "run"
    vd.train(tiny_cfg("vdn", "matrix/qtran", run, frames=256, frames_per_batch=128, num_envs=8))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt, not a torchrl-vd checkpoint"):
        vd.train_config_for_resume(tmp_path / "broken")
    with pytest.raises(FileNotFoundError, match="No checkpoint.pt"):
        vd.train_config_for_resume(tmp_path / "nothing-here")
    cfg = vd.train_config_for_resume(run).with_overrides({"hidden": [32], "frames": 512})
    with pytest.raises(ValueError, match=r"hidden is \[16\] in this run .*, not \[32\]; resume keeps it"):
        vd.train(cfg)  # a setting that shapes the networks: refused by name before anything is built
    # networks that no longer fit their checkpoint (the code that builds them changed): a short, named mismatch
    from torchrl_vd.train.checkpoint import load_checkpoint, restore_modules

    other = vd.train(tiny_cfg("vdn", "matrix/qtran", tmp_path / "other", frames=128, frames_per_batch=128,
                              num_envs=8, hidden=(32,))).loss_module
    with pytest.raises(ValueError, match=r"The checkpoint's loss module does not match the one built from its config: "
                                         r"\d+ of another shape \(local_value_network_params\.module\.0\.module\.net\.0\.weight: saved \[16, \d+\], "
                                         r"built \[32, \d+\]\)\. The code that builds it changed"):
        restore_modules(load_checkpoint(run), other)


def test_continuous_action_env_is_rejected_with_the_fix():
    from torchrl.envs.libs.vmas import VmasEnv

    env = VmasEnv("balance", num_envs=2, continuous_actions=True)
    with pytest.raises(ValueError, match="discrete actions"):
        vd.describe_env(env)


def test_loss_rejects_wrong_observation_width_and_action_range():
    loss = vd.MixingQLoss(vd.MLPAgent(2, 3, 4), vd.VDNMixer(2))
    td = random_batch(obs_dim=5)
    with pytest.raises(ValueError, match="obs_dim=4"):
        loss(td)
    td = random_batch()
    td["agents", "action"][2, 0] = 7
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        loss(td)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), batch=st.integers(1, 8), seed=st.integers(0, 1000))
def test_vdn_additivity_property(n, batch, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n, 1, generator=g) * 10
    out = vd.VDNMixer(n)(q, None)
    torch.testing.assert_close(out, q.sum(-2))
    # adding c to one agent's utility adds exactly c to Q_tot
    q2 = q.clone()
    q2[:, 0] += 3.0
    torch.testing.assert_close(vd.VDNMixer(n)(q2, None) - out, torch.full_like(out, 3.0))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 3), A=st.integers(2, 4), mixer=st.sampled_from(["vdn", "qmix"]), seed=st.integers(0, 1000),
       masked=st.booleans())
def test_check_igm_holds_for_every_monotonic_mixer(n, A, mixer, seed, masked):
    """Seed §IGM: a monotonic mixer (VDN, QMIX with any weights) satisfies IGM on any input."""
    torch.manual_seed(seed)
    agent = vd.MLPAgent(n, A, 4, hidden=(8,))
    mix = vd.VDNMixer(n) if mixer == "vdn" else vd.QMixer(n, (n * 4,), mixing_embed_dim=8)
    loss = vd.MixingQLoss(agent, mix)
    td = random_batch(n_agents=n, n_actions=A, obs_dim=4, batch=6, action_mask=masked, seed=seed)
    report = vd.check_igm(loss, td)
    assert report.enumerated and report.joint_q.shape == (6, *([A] * n))
    assert report.holds.all(), report.gap


def test_check_igm_detects_a_non_monotonic_mixer():
    class NegatedVDN(vd.Mixer):
        needs_state = False
        monotonic = False

        def mix(self, utilities, state):
            return -utilities.sum(-1, keepdim=True)  # argmax of Q_tot = argmin of the utilities

    torch.manual_seed(0)
    loss = vd.MixingQLoss(vd.MLPAgent(2, 3, 4), NegatedVDN(2))
    report = vd.check_igm(loss, random_batch(batch=16))
    assert not report.holds.any()
    assert (report.joint_argmax != report.local_argmax).any(-1).all()
    assert (report.gap > 0).all()
