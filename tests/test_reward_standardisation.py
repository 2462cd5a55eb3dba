"""``standardise_rewards`` (train/reward_standardisation.py ``RunningRewardStats``): equal to EPyMARL's ``RunningMeanStd`` as its
Q-learner uses it, per-seed statistics for vectorized seeds, the learner's wiring and exact resume."""

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.train.reward_standardisation import RunningRewardStats


class EPyMARLRunningMeanStd:
    """uoe-agents/epymarl src/components/standarize_stream.py (Apache-2.0), for testing only: the running
    statistics its q_learner.py updates with ``batch["reward"][:, :-1]`` and applies as
    ``(rewards - rew_ms.mean) / th.sqrt(rew_ms.var)`` when ``standardise_rewards`` is on."""

    def __init__(self, epsilon=1e-4, shape=()):
        self.mean = torch.zeros(shape, dtype=torch.float32)
        self.var = torch.ones(shape, dtype=torch.float32)
        self.count = epsilon

    def update(self, arr):
        arr = arr.reshape(-1, arr.size(-1))
        batch_mean = torch.mean(arr, dim=0)
        batch_var = torch.var(arr, dim=0)
        batch_count = arr.shape[0]
        delta = batch_mean - self.mean
        tot_count = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot_count
        m_a = self.var * self.count
        m_b = batch_var * batch_count
        m_2 = m_a + m_b + torch.square(delta) * self.count * batch_count / (self.count + batch_count)
        self.mean, self.var, self.count = new_mean, m_2 / (self.count + batch_count), batch_count + self.count


def sparse_rewards(g, shape):
    """LBF-like team rewards: mostly 0, sometimes 0.25 or 0.5."""
    r = torch.zeros(shape)
    hit = torch.rand(shape, generator=g) < 0.05
    return torch.where(hit, torch.randint(1, 3, shape, generator=g).float() * 0.25, r)


@pytest.mark.parametrize("shape", [(32, 1), (8, 6, 1)])  # transitions [B, 1]; sequences [B, L, 1]
def test_standardised_rewards_equal_epymarls(shape):
    g = torch.Generator().manual_seed(0)
    ours, ref = RunningRewardStats(), EPyMARLRunningMeanStd(shape=(1,))
    for _ in range(50):
        r = sparse_rewards(g, shape)
        ref.update(r)
        expected = (r - ref.mean) / torch.sqrt(ref.var)
        got = ours(r)
        assert got.shape == r.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.mean.reshape(1), ref.mean, rtol=1e-6, atol=0)
    torch.testing.assert_close(ours.var.reshape(1), ref.var, rtol=1e-6, atol=0)
    assert ours.count == pytest.approx(ref.count)


def test_first_update_on_known_numbers():
    stats = RunningRewardStats()
    out = stats(torch.tensor([[0.0], [0.0], [0.0], [1.0]]))  # batch mean 0.25, unbiased var 0.25
    n, c = 4, 1e-4
    mean = 0.25 * n / (c + n)
    var = (1.0 * c + 0.25 * n + 0.25 ** 2 * c * n / (c + n)) / (c + n)
    assert stats.mean.item() == pytest.approx(mean, rel=1e-6) and stats.var.item() == pytest.approx(var, rel=1e-6)
    assert out[3].item() == pytest.approx((1 - mean) / var ** 0.5, rel=1e-6)


def test_each_seed_has_its_own_statistics():
    g = torch.Generator().manual_seed(1)
    seeds = RunningRewardStats((3,))
    singles = [RunningRewardStats() for _ in range(3)]
    for _ in range(10):
        r = sparse_rewards(g, (3, 16, 1)) * torch.tensor([1.0, 4.0, -2.0]).reshape(3, 1, 1)  # [N, B, 1]
        out = seeds(r)
        for k in range(3):
            torch.testing.assert_close(out[k], singles[k](r[k]), rtol=0, atol=1e-6)


def _cfg(tmp_path, name, **kw):
    base = dict(algo="vdn", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=8 * 4 * 8,
                frames_per_batch=32, batch_size=32, updates_per_batch=2, progress=False, eval_episodes=2,
                standardise_rewards=True, checkpoint_every=128, eval_every=128, out_dir=str(tmp_path / name))
    base.update(kw)
    return vd.TrainConfig(**base)


