"""BenchMARL's QMIX built by hand from torchrl 0.14 parts: the "hand-built QMixerLoss" baseline.

Same networks as BenchMARL 1.5.2's QMIX: a shared ``MultiAgentMLP`` Q-net (depth 2), ``QValueModule``,
``EGreedyModule``, torchrl's ``QMixer`` on the stacked agent observations (VMAS has no global state),
``QMixerLoss`` with TD(0), ``SoftUpdate``, Adam (eps 1e-6 as BenchMARL). Used by bench_e2e.py and
bench_limit.py.
"""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Categorical
from torchrl.modules import EGreedyModule, MultiAgentMLP, QMixer, QValueModule
from torchrl.objectives import SoftUpdate, ValueEstimators
from torchrl.objectives.multiagent import QMixerLoss


def build_qmixerloss(env, *, hidden=256, eps_start=0.8, eps_end=0.01, anneal_frames=10_000, gamma=0.99,
                     tau=0.005, lr=5e-5, group="agents") -> dict:
    """Policies, loss, updater and optimizer for a torchrl env with the multi-agent group ``group``."""
    n = env.full_observation_spec_unbatched[group, "observation"].shape[0]
    obs_dim = env.full_observation_spec_unbatched[group, "observation"].shape[-1]
    action_spec = env.full_action_spec_unbatched[group, "action"]  # [n] per sample
    n_actions = action_spec.space.n
    qnet = TensorDictModule(
        MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=n_actions, n_agents=n, centralized=False,
                      share_params=True, depth=2, num_cells=hidden, activation_class=nn.ReLU),
        in_keys=[(group, "observation")], out_keys=[(group, "action_value")])
    qvalue = QValueModule(action_value_key=(group, "action_value"),
                          out_keys=[(group, "action"), (group, "action_value"), (group, "chosen_action_value")],
                          spec=Categorical(n_actions), action_space=None)
    greedy = TensorDictSequential(qnet, qvalue)
    egreedy = EGreedyModule(spec=action_spec, eps_init=eps_start, eps_end=eps_end, annealing_num_steps=anneal_frames,
                            action_key=(group, "action"))
    explore = TensorDictSequential(greedy, egreedy)
    mixer = TensorDictModule(
        QMixer(state_shape=(n, obs_dim), mixing_embed_dim=32, n_agents=n, device="cpu"),
        in_keys=[(group, "chosen_action_value"), (group, "observation")], out_keys=["chosen_action_value"])
    loss = QMixerLoss(greedy, mixer, delay_value=True, loss_function="l2", action_space=action_spec)
    loss.set_keys(reward="reward", action=(group, "action"), done="done", terminated="terminated",
                  action_value=(group, "action_value"), local_value=(group, "chosen_action_value"),
                  global_value="chosen_action_value", priority="td_error")
    loss.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
    updater = SoftUpdate(loss, tau=tau)
    optim = torch.optim.Adam(loss.parameters(), lr=lr, eps=1e-6)
    return {"greedy": greedy, "explore": explore, "egreedy": egreedy, "mixer": mixer, "loss": loss, "updater": updater,
            "optim": optim}
