"""What TorchRL's own ``TestQMixer`` asks of ``QMixerLoss`` (pytorch/rl test/objectives/test_dqn.py), asked of
``MixingQLoss`` here where tests/test_loss_contract.py, tests/test_torchrl_interop.py and tests/test_dqn_trainer.py
do not already ask it; ``benchmarks/torchrl_loss_suite.py`` runs TorchRL's class itself on a checkout.

The parts are TestQMixer's kind: one ``nn.Linear`` broadcast over the agent dimension (parameters shared, the
number of agents known only to the mixer) in a ``SafeSequential`` with a ``QValueModule``, and torchrl's ``QMixer`` in
a ``TensorDictModule``. Where a value is compared, the reference is ``QMixerLoss`` itself on the same weights and
batch, and ``MixingQLoss`` runs with ``double_q=False`` (QMixerLoss has no double Q).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Categorical, OneHot
from torchrl.data.postprocs import MultiStep
from torchrl.modules import QValueModule, SafeSequential
from torchrl.modules.models.multiagent import QMixer as TorchRLQMixer
from torchrl.objectives import SoftUpdate, ValueEstimators
from torchrl.objectives.multiagent import QMixerLoss

import torchrl_vd as vd
from torchrl_vd.testing import random_batch

N, A, F, S = 4, 4, 3, 6  # agents, actions, observation size, state size
G = "agents"


def shared_linear_policy(spec: str = "categorical", action=(G, "action"), action_value=(G, "action_value"),
                         local_value=(G, "chosen_action_value")) -> SafeSequential:
    """A Q-value policy whose network states neither n_agents nor n_actions: one Linear for every agent."""
    module = TensorDictModule(nn.Linear(F, A), in_keys=[(G, "observation")], out_keys=[action_value])
    value = QValueModule(action_value_key=action_value, out_keys=[action, action_value, local_value],
                         spec=OneHot(A) if spec == "one_hot" else Categorical(A), action_space=None)
    return SafeSequential(module, value)


def torchrl_mixer(local_value=(G, "chosen_action_value"), global_value="chosen_action_value") -> TensorDictModule:
    return TensorDictModule(TorchRLQMixer(state_shape=(S,), mixing_embed_dim=8, n_agents=N, device="cpu"),
                            in_keys=[local_value, "state"], out_keys=[global_value])


def batch(shape=(16,), seed: int = 0, one_hot: bool = False) -> TensorDict:
    """A transition batch with terminations and truncations (categorical actions, or one-hot ``[*B, n, A]``)."""
    td = random_batch(n_agents=N, n_actions=A, obs_dim=F, batch=shape, state_dim=S, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    td["next", "terminated"] = torch.rand(*shape, 1, generator=g) < 0.2
    td["next", "done"] = td["next", "terminated"] | (torch.rand(*shape, 1, generator=g) < 0.1)
    if one_hot:
        td[G, "action"] = nn.functional.one_hot(td[G, "action"], A)  # int64 [*B, n, A], as a OneHot spec stores it
    return td


def pair(spec: str = "categorical", seed: int = 0, **ours_kwargs):
    """(QMixerLoss, MixingQLoss(double_q=False)) on the same policy and mixer, γ 0.9, targets ≠ online."""
    torch.manual_seed(seed)
    policy, mixer = shared_linear_policy(spec), torchrl_mixer()
    ref = QMixerLoss(policy, mixer, delay_value=True)
    ours = vd.MixingQLoss(policy, mixer, delay_value=True, double_q=False, **ours_kwargs)
    for loss in (ref, ours):
        loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    with torch.no_grad():
        for p in [*policy.parameters(), *mixer.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return ref, ours


def value(loss, td: TensorDict) -> float:
    with torch.no_grad():
        return loss(td.clone())["loss"].item()


# ------------------------------------------------------------------------------ checkpoints
def test_a_trained_qmixerloss_state_dict_loads_into_mixing_q_loss_and_gives_its_loss():
    """A ``QMixerLoss`` trained a few Adam steps (targets soft-updated, so target ≠ online) saves a ``state_dict``
    that loads, strictly, into a ``MixingQLoss`` built on fresh modules of the same structure: the same names
    (``local_value_network_params.module.0.module.weight``, ``target_mixer_network_params.module.hyper_w_1...``).
    On the same batch it then gives QMixerLoss's loss to float rounding, and td_error² = QMixerLoss's priority.

    What equality needs besides the weights (none of it is in a state_dict):

    * ``double_q=False`` (the default ``True`` takes a*' from the online agents, QMixerLoss from the target's);
    * the same ``loss_function`` (``"l2"``, both defaults) and γ: ``make_value_estimator(TD0, gamma=0.9)`` on both
      (λ too for TD(λ): torchrl's default 0.95 in both). QMixerLoss's state dict carries its estimator's γ
      (``_value_estimator.gamma``); ours drops it on load, so γ is the one given to ``make_value_estimator``;
    * no entries that only ours reads marking steps out: a ``("collector", "mask")`` with False entries
      (``loss_mask_key=None`` ignores it, as QMixerLoss does), our ``"mask"``, ``"priority_weight"``, or an
      ``("agents", "action_mask")`` the QValueModule does not name (ours restricts the target's max to it).
      The reduction is the mean over the batch in both (QMixerLoss has no ``reduction`` option).
    """
    torch.manual_seed(0)
    policy, mixer = shared_linear_policy(), torchrl_mixer()
    ref = QMixerLoss(policy, mixer, delay_value=True)
    ref.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    updater, optim = SoftUpdate(ref, eps=0.5), torch.optim.Adam(ref.parameters(), lr=0.05)
    for step in range(5):
        ref(batch(seed=step))["loss"].backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    saved = ref.state_dict()
    assert any(k.startswith("target_local_value_network_params.") for k in saved)

    torch.manual_seed(1)  # other initial weights: the loaded ones must be what counts
    ours = vd.MixingQLoss(shared_linear_policy(), torchrl_mixer(), double_q=False)
    ours.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    td = batch(seed=10)
    assert value(ours, td) != pytest.approx(value(ref, td), rel=1e-3)
    ours.load_state_dict(saved)  # strict: every parameter name matches
    # QMixerLoss's γ buffer (its estimator's) is dropped on load: γ and λ are set with make_value_estimator
    assert set(saved) - set(ours.state_dict()) == {"_value_estimator.gamma"}
    assert set(ours.state_dict()) < set(saved)
    expected, got = td.clone(), td.clone()
    with torch.no_grad():
        ref_loss, our_loss = ref(expected)["loss"].item(), ours(got)["loss"].item()
    assert our_loss == pytest.approx(ref_loss, rel=1e-6)
    torch.testing.assert_close(got["td_error"].pow(2), expected["td_error"].squeeze(-1), rtol=1e-5, atol=1e-6)

    # what else the equality needs: double Q changes the target once target ≠ online
    double_q = vd.MixingQLoss(shared_linear_policy(), torchrl_mixer())
    double_q.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    double_q.load_state_dict(saved)
    assert value(double_q, td) != pytest.approx(ref_loss, rel=1e-3)
    # ... and an all-False ("collector", "mask"): ours counts no step, QMixerLoss every one
    masked = td.clone()
    masked["collector", "mask"] = torch.zeros(td.shape, dtype=torch.bool)
    assert value(ours, masked) == 0.0 and value(ref, masked) == pytest.approx(ref_loss, rel=1e-6)
    ours.loss_mask_key = None
    assert value(ours, masked) == pytest.approx(ref_loss, rel=1e-6)


def test_our_state_dict_loads_into_qmixerloss_before_its_estimator_is_built():
    """The other direction: a ``MixingQLoss`` checkpoint resumes in ``QMixerLoss`` (same parameter names, same
    values). It holds no γ, so ``QMixerLoss`` loads it strictly only before its estimator exists (a built estimator
    expects ``_value_estimator.gamma``): load first, then ``make_value_estimator`` (or ``strict=False``)."""
    ref, ours = pair(seed=2)
    torch.manual_seed(3)
    fresh = QMixerLoss(shared_linear_policy(), torchrl_mixer(), delay_value=True)
    fresh.load_state_dict(ours.state_dict())
    fresh.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    td = batch(seed=4)
    assert value(fresh, td) == pytest.approx(value(ours, td), rel=1e-6)
    with pytest.raises(RuntimeError, match="_value_estimator.gamma"):
        fresh.load_state_dict(ours.state_dict())


# ------------------------------------------------------------------------------ parameters and targets
@pytest.mark.parametrize("delay_value", [True, False])
def test_parameters_are_the_users_and_targets_are_copies_or_views(delay_value):
    """``loss.parameters()`` are the policy's and mixer's own tensors (the optimizer trains what the user holds);
    with ``delay_value=True`` the targets are copies that moving the online weights leaves alone, with ``False``
    they are the online weights themselves (TestQMixer's check on ``target_local_value_network_params`` and
    ``target_mixer_network_params``), and the loss equals QMixerLoss's either way."""
    torch.manual_seed(0)
    policy, mixer = shared_linear_policy(), torchrl_mixer()
    ours = vd.MixingQLoss(policy, mixer, delay_value=delay_value, double_q=False)
    ref = QMixerLoss(policy, mixer, delay_value=delay_value)
    for loss in (ours, ref):
        loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    assert {id(p) for p in ours.parameters()} == {id(p) for p in [*policy.parameters(), *mixer.parameters()]}
    targets = {name: getattr(ours, name).clone() for name in
               ("target_local_value_network_params", "target_mixer_network_params")}
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(3.0)
    for name, before in targets.items():
        after = getattr(ours, name)
        moved = [(a != b).all().item() for a, b in zip(after.values(True, True), before.values(True, True))]
        assert moved == [not delay_value] * len(moved), name
    td = batch(seed=1)
    assert value(ours, td) == pytest.approx(value(ref, td), rel=1e-6)


def test_the_missing_target_updater_warns_until_one_is_attached(monkeypatch):
    """torchrl's warning for target parameters nobody updates (shown unless RL_WARNINGS is off)."""
    import torchrl._utils

    monkeypatch.setattr(torchrl._utils, "RL_WARNINGS", True)
    _, ours = pair()
    td = batch()
    with pytest.warns(UserWarning, match="No target network updater has been associated"):
        ours(td.clone())
    SoftUpdate(ours, eps=0.5)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="No target network updater")
        assert torch.isfinite(ours(td.clone())["loss"])


# ------------------------------------------------------------------------------ keys and value estimators
def test_qmixerloss_key_names_have_its_defaults_and_reach_the_value_estimator():
    """Every ``QMixerLoss`` key name exists with QMixerLoss's default; an unknown name is refused; keys set before
    ``make_value_estimator`` reach the estimator (its ``value`` is ``global_value``) for TD0, TD1 and TD(λ)."""
    _, ours = pair()
    theirs = QMixerLoss._AcceptedKeys()
    for name in QMixerLoss._AcceptedKeys.__dataclass_fields__:
        assert getattr(ours.tensor_keys, name) == getattr(theirs, name), name
    with pytest.raises(ValueError):
        ours.set_keys(unknown_key="x")
    new = dict(advantage="advantage_2", value_target=("value_target", "nested"), reward="reward_test",
               done=("done", "test"), terminated=("terminated", "test"), global_value=("some", "nested"))
    ours.set_keys(**new)
    for kind in (ValueEstimators.TD0, ValueEstimators.TD1, ValueEstimators.TDLambda):
        ours.make_value_estimator(kind)
        keys = ours.value_estimator.tensor_keys
        assert (keys.advantage, keys.value_target, keys.reward, keys.done, keys.terminated, keys.value) == (
            new["advantage"], new["value_target"], new["reward"], new["done"], new["terminated"], new["global_value"])


@pytest.mark.parametrize("kind", [ValueEstimators.VTrace, ValueEstimators.MAGAE])
def test_estimators_qmixerloss_refuses_are_refused(kind):
    _, ours = pair()
    with pytest.raises(NotImplementedError):
        ours.make_value_estimator(kind)


@pytest.mark.parametrize("spec", ["categorical", "one_hot"])
def test_per_agent_entries_may_live_in_other_groups(spec):
    """Actions and action values in one group, local values in another, observations in a third (TestQMixer's
    ``test_qmix_tensordict_run`` layout): read where they are, the priority written where asked, and the loss is
    QMixerLoss's."""
    keys = dict(action=("other", "action"), action_value=("other", "action_value_test"),
                local_value=("some", "local_v"), global_value="global_v")
    torch.manual_seed(0)
    policy = shared_linear_policy(spec, keys["action"], keys["action_value"], keys["local_value"])
    mixer = torchrl_mixer(keys["local_value"], keys["global_value"])
    losses = [QMixerLoss(policy, mixer, delay_value=True), vd.MixingQLoss(policy, mixer, double_q=False)]
    td = batch(one_hot=spec == "one_hot")
    agents = td.pop(G)
    td["other", "action"], td[G] = agents["action"], agents.exclude("action")  # [*B, n] or [*B, n, A]
    values = []
    for loss in losses:
        loss.set_keys(**keys, priority="priority_test")
        loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
        SoftUpdate(loss, eps=0.5)
        out = td.clone()
        values.append(value(loss, out))
        loss(out)
        assert "priority_test" in out.keys() and "td_error" not in out.keys()
    assert values[1] == pytest.approx(values[0], rel=1e-6)


@pytest.mark.parametrize("local_in", [(G, "chosen_action_value"), "other"])
@pytest.mark.parametrize("global_out", ["chosen_action_value", ("nested", "other")])
def test_mixer_module_keys_that_do_not_match_the_loss_raise_key_error(local_in, global_out):
    """A mixer module reading local values where the loss does not put them, or writing Q_tot where the loss does
    not look, is a ``KeyError`` in both losses; ``set_keys(global_value=...)`` fixes the second."""
    torch.manual_seed(0)
    policy, mixer = shared_linear_policy(), torchrl_mixer(local_in, global_out)
    td = batch()
    def run(make, fixed: bool) -> float:
        loss = make()
        if fixed:
            loss.set_keys(global_value=global_out)
        loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)  # QMixerLoss checks its value key here
        SoftUpdate(loss, eps=0.5)
        return value(loss, td)

    for make in (lambda: QMixerLoss(policy, mixer, delay_value=True),
                 lambda: vd.MixingQLoss(policy, mixer, double_q=False)):
        for fixed in (False, True):
            if local_in == (G, "chosen_action_value") and (fixed or global_out == "chosen_action_value"):
                run(make, fixed)
            else:
                with pytest.raises(KeyError):
                    run(make, fixed)


