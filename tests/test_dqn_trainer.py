"""TorchRL's own trainer runs our losses: ``DQNTrainer(mixing_strategy="qmix" | "vdn")`` built as pytorch/rl's
``sota-implementations/multiagent_trainer`` QMIX/VDN configs build it (VMAS balance, 3 agents, a ``QValueActor`` over
a shared ``MultiAgentMLP``, torchrl's ``QMixer``/``VDNMixer`` in a ``TensorDictModule`` mixing on the stacked
observations, γ 0.9, Adam 5e-5, Polyak 0.005, gradient clip 40), at a CPU-sized budget, with the loss line swapped.

As in the Hydra flow, the collector's policy and the loss's ``local_value_network`` are two instances of the same
architecture, kept equal only by the trainer's weight sync: a trainer that could not find the loss's policy would
train without ever updating what the collector plays.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

import torchrl_vd as vd

pytest.importorskip("vmas")
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import Categorical, Composite  # noqa: E402
from torchrl.data.replay_buffers import LazyTensorStorage, RandomSampler, ReplayBuffer, RoundRobinWriter  # noqa: E402
from torchrl.envs import Compose, ExpandAs, RewardSum, TransformedEnv  # noqa: E402
from torchrl.envs.libs.vmas import VmasEnv  # noqa: E402
from torchrl.modules import EGreedyModule, QValueActor  # noqa: E402
from torchrl.modules.models.multiagent import MultiAgentMLP, QMixer, VDNMixer  # noqa: E402
from torchrl.objectives import SoftUpdate  # noqa: E402
from torchrl.trainers.algorithms.dqn import DQNTrainer  # noqa: E402

N, OBS, A, G = 3, 16, 9, "agents"  # VMAS balance with 3 agents, discrete actions
ENVS, STEPS, ITERS = 4, 20, 3


def qvalue_model() -> QValueActor:
    net = MultiAgentMLP(n_agent_inputs=OBS, n_agent_outputs=A, n_agents=N, centralized=False, share_params=True,
                        depth=2, num_cells=64, activation_class=nn.Tanh)
    return QValueActor(net, in_keys=[(G, "observation")], action_space="categorical", action_key=(G, "action"),
                       action_value_key=(G, "action_value"), chosen_action_value_key=(G, "chosen_action_value"))


def mixer_model(mixing: str) -> TensorDictModule:
    if mixing == "vdn":
        return TensorDictModule(VDNMixer(n_agents=N, device="cpu"), in_keys=[(G, "chosen_action_value")],
                                out_keys=["chosen_action_value"])
    return TensorDictModule(QMixer(state_shape=(N, OBS), mixing_embed_dim=32, n_agents=N, device="cpu"),
                            in_keys=[(G, "chosen_action_value"), (G, "observation")], out_keys=["chosen_action_value"])


def make_trainer(make_loss, mixing: str = "qmix", seed: int = 0, save_to=None):
    """(trainer, collector's value network, loss): the multiagent_trainer QMIX/VDN setup; ``make_loss(qnet, mixer)``
    is the one swapped line."""
    torch.manual_seed(seed)
    value_network = qvalue_model()
    action_spec = value_network.spec.get((G, "action"), default=None) or Categorical(n=A)  # as _make_dqn_trainer
    greedy = EGreedyModule(annealing_num_steps=5_000_000, eps_init=0.3, eps_end=0.0,
                           spec=Composite({(G, "action"): action_spec}), action_key=(G, "action"))
    env = TransformedEnv(VmasEnv(scenario="balance", num_envs=ENVS, continuous_actions=False, max_steps=STEPS,
                                 categorical_actions=True, seed=seed, device="cpu", n_agents=N),
                         RewardSum(in_keys=[(G, "reward")], out_keys=[(G, "episode_reward")]))
    postproc = Compose(
        ExpandAs(ref_key=("next", G, "reward"), in_key=("next", "done"), out_key=("next", G, "done")),
        ExpandAs(ref_key=("next", G, "reward"), in_key=("next", "terminated"), out_key=("next", G, "terminated")))
    collector = Collector(create_env_fn=env, policy=TensorDictSequential(value_network, greedy),
                          frames_per_batch=ENVS * STEPS, total_frames=ENVS * STEPS * ITERS, device="cpu",
                          postproc=postproc, exploration_type="RANDOM")
    replay_buffer = ReplayBuffer(storage=LazyTensorStorage(max_size=ENVS * STEPS, ndim=1), sampler=RandomSampler(),
                                 writer=RoundRobinWriter(compilable=False), batch_size=32)
    loss = make_loss(qvalue_model(), mixer_model(mixing))  # the line a TorchRL user changes
    loss.set_keys(action=(G, "action"), action_value=(G, "action_value"), local_value=(G, "chosen_action_value"),
                  global_value="chosen_action_value", reward="reward", done="done", terminated="terminated")
    loss.make_value_estimator(gamma=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer = DQNTrainer(
            collector=collector, total_frames=ENVS * STEPS * ITERS, frame_skip=1, optim_steps_per_batch=2,
            loss_module=loss, optimizer=torch.optim.Adam(loss.parameters(), lr=5e-5, eps=1e-4), logger=None,
            clip_grad_norm=True, clip_norm=40.0, progress_bar=False, seed=seed, save_trainer_interval=1,
            log_interval=1, save_trainer_file=save_to, replay_buffer=replay_buffer,
            target_net_updater=SoftUpdate(loss, tau=0.005), greedy_module=greedy, mixing_strategy=mixing,
            done_key="done", terminated_key="terminated", reward_key=(G, "reward"),
            episode_reward_key=(G, "episode_reward"), aggregated_reward_key="reward",
            aggregated_episode_reward_key="episode_reward", action_key=(G, "action"),
            observation_key=(G, "observation"), async_collection=False)
    return trainer, value_network, loss


def train(trainer, loss) -> list[dict[str, float]]:
    """``trainer.train()``, returning every optimisation step's loss entries (finite: checked by the caller)."""
    seen = []
    forward = loss.forward

    def recording(td, *args, **kwargs):
        out = forward(td, *args, **kwargs)
        seen.append({k: v.item() for k, v in out.items()})
        return out

    loss.forward = recording
    try:
        trainer.train()
    finally:
        del loss.forward
    return seen


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("mixing", ["qmix", "vdn"])
def test_dqn_trainer_trains_mixing_q_loss_and_syncs_the_collector(mixing):
    trainer, value_network, loss = make_trainer(lambda qnet, mixer: vd.MixingQLoss(qnet, mixer), mixing)
    agent0, mixer0 = _snapshot(loss.local_value_network.parameters()), _snapshot(loss.mixer_network.parameters())
    steps = train(trainer, loss)
    assert len(steps) == 2 * ITERS and all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
    assert any(not torch.equal(a, b) for a, b in zip(agent0, loss.local_value_network.parameters()))
    if mixing == "qmix":
        assert any(not torch.equal(a, b) for a, b in zip(mixer0, loss.mixer_network.parameters()))
    # the collector plays what the loss trains: DQNTrainer synced it from loss.local_value_network
    assert all(torch.equal(a, b) for a, b in zip(value_network.parameters(), loss.local_value_network.parameters()))


def test_dqn_trainer_checkpoint_loads_into_a_fresh_trainer(tmp_path):
    """The trainer writes its checkpoint after every batch (save_trainer_file); a fresh trainer loads it."""
    path = tmp_path / "trainer.pt"
    trainer, _, loss = make_trainer(lambda qnet, mixer: vd.MixingQLoss(qnet, mixer), save_to=path)
    train(trainer, loss)
    fresh, _, fresh_loss = make_trainer(lambda qnet, mixer: vd.MixingQLoss(qnet, mixer), seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(loss.parameters(), fresh_loss.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fresh.load_from_file(path)
    trained, restored = loss.state_dict(), fresh_loss.state_dict()
    assert trained.keys() == restored.keys() and all(torch.equal(trained[k], restored[k]) for k in trained)
    assert fresh._optim_count == trainer._optim_count == 2 * ITERS


def test_qtran_and_weighted_qmix_run_inside_dqn_trainer():
    """The trainer sums every ``loss*`` entry into the objective: QTRAN's weighted terms, Weighted QMIX's two."""

    def qtran(qnet, mixer):
        agent = vd.as_agent_net(qnet, obs_dim=OBS)[0]
        joint_q = vd.QTranJointQ(N, A, (N, OBS), vd.QTranLoss.feature_dim(agent, "obs"), embed_dim=16)
        loss = vd.QTranLoss(qnet, joint_q, vd.QTranV((N, OBS), embed_dim=16), features="obs")
        loss.set_keys(state=(G, "observation"))  # torchrl's example mixes on the stacked observations
        return loss

    def weighted(qnet, mixer):
        return vd.WeightedQMixLoss(qnet, mixer, vd.CentralQMixer(N, (N, OBS), embed_dim=16), weighting="ow")

    for make_loss, terms in ((qtran, {"loss_td", "loss_opt", "loss_nopt"}), (weighted, {"loss_td", "loss_central"})):
        trainer, value_network, loss = make_trainer(make_loss)
        steps = train(trainer, loss)
        assert len(steps) == 2 * ITERS and terms <= set(steps[0])
        assert all(torch.isfinite(torch.tensor([s[k] for k in terms])).all() for s in steps)
        assert all(torch.equal(a, b) for a, b in zip(value_network.parameters(), loss.local_value_network.parameters()))
