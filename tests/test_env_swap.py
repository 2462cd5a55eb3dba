"""Swap environments without touching the algorithm; PettingZoo masks reach every policy and the loss."""

import pytest
import torch
from _helpers import env_family
from torchrl.envs.utils import ExplorationType, set_exploration_type

pytest.importorskip("pettingzoo")

from _tiny_masked import TinyMasked  # noqa: E402  (imports pettingzoo)

import torchrl_vd as vd  # noqa: E402
from torchrl_vd.envs.pettingzoo import PettingZooTeamEnv  # noqa: E402
from torchrl_vd.modules.agents import PerAgentLinear  # noqa: E402


def _make_tiny(task, *, num_envs, device, seed, **kw):
    return PettingZooTeamEnv(lambda: TinyMasked(**kw), num_envs=num_envs, seed=seed)


@pytest.fixture
def tiny_family():
    """TinyMasked as the env family ``test-tiny`` for the test's duration."""
    with env_family("test-tiny", _make_tiny, examples=["masked"], description="TinyMasked PettingZoo env (tests)"):
        yield


def _needs(module, extra):
    """Skip a case whose optional env package (the pip extra ``extra``) is not installed."""
    try:
        __import__(module)
        return []
    except ImportError:
        return [pytest.mark.skip(reason=f"needs {module} (pip install -e '.[{extra}]')")]


# The greedy return and std of the 2 evaluation episodes below, seed 0: measured on CPU (the same in repeated runs;
# the PettingZoo task gives the same in parallel and in AEC "cycle" mode). float32 returns: rel 1e-6. The fields the
# test leaves out take each family's preset (docs/PRESETS.md), as a user's TrainConfig would.
FINAL_EVAL_RETURN = {
    "vmas/balance": (-21.862862, 22.678183), "pettingzoo/simple_spread_v3": (-135.473923, 1.298139),
    "pettingzoo/simple_spread_v3:aec": (-135.473923, 1.298139), "matrix/climbing": (0.0, 0.0),
    "test-tiny/masked": (20.0, 0.0), "lbf/Foraging-8x8-2p-2f-coop-v3": (0.0, 0.0),
    "rware/rware-tiny-2ag-v2": (0.0, 0.0), "smax/3m": (0.100000016, 0.0471404605),  # smax: jaxmarl 0.2.0
}


@pytest.mark.parametrize(
    "env",
    [pytest.param("vmas/balance", marks=_needs("vmas", "vmas")),
     pytest.param("pettingzoo/simple_spread_v3", marks=_needs("mpe2", "pettingzoo")),
     pytest.param("pettingzoo/simple_spread_v3:aec", marks=_needs("mpe2", "pettingzoo")), "matrix/climbing",
     "test-tiny/masked",
     pytest.param("lbf/Foraging-8x8-2p-2f-coop-v3", marks=_needs("lbforaging", "lbf")),
     pytest.param("rware/rware-tiny-2ag-v2", marks=_needs("rware", "rware")),
     pytest.param("smax/3m", marks=[pytest.mark.slow, *_needs("jaxmarl", "smax")])],  # JAX compiles ~1 min
)
def test_same_train_config_runs_on_every_adapter(tmp_path, env, tiny_family):
    """One config, only `env` changes. TinyMasked asserts that every action it receives is legal, so its run
    also proves the ε-greedy collection policy honours PettingZoo's masks."""
    cfg = vd.TrainConfig(algo="qmix", env=env, num_envs=4, frames=4 * 25 * 4, frames_per_batch=100, batch_size=64,
                         updates_per_batch=4, eps_frames=200, progress=False, out_dir=str(tmp_path / "run"),
                         eval_episodes=2, hidden=(32,), learning_starts=0, seq_len=0)  # (the SMAX preset's are longer)
    result = vd.train(cfg)
    assert result.summary["frames"] == 400 and result.summary["updates"] == 16
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.metrics)
    final = (result.summary["final_eval_return"], result.summary["final_eval_return_std"])
    assert final == pytest.approx(FINAL_EVAL_RETURN[env], rel=1e-6)


def _tiny_agent_and_batch():
    env = _make_tiny("masked", num_envs=4, device="cpu", seed=0)
    info = vd.describe_env(env)
    assert info.has_action_mask
    torch.manual_seed(0)
    agent = vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1], hidden=(16,), share_params=False)
    greedy, explore = vd.make_agent_policies(agent, action_mask=True)
    with set_exploration_type(ExplorationType.RANDOM):
        batch = env.rollout(12, explore, break_when_any_done=False)  # env asserts legality of every action
    return env, info, agent, greedy, explore, batch


def test_masks_reach_greedy_and_egreedy_policies():
    env, info, agent, greedy, explore, batch = _tiny_agent_and_batch()
    with torch.no_grad():  # make the first legal-or-not action the most valuable one for everybody
        agent.net[-1].bias[:, 0] += 100.0
    td = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        act = greedy(td.clone())["agents", "action"]  # [N, n]
    mask = td["agents", "action_mask"]
    assert not mask[..., 0].all()  # step 0: action 0 is illegal for the live agents
    assert mask.gather(-1, act.unsqueeze(-1)).all()  # greedy never picks the masked action 0
    explore[-1].eps.fill_(1.0)
    with set_exploration_type(ExplorationType.RANDOM):
        for _ in range(20):
            a = explore(td.clone())["agents", "action"]
            assert mask.gather(-1, a.unsqueeze(-1)).all()  # uniform exploration within the mask


def test_target_max_honours_env_masks_and_dead_agents_contribute_no_loss():
    env, info, agent, greedy, explore, batch = _tiny_agent_and_batch()
    flat = batch.reshape(-1)
    loss = vd.MixingQLoss(agent, vd.QMixer(info.n_agents, info.state_shape))
    b = loss.read_batch(flat)
    _, q_next = loss.utilities(b, need_current=False)
    a_next = loss.greedy_next_actions(b, q_next, q_next)
    assert b.next_action_mask.gather(-1, a_next.unsqueeze(-1)).all()  # a*' is legal under the next mask
    # agent b (index 1) dies at step 2: on transitions where it is dead now and next, its own (per-agent)
    # parameters get exactly zero gradient, the others do not
    dead = ~flat["agents", "alive"][:, 1] & ~flat["next", "agents", "alive"][:, 1]
    assert dead.any()
    out = loss(flat[dead])
    out["loss"].backward()
    grads = [m.weight.grad for m in agent.net if isinstance(m, PerAgentLinear)]
    assert all((g[1] == 0).all() for g in grads)
    assert any((g[0] != 0).any() for g in grads)
