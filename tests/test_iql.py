"""Independent Q-learning (``iql``): equality with EPyMARL's learner (ported in tests/_ref_iql.py), the loss by hand,
per-agent rewards, registration, and the miscoordination published for independent learners on the climbing game."""

from __future__ import annotations

import pytest
import torch
from _pymarl import cast_and_perturb_targets, copy_into, episode_batch, make_agent, make_mac, max_grad_gap, to_tensordict
from _ref_iql import IndependentQLearner, learner_pairs
from tensordict import TensorDict

import torchrl_vd as vd
from torchrl_vd import IQLLoss
from torchrl_vd.testing import identity_agent

N, A, F, H, GAMMA = 3, 4, 5, 16, 0.9


def reference_and_ours(kind: str, dtype, double_q: bool, rewards: str):
    torch.manual_seed(0)
    ref = IndependentQLearner(make_mac(kind, N, A, F, H), gamma=GAMMA, double_q=double_q)
    cast_and_perturb_targets([ref.mac.agent], [ref.target_mac.agent], dtype)
    loss = IQLLoss(make_agent(kind, N, A, F, H), double_q=double_q, rewards=rewards).to(dtype)
    loss.make_value_estimator(gamma=GAMMA)
    copy_into(learner_pairs(loss, ref, target=False))
    copy_into(learner_pairs(loss, ref, target=True))
    return ref, loss


@pytest.mark.parametrize("rewards", ["team", "individual"])
@pytest.mark.parametrize("double_q", [True, False])
@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_loss_and_gradients_equal_epymarls_learner(kind, double_q, rewards):
    """Same weights, same padded episodes (terminated and cut, action masks): float64 to 1e-12."""
    ref, loss = reference_and_ours(kind, torch.float64, double_q, rewards)
    batch = episode_batch(6, 5, N, A, F, 7, seed=1, dtype=torch.float64)
    per_agent = torch.randn(6, 6, N, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    per_agent = per_agent * batch["filled"]  # [B, T+1, N], zero on padding as the runner stores it
    td = to_tensordict(batch)
    td["next", "agents", "reward"] = per_agent[:, :5].unsqueeze(-1)  # [B, T, N, 1]
    out = loss(td)
    out["loss"].backward()
    expected = ref.loss(batch, per_agent if rewards == "individual" else None)
    expected.backward()
    assert abs(out["loss"].item() - expected.item()) <= 1e-12 * abs(expected.item())
    assert max_grad_gap(learner_pairs(loss, ref, target=False)) <= 1e-12


def test_the_loss_by_hand_with_a_dead_agent():
    """Q_i = observation (identity agents), γ = 0.5: per-agent targets, the dead agent's term left out."""
    loss = IQLLoss(identity_agent(2, 2))
    loss.make_value_estimator(gamma=0.5)
    td = TensorDict({
        "agents": {"observation": torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), "action": torch.tensor([[1, 0]]),
                   "alive": torch.tensor([[True, False]])},
        "next": {"agents": {"observation": torch.tensor([[[0.0, 6.0], [8.0, 0.0]]]), "alive": torch.tensor([[True, True]])},
                 "reward": torch.tensor([[1.0]]), "done": torch.tensor([[False]]), "terminated": torch.tensor([[False]])},
    }, [1])
    out = loss(td)
    # agent 0: Q = 2, y = 1 + 0.5 * max(0, 6) = 4 -> (2 - 4)^2 = 4; agent 1 is dead: excluded
    assert out["loss"].item() == pytest.approx(4.0)
    assert td["td_error"].tolist() == [2.0]


def test_individual_rewards_need_per_agent_rewards_in_the_batch():
    env = vd.make_env("matrix/qtran", num_envs=4)  # one team reward, no per-agent rewards
    info = vd.describe_env(env)
    loss = IQLLoss(vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1]), rewards="individual")
    td = env.rollout(1)
    with pytest.raises(KeyError, match=r"reads each agent's own reward at \('next', 'agents', 'reward'\).*use "
                                       r"rewards='team'"):
        loss(td)
    with pytest.raises(ValueError, match="rewards must be 'team' or 'individual'"):
        IQLLoss(identity_agent(2, 2), rewards="own")


def test_registered_and_trains_with_individual_rewards_on_vmas(tmp_path):
    cfg = vd.TrainConfig(algo="iql", env="vmas/balance", env_kwargs={"max_steps": 10}, num_envs=4, frames=80,
                         frames_per_batch=40, batch_size=16, updates_per_batch=2, hidden=(16,), eval_episodes=2,
                         loss_kwargs={"rewards": "individual"}, progress=False, out_dir=str(tmp_path / "run"))
    result = vd.train(cfg)
    assert isinstance(result.loss_module, IQLLoss) and result.loss_module.rewards == "individual"
    assert result.summary["updates"] == 4 and result.summary["final_igm_violation_rate"] != result.summary[
        "final_igm_violation_rate"]  # NaN: independent learners have no joint value to check IGM on


def test_independent_learners_miscoordinate_on_the_climbing_game(tmp_path):
    """Claus & Boutilier (1998): on the climbing game [[11, -30, 0], [-30, 7, 6], [0, 0, 5]] independent learners
    under uniform exploration learn each action's mean payoff over the other agent's uniform actions, agent 1 the
    row means (-19/3, -17/3, 5/3), agent 2 the column means (-19/3, -23/3, 11/3), and play (C, C) = 5, not the
    optimum 11: the miscoordination the optimum's -30 neighbours cause."""
    result = vd.train(vd.TrainConfig(algo="iql", env="matrix/climbing", num_envs=128, frames_per_batch=128,
                                     frames=128 * 60, updates_per_batch=10, batch_size=256, eps_start=1.0, eps_end=1.0,
                                     lr=3e-3, hidden=(32,), eval_episodes=4, progress=False, out_dir=str(tmp_path)))
    td = result.env.reset()[:1]
    q = result.loss_module.local_q_values(td)[0]  # [2, 3]: each agent's utilities
    expected = torch.tensor([[-19.0, -17.0, 5.0], [-19.0, -23.0, 11.0]]) / 3  # [agent, action]
    assert (q - expected).abs().max() < 0.3, q
    assert result.summary["final_eval_return"] == 5.0  # (C, C): the miscoordinated outcome, not the optimum 11
