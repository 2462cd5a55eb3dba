"""PettingZoo adapter: layout, state(), team reward, done semantics, masks/alive, AEC, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import hide_package, run

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from _tiny_masked import TinyMasked  # noqa: E402  (imports pettingzoo)
from torchrl.data import Categorical  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

from torchrl_vd.envs import describe_env, make_env  # noqa: E402
from torchrl_vd.envs.pettingzoo import PettingZooTeamEnv  # noqa: E402
from torchrl_vd.envs.pettingzoo_tasks import pettingzoo_tasks  # noqa: E402

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- a tiny env
def tiny(num_envs=2, **kw):
    env_kw = {k: kw.pop(k) for k in ("die_at", "horizon", "terminate") if k in kw}
    return PettingZooTeamEnv(lambda: TinyMasked(**env_kw), num_envs=num_envs, seed=0, **kw)


def spread_actions(steps, num_envs, seed=0):
    return torch.randint(0, 5, (steps, num_envs, 3), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------- layout & specs
@pytest.mark.parametrize(
    "name,kw",
    [("simple_spread_v3", {}), ("simple_spread_v3:aec", {}), ("simple_spread_v3", {"aec": True})],
)
def test_check_env_specs_simple_spread(name, kw):
    env = make_env(f"pettingzoo/{name}", num_envs=2, seed=0, **kw)
    check_env_specs(env)
    info = describe_env(env)
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (3, 5, (18,), (54,))
    assert not info.has_action_mask
    spec = env.full_action_spec["agents", "action"]
    assert isinstance(spec, Categorical) and spec.shape == (2, 3) and spec.dtype == torch.int64
    td = env.rollout(3)
    assert td["agents", "observation"].dtype == torch.float32
    assert td["agents", "alive"].all()
    for key in ("done", "terminated", "truncated"):
        assert td["next", key].shape == (2, 3, 1) and td["next", key].dtype == torch.bool
    assert td["next", "reward"].shape == (2, 3, 1)


def test_task_lookup():
    tasks = pettingzoo_tasks()
    assert "simple_spread_v3" in tasks and "classic/tictactoe_v3" in tasks
    env = make_env("pettingzoo/classic.tictactoe_v3", num_envs=1, seed=0)
    assert env.is_aec and env.aec_mode == "turn"


# ----------------------------------------------------------------------- values vs the raw env
def test_matches_raw_parallel_env_state_and_rewards():
    """Obs, per-agent rewards and ``state()`` equal a raw mpe2 parallel env's (same seeds/actions)."""
    import mpe2.simple_spread_v3 as mod

    n_envs, steps = 2, 30  # crosses the 25-step horizon: exercises truncation + auto-reset
    actions = spread_actions(steps, n_envs)
    td = run(make_env("pettingzoo/simple_spread_v3", num_envs=n_envs, seed=3), actions)
    raws = [mod.parallel_env(continuous_actions=False) for _ in range(n_envs)]
    for i, r in enumerate(raws):
        r.reset(seed=3 + i)
    for t in range(steps):
        for i, r in enumerate(raws):
            if not r.agents:
                r.reset()
            obs, rew, term, trunc, _ = r.step({a: int(actions[t, i, j]) for j, a in enumerate(r.possible_agents)})
            np.testing.assert_allclose(td["next", "agents", "observation"][i, t].numpy(), np.stack([obs[a] for a in r.possible_agents]))
            np.testing.assert_allclose(td["next", "agents", "reward"][i, t, :, 0].numpy(), [rew[a] for a in r.possible_agents], rtol=1e-6)
            np.testing.assert_allclose(td["next", "state"][i, t].numpy(), r.state(), rtol=1e-6)
            assert bool(td["next", "truncated"][i, t]) == all(trunc.values())
    per_agent = td["next", "agents", "reward"].squeeze(-1)
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), per_agent.sum(-1))


@pytest.mark.parametrize("variant", ["direct_parallel", "aec"])
def test_parallel_via_aec_equals_other_paths(variant):
    import mpe2.simple_spread_v3 as mod

    actions = spread_actions(28, 2, seed=1)
    ref = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=5), actions)
    if variant == "aec":
        other = make_env("pettingzoo/simple_spread_v3", aec=True, num_envs=2, seed=5)
    else:
        other = PettingZooTeamEnv(lambda: mod.parallel_env(continuous_actions=False), num_envs=2, seed=5, unwrap_parallel=False)
        assert not other.parallel_via_aec
    td = run(other, actions)
    for key in [("next", "agents", "observation"), ("next", "reward"), ("next", "state"), ("next", "done"), ("next", "truncated")]:
        torch.testing.assert_close(td[key], ref[key])


def test_team_reward_mean():
    actions = spread_actions(5, 2)
    s = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=0), actions)
    m = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=0, team_reward="mean"), actions)
    torch.testing.assert_close(m["next", "reward"], s["next", "reward"] / 3)


