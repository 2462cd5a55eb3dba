"""VMAS adapter: key layout, team reward, state, truncation vs termination, batched resets, seeding, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from _helpers import hide_package, run

pytest.importorskip("vmas")

from tensordict import TensorDict  # noqa: E402
from torchrl.data import Categorical  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402
from vmas.simulator.core import Agent, World  # noqa: E402
from vmas.simulator.scenario import BaseScenario  # noqa: E402

from torchrl_vd.envs import describe_env, make_env  # noqa: E402
from torchrl_vd.envs.vmas import VmasTeamEnv, vmas_tasks  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# --------------------------------------------------------------------------------- a fake scenario
class Countdown(BaseScenario):
    """Deterministic toy: env ``e`` terminates after ``3 + e % 3`` steps (so envs end at different
    times); reward of agent ``i`` = its discrete action index stored in the x position.

    ``obs_sizes`` / ``names`` fake heterogeneous agents and several agent groups.
    """

    def __init__(self, obs_sizes=(3, 3), names=("agent_0", "agent_1")):
        super().__init__()
        self.obs_sizes, self.names = obs_sizes, names

    def make_world(self, batch_dim, device, **kwargs):
        world = World(batch_dim, device, dt=0.1, drag=0.0)
        for name in self.names:
            world.add_agent(Agent(name=name, collide=False, u_range=1.0))
        self.t = torch.zeros(batch_dim, device=device)
        self.length = 3 + torch.arange(batch_dim, device=device) % 3
        return world

    def reset_world_at(self, env_index=None):
        for agent in self.world.agents:
            agent.set_pos(torch.zeros(1 if env_index is not None else self.world.batch_dim, 2), batch_index=env_index)
            agent.set_vel(torch.zeros(1 if env_index is not None else self.world.batch_dim, 2), batch_index=env_index)
        if env_index is None:
            self.t.zero_()
        else:
            self.t[env_index] = 0

    def post_step(self):
        self.t += 1

    def observation(self, agent):
        i = self.world.agents.index(agent)
        base = torch.cat([agent.state.pos, self.t.unsqueeze(-1)], dim=-1)
        size = self.obs_sizes[i]
        return torch.cat([base, torch.zeros(base.shape[0], max(0, size - 3))], dim=-1)[:, :size]

    def reward(self, agent):
        return agent.action.u[:, 0].clone() * (1 + self.world.agents.index(agent))

    def done(self):
        return self.t >= self.length


def fixed_actions(env, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, env.n_actions, (steps, env.num_envs, env.n_team_agents), generator=g)


# --------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize("task", ["balance", "navigation"])
def test_check_env_specs_and_layout(task):
    env = make_env(f"vmas/{task}", num_envs=4, seed=0)
    check_env_specs(env)
    info = describe_env(env)
    n, F = info.n_agents, info.obs_shape[0]
    assert info.batch_size == (4,)
    assert info.n_actions == 9 and not info.has_action_mask
    assert info.state_shape == (n * F,)
    spec = env.full_action_spec["agents", "action"]
    assert isinstance(spec, Categorical) and spec.dtype == torch.int64 and spec.shape == (4, n)
    td = env.rollout(3)
    assert td["agents", "observation"].shape == (4, 3, n, F) and td["agents", "observation"].dtype == torch.float32
    assert td["agents", "action"].shape == (4, 3, n) and td["agents", "action"].dtype == torch.int64
    assert td["state"].shape == (4, 3, n * F)
    for key in ("reward",):
        assert td["next", key].shape == (4, 3, 1) and td["next", key].dtype == torch.float32
    for key in ("done", "terminated", "truncated"):
        assert td["next", key].shape == (4, 3, 1) and td["next", key].dtype == torch.bool
    assert td["next", "agents", "reward"].shape == (4, 3, n, 1)


def test_tasks_come_from_vmas_registry():
    import vmas

    tasks = vmas_tasks()
    assert set(vmas.scenarios) <= set(tasks) and "simple_spread" in tasks and "balance" in tasks


# ---------------------------------------------------------------------------- reward and state
def test_team_reward_sum_and_mean_match_raw_vmas_rewards():
    import vmas

    steps = 6
    sums = make_env("vmas/navigation", num_envs=3, seed=1, team_reward="sum")
    actions = fixed_actions(sums, steps)
    td_sum = run(sums, actions)
    td_mean = run(make_env("vmas/navigation", num_envs=3, seed=1, team_reward="mean"), actions)

    per_agent = td_sum["next", "agents", "reward"].squeeze(-1)  # [N, T, n]
    torch.testing.assert_close(td_sum["next", "reward"].squeeze(-1), per_agent.sum(-1))
    torch.testing.assert_close(td_mean["next", "reward"].squeeze(-1), per_agent.mean(-1))
    assert per_agent.abs().sum() > 0

    # the per-agent rewards and observations are VMAS's own, for the same seed and actions
    raw = vmas.make_env("navigation", num_envs=3, continuous_actions=False, seed=1, max_steps=100)
    raw.reset()  # like the adapter: seeded at construction, then one (unseeded) reset
    first = torch.stack(raw.get_from_scenario(True, False, False, False)[0], dim=1)
    torch.testing.assert_close(td_sum["agents", "observation"][:, 0], first)
    for t in range(steps):
        obs, rews, _, _ = raw.step(list(actions[t].unsqueeze(-1).unbind(1)))
        torch.testing.assert_close(per_agent[:, t], torch.stack(rews, dim=1))
        torch.testing.assert_close(td_sum["next", "agents", "observation"][:, t], torch.stack(obs, dim=1))


def test_state_is_stacked_observations():
    env = make_env("vmas/balance", num_envs=2, seed=0)
    td = env.rollout(4)
    for prefix in ((), ("next",)):
        obs = td[(*prefix, "agents", "observation")]
        torch.testing.assert_close(td[(*prefix, "state")], obs.flatten(-2, -1))


# --------------------------------------------------------------------------- done semantics
def test_max_steps_truncates_not_terminates():
    env = make_env("vmas/navigation", num_envs=3, seed=0, max_steps=5)
    td = env.rollout(7, break_when_any_done=False)
    trunc = td["next", "truncated"].squeeze(-1)
    term = td["next", "terminated"].squeeze(-1)
    done = td["next", "done"].squeeze(-1)
    assert trunc[:, 4].all() and not trunc[:, :4].any() and not trunc[:, 5:].any()
    assert not term.any()
    assert torch.equal(done, term | trunc)


def test_termination_is_reported_as_terminated():
    env = VmasTeamEnv(Countdown(), num_envs=6, seed=0, max_steps=4)
    td = run(env, fixed_actions(env, 8))
    term = td["next", "terminated"].squeeze(-1)
    trunc = td["next", "truncated"].squeeze(-1)
    # env e ends after 3 + e % 3 steps: length 3 terminates (before max_steps=4); length 4 both;
    # length 5 is truncated at 4 (t counts from the last reset)
    assert term[0, 2] and not trunc[0, 2]
    assert term[1, 3] and trunc[1, 3]
    assert trunc[2, 3] and not term[2, 3]
    assert torch.equal(td["next", "done"], td["next", "terminated"] | td["next", "truncated"])


# ----------------------------------------------------------------------------- batched resets
def test_batched_reset_resets_only_done_envs_and_matches_vmas():
    """Env e of Countdown ends after 3 + e % 3 steps: envs end at different steps, in pairs."""
    n_envs, steps = 6, 9
    env = VmasTeamEnv(Countdown(), num_envs=n_envs, seed=0, max_steps=None, reset_mode="batched")
    loop = VmasTeamEnv(Countdown(), num_envs=n_envs, seed=0, max_steps=None, reset_mode="loop")
    actions = fixed_actions(env, steps)
    td, td_loop = run(env, actions), run(loop, actions)
    assert env.reset_stats["batched"] >= 3 and env.reset_stats["loop_envs"] == 0
    assert loop.reset_stats["batched"] == 0 and loop.reset_stats["loop_envs"] > 0
    # deterministic scenario: batched and per-env resets give the same trajectories
    for key in [("next", "agents", "observation"), ("next", "reward"), ("next", "done"), ("agents", "observation")]:
        torch.testing.assert_close(td[key], td_loop[key])
    # the step counter in the obs (last entry) restarts only in the envs that ended
    t_obs = td["next", "agents", "observation"][..., 0, -1]  # [N, T]
    expected = torch.tensor([[(s % (3 + e % 3)) + 1 for s in range(steps)] for e in range(n_envs)], dtype=torch.float32)
    torch.testing.assert_close(t_obs, expected)


@pytest.mark.parametrize("task", ["balance", "navigation"])
def test_batched_reset_matches_vmas_reset_semantics(task):
    """Partial batched reset == VMAS's full reset in the reset rows, untouched elsewhere."""
    n_envs, k = 8, 5
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)

    def twin(mode):
        env = make_env(f"vmas/{task}", num_envs=n_envs, seed=3, max_steps=None, reset_mode="batched")
        actions = fixed_actions(env, k + 3, seed=5)
        td = env.reset()
        for t in range(k):
            td.set(("agents", "action"), actions[t])
            td = env.step(td)["next"]
        before = td.clone()
        steps_before = env._env.steps.clone()
        if mode == "partial":
            td.set("_reset", mask.unsqueeze(-1))
            after = env.reset(td)
        elif mode == "full":
            after = env.reset()
        else:
            after = td
        traj = []
        for t in range(k, k + 3):
            after.set(("agents", "action"), actions[t])
            after = env.step(after)["next"]
            traj.append(after["agents", "observation"])
        return env, before, steps_before, after, torch.stack(traj, 1)

    env, before, steps_before, _, traj = twin("partial")
    _, _, _, _, traj_full = twin("full")
    _, _, _, _, traj_none = twin("none")
    assert env.reset_stats["batched"] == 1
    # reset rows continue exactly like after VMAS's own vectorized reset ...
    torch.testing.assert_close(traj[mask], traj_full[mask])
    # ... and the other rows as if nothing happened
    torch.testing.assert_close(traj[~mask], traj_none[~mask])
    assert (env._env.steps[~mask] == steps_before[~mask] + 3).all()
    assert (env._env.steps[mask] == 3).all()


