"""Drop-in for TorchRL users: their networks, policies, mixers, key names and envs in our losses,
and ours in theirs (QMixerLoss, DQNLoss, collectors, replay buffers, PrioritizedSampler).

The headline check: on the same batch and the same weights (target ≠ online), our ``MixingQLoss`` with
torchrl's own ``MultiAgentMLP`` policy and ``QMixer``/``VDNMixer`` modules equals torchrl's ``QMixerLoss``
to float rounding where both are defined (no masks, no double Q), and keeps equal along the whole
example-shaped training loop (docs/COMING_FROM_TORCHRL.md).
"""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.data import Categorical, Composite, LazyTensorStorage, TensorDictReplayBuffer, Unbounded
from torchrl.data.replay_buffers.samplers import PrioritizedSampler, Sampler, SamplerWithoutReplacement
from torchrl.data.replay_buffers.samplers.prioritized import SumSegmentTreeFp32
from torchrl.envs import Compose, EnvBase, RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import check_env_specs
from torchrl.modules import EGreedyModule, GRUModule, MultiAgentMLP, QValueModule, SafeSequential
from torchrl.modules.models.multiagent import Mixer as TorchRLMixerBase
from torchrl.modules.models.multiagent import QMixer as TorchRLQMixer
from torchrl.modules.models.multiagent import VDNMixer as TorchRLVDNMixer
from torchrl.objectives import DQNLoss, HardUpdate, SoftUpdate, ValueEstimators
from torchrl.objectives.multiagent import QMixerLoss

import torchrl_vd as vd
from torchrl_vd.testing import random_batch

N, A, F = 3, 4, 5  # agents, actions, observation size
G = "agents"
QMIX_KEYS = dict(action_value=(G, "action_value"), local_value=(G, "chosen_action_value"),
                 global_value="chosen_action_value", action=(G, "action"))  # the example's set_keys line


# ------------------------------------------------------------------------------ torchrl-side parts
def torchrl_qnet(n=N, a=A, f=F, share_params=True, group=G, obs="observation", action="action"):
    """The example's policy: MultiAgentMLP -> QValueModule (SafeSequential)."""
    net = MultiAgentMLP(n_agent_inputs=f, n_agent_outputs=a, n_agents=n, centralized=False, share_params=share_params,
                        depth=2, num_cells=16, activation_class=nn.Tanh)
    module = TensorDictModule(net, in_keys=[(group, obs)], out_keys=[(group, "action_value")])
    value = QValueModule(action_value_key=(group, "action_value"), spec=Categorical(a), action_space=None,
                         out_keys=[(group, action), (group, "action_value"), (group, "chosen_action_value")])
    return net, SafeSequential(module, value)


def torchrl_mixer(kind: str, n=N, state_shape=(N, F)):
    """The example's mixers: torchrl's QMixer on the stacked agent observations, or VDNMixer, in TensorDictModules."""
    if kind == "qmix":
        return TensorDictModule(TorchRLQMixer(state_shape=state_shape, mixing_embed_dim=8, n_agents=n, device="cpu"),
                                in_keys=[(G, "chosen_action_value"), (G, "observation")], out_keys=["chosen_action_value"])
    return TensorDictModule(TorchRLVDNMixer(n_agents=n, device="cpu"), in_keys=[(G, "chosen_action_value")],
                            out_keys=["chosen_action_value"])


def qmixerloss(qnet, mixer, gamma=0.9, **kw):
    ref = QMixerLoss(qnet, mixer, delay_value=True, **kw)
    ref.set_keys(**QMIX_KEYS)
    ref.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
    return ref


def ours_like_torchrl(qnet, mixer, gamma=0.9, **kw):
    loss = vd.MixingQLoss(qnet, mixer, delay_value=True, **kw)  # the one changed line
    loss.set_keys(**QMIX_KEYS)
    loss.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
    return loss


