"""JaxMARL's own PQN-VDN on SMAX: the reference our ``pqn-vdn`` is compared with at equal frames (``pqn-compare``).

Runs ``make_train`` from JaxMARL's ``baselines/QLearning/pqn_vdn_rnn.py``, unmodified, loaded from a JaxMARL checkout
at commit c793d095618c6d3edfb5632802348f57b70a4b94 (``benchmarks/setup_jaxmarl_reference.sh`` makes one in
``benchmarks/.jaxmarl-src``; or ``--jaxmarl-src DIR``), with the hyperparameters of that checkout's
``baselines/QLearning/config/alg/pqn_vdn_rnn_smax.yaml`` merged over ``config/config.yaml`` as JaxMARL's hydra entry
point does (``+alg=pqn_vdn_rnn_smax``). Env: ``HeuristicEnemySMAX`` on ``--map`` (the yaml's 2s3z replaced by
``--map``, default 3m) with the yaml's env kwargs, in ``SMAXLogWrapper``. No JaxMARL code is copied here; the
stubs (hydra, omegaconf, wandb, gymnax when missing), the checkout check, the config loading and the per-test CSV
rows are benchmarks/jaxmarl_qmix_reference.py's, shared (its docstring explains them).

The ``pqn-compare`` suite's reference (torchrl_vd/reproduce/suites.py): ``--timesteps 512000`` (31 updates of
128 envs x 128 steps = 507,904 env steps, the suite's frames), ``--set HIDDEN_SIZE=64`` (the suite's width; the
yaml's 512 runs very slowly on a CPU), ``--test-interval 51200`` and ``--num-test-envs 128`` (a greedy test of 128
envs x 128 steps every ~3 updates; the yaml tests every 5% of the updates, i.e. every update of a 31-update run).
``--append-reference FILE`` appends the run's last test to FILE as the suite reads it (``task, algo, seed, value,
env_steps, test_return``; the package's copy: ``torchrl_vd/reproduce/references/jaxmarl_pqn_smax.csv``).

What the baseline does that a comparison must know (read from the code, not changed here): before training it
steps ``MEMORY_WINDOW + NUM_STEPS`` uniform random steps (the action masks ignored, rewards not scaled) that are
not counted as env steps and fill its first memory window; every update's greedy test win rate is the mean of
``returned_won_episode`` over the test's finished episodes; BatchNorm uses minibatch statistics in the gradient
steps (the returns included) and running averages when acting; time limits end the returns (``done["__all__"]``).

Usage (one core, no other threads; the venv of benchmarks/setup_jaxmarl_reference.sh)::

    bash benchmarks/setup_jaxmarl_reference.sh
    for s in 0 1 2; do taskset -c 1 .venv/bin/python benchmarks/jaxmarl_pqn_reference.py --map 3m \\
        --timesteps 512000 --set HIDDEN_SIZE=64 --test-interval 51200 --num-test-envs 128 --seed $s \\
        --out benchmarks/results/jaxmarl_pqn_3m_s$s.csv \\
        --append-reference torchrl_vd/reproduce/references/jaxmarl_pqn_smax.csv; done

``--dry-run`` prints the resolved config and the plan (updates, tests) and stops before compiling.
"""

from __future__ import annotations

import copy
import csv
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jaxmarl_qmix_reference as common  # noqa: E402  (the shared stubs, checks and config loading)

BASELINE_FILE = "pqn_vdn_rnn.py"
ALG_YAML = "pqn_vdn_rnn_smax.yaml"
REFERENCE_COLUMNS = ["task", "algo", "seed", "value", "env_steps", "test_return"]


def parse_args(argv=None):
    """jaxmarl_qmix_reference.py's command line (the yaml defaults its help names are pqn_vdn_rnn_smax.yaml's here:
    2s3z, 128 test envs, 5% of the updates) + ``--append-reference`` and ``--dry-run``."""
    parser = common.build_parser(__doc__.split("\n")[0])
    parser.add_argument("--append-reference", type=Path, default=None,
                        help="append the last test as a row of the pqn-compare reference CSV")
    parser.add_argument("--dry-run", action="store_true", help="print the config and the plan, train nothing")
    return parser.parse_args(argv)


