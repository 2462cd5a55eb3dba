"""The trainer's environments: ``make_env`` plus episode-return tracking and the agents'/algorithm's transforms."""

from __future__ import annotations

from torchrl.envs import EnvBase, RewardSum, TransformedEnv

from torchrl_vd.envs.registry import make_env
from torchrl_vd.envs.transforms import agent_transforms
from torchrl_vd.keys import EPISODE_REWARD, GROUP, REWARD


def build_env(cfg, algo_transforms=(), agent=None, *, num_envs: int | None = None, seed: int | None = None,
              base: EnvBase | None = None) -> TransformedEnv:
    """The env of ``cfg`` with ``RewardSum`` (``"episode_reward"``), the agent's and the algorithm's transforms.

    Args:
        cfg: the run's ``TrainConfig`` (env, env_kwargs, num_envs, device, seed).
        algo_transforms: factories ``() -> Transform`` (``AlgoParts.env_transforms``).
        agent: the agent network; recurrent agents add their hidden-state transforms
            (:func:`~torchrl_vd.envs.transforms.agent_transforms`).
        num_envs / seed: override ``cfg.num_envs`` / ``cfg.seed`` (evaluation envs).
        base: an env already made from ``cfg`` (so that a run builds its training env once).
    """
    if base is None:
        base = make_env(cfg.env, num_envs=num_envs or cfg.num_envs, device=cfg.device,
                        seed=cfg.seed if seed is None else seed, **cfg.env_kwargs)
    env = TransformedEnv(base, RewardSum(in_keys=[REWARD], out_keys=[EPISODE_REWARD]))
    if agent is not None:
        for t in agent_transforms(agent, env, getattr(base, "group", GROUP)):
            env.append_transform(t)
    for make_transform in algo_transforms:
        env.append_transform(make_transform())
    return env


def horizon(env) -> int:
    """The env's episode limit (``max_steps``), else 1000: how long a rollout must run to end every episode."""
    for obj in (env, getattr(env, "base_env", None)):
        h = getattr(obj, "max_steps", None)
        if isinstance(h, int) and h > 0:
            return h
    return 1000
