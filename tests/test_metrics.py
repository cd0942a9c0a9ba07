"""Evaluation metrics against known answers: perfect and constant classifiers, a linear-Gaussian model's
closed-form marginal likelihood, solid-colour images, and hand-computed curves."""

import math

import numpy as np
import pytest
import torch

from poolvae import metrics as mt
from poolvae.distributions import DiagGaussian, GaussianMixture
from poolvae.models import METHODS, Modality, MultimodalVAE

# --------------------------------------------------------------------------------------------------
# Subsets and curves
# --------------------------------------------------------------------------------------------------


def test_subsets_follow_the_aggregators_order_and_names():
    subs = mt.subset_list(3)
    assert subs == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert mt.subset_name((0, 2), ["mnist", "svhn", "text"]) == "mnist+text"
    mask = mt.subset_mask((0, 2), 3, 4)
    assert mask.shape == (3, 4) and mask[0].all() and not mask[1].any() and mask[2].all()


def test_by_size_means_and_stds_by_hand():
    values = {(0,): 0.2, (1,): 0.4, (2,): 0.9, (0, 1): 0.5, (0, 2): 0.7, (1, 2): float("nan"), (0, 1, 2): 1.0}
    out = mt.by_size(values)
    assert out["1"]["mean"] == pytest.approx(0.5) and out["1"]["n"] == 3
    assert out["1"]["std"] == pytest.approx(np.std([0.2, 0.4, 0.9]))
    assert out["2"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 2}  # NaN left out
    assert out["3"]["mean"] == 1.0 and out["3"]["std"] == 0.0
    per_target = mt.by_size_per_target({((1,), 0): 3.0, ((2,), 0): 5.0, ((1, 2), 0): 1.0, ((0,), 1): 7.0}, 3)
    assert per_target[0]["1"]["mean"] == 4.0 and per_target[0]["2"]["mean"] == 1.0
    assert per_target[1] == {"1": {"mean": 7.0, "std": 0.0, "n": 1}} and per_target[2] == {}
    pairs = mt.by_size_pairs({((1,), 0): 3.0, ((2,), 0): 5.0, ((1, 2), 0): 1.0, ((0,), 1): 7.0})
    assert pairs["1"] == {"mean": 5.0, "std": pytest.approx(np.std([3.0, 5.0, 7.0])), "n": 3}


# --------------------------------------------------------------------------------------------------
# Coherence
# --------------------------------------------------------------------------------------------------


def test_perfect_classifier_gives_coherence_one_and_a_constant_one_gives_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 100)  # balanced, as PolyMNIST-mini's test split
    assert mt.coherence(labels, labels) == 1.0
    assert mt.coherence(np.full_like(labels, 3), labels) == pytest.approx(0.1)  # chance for 10 classes
    random_pred = rng.integers(0, 10, labels.shape)
    assert abs(mt.coherence(random_pred, labels) - 0.1) < 0.05
    with pytest.raises(ValueError, match="predictions"):
        mt.coherence(labels[:5], labels)


def test_unconditional_coherence_counts_full_agreement():
    labels = np.repeat(np.arange(10), 10)
    assert mt.unconditional_coherence(np.stack([labels] * 5)) == 1.0
    # a classifier that always answers 3 agrees with the others only on the tenth that is 3
    preds = np.stack([labels] * 4 + [np.full_like(labels, 3)])
    assert mt.unconditional_coherence(preds) == pytest.approx(0.1)


def test_coherence_summary_averages_pairs_subsets_and_sizes():
    names = ["a", "b", "c"]
    pairs = {((0,), 1): 1.0, ((0,), 2): 0.5, ((1,), 0): 0.0, ((1,), 2): 0.5, ((2,), 0): 1.0, ((2,), 1): 1.0,
             ((0, 1), 2): 0.9, ((0, 2), 1): 0.6, ((1, 2), 0): 0.3}
    s = mt.coherence_summary(pairs, names)
    assert s["per_pair"]["a"] == {"b": 1.0, "c": 0.5} and s["per_pair"]["b+c"] == {"a": 0.3}
    assert s["per_subset"] == {"a": 0.75, "b": 0.25, "c": 1.0, "a+b": 0.9, "a+c": 0.6, "b+c": 0.3}
    assert s["by_size"]["1"]["mean"] == pytest.approx(2.0 / 3.0) and s["by_size"]["2"]["mean"] == pytest.approx(0.6)
    assert s["overall"] == pytest.approx(np.mean(list(pairs.values())))  # over all pairs (WB Table 2 "Avg.")


