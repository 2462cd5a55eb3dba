"""torchrl_vd against the library a user would otherwise pick, on that library's home ground: whole processes,
interleaved, each peer run from its own code, unmodified.

    python benchmarks/peers.py --pair torchrl|benchmarl|jaxmarl|epymarl [--rounds 3] [--frames N] [--seed 0]

Rounds alternate the order (A B, B A, ...). Every run is a fresh process timed from spawn to exit, with one
thread for torch and XLA (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``, ``XLA_FLAGS`` single-threaded Eigen, one
intra-op thread). Each row gives the whole-process wall and CPU seconds (``getrusage`` of the child: on a shared
box the CPU basis moves less than the wall clock), the loop's frames/s as that side reports it, and the 1-minute
load average before the run; then the medians, the spread (min-max) and the speed ratio peer / ours per round.
JSON and Markdown go to ``benchmarks/results/peers_<pair>.{json,md}``. ``--bound`` (the benchmarl pair, the
section 1 config of RESULTS.md) also times the bound of bench_whole_process.py in the same run and prints our
whole-process median over it (target <= 1.25x); for the torchrl pair the bound adds the VMAS stepping alone of the
frames (imports + simulator + the updates' matrix products: what no implementation of that config goes below).

Where each peer comes from (``bash benchmarks/setup_peers.sh PAIR`` fetches/installs it; paths can be overridden):

* ``torchrl``: pytorch/rl ``sota-implementations/multiagent_trainer/train.py --config-name qmix`` (TorchRL's
  ``DQNTrainer`` with ``QMixerLoss``; torchrl 0.14 of our venv; Hydra 1.3 on ``--hydra-path``), run by
  ``_torchrl_trainer_worker.py`` (times ``Trainer.train``). Its yaml as is; only ``collector.total_frames`` (the
  budget), ``seed`` and ``trainer.progress_bar=false`` (ours runs ``--quiet``) are overridden.
* ``benchmarl``: BenchMARL 1.5.2 in its own venv (``--benchmarl-python``), via ``_benchmarl_worker.py``, the
  section 1 config exactly as ``bench_whole_process.py`` runs it (its docstring maps the keys).
* ``jaxmarl``: JaxMARL's ``baselines/QLearning/qmix_rnn.py`` at c793d09 via ``jaxmarl_qmix_reference.py`` (CPU
  JAX, ``ql_rnn_smax.yaml`` with HIDDEN_SIZE=64, LR=5e-4: the ``reproduce smax`` setting) on SMAX 3m. Ours needs
  jaxmarl too: both sides run with ``--jax-python``.
* ``epymarl``: EPyMARL (uoe-agents/epymarl, cbc38c0) ``src/main.py --config=qmix --env-config=gymma`` on
  LBF Foraging-8x8-2p-2f-coop-v3 in its own venv (``--epymarl-python``: its requirements, torch 2.13.0 CPU).
  ``src/envs/__init__.py`` imports ``smaclite`` unconditionally; an empty stand-in module is put on its
  ``PYTHONPATH`` (no SMAClite map is used).

Key mapping, ours <- peer (``--set`` of ``torchrl-vd train``; anything not listed is the same by default):

* torchrl (qmix.yaml): env vmas/balance, ``n_agents`` 3, ``max_steps`` 100, team reward = mean of agents' rewards
  (the trainer's ``mixing_strategy: qmix``); ``num_envs`` 600 <- ``env.vmas_envs``; ``frames_per_batch`` 60000;
  ``updates_per_batch`` 45 <- ``train.num_epochs`` (``optim_steps_per_batch``); ``batch_size`` 4096; ``buffer_size``
  60000 (= one batch, round robin); Adam ``lr`` 5e-5; ``grad_clip`` 40; ε 0.3 -> 0.0 over 5M frames; γ 0.9; Polyak
  τ 0.005; MLP 2x256 Tanh shared (``MultiAgentMLP``), no agent id; QMixer embed 32, hypernet 64, state = the
  agents' observations; TD(0), no double Q (QMixerLoss has none).
* jaxmarl (ql_rnn_smax.yaml): GRU 64, Adam lr 5e-4 (theirs RAdam), 16 envs x 128 steps, 8 updates of 32 sequences
  of 128, hard target every 80 updates, clip 10, rewards x10, ε over 10% of the frames, learning from 65,536
  frames, mixer embed 64 / hypernet 256 / init gain 0.001 (the ``smax`` preset + ``reproduce smax``'s overrides);
  one greedy test of 128 envs at the end (``--test-interval`` = frames; theirs also tests its initial parameters
  before the scan, inside its compiled program).
* epymarl (qmix.yaml + default.yaml + gymma.yaml): the ``lbf`` preset is EPyMARL's config (MLP 64x64 = RNNAgent
  with ``use_rnn: False``, agent id, Adam 5e-4, clip 10, double Q, standardised rewards, ε 1 -> 0.05 over 50k,
  target copy every 200 episodes = 200 updates, buffer 5000 episodes, batch 32 episodes, 50-step episodes);
  evaluation every 50k frames with 100 episodes (theirs also at t=0).

Known differences that no setting removes: ours writes metrics.csv, summary.json, a final checkpoint (with its
replay buffer) and a PNG, and runs one final greedy evaluation (torchrl's trainer has none: ours plays 1 episode,
``igm_eval`` off); EPyMARL steps one env at a time and samples whole episodes (ours 10 envs per batch, i.i.d.
transitions); JaxMARL compiles first (in its whole-process time, printed apart) and resets its 16 envs every
update; BenchMARL's differences are in bench_whole_process.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from torchrl_vd.reproduce import suites as rs  # noqa: E402  (plain data)

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
LBF = "lbf/Foraging-8x8-2p-2f-coop-v3"

# ours <- the peer's config (see the module docstring); values as `--set key=json`
TORCHRL_QMIX = {"env_kwargs": {"n_agents": 3, "max_steps": 100, "team_reward": "mean"}, "num_envs": 600,
                "frames_per_batch": 60_000, "updates_per_batch": 45, "batch_size": 4096, "buffer_size": 60_000,
                "lr": 5e-5, "grad_clip": 40.0, "eps_start": 0.3, "eps_end": 0.0, "eps_frames": 5_000_000,
                "gamma": 0.9, "target_update": 0.005, "hidden": [256, 256], "activation": "tanh",
                "agent_id": False, "double_q": False,
                "mixer_kwargs": {"mixing_embed_dim": 32, "hypernet_layers": 2, "hypernet_embed": 64},
                "eval_every": 0, "eval_episodes": 1, "igm_eval": False, "checkpoint_every": 0}
SMAX_SPEED = {**{k: v for k, v in rs.SMAX_TRAIN.items() if k not in ("eval_every", "checkpoint_every")},
              "eval_every": 0, "eval_episodes": 128, "checkpoint_every": 0}
LBF_SPEED = {"checkpoint_every": 0}


def ours_cmd(python: str, env: str, frames: int, seed: int, out: str, settings: dict) -> list[str]:
    cmd = [python, "-m", "torchrl_vd", "train", "--algo", "qmix", "--env", env, "--frames", str(frames),
           "--seed", str(seed), "--out", out, "--quiet"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def ours_loop_s(out: str) -> float:
    """Our loop's seconds: summary.json's ``wall_time_s`` (the training loop, evaluation and files)."""
    return float(json.loads((Path(out) / "summary.json").read_text())["wall_time_s"])


# ------------------------------------------------------------------------------------------------ the peers
def torchrl_side(a, frames: int, work: str):
    cmd = [a.python, str(ROOT / "benchmarks/_torchrl_trainer_worker.py"), a.torchrl_src, "--",
           "--config-name", "qmix", f"collector.total_frames={frames}", f"seed={a.seed}",
           "trainer.progress_bar=false", f"hydra.run.dir={work}/hydra"]
    return cmd, {"PYTHONPATH": a.hydra_path}, work, lambda out: _result(out)["loop_s"]


def benchmarl_side(a, frames: int, work: str):
    cmd = [a.benchmarl_python, str(ROOT / "benchmarks/_benchmarl_worker.py"), "--iters", str(frames // 6000),
           "--eval-envs", "16", "--seed", str(a.seed)]
    return cmd, {}, str(ROOT), lambda out: _result(out)["wall_s"]


def jaxmarl_side(a, frames: int, work: str):
    cmd = [a.jax_python, str(ROOT / "benchmarks/jaxmarl_qmix_reference.py"), "--map", "3m", "--timesteps",
           str(frames), "--seed", str(a.seed), "--num-test-envs", "128", "--test-interval", str(frames),
           "--set", "HIDDEN_SIZE=64", "--set", "LR=0.0005", "--jaxmarl-src", a.jaxmarl_src]

    def loop_s(out: str) -> float:
        return float(re.search(r"^run: ([\d.]+) s", out, re.M).group(1))
    return cmd, {}, str(ROOT), loop_s


def epymarl_side(a, frames: int, work: str):
    stub = Path(work) / "stubs" / "smaclite"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("")  # imported by src/envs/__init__.py; no SMAClite env is made
    key = "lbforaging:" + LBF.split("/", 1)[1]
    cmd = [a.epymarl_python, str(Path(a.epymarl_src) / "src/main.py"), "--config=qmix", "--env-config=gymma",
           "with", f"env_args.key={key}", "env_args.time_limit=50", f"t_max={frames}", f"seed={a.seed}",
           f"local_results_path={work}/results"]

    def loop_s(out: str) -> float:  # sacred's log lines: [INFO HH:MM:SS] ... (1 s resolution)
        begin = re.search(r"(\d\d:\d\d:\d\d)\] my_main Beginning training", out).group(1)
        end = re.search(r"(\d\d:\d\d:\d\d)\] my_main Finished Training", out).group(1)
        secs = [sum(int(x) * m for x, m in zip(t.split(":"), (3600, 60, 1))) for t in (begin, end)]
        return float((secs[1] - secs[0]) % 86_400)
    return cmd, {"PYTHONPATH": str(stub.parent)}, a.epymarl_src, loop_s


PAIRS = {  # pair -> (peer label, our env, our settings, the peer's side, default frames, frames must divide by)
    "torchrl": ("TorchRL DQNTrainer (multiagent_trainer qmix)", "vmas/balance", TORCHRL_QMIX, torchrl_side,
                120_000, 60_000),
    "benchmarl": ("BenchMARL 1.5.2 QMIX", "vmas/balance",
                  None, benchmarl_side, 60_000, 6_000),
    "jaxmarl": ("JaxMARL qmix_rnn.py (CPU JAX)", "smax/3m", SMAX_SPEED, jaxmarl_side, 512_000, 2_048),
    "epymarl": ("EPyMARL QMIX (main.py, gymma)", LBF, LBF_SPEED, epymarl_side, 50_000, 500),
}


def benchmarl_settings(frames: int) -> dict:
    """The section 1 config, as bench_whole_process.py sets it on our side."""
    from bench_whole_process import ours_settings

    return ours_settings(frames)


def _result(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError("no RESULT line in the peer's output:\n" + out[-2000:])
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------------------------------------ running
def timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and its children, stdout + stderr) of one process from spawn to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, **ONE_THREAD, **env})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.stdout + "\n" + proc.stderr


def run_side(a, side: str, frames: int) -> dict:
    label, env_name, settings, peer_side, _, _ = PAIRS[a.pair]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix=f"peers_{side}_") as work:
        if side == "ours":
            settings = benchmarl_settings(frames) if settings is None else settings
            settings = {**settings, **a.ours_set}  # e.g. collector="async": a variant of ours, named in the output
            if settings.get("learning_starts", 0) >= frames:  # a smoke budget below JaxMARL's first sample
                settings = {**settings, "learning_starts": frames - 2_048}  # (theirs then never learns)
            python = a.jax_python if a.pair == "jaxmarl" else a.python
            cmd = ours_cmd(python, env_name, frames, a.seed, f"{work}/run", settings)
            wall, cpu, _ = timed(cmd, {"PYTHONPATH": str(ROOT)}, str(ROOT))
            loop = ours_loop_s(f"{work}/run")
        else:
            cmd, env, cwd, loop_of = peer_side(a, frames, work)
            wall, cpu, out = timed(cmd, env, cwd)
            loop = loop_of(out)
    return {"side": side, "wall_s": wall, "cpu_s": cpu, "loop_s": loop, "loop_fps": frames / loop if loop else None,
            "whole_fps": frames / wall, "load_before": load, "command": " ".join(cmd)}


def summarise(rows: list[dict], rounds: int) -> dict:
    def stats(side: str, key: str) -> dict:
        xs = [r[key] for r in rows if r["side"] == side]
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

    by_round = [{r["side"]: r for r in rows if r["round"] == k} for k in range(rounds)]
    ratio = sorted(r["peer"]["wall_s"] / r["ours"]["wall_s"] for r in by_round)
    ratio_cpu = sorted(r["peer"]["cpu_s"] / r["ours"]["cpu_s"] for r in by_round)
    loop = sorted(r["ours"]["loop_fps"] / r["peer"]["loop_fps"] for r in by_round if r["peer"]["loop_fps"])
    out = {side: {k: stats(side, k) for k in ("wall_s", "cpu_s", "loop_fps", "load_before")}
           for side in ("ours", "peer")}
    out.update(ratio_wall=ratio, ratio_wall_median=statistics.median(ratio), ratio_cpu=ratio_cpu,
               ratio_cpu_median=statistics.median(ratio_cpu), ratio_loop=loop,
               ratio_loop_median=statistics.median(loop) if loop else None)
    return out


def markdown(a, frames: int, rows: list[dict], summary: dict, bound: dict | None) -> str:
    label = PAIRS[a.pair][0]
    variant = f", ours with {a.ours_set}" if a.ours_set else ""
    lines = [f"peers: {a.pair} ({label}){variant}, {frames} frames per run, seed {a.seed}, "
             f"{datetime.datetime.now().isoformat(timespec='minutes')}", "",
             "| round | side | whole process s | CPU s | loop frames/s | whole-process frames/s | load before |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['round']} | {'torchrl_vd' if r['side'] == 'ours' else label} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['loop_fps']:,.0f} | {r['whole_fps']:,.0f} | {r['load_before']:.2f} |")
    s = summary
    lines += ["", f"medians: ours {s['ours']['wall_s']['median']:.1f} s ({s['ours']['wall_s']['min']:.1f}-"
                  f"{s['ours']['wall_s']['max']:.1f}), peer {s['peer']['wall_s']['median']:.1f} s "
                  f"({s['peer']['wall_s']['min']:.1f}-{s['peer']['wall_s']['max']:.1f}); "
                  f"speed ratio peer/ours whole process {s['ratio_wall_median']:.2f}x "
                  f"(per round {', '.join(f'{x:.2f}' for x in s['ratio_wall'])}), CPU {s['ratio_cpu_median']:.2f}x, "
                  f"loop {s['ratio_loop_median'] or float('nan'):.2f}x (target >= 1.5x)"]
    if bound:
        env = f"VMAS stepping alone {bound['env_s']:.2f} s + " if "env_s" in bound else ""
        lines.append(f"bound: imports {bound['imports_s']:.2f} s + {env}{bound['updates']} updates x "
                     f"{bound['gemm_s'] * 1e3:.2f} ms = {bound['floor_s']:.1f} s; ours / bound "
                     f"{s['ours']['wall_s']['median'] / bound['floor_s']:.2f}x"
                     f"{' (target <= 1.25x)' if a.pair == 'benchmarl' else ''}, peer / bound "
                     f"{s['peer']['wall_s']['median'] / bound['floor_s']:.2f}x; the most any implementation could "
                     f"be faster than the peer here: {s['peer']['wall_s']['median'] / bound['floor_s']:.2f}x "
                     f"(load {bound['load']:.2f})")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", required=True, choices=sorted(PAIRS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--frames", type=int, default=None, help="per run, both sides (default: the pair's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bound", action="store_true",
                   help="benchmarl / torchrl pair: also ours and the peer over the bound (same run)")
    p.add_argument("--python", default=sys.executable, help="our interpreter (and the torchrl trainer's)")
    p.add_argument("--ours-set", action="append", default=[], metavar="KEY=JSON",
                   help="a setting of ours over the pair's mapping (repeatable), e.g. collector=\"async\"")
    p.add_argument("--benchmarl-python", default=str(ROOT / ".venv-benchmarl/bin/python"))
    p.add_argument("--jax-python", default=sys.executable, help="an interpreter with jax, jaxmarl, flashbax")
    p.add_argument("--epymarl-python", default=str(ROOT / "benchmarks/.venv-epymarl/bin/python"))
    p.add_argument("--torchrl-src", default=str(ROOT / "benchmarks/.torchrl-src"), help="a pytorch/rl checkout")
    p.add_argument("--hydra-path", default=str(ROOT / "benchmarks/.torchrl-deps"), help="hydra-core 1.3 (a folder)")
    p.add_argument("--jaxmarl-src", default=str(ROOT / "benchmarks/.jaxmarl-src"))
    p.add_argument("--epymarl-src", default=str(ROOT / "benchmarks/.epymarl-src"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    a = p.parse_args()
    try:
        a.ours_set = {k: json.loads(v) for k, v in (item.split("=", 1) for item in a.ours_set)}
    except ValueError as err:
        p.error(f"--ours-set takes KEY=JSON, e.g. collector='\"async\"' ({err})")
    _, _, _, _, default_frames, step = PAIRS[a.pair]
    frames = a.frames or default_frames
    if frames % step:
        p.error(f"--frames {frames}: the {a.pair} pair needs a multiple of {step} (one collected batch)")
    variant = f", ours with {a.ours_set}" if a.ours_set else ""
    print(f"peers: {a.pair} ({PAIRS[a.pair][0]}), {frames} frames per run, {a.rounds} rounds{variant}", flush=True)
    rows = []
    for k in range(a.rounds):
        for side in (("ours", "peer") if k % 2 == 0 else ("peer", "ours")):
            row = {"round": k, **run_side(a, side, frames)}
            rows.append(row)
            print(f"round {k} {side:4s}: whole process {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s, loop "
                  f"{row['loop_fps']:,.0f} frames/s, load before {row['load_before']:.2f}", flush=True)
    summary = summarise(rows, a.rounds)
    bound = bound_of(a.pair, frames) if a.bound and a.pair in ("benchmarl", "torchrl") else None
    text = markdown(a, frames, rows, summary, bound)
    print("\n" + text, end="")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"peers_{a.pair}" + "".join(f"_{k}-{v}" for k, v in a.ours_set.items())
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps({"pair": a.pair, "frames": frames, "seed": a.seed, "ours_set": a.ours_set,
                                                          "rows": rows, "summary": summary, "bound": bound},
                                                         indent=2))


# VMAS balance alone, as the torchrl pair's collector steps it (600 envs, 3 agents, discrete actions, uniform random
# actions, no policy, no torchrl wrapper): the simulator's share of any implementation's collection
VMAS_ONLY_SNIPPET = """
import time, torch, vmas
torch.set_num_threads(1)
env = vmas.make_env("balance", num_envs=600, n_agents=3, continuous_actions=False, max_steps=100, seed=0)
env.reset()
t = time.perf_counter()
for _ in range({steps}):
    obs, rews, dones, info = env.step([torch.randint(0, 9, (600,)) for _ in range(3)])
    if dones.any():
        env.reset()