def test_batched_reset_output_keeps_other_rows():
    env = make_env("vmas/balance", num_envs=4, seed=0, reset_mode="batched")
    td = env.rollout(3, break_when_any_done=False)[:, -1]["next"].clone()
    td.set("_reset", torch.tensor([[True], [False], [True], [False]]))
    out = env.reset(td.clone())
    torch.testing.assert_close(out["agents", "observation"][1], td["agents", "observation"][1])
    torch.testing.assert_close(out["agents", "observation"][3], td["agents", "observation"][3])
    assert not torch.equal(out["agents", "observation"][0], td["agents", "observation"][0])
    live = env._env.get_from_scenario(True, False, False, False)[0]
    torch.testing.assert_close(torch.stack(live, 1), out["agents", "observation"])


def test_auto_mode_uses_reset_at_for_a_single_env():
    env = make_env("vmas/balance", num_envs=4, seed=0)
    td = env.reset()
    td.set("_reset", torch.tensor([[False], [True], [False], [False]]))
    env.reset(td)
    assert env.reset_stats["loop_envs"] == 1 and env.reset_stats["batched"] == 0


def test_batched_reset_falls_back_when_full_reset_changes_shared_state():
    # simple_reference draws each agent's goal landmark once per full reset (shared by all envs)
    env = make_env("vmas/simple_reference", num_envs=4, seed=0, reset_mode="batched")
    td = env.rollout(2, break_when_any_done=False)[:, -1]["next"].clone()
    td.set("_reset", torch.tensor([[True], [False], [True], [False]]))
    goals = [(a.goal_a, a.goal_b) for a in env._env.agents]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        env.reset(td)
    assert any("batched partial resets are off" in str(w.message) for w in rec)
    assert [(a.goal_a, a.goal_b) for a in env._env.agents] == goals  # shared state restored
    assert env.reset_stats["loop_envs"] == 2 and env.reset_stats["batched"] == 0