def append_reference(path: Path, task: str, seed: int, row: dict) -> None:
    """One reference row (the suite's ``task, algo, seed, value, ...``) appended to ``path`` (header if new)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REFERENCE_COLUMNS)
        if new:
            w.writeheader()
        w.writerow({"task": task, "algo": "pqn-vdn", "seed": seed, "value": row["test_returned_won_episode"],
                    "env_steps": row["env_steps"], "test_return": row["test_returned_episode_returns"]})


class Recorder:
    """The baseline's per-update metrics (its ``wandb.log`` calls) -> timestamps and one CSV row per greedy test."""

    def __init__(self, test_every: int, eps_sched, out: Path | None):
        self.test_every, self.eps_sched, self.t0 = test_every, eps_sched, None
        self.times, self.rows = [], []
        self.file = None
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(out, "w", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=common.COLUMNS)
            self.writer.writeheader()

    def emit(self, row: dict) -> None:
        self.rows.append(row)
        print("  " + "  ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                               for k in common.COLUMNS), flush=True)
        if self.file is not None:
            self.writer.writerow(row)
            self.file.flush()

    def __call__(self, metrics, **_):  # wandb.log(metrics, step=...)
        import numpy as np

        now = time.perf_counter() - self.t0
        m = {k: np.asarray(v) for k, v in metrics.items()}
        n_upd = int(m["update_steps"])
        tested = self.test_every >= 1 and n_upd % self.test_every == 0
        self.times.append((n_upd, now, tested))

        def row(env_steps, wall):
            return {"env_steps": env_steps, "test_returned_won_episode": float(m["test_returned_won_episode"]),
                    "test_returned_episode_returns": float(m["test_returned_episode_returns"]),
                    "wall_s": round(wall, 3), "update_steps": n_upd, "grad_steps": int(m["grad_steps"]),
                    "loss": float(m["loss"]), "eps": float(self.eps_sched(n_upd - 1)),
                    "test_returned_episode_lengths": float(m["test_returned_episode_lengths"])}

        if n_upd == 1 and not tested:  # still the pre-training test (initial parameters)
            r = row(0, 0.0)
            r.update(update_steps=0, grad_steps=0, loss=float("nan"), eps=float(self.eps_sched(0)))
            self.emit(r)
        if tested:
            self.emit(row(int(m["env_step"]), now))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.single_thread and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = common.SINGLE_THREAD_XLA
    gymnax_mode = common._ensure_gymnax()
    baseline = common._check_source(args.jaxmarl_src)
    config = common.load_config(args, baseline, ALG_YAML)
    num_updates = int(config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"])
    steps_per_update = config["NUM_STEPS"] * config["NUM_ENVS"]
    test_every = int(num_updates * config["TEST_INTERVAL"])
    shown = {k: v for k, v in config.items() if k not in ("ENTITY", "PROJECT", "SAVE_PATH", "HYP_TUNE")}
    print(f"config: {shown}")
    print(f"{num_updates} updates x {steps_per_update} env steps = {num_updates * steps_per_update} "
          f"(+ {config['MEMORY_WINDOW'] + config['NUM_STEPS']} uncounted random steps per env first); "
          f"{config['NUM_EPOCHS'] * config['NUM_MINIBATCHES']} gradient steps per update; test every {test_every} "
          f"updates on {config['TEST_NUM_ENVS']} envs x {config['TEST_NUM_STEPS']} steps")
    if args.dry_run:
        return

    import jax
    import numpy as np
    import optax

    recorder = Recorder(test_every, optax.linear_schedule(config["EPS_START"], config["EPS_FINISH"],
                                                          config["EPS_DECAY"] * num_updates), args.out)
    pqn = common._import_baseline(baseline, lambda metrics, **kw: recorder(metrics, **kw), BASELINE_FILE)
    env, env_name = pqn.env_from_config(copy.deepcopy(config))
    print(f"JaxMARL PQN-VDN ({BASELINE_FILE} @ {common.JAXMARL_COMMIT[:10]}, {ALG_YAML}) on {env_name}; "
          f"jax {jax.__version__}, backend {jax.default_backend()}, gymnax: {gymnax_mode}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    train = pqn.make_train(config, env)
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(rngs).compile()
    print(f"compile: {time.perf_counter() - t:.1f} s (trace + lower + XLA compile)", flush=True)
    recorder.t0 = time.perf_counter()
    jax.block_until_ready(compiled(rngs))
    run_s = time.perf_counter() - recorder.t0
    recorder.close()

    times = recorder.times
    dts = [(b - a, tested) for (_, a, _), (_, b, tested) in zip(times, times[1:])]
    plain = [dt for dt, tested in dts if not tested]
    med = float(np.median(plain)) if plain else float("nan")
    total = num_updates * steps_per_update
    print(f"run: {run_s:.1f} s for {total} env steps ({num_updates} updates, the random warm-up and "
          f"{sum(1 for _, t_ in dts if t_)} tests in the loop + 1 before included)")
    print(f"throughput: {total / run_s:.0f} env steps/s overall, {steps_per_update / med:.0f} env steps/s steady "
          f"(median update without a test {med:.2f} s over {len(plain)})")
    if args.out is not None:
        print(f"wrote {len(recorder.rows)} rows to {args.out}")
    if args.append_reference is not None and recorder.rows:
        append_reference(args.append_reference, f"smax/{args.map}", args.seed, recorder.rows[-1])
        print(f"appended the last test to {args.append_reference}")


if __name__ == "__main__":
    main()
