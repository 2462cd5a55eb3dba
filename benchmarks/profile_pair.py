"""Where the time goes on both sides of a ``peers.py`` pair: each side's whole process once under cProfile, the
same commands as ``peers.py``, and one table of phases (cumulative seconds of the outermost call of each).

    python benchmarks/profile_pair.py --pair torchrl [--frames 120000] [--torchrl-src RL] [--hydra-path P]
    python benchmarks/profile_pair.py --pair benchmarl [--benchmarl-python PY]

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
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import peers  # noqa: E402  (the pairs' commands)

# phase -> (file path ending, function name) pairs; the outermost match's cumulative seconds
PHASES = {
    "imports (all, incl. lazy ones inside the loop)": [("<frozen importlib._bootstrap>", "_find_and_load")],
    "training loop": [("torchrl/trainers/trainers.py", "train"), ("torchrl_vd/train/loop.py", "run")],
    "collection (torchrl Collector)": [("torchrl/collectors/_single.py", "iterator"),
                                       ("torchrl/collectors/_single.py", "rollout")],
    "  env step (VMAS physics)": [("vmas/simulator/environment/environment.py", "step")],
    "  policy forward while collecting": [("torchrl/collectors/_single.py", "_policy_step"),
                                          ("tensordict/nn/common.py", "__call__")],
    "replay: extend": [("torchrl/data/replay_buffers/replay_buffers.py", "extend"),
                       ("torchrl_vd/train/learner.py", "add")],
    "replay: sample": [("torchrl/data/replay_buffers/replay_buffers.py", "sample")],
    "updates (all)": [("torchrl/trainers/trainers.py", "optim_steps"), ("torchrl_vd/train/learner.py", "update")],
    "  loss forward": [("torchrl/objectives/multiagent/qmixer.py", "forward"),
                       ("torchrl_vd/objectives/mixing.py", "forward")],
    "  backward": [("torch/_tensor.py", "backward")],
    "  grad clip": [("torch/nn/utils/clip_grad.py", "clip_grad_norm_"), ("torch/nn/utils/clip_grad.py", "_no_grad_wrapper")],
    "  optimizer step": [("torch/optim/adam.py", "step")],
    "  target update": [("torchrl/objectives/utils.py", "step")],
    "F.linear forward (all)": [("~", "<built-in method torch._C._nn.linear>")],
    "final evaluation / checkpoint / files": [("torchrl_vd/train/loop.py", "_finish"),
                                              ("torchrl_vd/train/loop.py", "_checkpoint")],
}


def phase_seconds(prof: str) -> dict[str, float]:
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = max(ct for _, _, _, ct, _ in stats.values())
    out = {"profiled process (total)": total}
    for phase, funcs in PHASES.items():
        times = [ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                 if any(file.endswith(f) and name == n for f, n in funcs)]
        out[phase] = max(times, default=0.0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", default="torchrl", choices=("torchrl", "benchmarl"))
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--benchmarl-python", default=str(ROOT / ".venv-benchmarl/bin/python"))
    p.add_argument("--torchrl-src", default=str(ROOT / "benchmarks/.torchrl-src"))
    p.add_argument("--hydra-path", default=str(ROOT / "benchmarks/.torchrl-deps"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/profiles"))
    a = p.parse_args()
    label, env_name, settings, peer_side, default_frames, _ = peers.PAIRS[a.pair]
    frames = a.frames or default_frames
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="profile_pair_") as work:
        settings = peers.benchmarl_settings(frames) if settings is None else settings
        ours = peers.ours_cmd(a.python, env_name, frames, a.seed, f"{work}/ours", settings)
        peer, env, cwd, _ = peer_side(a, frames, work)
        for side, cmd, extra_env, where in (("ours", ours, {"PYTHONPATH": str(ROOT)}, str(ROOT)),
                                            ("peer", peer, env, cwd)):
            prof = str(out / f"{a.pair}_{side}.prof")
            # `python -m cProfile -o F (-m module | script) args`: the interpreter's own options stay in front
            cmd = [cmd[0], "-m", "cProfile", "-o", prof, *cmd[1:]]
            load = os.getloadavg()[0]
            wall, cpu, _ = peers.timed(cmd, extra_env, where)
            rows[side] = {**phase_seconds(prof), "wall s (profiled)": wall, "load before": load}
            print(f"{side}: {wall:.1f} s under cProfile (CPU {cpu:.1f} s), load before {load:.2f}", flush=True)
    print(f"\n{a.pair}: {label}, {frames} frames, each side once under cProfile\n")
    print("| phase | ours s | peer s |\n|---|---|---|")
    for phase in rows["ours"]:
        o, q = rows["ours"][phase], rows["peer"][phase]
        print(f"| {phase} | {o:.2f} | {q:.2f} |")


if __name__ == "__main__":
    main()