print(time.perf_counter() - t)
"""


def bound_of(pair: str, frames: int) -> dict:
    """The pair's bound, timed now on this machine. benchmarl: bench_whole_process.py's (our imports + the section
    1 config's updates' matrix products). torchrl: our imports, the VMAS stepping of ``frames`` alone and the 90
    updates' matrix products of its config (MLP 16-256-256-9 Tanh on 4,096 x 3 agent rows)."""
    from bench_whole_process import bound_parts, gemm_floor_s, imports_s

    if pair == "benchmarl":
        return bound_parts(frames)
    imports = imports_s()
    steps = frames // 600  # env steps of the 600-env batch
    env_s = min(float(subprocess.run([sys.executable, "-c", VMAS_ONLY_SNIPPET.format(steps=steps)], check=True,
                                     capture_output=True, text=True, cwd=ROOT).stdout.strip()) for _ in range(2))
    gemm = gemm_floor_s(rows=4096 * 3, activation="Tanh", rounds=3, steps=10, warmup=3)
    updates = frames // 60_000 * 45
    return {"imports_s": imports, "env_s": env_s, "gemm_s": gemm, "updates": updates,
            "floor_s": imports + env_s + updates * gemm, "load": os.getloadavg()[0]}


if __name__ == "__main__":
    main()
