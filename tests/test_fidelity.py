"""The library follows the authors' reference implementations by default (issue #16), checked by hand.

Every test computes the reference formula itself, with plain torch arithmetic on a small input, and compares
it with what the library does by default (the old behaviour stays available as a named option):

1. conditioning on a subset S (:meth:`MultimodalVAE.subset_posterior`, :meth:`MultimodalVAE.conditional`):
   a mixture-of-pools method conditions on S's own pool (MoPoE: the PoE of S, with the prior expert only when S
   is the full set; MWB-VAE: the WB of S; MoHELVAE: the Hellinger pool of S; CoDEVAE: the CoDE consensus of S,
   by explicit matrix inversion), ``"mixture"`` gives the joint posterior;
2. CoDEVAE adds 1000 times the entropy of its subset weights to its objective (the logged objective excludes
   it), which pulls the weights towards uniform;
3. MMVAE and MMVAE+ use the reference Laplace parameterisation (scales ``softmax(a) * D + 1e-6`` per latent
   block, a Laplace prior of scale 1);
4. MoPoE multiplies N(0, I) into the full set's PoE only (``"full"``; ``"none"`` and ``"all"`` by hand too);
5. the paper scale estimates log-likelihoods with K = 1000 importance samples;

and that the options are recorded: config defaults and legacy values of old ``config.json`` files, evaluation
settings and their differences, the per-epoch Hellinger diagnostics of a training run, and
:func:`poolvae.aggregators.hellinger_parts` against 1-D quadrature of the Hölder-1/2 pool.
"""

import dataclasses
import inspect
import itertools
import json
import math

import pytest
import torch
from torch import nn

from poolvae import aggregators as agg
from poolvae import evaluate as E
from poolvae import models as MD
from poolvae import train as T
from poolvae.distributions import DiagGaussian, GaussianMixture
from poolvae.models import Modality, MultimodalVAE

M, B, D = 3, 4, 2  # modalities, rows, shared latent size of the hand-checked experts
N_IN = 5  # input size of each modality of the tiny models
FULL = tuple(range(M))


# --------------------------------------------------------------------------------------------------
# Helpers: tiny models and the reference formulas, written out by hand
# --------------------------------------------------------------------------------------------------


class _TinyEncoder(nn.Module):
    """A linear encoder x (B, N_IN) -> (mu, raw) of width ``width``; ``raw`` is the second output the model
    turns into log-variances (clamped, or the reference Laplace's softmax scales)."""

    def __init__(self, width: int):
        super().__init__()
        self.mu = nn.Linear(N_IN, width)
        self.raw = nn.Linear(N_IN, width)

    def forward(self, x):
        return self.mu(x), self.raw(x)


def _model(method: str, latent_dim: int = D, private_dim: int = 0, decoders=None, seed: int = 0,
           **kwargs) -> MultimodalVAE:
    """A MultimodalVAE with M tiny linear encoders and decoders (or the given decoders) on N_IN-d inputs
    with Laplace likelihoods; ``kwargs`` go to the constructor (laplace_scale, mopoe_prior, ...)."""
    torch.manual_seed(seed)
    width = latent_dim + private_dim
    encoders = [_TinyEncoder(width) for _ in range(M)]
    if decoders is None:
        decoders = [nn.Linear(width, N_IN) for _ in range(M)]
    mods = [Modality(f"m{i}", "laplace") for i in range(M)]
    return MultimodalVAE(encoders, decoders, mods, method, latent_dim, private_dim, **kwargs)


def _inputs(n: int = B, seed: int = 1) -> list[torch.Tensor]:
    """M modalities of ``n`` random N_IN-d rows."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, N_IN, generator=g) for _ in range(M)]


def _experts(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 experts mu, logvar of shape (M, B, D), with log-variances in [-1.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(M, B, D, generator=g, dtype=torch.float64)
    logvar = 3.0 * torch.rand(M, B, D, generator=g, dtype=torch.float64) - 1.5
    return mu, logvar


def _mask_of(rows: list[tuple[int, ...]]) -> torch.Tensor:
    """The (M, len(rows)) bool mask in which row b observes exactly the modalities in ``rows[b]``."""
    mask = torch.zeros(M, len(rows), dtype=torch.bool)
    for b, s in enumerate(rows):
        mask[list(s), b] = True
    return mask


def _observed(mask: torch.Tensor, b: int) -> list[int]:
    """The modalities observed in row b of ``mask``."""
    return [m for m in range(mask.shape[0]) if bool(mask[m, b])]


def _hand_poe(mu: torch.Tensor, var: torch.Tensor, with_prior: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of the Gaussian experts stacked on dim 0 (precisions add), times N(0, I) if ``with_prior``
    (one more expert of precision 1 and mean 0). Returns (mean, variance)."""
    precision = (1.0 / var).sum(0) + (1.0 if with_prior else 0.0)
    return (mu / var).sum(0) / precision, 1.0 / precision


