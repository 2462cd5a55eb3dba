"""Where the time goes on both sides of a ``peers.py`` pair: each side's whole process once under cProfile, the
same commands as ``peers.py``, and one table of phases (cumulative seconds of the outermost call of each).

    python benchmarks/profile_pair.py --pair torchrl [--frames 120000] [--torchrl-src RL] [--hydra-path P]
    python benchmarks/profile_pair.py --pair jaxmarl --jax-python PY --jaxmarl-src SRC [--frames 131072]

(BenchMARL's worker cannot run under ``python -m cProfile``: BenchMARL pickles its callbacks, and a class defined
in a script that cProfile runs is not importable from ``__main__``.) JaxMARL's side is one compiled XLA program: cProfile sees one call, so its row gives the compile and run seconds it
prints itself.

A phase is the cumulative time of the functions that name it (the largest among its matches: the outermost
call; a phase whose functions nest in another's is part of it, e.g. the env step within collection). cProfile
inflates Python-heavy code more than the compiled kernels, so read the phases against each other and the
profiled totals against the unprofiled whole-process times ``peers.py`` prints. Each side's ``.prof`` is kept in
``--out`` for ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import peers  # noqa: E402  (the pairs' commands)

# phase -> (file path ending, function name) pairs; the outermost match's cumulative seconds. Indented phases are
# parts of the phase above them; "(rest)" rows are that phase minus its listed parts.
PHASES = {
    "imports (all, incl. lazy ones inside the loop)": [("<frozen importlib._bootstrap>", "_find_and_load")],
    "training loop": [("torchrl/trainers/trainers.py", "train"), ("torchrl_vd/train/loop.py", "run")],
    "collection (torchrl Collector rollouts)": [("torchrl/collectors/_single.py", "iterator")],
    "  env step and resets (torchrl EnvBase.step_and_maybe_reset, all calls)": [("torchrl/envs/common.py",
                                                                                "step_and_maybe_reset")],
    "    VMAS physics step": [("vmas/simulator/environment/environment.py", "step")],
    "    VMAS one-env resets (reset_at, one call per done env)": [("vmas/simulator/environment/environment.py",
                                                                  "reset_at")],
    "    our SMAX adapter step (the jitted JAX step + transfers)": [("torchrl_vd/envs/smax.py", "_step")],
    "updates": [("torchrl/trainers/trainers.py", "optim_steps"), ("torchrl_vd/train/learner.py", "update")],
    "  minibatch sampling": [("torchrl/trainers/trainers.py", "_process_optim_batch_hook"),
                             ("torchrl_vd/train/learner.py", "_minibatches")],
    "  loss forward": [("torchrl/objectives/multiagent/qmixer.py", "forward"),
                       ("torchrl_vd/train/learner.py", "objective")],
    "    target network on the next step": [("torchrl/objectives/value/advantages.py", "_next_value"),
                                            ("torchrl_vd/objectives/common.py", "next_target_utilities")],
    "    recurrent unroll (GRU over the sampled sequences)": [("torchrl_vd/modules/gru_agent.py", "evaluate")],
    "  backward": [("torch/_tensor.py", "backward")],
    "ε-greedy schedule step": [("torchrl/trainers/trainers.py", "_post_steps_hook")],
    "final evaluation, checkpoint, files": [("torchrl_vd/train/loop.py", "_finish"),
                                            ("torchrl_vd/train/loop.py", "_checkpoint")],
    "F.linear forward, all calls": [("~", "<built-in method torch._C._nn.linear>")],
    "tanh forward, all calls": [("~", "<built-in method torch.tanh>")],
}
# the collector's rollouts split by their direct callees: the env (step and partial resets) and the policy
ROLLOUT = ("torchrl/collectors/_single.py", "rollout")
ROLLOUT_PARTS = {"  rollouts: env step and resets": ("torchrl/envs/common.py", "step_and_maybe_reset"),
                 "  rollouts: the policy": ("torch/nn/modules/module.py", "_wrapped_call_impl")}
REST = {  # (rest) rows: phase minus parts
    "  rollouts: the collector's bookkeeping (the rest)": (
        "collection (torchrl Collector rollouts)", list(ROLLOUT_PARTS)),
    "  updates (rest): clipping, Adam, the target update, hooks": ("updates", ["  minibatch sampling", "  loss forward", "  backward"]),
}


def phase_seconds(prof: str) -> dict[str, float]:
    profile = pstats.Stats(prof)
    profile.calc_callees()
    stats = profile.stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = max(ct for _, _, _, ct, _ in stats.values())
    out = {"profiled process (total)": total}
    for row in ROLLOUT_PARTS:
        out[row] = 0.0
    for key in stats:
        if key[0].endswith(ROLLOUT[0]) and key[2] == ROLLOUT[1]:
            for callee, (_, _, _, ct) in profile.all_callees[key].items():
                for row, (file, name) in ROLLOUT_PARTS.items():
                    if callee[0].endswith(file) and callee[2] == name:
                        out[row] += ct
    for phase, funcs in PHASES.items():
        times = [ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                 if any(file.endswith(f) and name == n for f, n in funcs)]
        out[phase] = max(times, default=0.0)
    for row, (phase, parts) in REST.items():
        out[row] = out[phase] - sum(out[part] for part in parts)
    order = ["profiled process (total)"]
    for phase in PHASES:  # each phase, then its rollout parts and (rest) rows
        order.append(phase)
        order += [row for row in ROLLOUT_PARTS if phase.startswith("collection")]
        order += [row for row, (of, _) in REST.items() if of == phase]
    return {row: out[row] for row in order}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", default="torchrl", choices=("torchrl", "jaxmarl"))
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--torchrl-src", default=str(ROOT / "benchmarks/.torchrl-src"))
    p.add_argument("--hydra-path", default=str(ROOT / "benchmarks/.torchrl-deps"))
    p.add_argument("--jax-python", default=sys.executable, help="an interpreter with jax, jaxmarl, flashbax")
    p.add_argument("--jaxmarl-src", default=str(ROOT / "benchmarks/.jaxmarl-src"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/profiles"))
    a = p.parse_args()
    label, env_name, settings, peer_side, default_frames, _ = peers.PAIRS[a.pair]
    frames = a.frames or default_frames
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="profile_pair_") as work:
        python = a.jax_python if a.pair == "jaxmarl" else a.python
        ours = peers.ours_cmd(python, env_name, frames, a.seed, f"{work}/ours", settings)
        peer, env, cwd, _ = peer_side(a, frames, work)
        for side, cmd, extra_env, where in (("ours", ours, {"PYTHONPATH": str(ROOT)}, str(ROOT)),
                                            ("peer", peer, env, cwd)):
            prof = str(out / f"{a.pair}_{side}.prof")
            # `python -m cProfile -o F (-m module | script) args`: the interpreter's own options stay in front
            cmd = [cmd[0], "-m", "cProfile", "-o", prof, *cmd[1:]]
            load = os.getloadavg()[0]
            wall, cpu, output = peers.timed(cmd, extra_env, where)
            rows[side] = {**phase_seconds(prof), "wall s (profiled)": wall, "load before": load}
            for what in ("compile", "run"):  # JaxMARL's own split (jaxmarl_qmix_reference.py prints it)
                found = re.search(rf"^{what}: ([\d.]+) s", output, re.M)
                if found:
                    rows[side][f"its own '{what}' line"] = float(found.group(1))
            print(f"{side}: {wall:.1f} s under cProfile (CPU {cpu:.1f} s), load before {load:.2f}", flush=True)
    print(f"\n{a.pair}: {label}, {frames} frames, each side once under cProfile\n")
    print("| phase | ours s | peer s |\n|---|---|---|")
    for phase in dict.fromkeys([*rows["ours"], *rows["peer"]]):
        o, q = (rows[side].get(phase) for side in ("ours", "peer"))
        print(f"| {phase} | {'' if o is None else f'{o:.2f}'} | {'' if q is None else f'{q:.2f}'} |")


if __name__ == "__main__":
    main()
