"""Greedy evaluation: returns of the deterministic policy, a run reloaded from its checkpoint, GIFs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_vd.envs.registry import describe_env, make_env
from torchrl_vd.igm import check_igm
from torchrl_vd.keys import BATTLE_WON, DONE, NEXT, REWARD
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.train.algos import get_algo
from torchrl_vd.train.checkpoint import load_checkpoint, restore_modules
from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.environment import build_env, horizon
from torchrl_vd.train.threads import set_default_threads


NO_EVAL = {"eval_return": float("nan"), "igm_violation_rate": float("nan"), "igm_value_gap": float("nan"),
           "eval_win_rate": float("nan")}
"""The evaluation columns of a metrics row without an evaluation."""


@torch.no_grad()
def evaluate(policy, env, max_steps: int | None = None, seed: int | None = None, *, igm_loss=None,
             igm_max_joint_actions: int = 256, igm_max_states: int = 256) -> dict:
    """Greedy returns: every env in ``env``'s batch plays one episode; mean/std of the returns.

    With ``seed`` the env is re-seeded first, so every evaluation starts from the same initial states
    (comparable across a run and unaffected by checkpoint/resume).

    With ``igm_loss`` (a loss exposing ``joint_q_values``), also the IGM gap on the evaluated states
    (:func:`igm_gap`): ``igm_violation_rate`` and ``igm_value_gap``.
    """
    roll, returns, valid = greedy_rollout(policy, env, max_steps, seed)
    out = {**return_stats(returns), **win_stats(roll, valid)}
    if igm_loss is not None:
        out.update(igm_gap(igm_loss, roll, valid, igm_max_joint_actions, igm_max_states))
    return out


@torch.no_grad()
def greedy_rollout(policy, env, max_steps: int | None = None, seed: int | None = None):
    """One greedy episode per env of ``env``'s batch: ``(rollout [N, T], returns [N], valid [N, T])``, ``valid``
    marking the steps up to and including each env's first ``done`` (:func:`evaluate`'s returns)."""
    steps = max_steps or horizon(env)
    if seed is not None:
        env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = env.rollout(steps, policy, break_when_any_done=False, auto_cast_to_device=True)  # [N, T]
    reward = roll[NEXT, REWARD].squeeze(-1)  # [N, T]
    done = roll[NEXT, DONE].squeeze(-1)  # [N, T]
    first_done = done.long().cumsum(-1) - done.long()  # [N, T]: 0 up to and including the first done
    returns = (reward * (first_done == 0)).sum(-1)  # [N]
    return roll, returns, first_done == 0


def return_stats(returns: torch.Tensor) -> dict:
    """``eval_return`` (mean) and ``eval_return_std`` of the greedy returns ``[episodes]``."""
    return {"eval_return": returns.mean().item(), "eval_return_std": returns.std().item() if returns.numel() > 1 else 0.0}


def win_stats(roll, valid: torch.Tensor) -> dict:
    """``eval_win_rate``: the share of the rollout's ``[N, T]`` first episodes (``valid`` steps) that were won,
    for envs that mark won episodes (``("next", "battle_won")``, SMAX); ``{}`` for the others."""
    if (NEXT, BATTLE_WON) not in roll.keys(True):
        return {}
    won = (roll[NEXT, BATTLE_WON].squeeze(-1) & valid).any(-1)  # [N]: the winning step lies in the episode
    return {"eval_win_rate": won.float().mean().item()}


@torch.no_grad()
def igm_gap(loss, roll, valid: torch.Tensor, max_joint_actions: int = 256, max_states: int = 256) -> dict:
    """The IGM gap of ``loss``'s joint value Q (Q_tot, Q_jt) on the ``valid`` [N, T] states of a greedy
    rollout ``roll`` [N, T], through :func:`~torchrl_vd.igm.check_igm`:

    * ``igm_violation_rate``: share of states where max_a Q(s, a) exceeds Q(s, ā), ā the agents' local
      greedy actions (ties within check_igm's tolerance hold);
    * ``igm_value_gap``: mean of max_a Q(s, a) − Q(s, ā) ≥ 0.

    Each state is read as one step (the rollout keeps what the agents saw: the hidden state entering the
    step, ``is_init``, the last action, MAVEN's z), so the states can be subsampled: at most ``max_states``
    of them, drawn without replacement by a fixed generator (the same subset for the same rollout). The
    joint actions are enumerated up to ``max_joint_actions``, else that many are sampled (plus ā; both
    figures are then lower bounds). NaN for losses without a joint value.
    """
    states = roll[valid]  # [S] valid steps, one per row
    if states.shape[0] > max_states:
        g = torch.Generator().manual_seed(0)
        states = states[torch.randperm(states.shape[0], generator=g)[:max_states].to(valid.device)]  # [max_states]
    try:
        report = check_igm(loss, states, max_joint_actions=max_joint_actions, generator=torch.Generator().manual_seed(0))
    except NotImplementedError:  # a loss without a centralized joint value
        return {"igm_violation_rate": float("nan"), "igm_value_gap": float("nan")}
    return {"igm_violation_rate": (~report.holds).float().mean().item(), "igm_value_gap": report.gap.mean().item()}


def render_gif(policy, env, path: str | Path, max_steps: int | None = None, fps: int = 20) -> Path:
    """Greedy episode of env 0 rendered to a GIF; VMAS scenarios only (they render headless to RGB arrays)."""
    from PIL import Image

    raw = getattr(getattr(env, "base_env", env), "_env", None)
    if raw is None or not hasattr(raw, "render") or not type(raw).__module__.startswith("vmas"):
        raise ValueError(f"--render is supported for VMAS environments only; {type(env.base_env).__name__} cannot "
                         "render frames.")
    frames = [raw.render(mode="rgb_array", env_index=0)]

    def grab(_env, _td):
        frames.append(raw.render(mode="rgb_array", env_index=0))

    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        env.rollout(max_steps or horizon(env), policy, callback=grab, break_when_any_done=True)
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def evaluate_run(run_dir: str | Path, episodes: int | None = None, render: str | Path | None = None,
                 device: str | None = None) -> dict:
    """Rebuild a run from its checkpoint and evaluate its greedy policy (``torchrl-vd eval``).

    The same evaluation as the trainer's final one (seed + 10_000, the run's episode count by default): the
    greedy return and std, and — when the run logs it (``igm_eval``, the default) — the IGM gap on the evaluated
    states (``igm_violation_rate``, ``igm_value_gap``; :func:`igm_gap`). ``render``: also write a GIF of one
    greedy episode there (VMAS scenarios). ``device``: where to evaluate (default: the run's own device; the
    checkpoint is read onto the CPU and moved there, so a run trained on a GPU evaluates on a CPU-only machine).
    """
    state = load_checkpoint(run_dir)
    cfg = TrainConfig.from_dict({**state["config"], "resume": None, **({"device": device} if device else {})})
    try:
        cfg.check_runtime()
    except ValueError as err:
        raise ValueError(f"Cannot evaluate {run_dir} on device={cfg.device!r} (trained on "
                         f"{state['config'].get('device')!r}): {err} Evaluate it on this machine's CPU with "
                         "`torchrl-vd eval RUN_DIR --device cpu` (evaluate_run(..., device='cpu')).") from None
    set_default_threads(cfg.threads)
    n = episodes or cfg.eval_episodes
    base = make_env(cfg.env, num_envs=n, device=cfg.device, seed=cfg.seed + 10_000, **cfg.env_kwargs)
    info = describe_env(base)
    parts = get_algo(cfg.algo).parts(cfg, info).to(cfg.device)
    loss = parts.loss_module
    restore_modules(state, loss, extra_modules=parts.extra_modules)
    env = build_env(cfg, parts.env_transforms, loss.agent_net, base=base)
    greedy, _ = make_agent_policies(loss.agent_net, action_mask=info.has_action_mask, group=info.group)
    out = evaluate(greedy, env, seed=cfg.seed + 10_000, igm_loss=loss if cfg.igm_eval else None,
                   igm_max_joint_actions=cfg.igm_max_joint_actions, igm_max_states=cfg.igm_max_states)
    out.update(run_dir=str(run_dir), algo=cfg.algo, env=cfg.env, frames=state["frames"], episodes=n)
    if render is not None:
        one = build_env(cfg, parts.env_transforms, loss.agent_net, num_envs=1, seed=cfg.seed + 10_000)
        out["render"] = str(render_gif(greedy, one, render))
    Path(run_dir, "eval.json").write_text(json.dumps(out, indent=2))
    return out