def batch_with_ends(seed=0, batch=32):
    td = random_batch(n_agents=N, n_actions=A, obs_dim=F, batch=batch, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    td["next", "terminated"] = torch.rand(batch, 1, generator=g) < 0.3
    td["next", "done"] = td["next", "terminated"].clone()
    return td


def perturb_(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.3 * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------------------ 1. equality with QMixerLoss
@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("kind", ["vdn", "qmix"])
def test_same_loss_and_gradients_as_qmixerloss_on_torchrl_modules(kind, share_params):
    """No masks, no double Q: L = mean_b (Q_tot(s, a) − [r + γ (1 − term) Q̄_tot(s', argmax Q̄_i)])² in both."""
    torch.manual_seed(0)
    net, qnet = torchrl_qnet(share_params=share_params)
    mixer = torchrl_mixer(kind)
    ref, ours = qmixerloss(qnet, mixer), ours_like_torchrl(qnet, mixer, double_q=False)
    assert ours.agent_net.module is net  # the user's network, not a copy: the policy trains with the loss
    perturb_(list(net.parameters()) + list(mixer.parameters()))  # online ≠ target (both targets: the init weights)
    td = batch_with_ends()
    expected = ref(td.clone())["loss"]
    net.zero_grad()
    got = ours(td.clone())["loss"]
    assert abs(got.item() - expected.item()) <= 1e-6 * abs(expected.item())
    got.backward()
    g_ours = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ref(td.clone())["loss"].backward()
    for a, b in zip(g_ours, [p.grad for p in net.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bare_torchrl_networks_and_mixers_equal_the_wrapped_ones():
    """MultiAgentMLP and torchrl's QMixer bare (state key set by hand) give what the TensorDictModules give."""
    torch.manual_seed(0)
    net, qnet = torchrl_qnet(share_params=False)
    mixer = torchrl_mixer("qmix")
    wrapped = ours_like_torchrl(qnet, mixer)
    bare = vd.MixingQLoss(net, mixer.module)
    bare.set_keys(state=(G, "observation"))
    bare.make_value_estimator(gamma=0.9)
    td = batch_with_ends()
    assert bare(td.clone())["loss"].item() == wrapped(td.clone())["loss"].item()
    assert (bare.agent_net.n_agents, bare.agent_net.n_actions, bare.agent_net.obs_dim) == (N, A, F)


def test_target_copy_of_a_multiagentmlp_follows_soft_update():
    """θ̄ ← θ (torchrl's HardUpdate, SoftUpdate alike) reaches the target copy the loss evaluates (vmapped
    per-agent params too)."""
    torch.manual_seed(0)
    net, qnet = torchrl_qnet(share_params=False)
    loss = ours_like_torchrl(qnet, torchrl_mixer("vdn"))
    obs = torch.randn(7, N, F)
    before = loss.target("agent_net")(obs).detach()
    perturb_(net.parameters())
    HardUpdate(loss, value_network_update_interval=1).step()
    torch.testing.assert_close(loss.target("agent_net")(obs), net(obs))
    assert not torch.allclose(before, net(obs))


class ScaledSum(TorchRLMixerBase):
    """A user's own torchrl Mixer: Q_tot = 2 Σ_i Q_i (monotonic, no state)."""

    def __init__(self, n_agents):
        super().__init__(n_agents=n_agents, needs_state=False, state_shape=(), device="cpu")

    def mix(self, chosen_action_value, state):
        return 2 * chosen_action_value.sum(-2)  # [*B, n, 1] -> [*B, 1]


def test_a_users_own_torchrl_mixer_gives_the_hand_computed_loss():
    """γ = 0: L = mean_b (2 Σ_i Q_i(o_i, a_i) − r)²."""
    torch.manual_seed(0)
    agent = vd.MLPAgent(N, A, F, hidden=(8,))
    loss = vd.MixingQLoss(agent, ScaledSum(N))
    loss.make_value_estimator(gamma=0.0)
    td = random_batch(N, A, F, batch=8, seed=4)
    with torch.no_grad():
        q = agent(td[G, "observation"]).gather(-1, td[G, "action"].unsqueeze(-1))  # [B, n, 1]
        expected = (2 * q.sum(-2) - td["next", "reward"]).pow(2).mean()
    torch.testing.assert_close(loss(td)["loss"], expected)
    assert isinstance(loss.mixer, vd.WrappedMixer) and loss.mixer.module.needs_state is False


def test_policy_keys_and_group_are_read_from_the_policy():
    net, qnet = torchrl_qnet(group="team", obs="obs", action="act")
    loss = vd.MixingQLoss(qnet, vd.VDNMixer(N))
    k = loss.tensor_keys
    assert (k.observation, k.action, k.alive, loss.group) == (("team", "obs"), ("team", "act"), ("team", "alive"), "team")
    loss = vd.MixingQLoss(qnet[0], vd.VDNMixer(N))  # a lone TensorDictModule(net): its observation key and group
    assert (loss.tensor_keys.observation, loss.group, loss.agent_net.n_actions) == (("team", "obs"), "team", A)
    masked = QValueModule(action_value_key=(G, "action_value"), action_mask_key=(G, "legal"), spec=Categorical(A),
                          action_space=None, out_keys=[(G, "action"), (G, "action_value"), (G, "chosen_action_value")])
    loss = vd.MixingQLoss(SafeSequential(torchrl_qnet()[1][0], masked), vd.VDNMixer(N))
    assert loss.tensor_keys.action_mask == (G, "legal")


def test_n_actions_from_the_qvalue_spec_when_the_network_does_not_say():
    body = nn.Sequential(nn.Linear(F, 16), nn.ReLU(), nn.Linear(16, A))  # [*B, n, F] -> [*B, n, A], no sizes
    body.n_agents = N
    policy = TensorDictSequential(
        TensorDictModule(body, in_keys=[(G, "observation")], out_keys=[(G, "action_value")]),
        QValueModule(action_value_key=(G, "action_value"), spec=Categorical(A), action_space=None,
                     out_keys=[(G, "action"), (G, "action_value"), (G, "chosen_action_value")]),
        EGreedyModule(spec=Categorical(A, shape=(N,)), action_key=(G, "action")),  # an explore policy works too
    )
    loss = vd.MixingQLoss(policy, vd.VDNMixer(N))
    assert (loss.agent_net.n_agents, loss.agent_net.n_actions, loss.agent_net.obs_dim) == (N, A, None)
    assert torch.isfinite(loss(random_batch(N, A, F, batch=4))["loss"])
    with pytest.raises(ValueError, match=r"as_agent_net\(net, obs_dim=F\)"):  # QTRAN's h_i = o_i needs the size
        vd.QTranLoss.feature_dim(loss.agent_net, "obs")
    agent, _ = vd.as_agent_net(policy, obs_dim=F)
    assert vd.QTranLoss.feature_dim(agent, "obs") == F


def test_a_plain_shared_linear_q_net_takes_its_sizes_from_the_readout_the_mixer_and_the_action_space():
    """QMixerLoss's users pass a bare shared ``nn.Linear``: n_actions is its ``out_features`` (or the last layer's
    of an ``nn.Sequential``), n_agents the mixer's; an action spec names n_actions where no readout says it."""
    for net in (nn.Linear(F, A), nn.Sequential(nn.Linear(F, 16), nn.ReLU(), nn.Linear(16, A))):
        loss = vd.MixingQLoss(net, vd.VDNMixer(N))
        assert (loss.agent_net.n_agents, loss.agent_net.n_actions) == (N, A)
        assert torch.isfinite(loss(random_batch(N, A, F, batch=4))["loss"])
    tanh_out = nn.Sequential(nn.Linear(F, A), nn.Tanh())  # no linear readout: the spec says |A|
    loss = vd.MixingQLoss(tanh_out, vd.VDNMixer(N), action_space=Categorical(A, shape=(N,)))
    assert loss.agent_net.n_actions == A


def test_unsupported_inputs_name_the_fix():
    with pytest.raises(TypeError, match=r"as_agent_net\(net, n_agents=.*n_actions="):
        vd.MixingQLoss(nn.Sequential(nn.Linear(F, A), nn.Tanh()), vd.VDNMixer(N))  # no readout width, no spec
    gru = GRUModule(input_size=F, hidden_size=8, in_key=(G, "observation"), out_key=(G, "h"))
    with pytest.raises(TypeError, match="GRUAgent"):
        vd.MixingQLoss(TensorDictSequential(gru, TensorDictModule(nn.Linear(8, A), [(G, "h")], [(G, "action_value")])),
                       vd.VDNMixer(N))
    with pytest.raises(TypeError, match="Subclass one of them"):
        vd.MixingQLoss(vd.MLPAgent(N, A, F), nn.Linear(N, 1))
    with pytest.raises(ValueError, match="has 5 actions but the agent net outputs 4"):
        vd.MixingQLoss(vd.MLPAgent(N, A, F), vd.VDNMixer(N), action_space=Categorical(5, shape=(N,)))
    vd.MixingQLoss(vd.MLPAgent(N, A, F), vd.VDNMixer(N), action_space="categorical")  # QMixerLoss's kwarg is taken
    loss = vd.MixingQLoss(vd.MLPAgent(N, A, F), vd.VDNMixer(N))
    loss.set_keys(action_value=("team", "action_value"))  # per-agent keys may live in other groups (QMixerLoss's test)
    assert loss.tensor_keys.action_value == ("team", "action_value") and loss.group == G


# ------------------------------------------------------------------------------ 2. set_keys aliases
def test_set_keys_takes_every_qmixerloss_key_name():
    loss = vd.MixingQLoss(vd.MLPAgent(N, A, F), vd.VDNMixer(N))
    names = set(QMixerLoss._AcceptedKeys.__dataclass_fields__)
    values = {name: getattr(QMixerLoss._AcceptedKeys, name) for name in names}
    values.update(reward="team_r", done="team_d", terminated="team_t", priority="prio")
    loss.set_keys(**values)
    k = loss.tensor_keys
    assert (k.reward, k.done, k.terminated, k.priority, k.action) == ("team_r", "team_d", "team_t", "prio", (G, "action"))
    assert all(getattr(k, name) == values[name] for name in names - {"reward", "done", "terminated", "priority"})
    td = random_batch(N, A, F, batch=6)
    for old, new in (("reward", "team_r"), ("done", "team_d"), ("terminated", "team_t")):
        td.rename_key_(("next", old), ("next", new))
    loss(td)
    assert td["prio"].shape == (6,)


# ------------------------------------------------------------------------------ 3. per-agent rewards and dones
def test_per_agent_rewards_and_dones_in_the_loss():
    """r = 1/n Σ_i r_i ('mean') or Σ_i r_i ('sum'); done/terminated = all_i; None names the fixes."""
    td = random_batch(N, A, F, batch=16, seed=3)
    r_i = torch.randn(16, N, 1)
    term_i = torch.rand(16, N, 1) < 0.5
    team = td.clone()
    team["next", "reward"] = r_i.mean(-2)
    team["next", "terminated"] = team["next", "done"] = term_i.all(-2)
    per_agent = td.clone()
    del per_agent["next", "reward"], per_agent["next", "done"], per_agent["next", "terminated"]
    per_agent["next", G, "reward"] = r_i
    per_agent["next", G, "done"] = per_agent["next", G, "terminated"] = term_i
    torch.manual_seed(0)
    loss = vd.MixingQLoss(vd.MLPAgent(N, A, F), vd.VDNMixer(N), reward_reduction="mean")
    loss.make_value_estimator(gamma=0.9)
    expected = loss(team)["loss"]
    with pytest.raises(KeyError, match=r"TeamReward.*reward_reduction"):
        loss(per_agent)
    loss.set_keys(reward=(G, "reward"), done=(G, "done"), terminated=(G, "terminated"))
    assert loss(per_agent)["loss"].item() == expected.item()
    loss.reward_reduction = "sum"
    team["next", "reward"] = r_i.sum(-2)
    assert loss(per_agent)["loss"].item() == pytest.approx(loss(team.clone().update(
        {("next", G, "reward"): r_i, ("next", G, "done"): term_i, ("next", G, "terminated"): term_i}))["loss"].item())
    loss.reward_reduction = None
    with pytest.raises(ValueError, match="reward_reduction='mean'"):
        loss(per_agent)


class PerAgentDoneEnv(EnvBase):
    """A torchrl env with only per-agent reward and done flags: agent i is done after i + 2 steps."""

    def __init__(self, num_envs=4, n=N):
        super().__init__(batch_size=torch.Size([num_envs]))
        self.n = n
        group = lambda spec: Composite({G: Composite(spec, shape=(num_envs, n))}, shape=(num_envs,))  # noqa: E731
        self.observation_spec = group({"observation": Unbounded((num_envs, n, 2))})
        self.action_spec = group({"action": Categorical(2, (num_envs, n))})
        self.reward_spec = group({"reward": Unbounded((num_envs, n, 1))})
        flag = Categorical(2, (num_envs, n, 1), dtype=torch.bool)
        self.done_spec = group({"done": flag, "terminated": flag.clone()})
        self.count = torch.zeros(num_envs, dtype=torch.long)

    def _obs(self, done):
        obs = self.count.float()[:, None, None].expand(-1, self.n, 2).clone()  # [E, n, 2]
        return TensorDict({G: TensorDict({"observation": obs, "done": done, "terminated": done.clone()},
                                         [*self.batch_size, self.n])}, self.batch_size)

    def _reset(self, td):
        reset = td.get((G, "_reset"), None) if td is not None else None
        which = torch.ones(self.batch_size, dtype=torch.bool) if reset is None else reset.reshape(*self.batch_size, -1).any(-1)
        self.count[which] = 0
        return self._obs(torch.zeros(*self.batch_size, self.n, 1, dtype=torch.bool))

    def _step(self, td):
        self.count += 1
        done = (self.count[:, None] >= torch.arange(2, self.n + 2)).unsqueeze(-1)  # [E, n, 1]
        out = self._obs(done)
        out[G, "reward"] = torch.arange(1.0, self.n + 1).expand(*self.batch_size, self.n).unsqueeze(-1).clone()  # r_i = i+1
        return out

    def _set_seed(self, seed):
        pass


def test_team_reward_transform_on_a_per_agent_done_env_and_a_collector():
    env = TransformedEnv(PerAgentDoneEnv(), vd.TeamReward("mean"))
    check_env_specs(env)
    roll = env.rollout(6, break_when_any_done=False)  # one episode = n + 1 = 4 steps, then a reset
    assert roll["next", "reward"].unique().tolist() == [2.0]  # mean of 1, 2, 3
    assert roll["next", "done"][0, :, 0].tolist() == [False, False, False, True, False, False]
    assert roll["next", "terminated"][0, :, 0].tolist() == roll["next", "done"][0, :, 0].tolist()
    anyone = TransformedEnv(PerAgentDoneEnv(), vd.TeamReward("sum", done_mode="any")).rollout(3, break_when_any_done=False)
    assert anyone["next", "reward"].unique().tolist() == [6.0]
    assert anyone["next", "done"][0, :, 0].tolist() == [False, True, False]  # agent 0's done ends it; then a reset
    collector = Collector(env, None, frames_per_batch=40, total_frames=40)
    data = next(iter(collector))
    collector.shutdown()
    assert data["next", "done"].sum().item() == 4 * 2  # 4 envs x 10 steps: two full episodes each
    assert data["agents", "observation"][0, 4, 0, 0].item() == 0.0  # reset after the team's done


def test_team_reward_on_torchrl_vmasenv_keeps_its_root_done():
    env = TransformedEnv(VmasEnv("balance", num_envs=2, continuous_actions=False, seed=0, max_steps=4, n_agents=N),
                         vd.TeamReward("mean"))
    check_env_specs(env)
    roll = env.rollout(5, break_when_any_done=False)
    torch.testing.assert_close(roll["next", "reward"], roll["next", G, "reward"].mean(-2))
    assert roll["next", "done"][:, :, 0].tolist() == [[False, False, False, True, False]] * 2
    raw = env.base_env.rollout(5, break_when_any_done=False)  # no transform: per-agent rewards only
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=4)
    rb.append_transform(vd.TeamReward("sum"))  # the team reward formed when sampling
    rb.extend(raw.reshape(-1))
    sample = rb.sample()
    torch.testing.assert_close(sample["next", "reward"], sample["next", G, "reward"].sum(-2))


# ------------------------------------------------------------------------------ 4. the example's loop
def example_env(n_envs=12, max_steps=10, transforms=()):
    env = VmasEnv("balance", num_envs=n_envs, continuous_actions=False, max_steps=max_steps, seed=0, n_agents=N)
    return TransformedEnv(env, Compose(RewardSum(in_keys=[env.reward_key], out_keys=[(G, "episode_reward")]),
                                       *transforms))


def example_loop(env, qnet_explore, loss_module, *, iters=2, minibatch=40, tau=0.005, on_minibatch=None):
    """pytorch/rl sota-implementations/multiagent/qmix_vdn.py's loop, cut to a few iterations."""
    frames_per_batch = env.batch_size[0] * 10
    collector = Collector(env, qnet_explore, frames_per_batch=frames_per_batch, total_frames=iters * frames_per_batch)
    replay_buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(frames_per_batch),
                                           sampler=SamplerWithoutReplacement(), batch_size=minibatch)
    target_net_updater = SoftUpdate(loss_module, eps=1 - tau)
    optim = torch.optim.Adam(loss_module.parameters(), 1e-3)
    losses = []
    for tensordict_data in collector:
        # Remove agent dimension from reward (since it is shared in QMIX/VDN)  -- as the example does
        tensordict_data.set(("next", "reward"), tensordict_data.get(("next", env.reward_key)).mean(-2))
        del tensordict_data["next", env.reward_key]
        tensordict_data.set(("next", "episode_reward"), tensordict_data.get(("next", G, "episode_reward")).mean(-2))
        del tensordict_data["next", G, "episode_reward"]
        replay_buffer.extend(tensordict_data.reshape(-1))
        for _ in range(frames_per_batch // minibatch):
            subdata = replay_buffer.sample()
            if on_minibatch is not None:
                on_minibatch(subdata)
            loss_vals = loss_module(subdata)
            objective = sum(v for k, v in loss_vals.items() if k.startswith("loss"))  # torchrl's trainers sum loss*
            losses.append(objective.item())
            objective.backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 10.0)
            optim.step()
            optim.zero_grad()
            target_net_updater.step()
        if isinstance(qnet_explore, TensorDictSequential) and isinstance(qnet_explore[-1], EGreedyModule):
            qnet_explore[-1].step(frames=tensordict_data.numel())
        collector.update_policy_weights_()
    collector.shutdown()
    return losses


def env_sizes(env):
    """(obs size, n_actions) as the example reads them from the env's specs."""
    return env.observation_spec[G, "observation"].shape[-1], env.full_action_spec[G, "action"].space.n


def example_policy(env):
    net, qnet = torchrl_qnet(f=env_sizes(env)[0], a=env_sizes(env)[1])
    qnet[1].spec = env.full_action_spec_unbatched  # as the example: the QValueModule's spec is the env's
    explore = TensorDictSequential(qnet, EGreedyModule(eps_init=0.3, eps_end=0, annealing_num_steps=120,
                                                       action_key=env.action_key, spec=env.full_action_spec_unbatched))
    return net, qnet, explore


@pytest.mark.parametrize("kind", ["vdn", "qmix"])
def test_the_example_loop_with_our_loss_equals_qmixerloss_at_every_step(kind):
    """The example's loop, our loss line; QMixerLoss on the same weights (its targets soft-updated alike)
    gives the same loss on every minibatch."""
    torch.manual_seed(0)
    env = example_env()
    obs_shape = env.observation_spec_unbatched[G, "observation"].shape  # [n, F] as the example's QMixer state
    net, qnet, explore = example_policy(env)
    mixer = torchrl_mixer(kind, state_shape=obs_shape)
    ref = qmixerloss(qnet, mixer, gamma=0.99)
    ref_updater = SoftUpdate(ref, eps=1 - 0.005)
    loss_module = ours_like_torchrl(qnet, mixer, gamma=0.99, double_q=False)
    gaps = []

    def compare(subdata):
        if gaps:  # our updater ran after the last optimizer step: QMixerLoss's targets take the same step
            ref_updater.step()
        with torch.no_grad():
            a = ref(subdata.clone())["loss"].item()
            b = loss_module(subdata.clone())["loss"].item()
        gaps.append(abs(a - b) / max(abs(a), 1e-12))

    losses = example_loop(env, explore, loss_module, on_minibatch=compare)
    assert len(losses) == len(gaps) == 2 * 3
    assert max(gaps) < 1e-6, gaps
    assert all(torch.isfinite(torch.tensor(losses)))


def test_the_example_loop_runs_qtran_with_the_users_policy():
    torch.manual_seed(0)
    env = example_env()
    net, qnet, explore = example_policy(env)
    f, a = env_sizes(env)
    joint_q = vd.QTranJointQ(N, a, state_shape=(N, f), feature_dim=f, embed_dim=16)
    # a torchrl MultiAgentMLP does not expose hidden features (the pymarl default): Q_jt encodes the observations
    loss_module = vd.QTranLoss(qnet, joint_q, vd.QTranV(state_shape=(N, f), embed_dim=16), features="obs")
    loss_module.set_keys(state=(G, "observation"), **QMIX_KEYS)
    loss_module.make_value_estimator(ValueEstimators.TD0, gamma=0.99)
    w0 = [p.detach().clone() for p in net.parameters()]
    losses = example_loop(env, explore, loss_module)
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(w0, net.parameters()))  # L_opt + L_nopt trained the policy's net


def test_the_example_loop_runs_maven_with_its_networks():
    """MAVEN's agents are z-conditioned GRUs: its networks, transforms (hidden state, z) and policy are ours."""
    torch.manual_seed(0)
    Z = 2
    f, a = env_sizes(example_env(n_envs=1))
    agent = vd.MavenAgent(N, a, f, noise_dim=Z, hidden=(16,))
    z_policy = vd.make_z_policy((N * f,), Z)
    env = example_env(transforms=[vd.StackedObsState(), *vd.agent_transforms(agent), vd.NoiseTransform(z_policy, Z)])
    greedy, explore = vd.make_agent_policies(agent, eps_init=0.3, eps_end=0.0, annealing_num_steps=120)
    loss_module = vd.MavenLoss(greedy, vd.MavenMixer(N, N * f, noise_dim=Z, mixing_embed_dim=8),
                               vd.MavenDiscriminator(N, a, N * f, noise_dim=Z, hidden=8), noise_dim=Z)
    loss_module.set_keys(**QMIX_KEYS)
    loss_module.make_value_estimator(ValueEstimators.TD0, gamma=0.99)
    losses = example_loop(env, explore, loss_module)
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))


