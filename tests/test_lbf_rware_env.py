"""LBF and RWARE adapters (envs/gymma.py, lbf.py, rware.py): values equal the raw envs' step for step,
time limits are truncations, masks, seeding, specs, errors, and one training run."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from _helpers import hide_package

pytest.importorskip("lbforaging")
pytest.importorskip("rware")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

import torchrl_vd as vd  # noqa: E402
from torchrl_vd.envs import describe_env, make_env  # noqa: E402
from torchrl_vd.envs.gymma import GymMATeamEnv  # noqa: E402

torch.set_num_threads(1)

LBF = "Foraging-8x8-2p-2f-coop-v3"
LBF_SMALL = "Foraging-5x5-2p-1f-coop-v3"  # random loaders clear it within 50 steps in about half the episodes
RWARE = "rware-tiny-2ag-v2"


def load_first(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per agent: LOAD (5) when it is valid, else a uniformly random valid action. ``mask`` [N, n, 6]."""
    scores = torch.rand(mask.shape, generator=gen).masked_fill(~mask, -1.0)
    act = scores.argmax(-1)
    return torch.where(mask[..., 5], torch.full_like(act, 5), act)


def random_actions(n_actions: int, gen: torch.Generator, shape) -> torch.Tensor:
    return torch.randint(0, n_actions, shape, generator=gen)


# ------------------------------------------------------------------------------- layout & specs
@pytest.mark.parametrize(
    "name,expect",
    [
        (f"lbf/{LBF}", (2, 6, (12,), (24,), True)),
        (f"rware/{RWARE}", (2, 5, (71,), (142,), False)),
        ("rware/rware-small-4ag-v2", (4, 5, (71,), (284,), False)),
    ],
)
def test_specs_and_layout(name, expect):
    env = make_env(name, num_envs=3, seed=0)
    check_env_specs(env)
    info = describe_env(env)
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape, info.has_action_mask) == expect
    assert info.batch_size == (3,)
    td = env.rollout(4)
    n = expect[0]
    assert td["agents", "observation"].shape == (3, 4, n, expect[2][0]) and td["agents", "observation"].dtype == torch.float32
    assert td["agents", "action"].shape == (3, 4, n) and td["agents", "action"].dtype == torch.int64
    assert td["next", "reward"].shape == (3, 4, 1) and td["next", "agents", "reward"].shape == (3, 4, n, 1)
    for key in ("done", "terminated", "truncated"):
        assert td["next", key].shape == (3, 4, 1) and td["next", key].dtype == torch.bool
    # state = the stacked observations
    torch.testing.assert_close(td["state"], td["agents", "observation"].flatten(-2))


# ----------------------------------------------------------------------- values vs the raw env
def _raw_done_split(raw, terminated: bool):
    """(terminated, truncated) as the adapter must report them for a raw step that returned ``terminated``."""
    if not terminated:
        return False, False
    if hasattr(raw.unwrapped, "field"):  # LBF: terminal only when the field is cleared
        cleared = not raw.unwrapped.field.any()
        return cleared, not cleared
    return False, True  # RWARE: every end is a time limit


