"""Collectors for ``train()``: torchrl's ``Collector`` in this process, in worker processes, on Ray, and
:class:`OverlapCollector` (``collector="async"``), which overlaps collection with learning.

Every variant yields batches ``[num_envs, T]`` (multi-process ones ``[workers, num_envs, T]``) and has
``shutdown()``; ``train()`` pushes weights and ε to worker collectors after each batch.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import time
from pathlib import Path

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector

from torchrl_vd.train.learner import EpsilonSchedule
from torchrl_vd.train.threads import fork_is_safe, ray_workers_at_normal_priority


def make_collector(cfg, env, env_fn, policy, *, frames_per_batch: int, total_frames: int):
    """torchrl's ``Collector``: in this process, or ``num_workers`` processes / Ray actors (``cfg.collector``).

    ``frames_per_batch`` / ``total_frames`` count every env of ``env`` (N seeds: N x a seed's)."""
    common = dict(frames_per_batch=frames_per_batch, total_frames=total_frames, device=cfg.device,
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


class OverlapCollector:
    """``collector="async"``: a worker process collects batch k+1 while ``train()`` learns on batch k.

    A double buffer with a fixed lag of one batch: when batch k arrives, the worker is sent the learner's
    weights at that moment (trained on batches up to k-1) and ε = ε(frames after batch k) (:class:`EpsilonSchedule`),
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
    start_method = "auto"  # "fork", "spawn", or "auto": see _start_method

    @classmethod
    def _start_method(cls, device: str) -> str:
        """``fork`` where it is safe (:func:`~torchrl_vd.train.threads.fork_is_safe`), else ``spawn`` (torchrl's
        default). A spawned worker imports torch, torchrl and the simulator again before it can build its env:
        3-7 s of CPU on this project's 2-core box, all of it before the first batch (benchmarks/RESULTS.md §6);
        a forked one starts from this process's modules at once."""
        if cls.start_method != "auto":
            return cls.start_method
        return "fork" if fork_is_safe(device) else "spawn"

    def __init__(self, cfg, env_fn, policy, frames0: int, seed: int, epsilon: EpsilonSchedule, n_seeds: int = 1):
        import copy

        self.start_method = self._start_method(cfg.device)
        ctx = torch.multiprocessing.get_context(self.start_method)
        self.cfg, self.policy, self.frames0, self.epsilon, self.n_seeds = cfg, policy, frames0, epsilon, n_seeds
        self.total = cfg.frames - frames0  # frames, here and below, count one seed's (its rows of the batch)
        self.frames = 0  # collected by this collector
        self.requested = 0  # frames asked of the worker
        self.in_flight = False
        self.worker_cpu_s = 0.0  # the worker's CPU seconds spent collecting (train() adds it to cpu_time)
        self.history: list[dict] = []  # with echo_weights: what was sent and what the worker acted with
        # Copies for the worker (env_fn holds the agent for its env transforms): pickling for spawn moves
        # tensors to shared memory in place, so the learner's own parameters must never be pickled (a fork
        # copies this process: the worker then uses its own copies too).
        worker_env_fn, worker_policy = copy.deepcopy((env_fn, policy))
        self._weights = acting_weights(policy).clone().share_memory_()  # the double buffer
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_overlap_worker, daemon=True, name="torchrl_vd-async-collector",
            args=(child, worker_env_fn, worker_policy, self._weights, n_seeds * cfg.frames_per_batch, cfg.device,
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
        self._weights.update_(acting_weights(self.policy))  # the worker is waiting: no reader now
        eps = self.epsilon(self.frames0 + self.frames)
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
            batch = self._receive()  # [N * num_envs, T] for N seeds
            self.frames += batch.numel() // self.n_seeds
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


def acting_weights(policy) -> TensorDictBase:
    """Every tensor ``policy`` acts with, as views (writing them in place changes how it acts): its parameters
    and buffers, and those that modules hold outside the module tree through ``acting_weights()``
    (:class:`~torchrl_vd.train.population.SeedAgents`: the stacked seeds' networks belong to the learner, so they
    are not registered as its submodules and ``TensorDict.from_module`` alone does not see them)."""
    from tensordict import TensorDict

    weights = {"policy": TensorDict.from_module(policy).data}
    for i, module in enumerate(m for m in policy.modules() if hasattr(m, "acting_weights")):
        weights[f"outside_{i}"] = module.acting_weights()
    return TensorDict(weights)


def _overlap_worker(conn, env_fn, policy, weights, frames_per_batch: int, device: str, threads: int, seed: int):
    """``_OverlapCollector``'s process: torchrl's ``Collector`` stepping the envs one batch per request."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the trainer's to handle: it checkpoints, then stops us (SIGKILL)
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)  # ε-greedy draws and env resets of this process
        acting = acting_weights(policy)  # this process's policy copy, written only between batches
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


def _ray_init_config(cfg) -> dict:
    """Join the cluster named by ``RAY_ADDRESS`` when set (README "Beyond one machine"), else start a local Ray."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        ray_workers_at_normal_priority()  # the collecting workers compete with the learner as equals
    return {"address": address} if address else {"num_cpus": max(2, cfg.num_workers)}


class NoCollector:
    """Stands in for the collector when a resumed run has no frames left to collect (only its ending)."""

    def __iter__(self):
        return iter(())

    def shutdown(self) -> None:
        pass  # nothing was started: the run only writes its ending


def watch_workers(collector, cfg, out_dir: Path):
    """Iterate ``collector``; a dead worker process becomes an error naming it and the way to continue."""
    it = iter(collector)
    while True:
        with worker_errors(collector, cfg, out_dir):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch


@contextlib.contextmanager
def worker_errors(collector, cfg, out_dir: Path):
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


__all__ = ["NoCollector", "OverlapCollector", "acting_weights", "make_collector", "watch_workers", "worker_errors"]
