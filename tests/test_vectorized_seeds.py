"""Many seeds in one process (train/population.py): independence, equivalence with single runs, outcomes.

* Independence: changing seed j's data or parameters leaves seed k's loss, gradients and updates
  bitwise unchanged (``torch.equal``), through the vmapped loss, per-seed replay draws, per-seed grad
  clipping, one Adam over the stacked parameters and the Polyak target update.
* Initial networks: seed k's equal a single run's with seed k, bitwise.
* N = 1: ``seeds=(k,)`` runs a lone run (bitwise: same metrics.csv, same final networks); the
  vectorized path at N = 1 follows the same data (uniform exploration) and matches its losses to float
  rounding (vmapped kernels sum in another order: |Δ| ~ 1e-9 per step, compounding to < 1e-4 relative).
* Matrix games: N vectorized seeds reach each sequential run's learned table (VDN's least-squares fit of
  the QTRAN game), seed for seed, within tolerance. Not bitwise: one process has one torch RNG stream, so
  the replay draws differ from a single run's (train/population.py); with uniform exploration the data
  distribution is the same, and the learned table is a deterministic limit, so the outcomes agree.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from _helpers import mstep_config

import torchrl_vd as vd
from torchrl_vd.cli import _parser
from torchrl_vd.train.evaluation import evaluate_run
from torchrl_vd.train.learner import Learner, SeedLearner
from torchrl_vd.train.loop import Training
from torchrl_vd.train.population import SeedStack, build_seed_parts, seed_config

VDN_FIT = torch.tensor([[-6.22, -4.89, -4.89], [-4.89, -3.56, -3.56], [-4.89, -3.56, -3.56]])  # test_train.py
TIMING = {"fps", "time", "collect_time", "update_time", "cpu_time", "rss_mb"}


def small_cfg(out_dir, **kw):
    base = dict(algo="qmix", env="matrix/qtran", num_envs=16, frames=16 * 6, frames_per_batch=16, batch_size=32,
                updates_per_batch=3, eps_start=1.0, eps_end=1.0, hidden=(16,), eval_episodes=2, progress=False,
                out_dir=str(out_dir), checkpoint_every=0, grad_clip=0.5)
    base.update(kw)
    return vd.TrainConfig(**base)


def rows(run_dir):
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def stacked_learner(cfg, out):
    runs = [seed_config(cfg, k, Path(out)) for k in cfg.seeds]
    parts, seed_parts, info = build_seed_parts(runs)
    stack = SeedStack([p.loss_module for p in seed_parts], parts.loss_module)
    return stack, SeedLearner(cfg, stack, time_steps=cfg.frames_per_batch // cfg.num_envs)


def collected(cfg, n, seed=0):
    """A batch [N, num_envs, T] of uniform random play on cfg.env (the collector's layout)."""
    env = vd.make_env(cfg.env, num_envs=n * cfg.num_envs, seed=seed, **cfg.env_kwargs)
    torch.manual_seed(seed)
    roll = env.rollout(cfg.frames_per_batch // cfg.num_envs, break_when_any_done=False)  # [N*E, T]
    roll.set(("next", "episode_reward"), roll["next", "reward"])
    if cfg.agent == "gru":  # what the recurrent agent's env transforms add: episode starts, hidden state, last action
        start = torch.cat((torch.ones_like(roll["next", "done"][:, :1]), roll["next", "done"][:, :-1]), 1)  # [N*E, T, 1]
        roll.set("is_init", start)
        info = vd.describe_env(env)
        roll.set(("agents", "rnn_hidden"), torch.randn(*roll.shape, info.n_agents, cfg.hidden[-1])
                 .masked_fill(start.unsqueeze(-1), 0.0))  # [N*E, T, n, H]
        action = torch.nn.functional.one_hot(roll["agents", "action"], info.n_actions).float()  # [N*E, T, n, A]
        previous = torch.cat((torch.zeros_like(action[:, :1]), action[:, :-1]), 1).masked_fill(start.unsqueeze(-1), 0.0)
        roll.set(("agents", "last_action"), previous)
        roll.set(("next", "agents", "last_action"), action)
    if cfg.algo == "maven":  # NoiseTransform's z (one per episode: redrawn where an episode starts), in both halves
        z = torch.randint(16, roll.shape[:1]).repeat_interleave(roll.shape[1]).reshape(roll.shape)  # [N*E, T]
        z = torch.where(roll["is_init"].squeeze(-1), z.roll(1, 1), z)
        noise = torch.nn.functional.one_hot(z, 16).float()  # [N*E, T, Z]
        roll.set("noise", noise)
        roll.set(("next", "noise"), noise)
    return roll.reshape(n, cfg.num_envs, -1)  # [N, E, T]


@pytest.mark.parametrize("algo, extra", [("qmix", {}), ("qtran", {}), ("qplex", {}), ("ow-qmix", {}),
                                         ("vdn", {"standardise_rewards": True})])  # per-seed reward statistics
def test_changing_one_seed_leaves_the_others_bitwise_unchanged(tmp_path, algo, extra):
    cfg = small_cfg(tmp_path, algo=algo, seeds=(0, 1, 2), target_update=0.05, **extra)
    batch = collected(cfg, 3)
    results = {}
    for case in ("base", "data", "params"):
        stack, learner = stacked_learner(cfg, tmp_path)
        b = batch.clone()
        if case == "data":  # seed 0's rewards and observations changed
            b["next", "reward"][0].mul_(-3.0).add_(1.0)
            b["agents", "observation"][0].add_(0.5)
        if case == "params":  # seed 0's online parameters changed
            with torch.no_grad():
                for p in learner.params:
                    p[0].add_(0.1)
        learner.add(b)
        torch.manual_seed(123)
        sample = next(iter(learner.minibatches(1)))  # [N, B]
        loss = learner.objective(sample)  # [N]
        loss.sum().backward()
        grads = [p.grad.clone() for p in learner.params]
        learner.optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        learner.update(4)  # per-seed draws, clipping, Adam, Polyak
        after = {k: v.clone() for k, v in stack.template.state_dict().items()}
        results[case] = (loss.detach(), grads, after)
    base_loss, base_grads, base_after = results["base"]
    for case in ("data", "params"):
        loss, grads, after = results[case]
        assert not torch.equal(loss[0], base_loss[0])  # seed 0 did change
        assert torch.equal(loss[1:], base_loss[1:])
        assert all(torch.equal(g[1:], g0[1:]) for g, g0 in zip(grads, base_grads))
        assert all(torch.equal(after[k][1:], base_after[k][1:]) for k in after)  # online and target networks
        assert any(not torch.equal(after[k][0], base_after[k][0]) for k in after)


@pytest.mark.parametrize("algo", ["vdn", "qmix", "qtran", "qplex", "cw-qmix", "maven"])
def test_recurrent_agents_changing_one_seed_leaves_the_others_bitwise_unchanged(tmp_path, algo):
    """GRU agents under vmap (the cell-step GRU, ``vmappable``): sequences [N, B, L] with episode starts inside."""
    cfg = small_cfg(tmp_path, algo=algo, env="matrix/m-step", env_kwargs={"steps": 3}, agent="gru",
                    last_action=True, num_envs=4, frames_per_batch=4 * 6, frames=4 * 6 * 2, batch_size=12,
                    seeds=(0, 1, 2), target_update=0.05)
    batch = collected(cfg, 3)  # [N, 4, 6]: two episodes of 3 steps per env, a reset inside every sequence
    results = {}
    for case in ("base", "data", "params"):
        stack, learner = stacked_learner(cfg, tmp_path)
        assert learner.recurrent and stack.template.agent_net.vmappable
        b = batch.clone()
        if case == "data":
            b["next", "reward"][0].mul_(-3.0).add_(1.0)
        if case == "params":
            with torch.no_grad():
                for p in learner.params:
                    p[0].add_(0.1)
        learner.add(b)
        torch.manual_seed(123)
        sample = next(iter(learner.minibatches(1)))  # [N, B, L]
        assert sample.batch_size == torch.Size([3, 2, 6])
        loss = learner.objective(sample)  # [N]
        loss.sum().backward()
        grads = [p.grad.clone() for p in learner.params]
        results[case] = (loss.detach(), grads)
    base_loss, base_grads = results["base"]
    for case in ("data", "params"):
        loss, grads = results[case]
        assert not torch.equal(loss[0], base_loss[0])
        assert torch.equal(loss[1:], base_loss[1:])
        assert all(torch.equal(g[1:], g0[1:]) for g, g0 in zip(grads, base_grads))


@pytest.mark.parametrize("share_params", [True, False])
def test_vmappable_gru_equals_the_fused_gru_and_each_seeds_single_loss(tmp_path, share_params):
    """The cell-step GRU equals ``nn.GRU`` (values, features, gradients) to float rounding, and the vmapped loss of
    stacked seeds equals each seed's own loss module on its own slice."""
    from torchrl_vd.modules.gru_agent import GRUAgent

    torch.manual_seed(0)
    agent = GRUAgent(3, 4, 5, hidden=(8, 6), share_params=share_params, agent_id=True, last_action=True).double()
    B, T = 4, 7
    obs = torch.randn(B, T, 3, 5, dtype=torch.float64)
    next_obs = obs.roll(-1, 1)
    next_obs[:, 3] = torch.randn(B, 3, 5, dtype=torch.float64)  # a truncation-like step: one extra GRU step there
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    is_init[0, 2] = is_init[1, 5] = is_init[2, 0] = True
    last = torch.nn.functional.one_hot(torch.randint(4, (B, T, 3)), 4).double()
    kw = dict(hidden=torch.randn(B, 3, 6, dtype=torch.float64), is_init=is_init, last_action=last,
              next_last_action=last.roll(-1, 1), features=True)
    out = {}
    for vmappable in (False, True):
        agent.vmappable = vmappable
        agent.zero_grad()
        (q, h), (q_next, h_next) = agent.evaluate(obs, next_obs, **kw)
        (q.square().sum() + q_next.sin().sum() + h_next.sum()).backward()
        out[vmappable] = [q, h, q_next, h_next] + [p.grad.clone() for p in agent.parameters()]
    assert max((a - b).abs().max().item() for a, b in zip(out[False], out[True])) < 1e-12  # float64 (measured 1.4e-14)
    # stacked seeds under vmap: seed k's loss equals its own (unstacked) loss module's on its slice
    cfg = small_cfg(tmp_path, algo="qmix", env="matrix/m-step", env_kwargs={"steps": 3}, agent="gru", num_envs=4,
                    frames_per_batch=24, frames=48, batch_size=12, seeds=(0, 1), share_params=share_params)
    runs = [seed_config(cfg, k, tmp_path) for k in cfg.seeds]
    parts, seed_parts, info = build_seed_parts(runs)
    losses = [p.loss_module for p in seed_parts]
    singles = [l.state_dict() for l in losses]
    stack = SeedStack(losses, parts.loss_module)
    learner = SeedLearner(cfg, stack, time_steps=6)
    learner.add(collected(cfg, 2))
    sample = next(iter(learner.minibatches(1)))  # [N, B, L]
    vec = learner.objective(sample)  # [N]
    for k in range(2):
        parts.loss_module.agent_net.vmappable = False
        alone = build_seed_parts(runs)[1][k].loss_module
        alone.load_state_dict(singles[k])
        assert abs(alone(sample[k])["loss"].item() - vec[k].item()) < 1e-5 * max(1.0, abs(vec[k].item()))


def test_recurrent_vectorized_seeds_learn_the_least_squares_fit_of_the_qtran_game(tmp_path):
    """GRU VDN, 2 seeds in one process, uniform exploration on the QTRAN game: each seed's joint table is VDN's
    least-squares additive fit (the same deterministic limit as the MLP runs above). 32 envs x 4 steps per batch:
    every step is a new one-step episode, so every stored sequence resets its hidden state inside (is_init).
    Measured (lr 3e-3, 40 batches): max |Q_tot - fit| 0.13 and 0.18."""
    cfg = vd.TrainConfig(algo="vdn", env="matrix/qtran", agent="gru", hidden=(32,), num_envs=32, frames=128 * 40,
                         frames_per_batch=128, batch_size=512, updates_per_batch=4, lr=3e-3, eps_start=1.0,
                         eps_end=1.0, target_update=0.05, progress=False, eval_episodes=4, seeds=(0, 1),
                         out_dir=str(tmp_path / "many"))
    many = vd.train(cfg)
    for run in many.runs:
        table = vd.check_igm(run.loss_module, run.env.reset()[:1]).joint_q[0]  # [3, 3]
        assert (table - VDN_FIT).abs().max() < 0.45, table
        assert run.summary["final_eval_return"] == 0.0  # the fit's greedy joint action pays 0, as the MLP runs'
    assert evaluate_run(many.runs[1].out_dir)["eval_return"] == 0.0  # each seed's GRU run reloads alone


def test_maven_seeds_each_train_their_own_z_policy_and_reload_alone(tmp_path):
    """MAVEN vectorized: the stacked loss (agents, mixer, discriminator), one z-policy and REINFORCE trainer per
    seed fed only its own episodes, every seed's z-policy choosing z for its own envs (:class:`SeedNets`); each
    seed's run directory holds a single run's checkpoint (z-policy included) that reloads alone."""
    from torchrl_vd.train.population import SeedNets

    # eval_z="mode": z = argmax π_z(s_0), so the greedy return of the deterministic game is a function of the networks
    cfg = mstep_config("maven", 4, 0, 16 * 4 * 8, tmp_path / "many").with_overrides(
        {"seeds": (0, 1), "loss_kwargs": {"eval_z": "mode"}})
    many = vd.train(cfg)
    z = [run.parts.extra_modules["z_policy"][0].module for run in many.runs]  # each seed's ZPolicyNet
    assert not torch.equal(z[0].net[0].weight, z[1].net[0].weight)  # trained apart (and initialised per seed)
    for run in many.runs:
        rows_k = rows(run.out_dir)
        assert {"loss_rl", "z_entropy"} <= set(rows_k[-1]) and rows_k[-1]["loss_rl"] not in ("", "nan")
        reloaded = evaluate_run(run.out_dir)  # the checkpoint's networks and z-policy, alone
        assert reloaded["eval_return"] == run.summary["final_eval_return"]
    joint = SeedNets(z)  # seed k's rows through seed k's network, exactly
    s0 = torch.randn(6, z[0].state_dim)
    assert torch.equal(joint(s0), torch.cat([z[0](s0[:3]), z[1](s0[3:])]))


def test_per_seed_clipping_equals_torchs_clip_on_each_seed_alone():
    grads = [torch.randn(3, 4, 5), torch.randn(3, 7)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    from torchrl_vd.train.learner import clip_grad_norm_per_seed_

    norms = clip_grad_norm_per_seed_(params, 1.0)
    for k in range(3):
        alone = [torch.zeros_like(g[k], requires_grad=True) for g in grads]
        for a, g in zip(alone, grads):
            a.grad = g[k].clone()
        norm = torch.nn.utils.clip_grad_norm_(alone, 1.0)
        assert torch.allclose(norms[k], norm, atol=1e-6)
        assert all(torch.allclose(p.grad[k], a.grad, atol=1e-7) for p, a in zip(params, alone))


def test_initial_networks_equal_single_runs_bitwise(tmp_path):
    """updates_per_batch=0: the final networks are the initial ones, so each seed's must be the single run's."""
    common = dict(algo="qmix", env="vmas/balance", env_kwargs={"max_steps": 5}, num_envs=4, frames=20,
                  frames_per_batch=20, updates_per_batch=0, eval_episodes=1, progress=False, igm_eval=False)
    many = vd.train(vd.TrainConfig(**common, seeds=(3, 7), out_dir=str(tmp_path / "many")))
    for run in many.runs:
        single = vd.train(vd.TrainConfig(**common, seed=run.summary["seed"],
                                         out_dir=str(tmp_path / f"single{run.summary['seed']}")))
        a, b = run.loss_module.state_dict(), single.loss_module.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = "local_value_network_params.module.0.module.net.0.weight"  # the agents' first layer
    assert not torch.equal(many.runs[0].loss_module.state_dict()[first], many.runs[1].loss_module.state_dict()[first])


def test_one_seed_is_a_lone_run_bitwise_and_the_vectorized_path_matches_it(tmp_path):
    plain = vd.train(small_cfg(tmp_path / "plain", seed=4))
    one = vd.train(small_cfg(tmp_path / "one", seeds=(4,)))
    assert rows(tmp_path / "plain") == rows(tmp_path / "one" / "seed_4")
    a, b = plain.loss_module.state_dict(), one.runs[0].loss_module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["final_eval_return_per_seed"] == [plain.summary["final_eval_return"]]
    # the vmapped path at N = 1: the same data (uniform exploration, the same RNG draws), losses to float rounding
    cfg = small_cfg(tmp_path / "vec", seeds=(4,))
    run = seed_config(cfg, 4, Path(cfg.out_dir))
    vec = Training([run], [Path(run.out_dir)], stacked=True).run()[0]
    plain_rows, vec_rows = rows(tmp_path / "plain"), rows(tmp_path / "vec" / "seed_4")
    assert [r["train_return"] for r in plain_rows] == [r["train_return"] for r in vec_rows]
    for p, v in zip(plain_rows, vec_rows):
        assert abs(float(p["loss"]) - float(v["loss"])) <= 1e-4 * abs(float(p["loss"])), (p, v)
    a, b = plain.loss_module.state_dict(), vec.loss_module.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_vectorized_seeds_reach_the_sequential_runs_outcome_on_the_qtran_game(tmp_path):
    """VDN under uniform exploration learns the least-squares additive fit (row mean + column mean − grand mean)
    in every seed."""
    common = dict(algo="vdn", env="matrix/qtran", num_envs=128, frames=128 * 60, frames_per_batch=128,
                  batch_size=512, updates_per_batch=4, lr=1e-3, eps_start=1.0, eps_end=1.0, target_update=0.05,
                  hidden=(32,), progress=False, eval_episodes=4)
    many = vd.train(vd.TrainConfig(**common, seeds=(0, 1), out_dir=str(tmp_path / "many")))
    for run in many.runs:
        seed = run.summary["seed"]
        single = vd.train(vd.TrainConfig(**common, seed=seed, out_dir=str(tmp_path / f"single{seed}")))
        tables = [vd.check_igm(r.loss_module, r.env.reset()[:1]).joint_q[0] for r in (run, single)]
        # both near the fit (replay noise of 60 batches: measured max |Δ| 0.16 vectorized, 0.38 single, seed 0)
        assert all((t - VDN_FIT).abs().max() < 0.45 for t in tables), tables
        assert (tables[0] - tables[1]).abs().max() < 0.5, tables
        assert run.summary["final_eval_return"] == single.summary["final_eval_return"] == 0.0
    summary = json.loads((tmp_path / "many" / "summary.json").read_text())
    assert summary["final_eval_return_per_seed"] == [0.0, 0.0] and summary["final_eval_return"] == 0.0
    assert (tmp_path / "many" / "learning_curve.png").stat().st_size > 1000
    for seed in (0, 1):
        run_dir = tmp_path / "many" / f"seed_{seed}"
        assert {p.name for p in run_dir.iterdir()} >= {"config.json", "metrics.csv", "summary.json", "checkpoint.pt",
                                                       "learning_curve.png"}
        assert json.loads((run_dir / "config.json").read_text())["seed"] == seed


def test_resumed_vectorized_run_reproduces_the_uninterrupted_metrics(tmp_path):
    base = dict(algo="vdn", env="matrix/m-step", env_kwargs={"steps": 4}, num_envs=8, frames=8 * 4 * 8,
                frames_per_batch=32, batch_size=16, updates_per_batch=2, eps_frames=128, progress=False,
                checkpoint_every=128, eval_every=128, eval_episodes=2, seeds=(0, 5))
    vd.train(vd.TrainConfig(**base, out_dir=str(tmp_path / "full")))
    vd.train(vd.TrainConfig(**{**base, "frames": 128}, out_dir=str(tmp_path / "part")))
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 256}))
    assert [r.summary["frames"] for r in resumed.runs] == [256, 256]
    for seed in (0, 5):
        assert rows(tmp_path / "full" / f"seed_{seed}") == rows(tmp_path / "part" / f"seed_{seed}")
    # each seed's directory is a single run's: `torchrl-vd eval` reloads it
    assert evaluate_run(tmp_path / "full" / "seed_5")["frames"] == 256


