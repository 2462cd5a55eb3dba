"""Mixers: VDN additivity, QMIX monotonicity (property), shapes checked with clear errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchrl_vd import QMixer, VDNMixer


def test_vdn_is_exactly_additive():
    q = torch.tensor([[[1.5], [-2.0], [4.25]], [[0.0], [0.0], [1.0]]])  # [2, 3, 1]
    out = VDNMixer(3)(q, None)
    assert out.shape == (2, 1)
    assert out.squeeze(-1).tolist() == [3.75, 1.0]  # VDN (Sunehag et al. 2018): Q = Σ_i Q_i, exactly


@settings(max_examples=25, deadline=None)
@given(
    n_agents=st.integers(1, 5),
    state_dim=st.integers(1, 6),
    layers=st.sampled_from([1, 2]),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 10.0),
)
def test_qmix_monotonic_in_every_utility(n_agents, state_dim, layers, seed, scale):
    """QMIX monotonicity (Rashid et al. 2018, Eq. 5): ∂Q_tot/∂Q_i ≥ 0 for random states, utilities and hypernetwork weights."""
    torch.manual_seed(seed)
    mixer = QMixer(n_agents, (state_dim,), mixing_embed_dim=8, hypernet_layers=layers, hypernet_embed=16)
    with torch.no_grad():
        for p in mixer.parameters():
            p.mul_(scale)
    q = (torch.randn(64, n_agents, 1) * 5).requires_grad_()
    state = torch.randn(64, state_dim) * 3
    (grad,) = torch.autograd.grad(mixer(q, state).sum(), q)
    assert (grad >= 0).all()


def test_qmix_output_matches_written_formula():
    """Q_tot = ELU(Q·|W1| + b1)·|W2| + V(s), the hypernetwork outputs taken from the mixer itself."""
    torch.manual_seed(0)
    mixer = QMixer(2, (3,), mixing_embed_dim=4, hypernet_layers=1)
    q, s = torch.randn(5, 2, 1), torch.randn(5, 3)
    w1 = mixer.hyper_w1(s).abs().view(5, 2, 4)
    w2 = mixer.hyper_w2(s).abs().view(5, 4, 1)
    h = torch.nn.functional.elu(torch.einsum("bn,bne->be", q.squeeze(-1), w1) + mixer.hyper_b1(s))
    expected = torch.einsum("be,beo->bo", h, w2) + mixer.hyper_v(s)
    torch.testing.assert_close(mixer(q, s), expected)


def test_mixer_rejects_wrong_agent_count_and_state():
    mixer = QMixer(3, (4,))
    with pytest.raises(ValueError, match="n_agents=3"):
        mixer(torch.zeros(2, 2, 1), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="state_shape"):
        mixer(torch.zeros(2, 3, 1), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="'state'"):
        mixer(torch.zeros(2, 3, 1), None)
    with pytest.raises(ValueError, match="hypernet_layers"):
        QMixer(3, (4,), hypernet_layers=3)


def test_qmix_init_scale_is_jaxmarls_small_orthogonal_init():
    """init_scale (JaxMARL's MIXER_INIT_SCALE): every hypernetwork layer orthogonal with that gain, zero bias, so
    Q_tot starts near 0 even for SMAX-like states of magnitude ~30; None keeps torch's default."""
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_shape=(72,), mixing_embed_dim=64, hypernet_embed=256, init_scale=0.001)
    linears = [m for net in (mixer.hyper_w1, mixer.hyper_b1, mixer.hyper_w2, mixer.hyper_v)
               for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 7  # W1 and W2: 2 layers each, b1: 1, V: 2
    for layer in linears:
        w = layer.weight.detach()
        sv = torch.linalg.svdvals(w)
        assert torch.allclose(sv, torch.full_like(sv, 0.001), rtol=1e-4)  # orthogonal x gain
        assert torch.equal(layer.bias.detach(), torch.zeros_like(layer.bias))
    state = torch.rand(256, 72) * 32  # raw positions up to 32, as SMAX's world state
    q = torch.randn(256, 3, 1)
    assert mixer(q, state).abs().max() < 1e-3
    default = QMixer(n_agents=3, state_shape=(72,), mixing_embed_dim=64, hypernet_embed=256)
    assert default(q, state).abs().max() > 1.0  # torch's default init: large initial Q_tot on such states
    with pytest.raises(ValueError, match="init_scale must be None"):
        QMixer(n_agents=3, state_shape=(4,), init_scale=0.0)


def test_the_smax_preset_gives_qmix_the_small_init_and_other_algorithms_none():
    import torchrl_vd as vd

    assert vd.TrainConfig(algo="qmix", env="smax/3m").mixer_kwargs == {"init_scale": 0.001}
    assert vd.TrainConfig(algo="qmix", env="smax/3m", mixer_kwargs={"mixing_embed_dim": 64}).mixer_kwargs == {
        "init_scale": 0.001, "mixing_embed_dim": 64}  # merged key by key
    assert vd.TrainConfig(algo="vdn", env="smax/3m").mixer_kwargs == {}
    assert vd.TrainConfig(algo="qmix", env="vmas/balance").mixer_kwargs == {}
