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
(e) the valid-step ``mask`` (ours, and torchrl's ``("collector", "mask")``): an all-False mask gives loss 0 and
    zero gradients; a ``SliceSampler(pad_output=True)`` batch's padded steps do not count;
(f) the output: a TensorDict of scalar ``loss*`` terms whose sum is the objective (torchrl's convention), plus
    declared diagnostics;
(g) torchrl's ``LossModule`` contract: ``repr``, ``in_keys``, a torchrl value estimator following ``set_keys``,
    TD0 / TD1 / TDLambda on sequence and flat batches, ``reset_parameters_recursive``, a state-dict round trip,
    keyword calls (``@dispatch``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives.utils import ValueEstimators

from torchrl_vd import (
    CentralQMixer,
    IQLLoss,
    MavenAgent,
    MavenDiscriminator,
    MavenLoss,
    MavenMixer,
    MixingQLoss,
    MLPAgent,
    PQNAgent,
    PQNRecurrentAgent,
    PQNVDNLoss,
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
from torchrl_vd.objectives.common import ValueDecompositionLoss, total_loss
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


def _pqn(recurrent: bool) -> Callable[[TensorDict], ValueDecompositionLoss]:
    # LayerNorm (JaxMARL's MPE network): BatchNorm's running averages move with every training call, as in JaxMARL,
    # so repeated calls on one batch would differ where a return bootstraps outside the forward (tests/test_pqn.py)
    def factory(td: TensorDict) -> ValueDecompositionLoss:
        agent = (PQNRecurrentAgent(N, A, F, hidden=(H,), norm="layer_norm") if recurrent
                 else PQNAgent(N, A, F, hidden=(H,), norm="layer_norm"))
        return PQNVDNLoss(agent)

    return factory


@dataclass
class LossCase:
    factory: Callable[[TensorDict], ValueDecompositionLoss]
    """Builds the loss for N agents, A actions, F-sized observations, S-sized state; may add entries to the batch."""
    unread: set[str] = field(default_factory=lambda: {"rnn_hidden", "is_init"})
    """``_AcceptedKeys`` fields whose entries do not change this loss (feed-forward agents: no hidden state,
    no resets); test (a) checks the list both ways."""
    reported: set[str] = field(default_factory=set)
    """Output entries reported from elsewhere or diagnostics rather than loss terms (MAVEN's ``z_policy_loss``,
    Weighted QMIX's ``weight_mean``)."""
    target_free_at_gamma0: set[str] | None = None
    """Outputs that must not depend on the targets when γ = 0 (None: all of them). CW-QMIX's weights read
    the *target* Q̂* at the current step by design (wqmix max_q_learner: w = 1 where y > Q̂*(s, û*)), so
    only its central TD loss is target-free there."""
    target_network: bool = True
    """False: the loss bootstraps from the online network under ``no_grad`` (PQN: no target network, Gallici et
    al. 2025). Test (d) then checks what stands for target isolation there: no target parameters, the next
    steps' values enter only through the return (γ = 0: none of them matters), and only as constants (the
    gradient equals the one with the returns precomputed and given)."""


# QMixerLoss's key names these losses compute on tensors (their values are never read from the batch)
NOT_READ = {"action_value", "local_value", "global_value", "advantage", "value_target"}
LOSSES: dict[str, LossCase] = {
    "vdn": LossCase(_vdn, unread={"rnn_hidden", "is_init", "state"}),  # Σ_i Q_i ignores the state
    "qmix": LossCase(_qmix),
    "qtran-base": LossCase(_qtran("base")),
    "qtran-alt": LossCase(_qtran("alt")),
    # MAVEN's agents are recurrent (stored hidden state, resets at is_init), and so is its discriminator
    "maven": LossCase(_maven, unread=set(), reported={"z_policy_loss"}),
    "cw-qmix": LossCase(_weighted("cw"), reported={"weight_mean"}, target_free_at_gamma0={"loss_central"}),
    "ow-qmix": LossCase(_weighted("ow"), reported={"weight_mean"}),
    "qplex": LossCase(_qplex),
    # independent learners: no mixer, so no state; they learn from the team reward or from each agent's own
    # (the team reward stays a required entry of every batch)
    "iql": LossCase(_iql("team"), unread={"rnn_hidden", "is_init", "state", "agent_reward"}),
    "iql-individual": LossCase(_iql("individual"), unread={"rnn_hidden", "is_init", "state"}),
    # PQN-VDN: Σ_i Q_i (no state) on the online network's returns; its recurrent network reads the stored hidden state
    "pqn-vdn": LossCase(_pqn(False), unread={"rnn_hidden", "is_init", "state"}, target_network=False),
    "pqn-vdn-rnn": LossCase(_pqn(True), unread={"state"}, target_network=False),
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
    td["steps_to_next_obs"] = torch.randint(1, 3, (*BATCH, 1), generator=g)  # torchrl's MultiStep: γ^k
    td["next", GROUP, "reward"] = torch.randn(*BATCH, N, 1, generator=g)
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


def total(out: dict) -> torch.Tensor:
    return sum(v for k, v in out.items() if k.startswith("loss"))


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
        if f.name == "priority" or f.name in NOT_READ:
            continue  # the written key: test_c; QMixerLoss's names: test_g
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
            read = not torch.equal(total(stale), total(expected))
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
    if not spec.target_network:
        return _check_online_targets(name, loss, td)
    targets = _target_params(loss)
    assert targets, f"{name} has no target parameters (delay_value=True keeps θ̄)"
    assert not any(n.startswith("target_") for n, _ in loss.named_parameters())
    out = loss(td)
    total_loss(out).backward()
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
    assert not torch.equal(total(changed), total(base)), f"{name} (γ = 0.9): the targets are never used"


def _check_online_targets(name: str, loss, td: TensorDict) -> None:
    """(d) for a loss without a target network: no target parameters; γ = 0 makes the next steps' values irrelevant
    (other next observations change nothing), γ > 0 reads them; and they are constants: the loss and its
    gradient equal those with the same returns precomputed (``value_targets``) and given in the batch."""
    assert not _target_params(loss), f"{name} has target parameters"
    other = td.clone()
    other["next", GROUP, "observation"] = other["next", GROUP, "observation"] + 1.0
    for gamma, reads in ((0.0, False), (0.9, True)):
        loss.make_value_estimator(gamma=gamma)
        assert torch.equal(total(outputs(loss, other)), total(outputs(loss, td))) != reads, (name, gamma)
    grads = []
    for batch in (td, loss.value_targets(td.clone())):
        loss.zero_grad()
        total_loss(loss(batch)).backward()
        grads.append([p.grad.clone() for p in loss.parameters()])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*grads)), f"{name}: gradient through the returns"


# ------------------------------------------------------------------------------------------ (e) masks
@pytest.mark.parametrize("key", ["mask", ("collector", "mask")])
def test_e_an_all_false_mask_gives_zero_loss_and_zero_gradients(case, key):
    name, spec, loss, td = case
    td[key] = torch.zeros(*BATCH, dtype=torch.bool)
    out = loss(td)
    total_loss(out).backward()
    assert all(v.item() == 0.0 for k, v in out.items() if k not in spec.reported), (name, dict(out.items()))
    assert all(p.grad is None or (p.grad == 0).all() for p in loss.parameters())
    loss.loss_mask_key = None  # QMixerLoss's way: torchrl's collector mask is ignored (ours never is)
    if key != "mask":
        assert total(outputs(loss, td)) != 0


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
    terms = [k for k in out.keys() if k.startswith("loss")]
    assert terms and all(k in terms or k in spec.reported for k in out.keys()), list(out.keys())
    assert list(out.keys()) == loss.out_keys and all(v.shape == torch.Size([]) for v in out.values())
    assert all(out[k].requires_grad and math.isfinite(out[k].item()) for k in terms)  # their sum is the objective
    assert not any(v.requires_grad for k, v in out.items() if k not in terms)  # diagnostics are detached
    assert all(math.isfinite(v.item()) for k, v in out.items() if k not in spec.reported)


# ------------------------------------------------------------------------------------------ (e) SliceSampler
def _trajectories(seed: int = 0) -> TensorDict:
    """Three episodes of 3, 5 and 8 steps back to back: [16] transitions with episode ids, the last step of each
    episode done (terminated or truncated)."""
    lengths = (3, 5, 8)
    td = full_batch(seed).reshape(-1)[:16].exclude("mask", "is_init", "steps_to_next_obs", ("agents", "rnn_hidden"))
    ends = torch.tensor([t == sum(lengths[:i + 1]) - 1 for t in range(16) for i in range(3)]).reshape(16, 3).any(-1)
    td["next", "done"] = ends.unsqueeze(-1)
    td["next", "terminated"] = ends.unsqueeze(-1) & (torch.arange(16) < 10).unsqueeze(-1)
    td["episode"] = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    return td


def test_e_a_padded_slice_sample_counts_its_real_steps_only(case):
    """torchrl's ``SliceSampler(pad_output=True)`` pads slices of short episodes to ``slice_len`` (repeating their
    last step) and marks the real steps in ``("collector", "mask")``: by default the loss on the padded sample
    equals the loss on its real steps alone, to float rounding (feed-forward losses read a flat batch of
    transitions; MAVEN's recurrent agents and discriminator read the sample as [slices, slice_len] sequences)."""
    from torchrl.data import LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

    name, spec, loss, _ = case
    data = _trajectories()
    if name == "maven":
        data["noise"] = data["next", "noise"] = torch.eye(Z)[data["episode"] % Z]
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), sampler=SliceSampler(
        slice_len=6, traj_key="episode", strict_length=False, pad_output=True), batch_size=18)
    rb.extend(data)
    torch.manual_seed(3)
    sample = rb.sample()  # [3 slices * 6], short slices padded
    mask = sample["collector", "mask"]
    assert mask.shape == (18,) and 0 < mask.sum() < 18, "the draw must hold padding for the test to mean anything"
    if loss.agent_net.is_recurrent:
        sample = sample.reshape(3, 6)  # [slices, slice_len]
        real, pad = sample.clone(), ~sample["collector", "mask"]
        for key in (("agents", "observation"), ("next", "reward"), "state"):
            real[key][pad] = 7.0  # garbage in the padded steps
        expected = outputs(loss, real)  # garbage in the padded steps: nothing changes
    else:
        expected = outputs(loss, sample[mask].exclude("collector"))  # the real steps alone, no mask at all
    got = outputs(loss, sample)
    for k in expected:
        if k not in spec.reported:
            assert torch.allclose(got[k], expected[k], rtol=1e-5, atol=1e-6), (name, k, got[k], expected[k])


# ------------------------------------------------------------------------------------------ (g) torchrl's contract
def test_g_repr_in_keys_and_the_value_estimator_follow_set_keys(case):
    from torchrl.objectives.value import TD0Estimator, TDLambdaEstimator

    name, _, loss, td = case
    assert type(loss).__name__ in repr(loss)
    assert set(loss.in_keys) >= {("agents", "observation"), ("agents", "action"), ("next", "reward"), ("next", "done")}
    assert isinstance(loss.value_estimator, TD0Estimator) and loss.value_estimator.gamma.item() == pytest.approx(0.9)
    loss.set_keys(global_value="q_tot", reward="team_reward")
    loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.5)
    est = loss.value_estimator
    assert isinstance(est, TDLambdaEstimator) and est.lmbda.item() == pytest.approx(0.95)  # torchrl's default λ
    assert (est.tensor_keys.value, est.tensor_keys.reward) == ("q_tot", "team_reward")
    loss.set_keys(done=("done", "test"))
    assert loss.value_estimator.tensor_keys.done == ("done", "test")


