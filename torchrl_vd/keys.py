"""Tensordict key names shared by the envs, networks, losses and the trainer (one place for each).

TorchRL's multi-agent layout: per-agent entries live under the agent group (default ``"agents"``),
centralized ones at the root. Losses declare the entries they read in their ``_AcceptedKeys`` (defaults
built from these names) and remap them with ``set_keys`` / ``use_group``.
"""

GROUP = "agents"
"""Default agent group: per-agent entries are ``(GROUP, name)``."""

OBSERVATION = "observation"
"""Per-agent observation o_i, ``(group, OBSERVATION)`` [*B, n, F]."""
ACTION = "action"
"""Per-agent categorical action a_i, ``(group, ACTION)`` [*B, n]."""
ACTION_MASK = "action_mask"
"""Legal actions, ``(group, ACTION_MASK)`` [*B, n, A] bool (optional)."""
ACTION_VALUE = "action_value"
"""Utilities Q_i(h_i, ·), ``(group, ACTION_VALUE)`` [*B, n, A]."""
CHOSEN_ACTION_VALUE = "chosen_action_value"
"""Q_i(h_i, a_i), ``(group, CHOSEN_ACTION_VALUE)`` [*B, n, 1]."""
ALIVE = "alive"
"""Per-agent activity flag, ``(group, ALIVE)`` [*B, n] (optional; dead agents' terms are zero)."""
RNN_HIDDEN = "rnn_hidden"
"""Recurrent agents' hidden state, ``(group, RNN_HIDDEN)`` [*B, n, H]."""
LAST_ACTION = "last_action"
"""One-hot previous action, ``(group, LAST_ACTION)`` [*B, n, A] (``GRUAgent(last_action=True)``)."""

STATE = "state"
"""Centralized information z (real state, else stacked observations), root [*B, *S]."""
BATTLE_WON = "battle_won"
"""Root [*B, 1] bool, True in the ``"next"`` of the step that wins an episode (SMAX battles): win rates."""
REWARD = "reward"
"""Team reward, root [*B, 1] (under ``"next"`` in transitions)."""
EPISODE_REWARD = "episode_reward"
"""Running episode return (torchrl ``RewardSum``), root [*B, 1]."""
IS_INIT = "is_init"
"""Episode-start flag (torchrl ``InitTracker``), root [*B, 1]."""

NOISE = "noise"
"""MAVEN's per-episode latent z (float one-hot), root [*B, noise_dim]."""
NOISE_STATE0 = "noise_state0"
"""The s_0 MAVEN's z was drawn from, root [*B, *S] (for the z-policy's REINFORCE update)."""


def agent_key(name: str, group: str = GROUP) -> tuple[str, str]:
    """``(group, name)``: the nested key of a per-agent entry."""
    return (group, name)
