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

Crash consistency (kill -9, OOM, power loss at any instant): :func:`save_checkpoint` writes a temp file in
the run directory, flushes and fsyncs it, keeps the last complete checkpoint as ``checkpoint.prev.pt``
(a hard link), renames the temp file over ``checkpoint.pt`` and fsyncs the directory; every checkpoint
carries the sha256 of its contents, verified by :func:`load_checkpoint`. A damaged latest checkpoint
(truncated, bit-flipped, half-written) is reported and the previous one is used; if both are damaged the
error names both files. A failed write (e.g. a full disk) raises an ``OSError`` that says so and leaves
the previous checkpoint untouched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import warnings
from pathlib import Path

import torch

from torchrl_vd.train.run_files import fsync_dir

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"  # the last complete checkpoint before the latest one
TEMP = "checkpoint.pt.tmp"  # a write in progress (never read)
FORMAT_VERSION = 4  # 4: + sha256 of the contents; 3: plain data only (weights_only loading); 2 pickled a TensorDict
READABLE_FORMATS = (3, 4)  # format 3 (no checksum) is still read, unverified


def state_digest(state: dict) -> str:
    """sha256 over a checkpoint's contents (every key but ``"sha256"``): keys, plain values, tensors' bytes.

    Computed on the in-memory state, so the writer and the reader hash the same thing whatever the
    serialization; a flipped bit in any tensor, number or string changes it.
    """
    h = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(obj, dict):
            keys = sorted((k for k in obj if not (obj is state and k == "sha256")), key=repr)
            h.update(f"D{len(keys)}".encode())
            for k in keys:
                h.update(repr(k).encode())
                feed(obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(f"L{type(obj).__name__}{len(obj)}".encode())
            for x in obj:
                feed(x)
        else:  # numbers, strings, bools, None, torch.Size
            h.update(f"V{type(obj).__name__}:{obj!r}".encode())

    feed(state)
    return h.hexdigest()


def save_checkpoint(path: Path, *, cfg, learner_state: dict, extra_modules: dict, frames: int, metrics_rows: int,
                    next_eval: float) -> Path:
    """Write the checkpoint crash-consistently (see the module docstring); returns ``path``.

    Only plain data goes in (dicts, lists, numbers, strings, tensors; the replay buffer as a nested dict of
    tensors), so that :func:`load_checkpoint` can read it with ``torch.load(weights_only=True)``.
    Raises ``OSError`` naming the file when it cannot be written (full disk, permissions); the previous
    checkpoint is then left as it was.
    """
    learned = dict(learner_state)  # Learner.state_dict() / seed_state_dict(k)
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
    state["sha256"] = state_digest(state)
    write_checkpoint_file(Path(path), state)
    return Path(path)


def write_checkpoint_file(path: Path, state: dict) -> None:
    """temp file (same directory) -> flush + fsync -> keep the old one as checkpoint.prev.pt -> rename -> fsync dir."""
    tmp, prev = path.with_name(TEMP), path.with_name(PREVIOUS)
    try:
        with _open_for_write(tmp) as raw:
            torch.save(state, raw)
            raw.flush()
            os.fsync(raw.fileno())
    except Exception as err:  # torch's zip writer wraps the OSError of a failed write in a RuntimeError
        tmp.unlink(missing_ok=True)
        cause = err if isinstance(err, OSError) else (err.__context__ or err.__cause__)
        code = cause.errno if isinstance(cause, OSError) else errno.EIO
        reason = os.strerror(code) if isinstance(cause, OSError) and cause.errno else f"{type(err).__name__}: {err}"
        kept = (f"the previous checkpoint {path} is intact" if path.exists()
                else "no earlier checkpoint exists")
        raise OSError(code, f"Could not write the checkpoint {path} ({reason}); {kept}. Free disk space (or fix "
                            f"the directory's permissions), then continue with `torchrl-vd train --resume "
                            f"{path.parent}`.") from err
    if path.exists():  # keep the last complete checkpoint until the new one is in place
        prev.unlink(missing_ok=True)
        try:
            os.link(path, prev)
        except OSError:  # no hard links on this filesystem: a rename (checkpoint.pt is briefly absent)
            os.replace(path, prev)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _open_for_write(path: Path):
    """The temp file, opened for writing (tests wrap it: a disk that fills up, a process killed mid-write)."""
    return open(path, "wb")


def learner_state(state: dict) -> dict:
    """The part of a loaded checkpoint that :meth:`Learner.load_state_dict` takes (buffer back to a TensorDict)."""
    from tensordict import TensorDict

    buffer = state["replay_buffer"]
    if buffer is not None and buffer["data"] is not None:
        buffer = {**buffer, "data": TensorDict(buffer["data"], batch_size=buffer["batch_size"])}
    return {"optimizer": state["optimizer"], "replay_buffer": buffer, "updates": state["updates"],
            "skipped_updates": state.get("skipped_updates", 0), "updater_counter": state["updater_counter"],
            "reward_stats": state.get("reward_stats")}


def load_checkpoint(run_dir: str | Path, *, missing_ok: bool = False) -> dict | None:
    """Read and verify a run's checkpoint; a clear error when it is missing, corrupt or incompatible.

    ``checkpoint.pt`` first; if it is damaged (unreadable, truncated, checksum mismatch) or absent while
    ``checkpoint.prev.pt`` exists, a warning names the problem and the previous checkpoint is used.
    ``missing_ok``: return None instead of raising when the run has no checkpoint at all.
    """
    run_dir = Path(run_dir)
    latest, prev = run_dir / CHECKPOINT, run_dir / PREVIOUS
    if not latest.exists() and not prev.exists():
        if missing_ok:
            return None
        raise FileNotFoundError(f"No {CHECKPOINT} in {run_dir}: nothing to resume or evaluate.")
    problems = []
    for path in (latest, prev):
        if not path.exists():
            problems.append((path, f"{path} does not exist."))
            continue
        try:
            state = read_checkpoint_file(path)
        except ValueError as err:
            problems.append((path, str(err)))
            continue
        if problems:
            warnings.warn(f"The latest checkpoint could not be used ({problems[0][1]}); using the previous one, "
                          f"{path} (frame {state['frames']}): the frames collected after it are trained again.",
                          RuntimeWarning, stacklevel=2)
        return state
    if not latest.exists() or not prev.exists():
        raise ValueError(problems[0][1] if latest.exists() else problems[1][1])
    raise ValueError(f"Both checkpoints of {run_dir} are unusable: {problems[0][1]} AND {problems[1][1]} "
                     "Nothing to resume from: start the run again in a new directory (--out).")


def read_checkpoint_file(path: Path) -> dict:
    """One checkpoint file, loaded with ``weights_only=True`` and its sha256 verified; ``ValueError`` if bad."""
    try:
        # weights_only: the unpickler builds only tensors and plain containers, so a crafted file cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or unsafe file
        raise ValueError(
            f"{path} is corrupt, not a torchrl-vd checkpoint, or holds objects other than tensors and plain data "
            f"(refused without running them; a crash or a full disk can truncate a file; checkpoints of "
            f"torchrl-vd < 0.2 are not readable safely): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_FORMATS:
        raise ValueError(
            f"{path} is not a torchrl-vd checkpoint of format {FORMAT_VERSION} "
            f"(found {state.get('format_version') if isinstance(state, dict) else type(state).__name__})."
        )
    if state["format_version"] >= 4:
        stored = state.get("sha256")
        if not isinstance(stored, str) or stored != state_digest(state):
            raise ValueError(f"{path} is corrupt: its contents do not match the sha256 written with them "
                             "(a flipped bit or a damaged copy).")
    return state


def restore_modules(state: dict, loss=None, extra_modules: dict | None = None) -> None:
    """Load the loss module's networks and the extra modules from ``state``; a mismatch is named in a few lines
    (what is missing, unexpected or of another shape), never as torch's full key dump."""
    pairs = ([(loss, state["loss_module"], "loss module")] if loss is not None else []) + [
        (m, state["extra_modules"].get(k), f"extra module {k!r}") for k, m in (extra_modules or {}).items()]
    for module, saved, what in pairs:
        problem = "it is missing from the checkpoint" if saved is None else state_mismatch(module, saved)
        if problem:
            raise ValueError(f"The checkpoint's {what} does not match the one built from its config: {problem}. The "
                             "code that builds it changed since the run was written; evaluate or resume it with that "
                             "version, or start a new run with --out.")
        with warnings.catch_warnings():  # torchrl warns on any access to target params without an updater
            warnings.filterwarnings("ignore", message="No target network updater")
            built = module.state_dict()
            module.load_state_dict({k: v for k, v in saved.items() if not _derived(k) or k in built}, strict=False)


def _derived(key: str) -> bool:
    """Entries rebuilt from the config, not learned: the value estimator's γ and λ (``make_value_estimator``, which
    the learner calls; a loss module rebuilt for evaluation has none)."""
    return key.startswith("_value_estimator.")


def state_mismatch(module, saved: dict) -> str | None:
    """How ``saved`` differs from ``module.state_dict()`` (keys missing or unexpected, shapes), None if it fits;
    the value estimator's entries (:func:`_derived`) may be on one side only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No target network updater")
        built = module.state_dict()
    saved = {k: v for k, v in saved.items() if not _derived(k) or k in built}
    built = {k: v for k, v in built.items() if not _derived(k) or k in saved}
    missing, unexpected = sorted(set(built) - set(saved)), sorted(set(saved) - set(built))
    shapes = [f"{k}: saved {list(saved[k].shape)}, built {list(built[k].shape)}" for k in built
              if k in saved and hasattr(saved[k], "shape") and tuple(saved[k].shape) != tuple(built[k].shape)]
    parts = [f"{len(missing)} entries missing ({', '.join(missing[:2])}{', ...' if len(missing) > 2 else ''})"]         if missing else []
    parts += [f"{len(unexpected)} unexpected ({', '.join(unexpected[:2])}{', ...' if len(unexpected) > 2 else ''})"]         if unexpected else []
    parts += [f"{len(shapes)} of another shape ({shapes[0]})"] if shapes else []
    return "; ".join(parts) or None