def _hand_wb(mu: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal Wasserstein barycenter with uniform weights: means average, standard deviations average."""
    return mu.mean(0), var.sqrt().mean(0).square()


def _hand_code(mu: torch.Tensor, var: torch.Tensor, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CoDE consensus of n experts (n, D), per dimension, by inverting ``Sigma = diag(s) R diag(s)`` with
    ``R = (1 - rho) I + rho 1 1^T``: weights ``Sigma^-1 1 / (1^T Sigma^-1 1)``, variance ``1 / (1^T Sigma^-1 1)``."""
    n = mu.shape[0]
    one = torch.ones(n, dtype=torch.float64)
    R = (1.0 - rho) * torch.eye(n, dtype=torch.float64) + rho * torch.outer(one, one)
    means, variances = [], []
    for d in range(mu.shape[1]):
        s = var[:, d].sqrt()
        inv = torch.linalg.inv(torch.diag(s) @ R @ torch.diag(s))
        total = one @ inv @ one
        weights = inv @ one / total
        means.append(weights @ mu[:, d])
        variances.append(1.0 / total)
    return torch.stack(means), torch.stack(variances)


def _assert_gaussian(q: DiagGaussian, b: int, mean: torch.Tensor, var: torch.Tensor, what: str = "") -> None:
    """Row b of the diagonal Gaussian ``q`` has the given mean and variance."""
    torch.testing.assert_close(q.mu[b], mean, rtol=1e-9, atol=1e-10, msg=f"mean {what}")
    torch.testing.assert_close(q.logvar[b].exp(), var, rtol=1e-9, atol=1e-10, msg=f"variance {what}")


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits), written out: w = exp(l) / sum exp(l), H = -sum w log w."""
    w = logits.exp() / logits.exp().sum()
    return -(w * w.log()).sum()


def _excess_kurtosis(z: torch.Tensor) -> float:
    """Sample excess kurtosis m4 / m2^2 - 3 of all entries of ``z`` (0 for a Gaussian, 3 for a Laplace)."""
    c = z.double().flatten()
    c = c - c.mean()
    return float((c**4).mean() / (c**2).mean() ** 2 - 3.0)


#: Subsets S conditioned on in test 1: every row of a mask observes S; "mixed" gives each row its own S,
#: one of them empty (the prior N(0, I) by the pooling contract).
MASKS = {
    "full": _mask_of([FULL] * B),
    "m0": _mask_of([(0,)] * B),
    "m2": _mask_of([(2,)] * B),
    "m0m2": _mask_of([(0, 2)] * B),
    "mixed": _mask_of([FULL, (1,), (0, 1), ()]),
}


# --------------------------------------------------------------------------------------------------
# 1. Conditioning on a subset S
# --------------------------------------------------------------------------------------------------


def _hand_subset_pool(model: MultimodalVAE, mu, logvar, mask, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's posterior given the modalities observed in row b: S's own pool, by hand."""
    s = _observed(mask, b)
    if not s:  # nothing observed: the prior
        return torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)
    mu_s, var_s = mu[s, b], logvar[s, b].exp()
    method = model.spec.name
    if method == "mopoe":
        full = len(s) == model.M
        with_prior = model.mopoe_prior == "all" or (model.mopoe_prior == "full" and full)
        return _hand_poe(mu_s, var_s, with_prior)
    if method == "mwbvae":
        return _hand_wb(mu_s, var_s)
    if method == "codevae":
        return _hand_code(mu_s, var_s, model.rho)
    if method == "mohelvae":  # the Hellinger formula itself is tested in test_aggregators.py
        q = agg.hellinger(mu[s, b:b + 1], logvar[s, b:b + 1])
        return q.mu[0], q.logvar[0].exp()
    raise AssertionError(method)


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("method,kwargs", [
    ("mopoe", {}),
    ("mopoe", {"mopoe_prior": "none"}),
    ("mopoe", {"mopoe_prior": "all"}),
    ("mwbvae", {}),
    ("mohelvae", {}),
    ("codevae", {}),
    ("codevae", {"rho": 0.2}),
])
def test_subset_posterior_pool_is_the_subsets_own_pool(method, kwargs, mask_name):
    model = _model(method, **kwargs)
    mu, logvar = _experts()
    mask = MASKS[mask_name]
    q = model.subset_posterior(mu, logvar, mask)  # the default: "pool"
    assert isinstance(q, DiagGaussian)
    assert q.mu.shape == (B, D)
    for b in range(B):
        mean, var = _hand_subset_pool(model, mu, logvar, mask, b)
        _assert_gaussian(q, b, mean, var, f"{method} {kwargs} row {b} S={_observed(mask, b)}")


