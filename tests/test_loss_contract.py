"""The contract every loss module keeps (docs/CONTRACT.md "Losses"), checked on every loss in ``LOSSES``.

A new loss joins the suite with one entry in ``LOSSES``: a factory that builds it for the batch sizes
below and adds to the batch whatever entries it reads beyond torchrl_vd.testing.random_batch's (MAVEN:
the latent z). Each test asserts one contract item on small random batches:

(a) keys: every ``_AcceptedKeys`` field has a default, and ``set_keys(field=new)`` remaps it — the same
    batch with that entry renamed gives the identical loss; renamed in the batch alone it does not (a
    KeyError/ValueError or another value), so the entry is really read (except the case's ``unread``);
(b) ``use_group(name)`` moves every per-agent key;
(c) the input tensordict is unchanged except the written ``td_error`` [*B];
(d) target isolation: no gradient on target parameters; with γ = 0 the loss does not depend on the
    targets at all, with γ > 0 it does (they enter through the TD target only);
(e) the valid-step ``mask``: an all-False mask gives loss 0 and zero gradients;
(f) the output: a TensorDict of scalar ``loss*`` entries, ``loss`` finite and the only one with a graph.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_vd import (
    CentralQMixer,
    IQLLoss,
    MavenAgent,
    MavenDiscriminator,
    MavenLoss,
    MavenMixer,
    MixingQLoss,
    MLPAgent,
    QMixer,
    QPlexLoss,
    QPlexMixer,
    QTranJointQ,
    QTranLoss,
    QTranV,
    VDNMixer,
    WeightedQMixLoss,
)
from torchrl_vd.keys import GROUP
from torchrl_vd.objectives.common import ValueDecompositionLoss
from torchrl_vd.testing import random_batch

N, A, F, S, H = 3, 4, 5, 6, 8  # agents, actions, observation size, state size, hidden width
BATCH = (4, 5)  # [B, T]: sequence batches cover transition batches' code paths too
Z = 3  # MAVEN's latent size


# ------------------------------------------------------------------------------------------ the losses
def _vdn(td: TensorDict) -> ValueDecompositionLoss:
    return MixingQLoss(MLPAgent(N, A, F, hidden=(H,)), VDNMixer(N))


def _qmix(td: TensorDict) -> ValueDecompositionLoss:
    return MixingQLoss(MLPAgent(N, A, F, hidden=(H,)), QMixer(N, (S,), mixing_embed_dim=H, hypernet_embed=H))


def _qtran(variant: str) -> Callable[[TensorDict], ValueDecompositionLoss]:
    def factory(td: TensorDict) -> ValueDecompositionLoss:
        agent = MLPAgent(N, A, F, hidden=(H,))
        joint_q = QTranJointQ(N, A, (S,), QTranLoss.feature_dim(agent), embed_dim=H)
        return QTranLoss(agent, joint_q, QTranV((S,), embed_dim=H), variant=variant)

    return factory


def _weighted(weighting: str) -> Callable[[TensorDict], ValueDecompositionLoss]:
    def factory(td: TensorDict) -> ValueDecompositionLoss:
        return WeightedQMixLoss(MLPAgent(N, A, F, hidden=(H,)), QMixer(N, (S,), mixing_embed_dim=H, hypernet_embed=H),
                                CentralQMixer(N, (S,), embed_dim=H), MLPAgent(N, A, F, hidden=(H,)), weighting=weighting)

    return factory


def _qplex(td: TensorDict) -> ValueDecompositionLoss:
    return QPlexLoss(MLPAgent(N, A, F, hidden=(H,)), QPlexMixer(N, A, (S,), hypernet_embed=H, num_kernel=2,
                                                               adv_hypernet_embed=H))


def _iql(rewards: str) -> Callable[[TensorDict], ValueDecompositionLoss]:
    def factory(td: TensorDict) -> ValueDecompositionLoss:
        td["next", GROUP, "reward"] = torch.randn(*BATCH, N, 1)  # each agent's own reward, beside the team's
        return IQLLoss(MLPAgent(N, A, F, hidden=(H,)), rewards=rewards)

    return factory


def _maven(td: TensorDict) -> ValueDecompositionLoss:
    # the episode's latent z, one per sequence, also under "next" (the NoiseTransform's layout)
    z = torch.eye(Z)[torch.randint(Z, (BATCH[0], 1))].expand(*BATCH, Z)
    td["noise"] = td["next", "noise"] = z
    return MavenLoss(MavenAgent(N, A, F, noise_dim=Z, hidden=(H,)), MavenMixer(N, S, noise_dim=Z),
                     MavenDiscriminator(N, A, S, noise_dim=Z, hidden=H), noise_dim=Z)


@dataclass
class LossCase:
    factory: Callable[[TensorDict], ValueDecompositionLoss]
    """Builds the loss for N agents, A actions, F-sized observations, S-sized state; may add entries to the batch."""
    unread: set[str] = field(default_factory=lambda: {"rnn_hidden", "is_init"})
    """``_AcceptedKeys`` fields whose entries do not change this loss (feed-forward agents: no hidden state,
    no resets); test (a) checks the list both ways."""
    reported: set[str] = field(default_factory=set)
    """Output entries reported from elsewhere or diagnostics rather than loss terms (MAVEN's ``loss_rl``,
    Weighted QMIX's ``weight_mean``)."""
    target_free_at_gamma0: set[str] | None = None
    """Outputs that must not depend on the targets when γ = 0 (None: all of them). CW-QMIX's weights read
    the *target* Q̂* at the current step by design (wqmix max_q_learner: w = 1 where y > Q̂*(s, û*)), so
    only its central TD loss is target-free there."""


LOSSES: dict[str, LossCase] = {
    "vdn": LossCase(_vdn, unread={"rnn_hidden", "is_init", "state"}),  # Σ_i Q_i ignores the state
    "qmix": LossCase(_qmix),
    "qtran-base": LossCase(_qtran("base")),
    "qtran-alt": LossCase(_qtran("alt")),
    # MAVEN's agents are recurrent (stored hidden state, resets at is_init), and so is its discriminator
    "maven": LossCase(_maven, unread=set(), reported={"loss_rl"}),
    "cw-qmix": LossCase(_weighted("cw"), reported={"weight_mean"}, target_free_at_gamma0={"loss_central"}),
    "ow-qmix": LossCase(_weighted("ow"), reported={"weight_mean"}),
    "qplex": LossCase(_qplex),
    # independent learners: no mixer, so no state; they learn from the team reward or from each agent's own
    # (the team reward stays a required entry of every batch)
    "iql": LossCase(_iql("team"), unread={"rnn_hidden", "is_init", "state", "agent_reward"}),
    "iql-individual": LossCase(_iql("individual"), unread={"rnn_hidden", "is_init", "state"}),
}


def full_batch(seed: int = 0) -> TensorDict:
    """A random [B, T] batch holding every optional entry a loss may read, with values that matter:
    action masks, dead agents, terminated steps, a partly False valid mask, unequal priority weights,
    episode starts and a stored hidden state."""
    td = random_batch(n_agents=N, n_actions=A, obs_dim=F, batch=BATCH, state_dim=S, action_mask=True, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for prefix in ((), ("next",)):
        alive = torch.rand(*BATCH, N, generator=g) > 0.2
        alive[..., 0] = True
        td[(*prefix, GROUP, "alive")] = alive
    td["next", "terminated"] = torch.rand(*BATCH, 1, generator=g) < 0.3
    td["next", "done"] = td["next", "terminated"] | (torch.rand(*BATCH, 1, generator=g) < 0.3)  # + truncations
    td["mask"] = torch.rand(*BATCH, generator=g) > 0.25
    td["priority_weight"] = torch.rand(*BATCH, generator=g) + 0.5
    td["is_init"] = torch.rand(*BATCH, 1, generator=g) < 0.3
    td[GROUP, "rnn_hidden"] = torch.randn(*BATCH, N, H, generator=g)
    return td


@pytest.fixture(params=sorted(LOSSES))
def case(request):
    """``(name, LossCase, loss, batch)``: a fresh loss (seeded) and its full batch."""
    torch.manual_seed(0)
    td = full_batch()
    loss = LOSSES[request.param].factory(td)
    loss.make_value_estimator(gamma=0.9)
    return request.param, LOSSES[request.param], loss, td


def outputs(loss: ValueDecompositionLoss, td: TensorDictBase) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: v.clone() for k, v in loss(td).items()}


def assert_same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]) or (a[k].isnan() & b[k].isnan()).all(), f"{what}: {k} {a[k]} != {b[k]}"