# ------------------------------------------------------------------------------ 5. ours inside torchrl
def test_our_agent_policy_and_mixer_inside_qmixerloss_equal_our_loss():
    torch.manual_seed(0)
    agent, mixer = vd.MLPAgent(N, A, F, hidden=(16,)), vd.QMixer(N, (N * F,), mixing_embed_dim=8, hypernet_embed=8)
    greedy, _ = vd.make_agent_policies(agent)
    mixer_module = TensorDictModule(mixer, in_keys=[(G, "chosen_action_value"), "state"], out_keys=["chosen_action_value"])
    ref = qmixerloss(greedy, mixer_module, action_space="categorical")  # our policy has no .action_space
    ours = vd.MixingQLoss(agent, mixer, double_q=False)
    ours.make_value_estimator(gamma=0.9)
    perturb_(list(agent.parameters()) + list(mixer.parameters()))
    td = batch_with_ends(seed=5)
    assert ours(td.clone())["loss"].item() == pytest.approx(ref(td.clone())["loss"].item(), rel=1e-6)


def test_our_agent_inside_torchrl_dqnloss_is_independent_q_learning():
    """IQL: L = mean_{b,i} (Q_i(o_i, a_i) − [r_i + γ (1 − term_i) max_a Q̄_i(o'_i, a)])², per-agent entries."""
    torch.manual_seed(0)
    agent = vd.MLPAgent(N, A, F, hidden=(16,))
    greedy, _ = vd.make_agent_policies(agent)
    dqn = DQNLoss(greedy, action_space="categorical", delay_value=True, double_dqn=False)
    dqn.set_keys(action_value=(G, "action_value"), action=(G, "action"), value=(G, "chosen_action_value"),
                 reward=(G, "reward"), done=(G, "done"), terminated=(G, "terminated"))
    dqn.make_value_estimator(gamma=0.9)
    td = random_batch(N, A, F, batch=16, seed=2)
    td["next", G, "reward"] = torch.randn(16, N, 1)
    td["next", G, "done"] = td["next", G, "terminated"] = torch.rand(16, N, 1) < 0.3
    with torch.no_grad():
        q = agent(td[G, "observation"]).gather(-1, td[G, "action"].unsqueeze(-1))  # [B, n, 1]
        y = td["next", G, "reward"] + 0.9 * (~td["next", G, "terminated"]) * agent(td["next", G, "observation"]).max(-1, keepdim=True).values
    assert dqn(td)["loss"].item() == pytest.approx((q - y).pow(2).mean().item(), rel=1e-5)


