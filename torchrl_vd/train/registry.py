"""Algorithm registry: each algorithm registers its builder where its loss is defined.

A builder turns ``(TrainConfig, EnvInfo)`` into :class:`AlgoParts`; ``train()``, the CLI's ``list`` and
the tests iterate this one table, so a newly registered algorithm is trained end to end for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn


@dataclass
class AlgoParts:
    """What an algorithm contributes to the shared training loop.

    Attributes:
        loss_module: the ValueDecompositionLoss (its ``agent_net`` drives the policies).
        env_transforms: callables ``() -> Transform`` appended to the train and eval envs (e.g. MAVEN's
            per-episode latent z).
        extra_modules: other trainable modules (not part of the loss) saved in checkpoints.
        after_batch: optional hook ``(collected_td, frames) -> dict of metrics``, called once per
            collected batch (e.g. MAVEN's z-policy REINFORCE update); its metrics reach
            ``TrainResult.metrics`` and TensorBoard.
        metric_columns: names among the ``after_batch`` metrics that also get a metrics.csv column
            (the file keeps a fixed header, so it must know them before the first row).
    """

    loss_module: Any
    env_transforms: list[Callable[[], Any]] = field(default_factory=list)
    extra_modules: dict[str, nn.Module] = field(default_factory=dict)
    after_batch: Callable[..., dict] | None = None
    metric_columns: tuple[str, ...] = ()


@dataclass
class AlgoSpec:
    name: str
    builder: Callable[..., AlgoParts]
    description: str
    presets: dict[str, Any]


ALGOS: dict[str, AlgoSpec] = {}


def register_algo(name: str, *, description: str, presets: dict[str, Any] | None = None):
    """Register ``builder(cfg, env_info) -> AlgoParts`` under ``name`` (``presets``: config defaults)."""

    def deco(builder):
        ALGOS[name] = AlgoSpec(name, builder, description, dict(presets or {}))
        return builder

    return deco


def algorithms() -> dict[str, AlgoSpec]:
    """All registered algorithms (imports the loss modules that register them)."""
    import torchrl_vd.train.build  # noqa: F401  (registers vdn/qmix and imports qtran/maven)

    return dict(ALGOS)