# ------------------------------------------------------------------------------ returns
@pytest.mark.parametrize("case", ["td1-flat", "td1-seq", "tdlambda-flat", "tdlambda-seq", "multistep-1",
                                  "multistep-3"])
def test_td1_td_lambda_and_multistep_targets_equal_qmixerloss(case):
    """TD(1) and TD(λ) (torchrl's default λ 0.95) on a flat batch (one trajectory along it, torchrl's reading) and
    on [B, T] sequences, and TD(0) on ``MultiStep(n)`` data (γ^k bootstraps): QMixerLoss's values. MultiStep with
    n = 1 changes nothing; n = 3 does."""
    ref, ours = pair(seed=1)
    kind, _, rest = case.partition("-")
    td = batch((3, 7) if rest in ("seq", "1", "3") else (16,), seed=2)
    if kind == "multistep":
        plain = value(ours, td)
        td = MultiStep(gamma=0.9, n_steps=int(rest))(td.refine_names(None, "time"))
        assert (value(ours, td) == pytest.approx(plain, rel=1e-6)) == (rest == "1")
    else:
        est = ValueEstimators.TD1 if kind == "td1" else ValueEstimators.TDLambda
        for loss in (ref, ours):
            loss.make_value_estimator(est, gamma=0.9)
    assert value(ours, td) == pytest.approx(value(ref, td), rel=1e-5)