@pytest.mark.filterwarnings("ignore:.*reward returned by `step\\(\\)`:UserWarning")  # the stock env checker on Tuple rewards
@pytest.mark.parametrize(
    "family,task,steps,limit",
    [("lbf", LBF_SMALL, 120, {}), ("rware", RWARE, 90, {"max_steps": 40})],  # rware: a short limit, same rules
)
def test_values_equal_raw_env(family, task, steps, limit):
    """Observations, rewards, masks, state and done flags equal stock ``gym.make`` envs driven alongside with
    the same seeds and actions, across time limits, terminations and auto-resets."""
    n_envs, seed = 2, 3
    env = make_env(f"{family}/{task}", num_envs=n_envs, seed=seed, **limit)
    raws = [gym.make(task, **limit) for _ in range(n_envs)]  # stock: env checker, order enforcing, own limit
    raw_obs = [r.reset(seed=seed + i)[0] for i, r in enumerate(raws)]
    gen = torch.Generator().manual_seed(0)
    td = env.reset()
    ends = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        for i, r in enumerate(raws):
            np.testing.assert_array_equal(td["agents", "observation"][i].numpy(), np.stack(raw_obs[i]))
            np.testing.assert_array_equal(td["state"][i].numpy(), np.concatenate(raw_obs[i]))
            if family == "lbf":
                u = r.unwrapped
                valid = [[a.value for a in u._valid_actions[p]] for p in u.players]
                assert [row.nonzero().flatten().tolist() for row in td["agents", "action_mask"][i]] == valid
        if family == "lbf":
            act = load_first(td["agents", "action_mask"], gen)
        else:
            act = random_actions(5, gen, (n_envs, 2))
        td.set(("agents", "action"), act)
        out, td = env.step_and_maybe_reset(td)
        nxt = out["next"]
        for i, r in enumerate(raws):
            obs, rew, term, trunc, _ = r.step(act[i].tolist())
            assert not trunc
            np.testing.assert_array_equal(nxt["agents", "observation"][i].numpy(), np.stack(obs))
            np.testing.assert_allclose(nxt["agents", "reward"][i, :, 0].numpy(), np.asarray(rew, dtype=np.float32))
            np.testing.assert_allclose(nxt["reward"][i, 0].item(), float(np.sum(np.asarray(rew, dtype=np.float32))), rtol=1e-6)
            want_term, want_trunc = _raw_done_split(r, term)
            assert (nxt["terminated"][i, 0].item(), nxt["truncated"][i, 0].item()) == (want_term, want_trunc), (t, i)
            assert nxt["done"][i, 0].item() == term
            ends["terminated"] += want_term
            ends["truncated"] += want_trunc
            raw_obs[i] = r.reset()[0] if term else obs
    if family == "lbf":  # both kinds of episode end were exercised
        assert ends["terminated"] >= 2 and ends["truncated"] >= 1, ends
    else:
        assert ends == {"terminated": 0, "truncated": 2 * n_envs}


def test_time_limits_truncate():
    td = make_env(f"lbf/{LBF}", num_envs=2, seed=0, max_steps=5).rollout(12, break_when_any_done=False)
    assert td["next", "truncated"][0, :, 0].nonzero().flatten().tolist() == [4, 9]
    assert not td["next", "terminated"].any() and torch.equal(td["next", "done"], td["next", "truncated"])
    td = make_env(f"rware/{RWARE}", num_envs=2, seed=0, max_steps=7).rollout(15, break_when_any_done=False)
    assert td["next", "truncated"][:, :, 0].nonzero()[:, 1].tolist() == [6, 13, 6, 13]
    assert not td["next", "terminated"].any()
    assert make_env(f"rware/{RWARE}", num_envs=1)._envs[0].max_steps == 500  # EPyMARL's limits by default
    assert make_env(f"lbf/{LBF}", num_envs=1)._envs[0]._max_episode_steps == 50
    # max_steps=None keeps the env's own limit, still reported as a truncation
    env = make_env(f"lbf/{LBF}", num_envs=1, seed=0, max_steps=None)
    assert env.max_steps is None and env._envs[0]._max_episode_steps == 50
    td = env.rollout(51, break_when_any_done=False)
    assert td["next", "truncated"][0, :, 0].nonzero().flatten().tolist() == [49]


def test_team_reward_mean_and_sum():
    gen = torch.Generator().manual_seed(1)
    s = make_env(f"lbf/{LBF_SMALL}", num_envs=4, seed=0)
    m = make_env(f"lbf/{LBF_SMALL}", num_envs=4, seed=0, team_reward="mean")
    ts, tm = s.reset(), m.reset()
    total = 0.0
    for _ in range(60):
        act = load_first(ts["agents", "action_mask"], gen)
        ts.set(("agents", "action"), act)
        tm.set(("agents", "action"), act)
        (os_, ts), (om, tm) = s.step_and_maybe_reset(ts), m.step_and_maybe_reset(tm)
        per_agent = os_["next", "agents", "reward"].squeeze(-1)
        torch.testing.assert_close(os_["next", "reward"].squeeze(-1), per_agent.sum(-1))
        torch.testing.assert_close(om["next", "reward"], os_["next", "reward"] / 2)
        total += os_["next", "reward"].sum().item()
    assert total > 0  # some food was collected: the sums above were not all 0 == 0


