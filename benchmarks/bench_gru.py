"""Gradient steps/s of GRU-QMIX vs MLP-QMIX at an equal batch of transitions (3 agents).

    python benchmarks/bench_gru.py            # ~1-2 min
    python benchmarks/bench_gru.py --quick    # ~30 s

One gradient step = what ``train()`` does per update: ``MixingQLoss`` forward (double Q, target agents
and mixer), backward, grad-norm clip 10, Adam step, Polyak ``SoftUpdate``. The batch holds 3200
transitions in every row of the table:

* ``mlp``: 3200 independent transitions [3200], ``MLPAgent`` 64x64;
* ``gru``: 32 sequences x 100 steps [32, 100], ``GRUAgent`` fc 64 → GRU 64 → fc (pymarl's RNN agent),
  shared or per-agent parameters; episode starts inside the sequences: ``none`` (one fused ``nn.GRU``
  call), ``synchronised`` (all sequences at t=30, as a fixed-horizon env collected out of phase: the
  time-segments path), ``staggered`` (episodes of 40 steps at a different offset in every sequence)
  and ``short`` (episodes of 3 steps, as in matrix/memory): the trajectory-split path;
* ``gru-loop``: the same agent unrolled by a Python loop over ``GRUCell`` steps with a per-step reset
  mask, the way BenchMARL's and pymarl's recurrent agents unroll (a reference re-implemented here,
  not their code).

A second table times the recurrent core alone (forward+backward of the unroll, 96 rows x 100 steps,
width 64): ``nn.GRU`` over the sequence, a ``GRUCell`` loop, and a hand-written GRU cell. A third
times ``GRUAgent.unroll`` with each of its two reset strategies forced, and with its cost model's pick
(``auto``).

Data are synthetic but consistent (``next_obs[t] == obs[t+1]`` inside an episode, ``is_init`` at
episode starts), obs dim 18, state = stacked observations, 5 actions. Medians of ``--reps`` steps
after warm-up, timed round-robin across configurations (load drift on a shared box hits all alike), one
torch thread (benchmarks/RESULTS.md §0). Prints markdown tables and writes
``benchmarks/results/bench_gru.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from torchrl.objectives import SoftUpdate  # noqa: E402

from torchrl_vd.objectives.common import total_loss
from torchrl_vd import MixingQLoss, QMixer  # noqa: E402
from torchrl_vd.modules.agents import MLPAgent  # noqa: E402
from torchrl_vd.modules.gru_agent import GRUAgent  # noqa: E402

N_AGENTS, N_ACTIONS, OBS_DIM, H = 3, 5, 18, 64
# episode starts inside the 100-step sequences: none; every sequence at t=30 (fixed horizon, collection not
# aligned with episodes); every 40 steps at a per-sequence offset; every 3 steps (matrix/memory)
LAYOUTS = {"none": None, "synchronised": "sync30", "staggered": 40, "short": 3}


class LoopGRUAgent(GRUAgent):
    """Reference: the same GRUAgent, unrolled by a Python loop of GRU cells (BenchMARL/pymarl style)."""

    def _unroll(self, x, h0, is_init):
        gru = self.rnn.gru  # shared parameters only
        B, T, n, E = x.shape
        h = h0.reshape(B * n, H)
        init = torch.zeros(B, T, dtype=torch.bool) if is_init is None else is_init
        out = []
        for t in range(T):
            h = h.masked_fill(init[:, t].repeat_interleave(n).unsqueeze(-1), 0.0)  # reset at episode starts
            h = torch._VF.gru_cell(x[:, t].reshape(B * n, E), h, gru.weight_ih_l0, gru.weight_hh_l0,
                                   gru.bias_ih_l0, gru.bias_hh_l0)  # what nn.GRUCell.forward calls
            out.append(h)
        return torch.stack(out, 1).reshape(B, T, n, H)  # [B, T, n, H]


def sequences(B: int, T: int, layout: str, seed: int = 0, hidden: int = H) -> TensorDict:
    """[B, T] sequence batch with consistent next observations and the episode starts of ``layout`` (stored GRU
    states of width ``hidden``)."""
    g = torch.Generator().manual_seed(seed)
    stream = torch.randn(B, T + 1, N_AGENTS, OBS_DIM, generator=g)  # o_0 .. o_T per sequence
    is_init = torch.zeros(B, T, 1, dtype=torch.bool)
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    episode_len = LAYOUTS[layout]
    if episode_len == "sync30":
        is_init[:, 30] = True
    elif episode_len:
        offset = torch.randint(0, episode_len, (B,), generator=g)  # [B]
        t = torch.arange(T)
        is_init[..., 0] = (t.unsqueeze(0) - offset.unsqueeze(1)) % episode_len == 0
    done[:, :-1, 0] = is_init[:, 1:, 0]
    obs, next_obs = stream[:, :-1], stream[:, 1:].clone()
    next_obs[done.squeeze(-1)] = torch.randn(int(done.sum()), N_AGENTS, OBS_DIM, generator=g)  # terminal obs
    agents = lambda o, **kw: TensorDict({"observation": o, **kw}, [B, T, N_AGENTS])  # noqa: E731
    return TensorDict(
        {
            "agents": agents(obs, action=torch.randint(0, N_ACTIONS, (B, T, N_AGENTS), generator=g),
                             rnn_hidden=0.1 * torch.randn(B, T, N_AGENTS, hidden, generator=g)),
            "state": obs.flatten(-2),
            "is_init": is_init,
            "next": {"agents": agents(next_obs), "state": next_obs.flatten(-2),
                     "reward": torch.randn(B, T, 1, generator=g), "done": done, "terminated": done.clone()},
        },
        [B, T],
    )


def transitions(n: int) -> TensorDict:
    return sequences(n, 1, "none").reshape(-1).exclude("is_init", ("agents", "rnn_hidden"))


class Update:
    """One full gradient step as in ``train()``: loss, backward, grad-norm clip 10, Adam, Polyak update."""

    def __init__(self, agent, batch: TensorDict):
        torch.manual_seed(0)
        self.loss = MixingQLoss(agent, QMixer(N_AGENTS, (N_AGENTS * OBS_DIM,)), double_q=True)
        self.loss.make_value_estimator(gamma=0.99)
        self.params = list(self.loss.parameters())
        self.optim = torch.optim.Adam(self.params, lr=5e-4)
        self.updater = SoftUpdate(self.loss, tau=0.005)
        self.batch = batch

    def __call__(self) -> float:
        t0 = time.perf_counter()
        out = self.loss(self.batch)
        self.optim.zero_grad(set_to_none=True)
        total_loss(out).backward()
        torch.nn.utils.clip_grad_norm_(self.params, 10.0)
        self.optim.step()
        self.updater.step()
        return time.perf_counter() - t0


def interleaved_medians(fns: list, reps: int, warmup: int = 2) -> list[float]:
    """Median time of each callable, timed round-robin so that load drift on a shared box hits all alike."""
    times = [[] for _ in fns]
    for i in range(warmup + reps):
        for k, fn in enumerate(fns):
            dt = fn()
            if i >= warmup:
                times[k].append(dt)
    return [statistics.median(t) for t in times]


def bench_updates(reps: int, B: int = 32, T: int = 100) -> list[dict]:
    configs = [("mlp", "shared", "-", MLPAgent(N_AGENTS, N_ACTIONS, OBS_DIM, (64, 64)), transitions(B * T))]
    for layout in LAYOUTS:
        batch = sequences(B, T, layout)
        configs.append(("gru", "shared", layout, GRUAgent(N_AGENTS, N_ACTIONS, OBS_DIM, (H,)), batch))
        configs.append(("gru-loop", "shared", layout, LoopGRUAgent(N_AGENTS, N_ACTIONS, OBS_DIM, (H,)), batch))
    configs.append(("gru", "per-agent", "staggered",
                    GRUAgent(N_AGENTS, N_ACTIONS, OBS_DIM, (H,), share_params=False), sequences(B, T, "staggered")))
    secs = interleaved_medians([Update(agent, batch) for *_, agent, batch in configs], reps)
    rows = []
    for (name, params, layout, _, batch), sec in zip(configs, secs):
        rows.append({"agent": name, "params": params, "episodes": layout, "batch": list(batch.batch_size),
                     "transitions": batch.numel(), "ms_per_step": 1e3 * sec, "steps_per_s": 1.0 / sec,
                     "relative_to_mlp": sec / secs[0]})
    return rows


def bench_core(reps: int, rows: int = 96, T: int = 100, E: int = 64) -> list[dict]:
    """Forward+backward of the recurrent core alone."""
    torch.manual_seed(0)
    gru = nn.GRU(E, H, batch_first=True)
    cell = nn.GRUCell(E, H)
    w_ih, w_hh, b_ih, b_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh

    def fused(x, h):
        return gru(x, h.unsqueeze(0))[0]

    def cell_loop(x, h):
        out = []
        for t in range(T):
            h = cell(x[:, t], h)
            out.append(h)
        return torch.stack(out, 1)

    def hand_cell(x, h):
        gi = nn.functional.linear(x, w_ih, b_ih)  # [rows, T, 3H], all steps at once
        out = []
        for t in range(T):
            i_r, i_z, i_n = gi[:, t].chunk(3, -1)
            h_r, h_z, h_n = nn.functional.linear(h, w_hh, b_hh).chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = n + z * (h - n)
            out.append(h)
        return torch.stack(out, 1)

    x0, h0 = torch.randn(rows, T, E), torch.zeros(rows, H)

    def timed(fn):
        def run() -> float:
            x = x0.clone().requires_grad_(True)
            t0 = time.perf_counter()
            fn(x, h0).square().mean().backward()
            return time.perf_counter() - t0
        return run

    names = ["nn.GRU (fused)", "GRUCell loop", "hand-written cell loop"]
    secs = interleaved_medians([timed(fused), timed(cell_loop), timed(hand_cell)], reps)
    return [{"unroll": name, "rows": rows, "steps": T, "ms_fwd_bwd": 1e3 * sec, "relative_to_fused": sec / secs[0]}
            for name, sec in zip(names, secs)]


def bench_strategies(reps: int, B: int = 32, T: int = 100) -> list[dict]:
    """GRUAgent.unroll (forward+backward) with each reset strategy forced, and the one its cost model picks."""
    torch.manual_seed(0)
    agent = GRUAgent(N_AGENTS, N_ACTIONS, OBS_DIM, (H,))
    forced = {"time-segments": -(10**9), "split-trajectories": 10**9, "auto": GRUAgent._CALL_COST}
    rows, fns = [], []
    for layout in ("synchronised", "staggered", "short"):
        td = sequences(B, T, layout)
        obs, hidden, init = td["agents", "observation"], td["agents", "rnn_hidden"][:, 0], td["is_init"]
        for name, cost in forced.items():
            def run(cost=cost, obs=obs, hidden=hidden, init=init) -> float:
                agent._CALL_COST = cost
                t0 = time.perf_counter()
                agent.unroll(obs, hidden, init)[0].square().mean().backward()
                return time.perf_counter() - t0
            rows.append({"episodes": layout, "strategy": name})
            fns.append(run)
    for row, sec in zip(rows, interleaved_medians(fns, reps)):
        row["ms_fwd_bwd"] = 1e3 * sec
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--reps", type=int, default=None, help="timed gradient steps per row (default 21, quick 7)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_gru.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reps = args.reps or (7 if args.quick else 21)
    print(f"timing {reps} gradient steps per configuration (round-robin) ...", flush=True)
    updates = bench_updates(reps)
    core = bench_core(reps)
    strategies = bench_strategies(reps)

    print("\n| agent | params | episode starts in sequence | batch | ms / step | steps/s | x MLP |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in updates:
        batch = "x".join(map(str, r["batch"]))
        print(f"| {r['agent']} | {r['params']} | {r['episodes']} | {batch} | {r['ms_per_step']:.1f} | "
              f"{r['steps_per_s']:.2f} | {r['relative_to_mlp']:.2f} |")
    print("\n| unroll (96 rows x 100 steps, H=64) | ms fwd+bwd | x nn.GRU |")
    print("|---|---:|---:|")
    for r in core:
        print(f"| {r['unroll']} | {r['ms_fwd_bwd']:.1f} | {r['relative_to_fused']:.2f} |")

    print("\n| episode starts | unroll strategy | ms fwd+bwd (GRUAgent.unroll, 32x100) |")
    print("|---|---|---:|")
    for r in strategies:
        print(f"| {r['episodes']} | {r['strategy']} | {r['ms_fwd_bwd']:.1f} |")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "processor": platform.processor(), "reps": reps, "n_agents": N_AGENTS, "n_actions": N_ACTIONS,
            "obs_dim": OBS_DIM, "gru_hidden": H}
    out.write_text(json.dumps({"meta": meta, "updates": updates, "unroll_core": core,
                               "unroll_strategies": strategies}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
