"""Checkpoints that hold everything needed to continue a run, and reloading a run for evaluation.

A checkpoint (``checkpoint.pt`` in the run directory) holds: the config, the loss module's state
(online and target networks), extra trained modules (e.g. MAVEN's z-policy), the optimizer, the
replay buffer, the frame/update counters, the target updater's counter and the torch RNG state —
plain data and tensors only, read back with ``torch.load(weights_only=True)``: a checkpoint is data,
never code, so evaluating or resuming a run directory someone shared cannot execute anything.
The ε schedule is a function of the frame count, so it resumes exactly.

Exact resumption: a simulator's runtime state is not generally serializable (torchrl's collectors say
the same), so checkpoints are taken at *episode boundaries*: right after writing one, the trainer
re-seeds the environments with ``seed + frames`` and resets them, in the uninterrupted run as in the
resumed one. On CPU, a run resumed from a periodic checkpoint therefore reproduces the uninterrupted
run's metrics exactly (tests/test_train.py). A checkpoint written on SIGINT/SIGTERM follows the same
rule, so the resumed run equals an uninterrupted run that had checkpointed at that frame.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from torchrl_vd.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 3  # 3: plain data only (weights_only loading); 2 pickled a TensorDict


def save_checkpoint(path: Path, *, cfg, learner, extra_modules: dict, frames: int, metrics_rows: int,
                    next_eval: float) -> Path:
    """Write the checkpoint atomically (temp file + rename): an interrupted save never corrupts the last one.

    Only plain data goes in (dicts, lists, numbers, strings, tensors; the replay buffer as a nested dict of
    tensors), so that :func:`load_checkpoint` can read it with ``torch.load(weights_only=True)``.
    """
    learned = learner.state_dict()
    buffer = learned.pop("replay_buffer")
    state = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        **learned,
        "extra_modules": {k: m.state_dict() for k, m in extra_modules.items()},
        "replay_buffer": None if buffer is None else {
            "data": None if buffer["data"] is None else buffer["data"].to_dict(),
            "batch_size": None if buffer["data"] is None else list(buffer["data"].batch_size),
            "writer": buffer["writer"],
        },
        "frames": frames,
        "torch_rng": torch.get_rng_state(),
        "metrics_rows": metrics_rows,
        "next_eval": next_eval,
    }
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def learner_state(state: dict) -> dict:
    """The part of a loaded checkpoint that :meth:`Learner.load_state_dict` takes (buffer back to a TensorDict)."""
    from tensordict import TensorDict

    buffer = state["replay_buffer"]
    if buffer is not None and buffer["data"] is not None:
        buffer = {**buffer, "data": TensorDict(buffer["data"], batch_size=buffer["batch_size"])}
    return {"optimizer": state["optimizer"], "replay_buffer": buffer, "updates": state["updates"],
            "updater_counter": state["updater_counter"]}


def load_checkpoint(run_dir: str | Path) -> dict:
    """Read and check a run's checkpoint; a clear error when it is missing, corrupt or incompatible."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"No {CHECKPOINT} in {run_dir}: nothing to resume or evaluate.")
    try:
        # weights_only: the unpickler builds only tensors and plain containers, so a crafted file cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or unsafe file
        raise ValueError(
            f"{path} is corrupt, not a torchrl-vd checkpoint, or holds objects other than tensors and plain data "
            f"(refused without running them; checkpoints of torchrl-vd < 0.2 are not readable safely): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
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
