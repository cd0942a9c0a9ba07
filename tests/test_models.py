"""Every method of poolvae.models trains on a small problem: the objective improves, gradients reach
every encoder and decoder, and batches with missing modalities train."""

import math

import pytest
import torch

from poolvae.models import METHODS, Modality, MultimodalVAE, get_method, latent_log_prob, latent_rsample
from poolvae.networks import make_networks

M, B, D = 3, 12, 6


def _model(method: str, seed: int = 0) -> MultimodalVAE:
    torch.manual_seed(seed)
    private = 3 if get_method(method).private else 0
    nets = [make_networks("conv28", D, private, width=8) for _ in range(M)]
    mods = [Modality(f"m{i}", "laplace") for i in range(M)]
    return MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, method, D, private, beta=1.0, K=2)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(B, 3, 28, 28, generator=g)
    # modalities share structure so that one latent can explain them
    return [(base + 0.1 * torch.rand(B, 3, 28, 28, generator=g)).clamp(0, 1) for _ in range(M)]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_objective_improves_and_gradients_reach_every_network(method):
    model = _model(method)
    xs = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    objectives = []
    for step in range(25):
        torch.manual_seed(100 + step)
        out = model(xs)
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:
            for name, net in [("encoder", e) for e in model.encoders] + [("decoder", d) for d in model.decoders]:
                grads = [p.grad for p in net.parameters()]
                assert all(g is not None and torch.isfinite(g).all() for g in grads), f"{method}: {name}"
                assert sum(float(g.abs().sum()) for g in grads) > 0, f"{method}: no gradient reaches a {name}"
        opt.step()
        objectives.append(float(out["objective"]))
    first, last = sum(objectives[:3]) / 3, sum(objectives[-3:]) / 3
    assert last > first + 1.0, f"{method}: objective did not improve ({first:.1f} -> {last:.1f})"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_missing_modalities_train_and_unobserved_inputs_do_not_matter(method):
    model = _model(method)
    xs = _batch(1)
    mask = torch.ones(M, B, dtype=torch.bool)
    mask[0, :4] = False
    mask[2, 6:] = False
    mask[:, 11] = False  # a row with nothing observed: the prior
    torch.manual_seed(0)
    out = model(xs, mask)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the loss must not depend on what an unobserved modality holds
    xs2 = [x.clone() for x in xs]
    xs2[0][:4] = torch.rand(4, 3, 28, 28)
    torch.manual_seed(0)
    out2 = model(xs2, mask)
    # every method: the same seed draws the same samples, and nothing reads the unobserved rows
    assert torch.allclose(out["loss"], out2["loss"], rtol=1e-5)
    xs3 = [x.clone() for x in xs]
    xs3[0][4:6] = torch.rand(2, 3, 28, 28)  # observed rows: these do matter
    torch.manual_seed(0)
    assert not torch.allclose(out["loss"], model(xs3, mask)["loss"], rtol=1e-5)


@pytest.mark.parametrize("method", ["mmvae", "mmvaeplus"])
def test_dreg_keeps_the_iwae_bound_and_its_decoder_gradients(method):
    """DReG (Tucker et al. 2019) changes only the encoder's gradient estimator. With the same draws, the logged
    bound equals plain IWAE's, and so does every decoder gradient: for parameters that do not move the samples,
    d/dtheta sum_k softmax(lw)_k lw_k (weights held fixed) = sum_k softmax(lw)_k dlw_k/dtheta = d logsumexp(lw)/dtheta.
    The encoders' gradients must differ (else the DReG path is not taken)."""
    outs, grads = {}, {}
    for dreg in (True, False):
        model = _model(method).double()  # float64: the identity holds to round-off
        model.dreg = dreg
        torch.manual_seed(3)
        out = model([x.double() for x in _batch(4)])
        out["loss"].backward()
        outs[dreg] = float(out["objective"])
        grads[dreg] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert outs[True] == pytest.approx(outs[False], rel=1e-12)
    decoder = [n for n in grads[False] if n.startswith("decoders.")]
    encoder = [n for n in grads[False] if n.startswith("encoders.")]
    assert decoder and encoder
    for n in decoder:
        assert torch.allclose(grads[True][n], grads[False][n], rtol=1e-8, atol=1e-12), n
    assert not all(torch.allclose(grads[True][n], grads[False][n], rtol=1e-3, atol=1e-6) for n in encoder)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: .*helvae"):
        get_method("nope")


