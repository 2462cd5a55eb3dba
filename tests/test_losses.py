"""MixingQLoss against hand computations, masks, weights, targets, TD(λ) and input validation."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import SoftUpdate
from torchrl.objectives.utils import ValueEstimators

from torchrl_vd import MixingQLoss, MLPAgent, QMixer, VDNMixer
from torchrl_vd.testing import identity_agent, random_batch


def hand_batch(reward=1.0, terminated=False):
    # agent 1 sees utilities [1, 3], agent 2 [2, 0]; both took action 0 -> Q_tot = 1 + 2 = 3
    obs = torch.tensor([[[1.0, 3.0], [2.0, 0.0]]])
    next_obs = torch.tensor([[[4.0, 1.0], [0.0, 5.0]]])
    return TensorDict(
        {
            "agents": {"observation": obs, "action": torch.tensor([[0, 0]])},
            "state": torch.zeros(1, 4),
            "next": {
                "agents": {"observation": next_obs},
                "state": torch.zeros(1, 4),
                "reward": torch.tensor([[reward]]),
                "done": torch.tensor([[terminated]]),
                "terminated": torch.tensor([[terminated]]),
            },
        },
        [1],
    )


def make_vdn_loss(double_q, target_weight):
    loss = MixingQLoss(identity_agent(), VDNMixer(2), double_q=double_q)
    loss.make_value_estimator(gamma=0.5)
    with torch.no_grad():
        loss.target_agent_net_params["net", "0", "weight"].copy_(target_weight)
        loss.target_agent_net_params["net", "0", "bias"].zero_()
    return loss


SWAP = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # target utilities = swapped observation


@pytest.mark.parametrize(
    "double_q, expected",
    [
        # target utilities: agent 1 [1, 4], agent 2 [5, 0]
        # plain: max 4 + max 5 = 9 -> y = 1 + 0.5 * 9 = 5.5 -> (3 - 5.5)^2 = 6.25
        (False, 6.25),
        # double: online argmax (0 for [4,1], 1 for [0,5]) -> target 1 + 0 -> y = 1.5 -> (3 - 1.5)^2 = 2.25
        (True, 2.25),
    ],
)
def test_vdn_td_loss_equals_hand_computation(double_q, expected):
    loss = make_vdn_loss(double_q, SWAP)
    out = loss(hand_batch())
    assert out["loss"].item() == pytest.approx(expected)


def test_terminated_transition_does_not_bootstrap():
    loss = make_vdn_loss(True, SWAP)
    td = hand_batch(reward=2.0, terminated=True)
    assert loss(td)["loss"].item() == pytest.approx((3 - 2.0) ** 2)
    assert td["td_error"].tolist() == pytest.approx([1.0])  # |Q_tot - y| written for prioritized replay


def test_qmix_loss_equals_composition_of_its_parts():
    torch.manual_seed(0)
    agent, mixer = MLPAgent(2, 3, 4, hidden=(8,)), QMixer(2, (8,), mixing_embed_dim=4)
    loss = MixingQLoss(agent, mixer, double_q=True)
    loss.make_value_estimator(gamma=0.9)
    td = random_batch(n_agents=2, n_actions=3, obs_dim=4, batch=6)
    with torch.no_grad():  # make the target differ from the online networks
        loss.target_agent_net_params.apply_(lambda p: p.mul_(0.5))
    q = agent(td["agents", "observation"]).gather(-1, td["agents", "action"].unsqueeze(-1))
    q_tot = mixer(q, td["state"])
    a_next = agent(td["next", "agents", "observation"]).argmax(-1, keepdim=True)
    q_next_t = loss.target("agent_net")(td["next", "agents", "observation"]).gather(-1, a_next)
    y = td["next", "reward"] + 0.9 * loss.target("mixer")(q_next_t, td["next", "state"])
    assert loss(td)["loss"].item() == pytest.approx(((q_tot - y) ** 2).mean().item(), rel=1e-5)


def test_targets_are_not_touched_by_the_optimizer_and_follow_soft_update():
    torch.manual_seed(0)
    loss = MixingQLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)))
    updater = SoftUpdate(loss, tau=0.1)
    opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    names = {n for n, _ in loss.named_parameters()}
    assert not any(n.startswith("target_") for n in names)
    before = loss.target_agent_net_params.clone()
    loss(random_batch())["loss"].backward()
    opt.step()
    assert (loss.target_agent_net_params == before).all()  # optimizer step leaves θ̄ alone
    updater.step()
    w, wt, w0 = loss.agent_net.net[0].weight, loss.target_agent_net_params["net", "0", "weight"], before["net", "0", "weight"]
    torch.testing.assert_close(wt, 0.9 * w0 + 0.1 * w.detach())
    # the target copy used in the forward sees the updated tensors (bound in place, no per-call swap)
    assert loss.target("agent_net").net[0].weight.data_ptr() == wt.data_ptr()


def test_input_tensordict_is_not_modified():
    loss = MixingQLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)))
    td = random_batch(action_mask=True)
    before = td.clone()
    loss(td)
    assert set(td.keys(True, True)) - set(before.keys(True, True)) == {"td_error"}
    assert (td.exclude("td_error") == before).all()


def test_all_padding_batch_gives_zero_loss_and_zero_gradient():
    loss = MixingQLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)))
    td = random_batch(batch=(4, 5))
    td["mask"] = torch.zeros(4, 5, dtype=torch.bool)
    out = loss(td)
    out["loss"].backward()
    assert out["loss"].item() == 0.0
    assert all(p.grad is None or (p.grad == 0).all() for p in loss.parameters())


def test_priority_weights_scale_per_sample_losses():
    loss = make_vdn_loss(False, SWAP)
    td = torch.cat([hand_batch(), hand_batch(reward=2.0, terminated=True)])  # losses 6.25 and 1.0
    assert loss(td.clone())["loss"].item() == pytest.approx((6.25 + 1.0) / 2)
    td["priority_weight"] = torch.tensor([0.0, 2.0])
    assert loss(td)["loss"].item() == pytest.approx((0.0 + 2.0) / 2)


def test_dead_agents_contribute_no_utility_and_get_no_gradient():
    loss = make_vdn_loss(False, SWAP)
    td = hand_batch()
    td["agents", "alive"] = torch.tensor([[True, False]])
    td["next", "agents", "alive"] = torch.tensor([[True, False]])
    # Q_tot = 1 (agent 2 dead); y = 1 + 0.5 * 4 = 3 -> (1 - 3)^2 = 4
    assert loss(td)["loss"].item() == pytest.approx(4.0)
    # the joint value the IGM check reads is the one trained: Q_tot(taken action) = 1, agent 2 counts 0
    assert loss.joint_q_values(td, td["agents", "action"][0].unsqueeze(0)).item() == pytest.approx(1.0)


def test_target_max_honours_next_action_mask():
    loss = make_vdn_loss(False, SWAP)
    td = hand_batch()
    td["agents", "action_mask"] = torch.ones(1, 2, 2, dtype=torch.bool)
    td["next", "agents", "action_mask"] = torch.tensor([[[True, False], [True, True]]])
    # agent 1 may only take action 0 next: target 1 (not 4); agent 2 max 5 -> y = 1 + 3 = 4 -> (3 - 4)^2 = 1
    assert loss(td)["loss"].item() == pytest.approx(1.0)


def test_invalid_stored_action_under_mask_is_a_clear_error():
    loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
    td = random_batch(action_mask=True)
    td["agents", "action_mask"][0, 1] = torch.tensor([True, False, False])
    td["agents", "action"][0, 1] = 2
    with pytest.raises(ValueError, match="invalid under its action mask"):
        loss(td)


def test_non_finite_reward_is_reported_with_its_index():
    loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
    td = random_batch()
    td["next", "reward"][3] = float("nan")
    with pytest.raises(ValueError, match=r"Non-finite reward .* index \[3, 0\]"):
        loss(td)


def test_missing_keys_and_agent_mismatch_are_clear_errors():
    with pytest.raises(ValueError, match="n_agents=3"):
        MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(3))
    loss = MixingQLoss(MLPAgent(2, 3, 4), VDNMixer(2))
    with pytest.raises(KeyError, match="next reward"):
        loss(random_batch().exclude(("next", "reward")))


def test_td_lambda_with_lambda_zero_equals_td0_and_burn_in_is_excluded():
    torch.manual_seed(0)
    td = random_batch(batch=(3, 6))
    loss = MixingQLoss(MLPAgent(2, 3, 4), QMixer(2, (8,)))
    loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    td0 = loss(td.clone())["loss"].item()
    loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.9, lmbda=0.0)
    assert loss(td.clone())["loss"].item() == pytest.approx(td0, rel=1e-5)
    loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    loss.burn_in = 2
    changed = td.clone()
    changed["next", "reward"][:, :2] += 100.0  # burn-in steps: their targets must not matter
    assert loss(changed)["loss"].item() == pytest.approx(loss(td.clone())["loss"].item())


# ------------------------------------------------------------------------------------------- TD(λ) by hand
# B = 2 sequences of T = 4 steps, 2 agents, 2 actions, identity agents (utilities = observations) and VDN, float64.
# The value of the next state is V_{t+1} = Σ_i max_a Q̄_i(o'_{t+1}, a) (target agents = the online ones at
# construction); each agent's next observation is [V_{t+1} / 2, −9], so V_{t+1} is the sequence below.
# Every step's chosen Q_tot is 10 (each agent's chosen utility 5), so TD error = 10 − G_t > 0.
#
# G_t = r_t + γ (1 − term_t) [(1 − λ) V_{t+1} + λ G_{t+1}], where an episode that ends at t (done_t) has no
# G_{t+1} of its own: G_t = r_t + γ (1 − term_t) V_{t+1} (a truncation bootstraps, a termination does not);
# the last step bootstraps on V_T. γ = λ = 0.5:
#   seq 0, truncated at t = 1 (done, not terminated), a new episode from t = 2:
#     r = [1, 2, 3, 4], V_{t+1} = [2, 4, 6, 8]
#     G_3 = 4 + .5·8 = 8;  G_2 = 3 + .5(.5·6 + .5·8) = 6.5;  G_1 = 2 + .5·4 = 4 (truncated: bootstraps on V_2)
#     G_0 = 1 + .5(.5·2 + .5·4) = 2.5
#   seq 1, terminated at t = 1 and at t = 3:
#     r = [1, 3, 2, 5], V_{t+1} = [4, 10, 6, 2]
#     G_3 = 5 (terminal);  G_2 = 2 + .5(.5·6 + .5·5) = 4.75;  G_1 = 3 (terminal: V_2 = 10 is ignored)
#     G_0 = 1 + .5(.5·4 + .5·3) = 2.75
LAMBDA_REWARD = [[1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0]]
LAMBDA_NEXT_V = [[2.0, 4.0, 6.0, 8.0], [4.0, 10.0, 6.0, 2.0]]
LAMBDA_DONE = [[False, True, False, False], [False, True, False, True]]
LAMBDA_TERMINATED = [[False, False, False, False], [False, True, False, True]]
LAMBDA_RETURN = [[2.5, 4.0, 6.5, 8.0], [2.75, 3.0, 4.75, 5.0]]  # the G_t above


def td_lambda_batch():
    f64 = torch.float64
    obs = torch.tensor([[5.0, 0.0], [0.0, 5.0]], dtype=f64).expand(2, 4, 2, 2)  # [B, T, n, A]: actions (0, 1) -> 5 + 5
    half_v = torch.tensor(LAMBDA_NEXT_V, dtype=f64) / 2  # [B, T]
    next_obs = torch.stack([half_v, torch.full_like(half_v, -9.0)], -1).unsqueeze(-2).expand(2, 4, 2, 2)
    return TensorDict(
        {
            "agents": {"observation": obs.clone(), "action": torch.tensor([0, 1]).expand(2, 4, 2).clone()},
            "next": {
                "agents": {"observation": next_obs.clone()},
                "reward": torch.tensor(LAMBDA_REWARD, dtype=f64).unsqueeze(-1),
                "done": torch.tensor(LAMBDA_DONE).unsqueeze(-1),
                "terminated": torch.tensor(LAMBDA_TERMINATED).unsqueeze(-1),
            },
        },
        [2, 4],
    )


@pytest.mark.parametrize("double_q", [False, True])
def test_td_lambda_target_equals_the_return_computed_by_hand(double_q):
    loss = MixingQLoss(identity_agent().double(), VDNMixer(2), double_q=double_q)
    loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.5, lmbda=0.5)
    td = td_lambda_batch()
    expected = torch.tensor(LAMBDA_RETURN, dtype=torch.float64)
    # the target alone, from the hand-set V_{t+1}
    y = loss.td_target(loss.read_batch(td), torch.tensor(LAMBDA_NEXT_V, dtype=torch.float64).unsqueeze(-1))
    torch.testing.assert_close(y.squeeze(-1), expected, rtol=0, atol=1e-10)
    # and through the loss: V_{t+1} from the target networks, TD error |Q_tot − G_t| = 10 − G_t
    out = loss(td)
    torch.testing.assert_close(td["td_error"], 10.0 - expected, rtol=0, atol=1e-10)
    assert out["loss"].item() == pytest.approx(((10.0 - expected) ** 2).mean().item(), rel=0, abs=1e-10)
    # λ matters here: TD(0) on the same batch gives r_t + γ (1 − term_t) V_{t+1}
    loss.make_value_estimator(ValueEstimators.TD0, gamma=0.5)
    loss(td)
    td0 = torch.tensor([[2.0, 4.0, 6.0, 8.0], [3.0, 3.0, 5.0, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(td["td_error"], 10.0 - td0, rtol=0, atol=1e-10)
