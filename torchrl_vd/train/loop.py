"""``train(TrainConfig) -> TrainResult``: the one training loop every algorithm shares (``TrainConfig.seeds``:
many seeds in one process, train/seeds.py).

The loop only wires the parts together, each in its own module: the algorithm table (algos.py) builds
the loss and any extra pieces, the trainer's env wraps ``make_env`` (environment.py), a torchrl
``Collector`` variant collects ε-greedy batches (collectors.py), the :class:`Learner` stores them and
takes the gradient steps (learner.py), greedy evaluation (evaluation.py), the run directory's files and
progress bar (run_files.py) and checkpoints (checkpoint.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import time
import warnings
from pathlib import Path

import torch

from torchrl_vd.envs.registry import describe_env, make_env
from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.train.algos import get_algo
from torchrl_vd.train.checkpoint import CHECKPOINT, learner_state, load_checkpoint, restore_modules, save_checkpoint
from torchrl_vd.train.collectors import OverlapCollector, make_collector
from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.environment import build_env
from torchrl_vd.train.evaluation import NO_EVAL, evaluate
from torchrl_vd.train.guards import StopSignal, check_finite
from torchrl_vd.train.learner import EpsilonSchedule, Learner
from torchrl_vd.train.plot import draw_beside
from torchrl_vd.train.run_files import Progress, RunFiles, check_run_dir, metric_columns, metric_row
from torchrl_vd.train.result import SeedsResult, TrainResult
from torchrl_vd.train.seeds import train_seeds
from torchrl_vd.train.threads import set_default_threads


def train(cfg: TrainConfig) -> TrainResult | SeedsResult:
    """Train ``cfg.algo`` on ``cfg.env``; write metrics.csv, summary.json, checkpoint and PNG to the run dir.

    With ``cfg.seeds``: one run per seed in one process (train/seeds.py), returning a :class:`SeedsResult`.
    """
    if cfg.seeds:
        return train_seeds(cfg, train_one=_train_one)
    return _train_one(cfg)


def _train_one(cfg: TrainConfig) -> TrainResult:
    """One run (``cfg.seed``)."""
    spec = get_algo(cfg.algo)  # the unknown-algo error, with close matches
    cfg.check_runtime()  # e.g. device="cuda" on a machine without CUDA
    set_default_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-{cfg.seed}")
    check_run_dir(out_dir, cfg.resume)
    resume_state = None
    if cfg.resume:  # a run killed before its first checkpoint has only config.json: it starts again
        resume_state = load_checkpoint(cfg.resume, missing_ok=(Path(cfg.resume) / "config.json").exists())
        if resume_state is None:
            warnings.warn(f"{cfg.resume} has no checkpoint yet (the run stopped before its first one, "
                          f"checkpoint_every={cfg.checkpoint_every}); starting it again from frame 0.",
                          RuntimeWarning, stacklevel=2)

    base_env = make_env(cfg.env, num_envs=cfg.num_envs, device=cfg.device, seed=cfg.seed, **cfg.env_kwargs)
    info = describe_env(base_env)
    cfg.check_env(info)  # options the env cannot serve, before any work
    parts = spec.parts(cfg, info)
    loss = parts.loss_module.to(cfg.device)
    agent = loss.agent_net
    env = build_env(cfg, parts.env_transforms, agent, base=base_env)
    eval_env = build_env(cfg, parts.env_transforms, agent, num_envs=cfg.eval_episodes, seed=cfg.seed + 10_000)
    learner = Learner(cfg, loss, parts.extra_modules, time_steps=cfg.frames_per_batch // cfg.num_envs)
    epsilon = EpsilonSchedule.from_config(cfg)
    greedy, explore = make_agent_policies(agent, action_mask=info.has_action_mask, eps_init=cfg.eps_start,
                                          eps_end=cfg.eps_start, group=info.group,  # ε: set from `epsilon` only
                                          keep_values=False)  # no Q-values in the replay buffer
    egreedy = explore[-1]

    frames, next_eval = 0, float(cfg.eval_every or math.inf)
    if resume_state is not None:
        restore_modules(resume_state, loss, extra_modules=parts.extra_modules)
        learner.load_state_dict(learner_state(resume_state))
        frames, next_eval = resume_state["frames"], resume_state["next_eval"]
        if frames >= cfg.frames and (out_dir / "summary.json").exists():
            raise ValueError(f"The run in {cfg.resume} already reached {frames} frames (frames={cfg.frames}); "
                             "raise it with --set frames=N to train further.")
    env_fn = functools.partial(build_env, cfg, parts.env_transforms, agent)  # picklable, for worker processes
    if frames >= cfg.frames:  # killed after its final checkpoint, before summary.json: only the ending is left
        collector = _NoCollector()
    elif cfg.collector == "async":  # seeded in its worker; resumed runs start fresh episodes there (not bitwise)
        collector = OverlapCollector(cfg, env_fn, explore, frames0=frames, epsilon=epsilon,
                                     seed=cfg.seed if resume_state is None else cfg.seed + frames)
    else:
        collector = make_collector(cfg, env, env_fn, explore, total_frames=cfg.frames - frames)
        if resume_state is None:
            collector.set_seed(cfg.seed)
        else:  # checkpoints fall on episode boundaries (see checkpoint.py): same reset, then the saved RNG
            collector.set_seed(cfg.seed + frames)
            if cfg.collector == "single":
                collector.reset()
    if resume_state is not None:
        torch.set_rng_state(resume_state["torch_rng"])

    rows_before = resume_state["metrics_rows"] if resume_state is not None else 0
    columns = metric_columns(info, parts.metric_columns)
    files = RunFiles(out_dir, cfg, columns, keep_rows=rows_before if cfg.resume else None)
    metrics: list[dict] = []
    t0 = time.perf_counter()
    frames_at_start = frames
    next_ckpt = (frames // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else math.inf
    bar = Progress(cfg, initial=frames)
    stop = StopSignal()
    ckpt_stats = {"checkpoints": 0, "checkpoint_time_s": 0.0}

    def checkpoint() -> None:
        t = time.perf_counter()
        if cfg.collector == "single":  # episode boundary: identical in resumed and uninterrupted runs
            collector.set_seed(cfg.seed + frames)
            collector.reset()  # (worker collectors restart fresh on resume instead: resumable, not bitwise)
        files.sync()  # the rows the checkpoint counts are on disk before it is
        save_checkpoint(out_dir / CHECKPOINT, cfg=cfg, learner=learner, extra_modules=parts.extra_modules,
                        frames=frames, metrics_rows=rows_before + len(metrics), next_eval=next_eval)
        ckpt_stats["checkpoints"] += 1
        ckpt_stats["checkpoint_time_s"] += time.perf_counter() - t

    def run_eval() -> dict:
        """Greedy return and std (+ the IGM gap on the evaluated states, ``cfg.igm_eval``; else NaN)."""
        out = evaluate(greedy, eval_env, seed=cfg.seed + 10_000, igm_loss=loss if cfg.igm_eval else None,
                       igm_max_joint_actions=cfg.igm_max_joint_actions, igm_max_states=cfg.igm_max_states)
        return {**NO_EVAL, **out}

    interrupted = False
    last_eval: tuple[int, dict] | None = None  # (frames, result) of the latest evaluation during training
    try:
        egreedy.eps.fill_(epsilon(frames))
        t_iter = time.perf_counter()  # collect_time/update_time: where each batch's wall time went
        cpu0 = time.process_time()  # cpu_time: this process's CPU seconds (+ the async worker's collecting)
        for batch in _watch_workers(collector, cfg, out_dir):  # [num_envs, T]
            t_collected = time.perf_counter()
            if batch.ndim == 3:  # multi-process collectors stack workers: [workers, num_envs, T]
                batch = batch.reshape(-1, batch.shape[-1])  # [workers * num_envs, T]
            check_finite(batch, frames)
            frames += batch.numel()
            learner.add(batch)
            extra = parts.after_batch(batch, frames) if parts.after_batch else {}
            losses = learner.update(cfg.updates_per_batch) if frames >= cfg.learning_starts else []
            t_updated = time.perf_counter()
            eps = epsilon(frames)
            egreedy.eps.fill_(eps)
            if cfg.collector in ("multi", "ray"):
                with _worker_errors(collector, cfg, out_dir):
                    collector.update_policy_weights_()  # new weights and ε to the workers
            # (collector="async" takes weights and ε when it starts the next batch, see OverlapCollector)
            evaluation = dict(NO_EVAL)
            if frames >= next_eval:
                last_eval = (frames, run_eval())
                evaluation = {k: v for k, v in last_eval[1].items() if k in NO_EVAL}  # the metrics.csv columns
                next_eval += cfg.eval_every
            elapsed = time.perf_counter() - t0
            row = metric_row(batch, frames=frames, updates=learner.updates, eps=eps,
                             loss=torch.stack(losses).mean() if losses else None, evaluation=evaluation,
                             fps=(frames - frames_at_start) / elapsed, elapsed=elapsed,
                             times=(t_iter, t_collected, t_updated),
                             cpu_time=time.process_time() - cpu0 + getattr(collector, "worker_cpu_s", 0.0), extra=extra)
            metrics.append(row)
            files.log(row)
            bar.update(batch.numel(), row)
            if stop.requested:
                interrupted = True
                checkpoint()
                break
            if frames >= next_ckpt or frames >= cfg.frames:
                checkpoint()  # periodic, and always at the end (same path: resumable identically)
                next_ckpt += cfg.checkpoint_every
            t_iter = time.perf_counter()
    finally:
        stop.restore()
        bar.close()
        collector.shutdown()
        files.close()
    wall = time.perf_counter() - t0
    png = out_dir / "learning_curve.png"
    png_written = draw_beside([([out_dir], png, f"{cfg.algo} on {cfg.env}")])  # during the final evaluation
    # The greedy policy is evaluated once per set of weights: an evaluation after the last batch's updates
    # (eval_every dividing frames) is the final one, on the same env and seed.
    final = last_eval[1] if last_eval is not None and last_eval[0] == frames else run_eval()
    summary = {
        "algo": cfg.algo,
        "env": cfg.env,
        "seed": cfg.seed,
        "frames": frames,
        "updates": learner.updates,
        "wall_time_s": wall,
        "frames_per_s": (frames - frames_at_start) / wall if wall > 0 else float("nan"),
        "final_eval_return": final["eval_return"],
        "final_eval_return_std": final["eval_return_std"],
        "eval_episodes": cfg.eval_episodes,
        **({"final_eval_win_rate": final["eval_win_rate"]} if info.has_battle_won else {}),
        **({"final_igm_violation_rate": final["igm_violation_rate"], "final_igm_value_gap": final["igm_value_gap"]}
           if cfg.igm_eval else {}),
        "interrupted": interrupted,
        **ckpt_stats,  # periodic checkpoints: how many, and the wall time they took (of wall_time_s)
    }
    files.write_summary(summary)
    plot_errors = png_written()
    if plot_errors:  # a plotting failure must never lose a finished run
        summary["plot_error"] = plot_errors[str(png)]
    return TrainResult(greedy, loss, env, metrics, summary, out_dir, explore, parts, info)


class _NoCollector:
    """Stands in for the collector when a resumed run has no frames left to collect (only its ending)."""

    def __iter__(self):
        return iter(())

    def shutdown(self) -> None:
        pass  # nothing was started: the run only writes its ending


def _watch_workers(collector, cfg, out_dir: Path):
    """Iterate ``collector``; a dead worker process becomes an error naming it and the way to continue."""
    it = iter(collector)
    while True:
        with _worker_errors(collector, cfg, out_dir):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch


@contextlib.contextmanager
def _worker_errors(collector, cfg, out_dir: Path):
    """Turn the failure of a multi/ray/async collector's worker into a ``RuntimeError`` that says which
    worker died and how to continue (resume from the last checkpoint). Single-process collectors: no-op."""
    if cfg.collector == "single":
        yield
        return
    try:
        yield
    except Exception as err:
        procs = list(getattr(collector, "procs", None) or [])
        proc = getattr(collector, "_proc", None)
        procs += [proc] if proc is not None else []
        codes = [(i, p.pid, _exitcode(p)) for i, p in enumerate(procs)]
        dead = [c for c in codes if c[2] not in (None, 0)]
        first = [c for c in dead if c[2] != -signal.SIGTERM] or dead  # torchrl SIGTERMs the others after a death
        who = ", ".join(f"worker {i} (pid {pid}, {_describe_exit(code)})" for i, pid, code in first) or "a worker"
        raise RuntimeError(
            f"collector={cfg.collector!r}: {who} stopped mid-run ({type(err).__name__}: {str(err)[:300]}). The run "
            f"stops here; continue it from its last checkpoint with `torchrl-vd train --resume {out_dir}` "
            "(TrainConfig(resume=...)); if workers keep dying, check memory (dmesg: OOM killer) or use "
            "collector='single' to see the env's own error."
        ) from err


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass  # a signal number Python has no name for: report the raw code below
    return f"exit code {code}"


def _exitcode(proc):
    try:
        if proc.exitcode is None:
            proc.join(timeout=2)  # a worker whose pipe just closed may not have been reaped yet
        return proc.exitcode
    except (ValueError, AssertionError):  # a closed Process (torchrl closes the workers it stops), not our child
        return getattr(proc, "_popen", None) and proc._popen.returncode
