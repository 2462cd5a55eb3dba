"""Recurrent agents (GRUAgent): unroll == step-by-step collection, masks and burn-in, memory task.

The claims tested here:
* one ``evaluate`` call over a stored sequence gives the Q-values the collecting policy computed step by
  step with its carried hidden state (episode resets inside the sequence, sequences that start
  mid-episode from the stored hidden state, shared and per-agent parameters, agent id, last action);
* Q(h^{t+1}) is one more GRU step from h^t on the next observation (exact at truncations and at the last
  step of a slice), and the target networks unroll with their own parameters;
* padded steps (mask False) add zero loss and zero gradient; burn-in steps only warm the hidden state;
* on ``matrix/memory`` (cue visible only at t=0) a GRU agent trained by ``train()`` solves the task
  (return 1.0) where a feed-forward agent cannot exceed 0.5 in expectation.
"""

from __future__ import annotations

import csv
import itertools
import json

import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv
from torchrl.objectives import HardUpdate

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main
from torchrl_vd.modules.gru_agent import GRUAgent
from torchrl_vd.modules.policies import make_agent_policies

OBS, HID, AV = ("agents", "observation"), ("agents", "rnn_hidden"), ("agents", "action_value")
LAST = ("agents", "last_action")
ATOL = 1e-5
# GRUAgent unrolls sequences with episode starts inside by one of two exact strategies, chosen by a cost
# model (_CALL_COST); the tests force each one.
STRATEGIES = {"split-trajectories": 10**9, "time-segments": -(10**9)}


def collect(agent: GRUAgent, env_name: str, *, num_envs: int, length: int, eps: float = 0.5, seed: int = 0, **env_kw):
    """Real collection: torchrl ``Collector``, ε-greedy policy, the agent's env transforms. -> [N, length]"""
    torch.manual_seed(seed)
    env = TransformedEnv(vd.make_env(env_name, num_envs=num_envs, seed=seed, **env_kw))
    for t in vd.agent_transforms(agent, env):
        env.append_transform(t)
    _, explore = make_agent_policies(agent, eps_init=eps, eps_end=eps)
    half = num_envs * length // 2
    collector = Collector(env, explore, frames_per_batch=half, total_frames=2 * half)
    with torch.no_grad():
        batches = list(collector)  # two collector batches: the hidden state is carried across them
    collector.shutdown()
    return torch.cat(batches, dim=1)


def mstep_data(agent: GRUAgent, seed: int = 0):
    """m-step (4 steps) under ε = 0.5: episodes end early at random, so resets fall at different times."""
    return collect(agent, "matrix/m-step", num_envs=8, length=24, seed=seed, steps=4)


def qmix_loss(agent: GRUAgent, state_dim: int, **kw) -> vd.MixingQLoss:
    loss = vd.MixingQLoss(agent, vd.QMixer(agent.n_agents, (state_dim,), mixing_embed_dim=8, hypernet_embed=16), **kw)
    loss.make_value_estimator(gamma=0.9)
    return loss


def grads(loss) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in loss.parameters()]


AGENT_VARIANTS = {
    "shared": dict(share_params=True),
    "per-agent": dict(share_params=False),
    "shared+id+last-action": dict(share_params=True, agent_id=True, last_action=True),
    "per-agent+last-action": dict(share_params=False, last_action=True),
}


