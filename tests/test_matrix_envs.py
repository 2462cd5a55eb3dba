"""Tests for the vectorized matrix games (torchrl_vd/envs/matrix.py)."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from torchrl.envs.utils import check_env_specs, step_mdp

from torchrl_vd.envs import registry
from torchrl_vd.envs.matrix import (
    NAMED_PAYOFFS,
    MatrixGameEnv,
    MStepGame,
    OneStepGame,
    make_matrix_env,
    matrix_tasks,
)

A = ("agents", "action")
OBS = ("agents", "observation")
MASK = ("agents", "action_mask")
NAMED = ["qtran", "climbing", "penalty", "linear", "monotonic", "two-step", "m-step", "memory"]


def play(env, joint_actions):
    """Play the same joint action in every env at each step; returns rewards/dones/obs [T, N]."""
    td = env.reset()
    rewards, dones, obs = [], [], [td[OBS].clone()]
    for joint in joint_actions:
        td[A] = torch.as_tensor(joint).expand(env.num_envs, env.n_agents).clone()
        td = env.step(td)
        rewards.append(td["next", "reward"].squeeze(-1))
        dones.append(td["next", "done"].squeeze(-1))
        obs.append(td[("next", *OBS)].clone())
        td = step_mdp(td)
    return torch.stack(rewards), torch.stack(dones), obs


def episode_return(rewards, dones):
    """Return of the first episode of each env: rewards up to and including the first done. [N]"""
    alive = torch.cat([torch.ones_like(dones[:1]), ~dones[:-1]]).cumprod(0).bool()  # [T, N]
    return (rewards * alive).sum(0)


# ------------------------------------------------------------------------------------- specs / keys
@pytest.mark.parametrize("task", NAMED)
def test_check_env_specs_named(task):
    env = make_matrix_env(task, num_envs=4, seed=0)
    check_env_specs(env)
    td = env.reset()
    assert td[OBS].shape[:2] == (4, env.n_agents)
    assert td[OBS].dtype == torch.float32
    assert td["state"].shape[0] == 4 and td["state"].dim() == 2
    assert MASK not in td.keys(True)  # homogeneous action counts: no mask
    assert env.full_action_spec[A].shape == (4, env.n_agents)
    assert env.full_done_spec["truncated"].shape == (4, 1)


def test_keys_and_attributes():
    env = make_matrix_env("qtran", num_envs=3)
    assert set(env.full_done_spec.keys()) == {"done", "terminated", "truncated"}
    assert env.full_reward_spec["reward"].shape == (3, 1)
    assert env.n_agents == 2 and env.n_actions == 3 and env.max_steps == 1
    assert env.optimal_return == 8.0
    assert torch.equal(env.payoff, torch.tensor(NAMED_PAYOFFS["qtran"], dtype=torch.float32))
    info = registry.describe_env(env)
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (2, 3, (1,), (1,))
    assert not info.has_action_mask
    expected_opt = {"climbing": 11.0, "penalty": 10.0, "linear": 9.0, "monotonic": 10.0, "two-step": 8.0,
                    "m-step": 13.0, "memory": 1.0}
    for task, opt in expected_opt.items():
        assert make_matrix_env(task).optimal_return == opt
    assert make_matrix_env("m-step", steps=4).max_steps == 4
    assert make_matrix_env("memory", delay=3).max_steps == 4
    assert make_matrix_env("two-step").payoff is None


def test_registered_family():
    fam = registry._FAMILIES["matrix"]
    assert fam.factory is make_matrix_env
    assert set(NAMED + ["custom"]) <= set(fam.tasks()) == set(matrix_tasks())


# ------------------------------------------------------------------------------------- one-step
@pytest.mark.parametrize(
    "task,kwargs,table",
    [
        ("qtran", {}, [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]),
        ("climbing", {}, [[11, -30, 0], [-30, 7, 6], [0, 0, 5]]),
        ("penalty", {}, [[-100, 0, 10], [0, 2, 0], [10, 0, -100]]),
        ("penalty", {"k": -7}, [[-7, 0, 10], [0, 2, 0], [10, 0, -7]]),
        ("linear", {}, [[1, 5], [5, 9]]),
        ("monotonic", {}, [[0, 0], [0, 10]]),
    ],
)
def test_one_step_payoff_every_joint_action(task, kwargs, table):
    table = torch.tensor(table, dtype=torch.float32)
    joint = torch.tensor(list(itertools.product(range(table.shape[0]), range(table.shape[1]))))  # [A*A, 2]
    env = make_matrix_env(task, num_envs=joint.shape[0], **kwargs)
    td = env.reset()
    assert torch.equal(td[OBS], torch.ones(joint.shape[0], 2, 1)) and torch.equal(td["state"], torch.ones(joint.shape[0], 1))
    td[A] = joint
    out = env.step(td)["next"]
    assert torch.equal(out["reward"].squeeze(-1), table[joint[:, 0], joint[:, 1]])
    assert out["done"].all() and out["terminated"].all() and not out["truncated"].any()


def test_custom_three_agent_payoff():
    payoff = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4) - 5.0
    joint = torch.tensor(list(itertools.product(range(2), range(3), range(4))))  # [24, 3]
    env = make_matrix_env("custom", payoff=payoff, num_envs=24, seed=0)
    check_env_specs(env)
    assert env.n_agents == 3 and env.n_actions == 4 and env.agent_n_actions == (2, 3, 4)
    assert env.optimal_return == 18.0
    td = env.reset()
    td[A] = joint
    out = env.step(td)["next"]
    assert torch.equal(out["reward"].squeeze(-1), payoff[joint[:, 0], joint[:, 1], joint[:, 2]])
    # nested lists work too
    env2 = make_matrix_env("custom", payoff=[[[1, 2], [3, 4]], [[5, 6], [7, 8]]], num_envs=2)
    assert env2.n_agents == 3 and env2.optimal_return == 8.0


def test_heterogeneous_action_mask():
    payoff = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]  # agent 0: 2 actions, agent 1: 3 actions
    env = make_matrix_env("custom", payoff=payoff, num_envs=5, seed=0)
    check_env_specs(env)
    expected = torch.tensor([[True, True, False], [True, True, True]])
    td = env.reset()
    assert td[MASK].shape == (5, 2, 3) and td[MASK].dtype == torch.bool
    assert torch.equal(td[MASK], expected.expand(5, 2, 3))
    assert registry.describe_env(env).has_action_mask
    # random actions (rollout with policy=None) respect the mask
    ro = env.rollout(50, break_when_any_done=False)
    assert (ro[A][..., 0] < 2).all()
    assert torch.isfinite(ro["next", "reward"]).all()
    assert torch.equal(ro[("next", *MASK)], expected.expand(5, 50, 2, 3))
    # valid joint actions pay the table; a masked-out action pays NaN (visible, not silently wrong)
    td = env.reset()
    td[A] = torch.tensor([[0, 0], [1, 2], [0, 2], [1, 1], [2, 0]])
    reward = env.step(td)["next", "reward"].squeeze(-1)
    assert torch.equal(reward[:4], torch.tensor([1.0, 6.0, 3.0, 5.0]))
    assert torch.isnan(reward[4])


# ------------------------------------------------------------------------------------- two-step
def test_two_step():
    env = make_matrix_env("two-step", num_envs=2, seed=0)
    assert (env.game.obs_dim, env.game.state_dim) == (3, 3)
    # env 0: agent 1 picks 2B then (1,1) -> 8; env 1 via the batched path below
    rewards, dones, obs = play(env, [[1, 0], [1, 1]])
    assert torch.equal(rewards[:, 0], torch.tensor([0.0, 8.0]))
    assert torch.equal(dones[:, 0], torch.tensor([False, True]))
    assert torch.equal(obs[0][0, 0], torch.tensor([1.0, 0.0, 0.0]))  # state 1
    assert torch.equal(obs[1][0, 1], torch.tensor([0.0, 0.0, 1.0]))  # state 2B, both agents
    # 2A (agent 1 plays 0) pays 7 for every joint action; 2B pays [[0,1],[1,8]]
    for second, r_a, r_b in [([0, 0], 7.0, 0.0), ([0, 1], 7.0, 1.0), ([1, 0], 7.0, 1.0), ([1, 1], 7.0, 8.0)]:
        for first, expected in [([0, 1], r_a), ([1, 1], r_b)]:
            rewards, dones, obs = play(env, [first, second])
            assert episode_return(rewards, dones)[0] == expected
            if first[0] == 0:
                assert torch.equal(obs[1][0, 0], torch.tensor([0.0, 1.0, 0.0]))  # state 2A
    td = env.reset()
    assert torch.equal(td["state"], td[OBS][:, 0])


# ------------------------------------------------------------------------------------- m-step
@pytest.mark.parametrize("m", [10, 4])
def test_m_step_optimum_and_trap(m):
    env = make_matrix_env("m-step", steps=m, num_envs=3, seed=0)
    assert env.max_steps == m and env.optimal_return == m + 3
    optimal = [[0, 0]] * (m - 1) + [[1, 1]]
    rewards, dones, obs = play(env, optimal)
    assert torch.equal(rewards[:, 0], torch.tensor([1.0] * (m - 1) + [4.0]))
    assert torch.equal(dones[:, 0], torch.tensor([False] * (m - 1) + [True]))
    assert episode_return(rewards, dones)[0] == m + 3
    # branch 0 all (0,0): the last step pays [[1,1],[1,4]][0][0] = 1 -> m
    rewards, dones, _ = play(env, [[0, 0]] * m)
    assert episode_return(rewards, dones)[0] == m and rewards[-1, 0] == 1.0
    # branch 0, last step (0,1) or (1,0) still pays 1 (last-step payoff, no early exit)
    rewards, dones, _ = play(env, [[0, 0]] * (m - 1) + [[0, 1]])
    assert episode_return(rewards, dones)[0] == m
    # trap: branch 3 with (1,1) throughout -> m
    rewards, dones, _ = play(env, [[1, 1]] * m)
    assert torch.equal(rewards[:, 0], torch.ones(m))
    assert episode_return(rewards, dones)[0] == m
    # trap branch deviating at the last step gets 0 there
    rewards, dones, _ = play(env, [[1, 1]] * (m - 1) + [[0, 0]])
    assert episode_return(rewards, dones)[0] == m - 1
    # observation: one-hot t (m+1) ++ one-hot branch (4); at t=0 the branch part shows branch 0 (authors')
    assert obs[0].shape == (3, 2, m + 5)
    expected0 = torch.zeros(m + 5)
    expected0[0] = expected0[m + 1] = 1.0
    assert torch.equal(obs[0][0, 0], expected0) and torch.equal(obs[0][0, 1], expected0)
    expected1 = torch.zeros(m + 5)
    expected1[1] = 1.0
    expected1[m + 1 + 0] = 1.0  # branch 0
    assert torch.equal(obs[1][0, 0], expected1)
    expected_last = torch.zeros(m + 5)
    expected_last[m] = 1.0
    expected_last[m + 1 + 0] = 1.0
    assert torch.equal(obs[m][0, 1], expected_last)


def test_m_step_unset_initial_branch_changes_only_the_first_observation():
    m = 4
    zero, unset = (make_matrix_env("m-step", steps=m, num_envs=2, seed=0, initial_branch=b) for b in ("zero", "unset"))
    for actions in ([[0, 0]] * (m - 1) + [[1, 1]], [[1, 1]] * m, [[0, 1]]):
        (r_z, d_z, o_z), (r_u, d_u, o_u) = play(zero, actions), play(unset, actions)
        assert torch.equal(r_z, r_u) and torch.equal(d_z, d_u)  # same dynamics and rewards
        assert torch.equal(o_z[0][..., m + 1:], torch.tensor([1.0, 0, 0, 0]).expand(2, 2, 4))
        assert torch.equal(o_u[0][..., m + 1:], torch.zeros(2, 2, 4))  # "not chosen yet"
        assert all(torch.equal(a, b) for a, b in zip(o_z[1:], o_u[1:]))  # identical from t=1 on
    with pytest.raises(ValueError, match="initial_branch must be 'zero'"):
        make_matrix_env("m-step", initial_branch="none")


def test_m_step_deviation_and_dead_branches():
    m = 10
    env = make_matrix_env("m-step", steps=m, num_envs=2, seed=0)
    # branch 0 for 3 steps, then (0,1): reward 0 and the episode terminates at step 4 -> return 3
    rewards, dones, _ = play(env, [[0, 0]] * 3 + [[0, 1]])
    assert torch.equal(rewards[:, 0], torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert torch.equal(dones[:, 0], torch.tensor([False, False, False, True]))
    # branch 3, deviate at t=5 -> return 5
    rewards, dones, _ = play(env, [[1, 1]] * 5 + [[1, 0]] + [[1, 1]] * 4)
    assert dones[5, 0] and episode_return(rewards, dones)[0] == 5
    # branches 1 and 2 pay 0 and end at t=0
    for first in ([0, 1], [1, 0]):
        rewards, dones, obs = play(env, [first])
        assert rewards[0, 0] == 0.0 and dones[0, 0]
    # stepping a finished env without reset: stays done, pays 0
    rewards, dones, _ = play(env, [[0, 1], [0, 0], [0, 0]])
    assert torch.equal(rewards[:, 0], torch.zeros(3)) and dones[:, 0].all()


def test_m_step_batched_mixed_actions():
    env = make_matrix_env("m-step", steps=3, num_envs=4, seed=0)
    td = env.reset()
    td[A] = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])  # one branch per env
    out = env.step(td)["next"]
    assert torch.equal(out["reward"].squeeze(-1), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert torch.equal(out["done"].squeeze(-1), torch.tensor([False, True, True, False]))
    assert torch.equal(out["state"][:, 4:], torch.eye(4))  # branch one-hot per env
    assert torch.equal(out["state"], out[OBS][:, 0]) and torch.equal(out["state"], out[OBS][:, 1])


# ------------------------------------------------------------------------------------- memory
def test_memory_cue_visible_only_at_t0():
    delay = 3
    env = make_matrix_env("memory", delay=delay, num_envs=64, seed=1)
    assert env.game.obs_dim == delay + 5 and env.max_steps == delay + 1
    td = env.reset()
    cue = env._memory.clone()
    assert torch.equal(td[OBS][:, 0, 1:3], torch.nn.functional.one_hot(cue, 2).float())
    assert torch.equal(td[OBS][:, 0, 0], torch.ones(64)) and td[OBS][:, 0, 3].eq(1).all()  # bias, t=0
    assert torch.equal(td["state"], td[OBS][:, 0]) and torch.equal(td[OBS][:, 0], td[OBS][:, 1])
    for t in range(1, delay + 2):
        td[A] = torch.zeros(64, 2, dtype=torch.long)
        td = step_mdp(env.step(td))
        assert (td[OBS][..., 1:3] == 0).all() and (td["state"][:, 1:3] == 0).all()
        assert td[OBS][:, 0, 3 + t].eq(1).all()
    assert td["done"].all()


def test_memory_reward_rule_and_uniform_cue():
    env = make_matrix_env("memory", delay=2, n_agents=3, num_envs=4096, seed=0)
    td = env.reset()
    cue = td[OBS][:, 0, 1:3].argmax(-1)  # [N]
    frac = cue.float().mean().item()
    assert 0.45 < frac < 0.55  # a fair coin per env: 0.5 ± 0.008 (one standard error over 4096 envs), bound 6 of them
    assert int(cue.sum()) == 2058  # the env's own generator, seed 0 (measured; global torch RNG plays no part)
    # steps 0..delay-1 pay 0 whatever the actions; at the last step all agents must play the cue
    for _ in range(2):
        td[A] = torch.randint(0, 2, (4096, 3))
        td = env.step(td)
        assert (td["next", "reward"] == 0).all() and not td["next", "done"].any()
        td = step_mdp(td)
    last = cue.unsqueeze(-1).expand(4096, 3).clone()
    last[:8, 1] = 1 - last[:8, 1]  # one agent wrong in the first 8 envs
    td[A] = last
    out = env.step(td)["next"]
    expected = torch.ones(4096)
    expected[:8] = 0.0
    assert torch.equal(out["reward"].squeeze(-1), expected) and out["done"].all()
    # a memoryless constant policy scores ~0.5: it wins where the (fresh) cue is 0, the same ± 0.008 bound as above
    rewards, dones, _ = play(env, [[0, 0, 0]] * 3)
    assert 0.45 < rewards[-1].mean().item() < 0.55
    assert rewards[-1].sum().item() == 2003  # cue 0 in 2003 of the 4096 fresh episodes (seed 0, measured)


# ------------------------------------------------------------------------------------- resets / seeds
def test_partial_reset_only_masked_envs():
    env = make_matrix_env("memory", delay=4, num_envs=6, seed=0)
    td = env.reset()
    for _ in range(2):
        td[A] = torch.zeros(6, 2, dtype=torch.long)
        td = step_mdp(env.step(td))
    t_before, cue_before = env._t.clone(), env._memory.clone()
    obs_before = td[OBS].clone()
    mask = torch.tensor([True, False, True, False, False, True])
    td.set("_reset", mask.unsqueeze(-1))
    td = env.reset(td)
    assert torch.equal(env._t, torch.where(mask, 0, t_before))
    assert torch.equal(env._memory[~mask], cue_before[~mask])
    assert torch.equal(td[OBS][~mask], obs_before[~mask])
    assert td[OBS][mask][..., 3].eq(1).all()  # t one-hot back at 0
    assert torch.equal(td[OBS][mask][:, 0, 1:3].sum(-1), torch.ones(3))  # cue visible again
    assert not td["done"].any()


def test_partial_reset_after_done():
    env = make_matrix_env("m-step", steps=3, num_envs=2, seed=0)
    td = env.reset()
    td[A] = torch.tensor([[0, 1], [0, 0]])  # env 0 dies, env 1 continues on branch 0
    td = step_mdp(env.step(td))
    assert torch.equal(td["done"].squeeze(-1), torch.tensor([True, False]))
    td = env.reset(td.set("_reset", td["done"].clone()))
    assert not td["done"].any()
    assert torch.equal(env._t, torch.tensor([0, 1]))
    td[A] = torch.tensor([[1, 1], [0, 0]])
    out = env.step(td)["next"]
    assert torch.equal(out["reward"].squeeze(-1), torch.tensor([1.0, 1.0]))


def test_seeding_reproducible():
    def cues(seed, n_resets=5):
        env = make_matrix_env("memory", num_envs=32, seed=seed)
        seq = [env._memory.clone()]
        for _ in range(n_resets):
            env.reset()
            seq.append(env._memory.clone())
        return torch.stack(seq)

    assert torch.equal(cues(3), cues(3))
    assert not torch.equal(cues(3), cues(4))
    env = make_matrix_env("memory", num_envs=32, seed=0)
    env.set_seed(7)
    a = env.reset()[OBS].clone()
    env.set_seed(7)
    assert torch.equal(env.reset()[OBS], a)


def test_rollout_auto_reset():
    env = make_matrix_env("m-step", steps=4, num_envs=16, seed=0)
    ro = env.rollout(30, break_when_any_done=False)
    assert ro.batch_size == (16, 30)
    assert ro[OBS].shape == (16, 30, 2, 9)
    # after every done the next root observation is a fresh t=0 observation
    done = ro["next", "done"].squeeze(-1)[:, :-1]
    assert done.any()
    assert ro[OBS][:, 1:][done][:, 0, 0].eq(1).all()
    assert ro[OBS][:, 1:][done][:, 0, 1:5].eq(0).all()  # t = 0
    assert torch.equal(ro[OBS][:, 1:][done][:, 0, 5:], torch.tensor([1.0, 0, 0, 0]).expand(int(done.sum()), 4))
    # one-step games are done every step and pay payoff entries
    env = make_matrix_env("qtran", num_envs=8, seed=0)
    ro = env.rollout(10, break_when_any_done=False)
    assert ro["next", "done"].all()
    assert set(ro["next", "reward"].unique().tolist()) <= {8.0, -12.0, 0.0}


def test_step_throughput():
    env = make_matrix_env("m-step", num_envs=4096, seed=0)
    td = env.reset()
    td[A] = torch.zeros(4096, 2, dtype=torch.long)
    env._step(td)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add contention noise
    try:
        start = time.perf_counter()
        for _ in range(100):
            env._step(td)
        rate = 4096 * 100 / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert rate > 2e5  # typically ~7e6 env-steps/s on one CPU thread; loose bound against flakiness


def test_game_objects_directly():
    env = MatrixGameEnv(OneStepGame([[1, 2], [3, 4]], name="mine"), num_envs=2, seed=0)
    check_env_specs(env)
    env = MatrixGameEnv(MStepGame(5), num_envs=2)
    assert env.optimal_return == 8.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():
    for task in NAMED:
        env = make_matrix_env(task, num_envs=8, device="cuda", seed=0)
        check_env_specs(env)
        ro = env.rollout(5, break_when_any_done=False)
        assert ro[OBS].device.type == "cuda" and ro["next", "reward"].device.type == "cuda"


# ------------------------------------------------------------------------------------- errors
def test_unknown_task_suggests_close_match():
    with pytest.raises(ValueError, match="qtran"):
        make_matrix_env("qtrn")
    with pytest.raises(ValueError, match="m-step"):
        make_matrix_env("m-stpe")
    assert make_matrix_env("two_step").max_steps == 2  # underscore alias


@pytest.mark.parametrize(
    "payoff,match",
    [
        ([1.0, 2.0], "2 dimensions"),
        (5.0, "2 dimensions"),
        ([[1.0, float("nan")], [0.0, 1.0]], "finite"),
        ([[1.0, float("inf")], [0.0, 1.0]], "finite"),
        ([[1, 2], [3]], "rectangular"),
        ([["a", "b"], ["c", "d"]], "rectangular"),
        (torch.ones(2, 2, dtype=torch.bool), "real numbers"),
        (torch.ones(2, 0), "empty"),
    ],
)
def test_bad_payoff(payoff, match):
    with pytest.raises(ValueError, match=match):
        make_matrix_env("custom", payoff=payoff)


def test_bad_kwargs():
    with pytest.raises(ValueError, match="steps"):
        make_matrix_env("qtran", steps=3)
    with pytest.raises(ValueError, match="delay"):
        make_matrix_env("m-step", delay=3)
    with pytest.raises(ValueError, match="payoff"):
        make_matrix_env("custom")
    with pytest.raises(ValueError, match="steps"):
        make_matrix_env("m-step", steps=1)
    with pytest.raises(ValueError, match="k"):
        make_matrix_env("penalty", k=float("nan"))
    with pytest.raises(ValueError, match="n_agents"):
        make_matrix_env("memory", n_agents=0)
