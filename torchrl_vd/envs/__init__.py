"""Environment adapters behind one ``make_env`` registry (see registry.py)."""

from torchrl_vd.envs.registry import (
    EnvInfo,
    describe_env,
    env_families,
    make_env,
    register_env_family,
)

__all__ = ["EnvInfo", "describe_env", "env_families", "make_env", "register_env_family"]