def test_mopoe_subset_pool_has_the_prior_expert_only_for_the_full_set():
    """The default MoPoE pool of the full set differs from the plain PoE by exactly the prior expert."""
    model = _model("mopoe")
    mu, logvar = _experts(3)
    full = model.subset_posterior(mu, logvar, MASKS["full"])
    for b in range(B):
        with_prior = _hand_poe(mu[:, b], logvar[:, b].exp(), True)
        without = _hand_poe(mu[:, b], logvar[:, b].exp(), False)
        _assert_gaussian(full, b, *with_prior)
        assert not torch.allclose(full.logvar[b].exp(), without[1])
    pair = model.subset_posterior(mu, logvar, MASKS["m0m2"])
    for b in range(B):
        _assert_gaussian(pair, b, *_hand_poe(mu[[0, 2], b], logvar[[0, 2], b].exp(), False))


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("method", ["mopoe", "mwbvae", "mohelvae", "codevae"])
def test_subset_posterior_mixture_is_the_joint_posterior(method, mask_name):
    model = _model(method)
    mu, logvar = _experts(1)
    mask = MASKS[mask_name]
    q = model.subset_posterior(mu, logvar, mask, "mixture")
    joint = model.posterior(mu, logvar, mask)
    assert isinstance(q, GaussianMixture) and isinstance(joint, GaussianMixture)
    torch.testing.assert_close(q.log_weights, joint.log_weights)
    present = torch.isfinite(joint.log_weights).unsqueeze(-1)
    torch.testing.assert_close(torch.where(present, q.mu, 0.0), torch.where(present, joint.mu, 0.0))
    torch.testing.assert_close(torch.where(present, q.logvar, 0.0), torch.where(present, joint.logvar, 0.0))
    # by hand: uniform weights over the non-empty subsets of S (CoDEVAE's logits start at zero)
    members = list(itertools.chain.from_iterable(itertools.combinations(FULL, k) for k in range(1, M + 1)))
    for b in range(B):
        s = set(_observed(mask, b)) or {0}  # an empty row: the prior, as the component of subset {0}
        inside = [set(k) <= s for k in members]
        expected = torch.tensor([1.0 / sum(inside) if i else 0.0 for i in inside], dtype=torch.float64)
        torch.testing.assert_close(q.weights[:, b], expected)


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("method", ["helvae", "mvae", "wbvae", "mmvae"])
def test_subset_posterior_is_the_posterior_either_way_for_other_methods(method, mask_name):
    model = _model(method)
    mu, logvar = _experts(2)
    mask = MASKS[mask_name]
    joint = model.posterior(mu, logvar, mask)
    for how in MD.SUBSET_POSTERIORS:
        q = model.subset_posterior(mu, logvar, mask, how)
        assert type(q) is type(joint)
        for field in dataclasses.fields(joint):
            torch.testing.assert_close(getattr(q, field.name), getattr(joint, field.name))
    if method == "mvae":  # by hand: the PoE of S with the prior expert
        q = model.subset_posterior(mu, logvar, mask)
        for b in range(B):
            s = _observed(mask, b)
            _assert_gaussian(q, b, *_hand_poe(mu[s, b], logvar[s, b].exp(), True))


def test_unknown_subset_posterior_is_an_error():
    model = _model("mopoe")
    mu, logvar = _experts()
    assert MD.SUBSET_POSTERIORS == ("pool", "mixture")
    with pytest.raises(ValueError, match="pool"):
        model.subset_posterior(mu, logvar, MASKS["full"], "nope")
    with pytest.raises(ValueError):
        model.conditional(_inputs(), MASKS["full"], subset_posterior="nope")