def test_g_td1_and_td_lambda_on_sequences_and_on_flat_batches(case):
    """TD(1) = TD(λ = 1); TD(λ = 0) = TD(0) where no episode is cut inside the batch; a flat batch [B] is read
    as one trajectory along its dimension (torchrl's convention), so TD(λ) runs on it too."""
    name, spec, loss, td = case
    td = td.exclude("steps_to_next_obs")
    td["next", "done"] = td["next", "terminated"].clone()  # every episode end is a termination here
    values = {}
    for key, (kind, hp) in {"td0": (ValueEstimators.TD0, {}), "td1": (ValueEstimators.TD1, {}),
                            "l1": (ValueEstimators.TDLambda, {"lmbda": 1.0}),
                            "l0": (ValueEstimators.TDLambda, {"lmbda": 0.0})}.items():
        loss.make_value_estimator(kind, gamma=0.9, **hp)
        values[key] = outputs(loss, td)
        flat = td.reshape(-1)
        flat_out = outputs(loss, flat)  # runs: [B*T] as one trajectory
        assert all(math.isfinite(v.item()) for k, v in flat_out.items() if k not in spec.reported)
    assert_same(values["td1"], values["l1"], f"{name}: TD(1) vs TD(λ=1)")
    for k in values["td0"]:
        if k not in spec.reported:
            assert torch.allclose(values["l0"][k], values["td0"][k], rtol=1e-6, atol=1e-7), (name, k)
    with pytest.raises(NotImplementedError, match="GAE"):
        loss.make_value_estimator(ValueEstimators.GAE)