def test_the_learner_feeds_the_loss_standardised_rewards_and_leaves_the_buffer_alone(tmp_path, monkeypatch):
    from torchrl_vd.train import learner as learner_mod

    calls, seen = [], []
    standardise, objective = RunningRewardStats.__call__, learner_mod.Learner.objective

    def spy_stats(self, reward):
        out = standardise(self, reward)
        calls.append((reward.clone(), out))
        return out

    def spy_objective(self, sample):
        seen.append(sample["next", "reward"])
        return objective(self, sample)

    monkeypatch.setattr(RunningRewardStats, "__call__", spy_stats)
    monkeypatch.setattr(learner_mod.Learner, "objective", spy_objective)
    vd.train(_cfg(tmp_path, "run", frames=128))
    assert len(calls) == len(seen) == 8  # 4 batches x 2 updates
    assert all(out is s for (_, out), s in zip(calls, seen))  # the loss gets the standardised rewards
    raw = torch.cat([r for r, _ in calls]).unique()
    assert torch.equal(raw, raw.round()) and len(raw) > 1  # the game's integer payoffs: the buffer keeps them raw
    ref = EPyMARLRunningMeanStd(shape=(1,))
    for r, out in calls:  # the same sequence of statistics as EPyMARL's
        ref.update(r)
        torch.testing.assert_close(out, (r - ref.mean) / torch.sqrt(ref.var), rtol=0, atol=1e-5)


def test_resume_continues_the_statistics_exactly(tmp_path):
    full = vd.train(_cfg(tmp_path, "full"))
    vd.train(_cfg(tmp_path, "part", frames=128))
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 256}))
    assert [r["loss"] for r in resumed.metrics] == [r["loss"] for r in full.metrics[4:]]
    assert resumed.summary["final_eval_return"] == full.summary["final_eval_return"]


def test_reward_scale_multiplies_the_learning_reward_before_standardising(tmp_path, monkeypatch):
    """reward_scale (JaxMARL's REW_SCALE): the loss sees r x scale (then standardised when asked); logged
    returns stay in the env's units."""
    from torchrl_vd.train import learner as learner_mod

    seen = []
    objective = learner_mod.Learner.objective

    def spy(self, sample):
        seen.append(sample["next", "reward"].clone())
        return objective(self, sample)

    monkeypatch.setattr(learner_mod.Learner, "objective", spy)
    plain = vd.train(_cfg(tmp_path, "plain", frames=64, standardise_rewards=False))
    raw = torch.cat(seen)
    seen.clear()
    torch.manual_seed(0)
    scaled = vd.train(_cfg(tmp_path, "scaled", frames=64, standardise_rewards=False, reward_scale=10.0))
    assert torch.equal(torch.cat(seen), raw * 10)  # the same draws (same seed), rewards x 10
    assert [r["train_return"] for r in scaled.metrics] == [r["train_return"] for r in plain.metrics]
    seen.clear()
    vd.train(_cfg(tmp_path, "both", frames=64, reward_scale=10.0))
    ref = EPyMARLRunningMeanStd(shape=(1,))
    for r, got in zip(raw.split(32), seen):
        ref.update(r * 10)
        torch.testing.assert_close(got, (r * 10 - ref.mean) / torch.sqrt(ref.var), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="reward_scale must be a finite number > 0"):
        vd.TrainConfig(reward_scale=0)


def test_vectorized_seeds_checkpoint_and_resume_their_own_statistics(tmp_path):
    """Each seed's checkpoint holds its own statistics (RunningRewardStats.seed_state_dict); resuming stacks
    them again (stack_states) and the losses continue as in the uninterrupted run."""
    full = vd.train(_cfg(tmp_path, "full", seeds=(0, 1)))
    vd.train(_cfg(tmp_path, "part", seeds=(0, 1), frames=128))
    ckpt = torch.load(tmp_path / "part" / "seed_1" / "checkpoint.pt", weights_only=True)
    assert ckpt["reward_stats"]["mean"].shape == (1,) and ckpt["reward_stats"]["count"] > 1
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 256}))
    for k in range(2):
        assert [r["loss"] for r in resumed.runs[k].metrics] == [r["loss"] for r in full.runs[k].metrics[4:]]