@pytest.mark.parametrize("mask_name", ["full", "m0m2"])
def test_conditional_generation_decodes_a_draw_from_the_subsets_pool(mask_name):
    """``conditional`` draws z = mean + eps * std from S's PoE (a seeded eps, drawn the way
    DiagGaussian.rsample draws it) and decodes it: the outputs equal decoding that draw by hand."""
    model = _model("mopoe")
    xs = _inputs()
    mask = MASKS[mask_name]
    torch.manual_seed(7)
    outs = model.conditional(xs, mask)  # default: subset_posterior="pool"
    with torch.no_grad():
        mu = torch.stack([enc(x)[0] for enc, x in zip(model.encoders, xs, strict=True)]).double()
        logvar = torch.stack([enc(x)[1] for enc, x in zip(model.encoders, xs, strict=True)]).clamp(-30, 30).double()
        torch.manual_seed(7)
        eps = torch.randn(B, D)
        z = []
        for b in range(B):
            s = _observed(mask, b)
            mean, var = _hand_poe(mu[s, b], logvar[s, b].exp(), len(s) == M)
            z.append(mean + eps[b].double() * var.sqrt())
        z = torch.stack(z).float()
        expected = [dec(z) for dec in model.decoders]
    for got, want in zip(outs, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# 2. CoDEVAE's subset weights
# --------------------------------------------------------------------------------------------------

SKEWED_LOGITS = torch.tensor([2.0, 0.0, -1.0, 0.5, 0.0, 1.0, -2.0])


def test_codevae_loss_adds_1000_times_the_subset_weight_entropy():
    model = _model("codevae")
    assert model.subset_entropy_coef == 1000.0
    xs = _inputs(8)
    with torch.no_grad():
        model.subset_logits.copy_(SKEWED_LOGITS)
    H = _entropy(SKEWED_LOGITS.double())
    torch.manual_seed(3)
    out = model(xs)
    torch.testing.assert_close(out["loss"].double(), -(out["objective"].double() + 1000.0 * H), rtol=1e-6, atol=1e-3)
    # the logged objective is the bound: the same number without the entropy term
    model.subset_entropy_coef = 0.0
    torch.manual_seed(3)
    free = model(xs)
    torch.testing.assert_close(free["objective"], out["objective"])
    torch.testing.assert_close(free["loss"], -free["objective"])


def test_codevae_entropy_coef_zero_gives_the_negative_objective():
    model = _model("codevae", subset_entropy_coef=0.0)
    torch.manual_seed(4)
    out = model(_inputs(8))
    torch.testing.assert_close(out["loss"], -out["objective"])


def test_codevae_entropy_gradient_pulls_the_weights_towards_uniform():
    model = _model("codevae")
    xs = _inputs(8)
    with torch.no_grad():
        model.subset_logits.copy_(SKEWED_LOGITS)

    def logit_grad(coef: float) -> torch.Tensor:
        """Gradient of the loss with respect to the subset logits, with the same draws every time."""
        model.subset_entropy_coef = coef
        model.zero_grad()
        torch.manual_seed(5)
        model(xs)["loss"].backward()
        return model.subset_logits.grad.clone()

    # by hand: dH/dl_k = -w_k (log w_k + H), and the loss holds -1000 H
    w = torch.softmax(SKEWED_LOGITS.double(), 0)
    dH = -w * (w.log() + _entropy(SKEWED_LOGITS.double()))
    torch.testing.assert_close((logit_grad(1000.0) - logit_grad(0.0)).double(), -1000.0 * dH, rtol=1e-4, atol=1e-3)
    # one gradient step on the full loss raises the entropy and narrows the spread of the logits
    logit_grad(1000.0)
    before = _entropy(model.subset_logits.detach().double())
    torch.optim.SGD([model.subset_logits], lr=1e-4).step()
    after_logits = model.subset_logits.detach()
    assert _entropy(after_logits.double()) > before
    assert float(after_logits.max() - after_logits.min()) < float(SKEWED_LOGITS.max() - SKEWED_LOGITS.min())


def test_codevae_diagnostics_report_the_subset_weight_entropy():
    model = _model("codevae")
    with torch.no_grad():
        model.subset_logits.copy_(SKEWED_LOGITS)
    diag = model.diagnostics(_inputs())
    assert diag["subset_weights/entropy"] == pytest.approx(float(_entropy(SKEWED_LOGITS.double())), rel=1e-6)
    assert diag["subset_weights/max_entropy"] == pytest.approx(math.log(2**M - 1))
    assert "subset_weights/entropy" not in _model("mopoe").diagnostics(_inputs())


# --------------------------------------------------------------------------------------------------
# 3. MMVAE / MMVAE+ Laplace parameterisation
# --------------------------------------------------------------------------------------------------


def _reference_laplace_logvar(a: torch.Tensor) -> torch.Tensor:
    """log(2 b^2) with the reference scale b = softmax(a) * width + 1e-6 over the last dim of ``a``."""
    b = a.exp() / a.exp().sum(-1, keepdim=True) * a.shape[-1] + 1e-6
    return torch.log(2.0 * b**2)


def test_laplace_constants():
    assert MD.LAPLACE_SCALES == ("softmax", "free")
    assert MD.LAPLACE_ETA == 1e-6
    assert inspect.signature(MultimodalVAE).parameters["laplace_scale"].default == "softmax"


def test_mmvae_encodes_reference_softmax_laplace_scales():
    model = _model("mmvae", latent_dim=4)
    xs = _inputs()
    with torch.no_grad():
        mu, logvar, pmu, plogvar = model.encode(xs)
        for m, (enc, x) in enumerate(zip(model.encoders, xs, strict=True)):
            mu_m, a = enc(x)
            torch.testing.assert_close(mu[m], mu_m)
            torch.testing.assert_close(logvar[m], _reference_laplace_logvar(a.double()).float(), rtol=1e-5, atol=1e-5)
    assert pmu is None and plogvar is None
    # each posterior's scales share a budget of D: sum_d b_d = D (up to the eta floors)
    b = torch.sqrt(logvar.double().exp() / 2.0)
    torch.testing.assert_close(b.sum(-1), torch.full((M, B), 4.0 + 4e-6, dtype=torch.float64), rtol=1e-5, atol=1e-5)


def test_mmvaeplus_softmax_runs_over_the_shared_and_private_blocks_separately():
    Ds, Dp = 3, 2  # different widths, so a softmax over the wrong block shows
    model = _model("mmvaeplus", latent_dim=Ds, private_dim=Dp)
    xs = _inputs()
    with torch.no_grad():
        mu, logvar, pmu, plogvar = model.encode(xs)
        for m, (enc, x) in enumerate(zip(model.encoders, xs, strict=True)):
            mu_m, a = enc(x)
            a = a.double()
            torch.testing.assert_close(mu[m], mu_m[:, :Ds])
            torch.testing.assert_close(pmu[m], mu_m[:, Ds:])
            torch.testing.assert_close(logvar[m].double(), _reference_laplace_logvar(a[:, :Ds]), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(plogvar[m].double(), _reference_laplace_logvar(a[:, Ds:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["mmvae", "helvae"])
def test_free_laplace_scale_and_gaussian_methods_keep_raw_log_variances(method):
    kwargs = {"laplace_scale": "free"} if method == "mmvae" else {}
    model = _model(method, **kwargs)
    xs = _inputs()
    with torch.no_grad():
        _, logvar, _, _ = model.encode(xs)
        raw = torch.stack([enc(x)[1] for enc, x in zip(model.encoders, xs, strict=True)])
    torch.testing.assert_close(logvar, raw.clamp(-30.0, 30.0))


def test_laplace_prior_log_density_by_hand():
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = _model("mmvae")  # Laplace(0, scale 1)
    torch.testing.assert_close(reference.prior_log_prob(z), (-math.log(2.0) - z.abs()).sum(-1))
    free = _model("mmvae", laplace_scale="free")  # Laplace of variance 1: scale 1 / sqrt(2)
    s2 = math.sqrt(2.0)
    torch.testing.assert_close(free.prior_log_prob(z), (-math.log(2.0 / s2) - s2 * z.abs()).sum(-1))
    gaussian = _model("helvae")
    torch.testing.assert_close(gaussian.prior_log_prob(z), (-0.5 * math.log(2 * math.pi) - 0.5 * z**2).sum(-1))


@pytest.mark.parametrize("method,kwargs,variance", [
    ("mmvae", {}, 2.0),
    ("mmvaeplus", {"private_dim": 2}, 2.0),
    ("mmvae", {"laplace_scale": "free"}, 1.0),
])
def test_laplace_prior_samples_have_laplace_variance_and_kurtosis(method, kwargs, variance):
    model = _model(method, **kwargs)
    torch.manual_seed(0)
    z = model.prior_sample(200_000, 2)
    assert z.shape == (200_000, 2)
    assert float(z.double().var()) == pytest.approx(variance, rel=0.02)
    assert abs(float(z.double().mean())) < 0.02
    assert _excess_kurtosis(z) == pytest.approx(3.0, abs=0.4)  # a Gaussian would give 0


def test_mmvaeplus_auxiliary_draws_are_scaled_laplace_prior_draws():
    """With identity decoders ``decode(z, None)`` returns [z, w_m]: the private draws w_m of unseen modalities are
    ``aux_std`` times prior draws, a Laplace of variance 2 aux_std^2."""
    Ds, Dp = 2, 3
    model = _model("mmvaeplus", latent_dim=Ds, private_dim=Dp, decoders=[nn.Identity() for _ in range(M)])
    model.aux_std = 0.5
    z = torch.zeros(100_000, Ds)
    torch.manual_seed(1)
    outs = model.decode(z, None)
    assert len(outs) == M
    w = torch.stack([o[:, Ds:] for o in outs])
    assert torch.equal(torch.stack([o[:, :Ds] for o in outs]), torch.zeros(M, 100_000, Ds))
    assert float(w.double().var()) == pytest.approx(2.0 * 0.5**2, rel=0.02)
    assert _excess_kurtosis(w) == pytest.approx(3.0, abs=0.4)


# --------------------------------------------------------------------------------------------------
# 4. MoPoE's prior expert
# --------------------------------------------------------------------------------------------------

#: agg.subsets(3) order, written out: by size, then lexicographic; the last row is the full set.
SUBSETS_3 = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
MOPOE_MASK = _mask_of([FULL, (0, 2), (1,), FULL])


def test_subsets_order():
    members = agg.subsets(M)
    assert [tuple(i for i in range(M) if bool(row[i])) for row in members] == SUBSETS_3


@pytest.mark.parametrize("prior_expert", ["none", "full", "all", True, False])
def test_mopoe_prior_expert_by_hand(prior_expert):
    where = {True: "all", False: "none"}.get(prior_expert, prior_expert)
    mu, logvar = _experts(4)
    q = agg.mopoe(mu, logvar, MOPOE_MASK, prior_expert)
    assert q.mu.shape == (len(SUBSETS_3), B, D)
    for b in range(B):
        observed = set(_observed(MOPOE_MASK, b))
        valid = [set(s) <= observed for s in SUBSETS_3]
        for k, s in enumerate(SUBSETS_3):
            if not valid[k]:
                assert q.weights[k, b] == 0, (k, b)
                continue
            assert float(q.weights[k, b]) == pytest.approx(1.0 / sum(valid))
            with_prior = where == "all" or (where == "full" and len(s) == M)
            mean, var = _hand_poe(mu[list(s), b], logvar[list(s), b].exp(), with_prior)
            torch.testing.assert_close(q.mu[k, b], mean, rtol=1e-9, atol=1e-10, msg=f"{s} row {b}")
            torch.testing.assert_close(q.logvar[k, b].exp(), var, rtol=1e-9, atol=1e-10, msg=f"{s} row {b}")


def test_mopoe_prior_expert_options_and_errors():
    assert agg.MOPOE_PRIOR_EXPERT == ("none", "full", "all")
    mu, logvar = _experts()
    with pytest.raises(ValueError, match="prior_expert"):
        agg.mopoe(mu, logvar, None, "sometimes")
    with pytest.raises(ValueError, match="mopoe_prior"):
        _model("mopoe", mopoe_prior="sometimes")


def test_times_standard_normal_by_hand():
    mu, logvar = _experts(5)
    q = agg.times_standard_normal(DiagGaussian(mu[0], logvar[0]))
    var = logvar[0].exp()
    mean, var_out = _hand_poe(torch.stack([mu[0], torch.zeros_like(mu[0])]), torch.stack([var, torch.ones_like(var)]),
                              False)
    torch.testing.assert_close(q.mu, mean)
    torch.testing.assert_close(q.logvar.exp(), var_out)
    torch.testing.assert_close(q.mu, mu[0] / var / (1.0 / var + 1.0))


def test_mopoe_model_default_puts_the_prior_in_the_full_sets_product():
    model = _model("mopoe")
    assert model.mopoe_prior == "full"
    mu, logvar = _experts(6)
    q = model.posterior(mu, logvar, MASKS["full"])
    for b in range(B):
        full = _hand_poe(mu[:, b], logvar[:, b].exp(), True)
        torch.testing.assert_close(q.mu[-1, b], full[0])
        torch.testing.assert_close(q.logvar[-1, b].exp(), full[1])
        pair = _hand_poe(mu[[0, 1], b], logvar[[0, 1], b].exp(), False)  # subset (0, 1): no prior
        torch.testing.assert_close(q.mu[3, b], pair[0])
        torch.testing.assert_close(q.logvar[3, b].exp(), pair[1])


# --------------------------------------------------------------------------------------------------
# 5. Importance-sampled log-likelihood, and the evaluation settings
# --------------------------------------------------------------------------------------------------


def test_paper_scale_log_likelihood_uses_1000_importance_samples():
    assert E.make_settings("paper").K == 1000  # HEL App. B
    # the settings are per scale only: every data set at the paper scale gets the same EvalSettings
    assert list(inspect.signature(E.make_settings).parameters) == ["scale", "overrides"]
    assert set(E.EVAL_DEFAULTS) == set(T.SCALES)
    assert E.make_settings("paper") == E.make_settings("paper", {})


def test_evaluation_settings_record_the_subset_posterior():
    settings = E.make_settings("ci")
    assert settings.subset_posterior == "pool"
    old = {k: v for k, v in dataclasses.asdict(settings).items() if k != "subset_posterior"}
    assert E.settings_differences({"settings": old, "run": {"method": "mopoe"}}, settings) == {
        "subset_posterior": ("mixture", "pool")}
    assert E.settings_differences({"settings": old, "run": {"method": "helvae"}}, settings) == {}
    current = dataclasses.asdict(settings)
    assert E.settings_differences({"settings": current, "run": {"method": "mopoe"}}, settings) == {}
    with pytest.raises(ValueError, match="subset_posterior"):
        E.make_settings("ci", {"subset_posterior": "nope"})


# --------------------------------------------------------------------------------------------------
# Recording the options: train configs
# --------------------------------------------------------------------------------------------------

NEW_FIELDS = ("laplace_scale", "mopoe_prior", "subset_entropy_coef")


@pytest.mark.parametrize("method", sorted(MD.METHODS))
def test_config_defaults_are_the_reference(method):
    cfg = T.make_config("polymnist-mini", method, "ci")
    assert (cfg.laplace_scale, cfg.mopoe_prior, cfg.subset_entropy_coef) == ("softmax", "full", 1000.0)


@pytest.mark.parametrize("dataset,scale", [("polymnist-mini", "ci"), ("polymnist-mini", "cpu"), ("polymnist", "paper")])
@pytest.mark.parametrize("method", ["mmvae", "mmvaeplus"])
def test_polymnist_mmvae_trains_the_plain_elbo_with_one_sample(method, dataset, scale):
    cfg = T.make_config(dataset, method, scale)
    assert cfg.K == 1 and cfg.dreg is False
    assert T.METHOD_ALL_SCALES[("polymnist", method)] == {"K": 1, "dreg": False}


def test_legacy_values():
    assert T.LEGACY_VALUES == {"laplace_scale": "free", "mopoe_prior": "none", "subset_entropy_coef": 0.0,
                               "amp": "off", "tuples": 1, "kl_warmup": 0}


@pytest.mark.parametrize("method,expected", [
    ("mopoe", {"mopoe_prior": ("none", "full")}),
    ("codevae", {"subset_entropy_coef": (0.0, 1000.0)}),
    ("mmvae", {"laplace_scale": ("free", "softmax")}),
    ("mmvaeplus", {"laplace_scale": ("free", "softmax")}),
    ("helvae", {}),
])
def test_an_old_config_without_the_new_fields_takes_the_legacy_values(method, expected):
    current = T.make_config("polymnist-mini", method, "ci")
    old = {k: v for k, v in dataclasses.asdict(current).items() if k not in NEW_FIELDS}
    old["retired_field"] = 3  # unknown keys of an old file are dropped
    stored = T.stored_config(old)
    assert (stored.laplace_scale, stored.mopoe_prior, stored.subset_entropy_coef) == ("free", "none", 0.0)
    assert T.config_differences(stored, current) == expected
    irrelevant = T.irrelevant_fields(method)
    assert set(NEW_FIELDS) - set(expected) <= irrelevant
    assert not set(expected) & irrelevant
    # a config that has the fields keeps them
    assert T.config_differences(T.stored_config(dataclasses.asdict(current)), current) == {}


# --------------------------------------------------------------------------------------------------
# Hellinger diagnostics: hellinger_parts against quadrature, and a training run's log
# --------------------------------------------------------------------------------------------------


def _quadrature(mu: list[float], var: list[float], lam: list[float]) -> dict[str, float]:
    """Mean and variance of the 1-D Hölder-1/2 pool ``p ∝ (sum_j l_j sqrt(q_j))^2`` on a fine grid, and the
    singles' share of its mass ``sum_j l_j^2 / ∫ (sum_j l_j sqrt(q_j))^2`` (each q_j integrates to 1)."""
    z = torch.linspace(-25.0, 25.0, 500_001, dtype=torch.float64)
    dz = float(z[1] - z[0])
    root = sum(l * torch.exp(-0.25 * (z - m) ** 2 / v) / (2 * math.pi * v) ** 0.25 for m, v, l in zip(mu, var, lam,
                                                                                                       strict=True))
    density = root**2
    total = float(density.sum() * dz)
    mean = float((z * density).sum() * dz) / total
    variance = float(((z - mean) ** 2 * density).sum() * dz) / total
    return {"mean": mean, "var": variance, "single_share": sum(l * l for l in lam) / total}


@pytest.mark.parametrize("mu,var,weights", [
    ([-1.0, 0.5, 2.0], [0.5, 1.0, 2.0], None),
    ([0.0, 0.3, -0.4], [0.2, 3.0, 0.7], None),
    ([-2.0, 1.0, 1.5], [1.0, 0.3, 0.6], [0.2, 0.5, 0.3]),
])
def test_hellinger_parts_match_quadrature(mu, var, weights):
    mu_t = torch.tensor(mu, dtype=torch.float64).view(3, 1, 1)
    lv_t = torch.tensor(var, dtype=torch.float64).log().view(3, 1, 1)
    w = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    parts = agg.hellinger_parts(mu_t, lv_t, None, w)
    lam = [1.0 / 3] * 3 if weights is None else weights
    ref = _quadrature(mu, var, lam)
    assert float(parts.mean) == pytest.approx(ref["mean"], rel=1e-4, abs=1e-8)
    assert float(parts.var) == pytest.approx(ref["var"], rel=1e-4)
    assert 1.0 - float(parts.pair_mass) == pytest.approx(ref["single_share"], rel=1e-4)
    torch.testing.assert_close(parts.var_within + parts.var_between, parts.var)
    # the same moments as the hellinger pool
    q = agg.hellinger(mu_t, lv_t, None, w)
    torch.testing.assert_close(parts.mean, q.mu)
    torch.testing.assert_close(parts.var, q.logvar.exp())


def test_hellinger_parts_with_a_mask_pool_only_the_observed_experts():
    mu = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64).view(3, 1, 1).expand(3, 2, 1).contiguous()
    var = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64).view(3, 1, 1).expand(3, 2, 1)
    mask = torch.tensor([[True, True], [False, True], [True, True]])
    parts = agg.hellinger_parts(mu, var.log(), mask)
    ref = _quadrature([-1.0, 2.0], [0.5, 2.0], [0.5, 0.5])
    assert float(parts.mean[0]) == pytest.approx(ref["mean"], rel=1e-4)
    assert float(parts.var[0]) == pytest.approx(ref["var"], rel=1e-4)
    assert 1.0 - float(parts.pair_mass[0]) == pytest.approx(ref["single_share"], rel=1e-4)
    # the log Bhattacharyya coefficients, by hand: 1/2 log(2 s_i s_j / (v_i + v_j)) - (mu_i - mu_j)^2 / (4 (v_i + v_j))
    m, v = [-1.0, 0.5, 2.0], [0.5, 1.0, 2.0]
    for p, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        hand = 0.5 * math.log(2 * math.sqrt(v[i] * v[j]) / (v[i] + v[j])) - (m[i] - m[j]) ** 2 / (4 * (v[i] + v[j]))
        assert float(parts.log_overlap[p, 1]) == pytest.approx(hand, rel=1e-9)
    # the summary averages over the batch, and takes overlaps and expert variances of observed experts only
    summary = agg.hellinger_summary(parts, mask)
    assert summary["pool/pair_share"] == pytest.approx(float(parts.pair_mass.mean()))
    assert summary["pool/disagreement_share"] == pytest.approx(float((parts.var_between / parts.var).mean()))
    overlaps = [float(parts.log_overlap[1, 0])] + [float(x) for x in parts.log_overlap[:, 1]]  # row 0: pair (0, 2)
    assert summary["pool/log_overlap_median"] == pytest.approx(float(torch.tensor(overlaps).median()))
    assert summary["pool/expert_var_mean"] == pytest.approx((0.5 + 2.0 + 0.5 + 1.0 + 2.0) / 5)


def test_far_apart_sharp_experts_have_no_pair_mass():
    mu = torch.tensor([-5.0, 5.0], dtype=torch.float64).view(2, 1, 1)
    logvar = torch.full((2, 1, 1), math.log(1e-4), dtype=torch.float64)
    parts = agg.hellinger_parts(mu, logvar)
    assert float(parts.pair_mass) < 1e-12
    assert float(parts.var_between / parts.var) == pytest.approx(1.0, abs=1e-5)
    assert float(parts.var) == pytest.approx(25.0 + 1e-4, rel=1e-9)


def test_a_helvae_training_run_logs_the_pool_diagnostics(tmp_path):
    cfg = T.make_config("polymnist-mini", "helvae", "ci")
    run_dir = T.train(cfg, results_dir=tmp_path / "runs", checkpoint_dir=tmp_path / "ck", progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["epochs"]) == cfg.epochs
    keys = ("pool/pair_share", "pool/disagreement_share", "pool/log_overlap_median", "pool/expert_var_mean")
    for entry in metrics["epochs"]:
        for key in keys:
            assert key in entry and math.isfinite(entry[key]), (entry["epoch"], key)
        assert 0.0 <= entry["pool/pair_share"] <= 1.0
        assert 0.0 <= entry["pool/disagreement_share"] <= 1.0
        assert entry["pool/expert_var_mean"] > 0.0
