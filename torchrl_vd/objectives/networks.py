"""How a loss holds its networks: torchrl's functional parameters and target copies, with our compute modules.

TorchRL's code reads a loss's networks by name (``DQNTrainer`` syncs the collector from ``local_value_network``,
``SoftUpdate``/``HardUpdate`` find ``target_<name>_params``, ``QMixerLoss`` checkpoints name their parameters
``local_value_network_params.module.0.module...``). :class:`NetworkRegistry` registers each network under such a
name with ``convert_to_functional`` — the module the user gave (a Q-value policy, a mixer ``TensorDictModule``) or,
for a bare network, a policy built around it — and computes with a plain tensor-in/tensor-out module taken from it
(``compute``: our agent or mixer, or a wrapper sharing the user's parameters). The online compute module holds the
very parameters torchrl registers; a deep copy of the registered module is bound once to the target parameters,
which the updaters write in place, so the target compute module always sees the current target weights.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

from torch import nn


def _identity(module: nn.Module) -> nn.Module:
    return module


class NetworkRegistry:
    """Mixin of :class:`~torchrl_vd.objectives.common.ValueDecompositionLoss` (a torchrl ``LossModule``): named
    networks with online and target parameters, their compute modules, reset and legacy state-dict names."""

    def _init_registry(self) -> None:
        self._registered: dict[str, nn.Module] = {}  # name -> the module torchrl sees (its params are registered)
        self._computes: dict[str, nn.Module] = {}  # name -> the online module the loss calls
        self._target_modules: dict[str, nn.Module] = {}  # name -> the registered module's copy on target params
        self._target_computes: dict[str, nn.Module] = {}  # name -> the target copy's compute module
        self._compute_fns: dict[str, Callable[[nn.Module], nn.Module]] = {}
        self._compute_paths: dict[str, tuple[str, ...] | None] = {}  # where the compute module sits in the registered
        self._aliases: dict[str, str] = {}  # a compute name the losses use ("agent_net") -> registered name
        self._legacy_keys: dict[str, str] = {}  # state-dict names of earlier releases -> today's
        self._register_load_state_dict_pre_hook(self._rename_legacy_keys)
        # γ and λ are hyperparameters (make_value_estimator), not state: torchrl's estimators keep them as buffers,
        # which would make a state dict depend on whether the estimator was built yet (it is built on first use)
        self._register_state_dict_hook(_drop_estimator_entries)
        self._register_load_state_dict_pre_hook(_drop_incoming_estimator_entries)
        self.register_load_state_dict_post_hook(_forgive_missing_estimator_entries)

    def add_network(self, name: str, module: nn.Module, *, compute: Callable[[nn.Module], nn.Module] | None = None,
                    alias: str | None = None) -> nn.Module:
        """Register ``module`` as ``self.<name>`` with ``<name>_params`` and ``target_<name>_params``; return the
        compute module ``compute(module)`` (default: ``module`` itself), also reachable as ``self.<alias>``-style
        through :meth:`compute_module` and :meth:`target` under ``alias`` or ``name``."""
        compute = compute or _identity
        with warnings.catch_warnings():  # torchrl asks for class annotations of every name; ours are dynamic
            warnings.filterwarnings("ignore", message="The name .* wasn't part of the annotations")
            self.convert_to_functional(module, name, create_target_params=self.delay_value)
        self._registered[name], self._compute_fns[name] = module, compute
        self._computes[name] = online = compute(module)
        paths = {id(m): tuple(path.split(".")) if path else () for path, m in module.named_modules()}
        self._compute_paths[name] = paths.get(id(online))  # None when compute wraps the user's module
        if alias is not None:
            self._aliases[alias] = name
            self._record_legacy_names(alias, name, module, online)
        if self.delay_value:
            target = copy.deepcopy(module)
            self._modules[f"target_{name}_params"].to_module(target)
            self._target_modules[name], self._target_computes[name] = target, compute(target)
        return online

    def _name(self, name: str) -> str:
        return self._aliases.get(name, name)

    def compute_module(self, name: str) -> nn.Module:
        """The online module the loss calls for network ``name`` (or its alias)."""
        return self._computes[self._name(name)]

    def target(self, name: str) -> nn.Module:
        """The target copy θ̄ of network ``name`` (or its alias) to call; the online one if ``delay_value=False``."""
        name = self._name(name)
        return self._target_computes.get(name) or self._computes[name]

    def target_module(self, name: str) -> nn.Module:
        """The registered module's copy bound to the target parameters (the online module if ``delay_value=False``)."""
        return self._target_modules.get(name) or self._registered[name]

    def network_params(self, name: str, target: bool = False):
        """The (target) parameters of network ``name``'s compute module: the view into ``<registered>_params``
        rooted where the compute module sits in the registered one (``agent_net_params`` of earlier releases)."""
        registered = self._name(name)
        params = self._modules[f"{'target_' if target and self.delay_value else ''}{registered}_params"]
        path = self._compute_paths.get(registered)
        if path is None:
            raise AttributeError(f"{name!r} wraps the user's module (it is not a submodule of "
                                 f"{registered!r}): use {registered}_params.")
        return params.get(path) if path else params

    def network_names(self) -> list[str]:
        """The registered networks' names, in registration order."""
        return list(self._registered)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        for name, target in self._target_modules.items():  # .to(device) made new target tensors: rebind
            self._modules[f"target_{name}_params"].to_module(target)  # (no getattr: torchrl warns there)
        return out

    def reset_parameters_recursive(self) -> None:
        """Re-initialise every registered network's online and target parameters in place (each layer's own
        ``reset_parameters``), as torchrl's ``LossModule.reset_parameters_recursive`` does for its networks."""
        for name, module in self._registered.items():
            keys = [f"{name}_params"] + ([f"target_{name}_params"] if self.delay_value else [])
            for key in (k for k in keys if k in self._modules):  # (a network without parameters has none)
                with self._modules[key].to_module(module, preserve_module_state=False):
                    reset_parameters(module)
        for key, module in self._modules.items():  # plain submodules (MAVEN's discriminator: no target copy)
            if not key.endswith("_params"):
                reset_parameters(module)

    # ------------------------------------------------------------------ state dicts of earlier releases
    def _record_legacy_names(self, alias: str, name: str, module: nn.Module, online: nn.Module) -> None:
        """Earlier releases registered the compute module itself as ``<alias>``: map its parameter names onto the
        registered module's (by tensor identity), so that their checkpoints still load."""
        registered = {id(t): key for key, t in module.state_dict(keep_vars=True).items()}
        for key, tensor in online.state_dict(keep_vars=True).items():
            if id(tensor) in registered:
                for prefix in ("", "target_"):
                    self._legacy_keys[f"{prefix}{alias}_params.{key}"] = f"{prefix}{name}_params.{registered[id(tensor)]}"

    def _rename_legacy_keys(self, state_dict, prefix, *args) -> None:
        for old, new in self._legacy_keys.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)


ESTIMATOR_PREFIX = "_value_estimator."  # where torchrl's LossModule holds its value estimator


def _drop_estimator_entries(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + ESTIMATOR_PREFIX)]:
        del state_dict[key]


def _drop_incoming_estimator_entries(state_dict, prefix, *args) -> None:
    _drop_estimator_entries(None, state_dict, prefix, None)  # e.g. a QMixerLoss state dict carries its γ


def _forgive_missing_estimator_entries(module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if ESTIMATOR_PREFIX not in k]


def reset_parameters(module: nn.Module) -> None:
    """``module.reset_parameters()`` where it has one (it then covers its submodules), else each child's, recursively."""
    own = getattr(module, "reset_parameters", None)
    if callable(own):
        own()
        return
    for child in module.children():
        reset_parameters(child)


__all__ = ["NetworkRegistry", "reset_parameters"]
