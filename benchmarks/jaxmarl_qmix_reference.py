"""JaxMARL's own QMIX baseline on SMAX: the reference our SMAX QMIX preset is compared with at equal frames.

Runs ``make_train`` from JaxMARL's ``baselines/QLearning/qmix_rnn.py``, unmodified, loaded from a JaxMARL
checkout at commit c793d095618c6d3edfb5632802348f57b70a4b94 (``benchmarks/setup_jaxmarl_reference.sh`` makes
one in ``benchmarks/.jaxmarl-src``, git-ignored; or ``--jaxmarl-src DIR``), with the hyperparameters of that
checkout's ``baselines/QLearning/config/alg/ql_rnn_smax.yaml`` merged over ``config/config.yaml`` as JaxMARL's
hydra entry point does. The yaml our preset cites, ``qmix_rnn_smax.yaml``, was renamed ``ql_rnn_smax.yaml`` in
JaxMARL commit edebe10 (2024-06). Env: ``HeuristicEnemySMAX`` on ``--map`` (the yaml's 3s_vs_5z is replaced by
``--map``, default 3m) with the yaml's env kwargs, wrapped in ``SMAXLogWrapper``. No JaxMARL code is copied
into this repository.

How the unmodified file runs without hydra and wandb: stub modules ``hydra`` (its ``main`` decorator, used at
import), ``omegaconf`` and ``wandb`` are put in ``sys.modules`` before the file is imported; ``wandb.log`` is
this driver's callback. The baseline reports every update's metrics through ``jax.debug.callback(...
wandb.log(metrics))`` when ``WANDB_MODE != "disabled"``, so ``WANDB_MODE`` is set to ``"stub"`` (nothing
is sent anywhere: the stub has no network code).

Overrides: ``--timesteps`` (TOTAL_TIMESTEPS; the update count is timesteps // (16*128), and ε decays over
EPS_DECAY = 10% *of these updates*, so a 1M-step run decays ε over 100k steps, not 1M as in the full 1e7 run:
``--eps-decay 1.0`` gives the 1e7 run's first-1M-step schedule), ``--seed``, ``--test-interval`` (env steps;
turned into the yaml's TEST_INTERVAL fraction of updates), ``--num-test-envs`` (TEST_NUM_ENVS; the yaml's
512 greedy test envs x 128 steps are 65,536 env steps per test, 32 training updates' worth of stepping),
``--set KEY=VALUE`` for any other yaml key.

Intermediate metrics: ``train()`` is one ``jax.jit`` of a ``jax.lax.scan`` over all updates, as in JaxMARL.
The baseline already reports each update's ``metrics`` through ``jax.debug.callback`` to ``wandb.log``, here
the driver's Python callback. The callback timestamps every update and writes one CSV row
whenever the update refreshed the greedy test metrics (``n_updates % int(NUM_UPDATES*TEST_INTERVAL) == 0``,
the baseline's own test condition), plus a first row at env_steps=0 with the test of the initial parameters
(the baseline computes it before the scan; it is what update 1 still reports). Rows: env_steps,
test_returned_won_episode (greedy test win rate), test_returned_episode_returns, wall_s (seconds since the
compiled train() started, compile excluded), then update_steps, grad_steps, loss, eps,
test_returned_episode_lengths. Compile time is measured apart (``jit(...).lower(...).compile()``).

Throughput printed at the end: overall (training env steps / run time, the tests' time included) and the
steady training rate (16*128 env steps / median time of an update that learned and ran no test).

What the baseline does that a comparison must know (read from the code, not changed here): the optimizer is
``optax.radam`` (RAdam, not Adam); every update resets all 16 envs and rolls 128 steps from scratch (GRU
state zero at the start of each stored 128-step sequence); the buffer holds BUFFER_SIZE // NUM_ENVS = 312
rollouts per env (4,992 sequences); flashbax's ``can_sample`` needs BUFFER_BATCH_SIZE = 32 rollouts per env
in the buffer, so the first gradient step is at update 32 = 65,536 env steps (LEARNING_STARTS 10k is
already past); rewards are x10 (REW_SCALE) for learning only, test returns are unscaled; the test win rate
is the mean of ``returned_won_episode`` over finished test episodes; one-hot agent ids are appended by
``CTRolloutManager``; the mixer's state is the env's world state (``obs["__all__"]``).

Usage (one core, no other threads)::

    bash benchmarks/setup_jaxmarl_reference.sh          # once: the checkout + flashbax/optax in .venv
    taskset -c 1 .venv/bin/python benchmarks/jaxmarl_qmix_reference.py --map 3m --timesteps 1000000 \\
        --seed 0 --out benchmarks/results/jaxmarl_qmix_3m_s0.csv

The ``smax`` reproduction suite's reference file, ``torchrl_vd/reproduce/references/jaxmarl_smax.csv``
(package data), holds the last test row of each seed's run at the suite's budget: ``task, algo, seed, value``
(the greedy test win rate), ``env_steps, test_return``.

Needs jax, flax, chex, optax, flashbax, pyyaml and jaxmarl. gymnax (imported by jaxmarl.wrappers.baselines
only for two isinstance checks on spaces; SMAX uses jaxmarl's own spaces) is replaced by a stub when it
cannot be imported, so ``pip install --no-deps gymnax`` (which would pull an older gymnasium) is not needed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE / ".jaxmarl-src"
JAXMARL_COMMIT = "c793d095618c6d3edfb5632802348f57b70a4b94"
BASELINE = Path("baselines") / "QLearning"
COLUMNS = ["env_steps", "test_returned_won_episode", "test_returned_episode_returns", "wall_s", "update_steps",
           "grad_steps", "loss", "eps", "test_returned_episode_lengths"]
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def build_parser(description: str = __doc__.split("\n")[0]) -> argparse.ArgumentParser:
    """The command line (the PQN driver adds its own options to it)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--map", default="3m", help="SMAX scenario (jaxmarl map_name_to_scenario); yaml: 3s_vs_5z")
    p.add_argument("--timesteps", type=float, default=None, help="TOTAL_TIMESTEPS (yaml: 1e7)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="CSV, one row per test (default: stdout only)")
    p.add_argument("--test-interval", type=float, default=None,
                   help="env steps between greedy tests (yaml: 5%% of training)")
    p.add_argument("--num-test-envs", type=int, default=None, help="TEST_NUM_ENVS (yaml: 512)")
    p.add_argument("--eps-decay", type=float, default=None,
                   help="EPS_DECAY, fraction of the run's updates over which eps anneals (yaml: 0.1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (value parsed as yaml), e.g. --set LR=1e-4")
    p.add_argument("--jaxmarl-src", type=Path, default=Path(os.environ.get("JAXMARL_SRC", DEFAULT_SRC)),
                   help="JaxMARL checkout at commit %s (default: $JAXMARL_SRC or benchmarks/.jaxmarl-src)"
                        % JAXMARL_COMMIT[:10])
    p.add_argument("--single-thread", action=argparse.BooleanOptionalAction, default=True,
                   help=f"set XLA_FLAGS='{SINGLE_THREAD_XLA}' when XLA_FLAGS is unset (default on)")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _ensure_gymnax():
    """Import gymnax, or put a stub of ``gymnax.environments.spaces`` (Box, Discrete) in ``sys.modules``."""
    try:
        importlib.import_module("gymnax.environments.spaces")
        return "gymnax"
    except Exception:  # not installed, or its optional deps (seaborn, ...) missing
        for name in [m for m in sys.modules if m == "gymnax" or m.startswith("gymnax.")]:
            del sys.modules[name]
        spaces = types.ModuleType("gymnax.environments.spaces")

        class Box:  # never instantiated: jaxmarl only tests isinstance(space, (BoxGymnax, Box, ...))
            pass

        class Discrete:
            pass

        spaces.Box, spaces.Discrete = Box, Discrete
        envs = types.ModuleType("gymnax.environments")
        envs.spaces = spaces
        root = types.ModuleType("gymnax")
        root.environments = envs
        sys.modules.update({"gymnax": root, "gymnax.environments": envs, "gymnax.environments.spaces": spaces})
        return "stub"


def _check_source(src: Path) -> Path:
    """The checkout's baseline folder; a clear error when the checkout is missing or at another commit."""
    baseline = src / BASELINE
    if not (baseline / "qmix_rnn.py").exists():
        raise SystemExit(f"No JaxMARL checkout at {src} (looked for {BASELINE / 'qmix_rnn.py'}): run "
                         f"`bash benchmarks/setup_jaxmarl_reference.sh` or pass --jaxmarl-src DIR.")
    head = (src / ".git" / "HEAD")
    if head.exists():
        import subprocess

        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        if commit and commit != JAXMARL_COMMIT:
            raise SystemExit(f"{src} is at commit {commit[:10]}, not {JAXMARL_COMMIT[:10]}: "
                             f"`git -C {src} checkout {JAXMARL_COMMIT}`.")
    return baseline


def _import_baseline(baseline: Path, log, filename: str = "qmix_rnn.py"):
    """Import the checkout's ``filename`` (``qmix_rnn.py``; the PQN driver: ``pqn_vdn_rnn.py``) unmodified, with
    stub ``hydra``/``omegaconf``/``wandb`` modules (``wandb.log`` = ``log``)."""
    hydra = types.ModuleType("hydra")
    hydra.main = lambda *a, **k: (lambda fn: fn)  # the file decorates its entry point at import
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.OmegaConf = types.SimpleNamespace(to_container=lambda c: c, to_yaml=str, save=lambda *a, **k: None)
    wandb = types.ModuleType("wandb")
    wandb.log = log
    sys.modules.update({"hydra": hydra, "omegaconf": omegaconf, "wandb": wandb})
    spec = importlib.util.spec_from_file_location(f"jaxmarl_{Path(filename).stem}", baseline / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(args, baseline: Path, alg_yaml: str = "ql_rnn_smax.yaml") -> dict:
    """``config/config.yaml`` with ``config/alg/<alg_yaml>`` over it (as the baseline's ``single_run``), then the
    command line's overrides."""
    import yaml

    with open(baseline / "config" / "config.yaml") as f:
        config = yaml.safe_load(f)
    with open(baseline / "config" / "alg" / alg_yaml) as f:
        alg = yaml.safe_load(f)
    config = {**config, **alg}  # as single_run: the alg config over the main config
    config["MAP_NAME"] = args.map
    config["SEED"] = args.seed
    config["NUM_SEEDS"] = 1
    config["WANDB_MODE"] = "stub"  # != "disabled": the baseline calls wandb.log, the driver's callback
    config["SAVE_PATH"] = None
    if args.timesteps is not None:
        config["TOTAL_TIMESTEPS"] = args.timesteps
    if args.num_test_envs is not None:
        config["TEST_NUM_ENVS"] = args.num_test_envs
    if args.eps_decay is not None:
        config["EPS_DECAY"] = args.eps_decay
    for item in args.set:
        key, _, value = item.partition("=")
        config[key] = yaml.safe_load(value)
    num_updates = int(config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"])
    if num_updates < 1:
        raise SystemExit(f"--timesteps below one batch (NUM_STEPS*NUM_ENVS = "
                         f"{config['NUM_STEPS'] * config['NUM_ENVS']})")
    if args.test_interval is not None:
        every = max(1, round(args.test_interval / (config["NUM_STEPS"] * config["NUM_ENVS"])))
        # the baseline tests when n_updates % int(NUM_UPDATES * TEST_INTERVAL) == 0; the + 0.5 guards the int()
        config["TEST_INTERVAL"] = min(every, num_updates) / num_updates + 0.5 / num_updates / num_updates
    every = int(num_updates * config["TEST_INTERVAL"])
    if config.get("TEST_DURING_TRAINING", True) and every < 1:
        raise SystemExit(f"TEST_INTERVAL {config['TEST_INTERVAL']} x {num_updates} updates < 1 update")
    return config


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.single_thread and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = SINGLE_THREAD_XLA
    gymnax_mode = _ensure_gymnax()
    baseline = _check_source(args.jaxmarl_src)

    import jax
    import numpy as np
    import optax

    state = {"t0": None, "times": [], "rows": [], "callback": None}
    qmix_rnn = _import_baseline(baseline, lambda metrics: state["callback"](metrics))
    config = load_config(args, baseline)
    env, env_name = qmix_rnn.env_from_config(copy.deepcopy(config))
    num_updates = int(config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"])
    steps_per_update = config["NUM_STEPS"] * config["NUM_ENVS"]
    test_every = int(num_updates * config["TEST_INTERVAL"])
    eps_sched = optax.linear_schedule(config["EPS_START"], config["EPS_FINISH"],
                                      config["EPS_DECAY"] * num_updates)

    shown = {k: v for k, v in config.items() if k not in ("ENTITY", "PROJECT", "SAVE_PATH", "HYP_TUNE")}
    print(f"JaxMARL QMIX (qmix_rnn.py @ {JAXMARL_COMMIT[:10]}, ql_rnn_smax.yaml) on {env_name}; "
          f"jax {jax.__version__}, backend {jax.default_backend()}, gymnax: {gymnax_mode}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"config: {shown}")
    print(f"{num_updates} updates x {steps_per_update} env steps = {num_updates * steps_per_update}; "
          f"test every {test_every} updates on {config['TEST_NUM_ENVS']} envs x {config['TEST_NUM_STEPS']} steps")

    writer_file = None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        writer_file = open(args.out, "w", newline="")
        writer = csv.DictWriter(writer_file, fieldnames=COLUMNS)
        writer.writeheader()

    def emit(row):
        state["rows"].append(row)
        print("  " + "  ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                               for k in COLUMNS), flush=True)
        if writer_file is not None:
            writer.writerow(row)
            writer_file.flush()

    def callback(metrics):
        now = time.perf_counter() - state["t0"]
        m = {k: np.asarray(v) for k, v in metrics.items()}
        n_upd = int(m["update_steps"])
        tested = test_every >= 1 and n_upd % test_every == 0
        state["times"].append((n_upd, now, tested, int(m["grad_steps"])))

        def row(env_steps, wall):
            return {"env_steps": env_steps,
                    "test_returned_won_episode": float(m["test_returned_won_episode"]),
                    "test_returned_episode_returns": float(m["test_returned_episode_returns"]),
                    "wall_s": round(wall, 3), "update_steps": n_upd, "grad_steps": int(m["grad_steps"]),
                    "loss": float(m["loss"]), "eps": float(eps_sched(n_upd - 1)),
                    "test_returned_episode_lengths": float(m["test_returned_episode_lengths"])}

        if n_upd == 1 and not tested:  # still the pre-training test (initial parameters)
            r = row(0, 0.0)
            r.update(update_steps=0, grad_steps=0, loss=float("nan"), eps=float(eps_sched(0)))
            emit(r)
        if tested:
            emit(row(int(m["env_step"]), now))

    state["callback"] = callback
    train = qmix_rnn.make_train(config, env)
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])

    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(rngs).compile()
    compile_s = time.perf_counter() - t
    print(f"compile: {compile_s:.1f} s (trace + lower + XLA compile)", flush=True)

    state["t0"] = time.perf_counter()
    outs = jax.block_until_ready(compiled(rngs))
    run_s = time.perf_counter() - state["t0"]
    if writer_file is not None:
        writer_file.close()

    total = num_updates * steps_per_update
    times = state["times"]
    dts = [(u, b - a, tested, g1 - g0)
           for (_, a, _, g0), (u, b, tested, g1) in zip(times, times[1:])]
    learn = [dt for _, dt, tested, dg in dts if not tested and dg > 0]
    collect = [dt for _, dt, tested, dg in dts if not tested and dg == 0]
    med = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    # one greedy test's own time: a test update's time less the median update of its kind
    tests = [dt - (med(learn) if dg > 0 else med(collect)) for _, dt, tested, dg in dts if tested]
    print(f"run: {run_s:.1f} s for {total} env steps ({num_updates} updates, "
          f"{int(np.asarray(outs['runner_state'][0].grad_steps).reshape(-1)[0])} gradient steps, "
          f"{len(tests)} tests in the loop + 1 before)")
    print(f"throughput: {total / run_s:.0f} env steps/s overall (incl. tests), "
          f"{steps_per_update / med(learn):.0f} env steps/s steady training "
          f"(median update with 8 gradient steps {med(learn):.3f} s over {len(learn)}; "
          f"collect-only update {med(collect):.3f} s; one test of {config['TEST_NUM_ENVS']} envs ~{med(tests):.2f} s)")
    if args.out is not None:
        print(f"wrote {len(state['rows'])} rows to {args.out}")


if __name__ == "__main__":
    main()