def _renamed(key):
    """A new name for ``key`` in the same group (per-agent keys keep their [*B, n] batch)."""
    return (*key[:-1], f"{key[-1]}_renamed") if isinstance(key, tuple) else f"{key}_renamed"


def rename(td: TensorDict, old, new) -> TensorDict:
    """``td`` with ``old`` renamed ``new``, at the root and under ``"next"``, wherever it is present."""
    td = td.clone()
    tup = lambda k: k if isinstance(k, tuple) else (k,)  # noqa: E731
    for prefix in ((), ("next",)):
        if (*prefix, *tup(old)) in td.keys(True):
            td.rename_key_((*prefix, *tup(old)), (*prefix, *tup(new)))
    return td


# ------------------------------------------------------------------------------------------ (a) keys
def test_a_every_key_has_a_default_and_set_keys_remaps_it(case):
    name, spec, loss, td = case
    fields = dataclasses.fields(loss._AcceptedKeys)
    for f in fields:
        assert f.default is not dataclasses.MISSING, f"{name}: _AcceptedKeys.{f.name} has no default"
        assert getattr(loss.tensor_keys, f.name) == f.default
    expected = outputs(loss, td)
    for f in fields:
        if f.name == "priority":
            continue  # the written key: test_c
        old = getattr(loss.tensor_keys, f.name)
        new = _renamed(old)
        assert (old in td.keys(True) or ("next", *(old if isinstance(old, tuple) else (old,))) in td.keys(True)), \
            f"full_batch lacks {f.name} {old!r}: the rename would prove nothing"
        moved = rename(td, old, new)
        try:  # renamed in the batch alone: a read entry changes the loss (a required one is a clear error)
            stale = outputs(loss, moved)
        except (KeyError, ValueError):
            assert f.name not in spec.unread, f"{name}: {f.name} {old!r} is listed as unread but required"
        else:
            read = not torch.equal(stale["loss"], expected["loss"])
            assert read == (f.name not in spec.unread), f"{name}: {f.name} {old!r} read: {read}"
        loss.set_keys(**{f.name: new})
        try:
            assert getattr(loss.tensor_keys, f.name) == new
            assert_same(outputs(loss, moved), expected, f"{name}: set_keys({f.name}={new!r})")
        finally:
            loss.set_keys(**{f.name: old})


