"""SMAX adapter (envs/smax.py): values equal a raw JaxMARL env stepped alongside, battle_won, masks, seeding,
specs, errors, and one training run. Compiling SMAX costs 10-60 s on a CPU, so every test uses 3 battles of
``3m`` built with the same arguments: they share one compilation (``_batched_fns`` is cached)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _helpers import hide_package

pytest.importorskip("jaxmarl")

import jax  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

import torchrl_vd as vd  # noqa: E402
from torchrl_vd.envs import describe_env, make_env  # noqa: E402

torch.set_num_threads(1)

N_ENVS, N_ALLIES, N_ACTIONS = 3, 3, 8  # 3m: 3 allies, 5 + 3 actions


def smax(seed=7, **kw):
    return make_env("smax/3m", num_envs=N_ENVS, seed=seed, **kw)


def scripted(td) -> torch.Tensor:
    """Attack the first enemy in range, else move east (towards the enemies), dead allies stop. Wins ~40% of
    3m battles against the heuristic enemy, so both battle outcomes occur."""
    mask = td["agents", "action_mask"]  # [N, n, A]
    attack = mask[..., 5:]
    first = attack.float().argmax(-1) + 5
    move = torch.where(td["agents", "alive"], torch.ones_like(first), torch.full_like(first, 4))
    return torch.where(attack.any(-1), first, move)


@pytest.fixture(scope="module")
def env():
    return smax()


def test_specs_and_layout(env):
    check_env_specs(env)
    info = describe_env(env)
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (N_ALLIES, N_ACTIONS, (75,), (72,))
    assert info.has_action_mask and info.batch_size == (N_ENVS,)
    td = env.reset()
    assert td["agents", "observation"].dtype == torch.float32 and td["agents", "alive"].all()
    assert td["battle_won"].shape == (N_ENVS, 1) and not td["battle_won"].any()
    # at the start no enemy is in range: move or stop only
    assert td["agents", "action_mask"][..., :5].all() and not td["agents", "action_mask"][..., 5:].any()


def test_values_equal_raw_jaxmarl(env):
    """Obs, world state, masks, alive flags, rewards and done flags equal a raw ``HeuristicEnemySMAX`` driven
    copy by copy with keys PRNGKey(seed + i) split once per reset/step (the documented schedule)."""
    raw, seed, steps = env.raw_env, 11, 130
    agents = raw.agents
    env.set_seed(seed)
    td = env.reset()
    keys, states, raw_obs = [], [], []
    for i in range(N_ENVS):
        key, sub = jax.random.split(jax.random.PRNGKey(seed + i))
        obs, state = raw.reset(sub)
        keys.append(key), states.append(state), raw_obs.append(obs)
    outcomes = {"won": 0, "lost": 0, "truncated": 0}
    for t in range(steps):
        for i in range(N_ENVS):
            avail = raw.get_avail_actions(states[i])
            np.testing.assert_allclose(td["agents", "observation"][i].numpy(), np.stack([raw_obs[i][a] for a in agents]), atol=1e-6)
            np.testing.assert_allclose(td["state"][i].numpy(), np.asarray(raw_obs[i]["world_state"]), atol=1e-6)
            assert td["agents", "action_mask"][i].tolist() == np.stack([avail[a] for a in agents]).astype(bool).tolist()
        act = scripted(td)
        td.set(("agents", "action"), act)
        out, td = env.step_and_maybe_reset(td)
        nxt = out["next"]
        for i in range(N_ENVS):
            keys[i], sub = jax.random.split(keys[i])
            obs, states[i], rew, dones, _ = raw.step_env(sub, states[i], {a: act[i, j].item() for j, a in enumerate(agents)})
            alive = np.asarray(states[i].state.unit_alive)
            np.testing.assert_allclose(nxt["agents", "observation"][i].numpy(), np.stack([obs[a] for a in agents]), atol=1e-6)
            np.testing.assert_allclose(nxt["state"][i].numpy(), np.asarray(obs["world_state"]), atol=1e-6)
            assert nxt["agents", "alive"][i].tolist() == alive[:N_ALLIES].tolist()
            r = np.array([rew[a] for a in agents], dtype=np.float32)
            np.testing.assert_allclose(nxt["agents", "reward"][i, :, 0].numpy(), r, atol=1e-6)
            np.testing.assert_allclose(nxt["reward"][i, 0].item(), r.mean(), atol=1e-6)  # the shared reward
            done = bool(dones["__all__"])
            lost, won = not alive[:N_ALLIES].any(), not alive[N_ALLIES:].any() and alive[:N_ALLIES].any()
            assert nxt["done"][i, 0].item() == done
            assert nxt["terminated"][i, 0].item() == (done and (lost or not alive[N_ALLIES:].any()))
            assert nxt["truncated"][i, 0].item() == (done and alive[:N_ALLIES].any() and alive[N_ALLIES:].any())
            assert nxt["battle_won"][i, 0].item() == (done and won)
            if won:
                assert r[0] >= 1.0  # the win bonus
            if done:
                outcomes["won" if won else "lost" if lost else "truncated"] += 1
                keys[i], sub = jax.random.split(keys[i])
                raw_obs[i], states[i] = raw.reset(sub)
            else:
                raw_obs[i] = obs
    assert outcomes["won"] >= 1 and outcomes["lost"] >= 1, outcomes


def test_time_limit_truncates():
    env = make_env("smax/3m", num_envs=N_ENVS, seed=0, max_steps=5)  # a new raw env: compiles once more
    assert env.raw_env.max_steps == 5
    td = env.reset()
    out = []
    for _ in range(12):
        td.set(("agents", "action"), torch.full((N_ENVS, N_ALLIES), 4))  # everybody stops: nobody fights
        step, td = env.step_and_maybe_reset(td)
        out.append(step["next"])
    trunc = torch.stack([o["truncated"][:, 0] for o in out], 1)
    # SMAX checks its limit before counting the step, so an episode lasts max_steps + 1 steps (raw JaxMARL too)
    assert trunc.nonzero()[:, 1].tolist() == [5, 11] * N_ENVS
    assert not any(o["terminated"].any() for o in out) and not any(o["battle_won"].any() for o in out)


def test_masks_and_dead_allies(env):
    torch.manual_seed(0)
    td = env.reset()
    dead_seen = 0
    for _ in range(40):
        mask = td["agents", "action_mask"]
        drawn = env.rand_action(td.clone())["agents", "action"]
        assert mask.gather(-1, drawn.unsqueeze(-1)).all()  # rand_action draws available actions only
        dead = ~td["agents", "alive"]
        assert (mask[dead] == torch.tensor([False] * 4 + [True] + [False] * 3)).all()  # the dead may only stop
        dead_seen += int(dead.sum())
        td.set(("agents", "action"), drawn)
        _, td = env.step_and_maybe_reset(td)
    assert dead_seen > 0


def test_seeding_is_reproducible(env):
    def run(e, steps=25):
        td = e.reset()
        obs = [td["agents", "observation"].clone()]
        for _ in range(steps):
            td.set(("agents", "action"), scripted(td))
            out, td = e.step_and_maybe_reset(td)
            obs.append(out["next", "agents", "observation"].clone())
        return torch.stack(obs, 1)

    env.set_seed(3)
    a = run(env)
    b = run(smax(seed=3))
    torch.testing.assert_close(a, b)
    c = run(smax(seed=4))
    assert not torch.equal(a[:, 0], c[:, 0])
    torch.testing.assert_close(a[1:, 0], c[:2, 0])  # copy i is seed + i: seed 3's copies 1, 2 = seed 4's 0, 1


def test_errors():
    with pytest.raises(ValueError, match=r"Unknown smax task '3mm'.*Did you mean: 3m"):
        make_env("smax/3mm", num_envs=1)
    with pytest.raises(ValueError, match=r"discrete actions.*action_type='discrete'"):
        make_env("smax/3m", num_envs=1, action_type="continuous")


def test_out_of_range_action(env):
    td = env.reset()
    td.set(("agents", "action"), torch.tensor([[0, 1, 2], [3, 8, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"action 8 of agent 1 \(env 1\) is out of its range \[0, 8\)"):
        env.step(td)


@pytest.mark.parametrize("missing", ["jax", "jaxmarl"])
def test_missing_dependency(monkeypatch, missing):
    hide_package(monkeypatch, missing)
    with pytest.raises(ImportError, match=rf"'{missing}'.*pip install 'torchrl-vd\[smax\]'"):
        make_env("smax/3m", num_envs=1)


def test_training_smoke(tmp_path):
    """VDN on 3m with the batch size of the tests above (collector and evaluation envs reuse their compilation)."""
    # from_dict: a complete config (the library defaults, no SMAX preset): small agents, learning from the start
    cfg = vd.TrainConfig.from_dict(dict(algo="vdn", env="smax/3m", num_envs=N_ENVS, frames=N_ENVS * 40,
                                        frames_per_batch=N_ENVS * 20,
                         batch_size=32, updates_per_batch=2, eps_frames=60, progress=False,
                         out_dir=str(tmp_path / "run"), eval_episodes=N_ENVS, hidden=(32,)))
    result = vd.train(cfg)
    assert result.summary["frames"] == N_ENVS * 40 and result.summary["updates"] == 4
    assert all(math.isfinite(r["loss"]) for r in result.metrics)
    # Seed 0, measured with jaxmarl 0.2.0 on CPU (the same in repeated runs): the 3 battles that ended in the first
    # batch returned 4/45 on average (float32), the 8 of the second 0; after 4 updates the greedy agents deal no
    # damage in any of the 3 evaluation battles (return damage dealt + win bonus = 0 in each, so mean and std are 0).
    assert [r["episodes"] for r in result.metrics] == [3, 8]
    assert [r["train_return"] for r in result.metrics] == pytest.approx([4 / 45, 0.0], rel=1e-6)
    assert (result.summary["final_eval_return"], result.summary["final_eval_return_std"]) == (0.0, 0.0)


def test_win_rates_are_logged_per_batch_at_evaluations_and_in_the_summary(tmp_path):
    """Training and greedy win rates (metrics.csv win_rate / eval_win_rate, summary final_eval_win_rate) equal
    the battles the rows' episodes won, counted again from a rollout of the same greedy policy."""
    from torchrl_vd.train.evaluation import greedy_rollout

    cfg = vd.TrainConfig.from_dict(dict(algo="vdn", env="smax/3m", num_envs=N_ENVS, frames=N_ENVS * 80,
                                        frames_per_batch=N_ENVS * 40,
                         batch_size=32, updates_per_batch=1, eps_frames=60, progress=False, eval_every=N_ENVS * 80,
                         out_dir=str(tmp_path / "run"), eval_episodes=N_ENVS, hidden=(32,)))
    result = vd.train(cfg)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["win_rate", "eval_win_rate"]
    # seed 0, measured as in test_training_smoke: 6 and 16 battles end in the two batches, none won
    assert [(row["episodes"], row["win_rate"]) for row in result.metrics] == [(6, 0.0), (16, 0.0)]
    final = result.summary["final_eval_win_rate"]
    assert final == result.metrics[-1]["eval_win_rate"]  # the evaluation after the last batch is the final one
    from torchrl_vd.train.environment import build_env

    eval_env = build_env(cfg, result.parts.env_transforms, result.loss_module.agent_net, num_envs=N_ENVS,
                         seed=cfg.seed + 10_000)
    roll, _, valid = greedy_rollout(result.policy, eval_env, seed=cfg.seed + 10_000)
    won = [bool((roll["next", "battle_won"][i].squeeze(-1) & valid[i]).any()) for i in range(N_ENVS)]
    assert final == sum(won) / N_ENVS


