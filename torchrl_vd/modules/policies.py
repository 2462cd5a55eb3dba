"""Decentralized greedy and ε-greedy policies over an agent net, composed from torchrl parts.

:func:`make_agent_policies` chains ``TensorDictModule(agent)`` → torchrl's ``QValueModule`` (greedy,
mask-aware) → ``EGreedyModule`` (ε-greedy, mask-aware), as torchrl's multi-agent QMIX/VDN example does
(``sota-implementations/multiagent/qmix_vdn.py``). Separate from the networks (agents.py, gru_agent.py):
they stay tensor in, tensor out, and the tensordict keys are attached here, at composition.
"""

from __future__ import annotations

from tensordict.nn import TensorDictSequential
from torchrl.data import Categorical
from torchrl.modules import EGreedyModule, QValueModule

from torchrl_vd.keys import ACTION, ACTION_MASK, ACTION_VALUE, CHOSEN_ACTION_VALUE, GROUP
from torchrl_vd.modules.agents import AgentNet


def make_agent_policies(
    agent_net: AgentNet,
    *,
    n_actions: int | None = None,
    action_mask: bool = False,
    eps_init: float = 1.0,
    eps_end: float = 0.05,
    annealing_num_steps: int = 50_000,
    group: str = GROUP,
    keep_values: bool = True,
) -> tuple[TensorDictSequential, TensorDictSequential]:
    """Greedy and ε-greedy decentralized policies that share ``agent_net``'s parameters.

    Each agent acts on its own utilities only: a_i = argmax_{a_i} Q(h_i, a_i), which by IGM (Son et al.
    2019, Definition 1) is the greedy joint action of the centralized value. Both honour ``(group, "action_mask")``
    when ``action_mask=True``.

    ``keep_values=False``: the ε-greedy policy writes only the actions (and a recurrent agent's next
    hidden state), not ``(group, "action_value")`` / ``(group, "chosen_action_value")``, so collected
    batches — and a replay buffer filled from them — carry no Q-values the losses recompute anyway
    (``train()`` collects so; the greedy policy always writes them, for inspection).

    Returns:
        ``(greedy, explore)``: ``explore[-1]`` is the ``EGreedyModule`` whose ``eps`` buffer the
        trainer sets from its schedule.
    """
    n_actions = int(n_actions or agent_net.n_actions)
    mask_key = (group, ACTION_MASK) if action_mask else None
    qvalue = QValueModule(
        action_value_key=(group, ACTION_VALUE),
        out_keys=[(group, ACTION), (group, ACTION_VALUE), (group, CHOSEN_ACTION_VALUE)],
        action_mask_key=mask_key,
        spec=Categorical(n_actions),
        action_space=None,
    )
    greedy = TensorDictSequential(agent_net.policy_module(group), qvalue)
    egreedy = EGreedyModule(
        spec=Categorical(n_actions, shape=(agent_net.n_agents,)),
        eps_init=float(eps_init),
        eps_end=float(eps_end),
        annealing_num_steps=int(annealing_num_steps),
        action_key=(group, ACTION),
        action_mask_key=mask_key,
    )
    kept = None
    if not keep_values:  # attached at composition: what the collection policy writes into the data
        dropped = {(group, ACTION_VALUE), (group, CHOSEN_ACTION_VALUE)}
        kept = [k for k in dict.fromkeys([*greedy.out_keys, *egreedy.out_keys]) if k not in dropped]
    explore = TensorDictSequential(greedy, egreedy, selected_out_keys=kept)
    return greedy, explore