def test_a_the_written_priority_key_follows_set_keys(case):
    name, _, loss, td = case
    loss.set_keys(priority="my_priority")
    loss(td)
    assert "my_priority" in td.keys() and "td_error" not in td.keys()
    assert td["my_priority"].shape == td.batch_size


# ------------------------------------------------------------------------------------------ (b) group
def test_b_use_group_moves_every_per_agent_key(case):
    name, _, loss, td = case
    expected = outputs(loss, td)
    team = td.clone()
    team.rename_key_(GROUP, "team")
    team.rename_key_(("next", GROUP), ("next", "team"))
    with pytest.raises(KeyError):
        loss(team)
    assert loss.use_group("team") is loss and loss.group == "team"
    per_agent = ("observation", "action", "action_mask", "alive", "rnn_hidden")
    assert all(getattr(loss.tensor_keys, f)[0] == "team" for f in per_agent)
    # identical, so the optional per-agent entries (masks, alive flags) moved too: without them the value differs
    assert_same(outputs(loss, team), expected, f"{name}: use_group('team')")


# ------------------------------------------------------------------------------------------ (c) input
def test_c_the_input_is_left_unchanged_but_for_td_error(case):
    name, _, loss, td = case
    before = td.clone()
    loss(td)
    assert set(td.keys(True, True)) - set(before.keys(True, True)) == {"td_error"}
    for key in before.keys(True, True):
        assert torch.equal(td[key], before[key]), f"{name} modified {key!r}"
    err = td["td_error"]
    assert err.shape == td.batch_size and not err.requires_grad and (err >= 0).all() and err.isfinite().all()