def test_vectorized_seeds_run_on_smax(tmp_path):
    """Three seeds of one battle each: the joint env has the tests' 3 battles (the same compilation)."""
    cfg = vd.TrainConfig.from_dict(dict(algo="qmix", env="smax/3m", num_envs=1, frames=60, frames_per_batch=20,
                                        batch_size=16,
                         updates_per_batch=1, eps_frames=20, progress=False, seeds=(0, 1, 2), eval_episodes=1,
                         out_dir=str(tmp_path / "seeds"), hidden=(16,)))
    result = vd.train(cfg)
    assert [r.summary["frames"] for r in result.runs] == [60, 60, 60]
    assert all("final_eval_win_rate" in r.summary and "win_rate" in r.metrics[0] for r in result.runs)
    assert result.summary["final_eval_win_rate"] == sum(r.summary["final_eval_win_rate"] for r in result.runs) / 3


def test_reset_of_running_copies_keeps_the_others(env):
    """A ``_reset`` mask that is not the last step's finished copies (a user's reset) takes the vmapped reset
    path: the masked copies start a new battle, the others keep their state and key."""
    from tensordict import TensorDict

    td = env.reset()
    for _ in range(3):
        td.set(("agents", "action"), torch.full((N_ENVS, N_ALLIES), 4))
        _, td = env.step_and_maybe_reset(td)
    before_keys, before_steps = np.asarray(env._keys), np.asarray(env._states.state.step)
    assert before_steps.tolist() == [3, 3, 3]
    env.reset(TensorDict({"_reset": torch.tensor([[False], [True], [False]])}, [N_ENVS]))
    assert np.asarray(env._states.state.step).tolist() == [3, 0, 3]
    keys = np.asarray(env._keys)
    assert (keys[[0, 2]] == before_keys[[0, 2]]).all() and not (keys[1] == before_keys[1]).all()


def test_no_fork_once_jax_runs_threads(env):
    """JAX's thread pool (started by the env fixture's compilation) makes a fork unsafe: children spawn."""
    from torchrl_vd.train.threads import TORCH_IMPORT_THREADS, fork_is_safe, thread_count

    env.rollout(2)
    assert thread_count() > TORCH_IMPORT_THREADS and not fork_is_safe()