def test_a_torchrl_estimator_instance_or_class_sets_the_return():
    """``make_value_estimator`` takes a torchrl estimator instance or class as ``LossModule`` does: its kind, γ and
    λ give the return (the enum path's values); an estimator of another kind is refused before anything changes."""
    from torchrl.objectives.value import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator

    _, ours = pair(seed=3)
    td = batch((3, 7), seed=5)
    ours.make_value_estimator(ValueEstimators.TDLambda, gamma=0.5, lmbda=0.7)
    expected = {"tdlambda": value(ours, td)}
    ours.make_value_estimator(ValueEstimators.TD1, gamma=0.5)
    expected["td1"] = value(ours, td)
    ours.make_value_estimator(ValueEstimators.TD0, gamma=0.5)
    expected["td0"] = value(ours, td)
    assert len(set(expected.values())) == 3
    for kind, est in (("td0", TD0Estimator(gamma=0.5, value_network=None)),
                      ("td1", TD1Estimator(gamma=0.5, value_network=None)),
                      ("tdlambda", TDLambdaEstimator(gamma=0.5, lmbda=0.7, value_network=None))):
        ours.make_value_estimator(est)
        assert ours.value_estimator is est
        assert value(ours, td) == pytest.approx(expected[kind], rel=1e-6), kind
    ours.make_value_estimator(TD1Estimator, gamma=0.5, value_network=None)  # a class, built by LossModule
    assert value(ours, td) == pytest.approx(expected["td1"], rel=1e-6)
    with pytest.raises(NotImplementedError, match="GAE"):
        ours.make_value_estimator(GAE(gamma=0.5, lmbda=0.7, value_network=None))
    assert isinstance(ours.value_estimator, TD1Estimator)