def test_average_precision_perfect_constant_and_missing_positives():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    ap = mt.average_precision_per_attribute(y.astype(float), y)
    assert ap[0] == 1.0 and ap[1] == 1.0 and np.isnan(ap[2])
    const = mt.average_precision_per_attribute(np.zeros((4, 3)), y)
    assert const[0] == pytest.approx(0.5) and const[1] == pytest.approx(0.5)  # the prevalence
    agree = mt.attribute_agreement(np.stack([y, y]))
    assert agree["mean"] == 1.0 and agree["all_attributes"] == 1.0
    agree = mt.attribute_agreement(np.stack([y, 1 - y]))
    assert agree["mean"] == 0.0
    # partly: two samples, two attributes; the modalities agree on attribute 0 for sample 0 only, on attribute 1
    # for both, so per attribute 1/2 and 1, mean 3/4, and all attributes on one sample of two
    agree = mt.attribute_agreement(np.array([[[1, 0], [1, 1]], [[1, 0], [0, 1]]]))
    assert agree == {"per_attribute": [0.5, 1.0], "mean": 0.75, "all_attributes": 0.5}


# --------------------------------------------------------------------------------------------------
# Latent representation
# --------------------------------------------------------------------------------------------------


def test_latent_probe_separable_and_uninformative_codes():
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.integers(0, 3, 500), rng.integers(0, 3, 300)
    centres = np.eye(3) * 6.0
    z_tr, z_te = centres[y_tr] + rng.normal(size=(500, 3)), centres[y_te] + rng.normal(size=(300, 3))
    assert mt.latent_accuracy(z_tr, y_tr, z_te, y_te) > 0.98
    noise = mt.latent_accuracy(rng.normal(size=(500, 3)), y_tr, rng.normal(size=(300, 3)), y_te)
    assert abs(noise - 1.0 / 3.0) < 0.1
    # CelebA-style: one probe per attribute, AP near 1 for an informative code, prevalence for a constant one
    a_tr = np.stack([y_tr == 0, y_tr == 1, np.zeros(500, bool)], 1).astype(int)
    a_te = np.stack([y_te == 0, y_te == 1, np.zeros(300, bool)], 1).astype(int)
    r = mt.latent_average_precision(z_tr, a_tr, z_te, a_te)
    assert r["per_attribute_ap"][0] > 0.98 and r["per_attribute_ap"][1] > 0.98 and np.isnan(r["per_attribute_ap"][2])
    assert r["mean_ap"] > 0.98 and r["per_attribute_accuracy"][2] == 1.0
    # one training class, test positives present: the constant score is that class (1 or 0), so the AP is the test
    # prevalence and the accuracy the share of test labels equal to it
    train_y = np.stack([np.ones(6), np.zeros(6)], 1)
    test_y = np.array([[1, 1], [1, 0], [0, 0], [0, 0]])
    r = mt.latent_average_precision(rng.normal(size=(6, 3)), train_y, rng.normal(size=(4, 3)), test_y)
    assert r["per_attribute_ap"] == pytest.approx([0.5, 0.25]) and r["per_attribute_accuracy"] == [0.5, 0.75]


def test_posterior_mean_of_a_mixture_is_its_mixture_mean():
    mu = torch.tensor([[[0.0, 2.0]], [[4.0, -2.0]]])
    q = GaussianMixture(mu, torch.zeros_like(mu), torch.log(torch.tensor([[0.25], [0.75]])))
    assert torch.allclose(mt.posterior_mean(q), torch.tensor([[3.0, -1.0]]))
    g = DiagGaussian(mu[0], torch.zeros_like(mu[0]))
    assert torch.equal(mt.posterior_mean(g), mu[0])