# ---------------------------------------------------------------------------------------- unroll
@pytest.mark.parametrize("variant", list(AGENT_VARIANTS))
def test_unrolled_q_equals_step_by_step_collection(variant):
    torch.manual_seed(1)
    agent = GRUAgent(2, 2, 9, hidden=(16, 12), **AGENT_VARIANTS[variant])  # m-step(4): obs dim 4 + 5
    data = mstep_data(agent)  # [8, 24]
    init = data["is_init"].squeeze(-1)  # [N, T]
    assert init[:, 1:].any() and (init[:, 1:] != init[:1, 1:]).any()  # resets inside, at different times
    L = data.shape[1] - 6
    with torch.no_grad():
        for s, strategy in itertools.product((0, 1, 3, 5), STRATEGIES):  # sequences starting at/inside episodes
            agent._CALL_COST = STRATEGIES[strategy]
            seq = data[:, s : s + L]
            q, q_next = agent.evaluate(
                seq[OBS], seq[("next", *OBS)], hidden=seq[HID][:, 0], is_init=seq["is_init"], **agent.extra_inputs(seq)
            )
            torch.testing.assert_close(q, seq[AV], atol=ATOL, rtol=0)  # what the policy computed, step by step
            # Q(h^{t+1}) = one GRU step from the collected h^t (stored under "next") on the next observation
            ref_next, _ = agent(seq[("next", *OBS)], seq[("next", *HID)], last_action=seq.get(("next", *LAST), None))
            torch.testing.assert_close(q_next, ref_next, atol=ATOL, rtol=0)
            # inside an episode that is the policy's Q at t+1, including at the slice's last step
            cont = ~seq["next", "done"].squeeze(-1)  # [N, L]
            torch.testing.assert_close(q_next[cont], data[AV][:, s + 1 : s + L + 1][cont], atol=ATOL, rtol=0)
    assert data[HID][:, 3].abs().sum() > 0  # a sequence starting mid-episode starts from a non-zero stored state
    assert (data[HID][init] == 0).all()  # the primer zeroes the hidden state at every (partial) reset
    if agent.last_action:  # a^{t-1} at the root (zeros at episode starts), a^t under "next"
        onehot = torch.nn.functional.one_hot(data["agents", "action"], 2).float()  # [N, T, n, A]
        torch.testing.assert_close(data[("next", *LAST)], onehot)
        assert (data[LAST][init] == 0).all()
        torch.testing.assert_close(data[LAST][:, 1:][~init[:, 1:]], onehot[:, :-1][~init[:, 1:]])