def test_g_reset_parameters_recursive_resets_every_network_and_its_target(case):
    name, _, loss, td = case
    tensors = dict(loss.named_parameters()) | {n: b for n, b in loss.named_buffers() if n.startswith("target_")
                                                and b.is_floating_point() and "_eye" not in n}
    with torch.no_grad():
        for t in tensors.values():
            t.add_(1000.0)
    loss.reset_parameters_recursive()
    unchanged = [n for n, t in tensors.items() if (t.abs() > 100).any()]
    assert unchanged == [], f"{name}: not reset: {unchanged}"


def test_g_a_state_dict_round_trip_gives_the_same_loss(case):
    name, spec, loss, td = case
    torch.manual_seed(1)
    fresh = LOSSES[name].factory(td.clone())
    fresh.make_value_estimator(gamma=0.9)
    fresh.load_state_dict(loss.state_dict())
    assert_same(outputs(fresh, td), outputs(loss, td), f"{name}: state_dict round trip")


def test_g_keyword_calls_equal_the_tensordict_call(case):
    """torchrl's ``@dispatch``: ``loss(agents_observation=..., next_reward=..., ...)`` (nested keys joined by
    ``_``) returns the ``out_keys`` values."""
    name, spec, loss, td = case
    kwargs = {"_".join(k if isinstance(k, tuple) else (k,)): v for k, v in td.items(True, True)}
    kwargs = {k: v for k, v in kwargs.items() if k in {"_".join(x if isinstance(x, tuple) else (x,))
                                                        for x in loss.in_keys}}
    with torch.no_grad():
        got = loss(**kwargs)
    got = (got,) if len(loss.out_keys) == 1 else got  # one out_key: dispatch returns the value itself
    expected = outputs(loss, td)
    assert len(got) == len(loss.out_keys)
    for key, value in zip(loss.out_keys, got):
        assert torch.equal(value, expected[key]) or (value.isnan() & expected[key].isnan()).all(), (name, key)


def test_every_exported_loss_is_in_the_suite():
    import torchrl_vd

    exported = {n for n in torchrl_vd.__all__ if n.endswith("Loss") and n != "ValueDecompositionLoss"}
    covered = set()
    for case_ in LOSSES.values():
        covered.add(type(case_.factory(full_batch())).__name__)
    assert exported <= covered, f"losses without a contract entry: {sorted(exported - covered)}"