# ---------------------------------------------------------------------------- done semantics
def test_horizon_truncates_not_terminates():
    env = make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=0)  # MPE max_cycles=25
    td = env.rollout(27, break_when_any_done=False)
    trunc, term = td["next", "truncated"].squeeze(-1), td["next", "terminated"].squeeze(-1)
    assert trunc[:, 24].all() and trunc.sum() == 2 and not term.any()
    assert torch.equal(td["next", "done"], td["next", "truncated"])
    # truncated agents stay alive in the final "next" (bootstrapped), with their real observation
    assert td["next", "agents", "alive"].all()
    assert td["next", "agents", "observation"][:, 24].abs().sum(-1).gt(0).all()
    # max_steps is passed on to MPE as max_cycles, and enforced by the adapter for any env
    td = make_env("pettingzoo/simple_spread_v3", num_envs=1, seed=0, max_steps=4).rollout(9, break_when_any_done=False)
    assert td["next", "truncated"].squeeze(-1)[0].nonzero().flatten().tolist() == [3, 7]
    td = tiny(num_envs=1, horizon=50, max_steps=3).rollout(4, break_when_any_done=False)
    assert td["next", "truncated"].squeeze(-1)[0].tolist() == [False, False, True, False]


def test_all_agents_terminated_is_terminated():
    td = tiny(num_envs=1, horizon=3, terminate=True).rollout(3, break_when_any_done=False)
    assert td["next", "terminated"].squeeze(-1)[0].tolist() == [False, False, True]
    assert not td["next", "truncated"].any()


# -------------------------------------------------------------------- masks, padding, alive
def test_masks_padding_and_dead_agents():
    env = tiny(num_envs=2)
    check_env_specs(env)
    assert env.has_action_mask and env.obs_dim == 3 and env.n_actions == 4 and env.padded_obs
    assert env.has_env_state and env.state_dim == 2
    T = 6
    td = env.rollout(T, break_when_any_done=False)  # random actions must respect the masks (env asserts)
    mask = td["agents", "action_mask"]  # [N, T, n, A]
    alive = td["agents", "alive"]
    for t in range(T):
        step = t % 5  # horizon 5 -> auto reset after the 5th step
        dead_b = step >= 2
        assert alive[:, t].tolist() == [[True, not dead_b, True]] * 2
        for j, a in enumerate("abc"):
            row = mask[0, t, j].tolist()
            if a == "b" and dead_b:
                assert row == [True, False, False, False]
                continue
            expect = [k != step % 4 for k in range(4)]
            if a == "c":
                expect[3] = False  # padded action
            assert row == expect, (t, a, row)
        # obs: real values for live agents, zero padding for c, zeros for dead b
        obs = td["agents", "observation"][0, t]
        assert obs[0].tolist() == [step, 0, 1]
        assert obs[2].tolist() == [step, 2, 0]
        assert obs[1].tolist() == ([0, 0, 0] if dead_b else [step, 1, 1])
        # state is the env's state(), not the stacked observations
        assert td["state"][0, t].tolist() == [step, 10 * step]
    # rewards: agent reward = its action; dead agents get nothing; team = sum
    act = td["agents", "action"].float()
    was_alive = td["agents", "alive"]
    torch.testing.assert_close(td["next", "agents", "reward"].squeeze(-1), act * was_alive)
    torch.testing.assert_close(td["next", "reward"].squeeze(-1), (act * was_alive).sum(-1))
    # b's next-alive flag goes False on the step it dies, and its obs/mask are blanked at once
    assert td["next", "agents", "alive"][0, 1].tolist() == [True, False, True]
    assert td["next", "agents", "observation"][0, 1, 1].tolist() == [0, 0, 0]
    assert td["next", "agents", "action_mask"][0, 1, 1].tolist() == [True, False, False, False]
    # at the time limit (t=4) a and c are truncated, not dead: alive, real obs and masks
    assert td["next", "truncated"][0, 4].item() and not td["next", "terminated"][0, 4].item()
    assert td["next", "agents", "alive"][0, 4].tolist() == [True, False, True]
    assert td["next", "agents", "observation"][0, 4, 0].tolist() == [5, 0, 1]
    assert td["next", "agents", "action_mask"][0, 4, 0].tolist() == [True, False, True, True]


def test_action_mask_from_observation_dict_and_aec_turns():
    env = make_env("pettingzoo/classic/tictactoe_v3", num_envs=2, seed=0)
    assert env.is_aec and env.aec_mode == "turn" and env.has_action_mask
    check_env_specs(env)
    td = env.reset()
    # player_1 moves first: 9 legal moves; player_2 waits (only action 0)
    assert td["agents", "action_mask"][0, 0].all()
    assert td["agents", "action_mask"][0, 1].tolist() == [True] + [False] * 8
    td = env.rollout(12, break_when_any_done=False)
    mask, act = td["agents", "action_mask"], td["agents", "action"]
    assert mask.gather(-1, act.unsqueeze(-1)).all()  # random actions were legal
    # a game ends by termination (win or full board) within 9 moves, never by truncation
    assert td["next", "terminated"].any() and not td["next", "truncated"].any()
    first_end = td["next", "done"][0, :, 0].nonzero()[0].item()
    assert 4 <= first_end <= 8
    # the waiting player's mask alternates
    movers = mask[0, : first_end + 1].sum(-1).gt(1).float().argmax(-1)
    assert movers.tolist() == [t % 2 for t in range(first_end + 1)]