# --------------------------------------------------------------------------------------------------
# Log-likelihood: a linear-Gaussian model with a closed-form marginal
# --------------------------------------------------------------------------------------------------


def _linear_gaussian(B=8, D=2, d=3, s=0.5, seed=0):
    """x = W z + b + s * eps, z ~ N(0, I): p(x) = N(b, W W^T + s^2 I); exact posterior N(m, S)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, D, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    z = torch.randn(B, D, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, B, dtype=torch.float64)[:, None]
    x = z @ W.T + b + s * torch.randn(B, d, generator=g, dtype=torch.float64)  # data of varied typicality
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(d, dtype=torch.float64))
    exact = marginal.log_prob(x)  # (B,)
    S = torch.linalg.inv(torch.eye(D, dtype=torch.float64) + W.T @ W / s**2)
    m = (x - b) @ W @ S / s**2  # (B, D)

    def log_joint(zk):  # (k, B, D) -> log p(x, z) (k, B)
        lik = torch.distributions.Normal(zk @ W.T + b, s).log_prob(x).sum(-1)
        return lik + torch.distributions.Normal(0.0, 1.0).log_prob(zk).sum(-1)

    return x, exact, m, S, log_joint


def _proposal(kind, m, S):
    """A diagonal proposal near the exact (full-covariance) posterior: wider, slightly shifted."""
    sd = torch.sqrt(torch.diagonal(S)).expand_as(m)
    mu, logvar = m + 0.1 * sd, torch.log((1.5 * sd) ** 2)
    family = "laplace" if kind.startswith("laplace") else "gaussian"  # MMVAE's latent family
    if kind.endswith("mixture"):  # the near-exact component and a broad one, 70/30
        comp_mu = torch.stack([mu, m])
        comp_lv = torch.stack([logvar, logvar + math.log(4.0)])
        lw = torch.log(torch.tensor([0.7, 0.3], dtype=m.dtype)).view(2, 1).expand(2, m.shape[0])
        return GaussianMixture(comp_mu, comp_lv, lw.clone()), family
    return DiagGaussian(mu, logvar), family


def _mc_error(log_w):
    """Per data point standard error of log mean exp(log_w) (delta method): std(w) / (sqrt(K) mean(w))."""
    w = torch.exp(log_w - log_w.max(0).values)
    return w.std(0) / (math.sqrt(log_w.shape[0]) * w.mean(0))


@pytest.mark.parametrize("kind", ["gaussian", "mixture", "laplace", "laplace-mixture"])
def test_importance_sampling_matches_the_closed_form_per_data_point(kind):
    torch.manual_seed(1)
    x, exact, m, S, log_joint = _linear_gaussian()
    q, family = _proposal(kind, m, S)
    K = 4000
    log_w = mt.importance_log_weights(log_joint, q, K, family, chunk=1000)  # (K, B) sample-major
    assert log_w.shape == (K, x.shape[0])
    est = mt.log_mean_exp(log_w, 0)
    tol = 4.0 * _mc_error(log_w) + 1e-3
    assert (exact.max() - exact.min()) > 5.0  # the data points really differ
    assert torch.all((est - exact).abs() < tol), (est - exact, tol)
    # the same estimate through the public per-point function, with another seed
    torch.manual_seed(2)
    est2 = mt.importance_log_likelihood(log_joint, q, K, family, chunk=500)
    assert torch.all((est2 - exact).abs() < tol + 4.0 * _mc_error(log_w))
    # the deliberately mis-reshaped estimator: sample-major weights read as (B, K), as in several
    # original implementations, mixes data points inside one log-sum-exp and fails the same test
    B = x.shape[0]
    wrong = mt.log_mean_exp(log_w.reshape(-1).view(B, K), dim=1)
    assert not torch.all((wrong - exact).abs() < tol)
    assert (wrong - exact).abs().max() > 1.0


def test_exact_posterior_proposal_gives_the_exact_answer_with_one_sample():
    x, exact, m, S, log_joint = _linear_gaussian(B=5)
    # with the exact posterior as proposal every weight equals p(x): zero variance. Its covariance is
    # full, so sample it by hand and feed the weights to the same reduction
    L = torch.linalg.cholesky(S)
    z = m + torch.randn(3, *m.shape, dtype=m.dtype) @ L.T
    log_q = torch.distributions.MultivariateNormal(m, S).log_prob(z)
    est = mt.log_mean_exp(log_joint(z) - log_q, 0)
    assert torch.allclose(est, exact, atol=1e-9)


def test_model_log_likelihood_is_the_unweighted_importance_estimate():
    from poolvae import networks
    from poolvae.likelihoods import laplace_log_prob

    torch.manual_seed(0)
    nets = [networks.make_networks("conv28", 3, 0, 3, 4) for _ in range(2)]
    mods = [Modality("a", "laplace", 1.0), Modality("b", "laplace", 3.0)]
    model = MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, "helvae", 3).eval()
    xs = [torch.rand(4, 3, 28, 28) for _ in range(2)]
    mask = torch.tensor([[True] * 4, [False, True, False, True]])
    torch.manual_seed(5)
    est = mt.model_log_likelihood(model, xs, mask, K=6, chunk=4)
    # by hand, with the same draws: z ~ q(z | observed), unweighted log p(x|z) + log p(z) - log q(z)
    torch.manual_seed(5)
    with torch.no_grad():
        mu, logvar, _, _ = model.encode(xs)
        q = model.posterior(mu, logvar, mask)
        log_w = []
        for k in (4, 2):
            z = q.rsample(k)
            outs = model.decode(z)
            lp = sum(laplace_log_prob(x.expand(k, *x.shape).reshape(-1, 3, 28, 28), o.reshape(-1, 3, 28, 28))
                     .view(k, 4) for x, o in zip(xs, outs, strict=True))
            log_w.append(lp + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z))
        by_hand = torch.logsumexp(torch.cat(log_w), 0) - math.log(6)
    assert torch.allclose(est, by_hand, rtol=1e-5, atol=1e-3)
    torch.manual_seed(5)
    weighted = mt.model_log_likelihood(model, xs, mask, K=6, chunk=4, weighted=True)
    assert torch.all(weighted < est)  # modality b's (negative) log-likelihood counts three times


# --------------------------------------------------------------------------------------------------
# CUB colour coherence
# --------------------------------------------------------------------------------------------------

SOLID = {  # RGB in 0..255 and the colour the published HSV ranges give it
    "white": (255, 255, 255), "yellow": (250, 220, 20), "red": (220, 20, 30), "blue": (20, 40, 230),
    "green": (30, 200, 40), "gray": (100, 100, 100), "brown": (200, 120, 0), "black": (10, 10, 10),
}


def _solid(rgb, size=8):
    return (torch.tensor(rgb, dtype=torch.float32) / 255.0).view(1, 3, 1, 1).expand(1, 3, size, size)


@pytest.mark.parametrize("colour", mt.CUB_COLOURS)
def test_solid_colour_images_get_their_colour(colour):
    img = _solid(SOLID[colour])
    counts = mt.colour_pixel_counts(img)[0]
    assert counts[mt.CUB_COLOURS.index(colour)] == 64
    assert mt.dominant_colours(counts[None])[0] == {colour}
    assert mt.colour_coherence(img, colour).tolist() == [True]
    others = [c for c in mt.CUB_COLOURS if c != colour]
    assert not any(mt.colour_coherence(img, c)[0] for c in others)


def test_two_dominant_colours_and_the_hue_scale():
    # half blue, a quarter red, a quarter green: blue and one of the tied others are dominant
    img = _solid(SOLID["blue"]).clone()
    img[..., :2, :] = _solid(SOLID["red"])[..., :2, :]
    img[..., 2:4, :] = _solid(SOLID["green"])[..., 2:4, :]
    assert mt.colour_coherence(img, "blue")[0] and mt.colour_coherence(img, "red")[0]
    assert mt.colour_coherence(img, "green")[0]  # tied for second place
    assert not mt.colour_coherence(img, "yellow")[0]
    # pure blue is 240 degrees: 120 on OpenCV's 0-180 scale (inside blue: 90-158); read on PIL's 0-255
    # hue scale it would be 170, inside red's 159-180: the pitfall that hsv_opencv avoids
    hsv = mt.hsv_opencv(_solid((0, 0, 255)))
    assert hsv[0, 0, 0].tolist() == [120, 255, 255]
    assert mt.colour_coherence(_solid((0, 0, 255)), "blue")[0]
    with pytest.raises(ValueError, match="unknown colour"):
        mt.colour_coherence(img, "purple")


#: One method per posterior family and objective (MVAE's PoE, the mixtures, MMVAE+'s private latents, CoDE, WB,
#: Hellinger and MoHELVAE's mixture): every registered method but HELVAE with learned weights, which pools as HELVAE
#: does. The log-likelihood tests below run on each; a method added to the registry is added here.
EVERY_POSTERIOR = [m for m in METHODS if m != "helvae-learned"]


class _FixedEncoder(torch.nn.Module):
    """An encoder that ignores its input: the same (mu, raw log-scale) for every row."""

    def __init__(self, mu, raw):
        super().__init__()
        self.register_buffer("mu", mu)
        self.register_buffer("raw", raw)

    def forward(self, x):
        return self.mu.expand(x.shape[0], -1), self.raw.expand(x.shape[0], -1)


class _FixedDecoder(torch.nn.Module):
    """A decoder that ignores z: the same Laplace location whatever the latent."""

    def __init__(self, loc):
        super().__init__()
        self.register_buffer("loc", loc)

    def forward(self, z):
        return self.loc.expand(*z.shape[:-1], *self.loc.shape)


@pytest.mark.parametrize("method", EVERY_POSTERIOR)
def test_model_log_likelihood_is_exact_when_the_decoders_ignore_z(method):
    """With p(x | z) = p(x), p(x) = p(x) E_q[p(z) / q(z)] for any proposal q, so the importance-sampled estimate
    equals sum_m log Laplace(x_m; loc_m, 0.75) up to Monte Carlo error. This checks that every method's proposal
    draws from the density it reports (Gaussian and Laplace, single and mixture, with the mixture weights): a
    wrong normaliser or dropped weights move the estimate by a constant that K does not average away. (MMVAE+'s
    p(w) / q(w) ratio averages to 1 here whether or not it is there: the next test checks it.)"""

    torch.manual_seed(0)
    D, Dp = 2, (2 if METHODS[method].private else 0)
    width = D + Dp
    # expert variances e^1.5 and e^1.2 (> 3): even MVAE's product of three with the prior keeps a variance above
    # half the prior's, where p(z) / q(z) has a finite variance and 4,000 samples average it well
    encoders = [_FixedEncoder(torch.tensor([0.4 * m - 0.3] * width), torch.tensor([1.5, 1.2] * (width // 2)))
                for m in range(3)]
    locs = [torch.rand(3, 28, 28) for _ in range(3)]
    model = MultimodalVAE(encoders, [_FixedDecoder(loc) for loc in locs], [Modality(f"m{i}", "laplace")
                                                                           for i in range(3)], method, D,
                          private_dim=Dp).eval()
    xs = [torch.rand(2, 3, 28, 28) for _ in range(3)]
    exact = sum(torch.distributions.Laplace(loc, 0.75).log_prob(x).flatten(1).sum(-1)
                for loc, x in zip(locs, xs, strict=True))
    for subset in [(0,), (1, 2), (0, 1, 2)]:
        est = mt.model_log_likelihood(model, xs, mt.subset_mask(subset, 3, 2), K=4000, chunk=1000)
        assert torch.allclose(est.double(), exact.double(), atol=0.05), (subset, (est - exact).tolist())


class _PrivateOnePixelDecoder(torch.nn.Module):
    """A decoder whose location is fixed but for one pixel, which moves with the first private coordinate."""

    def __init__(self, loc, latent_dim, coef):
        super().__init__()
        self.register_buffer("loc", loc)
        self.latent_dim, self.coef = latent_dim, coef

    def forward(self, zw):
        out = self.loc.expand(*zw.shape[:-1], *self.loc.shape).clone()
        out[..., 0, 0, 0] = out[..., 0, 0, 0] + self.coef * zw[..., self.latent_dim]
        return out


def test_mmvaeplus_log_likelihood_weights_private_latents_by_their_prior():
    """MMVAE+'s private latent w_m is drawn from q(w_m | x_m) for an observed modality, so its weight needs the
    ratio p(w_m) / q(w_m | x_m). With a decoder that ignores z and reads w_m on one pixel, log p(x) is a sum over
    modalities of a fixed part and the 1-D integral log int Laplace(x_0; loc_0 + c w, 0.75) Laplace(w; 0, 1) dw,
    computed here by quadrature; the estimate must match it. Without the ratio it would estimate the integral
    under q instead of the prior, which this setting puts far off."""

    torch.manual_seed(0)
    D, Dp, coef = 2, 2, 2.0
    # private scales softmax(0.3, -0.3) * 2 = 1.29 and 0.71: above half the prior's 1, so p(w) / q(w) has a finite
    # variance (Laplace: needs b_q > b_p / 2) and 20,000 draws average it well
    encoders = [_FixedEncoder(torch.tensor([0.2, -0.1, 1.0 - 0.5 * m, 0.3]), torch.tensor([0.0, 0.0, 0.3, -0.3]))
                for m in range(3)]
    locs = [torch.rand(3, 28, 28) for _ in range(3)]
    model = MultimodalVAE(encoders, [_PrivateOnePixelDecoder(loc, D, coef) for loc in locs],
                          [Modality(f"m{i}", "laplace") for i in range(3)], "mmvaeplus", D, private_dim=Dp).eval()
    assert model.prior_logvar == pytest.approx(math.log(2.0))  # the private prior: Laplace of scale 1
    xs = [torch.rand(2, 3, 28, 28) for _ in range(3)]
    w = np.linspace(-60, 60, 600_001)
    dw = w[1] - w[0]
    log_prior = -np.log(2.0) - np.abs(w)

    def log_marginal(x, loc):  # (B,): every pixel but one fixed, that one integrated over w ~ Laplace(0, 1)
        fixed = torch.distributions.Laplace(loc, 0.75).log_prob(x).flatten(1)[:, 1:].sum(-1).double().numpy()
        x0, l0 = x[:, 0, 0, 0].double().numpy()[:, None], float(loc[0, 0, 0])
        integrand = -np.log(1.5) - np.abs(x0 - l0 - coef * w) / 0.75 + log_prior
        return fixed + np.log(np.exp(integrand).sum(-1) * dw)

    exact = sum(log_marginal(x, loc) for loc, x in zip(locs, xs, strict=True))
    for subset in [(0,), (0, 1, 2)]:
        est = mt.model_log_likelihood(model, xs, mt.subset_mask(subset, 3, 2), K=20_000, chunk=5000)
        assert np.allclose(est.double().numpy(), exact, atol=0.05), (subset, est.double().numpy() - exact)


@pytest.mark.parametrize("method", EVERY_POSTERIOR)
def test_model_log_likelihood_for_every_posterior_family(method):
    from poolvae import networks

    torch.manual_seed(0)
    Dp = 2 if METHODS[method].private else 0
    nets = [networks.make_networks("conv28", 2, Dp, 3, 2) for _ in range(3)]
    mods = [Modality(f"m{i}", "laplace") for i in range(3)]
    model = MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, method, 2, private_dim=Dp).eval()
    xs = [torch.rand(3, 3, 28, 28) for _ in range(3)]
    for subset in [(0,), (1, 2), (0, 1, 2)]:
        est = mt.model_log_likelihood(model, xs, mt.subset_mask(subset, 3, 3), K=5, chunk=2)
        assert est.shape == (3,) and torch.isfinite(est).all()
        # every log p(x) is below the best possible Laplace fit: all pixels exactly at the location
        assert torch.all(est < 3 * 3 * 28 * 28 * -math.log(2 * 0.75))
