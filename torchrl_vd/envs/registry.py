"""The ``make_env`` registry: one name space ``family/task`` for every environment adapter.

Adapters register a *family* factory where they are defined (``@register_env_family("vmas", ...)``),
so ``make_env``, ``torchrl-vd list`` and the tests all iterate the same table.
Every environment built here follows the key conventions of docs/CONTRACT.md:
``("agents", "observation")`` ``[*B, n, F]``, ``("agents", "action")`` ``[*B, n]`` categorical,
optional ``("agents", "action_mask")`` ``[*B, n, A]``, root ``"state"``, team ``"reward"`` ``[*B, 1]``,
``"done"`` / ``"terminated"`` ``[*B, 1]``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torchrl.envs import EnvBase

from torchrl_vd.keys import ACTION, ACTION_MASK, BATTLE_WON, GROUP, OBSERVATION, STATE, TRUNCATED



@dataclass
class EnvFamily:
    """A registered adapter: ``factory(task, num_envs=, device=, seed=, **kwargs) -> EnvBase``."""

    name: str
    factory: Callable[..., EnvBase]
    examples: list[str]
    description: str
    extra: str | None = None  # pip extra that provides the optional dependency
    tasks: Callable[[], list[str]] | None = None  # full task list, when cheap to compute
    many_seeds: bool = False  # the factory batches N seeds' envs as one env of N x num_envs (TrainConfig.seeds)


_FAMILIES: dict[str, EnvFamily] = {}
# Modules imported lazily by make_env/list_envs so that registering does not import vmas/pettingzoo.
_ADAPTER_MODULES = (
    "torchrl_vd.envs.matrix",
    "torchrl_vd.envs.vmas",
    "torchrl_vd.envs.pettingzoo",
    "torchrl_vd.envs.lbf",
    "torchrl_vd.envs.rware",
    "torchrl_vd.envs.smax",
)


def register_env_family(
    name: str,
    *,
    examples: list[str],
    description: str,
    extra: str | None = None,
    tasks: Callable[[], list[str]] | None = None,
    many_seeds: bool = False,
):
    """Decorator registering ``factory(task, *, num_envs, device, seed, **kwargs)`` under ``name/``.

    ``many_seeds``: the factory's ``num_envs`` envs are independent copies in one batch, so N seeds of a run can
    share one env of N x ``num_envs`` (``TrainConfig.seeds``)."""

    def deco(factory):
        _FAMILIES[name] = EnvFamily(name, factory, list(examples), description, extra, tasks, many_seeds)
        return factory

    return deco


def _load_adapters() -> None:
    # Adapter modules import their optional dependency lazily (inside the factory), so importing
    # them here is cheap and never fails for a missing vmas/pettingzoo.
    for mod in _ADAPTER_MODULES:
        importlib.import_module(mod)


def env_families() -> dict[str, EnvFamily]:
    """All registered families (importing the adapter modules first)."""
    _load_adapters()
    return dict(_FAMILIES)


def _close(word: str, candidates: list[str]) -> str:
    matches = difflib.get_close_matches(word, candidates, n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def make_env(
    name: str,
    *,
    num_envs: int = 1,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    **kwargs,
) -> EnvBase:
    """Build a registered environment, e.g. ``make_env("vmas/balance", num_envs=64, seed=0)``.

    Args:
        name: ``"family/task"`` (``torchrl-vd list`` prints them).
        num_envs: number of vectorized copies; the env's batch size is ``[num_envs]``.
        device: torch device for the env's tensors.
        seed: seeds the env (and its reset noise).
        **kwargs: forwarded to the family factory (e.g. ``max_steps``, ``payoff``, ``n_agents``).

    Examples:
        >>> import torch
        >>> env = make_env("matrix/qtran", num_envs=3, seed=0)  # payoff [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]
        >>> td = env.reset()
        >>> td["agents", "observation"].shape  # [num_envs, n_agents, F]
        torch.Size([3, 2, 1])
        >>> td["agents", "action"] = torch.tensor([[0, 0], [0, 1], [2, 1]])  # one joint action per env
        >>> out = env.step(td)["next"]
        >>> out["reward"].squeeze(-1).tolist(), out["done"].squeeze(-1).tolist()  # payoff[a_1, a_2], one step
        ([8.0, -12.0, 0.0], [True, True, True])
    """
    families = env_families()
    if not isinstance(name, str) or "/" not in name:
        raise ValueError(
            f"Environment names have the form 'family/task' (families: {sorted(families)}), "
            f"got {name!r}.{_close(str(name), [f'{f}/{e}' for f in families for e in families[f].examples])}"
        )
    family, task = name.split("/", 1)
    if family not in families:
        raise ValueError(
            f"Unknown environment family {family!r} in {name!r}; registered families: "
            f"{sorted(families)}.{_close(family, list(families))}"
        )
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    try:
        return families[family].factory(task, num_envs=int(num_envs), device=torch.device(device), seed=seed, **kwargs)
    except AssertionError as err:  # a simulator's bare `assert` on its arguments
        raise ValueError(f"{name} rejected its arguments {kwargs or '(defaults)'} (num_envs={num_envs}): "
                         f"{_failed_assert(err)}. Check the values against the {family} task's documentation."
                         ) from err
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise ValueError(f"{name} does not take the argument(s) given in env_kwargs {sorted(kwargs)}: {err}. "
                         f"Check the spelling against the {family} task's arguments.") from err
    except (ValueError, RuntimeError, IndexError, KeyError, ZeroDivisionError) as err:
        if not kwargs or _raised_by_us(err):
            raise  # our adapters' own errors already name the argument and the fix
        raise ValueError(f"{name} rejected its arguments {kwargs} (num_envs={num_envs}): the simulator raised "
                         f"{type(err).__name__}: {err}. Check the values against the {family} task's "
                         "documentation.") from err


def _raised_by_us(err: BaseException) -> bool:
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(Path(__file__).resolve().parents[1])


def _failed_assert(err: AssertionError) -> str:
    """The message of a bare ``assert``, else its source line and place (``assert n_agents > 1`` at x.py:12)."""
    import traceback

    if str(err):
        return f"AssertionError: {err}"
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"`{frame.line}` failed ({Path(frame.filename).name}:{frame.lineno})"


def unknown_task_error(family: str, task: str, known: list[str]) -> ValueError:
    """The error every adapter raises for an unknown task name (with close matches)."""
    return ValueError(
        f"Unknown {family} task {task!r}.{_close(task, known)} Run `torchrl-vd list` for all names."
    )


def missing_dependency_error(family: str, package: str, extra: str) -> ImportError:
    """The error every adapter raises when its optional dependency is not installed."""
    return ImportError(
        f"The {family!r} environments need the '{package}' package, which is not installed. "
        f"Install it with: pip install 'torchrl-vd[{extra}]'"
    )


@dataclass
class EnvInfo:
    """What the algorithm side needs to know about an environment (read off its specs)."""

    n_agents: int
    n_actions: int
    obs_shape: tuple[int, ...]
    state_shape: tuple[int, ...]
    has_action_mask: bool
    batch_size: tuple[int, ...]
    group: str = GROUP
    has_battle_won: bool = False
    """The env marks won episodes (``("next", "battle_won")``, SMAX): the trainer logs win rates."""
    has_truncated: bool = True
    """The env reports time limits as ``truncated`` (apart from ``terminated``): the TD target can tell them apart."""


def describe_env(env: EnvBase, group: str = GROUP) -> EnvInfo:
    """Read n_agents, n_actions, observation/state shapes and mask presence off ``env``'s specs.

    Raises a clear error for continuous or heterogeneous action specs: value decomposition needs one
    discrete action set shared by all agents.

    Examples:
        >>> info = describe_env(make_env("matrix/two-step", num_envs=16))
        >>> info.n_agents, info.n_actions, info.obs_shape, info.state_shape, info.has_action_mask, info.batch_size
        (2, 2, (3,), (3,), False, (16,))
    """
    bs = tuple(env.batch_size)
    try:
        act_spec = env.full_action_spec[group, ACTION]
    except KeyError as err:
        raise ValueError(
            f"Environment has no ({group!r}, 'action') entry; its action keys are {env.action_keys}. "
            "torchrl_vd expects the multi-agent group layout of docs/CONTRACT.md (set group= to your group name)."
        ) from err
    if not hasattr(act_spec, "space") or not hasattr(act_spec.space, "n"):
        raise ValueError(
            f"Value decomposition needs discrete actions, but ({group!r}, 'action') has spec "
            f"{type(act_spec).__name__} (continuous?). Use a discrete-action env, e.g. VMAS with "
            "continuous_actions=False (make_env passes it by default)."
        )
    obs_spec = env.full_observation_spec[group, OBSERVATION]
    n_agents = obs_spec.shape[len(bs)]
    obs_shape = tuple(obs_spec.shape[len(bs) + 1 :])
    if STATE in env.full_observation_spec.keys():
        state_shape = tuple(env.full_observation_spec[STATE].shape[len(bs) :])
    else:
        state_shape = (n_agents * int(torch.tensor(obs_shape).prod()),)
    has_mask = (group, ACTION_MASK) in env.full_observation_spec.keys(True)
    return EnvInfo(
        n_agents=n_agents,
        n_actions=int(act_spec.space.n),
        obs_shape=obs_shape,
        state_shape=state_shape,
        has_action_mask=has_mask,
        batch_size=bs,
        group=group,
        has_battle_won=BATTLE_WON in env.full_observation_spec.keys(),
        has_truncated=TRUNCATED in env.full_done_spec.keys(),
    )
