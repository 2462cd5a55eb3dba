"""``train(TrainConfig) -> TrainResult``: the one training loop every algorithm shares.

Built from torchrl parts: ``Collector`` (ε-greedy collection from vectorized envs), a
``TensorDictReplayBuffer`` over ``LazyTensorStorage`` (transitions, or fixed-length sequences for
recurrent agents), ``SoftUpdate`` (fused, objectives/utils.py)/``HardUpdate`` target updates, and the algorithm's loss.
Hand-written here: the ε schedule (set from the frame count so that it is exact and resumable, where
``EGreedyModule.step`` loops once per frame), the metrics.csv/summary.json run directory, and the
greedy evaluation.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import pickle
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import HardUpdate
from torchrl.objectives.utils import ValueEstimators

from torchrl_vd.envs.registry import EnvInfo, describe_env, make_env
from torchrl_vd.objectives.utils import FusedSoftUpdate
from torchrl_vd.modules.agents import make_agent_policies
from torchrl_vd.train.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    restore_buffer,
    restore_modules,
    save_checkpoint,
)
from torchrl_vd.train.config import TrainConfig
from torchrl_vd.train.plot import plot_runs
from torchrl_vd.train.registry import AlgoParts, algorithms


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        policy: greedy decentralized policy (obs -> ("agents", "action")), deterministic.
        loss_module: the trained loss module (agent net, mixer / joint networks, targets).
        env: the training environment.
        metrics: one dict per collected batch (the rows of metrics.csv).
        summary: frames, wall time, frames/s, final greedy evaluation return (summary.json).
        out_dir: the run directory.
    """

    policy: Any
    loss_module: Any
    env: Any
    metrics: list[dict]
    summary: dict
    out_dir: Path
    explore_policy: Any = None
    parts: AlgoParts | None = None
    info: EnvInfo | None = None


def set_default_threads(threads: int = 0) -> int:
    """1 torch thread on machines with ≤ 2 cores (PERF-NOTES: OpenMP spin-waits cost 4–15x), else as asked."""
    if threads <= 0:
        threads = 1 if (os.cpu_count() or 1) <= 2 else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads


def epsilon_at(cfg: TrainConfig, frames: int) -> float:
    """Linear ε schedule from eps_start to eps_end over eps_frames frames."""
    if cfg.eps_frames <= 0:
        return cfg.eps_end
    frac = min(1.0, frames / cfg.eps_frames)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def build_env(cfg: TrainConfig, parts_transforms=(), agent=None, *, num_envs: int | None = None, seed: int | None = None):
    """The env of ``cfg`` with episode-return tracking, the agent's and the algorithm's transforms."""
    base = make_env(cfg.env, num_envs=num_envs or cfg.num_envs, device=cfg.device,
                    seed=cfg.seed if seed is None else seed, **cfg.env_kwargs)
    env = TransformedEnv(base, RewardSum(in_keys=["reward"], out_keys=["episode_reward"]))
    if agent is not None:
        for t in agent.env_transforms(env, getattr(base, "group", "agents")):
            env.append_transform(t)
    for make_t in parts_transforms:
        env.append_transform(make_t())
    return env


def _horizon(env) -> int:
    for obj in (env, getattr(env, "base_env", None)):
        h = getattr(obj, "max_steps", None)
        if isinstance(h, int) and h > 0:
            return h
    return 1000


@torch.no_grad()
def evaluate(policy, env, max_steps: int | None = None, seed: int | None = None) -> dict:
    """Greedy returns: every env in ``env``'s batch plays one episode; mean/std of the returns.

    With ``seed`` the env is re-seeded first, so every evaluation starts from the same initial states
    (comparable across a run and unaffected by checkpoint/resume).
    """
    steps = max_steps or _horizon(env)
    if seed is not None:
        env.set_seed(seed)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = env.rollout(steps, policy, break_when_any_done=False, auto_cast_to_device=True)  # [N, T]
    reward = roll["next", "reward"].squeeze(-1)  # [N, T]
    done = roll["next", "done"].squeeze(-1)  # [N, T]
    first_done = done.long().cumsum(-1) - done.long()  # [N, T]: 0 up to and including the first done
    returns = (reward * (first_done == 0)).sum(-1)  # [N]
    return {"eval_return": returns.mean().item(), "eval_return_std": returns.std().item() if returns.numel() > 1 else 0.0}


