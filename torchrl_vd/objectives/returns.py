"""TD targets of the value estimators torchrl's ``QMixerLoss`` supports: TD(0), TD(1) and TD(λ), on tensors.

The losses compute their next-step values themselves (double Q, masks, recurrent unrolls) and hand them to
torchrl's functional estimators, instead of a ``ValueEstimatorBase.value_estimate`` that would run the networks
again through tensordicts; the estimator object the loss holds (``loss.value_estimator``, built by
``make_value_estimator``) carries γ, λ and the keys, as torchrl's losses' do.

Time runs along the last batch dimension, as in torchrl's estimators: a sequence batch ``[B, T]`` holds B
trajectories of T steps, and a flat batch ``[B]`` is read as one trajectory of B steps (meaningful for TD(1) and
TD(λ) only when the samples are consecutive steps; sample slices for them). TD(0) needs no time axis.
``steps_to_next_obs`` (torchrl's ``MultiStep``) discounts each step's bootstrap by γ^k.
"""

from __future__ import annotations

import torch
from torchrl.objectives.utils import ValueEstimators
from torchrl.objectives.value import TD0Estimator, TD1Estimator, TDLambdaEstimator
from torchrl.objectives.value.functional import td1_return_estimate, td_lambda_return_estimate

SUPPORTED = (ValueEstimators.TD0, ValueEstimators.TD1, ValueEstimators.TDLambda)
_ESTIMATOR_KINDS = ((TD0Estimator, ValueEstimators.TD0), (TD1Estimator, ValueEstimators.TD1),
                    (TDLambdaEstimator, ValueEstimators.TDLambda))


def kind_of(value_type, loss_name: str = "This loss") -> ValueEstimators:
    """The return ``value_type`` stands for: a ``ValueEstimators`` member as it is, or the kind of a torchrl
    estimator instance or class (``TD0Estimator``, ``TD1Estimator``, ``TDLambdaEstimator``, or subclasses)."""
    if isinstance(value_type, ValueEstimators):
        return value_type
    cls = value_type if isinstance(value_type, type) else type(value_type)
    for estimator, kind in _ESTIMATOR_KINDS:
        if issubclass(cls, estimator):
            return kind
    raise NotImplementedError(
        f"{loss_name} computes TD(0), TD(1) and TD(lambda) returns on its own values; got {cls.__name__}. Pass "
        "ValueEstimators.TD0/TD1/TDLambda or torchrl's TD0Estimator, TD1Estimator or TDLambdaEstimator."
    )


def td_target(kind: ValueEstimators, gamma: float, lmbda: float | None, reward: torch.Tensor, next_value: torch.Tensor,
              done: torch.Tensor, terminated: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """The target y of a value of shape ``[*B, F]`` (``F`` = 1 for a centralized value, n for per-agent values).

    * TD(0): y_t = r_t + γ^k (1 − terminated_t) V̄_{t+1};
    * TD(1): y_t = r_t + γ^k (1 − terminated_t) [y_{t+1} if the episode goes on at t+1, else V̄_{t+1}];
    * TD(λ): y_t = r_t + γ^k (1 − terminated_t) [(1 − λ) V̄_{t+1} + λ y_{t+1}] within an episode, the last step of a
      sequence (or an episode cut by ``done`` without ``terminated``) bootstrapping on V̄_{t+1}.

    ``reward``, ``done``, ``terminated`` broadcast to ``next_value``'s shape; ``steps`` ``[*B, 1]`` is k (default 1).
    """
    next_value = next_value.detach()
    shape = next_value.shape
    gamma_k = gamma if steps is None else gamma ** steps.to(next_value.dtype)  # [*B, 1] with MultiStep data
    if kind == ValueEstimators.TD0:
        return reward + gamma_k * (~terminated).to(next_value.dtype) * next_value
    flat = next_value.ndim == 2  # [B, F]: one trajectory along the batch
    args = [x.expand(shape) for x in (reward, done, terminated)]  # torchrl wants every input in the value's shape
    if not isinstance(gamma_k, float):
        gamma_k = gamma_k.expand(shape)
    if flat:  # [B, F] -> [1, B, F]: the batch is the time axis
        next_value, args = next_value.unsqueeze(0), [x.unsqueeze(0) for x in args]
        gamma_k = gamma_k if isinstance(gamma_k, float) else gamma_k.unsqueeze(0)
    reward, done, terminated = args
    if kind == ValueEstimators.TD1:
        out = td1_return_estimate(gamma_k, next_value, reward, done, terminated, time_dim=-2)
    elif kind == ValueEstimators.TDLambda:
        out = td_lambda_return_estimate(gamma_k, lmbda, next_value, reward, done, terminated, time_dim=-2)
    else:
        raise ValueError(f"Value type {kind!r}: the losses support {[v.name for v in SUPPORTED]}.")
    return out.squeeze(0) if flat else out


__all__ = ["SUPPORTED", "kind_of", "td_target"]
