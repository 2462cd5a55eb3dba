"""``train(TrainConfig)``: the one training loop, for one seed or many in one process (``TrainConfig.seeds``).

The loop wires parts that each live in their own module: every seed's networks and the algorithm's extras
(population.py, built through the algorithm table), the trainer's env (environment.py), a torchrl ``Collector``
variant (collectors.py), the learner (learner.py), greedy evaluation (evaluation.py), the run directory's files
(run_files.py) and checkpoints (checkpoint.py). N seeds share one env batch of N x ``num_envs`` envs (seed k's are
rows k·num_envs … (k+1)·num_envs − 1), one collector and one learner; each seed keeps its own run directory, as a
lone run of that seed would write it. One seed is a lone run.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import torch

from torchrl_vd.modules.policies import make_agent_policies
from torchrl_vd.train.algos import get_algo
from torchrl_vd.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from torchrl_vd.train.collectors import NoCollector, OverlapCollector, make_collector, watch_workers, worker_errors
from torchrl_vd.train.config import ConfigError, TrainConfig
from torchrl_vd.train.environment import build_env
from torchrl_vd.train.evaluation import NO_EVAL, greedy_rollout, igm_gap, return_stats, win_stats
from torchrl_vd.train.guards import NonFiniteUpdate, StopSignal, check_finite, non_finite_weights
from torchrl_vd.train.memory import check_memory
from torchrl_vd.train.plot import draw_beside
from torchrl_vd.train.population import build_population, seed_config
from torchrl_vd.train.result import SeedsResult, TrainResult
from torchrl_vd.train.resume import resume_problems
from torchrl_vd.train.run_lock import RunLock
from torchrl_vd.train.run_files import Progress, RunFiles, atomic_write_text, check_run_dir, metric_columns, metric_row
from torchrl_vd.train.stats import t_interval
from torchrl_vd.train.threads import set_default_threads

EVAL_SEED_OFFSET = 10_000
"""Greedy evaluation plays envs seeded ``seed + EVAL_SEED_OFFSET``: the same initial states at every evaluation."""


def train(cfg: TrainConfig) -> TrainResult | SeedsResult:
    """Train ``cfg.algo`` on ``cfg.env``; write metrics.csv, summary.json, checkpoint and PNG to the run directory.

    With ``cfg.seeds``: one run directory per seed under ``out_dir`` (``seed_<k>``), the aggregate summary and
    plot beside them, and a :class:`SeedsResult`.
    """
    cfg.check_runtime()  # e.g. device="cuda" on a machine without CUDA
    set_default_threads(cfg.threads)
    if cfg.seeds:
        return _train_seeds(cfg)
    out = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-{cfg.seed}")
    return Training([cfg], [out]).run()[0]


def _train_seeds(cfg: TrainConfig) -> SeedsResult:
    """``cfg.seeds`` in one process: every seed's run, then ``out_dir/summary.json`` (their final greedy returns,
    mean and 95% Student-t interval) and ``out_dir/learning_curve.png`` (every seed's curve)."""
    out = Path(cfg.out_dir or f"runs/{cfg.algo}-{cfg.env.replace('/', '_')}-seeds")
    check_run_dir(out, cfg.resume)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))  # what `--resume out` reads
    t0 = time.perf_counter()
    runs = [seed_config(cfg, k, out) for k in cfg.seeds]
    png = out / "learning_curve.png"  # drawn with the seeds' own PNGs, beside the final evaluation
    training = Training(runs, [Path(run.out_dir) for run in runs],
                        aggregate_png=(png, f"{cfg.algo} on {cfg.env}, seeds {', '.join(map(str, cfg.seeds))}"))
    results = training.run()
    summary = aggregate_summary(cfg, results, time.perf_counter() - t0)
    if str(png) in training.plot_errors:  # a plotting failure must never lose finished runs
        summary["plot_error"] = training.plot_errors[str(png)]
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return SeedsResult(results, summary, out)


