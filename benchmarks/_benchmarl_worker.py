"""BenchMARL 1.5.2 QMIX/VDN on a VMAS task, run with the BenchMARL venv's python by bench_e2e.py (speed)
and benchmarl_reference.py (returns for the ``vmas`` reproduction suite).

Standalone on purpose: BenchMARL 1.5.2 needs torchrl < 0.12, so this file must not import torchrl_vd
(torchrl 0.14). It prints one ``RESULT {json}`` line: wall time, per-iteration collection/training
times (from BenchMARL callbacks) and the greedy return of the trained policy, evaluated with the same
protocol as bench_e2e.py uses for the other variants (E envs, one 100-step episode each, per-agent
mean reward summed up to the first done, fixed seed).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=60)
    p.add_argument("--frames-per-batch", type=int, default=6000)
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-envs", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--task", default="balance", choices=["balance", "navigation", "sampling"])
    p.add_argument("--algo", default="qmix", choices=["qmix", "vdn"])
    a = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")

    import benchmarl
    from benchmarl.algorithms import QmixConfig, VdnConfig
    from benchmarl.environments import VmasTask
    from benchmarl.experiment import Callback, Experiment, ExperimentConfig
    from benchmarl.models.mlp import MlpConfig
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    frames = a.iters * a.frames_per_batch
    cfg = ExperimentConfig.get_from_yaml()
    cfg.sampling_device = cfg.train_device = cfg.buffer_device = "cpu"
    cfg.max_n_frames, cfg.max_n_iters = frames, None
    cfg.off_policy_collected_frames_per_batch = a.frames_per_batch
    cfg.off_policy_n_envs_per_worker = a.num_envs
    cfg.off_policy_n_optimizer_steps = a.updates
    cfg.off_policy_train_batch_size = a.batch_size
    cfg.off_policy_memory_size = frames  # holds every frame, like the other variants
    cfg.evaluation, cfg.render, cfg.loggers, cfg.create_json = False, False, [], False
    cfg.checkpoint_interval, cfg.checkpoint_at_end = 0, False
    cfg.save_folder = tempfile.mkdtemp(prefix="benchmarl_")
    task = getattr(VmasTask, a.task.upper()).get_from_yaml()  # e.g. balance: n_agents 4, max_steps 100
    # QMIX: mixing_embed_dim 32, l2, delay_value; VDN: l2, delay_value
    algo = (QmixConfig if a.algo == "qmix" else VdnConfig).get_from_yaml()
    model = MlpConfig.get_from_yaml()  # [256, 256]
    model.activation_class = torch.nn.ReLU  # torchrl_vd's MLPAgent uses ReLU: identical networks

    timer = _timer_class(Callback)()
    marks = timer.marks
    exp = Experiment(task=task, algorithm_config=algo, model_config=model, seed=a.seed, config=cfg,
                     callbacks=[timer])
    t0, cpu0 = time.perf_counter(), time.process_time()
    exp.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    starts = [t0] + marks["trained"][:-1]
    collect = [c - s for s, c in zip(starts, marks["collected"])]
    train = [t - c for c, t in zip(marks["collected"], marks["trained"])]

    env = task.get_env_fun(num_envs=a.eval_envs, continuous_actions=False, seed=a.eval_seed, device="cpu")()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = env.rollout(task.max_steps(env) if hasattr(task, "max_steps") else 100, exp.policy,
                           break_when_any_done=False)
    reward = roll["next", "agents", "reward"].mean(-2).squeeze(-1)  # [E, T] per-agent mean (BenchMARL's team reward)
    done = roll["next", "done"].squeeze(-1)
    first = done.long().cumsum(-1) - done.long()
    returns = (reward * (first == 0)).sum(-1)
    versions = {"benchmarl": benchmarl.__version__, "torchrl": __import__("torchrl").__version__,
                "tensordict": __import__("tensordict").__version__, "vmas": __import__("vmas").__version__,
                "torch": torch.__version__}
    print("RESULT " + json.dumps({
        "frames": frames, "wall_s": wall, "cpu_s": cpu, "collect_s": collect, "train_s": train,
        "grad_steps": a.updates * a.iters, "greedy_return": returns.mean().item(),
        "task": a.task, "algo": a.algo, "seed": a.seed, "task_config": dict(task.config),
        "anneal_frames": cfg.get_exploration_anneal_frames(False),
        "greedy_return_std": returns.std().item(), "versions": versions, "pid": os.getpid(),
    }), flush=True)


def _timer_class(base):
    """A BenchMARL callback (module-level: BenchMARL pickles its callbacks) stamping each phase's end."""
    global Timer

    class Timer(base):
        def __init__(self):
            super().__init__()
            self.marks = {"collected": [], "trained": []}

        def on_batch_collected(self, batch):
            self.marks["collected"].append(time.perf_counter())

        def on_train_end(self, training_td, group):
            self.marks["trained"].append(time.perf_counter())

    Timer.__qualname__ = "Timer"
    return Timer


if __name__ == "__main__":
    main()