def test_heterogeneous_observations_are_zero_padded():
    env = make_env("pettingzoo/simple_adversary_v3", num_envs=1, seed=0)
    assert env.obs_dim == 10 and env.padded_obs and env._obs_sizes == [8, 10, 10]
    td = env.rollout(3)
    assert (td["agents", "observation"][..., 0, 8:] == 0).all()
    assert td["agents", "observation"][..., 0, :8].abs().sum() > 0
    assert env.state_dim == 28  # MPE state(): the unpadded observations concatenated


def test_uneven_action_counts_get_masked():
    env = make_env("pettingzoo/simple_speaker_listener_v4", num_envs=2, seed=0)
    assert env.has_action_mask and env._n_acts == [3, 5] and env.n_actions == 5
    td = env.rollout(4)
    assert td["agents", "action_mask"][..., 0, :].sum(-1).eq(3).all()
    assert (td["agents", "action"][..., 0] < 3).all()


# ---------------------------------------------------------------------------------- seeding
def test_seeding_gives_identical_rollouts():
    actions = spread_actions(8, 2, seed=2)
    a = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=11), actions)
    b = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=11), actions)
    c = run(make_env("pettingzoo/simple_spread_v3", num_envs=2, seed=12), actions)
    torch.testing.assert_close(a["next", "agents", "observation"], b["next", "agents", "observation"])
    torch.testing.assert_close(a["next", "reward"], b["next", "reward"])
    assert not torch.equal(a["agents", "observation"], c["agents", "observation"])
    # set_seed re-seeds the next reset
    env = make_env("pettingzoo/simple_spread_v3", num_envs=2)
    env.set_seed(11)
    torch.testing.assert_close(run(env, actions)["next", "state"], a["next", "state"])


# ------------------------------------------------------------------------------------ errors
def test_unknown_task_suggests_close_match():
    with pytest.raises(ValueError, match="simple_spread_v3"):
        make_env("pettingzoo/simple_sprad_v3", num_envs=1)


def test_continuous_actions_rejected():
    with pytest.raises(ValueError, match=r"discrete actions.*continuous_actions=False"):
        make_env("pettingzoo/simple_spread_v3", num_envs=1, continuous_actions=True)


@pytest.mark.parametrize("missing", ["pettingzoo", "mpe2"])
def test_missing_dependency(monkeypatch, missing):
    hide_package(monkeypatch, missing)
    with pytest.raises(ImportError, match=rf"'{missing}'.*pip install 'torchrl-vd\[pettingzoo\]'"):
        make_env("pettingzoo/simple_spread_v3", num_envs=1)


def test_aec_cycle_with_masks_and_deaths_equals_parallel():
    """The same tiny env through PettingZoo's parallel_to_aec, stepped in AEC "cycle" mode."""
    from pettingzoo.utils.conversions import parallel_to_aec

    def rollout(env, steps=7):
        g = torch.Generator().manual_seed(0)
        td = env.reset()
        out = []
        for _ in range(steps):
            scores = torch.rand(td["agents", "action_mask"].shape, generator=g)
            td.set(("agents", "action"), scores.masked_fill(~td["agents", "action_mask"], -1).argmax(-1))
            step, td = env.step_and_maybe_reset(td)
            out.append(step.clone())
        return torch.stack(out, 1)

    par = rollout(tiny(num_envs=2))
    aec_env = PettingZooTeamEnv(lambda: parallel_to_aec(TinyMasked()), num_envs=2, seed=0, aec_mode="cycle")
    assert aec_env.is_aec and aec_env.aec_mode == "cycle" and aec_env.has_action_mask
    aec = rollout(aec_env)
    for key in [("next", "agents", "observation"), ("next", "agents", "reward"), ("next", "agents", "alive"),
                ("next", "agents", "action_mask"), ("next", "state"), ("next", "truncated"), ("next", "terminated")]:
        torch.testing.assert_close(aec[key], par[key], msg=str(key))


def test_out_of_range_action_is_rejected():
    env = make_env("pettingzoo/simple_speaker_listener_v4", num_envs=2, seed=0)  # speaker: 3 actions
    td = env.reset()
    td.set(("agents", "action"), torch.tensor([[0, 1], [3, 0]]))
    with pytest.raises(ValueError, match=r"action 3 of agent 'speaker_0' \(env 1\) is out of its range \[0, 3\)"):
        env.step(td)