# -------------------------------------------------------------------------------------- masks
def test_lbf_masks_forbid_exactly_the_actions_the_env_ignores():
    """A masked action is one LBF replaces by NONE: stepping a copy of the raw env with it gives the same
    outcome as NONE. ``rand_action`` (the action spec's mask) never draws one."""
    env = make_env(f"lbf/{LBF}", num_envs=4, seed=5)
    td = env.reset()
    masked_seen = 0
    gen = torch.Generator().manual_seed(2)
    for _ in range(15):
        mask = td["agents", "action_mask"]
        assert mask[..., 0].all()  # NONE is always valid
        for i, raw in enumerate(env._envs):
            for j in range(env.n_agents):
                for a in (~mask[i, j]).nonzero().flatten().tolist():
                    masked_seen += 1
                    acts = [0] * env.n_agents
                    with_a, with_none = copy.deepcopy(raw), copy.deepcopy(raw)
                    acts[j] = a
                    o1, r1, *_ = with_a.step(list(acts))
                    acts[j] = 0
                    o2, r2, *_ = with_none.step(list(acts))
                    np.testing.assert_array_equal(np.stack(o1), np.stack(o2))
                    assert r1 == r2
        for _ in range(10):
            drawn = env.rand_action(td.clone())["agents", "action"]
            assert mask.gather(-1, drawn.unsqueeze(-1)).all()
        td.set(("agents", "action"), load_first(mask, gen))
        _, td = env.step_and_maybe_reset(td)
    assert masked_seen > 20  # walls, food and LOAD without food were masked
    assert not make_env(f"lbf/{LBF}", num_envs=1, action_mask=False).has_action_mask


# ---------------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("name", [f"lbf/{LBF}", f"rware/{RWARE}"])
def test_seeding_is_reproducible_and_per_env(name):
    actions = random_actions(5, torch.Generator().manual_seed(4), (20, 3, 2))  # [T, N, n]

    def run(env, actions=actions):
        td = env.reset()
        obs = [td["agents", "observation"].clone()]
        rew = []
        for a in actions:
            td.set(("agents", "action"), a)
            out, td = env.step_and_maybe_reset(td)
            obs.append(out["next", "agents", "observation"].clone())
            rew.append(out["next", "reward"].clone())
        return torch.stack(obs, 1), torch.stack(rew, 1)

    a = run(make_env(name, num_envs=3, seed=11))
    b = run(make_env(name, num_envs=3, seed=11))
    c = run(make_env(name, num_envs=3, seed=12))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0][:, 0], c[0][:, 0])  # another seed, other initial states
    # copy i of a batch is the env seeded with seed + i
    single = run(make_env(name, num_envs=1, seed=13), actions[:, 2:])
    torch.testing.assert_close(single, (a[0][2:], a[1][2:]))
    # set_seed re-seeds the next reset
    env = make_env(name, num_envs=3)
    env.set_seed(11)
    torch.testing.assert_close(run(env), a)


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("family,package", [("lbf", "lbforaging"), ("rware", "rware")])
def test_missing_dependency(monkeypatch, family, package):
    hide_package(monkeypatch, package)
    task = LBF if family == "lbf" else RWARE
    with pytest.raises(ImportError, match=rf"'{package}'.*pip install 'torchrl-vd\[{family}\]'"):
        make_env(f"{family}/{task}", num_envs=1)


@pytest.mark.parametrize(
    "name,suggestion",
    [("lbf/Foraging-8x8-2p-2f-coop-v2", LBF), ("rware/rware-tiny-2ag-v1", RWARE), ("rware/rware-tiny-2agents-v2", RWARE)],
)
def test_unknown_task_suggests_close_match(name, suggestion):
    with pytest.raises(ValueError, match=rf"Unknown {name.split('/')[0]} task .*Did you mean: .*{suggestion}"):
        make_env(name, num_envs=1)


class _FakeTeamEnv(gym.Env):
    """A gymma-API env with the given per-agent spaces (for the errors raised on bad spaces)."""

    def __init__(self, acts, obs=None):
        self.action_space = spaces.Tuple(acts)
        self.observation_space = spaces.Tuple(obs or [spaces.Box(-1, 1, (3,), np.float32)] * len(acts))

    def reset(self, seed=None, options=None):
        return tuple(np.arange(int(np.prod(s.shape)), dtype=np.float32).reshape(s.shape) + 10 * j
                     for j, s in enumerate(self.observation_space)), {}