@pytest.mark.parametrize("resets", ["none", "staggered", "synchronised"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("share_params", [True, False], ids=["shared", "per-agent"])
def test_evaluate_matches_an_explicit_step_loop_for_any_next_observation(share_params, strategy, resets):
    """Reference: a Python loop of single steps. next_obs is unrelated to obs[t+1] (truncation, padding)."""
    torch.manual_seed(0)
    B, T, n, F, H = 5, 11, 3, 4, 6
    agent = GRUAgent(n, 3, F, hidden=(8, H), share_params=share_params, agent_id=True)
    agent._CALL_COST = STRATEGIES[strategy]
    obs, hidden = torch.randn(B, T, n, F), torch.randn(B, n, H)
    next_obs = torch.where(torch.rand(B, T, 1, 1) < 0.5, obs.roll(-1, 1), torch.randn(B, T, n, F))
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    if resets == "staggered":
        is_init = torch.rand(B, T, 1) < 0.25
    elif resets == "synchronised":
        is_init[:, [0, 4, 9]] = True  # fixed-horizon envs: every sequence resets at the same steps
    q, q_next = agent.evaluate(obs, next_obs, hidden=hidden, is_init=is_init)
    h, ref, ref_next = hidden, [], []
    for t in range(T):
        q_t, h = agent(obs[:, t], h, is_init[:, t])  # zero where an episode starts
        ref.append(q_t)
        ref_next.append(agent(next_obs[:, t], h)[0])
    torch.testing.assert_close(q, torch.stack(ref, 1), atol=ATOL, rtol=0)
    torch.testing.assert_close(q_next, torch.stack(ref_next, 1), atol=ATOL, rtol=0)
    # non-sequence batches [B, n, F] (single steps, check_igm): one step from `hidden`, zeros if None
    q1, q1_next = agent.evaluate(obs[:, 0], next_obs[:, 0], hidden=hidden, is_init=is_init[:, 0])
    torch.testing.assert_close(q1, ref[0])
    torch.testing.assert_close(q1_next, ref_next[0])
    torch.testing.assert_close(agent.evaluate(obs[:, 0], obs[:, 0])[0], agent(obs[:, 0], torch.zeros(B, n, H))[0])


def test_target_agent_unrolls_with_the_target_parameters():
    torch.manual_seed(0)
    agent = GRUAgent(2, 2, 9, hidden=(16,))
    data = mstep_data(agent)
    loss = qmix_loss(agent, 9)
    batch = loss.read_batch(data[:, :12])
    q_online, _ = loss.utilities(batch, need_next=False)
    q_target, _ = loss.utilities(batch, target=True, need_next=False)
    torch.testing.assert_close(q_target, q_online)  # targets start as copies
    with torch.no_grad():
        for p in loss.agent_net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # move the online GRU only
    q_online2, _ = loss.utilities(batch, need_next=False)
    q_target2, _ = loss.utilities(batch, target=True, need_next=False)
    assert (q_online2 - q_online).abs().max() > 1e-2
    torch.testing.assert_close(q_target2, q_target)  # the target nn.GRU did not see the online change
    HardUpdate(loss, value_network_update_interval=1).step()
    torch.testing.assert_close(loss.utilities(batch, target=True, need_next=False)[0], q_online2)


def test_igm_holds_for_qmix_with_gru_utilities_on_sequences():
    torch.manual_seed(0)
    agent = GRUAgent(2, 2, 9, hidden=(16,))
    data = mstep_data(agent)[:, :10]
    report = vd.check_igm(qmix_loss(agent, 9), data)
    assert report.holds.shape == (8, 10) and report.holds.all()
    assert report.gap.abs().max() < 1e-5


# ---------------------------------------------------------------------------------------- masks, burn-in
def padded_batch(agent: GRUAgent, lengths: list[int], *, seed: int):
    """Collected m-step sequences [8, 18] with steps t >= lengths[b] replaced by seeded garbage, mask False."""
    data = mstep_data(agent)[:, 3:21].clone()
    B, T = data.shape
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, T]
    g = torch.Generator().manual_seed(seed)
    pad = ~mask
    data[OBS][pad] = 100 * torch.randn(int(pad.sum()), 2, 9, generator=g)
    data[("next", *OBS)][pad] = 100 * torch.randn(int(pad.sum()), 2, 9, generator=g)
    data["state"][pad] = torch.randn(int(pad.sum()), 9, generator=g)
    data["next", "reward"][pad] = 1e4 * torch.randn(int(pad.sum()), 1, generator=g)
    data["agents", "action"][pad] = torch.randint(0, 2, (int(pad.sum()), 2), generator=g)
    data["is_init"][pad] = torch.rand(int(pad.sum()), 1, generator=g) < 0.5
    data["mask"] = mask
    return data


def test_padded_steps_add_zero_loss_and_zero_gradient():
    torch.manual_seed(0)
    agent = GRUAgent(2, 2, 9, hidden=(16,))
    loss = qmix_loss(agent, 9)
    lengths = [18, 15, 9, 2, 18, 1, 12, 17]
    results = []
    for seed in (0, 1):  # two different garbage fills of the padded steps
        td = padded_batch(agent, lengths, seed=seed)
        obs = td[OBS].requires_grad_(True)
        loss.zero_grad()
        out = loss(td)
        out["loss"].backward()
        assert obs.grad[~td["mask"]].abs().max() == 0  # no gradient reaches a padded step
        results.append((out["loss"].detach(), grads(loss), td))
    (l0, g0, td0), (l1, g1, _) = results
    torch.testing.assert_close(l0, l1, atol=1e-6, rtol=0)  # the padding's content is irrelevant
    for a, b in zip(g0, g1):  # (equal up to float summation order: the trajectory split differs)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # and the loss is the mean squared TD error over the valid steps only (TD errors of an unmasked run)
    full = td0.exclude("mask")
    loss(full)
    mask = td0["mask"].float()
    expected = (full["td_error"].pow(2) * mask).sum() / mask.sum()
    torch.testing.assert_close(l0, expected)
    assert abs(l0.item() - full["td_error"].pow(2).mean().item()) > 1.0  # the garbage would have mattered
    # an all-padding batch: loss 0 and every gradient 0
    td = padded_batch(agent, [0] * 8, seed=0)
    loss.zero_grad()
    out = loss(td)
    out["loss"].backward()
    assert out["loss"].item() == 0.0 and all((g == 0).all() for g in grads(loss))


def test_burn_in_steps_only_warm_the_hidden_state():
    torch.manual_seed(0)
    agent = GRUAgent(2, 2, 9, hidden=(16,))
    data = mstep_data(agent)[:, 2:18]
    k = 4
    loss = qmix_loss(agent, 9, burn_in=k)
    base = loss(data.clone())["loss"]
    changed = data.clone()
    changed["next", "reward"][:, :k] += 50.0  # rewards and actions of burn-in steps are not trained on
    changed["agents", "action"][:, :k] = 1 - changed["agents", "action"][:, :k]
    assert loss(changed)["loss"] == base
    masked = data.clone()
    masked["mask"] = torch.arange(16).expand(8, 16) >= k  # same valid set, written as a mask
    loss.burn_in = 0
    torch.testing.assert_close(loss(masked)["loss"], base)
    assert (loss(data.clone())["loss"] - base).abs() > 1e-4  # without burn-in those steps count
    loss.burn_in = k
    warmed = data.clone()
    warmed[OBS][:, :k] += 1.0  # but burn-in observations do shape the hidden state of later steps
    assert (loss(warmed)["loss"] - base).abs() > 1e-6


# ---------------------------------------------------------------------------------------- train() path
def test_gru_training_resumes_exactly_from_a_checkpoint(tmp_path):
    """Sequence replay, stored hidden states and the primer survive checkpoint/resume unchanged."""
    base = dict(algo="qmix", env="matrix/m-step", env_kwargs={"steps": 4}, agent="gru", hidden=(16,), num_envs=8,
                frames=640, frames_per_batch=160, seq_len=10, burn_in=2, batch_size=40, updates_per_batch=2,
                eps_frames=300, progress=False, checkpoint_every=320, eval_every=320, eval_episodes=2)
    full = vd.train(vd.TrainConfig(**base, out_dir=str(tmp_path / "full")))
    vd.train(vd.TrainConfig(**{**base, "frames": 320}, out_dir=str(tmp_path / "part")))  # "killed" at 320
    vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 640}))

    def rows(run):
        with open(tmp_path / run / "metrics.csv") as f:
            return [{k: r[k] for k in ("frames", "updates", "loss", "train_return", "eval_return")}
                    for r in csv.DictReader(f)]

    assert rows("full") == rows("part") and len(rows("full")) == 4
    assert isinstance(full.loss_module.agent_net, GRUAgent)


