"""Test helpers shared by the env adapter tests (tests/test_*_env.py)."""

from __future__ import annotations

import importlib.util

import torch


def run(env, actions):
    """Step with the given actions (auto-resetting done envs); returns the stacked transitions."""
    td = env.reset()
    out = []
    for a in actions:
        td.set(("agents", "action"), a)
        step, td = env.step_and_maybe_reset(td)
        out.append(step.clone())
    return torch.stack(out, dim=1)


def hide_package(monkeypatch, package: str) -> None:
    """Make ``importlib.util.find_spec(package)`` answer None, as if ``package`` were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