def aggregate_summary(cfg: TrainConfig, runs: list[TrainResult], wall: float) -> dict:
    """out_dir/summary.json: all seeds' final greedy returns, their mean and the 95% Student-t half-width."""
    finals = [r.summary["final_eval_return"] for r in runs]
    try:
        mean, half = t_interval(finals)
    except ImportError:  # SciPy is the `reproduce` extra: the mean without its interval
        mean, half = float(sum(finals) / len(finals)), math.nan
    trained = sum(r.summary["frames_per_s"] * r.summary["wall_time_s"] for r in runs)  # frames trained here
    summary = {
        "algo": cfg.algo, "env": cfg.env, "seeds": list(cfg.seeds), "vectorized": len(runs) > 1,
        "frames": runs[0].summary["frames"],  # per seed
        "wall_time_s": wall,
        "seed_frames_per_s": trained / wall if wall > 0 else math.nan,
        "final_eval_return": mean, "final_eval_return_ci95": half, "final_eval_return_per_seed": finals,
        "run_dirs": [str(r.out_dir) for r in runs],
        "interrupted": any(r.summary["interrupted"] for r in runs),
    }
    for key in ("final_igm_violation_rate", "final_igm_value_gap", "final_eval_win_rate"):
        if all(key in r.summary for r in runs):
            summary[key] = sum(r.summary[key] for r in runs) / len(runs)  # mean over seeds
    return summary


