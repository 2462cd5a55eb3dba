"""Tutorial 03 — the IGM property, and why QTRAN solves a game that VDN and QMIX cannot.

    python tutorials/03_igm_and_qtran.py --quick            # ~30 s: one seed, 400 updates per algorithm
    python tutorials/03_igm_and_qtran.py --out docs         # full: 3 seeds, 2000 updates, docs/qtran_heatmap.png

The **Individual-Global-Max (IGM)** property (Son et al. 2019, Definition 1) asks that the greedy joint
action of the centralized value be the joint action made of every agent's own greedy action:

    argmax_a Q(h, z, a)  ==  ( argmax_{a_1} Q(h_1, a_1), ..., argmax_{a_n} Q(h_n, a_n) )

When it holds, every agent can act on its own utility Q(h_i, a_i) and the team still plays the greedy
joint action. VDN (Q = Σ_i Q_i) and QMIX (∂Q/∂Q_i ≥ 0) get IGM *for free*, by restricting the shape of
Q. The price is representational: on the QTRAN matrix game below (Son et al. 2019) no additive or
monotonic function of the utilities can put its maximum on (A, A) once the data are uniform, so both
learn a value whose greedy action is a safe 0 instead of the optimum 8 — with IGM intact.

QTRAN drops the restriction: it learns an unrestricted joint value Q_jt(h, z, a) and ties the utilities
to it through the condition of Son et al. 2019 (Theorem 1)

    Σ_i Q(h_i, a_i) − Q_jt(h, z, a) + V(h, z)  =  0  if a = a*,   ≥ 0 otherwise,

enforced by two regularisers (L_opt, L_nopt). IGM then holds only as far as the regularisers reach the
condition, so we check it with ``torchrl_vd.check_igm`` after training.

Two later answers join the comparison table: Weighted QMIX (CW-QMIX, OW-QMIX; Rashid et al. 2020) keeps
QMIX's monotonic Q_tot — so IGM holds by construction — but weights its projection toward an unrestricted
Q̂* so that the optimal joint action is fitted first; QPLEX (Wang et al. 2021) makes the joint value
IGM-complete through a duplex dueling decomposition, so its Q_tot can reproduce the payoff itself.

This tutorial uses the library's one-call trainer ``vd.train`` (tutorial 01 shows the loop it runs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

torch.set_num_threads(1)  # small nets on a (possibly shared) 2-core CPU: one thread is fastest

import torchrl_vd as vd  # noqa: E402  (after set_num_threads on purpose)
from torchrl_vd.train.plot import new_figure, savefig  # noqa: E402  (figures without pyplot, one PNG format)

ACTIONS = "ABC"


# ------------------------------------------------------------------------------------------ config
@dataclass
class Config:
    algos: tuple[str, ...] = ("vdn", "qmix", "qtran", "cw-qmix", "ow-qmix", "qplex")
    """Algorithms to compare (any registered name: also ``qtran-alt``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds per algorithm; the tables and the heat map show the first one."""
    batches: int = 100
    """Collected batches of 256 one-step episodes (ε = 1: every joint action equally often)."""
    updates_per_batch: int = 20
    """Gradient steps per batch; 100 x 20 = 2000 updates (the paper trains ~20k; QTRAN needs about 400 here)."""
    out: str | None = None
    """Where the heat map goes (``--out DIR``); default: a fresh temporary directory."""
    train_kwargs: dict = field(default_factory=dict)
    """Any other ``vd.TrainConfig`` field (e.g. ``{"mixer_kwargs": {"mixing_embed_dim": 64}}``). Everything not set
    here or in ``train_on_game`` comes from each algorithm's defaults and its preset for matrix games
    (docs/PRESETS.md: QPLEX trains with wjh720/QPLEX's own matrix-game settings, QTRAN's Q_jt reads the agents'
    observations)."""


QUICK = dict(seeds=(0,), batches=25, updates_per_batch=16)  # 400 updates: QTRAN already reaches 8


def parse_args() -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, 400 updates per algorithm (about 30 s)")
    p.add_argument("--out", default=None, help="directory for the heat map (default: a temporary one)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: 0 1 2; quick: 0)")
    args = p.parse_args()
    cfg = replace(Config(), **QUICK) if args.quick else Config()
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(args.seeds))
    return replace(cfg, out=args.out)


# ------------------------------------------------------------------------------------------ the game
# Two agents, three actions, one step, one dummy state. (A, A) pays 8, but any other action next to A
# pays -12: with uniform data the *average* value of action A is terrible for each agent alone.
PAYOFF = vd.make_env("matrix/qtran", num_envs=1).payoff  # [3, 3]


def train_on_game(algo: str, seed: int, cfg: Config, run_dir: Path) -> vd.TrainResult:
    """One run of ``algo`` on matrix/qtran with uniform exploration (ε = 1 throughout, as in the paper)."""
    fields = dict(
        algo=algo,
        env="matrix/qtran",
        num_envs=256,
        frames_per_batch=256,  # one batch = 256 one-step episodes
        frames=256 * cfg.batches,
        updates_per_batch=cfg.updates_per_batch,
        eps_start=1.0,  # ε = 1 from start ...
        eps_end=1.0,  # ... to end: the data never depend on what the agents learn
        eval_episodes=4,
        seed=seed,
        progress=False,
        out_dir=str(run_dir / f"{algo}-{seed}"),
    )
    train_cfg = vd.TrainConfig(**{**fields, **cfg.train_kwargs})
    return vd.train(train_cfg)


# ------------------------------------------------------------------------------------------ reading a run
@dataclass
class Outcome:
    algo: str
    seed: int
    table: torch.Tensor  # [3, 3] learned Q_tot (VDN/QMIX/W-QMIX/QPLEX) or Q_jt (QTRAN) for every joint action
    utilities: torch.Tensor  # [2, 3] each agent's Q(h_i, ·)
    greedy: tuple[int, int]  # the decentralized greedy joint action (each agent's argmax)
    payoff: float  # what that joint action really pays
    igm: bool  # check_igm's verdict
    seconds: float
    condition: torch.Tensor | None = None  # QTRAN: Σ_i Q_i − Q_jt + V for every joint action [3, 3]


def read_outcome(algo: str, seed: int, result: vd.TrainResult, seconds: float) -> Outcome:
    td = vd.make_env("matrix/qtran", num_envs=1).reset()  # the game's only state
    loss = result.loss_module
    # check_igm evaluates the centralized value of *every* joint action through the loss's own
    # networks (Q_tot for VDN/QMIX/Weighted QMIX/QPLEX, Q_jt for QTRAN) and compares its argmax with the
    # agents' argmaxes.
    report = vd.check_igm(loss, td)
    table = report.joint_q[0]  # [3, 3]
    greedy = tuple(report.local_argmax[0].tolist())
    condition = None
    with torch.no_grad():
        utilities = loss.local_q_values(td)[0]  # [n=2, A=3]
        if algo.startswith("qtran"):
            # QTRAN's condition (Son et al. 2019, Theorem 1), entry by entry:
            # Σ_i Q(h_i, a_i) − Q_jt(h, z, a) + V(h, z).
            v = loss.v_net(td["state"])[0, 0]
            summed = utilities[0].unsqueeze(1) + utilities[1].unsqueeze(0)  # [3, 3]: Q_1(a_1) + Q_2(a_2)
            condition = summed - table + v
    return Outcome(algo, seed, table, utilities, greedy, PAYOFF[greedy].item(), bool(report.holds.all()),
                   seconds, condition)


# ------------------------------------------------------------------------------------------ printing
def fmt_table(t: torch.Tensor, greedy: tuple[int, int] | None = None) -> list[str]:
    """A 3x3 table as text lines; the greedy joint action is starred."""
    lines = ["      " + "".join(f"{a:>8}" for a in ACTIONS)]
    for i in range(3):
        cells = []
        for j in range(3):
            star = "*" if greedy == (i, j) else " "
            cells.append(f"{round(t[i, j].item(), 2) + 0.0:7.2f}{star}")  # + 0.0: no "-0.00"
        lines.append(f"   {ACTIONS[i]}  " + "".join(cells))
    return lines


def print_side_by_side(blocks: list[tuple[str, list[str]]]) -> None:
    width = max(len(line) for _, lines in blocks for line in lines) + 4
    print("".join(f"{title:<{width}}" for title, _ in blocks))
    for row in zip(*(lines for _, lines in blocks)):
        print("".join(f"{line:<{width}}" for line in row))


# ------------------------------------------------------------------------------------------ the figure
def save_heatmap(outcomes: dict[str, Outcome], path: Path) -> Path:
    from matplotlib.patches import Rectangle

    panels = [("payoff (optimum 8 at A,A)", PAYOFF, None)]
    for algo, o in outcomes.items():
        name = {"vdn": "VDN  Q_tot", "qmix": "QMIX  Q_tot", "qtran": "QTRAN  Q_jt", "qtran-alt": "QTRAN-alt  Q_jt",
                "cw-qmix": "CW-QMIX  Q_tot", "ow-qmix": "OW-QMIX  Q_tot", "qplex": "QPLEX  Q_tot"}
        title = f"{name.get(algo, algo)}\ngreedy {ACTIONS[o.greedy[0]]},{ACTIONS[o.greedy[1]]} pays {o.payoff:g}"
        panels.append((title, o.table, o.greedy))
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig, axes = new_figure(rows, cols, figsize=(3.1 * cols, 3.9 * rows))
    axes = list(getattr(axes, "flat", [axes]))
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (title, t, greedy) in zip(axes, panels):
        ax.imshow(t.numpy(), cmap="RdBu", vmin=-12, vmax=12)
        for i in range(3):
            for j in range(3):
                bold = greedy == (i, j)
                ax.text(j, i, f"{round(t[i, j].item(), 1) + 0.0:.1f}", ha="center", va="center", fontsize=11,
                        fontweight="bold" if bold else "normal", color="white" if abs(t[i, j]) > 7 else "black")
        if greedy is not None:  # frame the joint action the agents actually play (their own argmaxes)
            ax.add_patch(Rectangle((greedy[1] - 0.5, greedy[0] - 0.5), 1, 1, fill=False, lw=3, ec="black"))
        ax.set_xticks(range(3), list(ACTIONS))
        ax.set_yticks(range(3), list(ACTIONS))
        ax.set_xlabel("agent 2")
        ax.set_ylabel("agent 1")
        ax.set_title(title, fontsize=10)
    fig.suptitle("QTRAN matrix game, uniform data: learned joint values (box = decentralized greedy action)",
                 fontsize=11)
    return savefig(fig, path)


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    cfg = parse_args()
    print(f"QTRAN matrix game, uniform exploration; {cfg.batches * cfg.updates_per_batch} updates per run, "
          f"seeds {list(cfg.seeds)}")
    print("payoff:")
    print("\n".join(fmt_table(PAYOFF, (0, 0))))

    runs: dict[str, list[Outcome]] = {algo: [] for algo in cfg.algos}
    with tempfile.TemporaryDirectory() as tmp:  # train()'s run directories are not kept
        for seed in cfg.seeds:
            for algo in cfg.algos:
                t0 = time.perf_counter()
                result = train_on_game(algo, seed, cfg, Path(tmp))
                o = read_outcome(algo, seed, result, time.perf_counter() - t0)
                runs[algo].append(o)
                print(f"  {algo:<9} seed {seed}: greedy ({ACTIONS[o.greedy[0]]},{ACTIONS[o.greedy[1]]}) "
                      f"pays {o.payoff:5.1f}; IGM holds {o.igm}; {o.seconds:.1f} s")

    first = {algo: outs[0] for algo, outs in runs.items()}  # seed cfg.seeds[0]

    # ---- the learned tables, side by side (seed 0). * = the agents' decentralized greedy joint action.
    print("\nLearned centralized values (first seed; * = each agent's own argmax, played together):")
    print_side_by_side([(f"{algo} ({'Q_jt' if algo.startswith('qtran') else 'Q_tot'})", fmt_table(o.table, o.greedy))
                        for algo, o in first.items()])

    # VDN can only represent Q_1(a_1) + Q_2(a_2). Trained by least squares on uniform data it converges
    # to the additive fit  row-mean + column-mean − grand-mean  of the payoff (Son et al. 2019, Table 1) — whose
    # maximum sits in the {B, C}² block: the -12s drag the value of A down for each agent alone.
    additive_fit = PAYOFF.mean(1, keepdim=True) + PAYOFF.mean(0, keepdim=True) - PAYOFF.mean()
    if "vdn" in first:
        err = (first["vdn"].table - additive_fit).abs().max().item()
        print(f"\nVDN vs the least-squares additive fit of the payoff: max |difference| = {err:.2f}")
    # QMIX is monotonic in each Q_i: raising Q_1(A) can only raise Q_tot on the whole row A. It fits the
    # {B,C}² block (0) and gives row and column A one compromise value (≈ the mean −8 of 8 and four −12s).

    # ---- QTRAN: its condition (Son et al. 2019, Theorem 1) Σ_i Q_i − Q_jt + V is 0 at a* and ≥ 0 elsewhere.
    for algo, o in first.items():
        if o.condition is not None:
            print(f"\n{algo}: Σ_i Q(h_i,a_i) − Q_jt(h,z,a) + V(h,z)  (= 0 at a* = greedy, ≥ 0 elsewhere)")
            print("\n".join(fmt_table(o.condition, o.greedy)))
            print(f"{algo}: per-agent utilities Q(h_i, ·): agent 1 {o.utilities[0].numpy().round(2)}, "
                  f"agent 2 {o.utilities[1].numpy().round(2)}")

    # ---- the comparison table: every algorithm, first seed, and how many seeds reached the optimum
    print("\nComparison (first seed; the centralized value's max vs what the agents' own argmaxes play):")
    print(f"  {'algo':<9} {'value':<6} {'max value':>9} {'greedy':>7} {'payoff':>7} {'IGM holds':>10} {'seeds at 8':>11}")
    for algo, outs in runs.items():
        o = outs[0]
        kind = "Q_jt" if algo.startswith("qtran") else "Q_tot"
        print(f"  {algo:<9} {kind:<6} {o.table.max().item():9.2f} {ACTIONS[o.greedy[0]] + ',' + ACTIONS[o.greedy[1]]:>7} "
              f"{o.payoff:7.1f} {str(o.igm):>10} {sum(x.payoff == 8.0 for x in outs):>7}/{len(outs)}")
    print("  VDN/QMIX settle for 0; Weighted QMIX's monotonic Q_tot, weighted toward Q̂*'s optimum, and QPLEX's "
          "IGM-complete Q_tot put their maximum on (A, A).")

    # ---- check_igm's verdicts
    print("\ncheck_igm verdicts (does argmax of the centralized value == the agents' own argmaxes?):")
    for algo, outs in runs.items():
        verdicts = ", ".join(f"seed {o.seed}: {o.igm}" for o in outs)
        print(f"  {algo:<9} {verdicts}")
    print("  VDN/QMIX: IGM holds by construction — they are consistent, just consistently wrong (payoff 0).")
    print("  CW/OW-QMIX: IGM holds by construction too (monotonic Q_tot); QPLEX: by its duplex dueling form.")

    out_dir = Path(cfg.out) if cfg.out else Path(tempfile.mkdtemp(prefix="tutorial03-"))
    fig = save_heatmap(first, out_dir / "qtran_heatmap.png")
    print(f"\nheat map: {fig}")

    # One line to grep: greedy payoffs of the first seed, check_igm's verdicts, seeds that reached 8.
    solved = ", ".join(f"{a} {sum(o.payoff == 8.0 for o in runs[a])}/{len(cfg.seeds)}" for a in cfg.algos)
    payoffs = "; ".join(f"{a} {first[a].payoff:g}" for a in cfg.algos)
    igm = ", ".join(f"{a} {first[a].igm}" for a in cfg.algos)
    print(f"RESULT: greedy payoff (optimum 8): {payoffs}; IGM holds: {igm}; seeds reaching 8: {solved}")


if __name__ == "__main__":
    main()