def _collect_frames(collector) -> tuple[int, TensorDict]:
    frames, last = 0, None
    for data in collector:
        frames += data.numel()
        last = data
    collector.shutdown()
    return frames, last


class ProportionalSampler(PrioritizedSampler):
    """torchrl ``PrioritizedSampler``'s maths in plain torch, for when its C++ segment trees do not load
    (here: torchrl 0.14's ``_torchrl`` extension was built against another torch): p_i = (|δ_i| + ε)^α,
    P(i) = p_i / Σ_j p_j, importance weight w_i = (p_i / min_j p_j)^−β, new entries get the largest raw priority so far.
    A ``PrioritizedSampler`` subclass because the buffer's ``update_tensordict_priority`` checks for one."""

    reduction = "max"  # per-sample priority of a multi-entry sample (the buffer reads it)

    def __init__(self, max_capacity, alpha, beta, eps=1e-8):
        Sampler.__init__(self)  # not PrioritizedSampler's: it builds the C++ trees
        self.a, self.b, self.e = alpha, beta, eps  # (PrioritizedSampler's alpha/beta are properties on its trees)
        self.p, self.max_p = torch.zeros(max_capacity), 1.0

    @property
    def default_priority(self):
        return self.max_p

    def sample(self, storage, batch_size):
        p = self.p[: len(storage)]
        index = torch.multinomial(p, batch_size, replacement=True)
        return index, {"priority_weight": (p[index] / p.min()).pow(-self.b)}

    def add(self, index):
        pass  # the buffer then calls update_priority(index, default_priority)

    extend = add

    def update_priority(self, index, priority, *, storage=None):
        priority = torch.as_tensor(priority, dtype=torch.float32)  # raw |δ| (extend: the raw max so far)
        self.p[index] = (priority + self.e).pow(self.a)
        self.max_p = max(self.max_p, float(priority.max()))

    def _empty(self):
        self.p.zero_()

    def state_dict(self):
        return {"p": self.p}

    def load_state_dict(self, state_dict):
        self.p = state_dict["p"]

    def dumps(self, path):
        raise NotImplementedError

    def loads(self, path):
        raise NotImplementedError