def test_the_buffer_keeps_no_next_hidden_state_and_training_is_unchanged(tmp_path, monkeypatch):
    """``Learner.storable`` drops ``("next", "agents", "rnn_hidden")`` (no loss reads it): the same losses and
    returns, bitwise, as storing it; the checkpoint's buffer is smaller; a checkpoint written with it still
    resumes exactly."""
    from torchrl_vd.train import learner as learner_mod

    base = dict(algo="qmix", env="matrix/m-step", env_kwargs={"steps": 4}, agent="gru", hidden=(16,), num_envs=8,
                frames=640, frames_per_batch=160, seq_len=10, batch_size=40, updates_per_batch=2, eps_frames=300,
                progress=False, checkpoint_every=320, eval_every=320, eval_episodes=2)
    lean = vd.train(vd.TrainConfig(**base, out_dir=str(tmp_path / "lean")))
    data = torch.load(tmp_path / "lean" / "checkpoint.pt", weights_only=True)["replay_buffer"]["data"]
    assert "rnn_hidden" not in data["next"]["agents"]
    assert "rnn_hidden" in data["agents"]  # the state at each sequence start stays

    storable = learner_mod.Learner.storable
    monkeypatch.setattr(learner_mod.Learner, "storable", lambda self, batch: batch)  # before: everything kept
    full = vd.train(vd.TrainConfig(**base, out_dir=str(tmp_path / "full")))  # the old buffer, next state kept
    vd.train(vd.TrainConfig(**{**base, "frames": 320}, out_dir=str(tmp_path / "part")))
    old = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["replay_buffer"]["data"]
    assert "rnn_hidden" in old["next"]["agents"]
    assert [r["loss"] for r in lean.metrics] == [r["loss"] for r in full.metrics]
    assert lean.summary["final_eval_return"] == full.summary["final_eval_return"]
    monkeypatch.setattr(learner_mod.Learner, "storable", storable)  # resume the old checkpoint with the current code
    resumed = vd.train(vd.train_config_for_resume(str(tmp_path / "part")).with_overrides({"frames": 640}))
    assert [r["loss"] for r in resumed.metrics] == [r["loss"] for r in full.metrics[2:]]