# --------------------------------------------------------------------------------------- seeding
def test_seeding_gives_identical_rollouts():
    def rollout(seed):
        env = make_env("vmas/balance", num_envs=3, seed=seed, max_steps=4)
        return run(env, fixed_actions(env, 6))

    a, b, c = rollout(7), rollout(7), rollout(8)
    torch.testing.assert_close(a["next", "agents", "observation"], b["next", "agents", "observation"])
    torch.testing.assert_close(a["next", "reward"], b["next", "reward"])
    assert not torch.equal(a["agents", "observation"], c["agents", "observation"])


# ------------------------------------------------------------------------------------------ errors
def test_unknown_task_suggests_close_match():
    with pytest.raises(ValueError, match="balance"):
        make_env("vmas/balanse", num_envs=2)


def test_continuous_actions_rejected():
    with pytest.raises(ValueError, match="discrete"):
        make_env("vmas/balance", num_envs=2, continuous_actions=True)


def test_heterogeneous_scenarios_rejected():
    with pytest.raises(ValueError, match=r"heterogeneous.*observation sizes.*groups"):
        make_env("vmas/simple_adversary", num_envs=2)
    with pytest.raises(ValueError, match="action counts differ"):
        make_env("vmas/diff_drive", num_envs=2)
    with pytest.raises(ValueError, match="observation sizes differ"):
        VmasTeamEnv(Countdown(obs_sizes=(3, 5)), num_envs=2)


def test_several_groups_need_merge_groups():
    scen = lambda: Countdown(names=("red_0", "blue_0"))  # noqa: E731
    with pytest.raises(ValueError, match="merge_groups=True"):
        VmasTeamEnv(scen(), num_envs=2)
    env = VmasTeamEnv(scen(), num_envs=2, merge_groups=True)
    assert env.n_team_agents == 2
    check_env_specs(env)


def test_missing_dependency(monkeypatch):
    hide_package(monkeypatch, "vmas")
    with pytest.raises(ImportError, match=r"pip install 'torchrl-vd\[vmas\]'"):
        make_env("vmas/balance", num_envs=2)


# ------------------------------------------------------------------------------------ transforms
def test_transforms_bring_a_plain_vmasenv_to_the_layout():
    from torchrl.envs import Compose, TransformedEnv
    from torchrl.envs.libs.vmas import VmasEnv

    from torchrl_vd.envs.transforms import StackedObsState, TeamReward

    env = TransformedEnv(
        VmasEnv("navigation", num_envs=2, continuous_actions=False, seed=0, max_steps=10),
        Compose(TeamReward("mean"), StackedObsState()),
    )
    check_env_specs(env)
    td = env.rollout(3)
    torch.testing.assert_close(td["next", "reward"], td["next", "agents", "reward"].mean(-2))
    torch.testing.assert_close(td["state"], td["agents", "observation"].flatten(-2, -1))


def test_reset_without_mask_is_full():
    env = make_env("vmas/balance", num_envs=2, seed=0)
    env.reset(TensorDict({}, batch_size=[2]))
    assert env.reset_stats["full"] >= 1