class _RunFiles:
    """metrics.csv (one row per batch, a fixed header), config.json, summary.json, optional TensorBoard."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, columns: list[str], keep_rows: int | None = None):
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.columns = columns
        kept: list[dict] = []
        if keep_rows is not None and (out_dir / "metrics.csv").exists():
            # resuming: keep the rows up to the checkpoint, drop those logged after it
            with open(out_dir / "metrics.csv", newline="") as f:
                kept = list(csv.DictReader(f))[:keep_rows]
        self._csv = open(out_dir / "metrics.csv", "w", newline="")
        self._writer = csv.DictWriter(self._csv, fieldnames=columns, extrasaction="ignore")
        self._writer.writeheader()
        self._writer.writerows(kept)
        self.loggers = []  # torchrl loggers besides metrics.csv
        if "tensorboard" in cfg.loggers:
            from torchrl.record.loggers import TensorboardLogger

            self.loggers.append(TensorboardLogger(exp_name="tb", log_dir=str(out_dir)))
        if "wandb" in cfg.loggers:
            try:
                import wandb  # noqa: F401
            except ImportError as err:
                raise ImportError("loggers=['wandb'] needs W&B: pip install 'torchrl-vd[wandb]'") from err
            from torchrl.record.loggers import WandbLogger

            self.loggers.append(WandbLogger(exp_name=out_dir.name, offline=True, save_dir=str(out_dir),
                                            config=cfg.to_dict()))

    def log(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._csv.flush()
        for logger in self.loggers:
            for k, v in row.items():
                if k != "frames" and isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                    logger.log_scalar(k, v, step=int(row["frames"]))

    def close(self) -> None:
        self._csv.close()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


METRIC_COLUMNS = ["frames", "updates", "eps", "loss", "train_return", "episodes", "eval_return", "fps", "time",
                  "collect_time", "update_time", "cpu_time", "rss_mb"]


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.algo`` on ``cfg.env``; write metrics.csv, summary.json, checkpoint and PNG to the run dir."""
    specs = algorithms()
    if cfg.algo not in specs:
        cfg.with_preset(cfg.algo)  # raises the unknown-algo error with close matches
    set_default_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-{cfg.seed}")
    resume_state = load_checkpoint(cfg.resume) if cfg.resume else None

    probe_env = make_env(cfg.env, num_envs=cfg.num_envs, device=cfg.device, seed=cfg.seed, **cfg.env_kwargs)
    info = describe_env(probe_env)
    probe_env.close()
    parts = specs[cfg.algo].builder(cfg, info)
    loss = parts.loss_module.to(cfg.device)
    agent = loss.agent_net
    env = build_env(cfg, parts.env_transforms, agent)
    eval_env = build_env(cfg, parts.env_transforms, agent, num_envs=cfg.eval_episodes, seed=cfg.seed + 10_000)

    if cfg.td_lambda is not None:
        loss.make_value_estimator(ValueEstimators.TDLambda, gamma=cfg.gamma, lmbda=cfg.td_lambda)
    else:
        loss.make_value_estimator(ValueEstimators.TD0, gamma=cfg.gamma)
    updater = (FusedSoftUpdate(loss, tau=cfg.target_update) if cfg.target_update < 1
               else HardUpdate(loss, value_network_update_interval=int(cfg.target_update)))
    params = list(loss.parameters()) + [p for m in parts.extra_modules.values() for p in m.parameters()]
    # fused Adam / foreach RMSprop: one kernel over all tensors instead of a Python loop per tensor
    # (Adam step 1.3 -> 0.3 ms for a 2x256 QMIX on CPU, benchmarks/RESULTS.md)
    optim = (torch.optim.Adam(params, lr=cfg.lr, fused=_fused_ok(params)) if cfg.optimizer == "adam"
             else torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-5, foreach=True))
    greedy, explore = make_agent_policies(agent, action_mask=info.has_action_mask, eps_init=cfg.eps_start,
                                          eps_end=cfg.eps_end, group=info.group)
    egreedy = explore[-1]

    recurrent = agent.is_recurrent
    T = cfg.frames_per_batch // cfg.num_envs
    seq_len = (cfg.seq_len or T) if recurrent else 1
    if recurrent and T % seq_len:
        raise ValueError(f"seq_len ({seq_len}) must divide frames_per_batch / num_envs ({T}).")
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(max(1, cfg.buffer_size // seq_len), device=cfg.device),
        sampler=RandomSampler(),
        batch_size=max(1, cfg.batch_size // seq_len),
    )

    frames, updates, next_eval = 0, 0, float(cfg.eval_every or math.inf)
    if resume_state is not None:
        restore_modules(resume_state, loss, optim, parts.extra_modules)
        if resume_state["replay_buffer"] is not None:
            restore_buffer(rb, resume_state["replay_buffer"])
        frames, updates, next_eval = resume_state["frames"], resume_state["updates"], resume_state["next_eval"]
        if resume_state["updater_counter"] is not None:
            updater.counter = resume_state["updater_counter"]
        if frames >= cfg.frames:
            raise ValueError(f"The run in {cfg.resume} already reached {frames} frames (frames={cfg.frames}); "
                             "raise it with --set frames=N to train further.")
    env_fn = functools.partial(build_env, cfg, parts.env_transforms, agent)  # picklable, for worker processes
    if cfg.collector == "async":  # seeded in its worker; resumed runs start fresh episodes there (not bitwise)
        collector = _OverlapCollector(cfg, env_fn, explore, frames0=frames,
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
    columns = METRIC_COLUMNS + [c for c in parts.metric_columns if c not in METRIC_COLUMNS]
    files = _RunFiles(out_dir, cfg, columns, keep_rows=rows_before if resume_state is not None else None)
    metrics: list[dict] = []
    t0 = time.perf_counter()
    frames_at_start = frames
    next_ckpt = (frames // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else math.inf
    bar = _progress(cfg, initial=frames)
    stop = _StopSignal()

    def checkpoint() -> None:
        if cfg.collector == "single":  # episode boundary: identical in resumed and uninterrupted runs
            collector.set_seed(cfg.seed + frames)
            collector.reset()  # (worker collectors restart fresh on resume instead: resumable, not bitwise)
        save_checkpoint(out_dir / CHECKPOINT, cfg=cfg, loss=loss, optimizer=optim, extra_modules=parts.extra_modules,
                        replay_buffer=rb, frames=frames, updates=updates, updater=updater,
                        metrics_rows=rows_before + len(metrics), next_eval=next_eval)

    interrupted = False
    check_inputs = bool(getattr(loss, "check_inputs", False))
    try:
        egreedy.eps.fill_(epsilon_at(cfg, frames))
        t_iter = time.perf_counter()  # collect_time/update_time: where each batch's wall time went
        cpu0 = time.process_time()  # cpu_time: this process's CPU seconds (+ the async worker's collecting)
        for batch in collector:  # [num_envs, T]
            t_collected = time.perf_counter()
            if batch.ndim == 3:  # multi-process collectors stack workers: [workers, num_envs, T]
                batch = batch.reshape(-1, batch.shape[-1])  # [workers * num_envs, T]
            _check_finite(batch, frames)
            frames += batch.numel()
            stored = _to_storage(batch, recurrent, seq_len)
            rb.extend(stored)
            if check_inputs:  # validate each transition once, as it enters the buffer (not per minibatch)
                loss.read_batch(stored)
            extra = parts.after_batch(batch, frames) if parts.after_batch else {}
            losses = []
            if frames >= cfg.learning_starts:
                loss.check_inputs = False  # every stored transition was validated above
                for sample in _minibatches(rb, cfg.updates_per_batch):
                    out = loss(sample)
                    optim.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    optim.step()
                    updater.step()
                    updates += 1
                    losses.append(out["loss"].detach())
            t_updated = time.perf_counter()
            eps = epsilon_at(cfg, frames)
            egreedy.eps.fill_(eps)
            if cfg.collector in ("multi", "ray"):
                collector.update_policy_weights_()  # new weights and ε to the workers
            # (collector="async" takes weights and ε when it starts the next batch, see _OverlapCollector)
            done = batch["next", "done"].squeeze(-1)  # [num_envs, T]
            ep_returns = batch["next", "episode_reward"].squeeze(-1)[done]  # [episodes]
            eval_return = float("nan")
            if frames >= next_eval:
                eval_return = evaluate(greedy, eval_env, seed=cfg.seed + 10_000)["eval_return"]
                next_eval += cfg.eval_every
            elapsed = time.perf_counter() - t0
            row = {
                "frames": frames,
                "updates": updates,
                "eps": eps,
                "loss": torch.stack(losses).mean().item() if losses else float("nan"),
                "train_return": ep_returns.mean().item() if ep_returns.numel() else float("nan"),
                "episodes": int(ep_returns.numel()),
                "eval_return": eval_return,
                "fps": (frames - frames_at_start) / elapsed,
                "time": elapsed,
                "collect_time": t_collected - t_iter,
                "update_time": t_updated - t_collected,
                "cpu_time": time.process_time() - cpu0 + getattr(collector, "worker_cpu_s", 0.0),
                "rss_mb": _rss_mb(),
                **extra,
            }
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
        if check_inputs:
            loss.check_inputs = True
        bar.close()
        collector.shutdown()
        files.close()
    wall = time.perf_counter() - t0
    final = evaluate(greedy, eval_env, seed=cfg.seed + 10_000)
    summary = {
        "algo": cfg.algo,
        "env": cfg.env,
        "seed": cfg.seed,
        "frames": frames,
        "updates": updates,
        "wall_time_s": wall,
        "frames_per_s": (frames - frames_at_start) / wall if wall > 0 else float("nan"),
        "final_eval_return": final["eval_return"],
        "final_eval_return_std": final["eval_return_std"],
        "eval_episodes": cfg.eval_episodes,
        "interrupted": interrupted,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        plot_runs([out_dir], out_dir / "learning_curve.png", title=f"{cfg.algo} on {cfg.env}")
    except Exception as err:  # a plotting failure must never lose a finished run
        summary["plot_error"] = repr(err)
    return TrainResult(greedy, loss, env, metrics, summary, out_dir, explore, parts, info)


class _StopSignal:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current batch and stops."""

    def __init__(self):
        self.requested = False
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; nan elsewhere), for long-run health checks."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def make_collector(cfg: TrainConfig, env, env_fn, policy, total_frames: int):
    """torchrl's ``Collector``: in this process, or ``num_workers`` processes / Ray actors (``cfg.collector``)."""
    common = dict(frames_per_batch=cfg.frames_per_batch, total_frames=total_frames, device=cfg.device,
                  auto_register_policy_transforms=False)  # agents add their own env transforms
    if cfg.collector == "single":
        return Collector(env, policy, **common)
    if cfg.collector == "multi":
        return Collector([env_fn] * cfg.num_workers, policy, backend="process", sync=True, **common)
    try:
        import ray  # noqa: F401
    except ImportError as err:
        raise ImportError("collector='ray' needs Ray: pip install 'torchrl-vd[ray]'") from err
    common.pop("auto_register_policy_transforms")  # an option of the per-actor collectors here
    return Collector(env_fn, policy, backend="ray", num_collectors=cfg.num_workers, sync=True,
                     backend_options={"ray_init_config": _ray_init_config(cfg),
                                      "collector_kwargs": {"auto_register_policy_transforms": False}}, **common)


class _OverlapCollector:
    """``collector="async"``: a worker process collects batch k+1 while ``train()`` learns on batch k.

    A double buffer with a fixed lag of one batch: when batch k arrives, the worker is sent the learner's
    weights at that moment (trained on batches up to k-1) and ε = ``epsilon_at(frames after batch k)``,
    the single collector's schedule, and starts batch k+1 at once; ``train()`` then runs its updates on
    batch k. The worker acts with its own policy copy, written only between its batches from a
    shared-memory snapshot that this process refreshes only while the worker waits, so acting never
    reads weights the optimizer is writing. Iteration time is about max(collect, learn) instead of the sum.

    Why not torchrl's pieces: ``Collector.start()`` runs in a thread, and a thread does not overlap
    here (VMAS stepping and the learner both hold the GIL: 60 balance envs + 200 QMIX steps took
    3.5-4.2 s overlapped in threads vs 3.1-4.1 s one after the other, benchmarks/RESULTS.md §6); the
    asynchronous multi-process collector (``Collector([...], sync=False)``) applies new weights from a
    receiver thread in the middle of the worker's rollout and sends ε a batch late, so a batch mixes
    weights and the lag is not fixed. The worker itself runs torchrl's single-process ``Collector``.
    """

    echo_weights = False  # tests: the worker returns the weights it acted with next to each batch

    def __init__(self, cfg: TrainConfig, env_fn, policy, frames0: int, seed: int):
        import copy

        from tensordict import TensorDict

        ctx = torch.multiprocessing.get_context("spawn")  # torchrl's default too; fork is unsafe with threads
        self.cfg, self.policy, self.frames0 = cfg, policy, frames0
        self.total = cfg.frames - frames0
        self.frames = 0  # collected by this collector
        self.requested = 0  # frames asked of the worker
        self.in_flight = False
        self.worker_cpu_s = 0.0  # the worker's CPU seconds spent collecting (train() adds it to cpu_time)
        self.history: list[dict] = []  # with echo_weights: what was sent and what the worker acted with
        # Copies for the worker (env_fn holds the agent for its env transforms): pickling for spawn moves
        # tensors to shared memory in place, so the learner's own parameters must never be pickled.
        worker_env_fn, worker_policy = copy.deepcopy((env_fn, policy))
        self._weights = TensorDict.from_module(policy).data.clone().share_memory_()  # the double buffer
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_overlap_worker, daemon=True, name="torchrl_vd-async-collector",
            args=(child, worker_env_fn, worker_policy, self._weights, cfg.frames_per_batch, cfg.device,
                  torch.get_num_threads(), seed))
        try:
            self._proc.start()
        except (AttributeError, TypeError, pickle.PicklingError) as err:  # e.g. a lambda among env transforms
            self._conn.close()
            child.close()
            raise ValueError(
                f"collector='async' builds the env and the policy in a worker process, so both must be picklable "
                f"({err}). Use collector='single', or make the algorithm's env_transforms module-level functions "
                "or functools.partial objects."
            ) from err
        child.close()
        self._receive()  # "ready": the worker built its env (startup is setup, as building the env is for single)
        self._request()  # batch 1 with the current weights (fresh or restored from a checkpoint)

    def _request(self) -> None:
        """Start the worker's next batch with the learner's current weights and ε(frames so far)."""
        from tensordict import TensorDict

        self._weights.update_(TensorDict.from_module(self.policy).data)  # the worker is waiting: no reader now
        eps = epsilon_at(self.cfg, self.frames0 + self.frames)
        self._conn.send(("collect", eps, self.echo_weights))
        if self.echo_weights:
            self.history.append({"frames": self.frames0 + self.frames, "eps": eps, "sent": self._weights.clone()})
        self.requested += self.cfg.frames_per_batch
        self.in_flight = True

    def _receive(self) -> TensorDictBase:
        while not self._conn.poll(1.0):
            if not self._proc.is_alive():
                raise RuntimeError(f"The collector='async' worker process died (exit code {self._proc.exitcode}) "
                                   "without an error message; rerun with collector='single' to see the env's error.")
        try:
            kind, payload, cpu_s, acted = self._conn.recv()
        except (EOFError, OSError) as err:
            raise RuntimeError(f"The collector='async' worker process closed its pipe ({err!r}); with the 'spawn' "
                               "start method a script must call train() under `if __name__ == '__main__':`.") from None
        self.in_flight = False
        if kind == "error":
            raise RuntimeError(f"The collector='async' worker failed:\n{payload}")
        self.worker_cpu_s += cpu_s
        if kind == "ready":
            return None
        if acted is not None:
            self.history[-1]["acted"] = acted
        return payload

    def __iter__(self):
        while self.frames < self.total:
            batch = self._receive()  # [num_envs, T]
            self.frames += batch.numel()
            if self.requested < self.total:
                self._request()  # batch k+1 starts now, while the caller trains on batch k
            yield batch

    def shutdown(self) -> None:
        """Stop the worker: at once if it is mid-batch (nothing it holds needs saving), else politely."""
        if self._proc.is_alive():
            if not self.in_flight:
                try:
                    self._conn.send(("close", 0.0, False))
                    self._proc.join(timeout=10)
                except (BrokenPipeError, OSError):
                    pass  # the worker already closed its end: the kill below covers a process still alive
            if self._proc.is_alive():
                self._proc.kill()  # it ignores SIGTERM (see _overlap_worker)
                self._proc.join(timeout=10)
        self._conn.close()


def _overlap_worker(conn, env_fn, policy, weights, frames_per_batch: int, device: str, threads: int, seed: int):
    """``_OverlapCollector``'s process: torchrl's ``Collector`` stepping the envs one batch per request."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the trainer's to handle: it checkpoints, then stops us (SIGKILL)
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(threads)
    try:
        from tensordict import TensorDict

        torch.manual_seed(seed)  # ε-greedy draws and env resets of this process
        acting = TensorDict.from_module(policy).data  # this process's policy copy, written only between batches
        collector = Collector(env_fn(), policy, frames_per_batch=frames_per_batch, total_frames=-1, device=device,
                              auto_register_policy_transforms=False)
        collector.set_seed(seed)
        batches = iter(collector)
        conn.send(("ready", None, 0.0, None))
        while True:
            msg, eps, echo = conn.recv()
            if msg == "close":
                break
            acting.update_(weights)  # the learner's snapshot; the trainer writes it only while we wait here
            policy[-1].eps.fill_(eps)
            cpu = time.process_time()
            batch = next(batches)  # [num_envs, T]
            conn.send(("batch", batch, time.process_time() - cpu, acting.clone() if echo else None))
        collector.shutdown()
    except Exception:
        import traceback

        conn.send(("error", traceback.format_exc(), 0.0, None))
    finally:
        conn.close()


def _ray_init_config(cfg: TrainConfig) -> dict:
    """Join the cluster named by ``RAY_ADDRESS`` when set (README "Beyond one machine"), else start a local Ray."""
    address = os.environ.get("RAY_ADDRESS")
    return {"address": address} if address else {"num_cpus": max(2, cfg.num_workers)}


def _check_finite(batch: TensorDictBase, frames_before: int) -> None:
    """Refuse NaN/inf rewards or observations from the env, naming the env index and step where they appeared."""
    for key in (("next", "reward"), ("next", "agents", "observation"), ("next", "state")):
        x = batch.get(key, None)
        if x is not None and x.is_floating_point() and not torch.isfinite(x).all():
            env_idx, t = (~torch.isfinite(x)).nonzero()[0, :2].tolist()
            raise ValueError(
                f"Non-finite {'/'.join(key[1:])} from env {env_idx} at step {t} of the batch starting at frame "
                f"{frames_before} (value {x[env_idx, t].flatten()[~torch.isfinite(x[env_idx, t].flatten())][0].item()}); "
                "not training on it. Check the environment (or its reward function) at that step."
            )


def _minibatches(rb: TensorDictReplayBuffer, n: int, chunk: int = 32):
    """``n`` minibatches of ``rb.batch_size``, drawn ``chunk`` at a time with one storage gather each.

    With uniform sampling (``RandomSampler``: i.i.d. indices with replacement) and no writes in between,
    ``chunk`` draws of B have the same distribution as one draw of ``chunk * B`` split in ``chunk``; one
    gather replaces ``chunk`` calls through the buffer's sampler/storage/TensorDict indexing machinery
    (0.4 of ~11 ms per QMIX step on CPU, benchmarks/RESULTS.md). Other samplers (e.g. prioritized,
    whose priorities change after each step) draw one minibatch per update.
    """
    if type(rb.sampler) is not RandomSampler:
        for _ in range(n):
            yield rb.sample()
        return
    while n > 0:
        k = min(n, chunk)
        with warnings.catch_warnings():  # sample(batch_size=) differs from the constructor's on purpose
            warnings.filterwarnings("ignore", message="Got conflicting batch_sizes")
            big = rb.sample(batch_size=k * rb.batch_size)
        yield from big.split(rb.batch_size)
        n -= k


def _fused_ok(params) -> bool:
    """torch's fused Adam runs on CPU and CUDA floating-point tensors (torch >= 2.4)."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def _to_storage(batch: TensorDictBase, recurrent: bool, seq_len: int) -> TensorDictBase:
    """Transitions [num_envs*T] for feed-forward agents; sequences [num_envs*T/L, L] for recurrent ones."""
    if not recurrent:
        return batch.reshape(-1)  # [num_envs, T] -> [num_envs * T]
    n, T = batch.shape
    return batch.reshape(n, T // seq_len, seq_len).reshape(-1, seq_len)  # [num_envs * T/L, L]


class _progress:
    """tqdm bar with frames, frames/s, recent return, loss and ε (no-op when ``progress=False``)."""

    def __init__(self, cfg: TrainConfig, initial: int = 0):
        self.bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.frames, initial=initial, unit="frames", desc=f"{cfg.algo} {cfg.env}",
                            dynamic_ncols=True)

    def update(self, n: int, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(ret=f"{row['train_return']:.3g}", loss=f"{row['loss']:.3g}", eps=f"{row['eps']:.2f}",
                                 fps=f"{row['fps']:.0f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
