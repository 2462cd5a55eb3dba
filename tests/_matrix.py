"""Test helper: the QTRAN matrix game trained by ``vd.train`` (tests/test_wqmix.py, tests/test_qplex.py).

Payoff [[8, −12, −12], [−12, 0, 0], [−12, 0, 0]] (Son et al. 2019), one step, so the TD target is the
reward. Uniform exploration throughout (ε = 1, as tests/test_qtran.py); 64 one-step episodes per
collected batch, 20 gradient steps of 64 transitions after each. Two optimiser settings:

* ``ADAM``: Adam at lr 2e-3, tests/test_qtran.py's (where VDN and QMIX settle for payoff 0);
* ``RMSPROP``: the references' (pymarl ``src/config/default.yaml``: RMSprop, lr 5e-4, alpha 0.99,
  eps 1e-5; ``TrainConfig(optimizer="rmsprop")`` uses the same alpha and eps).
"""

from __future__ import annotations

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.envs.matrix import NAMED_PAYOFFS

PAYOFF = torch.tensor(NAMED_PAYOFFS["qtran"], dtype=torch.float32)
ADAM = dict(optimizer="adam", lr=2e-3)
RMSPROP = dict(optimizer="rmsprop", lr=5e-4)
UPDATES_PER_BATCH = 20
MATRIX = dict(env="matrix/qtran", num_envs=64, frames_per_batch=64, updates_per_batch=UPDATES_PER_BATCH, batch_size=64,
              eps_start=1.0, eps_end=1.0, target_update=100, hidden=(32,), eval_episodes=4, progress=False)


def train_matrix(algo: str, seed: int, out_dir, *, updates: int, optim: dict):
    """Train ``algo`` for ``updates`` gradient steps; return (greedy joint action, its payoff, IGM report, result)."""
    frames = 64 * updates // UPDATES_PER_BATCH
    result = vd.train(vd.TrainConfig(algo=algo, seed=seed, out_dir=str(out_dir), frames=frames, **optim, **MATRIX))
    report = vd.check_igm(result.loss_module, result.env.reset()[:1])
    greedy = tuple(report.local_argmax[0].tolist())
    assert result.summary["final_eval_return"] == pytest.approx(PAYOFF[greedy].item())  # the greedy policy's return
    return greedy, PAYOFF[greedy].item(), report, result