@pytest.mark.parametrize(
    "acts,obs,match",
    [
        ([spaces.Box(-1, 1, (2,), np.float32)] * 2, None, r"continuous action space .*discrete-action version"),
        ([spaces.Discrete(4), spaces.Discrete(5)], None, r"different action counts \[4, 5\].*Pad every agent.*mask"),
        ([spaces.MultiDiscrete([5, 2])] * 2, None, r"one Discrete\(n\) action.*msg_bits=0"),
        ([spaces.Discrete(3)] * 2, [spaces.Box(0, 1, (3,)), spaces.Box(0, 1, (4,))], r"different sizes \[3, 4\]"),
    ],
)
def test_bad_spaces_are_rejected_before_work_starts(acts, obs, match):
    with pytest.raises(ValueError, match=match):
        GymMATeamEnv(lambda: _FakeTeamEnv(acts, obs), num_envs=2)


def test_image_observations_are_flattened():
    env = GymMATeamEnv(lambda: _FakeTeamEnv([spaces.Discrete(3)] * 2, [spaces.Box(0, 20, (2, 3))] * 2), num_envs=2)
    assert env.obs_dim == 6 and not env._flat_obs
    obs = env.reset()["agents", "observation"]
    assert obs[1].tolist() == [[0, 1, 2, 3, 4, 5], [10, 11, 12, 13, 14, 15]]


def test_rware_communication_bits_and_other_misuse_are_rejected():
    with pytest.raises(ValueError, match=r"MultiDiscrete.*msg_bits=0"):
        make_env(f"rware/{RWARE}", num_envs=1, msg_bits=1)
    with pytest.raises(ValueError, match=r"max_steps=\.\.\., not max_episode_steps"):
        make_env(f"lbf/{LBF}", num_envs=1, max_episode_steps=10)
    env = make_env(f"lbf/{LBF}", num_envs=2, seed=0)
    td = env.reset()
    td.set(("agents", "action"), torch.tensor([[0, 1], [6, 0]]))
    with pytest.raises(ValueError, match=r"action 6 of agent 0 \(env 1\) is out of its range \[0, 6\)"):
        env.step(td)


# ------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("env_name,env_kwargs", [(f"lbf/{LBF}", {}), (f"rware/{RWARE}", {"max_steps": 25})])
def test_training_smoke(tmp_path, env_name, env_kwargs):
    cfg = vd.TrainConfig(algo="vdn", env=env_name, env_kwargs=env_kwargs, num_envs=4, frames=400,
                         frames_per_batch=100, batch_size=32, updates_per_batch=2, eps_frames=200, progress=False,
                         out_dir=str(tmp_path / "run"), eval_episodes=2, hidden=(32,))
    result = vd.train(cfg)
    assert result.summary["frames"] == 400 and result.summary["updates"] == 8
    assert all(math.isfinite(r["loss"]) for r in result.metrics)
    # 25 steps per env and batch: LBF's 50-step episodes end in every second batch, rware's 25-step ones in each
    assert [r["episodes"] for r in result.metrics] == ([0, 4, 0, 4] if env_name.startswith("lbf") else [4, 4, 4, 4])
    # seed 0, measured (the same in repeated runs): no food loaded / no shelf delivered, neither by the ε-greedy
    # episodes nor by the 2 greedy ones, so every return is exactly 0
    assert all(r["train_return"] == 0.0 for r in result.metrics if r["episodes"])
    assert (result.summary["final_eval_return"], result.summary["final_eval_return_std"]) == (0.0, 0.0)


@pytest.mark.parametrize("env_name,updates", [(f"lbf/{LBF}", 10), (f"rware/{RWARE}", 10)])
def test_family_preset_is_epymarls_and_trains_one_batch(tmp_path, env_name, updates):
    """The lbf/rware preset: EPyMARL's QMIX defaults vectorized as 10 envs = 10 episodes per batch, one
    gradient step on 32 episodes' transitions per collected episode."""
    cfg = vd.TrainConfig(algo="qmix", env=env_name)
    T = 50 if env_name.startswith("lbf") else 500  # EPyMARL's time limits
    assert (cfg.agent, cfg.hidden, cfg.agent_id, cfg.lr, cfg.target_update) == ("mlp", (64, 64), True, 5e-4, 200)
    assert cfg.frames_per_batch == 10 * T and cfg.batch_size == 32 * T and cfg.updates_per_batch == 10
    result = vd.train(cfg.with_overrides({"frames": cfg.frames_per_batch, "progress": False, "eval_episodes": 1,
                                          "out_dir": str(tmp_path / "run")}))
    assert result.summary["frames"] == 10 * T and result.summary["updates"] == updates
    assert math.isfinite(result.metrics[-1]["loss"])
