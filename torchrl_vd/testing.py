"""Small helpers for tests, docs and tutorials: synthetic batches with the library's key layout."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from torchrl_vd.keys import ACTION, ACTION_MASK, DONE, GROUP, NEXT, OBSERVATION, REWARD, STATE, TERMINATED


def identity_agent(n_agents: int = 2, n_actions: int = 2):
    """An MLPAgent with Q_i(o_i) = o_i (one linear layer, weight I, bias 0): utilities readable by hand.

    Observations must then have ``n_actions`` features, which *are* the agent's utilities.
    """
    from torchrl_vd.modules.agents import MLPAgent

    agent = MLPAgent(n_agents, n_actions, n_actions, hidden=())
    with torch.no_grad():
        agent.net[0].weight.copy_(torch.eye(n_actions))
        agent.net[0].bias.zero_()
    return agent


def random_batch(
    n_agents: int = 2,
    n_actions: int = 3,
    obs_dim: int = 4,
    batch: int | tuple[int, ...] = 8,
    state_dim: int | None = None,
    *,
    action_mask: bool = False,
    seed: int = 0,
) -> TensorDict:
    """A random transition batch ``[*batch]`` in the docs/CONTRACT.md key layout (legal actions if masked)."""
    g = torch.Generator().manual_seed(seed)
    bs = (batch,) if isinstance(batch, int) else tuple(batch)
    state_dim = state_dim or n_agents * obs_dim

    def agents(with_action: bool):
        d = {OBSERVATION: torch.randn(*bs, n_agents, obs_dim, generator=g)}
        if action_mask:
            m = torch.rand(*bs, n_agents, n_actions, generator=g) > 0.4
            m[..., 0] = True
            d[ACTION_MASK] = m
        if with_action:
            logits = torch.rand(*bs, n_agents, n_actions, generator=g)
            if action_mask:
                logits = logits.masked_fill(~d[ACTION_MASK], -1.0)
            d[ACTION] = logits.argmax(-1)
        return TensorDict(d, [*bs, n_agents])

    nxt = TensorDict(
        {
            GROUP: agents(False),
            STATE: torch.randn(*bs, state_dim, generator=g),
            REWARD: torch.randn(*bs, 1, generator=g),
            DONE: torch.zeros(*bs, 1, dtype=torch.bool),
            TERMINATED: torch.zeros(*bs, 1, dtype=torch.bool),
        },
        bs,
    )
    return TensorDict({GROUP: agents(True), STATE: torch.randn(*bs, state_dim, generator=g), NEXT: nxt}, bs)
