"""Checkpoints that hold everything needed to continue a run, and reloading a run for evaluation.

A checkpoint (``checkpoint.pt`` in the run directory) holds: the config, the loss module's state
(online and target networks), extra trained modules (e.g. MAVEN's z-policy), the optimizer, the
replay buffer, the frame/update counters, the target updater's counter and the torch RNG state.
The ε schedule is a function of the frame count, so it resumes exactly.

Exact resumption: a simulator's runtime state is not generally serializable (torchrl's collectors say
the same), so checkpoints are taken at *episode boundaries*: right after writing one, the trainer
re-seeds the environments with ``seed + frames`` and resets them, in the uninterrupted run as in the
resumed one. On CPU, a run resumed from a periodic checkpoint therefore reproduces the uninterrupted
run's metrics exactly (tests/test_train.py). A checkpoint written on SIGINT/SIGTERM follows the same
rule, so the resumed run equals an uninterrupted run that had checkpointed at that frame.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from torchrl_vd.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 2


def save_checkpoint(path: Path, *, cfg: TrainConfig, loss, optimizer, extra_modules: dict, replay_buffer,
                    frames: int, updates: int, updater, metrics_rows: int, next_eval: float) -> Path:
    """Write the checkpoint atomically (temp file + rename): an interrupted save never corrupts the last one."""
    state = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "loss_module": loss.state_dict(),
        "optimizer": optimizer.state_dict(),
        "extra_modules": {k: m.state_dict() for k, m in extra_modules.items()},
        "replay_buffer": _buffer_state(replay_buffer) if replay_buffer is not None else None,
        "frames": frames,
        "updates": updates,
        "updater_counter": getattr(updater, "counter", None),
        "torch_rng": torch.get_rng_state(),
        "metrics_rows": metrics_rows,
        "next_eval": next_eval,
    }
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def _buffer_state(rb) -> dict:
    """The filled part of the replay buffer (its preallocated storage would save mostly zeros) + writer state."""
    n = len(rb)
    return {"data": rb.storage[:n].clone() if n else None, "writer": rb._writer.state_dict()}


def restore_buffer(rb, state: dict) -> None:
    """Refill ``rb`` in index order, then restore the write cursor (a full buffer may have wrapped around)."""
    if state["data"] is not None:
        rb.extend(state["data"])
    rb._writer.load_state_dict(state["writer"])


def load_checkpoint(run_dir: str | Path) -> dict:
    """Read and check a run's checkpoint; a clear error when it is missing, corrupt or incompatible."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"No {CHECKPOINT} in {run_dir}: nothing to resume or evaluate.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"{path} is corrupt or not a torchrl-vd checkpoint ({type(err).__name__}: {err}).") from err
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a torchrl-vd checkpoint of format {FORMAT_VERSION} "
            f"(found {state.get('format_version') if isinstance(state, dict) else type(state).__name__})."
        )
    return state


def config_for_resume(run_dir: str | Path) -> TrainConfig:
    """The config saved in ``run_dir``'s checkpoint, with ``resume`` and ``out_dir`` pointing at it."""
    state = load_checkpoint(run_dir)
    d = dict(state["config"])
    d.update(resume=str(run_dir), out_dir=str(run_dir))
    return TrainConfig.from_dict(d)


def restore_modules(state: dict, loss, optimizer=None, extra_modules: dict | None = None) -> None:
    """Load networks (and optimizer) from ``state``; names the mismatch if the architecture differs."""
    try:
        with warnings.catch_warnings():  # torchrl warns on any access to target params without an updater
            warnings.filterwarnings("ignore", message="No target network updater")
            loss.load_state_dict(state["loss_module"])
        for k, m in (extra_modules or {}).items():
            m.load_state_dict(state["extra_modules"][k])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(
            f"Checkpoint does not match the networks built from its config (changed code or --set?): {err}"
        ) from err


def render_gif(policy, env, path: str | Path, max_steps: int | None = None, fps: int = 20) -> Path:
    """Greedy episode of env 0 rendered to a GIF; VMAS scenarios only (they render headless to RGB arrays)."""
    from PIL import Image
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from torchrl_vd.train.loop import _horizon

    raw = getattr(getattr(env, "base_env", env), "_env", None)
    if raw is None or not hasattr(raw, "render") or not type(raw).__module__.startswith("vmas"):
        raise ValueError(f"--render is supported for VMAS environments only; {type(env.base_env).__name__} cannot "
                         "render frames.")
    frames = [raw.render(mode="rgb_array", env_index=0)]

    def grab(_env, _td):
        frames.append(raw.render(mode="rgb_array", env_index=0))

    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        env.rollout(max_steps or _horizon(env), policy, callback=grab, break_when_any_done=True)
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def evaluate_run(run_dir: str | Path, episodes: int | None = None, render: str | Path | None = None) -> dict:
    """Rebuild a run from its checkpoint and evaluate its greedy policy (``torchrl-vd eval``).

    ``render``: also write a GIF of one greedy episode there (VMAS scenarios).
    """
    from torchrl_vd.envs.registry import describe_env, make_env
    from torchrl_vd.modules.agents import make_agent_policies
    from torchrl_vd.train.loop import build_env, evaluate, set_default_threads
    from torchrl_vd.train.registry import algorithms

    state = load_checkpoint(run_dir)
    cfg = TrainConfig.from_dict({**state["config"], "resume": None})
    set_default_threads(cfg.threads)
    info = describe_env(make_env(cfg.env, num_envs=1, device=cfg.device, seed=cfg.seed, **cfg.env_kwargs))
    parts = algorithms()[cfg.algo].builder(cfg, info)
    loss = parts.loss_module.to(cfg.device)
    restore_modules(state, loss, extra_modules=parts.extra_modules)
    n = episodes or cfg.eval_episodes
    env = build_env(cfg, parts.env_transforms, loss.agent_net, num_envs=n, seed=cfg.seed + 10_000)
    greedy, _ = make_agent_policies(loss.agent_net, action_mask=info.has_action_mask, group=info.group)
    out = evaluate(greedy, env, seed=cfg.seed + 10_000)
    out.update(run_dir=str(run_dir), algo=cfg.algo, env=cfg.env, frames=state["frames"], episodes=n)
    if render is not None:
        one = build_env(cfg, parts.env_transforms, loss.agent_net, num_envs=1, seed=cfg.seed + 10_000)
        out["render"] = str(render_gif(greedy, one, render))
    Path(run_dir, "eval.json").write_text(json.dumps(out, indent=2))
    return out