def test_cli_seeds_syntax_and_refusals():
    args = _parser().parse_args(["train", "--seeds", "0-2,7"])
    assert vd.TrainConfig().with_overrides({"seeds": args.cfg_seeds}).seeds == (0, 1, 2, 7)
    assert vd.TrainConfig().with_overrides(["seeds=[1, 3]"]).seeds == (1, 3)
    with pytest.raises(ValueError, match="'matrix', 'pettingzoo'.*'custom/x'.*run each seed as a separate process"):
        vd.TrainConfig(env="custom/x", seeds=(0, 1))
    vd.TrainConfig(algo="maven", env="matrix/m-step", seeds=(0, 1))  # every registered algorithm runs vectorized
    with pytest.raises(ValueError, match="collector='single' or 'async'"):
        vd.TrainConfig(env="matrix/qtran", collector="multi", seeds=(0, 1))
    vd.TrainConfig(env="matrix/qtran", collector="async", seeds=(0, 1))  # one worker collects every seed's rows
    with pytest.raises(ValueError, match="Bad --seeds"):
        vd.TrainConfig(seeds="3-1")
    vd.TrainConfig(algo="maven", env="matrix/m-step", seeds=(2,))  # one seed: a lone run, any algorithm


def test_learner_hooks_keep_the_single_run_path():
    assert SeedLearner.update is Learner.update  # one update loop; stacked seeds override only its three hooks
