"""Two choices MARLlib's MPE runs make differently from pymarl, as named options: ``bootstrap_time_limits=False``
(a time limit ends the TD target like a termination) and ``activation`` (the agent's hidden activation)."""

import pytest
import torch
from tensordict import TensorDict
from torch import nn

import torchrl_vd as vd
from torchrl_vd.envs.registry import EnvInfo
from torchrl_vd.train.builders import build_agent
from torchrl_vd.train.learner import time_limits_as_terminal


def _batch():
    """Two envs x 3 steps: env 0 truncated at step 2, env 1 terminated at step 1."""
    terminated = torch.tensor([[False, False, False], [False, True, False]]).unsqueeze(-1)  # [N, T, 1]
    truncated = torch.tensor([[False, False, True], [False, False, False]]).unsqueeze(-1)  # [N, T, 1]
    return TensorDict({"next": {"terminated": terminated, "truncated": truncated,
                                "done": terminated | truncated, "reward": torch.ones(2, 3, 1)}}, [2, 3])


def test_time_limits_as_terminal_sets_terminated_and_leaves_the_batch_alone():
    batch = _batch()
    out = time_limits_as_terminal(batch)
    assert torch.equal(out["next", "terminated"], out["next", "done"])  # every end is terminal now
    assert out["next", "terminated"][0, 2].item() and out["next", "terminated"][1, 1].item()
    assert not batch["next", "terminated"][0, 2].item()  # the collector's batch keeps the env's flags
    with pytest.raises(ValueError, match="needs the env's \\('next', 'truncated'\\) flag"):
        time_limits_as_terminal(batch.exclude(("next", "truncated")))


def test_the_td_target_does_not_bootstrap_past_a_time_limit():
    """VDN's one-step target on a truncated transition: r + γ V̄(next) by default, r once cut (hand-computed)."""
    from torchrl_vd.modules.agents import MLPAgent
    from torchrl_vd.modules.mixers import VDNMixer
    from torchrl_vd.objectives import MixingQLoss
    from torchrl_vd.testing import random_batch

    torch.manual_seed(0)
    agent = MLPAgent(2, 3, 4, hidden=(8,))
    loss = MixingQLoss(agent, VDNMixer(2), double_q=False)  # the target copy equals the online net at init
    loss.make_value_estimator(gamma=0.9)
    td = random_batch(2, 3, 4, batch=1)
    td["next", "reward"] = torch.tensor([[2.0]])
    td["next", "terminated"], td["next", "truncated"] = torch.tensor([[False]]), torch.tensor([[True]])
    td["next", "done"] = torch.tensor([[True]])
    with torch.no_grad():
        next_v = agent(td["next", "agents", "observation"]).max(-1).values.sum()  # V̄ = Σ_i max_a Q̄_i
        chosen = agent(td["agents", "observation"]).gather(-1, td["agents", "action"].unsqueeze(-1)).sum()
    bootstrapped = loss(td)["loss"].item()
    cut = loss(time_limits_as_terminal(td))["loss"].item()
    assert bootstrapped == pytest.approx((chosen - (2.0 + 0.9 * next_v)).item() ** 2, rel=1e-5)
    assert cut == pytest.approx((chosen - 2.0).item() ** 2, rel=1e-5)
    assert abs(bootstrapped - cut) > 1e-3


def test_train_stores_time_limits_as_terminal_only_when_asked(tmp_path, monkeypatch):
    from torchrl_vd.train import learner as learner_mod

    stored = {}
    to_storage = learner_mod._to_storage

    def spy(batch, recurrent, seq_len):
        out = to_storage(batch, recurrent, seq_len)
        stored.setdefault("batches", []).append(out.select(("next", "terminated"), ("next", "truncated")).clone())
        return out

    monkeypatch.setattr(learner_mod, "_to_storage", spy)
    for flag in (True, False):
        stored.clear()
        vd.train(vd.TrainConfig(algo="vdn", env="vmas/balance", env_kwargs={"max_steps": 5}, num_envs=4, frames=80,
                                frames_per_batch=40, updates_per_batch=1, batch_size=8, progress=False,
                                eval_episodes=2, igm_eval=False, checkpoint_every=0, bootstrap_time_limits=flag,
                                out_dir=str(tmp_path / f"run{flag}")))
        data = torch.cat(stored["batches"])
        truncated, terminated = data["next", "truncated"], data["next", "terminated"]
        assert truncated.sum() >= 8  # every env reached the 5-step limit at least once per batch
        assert bool((terminated & truncated).any()) is (not flag)
        if not flag:
            assert bool(terminated[truncated].all())


def test_check_env_rejects_cutting_time_limits_the_env_cannot_tell():
    info = EnvInfo(n_agents=2, n_actions=2, obs_shape=(3,), state_shape=(3,), has_action_mask=False,
                   batch_size=(4,), has_truncated=False)
    cfg = vd.TrainConfig(algo="vdn", env="matrix/two-step", bootstrap_time_limits=False)
    with pytest.raises(ValueError, match="reports no \\('next', 'truncated'\\) flag.*bootstrap_time_limits=True"):
        cfg.check_env(info)
    vd.TrainConfig(algo="vdn", env="matrix/two-step").check_env(info)  # the default needs nothing


@pytest.mark.parametrize("agent", ["mlp", "gru"])
@pytest.mark.parametrize("name, cls", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("elu", nn.ELU)])
def test_activation_option_builds_the_agent_with_it(agent, name, cls):
    cfg = vd.TrainConfig(algo="vdn", env="matrix/two-step", agent=agent, hidden=(8, 8), activation=name)
    info = EnvInfo(n_agents=2, n_actions=2, obs_shape=(3,), state_shape=(3,), has_action_mask=False, batch_size=(4,))
    net = build_agent(cfg, info)
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.Tanh, nn.ELU))]
    assert len(acts) == (2 if agent == "mlp" else 1) and all(type(m) is cls for m in acts)  # GRU: its input layer
    with pytest.raises(ValueError, match="activation must be one of \\['elu', 'relu', 'tanh'\\]"):
        vd.TrainConfig(activation="gelu")