# ------------------------------------------------------------------ MARLlib's per-minibatch standardisation
def marllib_standardised(team_reward, n_agents):
    """Replicable-MARL/MARLlib (MIT), for testing only: the reward its VDN/QMIX loss learns from on MPE.
    envs/global_reward_env/mpe_fcoop.py gives each of the n agents ``sum(rewards) / num_agents``; then
    marl/algos/core/VD/iql_vdn_qmix.py (``reward_standardize: True`` in its MPE runs):
        rewards = to_batches(rew, torch.float) / self.n_agents
        rewards = (rewards - rewards.mean()) / (rewards.std() + 1e-5)
    ``team_reward`` [B, T, 1] is ours (the sum over agents); MARLlib's tensor is [B, T, n_agents]."""
    rew = (team_reward / n_agents).expand(*team_reward.shape[:-1], n_agents)  # [B, T, n]: each agent's copy
    rewards = rew / n_agents
    rewards = (rewards - rewards.mean()) / (rewards.std() + 1e-5)
    return rewards[..., :1]  # [B, T, 1]: the copies are equal


@pytest.mark.parametrize("n_agents", [2, 3])
def test_batch_standardisation_equals_marllibs(n_agents):
    """standardise_rewards="batch" with reward_scale = 1/n² (the MPE suite's) gives MARLlib's learning reward."""
    from torchrl_vd.train.reward_standardisation import BatchRewardStandardiser

    g = torch.Generator().manual_seed(n_agents)
    standardise = BatchRewardStandardiser(copies=n_agents)
    for _ in range(20):
        team = -torch.rand(32, 25, 1, generator=g, dtype=torch.float64) * 6  # simple_spread-like, [B, T, 1]
        torch.testing.assert_close(standardise(team * (1 / n_agents ** 2)), marllib_standardised(team, n_agents),
                                   rtol=0, atol=1e-9)


def test_batch_standardisation_on_known_numbers_and_per_seed():
    from torchrl_vd.train.reward_standardisation import BatchRewardStandardiser

    out = BatchRewardStandardiser()(torch.tensor([[0.0], [0.0], [0.0], [4.0]]))  # mean 1, unbiased std 2
    torch.testing.assert_close(out, torch.tensor([[-1.0], [-1.0], [-1.0], [3.0]]) / (2 + 1e-5))
    two = BatchRewardStandardiser(copies=2)(torch.tensor([[0.0], [2.0]]))  # over [0, 0, 2, 2]: std sqrt(4/3)
    torch.testing.assert_close(two, torch.tensor([[-1.0], [1.0]]) / (torch.tensor(4 / 3).sqrt() + 1e-5))
    g = torch.Generator().manual_seed(3)
    r = torch.randn(3, 16, 1, generator=g) * torch.tensor([1.0, 4.0, -2.0]).reshape(3, 1, 1)  # [N, B, 1]
    seeds, single = BatchRewardStandardiser((3,)), BatchRewardStandardiser()
    out = seeds(r)
    for k in range(3):
        torch.testing.assert_close(out[k], single(r[k]), rtol=0, atol=1e-6)
    assert seeds.state_dict() == {} and BatchRewardStandardiser.stack_states([{}, {}]) == {}


def test_the_learner_standardises_each_minibatch_by_itself(tmp_path, monkeypatch):
    from torchrl_vd.train import learner as learner_mod

    seen, raw = [], []
    objective, learning = learner_mod.Learner.objective, learner_mod.Learner.learning_rewards

    def spy_learning(self, sample):
        raw.append(sample["next", "reward"].clone())
        return learning(self, sample)

    def spy_objective(self, sample):
        seen.append(sample["next", "reward"])
        return objective(self, sample)

    monkeypatch.setattr(learner_mod.Learner, "learning_rewards", spy_learning)
    monkeypatch.setattr(learner_mod.Learner, "objective", spy_objective)
    run = vd.train(_cfg(tmp_path, "batch", frames=128, standardise_rewards="batch", reward_scale=0.25))
    assert len(seen) == len(raw) == 8 and run.summary["final_eval_return"] is not None
    for r, got in zip(raw, seen):
        torch.testing.assert_close(got, marllib_standardised(r, 2), rtol=0, atol=1e-5)  # m-step: 2 agents
    assert vd.TrainConfig(standardise_rewards=True).standardise_rewards is True  # "running", as before
    with pytest.raises(ValueError, match="standardise_rewards must be False, 'running' .* or 'batch'"):
        vd.TrainConfig(standardise_rewards="per-episode")


def test_batch_standardisation_resumes_exactly_with_vectorized_seeds(tmp_path):
    full = vd.train(_cfg(tmp_path, "full", seeds=(0, 1), standardise_rewards="batch"))
    vd.train(_cfg(tmp_path, "part", seeds=(0, 1), frames=128, standardise_rewards="batch"))
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 256}))
    for k in range(2):
        assert [r["loss"] for r in resumed.runs[k].metrics] == [r["loss"] for r in full.runs[k].metrics[4:]]
