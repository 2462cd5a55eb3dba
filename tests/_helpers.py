"""Test helpers shared by several test modules (tests/test_*.py)."""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager

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


@contextmanager
def env_family(name: str, factory, **kwargs):
    """``factory`` registered as the env family ``name`` (``register_env_family(name, **kwargs)``) inside the
    ``with`` block only; the registry is as it was after it (the tests' conftest checks that)."""
    from torchrl_vd.envs import registry

    previous = registry._FAMILIES.get(name)
    registry.register_env_family(name, **kwargs)(factory)
    try:
        yield name
    finally:
        if previous is None:
            del registry._FAMILIES[name]
        else:
            registry._FAMILIES[name] = previous


def mstep_config(algo, m, seed, frames, out_dir, **overrides):
    """The shared m-step setup (the authors' game: ``matrix/m-step`` shows branch 0 at t=0): same envs,
    budget, ε schedule (1 -> 0.01 over 100 frames, the authors' m-step config) and learner for both algorithms;
    GRU agents of width 64 (pymarl); RMSprop 5e-4; one update per collected episode (authors); hard target update
    every 200 updates; a buffer of ~1000 episodes; 32 sampled sequences of m steps per update."""
    from torchrl_vd.train import TrainConfig

    num_envs = overrides.pop("num_envs", 16)
    cfg = TrainConfig(
        algo=algo, env="matrix/m-step", env_kwargs={"steps": m}, num_envs=num_envs, frames=frames,
        frames_per_batch=num_envs * m, batch_size=32 * m, updates_per_batch=num_envs, buffer_size=1000 * m,
        optimizer="rmsprop", lr=5e-4, grad_clip=10.0, gamma=0.99, eps_start=1.0, eps_end=0.01, eps_frames=100,
        target_update=200, agent="gru", hidden=(64,), seed=seed, eval_episodes=8, progress=False,
        out_dir=str(out_dir), loggers=("csv",),
    )
    return cfg.with_overrides(overrides) if overrides else cfg