# ---------------------------------------------------------------------------------------- memory task
MEMORY = dict(algo="qmix", env="matrix/memory", env_kwargs={"delay": 2}, hidden=(32,), num_envs=32, frames=6144,
              frames_per_batch=192, batch_size=192, updates_per_batch=4, lr=3e-3, eps_frames=3072,
              target_update=0.01, eval_episodes=1024, seed=0, progress=False)


def test_gru_remembers_the_cue_that_a_feedforward_agent_cannot(tmp_path):
    """matrix/memory: the cue is visible only at t=0 and pays at t=2. A memoryless greedy policy sees the
    same observation at t=2 for both cues, so its expected return is 0.5; a GRU can get 1.0."""
    out = tmp_path / "gru"
    argv = ["train", "--algo", "qmix", "--env", "matrix/memory", "--frames", str(MEMORY["frames"]), "--seed", "0",
            "--out", str(out), "--quiet"]
    for key in ("env_kwargs", "hidden", "num_envs", "frames_per_batch", "batch_size", "updates_per_batch", "lr",
                "eps_frames", "target_update", "eval_episodes"):
        argv += ["--set", f"{key}={json.dumps(list(MEMORY[key]) if key == 'hidden' else MEMORY[key])}"]
    argv += ["--set", "agent=gru", "--set", "seq_len=6"]  # sequences of 6 steps (2 episodes)
    assert cli_main(argv) == 0
    gru = json.loads((out / "summary.json").read_text())
    mlp = vd.train(vd.TrainConfig(**MEMORY, agent="mlp", out_dir=str(tmp_path / "mlp")))
    assert isinstance(mlp.loss_module.agent_net, vd.MLPAgent)
    # seed 0, measured (the same in repeated runs): the GRU recalls the cue in all 1024 greedy episodes; the MLP's
    # fixed guess at t = 2 is right in 513 of them (a memoryless policy gets 0.5 in expectation)
    assert (gru["final_eval_return"], gru["final_eval_return_std"]) == (1.0, 0.0), gru
    assert mlp.summary["final_eval_return"] == 513 / 1024, mlp.summary


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["vdn", "qmix"])
def test_gru_memory_longer_delay_per_agent_burn_in(tmp_path, algo):
    """Delay 3 (4-step episodes), per-agent GRUs, sequences of 6 steps (every other one starts in the middle
    of an episode, from the stored hidden state, after the cue), burn-in 2. Passes for seeds 0-2."""
    cfg = vd.TrainConfig(**{**MEMORY, "algo": algo, "env_kwargs": {"delay": 3}, "frames_per_batch": 384,
                            "frames": 16128, "eps_frames": 8000, "batch_size": 384},
                         agent="gru", share_params=False, seq_len=6, burn_in=2, out_dir=str(tmp_path / algo))
    res = vd.train(cfg)
    assert isinstance(res.loss_module.agent_net, GRUAgent) and res.loss_module.burn_in == 2
    assert res.summary["final_eval_return"] >= 0.9, res.summary