def _priority(sampler, index):
    if isinstance(sampler, ProportionalSampler):
        return sampler.p[index]
    return torch.as_tensor(sampler._sum_tree[index.numpy()], dtype=torch.float32)


@pytest.mark.parametrize("sampler_cls", [
    pytest.param(PrioritizedSampler, marks=pytest.mark.skipif(
        SumSegmentTreeFp32 is None, reason="torchrl's C++ extension (_torchrl: segment trees) does not load with this torch")),
    ProportionalSampler,
])
def test_our_env_adapter_with_torchrl_collector_replay_buffer_and_prioritized_sampling(sampler_cls):
    """Collector -> prioritized buffer -> our loss (reads priority_weight, writes td_error) -> new priorities."""
    torch.manual_seed(0)
    env = vd.make_env("matrix/qtran", num_envs=8)
    info = vd.describe_env(env)
    agent = vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1], hidden=(8,))
    _, explore = vd.make_agent_policies(agent)
    frames, data = _collect_frames(Collector(env, explore, frames_per_batch=32, total_frames=64, auto_register_policy_transforms=False))
    assert frames == 64 and data["next", "reward"].shape == (8, 4, 1)  # [num_envs, steps, 1]
    alpha, beta, eps = 0.7, 0.5, 1e-8
    sampler = sampler_cls(max_capacity=64, alpha=alpha, beta=beta, eps=eps)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(64), sampler=sampler, batch_size=16, priority_key="td_error")
    rb.extend(data.reshape(-1))
    loss = vd.MixingQLoss(agent, vd.QMixer(info.n_agents, info.state_shape, mixing_embed_dim=8, hypernet_embed=8))
    sample = rb.sample()
    torch.testing.assert_close(sample["priority_weight"], torch.ones(16))  # fresh entries share the max priority
    loss(sample)
    rb.update_tensordict_priority(sample)  # reads our td_error [B] = |Q_tot − y|
    torch.testing.assert_close(_priority(sampler, sample["index"]), (sample["td_error"] + eps).pow(alpha))
    sample2 = rb.sample()  # importance weights (p_i / min p)^−β now differ; the loss is their weighted mean
    out2 = loss(sample2)
    assert not torch.allclose(sample2["priority_weight"], torch.ones(16))
    torch.testing.assert_close(out2["loss"], (sample2["td_error"].pow(2) * sample2["priority_weight"]).mean())