class Training:
    """One training run of N >= 1 seeds: build, restore, collect and update, evaluate, checkpoint, finish.

    Args:
        runs: each seed's config (N = 1: the run's own config); they differ only in ``seed``, ``out_dir`` and
            ``resume``, the rest is shared.
        dirs: each seed's run directory.
        stacked: stack the networks even for one seed (the vmapped path at N = 1, which tests compare with a lone
            run); default: stacked for several seeds.
        aggregate_png: ``(path, title)`` of a PNG overlaying every seed's curves, drawn with the seeds' own PNGs;
            a failure to draw it is in :attr:`plot_errors` after :meth:`run`.
    """

    def __init__(self, runs: list[TrainConfig], dirs: list[Path], *, stacked: bool | None = None,
                 aggregate_png: tuple[Path, str] | None = None):
        self.cfg, self.runs, self.dirs = runs[0], runs, dirs
        self.aggregate_png, self.plot_errors = aggregate_png, {}
        for run, run_dir in zip(runs, dirs):
            check_run_dir(run_dir, run.resume)
        states = self._resume_states()
        if states is not None:  # settings that cannot change on resume, named before anything is built
            problems = resume_problems(states[0]["config"], runs[0])
            if problems:
                raise ConfigError(problems)
        self.pop = pop = build_population(runs, stacked=stacked)
        self.n, cfg, info = pop.n, self.cfg, pop.info
        agent, transforms = pop.loss.agent_net, pop.extras.env_transforms
        self.env = build_env(cfg, transforms, agent, num_envs=self.n * cfg.num_envs, seed=cfg.seed, base=pop.base_env)
        self.eval_env = build_env(cfg, transforms, agent, num_envs=self.n * cfg.eval_episodes,
                                  seed=cfg.seed + EVAL_SEED_OFFSET)
        time_steps = cfg.frames_per_batch // cfg.num_envs
        if get_algo(cfg.algo).learner is None:  # the replay buffer, before it is allocated
            check_memory(self.env, cfg, self.n, (cfg.seq_len or time_steps) if agent.is_recurrent else 1)
        self.learner = pop.make_learner(time_steps=time_steps)
        self.epsilon = self.learner.epsilon  # ε(frames): the replay learners' EpsilonSchedule, PQN's per update
        self.greedy, self.explore = make_agent_policies(
            pop.acting_net, action_mask=info.has_action_mask, eps_init=cfg.eps_start, eps_end=cfg.eps_start,
            group=info.group, keep_values=False)  # ε is set from `epsilon` only; no Q-values in the replay buffer
        self.frames, self.next_eval = 0, float(cfg.eval_every or math.inf)
        if states is not None:
            self._restore(states)
        self.collector = self._collector(resumed=states is not None)
        if states is not None:
            torch.set_rng_state(states[0]["torch_rng"])
        rows_before = states[0]["metrics_rows"] if states is not None else 0
        columns = metric_columns(info, pop.seed_parts[0].metric_columns)
        self.locks = []  # one writer per run directory, from its first write to the end of the run
        try:
            self.locks = [RunLock(d) for d in dirs]
            self.files = [RunFiles(d, run, columns, keep_rows=rows_before if cfg.resume else None)
                          for run, d in zip(runs, dirs)]
        except BaseException:
            self._release()
            raise
        self.rows_before, self.metrics = rows_before, [[] for _ in runs]
        self.last_eval: tuple[int, list[dict]] | None = None  # (frames, per-seed results) of the latest evaluation
        self.ckpt_stats = {"checkpoints": 0, "checkpoint_time_s": 0.0}
        self.last_checkpoint = states[0]["frames"] if states is not None else None  # frames of the latest one

    # ------------------------------------------------------------------ build and restore
    def _resume_states(self) -> list[dict] | None:
        """Every seed's checkpoint state, or None for a fresh start (a run killed before its first checkpoint
        starts again from frame 0, with a warning)."""
        if not self.cfg.resume:
            return None
        many = len(self.runs) > 1
        states = [load_checkpoint(run.resume, missing_ok=many or (Path(run.resume) / "config.json").exists())
                  for run in self.runs]
        if all(s is not None for s in states):
            return states
        warnings.warn(f"{self.cfg.resume}: {'not every seed has' if many else 'has no'} checkpoint yet (the run "
                      f"stopped before its first one, checkpoint_every={self.cfg.checkpoint_every}); starting "
                      f"{'all seeds' if many else 'it'} again from frame 0.", RuntimeWarning, stacklevel=5)
        return None

    def _restore(self, states: list[dict]) -> None:
        self.pop.load(self.learner, states)
        self.frames, self.next_eval = states[0]["frames"], states[0]["next_eval"]
        if states[0]["config"].get("eval_every") != self.cfg.eval_every:  # changed on resume: the new cadence
            every = self.cfg.eval_every
            self.next_eval = float((self.frames // every + 1) * every) if every else math.inf
        if self.frames >= self.cfg.frames and all((d / "summary.json").exists() for d in self.dirs):
            raise ValueError(f"The run in {self.cfg.resume} already reached {self.frames} frames "
                             f"(frames={self.cfg.frames}); raise it with --set frames=N to train further.")

    def _collector(self, resumed: bool):
        """The collector of the frames left; resumed runs restart at an episode boundary (see checkpoint.py)."""
        cfg, seed = self.cfg, self.cfg.seed
        if self.frames >= cfg.frames:  # killed after its final checkpoint, before summary.json: only the ending
            return NoCollector()
        if cfg.collector == "async":  # seeded in its worker; resumed runs start fresh episodes there (not bitwise)
            import functools

            env_fn = functools.partial(build_env, cfg, self.pop.extras.env_transforms, self.pop.loss.agent_net,
                                       num_envs=self.n * cfg.num_envs)  # N seeds: the joint env batch, as below
            return OverlapCollector(cfg, env_fn, self.explore, frames0=self.frames, epsilon=self.epsilon,
                                    seed=seed if not resumed else seed + self.frames, n_seeds=self.n)
        env_fn = None
        if cfg.collector in ("multi", "ray"):  # picklable env factory for the worker processes
            import functools

            env_fn = functools.partial(build_env, cfg, self.pop.extras.env_transforms, self.pop.loss.agent_net)
        collector = make_collector(cfg, self.env, env_fn, self.explore, frames_per_batch=self.n * cfg.frames_per_batch,
                                   total_frames=self.n * (cfg.frames - self.frames))
        collector.set_seed(seed + self.frames)
        if resumed and cfg.collector == "single":  # the same reset as the checkpoint's, then the saved RNG
            collector.reset()
        return collector

    # ------------------------------------------------------------------ the loop
    def run(self) -> list[TrainResult]:
        """Train to ``frames``, then evaluate and write every seed's summary; one :class:`TrainResult` per seed."""
        t0, frames_at_start = time.perf_counter(), self.frames
        self.bar = Progress(self.cfg, total=self.n * self.cfg.frames, initial=self.n * self.frames)
        next_ckpt = ((self.frames // self.cfg.checkpoint_every + 1) * self.cfg.checkpoint_every
                     if self.cfg.checkpoint_every else math.inf)
        stop, interrupted = StopSignal(), False
        try:
            try:
                self.explore[-1].eps.fill_(self.epsilon(self.frames))
                t_iter, cpu0 = time.perf_counter(), time.process_time()
                for batch in watch_workers(self.collector, self.cfg, self.dirs[0]):  # [N*num_envs, T]
                    self._step(batch, t_iter, cpu0, t0, frames_at_start)
                    if stop.requested:
                        interrupted = True
                        self._checkpoint()
                        break
                    if self.frames >= next_ckpt or self.frames >= self.cfg.frames:
                        self._checkpoint()  # periodic, and always at the end (same path: resumable identically)
                        next_ckpt += self.cfg.checkpoint_every
                    t_iter = time.perf_counter()
            finally:
                stop.restore()
                self.bar.close()
                self.collector.shutdown()
                for files in self.files:
                    files.close()
            return self._finish(time.perf_counter() - t0, frames_at_start, interrupted)
        finally:
            self._release()  # the run directories stay ours until their summaries are written

    def _release(self) -> None:
        for lock in self.locks:
            lock.release()

    def _step(self, batch, t_iter: float, cpu0: float, t0: float, frames_at_start: int) -> None:
        """One collected batch: store it, the algorithm's hooks, the updates, ε, an evaluation when due, the rows."""
        cfg, n = self.cfg, self.n
        t_collected = time.perf_counter()
        if batch.ndim == 3:  # multi-process collectors stack workers: [workers, num_envs, T]
            batch = batch.reshape(-1, batch.shape[-1])  # [workers * num_envs, T]
        check_finite(batch, n * self.frames)
        batch = batch.reshape(n, -1, batch.shape[-1])  # [N, num_envs, T]
        self.frames += batch[0].numel()
        self.learner.add(batch)
        extra = self.pop.after_batch(batch, self.frames)
        try:
            losses = self.learner.update(cfg.updates_per_batch) if self.frames >= cfg.learning_starts else []  # [N] each
        except NonFiniteUpdate as err:
            raise NonFiniteUpdate(self._diverged(f"{err}, in the updates after the batch that reached frame "
                                                 f"{self.frames}")) from None
        t_updated = time.perf_counter()
        eps = self.epsilon(self.frames)
        self.explore[-1].eps.fill_(eps)
        if cfg.collector in ("multi", "ray"):
            with worker_errors(self.collector, cfg, self.dirs[0]):
                self.collector.update_policy_weights_()  # new weights and ε to the workers
        # (collector="async" takes weights and ε when it starts the next batch, see OverlapCollector)
        evaluation = [dict(NO_EVAL)] * n
        if self.frames >= self.next_eval:
            self.last_eval = (self.frames, self.evaluate())
            evaluation = [{k: v for k, v in e.items() if k in NO_EVAL} for e in self.last_eval[1]]  # the csv columns
            self.next_eval += cfg.eval_every
        elapsed = time.perf_counter() - t0
        loss = torch.stack(losses).mean(0).reshape(n) if losses else None  # [N]
        cpu = time.process_time() - cpu0 + getattr(self.collector, "worker_cpu_s", 0.0)
        for k in range(n):
            row = metric_row(batch[k], frames=self.frames, updates=self.learner.updates, eps=eps,
                             loss=None if loss is None else loss[k], evaluation=evaluation[k],
                             fps=(self.frames - frames_at_start) / elapsed, elapsed=elapsed,
                             times=(t_iter, t_collected, t_updated), cpu_time=cpu, extra=extra[k],
                             skipped_updates=self.learner.skipped_updates)
            self.metrics[k].append(row)
            self.files[k].log(row)
        self.bar.update(batch.numel(), self.metrics[0][-1])

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """Per seed: greedy return and std over its ``eval_episodes`` envs, its win rate where the env marks won
        episodes, and (``igm_eval``) the IGM gap of its joint value on the evaluated states."""
        cfg, n, episodes = self.cfg, self.n, self.cfg.eval_episodes
        roll, returns, valid = greedy_rollout(self.greedy, self.eval_env, seed=cfg.seed + EVAL_SEED_OFFSET)
        roll = roll.reshape(n, episodes, -1)  # [N*E, T] -> [N, E, T]
        returns, valid = returns.reshape(n, episodes), valid.reshape(n, episodes, -1)  # [N, E], [N, E, T]
        outs = []
        for k in range(n):
            out = {**NO_EVAL, **return_stats(returns[k]), **win_stats(roll[k], valid[k])}
            if cfg.igm_eval:
                with self.pop.seed_scope(k):
                    out.update(igm_gap(self.pop.loss, roll[k], valid[k], cfg.igm_max_joint_actions,
                                       cfg.igm_max_states))
            outs.append(out)
        return outs

    def _checkpoint(self) -> None:
        """Every seed's checkpoint, at an episode boundary: the envs are reseeded with ``seed + frames`` and reset,
        in the uninterrupted run as in the resumed one (worker collectors restart fresh on resume instead)."""
        t = time.perf_counter()
        bad = non_finite_weights(self.learner.loss.named_parameters())
        if bad:  # an optimizer step overflowed: the last good checkpoint must not be overwritten
            raise NonFiniteUpdate(self._diverged(f"non-finite weights ({', '.join(bad[:3])}) at frame {self.frames}"))
        if self.cfg.collector == "single":
            self.collector.set_seed(self.cfg.seed + self.frames)
            self.collector.reset()
        for k, (run, run_dir) in enumerate(zip(self.runs, self.dirs)):
            self.files[k].sync()  # the rows the checkpoint counts are on disk before it is
            save_checkpoint(run_dir / CHECKPOINT, cfg=run, learner_state=self.learner.seed_state_dict(k),
                            extra_modules=self.pop.seed_parts[k].extra_modules, frames=self.frames,
                            metrics_rows=self.rows_before + len(self.metrics[k]), next_eval=self.next_eval)
        self.ckpt_stats["checkpoints"] += 1
        self.ckpt_stats["checkpoint_time_s"] += time.perf_counter() - t
        self.last_checkpoint = self.frames

    def _diverged(self, detail: str) -> str:
        """The message of a run stopped because something became non-finite: what, where, what was kept, the fix."""
        cfg, where = self.cfg, self.dirs[0] if self.n == 1 else self.dirs[0].parent
        kept = (f"the last checkpoint, at frame {self.last_checkpoint}, holds finite weights and was kept: "
                f"`torchrl-vd train --resume {where} --set lr=...` continues from it"
                if self.last_checkpoint is not None else "no checkpoint had been written yet")
        return (f"Training diverged: {detail}. Nothing non-finite was applied, logged or checkpointed: metrics.csv "
                f"ends at the previous batch, and {kept}. Lower lr (now {cfg.lr}), clip gradients (grad_clip, now "
                f"{cfg.grad_clip}) or check the env's rewards; or set on_non_finite='skip' to drop such minibatches "
                "(counted in metrics.csv's skipped_updates).")

    # ------------------------------------------------------------------ the ending
    def _finish(self, wall: float, frames_at_start: int, interrupted: bool) -> list[TrainResult]:
        """The final evaluation (drawing the PNGs meanwhile), each seed's summary.json and result."""
        cfg, info = self.cfg, self.pop.info
        pngs = [d / "learning_curve.png" for d in self.dirs]
        title = f"{cfg.algo} on {cfg.env}" + ("" if self.n == 1 else ", seed {}")
        jobs = [([d], png, title.format(run.seed)) for run, d, png in zip(self.runs, self.dirs, pngs)]
        written = draw_beside(jobs + ([(self.dirs, *self.aggregate_png)] if self.aggregate_png else []))
        # The greedy policy is evaluated once per set of weights: an evaluation after the last batch's updates
        # (eval_every dividing frames) is the final one, on the same env and seed.
        last = self.last_eval
        finals = last[1] if last is not None and last[0] == self.frames else self.evaluate()
        results = []
        for k, (run, run_dir) in enumerate(zip(self.runs, self.dirs)):
            final = finals[k]
            summary = {
                "algo": cfg.algo, "env": cfg.env, "seed": run.seed, "frames": self.frames,
                "updates": self.learner.updates, "skipped_updates": self.learner.skipped_updates,
                "wall_time_s": wall,  # of the whole process
                "frames_per_s": (self.frames - frames_at_start) / wall if wall > 0 else float("nan"),
                "final_eval_return": final["eval_return"], "final_eval_return_std": final["eval_return_std"],
                "eval_episodes": cfg.eval_episodes,
                **({"final_eval_win_rate": final["eval_win_rate"]} if info.has_battle_won else {}),
                **({"final_igm_violation_rate": final["igm_violation_rate"],
                    "final_igm_value_gap": final["igm_value_gap"]} if cfg.igm_eval else {}),
                "interrupted": interrupted,
                **({"vectorized_seeds": [r.seed for r in self.runs]} if self.n > 1 else {}),
                **self.ckpt_stats,  # periodic checkpoints: how many, and the wall time they took (of wall_time_s)
            }
            self.files[k].write_summary(summary)
            results.append(self._result(k, summary, run_dir))
        errors = self.plot_errors = written()
        for png, result in zip(pngs, results):
            if str(png) in errors:  # a plotting failure must never lose a finished run
                result.summary["plot_error"] = errors[str(png)]
        return results

    def _result(self, k: int, summary: dict, run_dir: Path) -> TrainResult:
        """Seed ``k``'s :class:`TrainResult`: its own trained loss module and greedy policy."""
        pop = self.pop
        if pop.stack is None:
            greedy, explore = self.greedy, self.explore
        else:
            greedy, explore = make_agent_policies(pop.trained_loss(k).agent_net, action_mask=pop.info.has_action_mask,
                                                  group=pop.info.group)
        return TrainResult(greedy, pop.trained_loss(k), self.env, self.metrics[k], summary, run_dir, explore,
                           pop.seed_parts[k], pop.info)


__all__ = ["Training", "aggregate_summary", "train"]