def test_mmvaeplus_requires_private_latents():
    with pytest.raises(ValueError, match="private_dim"):
        nets = [make_networks("conv28", D, 0, width=8) for _ in range(M)]
        MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], [Modality("a", "laplace")] * M, "mmvaeplus", D)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_latent_sampler_matches_its_density(family):
    # logvar is the log variance in both families: check the sample variance and the density's mass
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.5]), torch.tensor([0.3])
    z = latent_rsample(mu, logvar, family, (200_000,))
    assert abs(float(z.mean()) - 0.5) < 0.01
    assert abs(float(z.var()) - float(logvar.exp())) < 0.02
    grid = torch.linspace(-15, 15, 30001).unsqueeze(-1)
    mass = latent_log_prob(grid, mu, logvar, family).exp().sum() * (grid[1] - grid[0])
    assert abs(float(mass) - 1.0) < 1e-3
    # the shape, not only two moments: E|z - mu| and the density at mu tell the two families apart
    v = float(logvar.exp())
    scale = math.sqrt(v / 2)  # Laplace: var = 2 b^2
    mad, peak = (scale, 1 / (2 * scale)) if family == "laplace" else (math.sqrt(2 * v / math.pi),
                                                                       1 / math.sqrt(2 * math.pi * v))
    assert abs(float((z - 0.5).abs().mean()) - mad) < 0.01
    assert float(latent_log_prob(mu.unsqueeze(0), mu, logvar, family).exp()) == pytest.approx(peak, rel=1e-5)


def test_learned_pooling_weights_receive_gradient():
    model = _model("helvae-learned")
    out = model(_batch())
    out["loss"].backward()
    assert model.pool_logits.grad is not None and float(model.pool_logits.grad.abs().sum()) > 0


def _model_with_private(method: str, private: int = 3, seed: int = 0) -> MultimodalVAE:
    torch.manual_seed(seed)
    nets = [make_networks("conv28", D, private, width=8) for _ in range(M)]
    mods = [Modality(f"m{i}", "laplace") for i in range(M)]
    return MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, method, D, private, beta=1.0, K=2)


@pytest.mark.parametrize("method", ["helvae", "wbvae", "mopoe", "mvae", "codevae"])
def test_every_gaussian_objective_takes_modality_specific_latents(method):
    """CelebA's setting in both papers: a private latent per modality for every method."""
    from poolvae.divergences import kl_standard_normal

    model = _model_with_private(method)
    xs = _batch(2)
    mask = torch.ones(M, B, dtype=torch.bool)
    mask[1] = False  # modality 1 unobserved everywhere: nothing may flow back into its encoder
    torch.manual_seed(5)
    out = model(xs, mask)
    out["loss"].backward()
    for m in (0, 2):
        grads = [p.grad for p in model.encoders[m].parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, m
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.encoders[1].parameters())
    for m in (0, 2):  # the observed modalities' decoders see [z, w_m] and learn
        assert sum(float(p.grad.abs().sum()) for p in model.decoders[m].parameters() if p.grad is not None) > 0
    if method in ("helvae", "wbvae"):  # one Gaussian posterior: the reported KL is shared + private, by hand
        with torch.no_grad():
            mu, lv, pmu, plv = model.encode(xs)
            q = model.posterior(mu, lv, mask)
            expected = kl_standard_normal(q.mu, q.logvar) + sum(kl_standard_normal(pmu[m], plv[m]) for m in (0, 2))
        assert torch.allclose(out["kl"], expected.mean(), rtol=1e-5)