def test_our_env_adapter_with_torchrl_multisync_collector_two_workers():
    env_fn = functools.partial(vd.make_env, "matrix/qtran", num_envs=4)
    info = vd.describe_env(env_fn())
    agent = vd.MLPAgent(info.n_agents, info.n_actions, info.obs_shape[-1], hidden=(8,))
    _, explore = vd.make_agent_policies(agent)
    collector = MultiSyncCollector([env_fn, env_fn], explore, frames_per_batch=32, total_frames=64,
                                   auto_register_policy_transforms=False)
    frames, data = _collect_frames(collector)
    assert frames == 64
    loss = vd.MixingQLoss(agent, vd.VDNMixer(info.n_agents))
    assert torch.isfinite(loss(data.reshape(-1))["loss"])
    assert set(data["next", "reward"].unique().tolist()) <= {8.0, -12.0, 0.0}  # the QTRAN game's payoffs


def test_igm_holds_for_torchrls_qmixer_in_our_loss():
    """torchrl's QMixer is monotonic (|W| of its hypernetworks): argmax_a Q_tot = (argmax_{a_i} Q_i)_i on every sample."""
    torch.manual_seed(0)
    net, qnet = torchrl_qnet(share_params=False)
    loss = ours_like_torchrl(qnet, torchrl_mixer("qmix"))
    report = vd.check_igm(loss, random_batch(N, A, F, batch=16, seed=6))
    assert report.joint_q.shape == (16, A, A, A) and bool(report.holds.all())