# ------------------------------------------------------------------------------------------ (d) targets
def _target_params(loss) -> list[torch.Tensor]:
    return [p for name, p in loss.named_buffers() if name.startswith("target_")]


def test_d_targets_get_no_gradient_and_enter_only_through_the_td_target(case):
    name, spec, loss, td = case
    targets = _target_params(loss)
    assert targets, f"{name} has no target parameters (delay_value=True keeps θ̄)"
    assert not any(n.startswith("target_") for n, _ in loss.named_parameters())
    out = loss(td)
    out["loss"].backward()
    assert all(not t.requires_grad and t.grad is None for t in targets)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())

    def perturbed_outputs():
        saved = [t.clone() for t in targets]
        with torch.no_grad():
            for t in targets:
                t.add_(torch.randn_like(t))
        try:
            return outputs(loss, td)
        finally:
            with torch.no_grad():
                for t, s in zip(targets, saved):
                    t.copy_(s)

    loss.make_value_estimator(gamma=0.0)  # y = r: no bootstrapped value, so no target network involved
    changed, base = perturbed_outputs(), outputs(loss, td)
    if spec.target_free_at_gamma0 is not None:
        changed, base = ({k: v for k, v in d.items() if k in spec.target_free_at_gamma0} for d in (changed, base))
    assert_same(changed, base, f"{name} (γ = 0) with other targets")
    loss.make_value_estimator(gamma=0.9)
    changed, base = perturbed_outputs(), outputs(loss, td)
    assert not torch.equal(changed["loss"], base["loss"]), f"{name} (γ = 0.9): the targets are never used"


# ------------------------------------------------------------------------------------------ (e) masks
def test_e_an_all_false_mask_gives_zero_loss_and_zero_gradients(case):
    name, spec, loss, td = case
    td["mask"] = torch.zeros(*BATCH, dtype=torch.bool)
    out = loss(td)
    out["loss"].backward()
    assert out["loss"].item() == 0.0
    assert all(v.item() == 0.0 for k, v in out.items() if k not in spec.reported), (name, dict(out.items()))
    assert all(p.grad is None or (p.grad == 0).all() for p in loss.parameters())


def test_e_masked_steps_do_not_count(case):
    """Garbage on the masked steps of full_batch's partly False mask changes nothing: their rewards always
    (TD(0) targets are per step), their observations for feed-forward networks. A recurrent network
    (MAVEN's agents and discriminator) carries a masked step's input into the later steps' hidden state
    by design: burn-in steps are masked exactly to warm it, and padding only ever follows the valid steps."""
    name, _, loss, td = case
    expected = outputs(loss, td)
    garbage = td.clone()
    pad = ~td["mask"]
    garbage["next", "reward"][pad] = 1e6
    if not loss.agent_net.is_recurrent:
        garbage[GROUP, "observation"][pad] = 1e3
    assert_same(outputs(loss, garbage), expected, f"{name} with garbage on masked steps")


# ------------------------------------------------------------------------------------------ (f) output
def test_f_output_is_a_tensordict_of_scalar_loss_entries(case):
    name, spec, loss, td = case
    out = loss(td)
    assert isinstance(out, TensorDictBase) and out.batch_size == torch.Size([])
    # loss* terms, plus declared diagnostics (like torchrl's SAC reporting "alpha"): WQMIX's weight_mean
    assert "loss" in out.keys() and all(k.startswith("loss") or k in spec.reported for k in out.keys()), list(out.keys())
    assert all(v.shape == torch.Size([]) for v in out.values())
    assert out["loss"].requires_grad and math.isfinite(out["loss"].item())
    assert not any(v.requires_grad for k, v in out.items() if k != "loss")  # terms are reported detached
    assert all(math.isfinite(v.item()) for k, v in out.items() if k not in spec.reported)


def test_every_exported_loss_is_in_the_suite():
    import torchrl_vd

    exported = {n for n in torchrl_vd.__all__ if n.endswith("Loss") and n != "ValueDecompositionLoss"}
    covered = set()
    for case_ in LOSSES.values():
        covered.add(type(case_.factory(full_batch())).__name__)
    assert exported <= covered, f"losses without a contract entry: {sorted(exported - covered)}"
