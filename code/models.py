"""One multimodal VAE for every method: the methods differ only in their pooling rule and objective.

:class:`MultimodalVAE` holds one encoder and one decoder per modality. A method (:data:`METHODS`) is
a pooling rule from :mod:`poolvae.aggregators` plus one of five objectives:

* ``elbo`` - one Gaussian joint posterior, one reparameterised sample, closed-form KL (HELVAE, WB-VAE;
  no sub-sampling: every observed modality enters every term);
* ``mvae`` - the PoE with a prior expert, plus one ELBO per observed modality alone (Wu & Goodman, 2018). The
  original also adds the ELBOs of k random subsets; we train k = 0 (the joint and the M unimodal terms), whose
  cost is one pass per modality. Neither paper's appendix gives k; HEL names the MultiVAE library [40] among its
  baselines' implementations, whose published PolyMNIST MVAE configuration has ``use_subsampling=True, k=0,
  warmup=0`` (no KL annealing) with beta on every term's KL, as here;
* ``mixture`` - a mixture over subsets; z drawn from the mixture (one subset per data point, the
  sub-sampling of MoPoE), KL bounded by ``sum_k w_k KL(q_k || p)`` as in Sutter et al. (2021)
  (MoPoE, MWB-VAE, MoHELVAE). MoPoE multiplies ``N(0, I)`` into the full set's PoE only, as the authors'
  code does (``mopoe_prior="full"``; ``"none"`` is the paper's plain equations);
* ``subsets`` - every subset's ELBO, weighted by learned subset weights (CoDEVAE: all subsets are
  trained in each step, O(2^M) decodes), plus ``subset_entropy_coef`` times the weights' entropy: the
  authors' code adds 1000 H(w) to the objective, which keeps the weights near uniform (0: a free softmax);
* ``iwae`` - MMVAE's stratified importance-weighted bound with K samples per component and the DReG
  gradient estimator (Shi et al., 2019), optionally with private latents and auxiliary priors (MMVAE+,
  Palumbo et al., 2023).

Modality-specific latents (``private_dim > 0``) are required by MMVAE+ and optional for every other method
(both papers give each CelebA modality a 32-d one, after Sutter et al., 2020): there each observed modality
m draws ``w_m ~ q(w_m | x_m)``, its decoder sees ``[z, w_m]``, and ``KL(q(w_m | x_m) || N(0, I))`` joins the
KL term under the same beta; an unobserved modality's ``w_m`` is drawn from the prior.

Where a paper leaves a detail open the choice is written in :class:`MethodSpec` docstrings and here:
MMVAE and MMVAE+ use Laplace posteriors and priors, with ``logvar`` still the log variance everywhere
(scale = exp(logvar / 2) / sqrt(2)). By default (``laplace_scale="softmax"``) they are parameterised as in
the authors' code (Shi et al., 2019; Palumbo et al., 2023): each posterior scale is ``softmax(a) * D + 1e-6``
over the encoder's D outputs ``a`` (the scales of one posterior share a budget of D), and the prior is a
Laplace of scale 1 (variance 2); ``"free"`` gives free log-variances and a unit-variance prior. MMVAE+'s
auxiliary prior, from which the modalities that a mixture component does not see draw their private latents,
is the prior's family with ``aux_std`` times its scale (1.0 as in the reference).

Conditioning on a subset S of the modalities (:meth:`MultimodalVAE.subset_posterior`) follows the reference
implementations too: a mixture-of-pools method (MoPoE, MWB-VAE, MoHELVAE, CoDEVAE) conditions on S's own pool,
PoE(S), WB(S), Hellinger(S) or CoDE(S) (``"pool"``), not on the mixture over S's non-empty subsets
(``"mixture"``, which is what its joint posterior given S is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import aggregators as agg
from .distributions import DiagGaussian, GaussianMixture, diag_gaussian_log_prob
from .divergences import kl_standard_normal
from .likelihoods import log_likelihood

#: How MMVAE's and MMVAE+'s Laplace scales are parameterised (see the module docstring).
LAPLACE_SCALES = ("softmax", "free")
#: The reference code's floor on a Laplace scale (``Constants.eta``).
LAPLACE_ETA = 1e-6
#: What a mixture-of-pools method conditions on given a subset S: S's own pool, or the mixture over S's subsets.
SUBSET_POSTERIORS = ("pool", "mixture")
#: The Gaussian pool inside each mixture-of-pools rule.
INNER_POOL = {"mopoe": "poe", "mwb": "wb", "mohel": "hellinger", "mocode": "code"}


@dataclass(frozen=True)
class Modality:
    """A modality as the model sees it: its name, likelihood and ELBO weight."""

    name: str
    likelihood: str  # "laplace" | "bernoulli" | "categorical"
    weight: float = 1.0  # likelihood weight by relative dimensionality (dominant modality: 1.0)


@dataclass(frozen=True)
class MethodSpec:
    """A method = pooling rule + objective (+ options), with the paper it comes from."""

    name: str
    pool: str  # key of poolvae.aggregators.POOLS
    objective: str  # "elbo" | "mvae" | "mixture" | "subsets" | "iwae"
    citation: str
    prior_expert: bool = False  # PoE includes N(0, I) as an expert (MVAE)
    learn_pool_weights: bool = False  # softmax-parameterised pooling weights (HELVAE, learned)
    learn_subset_weights: bool = False  # softmax-parameterised subset weights (CoDEVAE)
    private: bool = False  # requires modality-specific latents, with auxiliary priors (MMVAE+)
    latent_family: str = "gaussian"  # "gaussian" | "laplace" (MMVAE, MMVAE+)


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("mvae", "poe", "mvae", "Wu & Goodman (2018)", prior_expert=True),
        MethodSpec("mmvae", "moe", "iwae", "Shi et al. (2019)", latent_family="laplace"),
        MethodSpec("mopoe", "mopoe", "mixture", "Sutter et al. (2021)"),
        MethodSpec("mmvaeplus", "moe", "iwae", "Palumbo et al. (2023)", private=True, latent_family="laplace"),
        MethodSpec("codevae", "mocode", "subsets", "Mancisidor et al. (2025)", learn_subset_weights=True),
        MethodSpec("wbvae", "wb", "elbo", "Qiu et al. (2025)"),
        MethodSpec("mwbvae", "mwb", "mixture", "Qiu et al. (2025)"),
        MethodSpec("helvae", "hellinger", "elbo", "Vo & Valera (HELVAE)"),
        MethodSpec("helvae-learned", "hellinger", "elbo", "Vo & Valera (HELVAE, Table 7)", learn_pool_weights=True),
        MethodSpec("mohelvae", "mohel", "mixture", "Vo & Valera (MoHELVAE)"),
    )
}


def get_method(name: str) -> MethodSpec:
    """Look a method up by name; an unknown name lists the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def _scale(logvar: Tensor, family: str) -> Tensor:
    """Scale parameter with variance exp(logvar): std for a Gaussian, std / sqrt(2) for a Laplace."""
    s = torch.exp(0.5 * logvar)
    return s / math.sqrt(2.0) if family == "laplace" else s


def latent_log_prob(z: Tensor, mu: Tensor, logvar: Tensor, family: str) -> Tensor:
    """Log density of a factorised Gaussian or Laplace latent, summed over the last dim."""
    if family == "gaussian":
        return diag_gaussian_log_prob(z, mu, logvar)
    b = _scale(logvar, "laplace")
    return (-torch.log(2.0 * b) - (z - mu).abs() / b).sum(-1)


def latent_rsample(mu: Tensor, logvar: Tensor, family: str, shape=()) -> Tensor:
    """Reparameterised samples (*shape, *mu.shape) of a Gaussian or Laplace latent."""
    if family == "gaussian":
        eps = torch.randn(*shape, *mu.shape, dtype=mu.dtype, device=mu.device)
    else:  # Laplace by inverse CDF of a uniform on (-1/2, 1/2)
        u = torch.rand(*shape, *mu.shape, dtype=mu.dtype, device=mu.device) - 0.5
        u = u.clamp(-0.5 + 1e-7, 0.5 - 1e-7)
        eps = -torch.sign(u) * torch.log1p(-2.0 * u.abs())
    return mu + eps * _scale(logvar, family)


class MultimodalVAE(nn.Module):
    """A multimodal VAE with per-modality encoders/decoders and a method's pooling rule and objective.

    Args:
        encoders: one module per modality, x (B, *shape) -> (mu, logvar) of width D + D_private.
        decoders: one module per modality, z (..., B, D + D_private) -> likelihood parameters.
        modalities: likelihood name and weight per modality.
        method: a key of :data:`METHODS`.
        latent_dim: D, the shared latent size.
        private_dim: size of each modality-specific latent (MMVAE+ only; 0 otherwise).
        beta: weight of the KL term (beta-VAE).
        K: importance samples per mixture component (``iwae`` objective).
        dreg: use the DReG estimator in the ``iwae`` objective (else plain IWAE).
        rho: CoDE correlation between experts.
        aux_std: MMVAE+'s auxiliary prior on private latents, in units of the prior's scale.
        laplace_scale: ``"softmax"`` (the reference) or ``"free"``: see the module docstring.
        mopoe_prior: where MoPoE multiplies N(0, I) into a subset's PoE: ``"full"`` (the reference), ``"none"``
            or ``"all"`` (:data:`poolvae.aggregators.MOPOE_PRIOR_EXPERT`).
        subset_entropy_coef: CoDEVAE adds this times the entropy of its subset weights to the objective (1000 in
            the reference code; 0 leaves the weights a free softmax).
        compile_pool: run the pooling rule through ``torch.compile`` (:func:`poolvae.aggregators.compiled`):
            the same numbers with fused kernels; the first batch of each shape compiles.
    """

    def __init__(self, encoders, decoders, modalities: list[Modality], method: str, latent_dim: int,
                 private_dim: int = 0, beta: float = 1.0, K: int = 1, dreg: bool = True, rho: float = 0.5,
                 aux_std: float = 1.0, compile_pool: bool = False, laplace_scale: str = "softmax",
                 mopoe_prior: str = "full", subset_entropy_coef: float = 1000.0):
        super().__init__()
        self.spec = get_method(method)
        if len(encoders) != len(modalities) or len(decoders) != len(modalities):
            raise ValueError("need one encoder and one decoder per modality")
        if self.spec.private and private_dim <= 0:
            raise ValueError(f"{method} needs modality-specific latents: set private_dim > 0")
        self.encoders, self.decoders = nn.ModuleList(encoders), nn.ModuleList(decoders)
        self.modalities = list(modalities)
        self.M, self.D, self.Dp = len(modalities), latent_dim, private_dim
        self.beta, self.K, self.dreg, self.rho, self.aux_std = beta, K, dreg, rho, aux_std
        if laplace_scale not in LAPLACE_SCALES:
            raise ValueError(f"laplace_scale must be one of {LAPLACE_SCALES}; got {laplace_scale!r}")
        if mopoe_prior not in agg.MOPOE_PRIOR_EXPERT:
            raise ValueError(f"mopoe_prior must be one of {agg.MOPOE_PRIOR_EXPERT}; got {mopoe_prior!r}")
        self.laplace_scale, self.mopoe_prior, self.subset_entropy_coef = laplace_scale, mopoe_prior, subset_entropy_coef
        reference_laplace = self.spec.latent_family == "laplace" and laplace_scale == "softmax"
        # log variance of the prior: the reference Laplace has scale 1 (variance 2), every other prior variance 1
        self.prior_logvar = math.log(2.0) if reference_laplace else 0.0
        self._softmax_scales = reference_laplace
        self.pool = agg.compiled(self.spec.pool) if compile_pool else agg.get_pool(self.spec.pool)
        self.pool_logits = nn.Parameter(torch.zeros(self.M)) if self.spec.learn_pool_weights else None
        n_sub = 2**self.M - 1
        self.subset_logits = nn.Parameter(torch.zeros(n_sub)) if self.spec.learn_subset_weights else None

    # ------------------------------------------------------------------ encoding and pooling
    def encode(self, xs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Experts of every modality: shared (mu, logvar) (M, B, D) and private ones (M, B, Dp) or None."""
        outs = [enc(x) for enc, x in zip(self.encoders, xs, strict=True)]
        mu = torch.stack([o[0] for o in outs])
        raw = torch.stack([o[1] for o in outs])
        if self._softmax_scales:  # reference Laplace: scale = softmax(a) * D + eta per latent block, logvar = log 2b^2
            blocks = [raw[..., : self.D], raw[..., self.D :]] if self.Dp else [raw]
            scales = [torch.softmax(a, -1) * a.shape[-1] + LAPLACE_ETA for a in blocks]
            logvar = torch.cat([math.log(2.0) + 2.0 * torch.log(b) for b in scales], -1)
        else:  # log-variances are clamped to [-30, 30], the range the pooling rules are tested on
            logvar = raw.clamp(-30.0, 30.0)
        if self.Dp:
            return mu[..., : self.D], logvar[..., : self.D], mu[..., self.D :], logvar[..., self.D :]
        return mu, logvar, None, None

    def prior_sample(self, *shape: int, device=None) -> Tensor:
        """Draws of shape ``shape`` from the prior's family (the latent family) with the prior's scale."""
        zeros = torch.zeros(*shape, device=device)
        return latent_rsample(zeros, zeros + self.prior_logvar, self.spec.latent_family)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """Log density of the prior (N(0, I), or the method's Laplace prior) summed over the last dim."""
        zeros = torch.zeros_like(z)
        return latent_log_prob(z, zeros, zeros + self.prior_logvar, self.spec.latent_family)

    def pooling_weights(self) -> Tensor | None:
        """Learned pooling weights (M,) as a softmax of logits, or None for uniform."""
        return None if self.pool_logits is None else torch.softmax(self.pool_logits, 0)

    def posterior(self, mu: Tensor, logvar: Tensor, mask: Tensor) -> DiagGaussian | GaussianMixture:
        """The method's joint posterior of the shared latent from experts (M, B, D) and mask (M, B)."""
        name = self.spec.pool
        if name == "poe":
            return self.pool(mu, logvar, mask, prior_expert=self.spec.prior_expert)
        if name == "mopoe":
            return self.pool(mu, logvar, mask, prior_expert=self.mopoe_prior)
        if name == "hellinger":
            return self.pool(mu, logvar, mask, weights=self.pooling_weights())
        if name == "mocode":
            w = None if self.subset_logits is None else torch.softmax(self.subset_logits, 0)
            return self.pool(mu, logvar, mask, subset_weights=w, rho=self.rho)
        return self.pool(mu, logvar, mask)

    def subset_posterior(self, mu: Tensor, logvar: Tensor, mask: Tensor,
                         how: str = "pool") -> DiagGaussian | GaussianMixture:
        """What the model conditions on given the modalities in ``mask`` (M, B) (generation, the latent probe).

        ``how="pool"`` (the reference implementations: MoPoE's and the HELVAE code's ``test_generation`` and
        ``representation``, CoDEVAE's ``modality_generation``): a mixture-of-pools method uses the observed set's
        own pool, e.g. MoPoE the PoE of S (with the prior expert where S is the full set, as in training).
        ``how="mixture"``: the joint posterior given S, the mixture over S's non-empty subsets. Methods that are
        not mixtures of pools (and MoE, whose components are the experts) give their posterior either way.
        """
        if how not in SUBSET_POSTERIORS:
            raise ValueError(f"subset posterior must be one of {SUBSET_POSTERIORS}; got {how!r}")
        inner = INNER_POOL.get(self.spec.pool)
        if how == "mixture" or inner is None:
            return self.posterior(mu, logvar, mask)
        if inner == "code":
            return agg.code(mu, logvar, mask, rho=self.rho)
        if inner != "poe":
            return agg.get_pool(inner)(mu, logvar, mask)
        q = agg.poe(mu, logvar, mask, prior_expert=self.mopoe_prior == "all")
        if self.mopoe_prior != "full":
            return q
        full = mask.to(torch.bool).all(0).unsqueeze(-1)  # (B, 1): S is the full set
        with_prior = agg.times_standard_normal(q)
        return DiagGaussian(torch.where(full, with_prior.mu, q.mu), torch.where(full, with_prior.logvar, q.logvar))

    def subset_weight_entropy(self) -> Tensor | None:
        """Entropy (nats) of CoDEVAE's subset weights, or None for a method without learned subset weights."""
        if self.subset_logits is None:
            return None
        w = torch.softmax(self.subset_logits, 0)
        return -(w * torch.log(w)).sum()

    @torch.no_grad()
    def diagnostics(self, xs: list[Tensor], mask: Tensor | None = None) -> dict[str, float]:
        """What the pooling does on a batch, for the per-epoch log (:mod:`poolvae.train`).

        Hellinger pools (HELVAE, HELVAE-learned, MoHELVAE over the full set):
        :func:`poolvae.aggregators.hellinger_summary`'s four ``pool/*`` numbers (HELVAE-learned also its weights,
        ``pool/weights``). CoDEVAE: ``subset_weights/entropy``
        and its maximum ``log(2^M - 1)``. Other methods: nothing.
        """
        out: dict[str, float] = {}
        if self.spec.pool in ("hellinger", "mohel"):
            was = self.training
            self.eval()
            mu, logvar, _, _ = self.encode(xs)
            self.train(was)
            mask = torch.ones(self.M, mu.shape[1], dtype=torch.bool, device=mu.device) if mask is None else mask
            out.update(agg.hellinger_summary(agg.hellinger_parts(mu, logvar, mask, self.pooling_weights()), mask))
        if self.pool_logits is not None:  # HELVAE-learned: the weights themselves (HEL Table 7's "nearly uniform")
            out["pool/weights"] = [float(w) for w in self.pooling_weights()]
        entropy = self.subset_weight_entropy()
        if entropy is not None:
            out["subset_weights/entropy"] = float(entropy)
            out["subset_weights/max_entropy"] = math.log(2**self.M - 1)
        return out

    # ------------------------------------------------------------------ decoding
    def decode(self, z: Tensor, private: list[Tensor] | None = None) -> list[Tensor]:
        """Likelihood parameters of every modality from z (..., B, D) (and private latents per modality)."""
        if self.Dp:
            if private is None:
                private = [self.aux_std * self.prior_sample(*z.shape[:-1], self.Dp, device=z.device)
                           for _ in range(self.M)]
            return [dec(torch.cat([z, w.expand(*z.shape[:-1], self.Dp)], -1))
                    for dec, w in zip(self.decoders, private, strict=True)]
        return [dec(z) for dec in self.decoders]

    def reconstruction(self, xs: list[Tensor], outs: list[Tensor], mask: Tensor) -> Tensor:
        """Weighted ``sum_m w_m log p(x_m | z)`` over observed modalities; shape (..., B)."""
        total = 0.0
        for m, (mod, x, out) in enumerate(zip(self.modalities, xs, outs, strict=True)):
            total = total + mod.weight * log_likelihood(mod.likelihood, x, out) * mask[m].to(out.dtype)
        return total

    # ------------------------------------------------------------------ objectives
    def forward(self, xs: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        """Loss (negative objective, mean over the batch) and its parts for logging."""
        B = xs[0].shape[0]
        mask = torch.ones(self.M, B, dtype=torch.bool, device=xs[0].device) if mask is None else mask
        mu, logvar, pmu, plogvar = self.encode(xs)
        objective = getattr(self, f"_objective_{self.spec.objective}")
        return objective(xs, mask, mu, logvar, pmu, plogvar)

    def _private_terms(self, pmu: Tensor | None, plogvar: Tensor | None, mask: Tensor):
        """Modality-specific latents for the Gaussian objectives: per modality a (B, Dp) draw from
        ``q(w_m | x_m)`` where observed and from N(0, I) where not, and each one's KL to N(0, I), (B,), zero
        where unobserved. ``(None, [])`` without modality-specific latents; sum the KLs for the joint bound."""
        if not self.Dp:
            return None, []
        private, kls = [], []
        for m in range(self.M):
            seen = mask[m].unsqueeze(-1)
            draw = latent_rsample(pmu[m], plogvar[m], "gaussian")
            private.append(torch.where(seen, draw, torch.randn_like(draw)))
            kls.append(kl_standard_normal(pmu[m], plogvar[m]) * mask[m].to(pmu.dtype))
        return private, kls

    def _gaussian_elbo(self, q: DiagGaussian, xs, mask, only: int | None = None, private=None):
        z = q.rsample()
        if only is None:
            rec = self.reconstruction(xs, self.decode(z, private), mask)
        else:  # decode just the one modality that this term reconstructs
            z_in = z if private is None else torch.cat([z, private[only]], -1)
            out = self.decoders[only](z_in)
            rec = self.modalities[only].weight * log_likelihood(self.modalities[only].likelihood, xs[only], out)
        kl = kl_standard_normal(q.mu, q.logvar)
        return rec, kl

    def _objective_elbo(self, xs, mask, mu, logvar, pmu=None, plogvar=None):
        private, kl_private = self._private_terms(pmu, plogvar, mask)
        rec, kl = self._gaussian_elbo(self.posterior(mu, logvar, mask), xs, mask, private=private)
        return self._pack(rec, kl + sum(kl_private))

    def _objective_mvae(self, xs, mask, mu, logvar, pmu=None, plogvar=None):
        private, kl_private = self._private_terms(pmu, plogvar, mask)
        rec, kl = self._gaussian_elbo(self.posterior(mu, logvar, mask), xs, mask, private=private)
        kl = kl + sum(kl_private)
        total = rec - self.beta * kl
        for m in range(self.M):  # unimodal ELBOs: modality m alone, reconstructing itself
            sub = torch.zeros_like(mask)
            sub[m] = mask[m]
            r_m, k_m = self._gaussian_elbo(agg.poe(mu, logvar, sub, prior_expert=True), xs, mask, only=m,
                                           private=private)
            if self.Dp:  # modality m's own private KL belongs to its unimodal bound too (masked like the term)
                k_m = k_m + kl_private[m]
            total = total + (r_m - self.beta * k_m) * mask[m].to(r_m.dtype)
        return self._pack(rec, kl, objective=total)

    def _objective_mixture(self, xs, mask, mu, logvar, pmu=None, plogvar=None):
        private, kl_private = self._private_terms(pmu, plogvar, mask)
        q = self.posterior(mu, logvar, mask)
        z = q.rsample()  # one component per row: MoPoE's sub-sampling
        rec = self.reconstruction(xs, self.decode(z, private), mask)
        kl_k = kl_standard_normal(q.mu, q.logvar)  # (K, B)
        kl = (q.weights * torch.where(q.weights > 0, kl_k, torch.zeros_like(kl_k))).sum(0)
        return self._pack(rec, kl + sum(kl_private))

    def _objective_subsets(self, xs, mask, mu, logvar, pmu=None, plogvar=None):
        private, kl_private = self._private_terms(pmu, plogvar, mask)
        q = self.posterior(mu, logvar, mask)
        z = q.stratified_rsample(1)[:, 0]  # (K, B, D): one draw from every subset's consensus
        rec_k = self.reconstruction(xs, self.decode(z, private), mask)  # (K, B)
        kl_k = kl_standard_normal(q.mu, q.logvar)
        w = q.weights
        present = w > 0
        rec = (w * torch.where(present, rec_k, torch.zeros_like(rec_k))).sum(0)
        kl = (w * torch.where(present, kl_k, torch.zeros_like(kl_k))).sum(0)
        entropy = self.subset_weight_entropy()
        bonus = None if entropy is None or not self.subset_entropy_coef else self.subset_entropy_coef * entropy
        return self._pack(rec, kl + sum(kl_private), bonus=bonus)

    def _objective_iwae(self, xs, mask, mu, logvar, pmu, plogvar):
        fam = self.spec.latent_family
        q = agg.moe(mu, logvar, mask)
        w_comp = q.weights  # (M, B), zero for unobserved components
        u = latent_rsample(q.mu, q.logvar, fam, (self.K,)).transpose(0, 1)  # (M, K, B, D)
        # DReG: the density of z under q is evaluated with parameters cut from the graph
        q_mu, q_lv = (q.mu.detach(), q.logvar.detach()) if self.dreg else (q.mu, q.logvar)
        comp_lp = latent_log_prob(u.unsqueeze(2), q_mu[None, None], q_lv[None, None], fam)  # (M, K, M', B)
        log_q = torch.logsumexp(comp_lp + torch.log(w_comp)[None, None], dim=2)  # (M, K, B)
        log_prior = self.prior_log_prob(u)
        private = None
        log_priv = 0.0
        if self.Dp:
            # component m: w_m ~ q(w_m | x_m); every other modality's w_n ~ the auxiliary prior
            w_m = latent_rsample(pmu, plogvar, fam, (self.K,)).transpose(0, 1)  # (M, K, B, Dp)
            aux = self.aux_std * self.prior_sample(self.M, self.K, mu.shape[1], self.Dp, device=u.device)
            eye = torch.eye(self.M, dtype=torch.bool, device=u.device).view(self.M, self.M, 1, 1, 1)
            private = [torch.where(eye[:, n], w_m, aux) for n in range(self.M)]  # per decoder n: (M, K, B, Dp)
            p_mu, p_lv = (pmu.detach(), plogvar.detach()) if self.dreg else (pmu, plogvar)
            log_priv = self.prior_log_prob(w_m) - latent_log_prob(w_m, p_mu.unsqueeze(1), p_lv.unsqueeze(1), fam)
        rec = self.reconstruction(xs, self.decode(u, private), mask)  # (M, K, B)
        lw = rec + self.beta * (log_prior - log_q + log_priv)
        present = (w_comp > 0).unsqueeze(1)
        lw = torch.where(present, lw, torch.zeros_like(lw))
        if self.dreg:
            with torch.no_grad():
                grad_wt = torch.softmax(lw, dim=1)
            if u.requires_grad:
                u.register_hook(lambda g: grad_wt.unsqueeze(-1) * g)
            if self.Dp and w_m.requires_grad:
                w_m.register_hook(lambda g: grad_wt.unsqueeze(-1) * g)
            per_comp = (grad_wt * lw).sum(1)  # surrogate whose gradient is the DReG estimator
        else:
            per_comp = torch.logsumexp(lw, dim=1) - math.log(self.K)
        objective = (w_comp * per_comp).sum(0)
        with torch.no_grad():  # for logging: the IWAE bound itself and its parts
            bound = (w_comp * (torch.logsumexp(lw, 1) - math.log(self.K))).sum(0)
            rec_log = (w_comp * rec.mean(1)).sum(0)
        return {"loss": -objective.mean(), "objective": bound.mean(), "rec": rec_log.mean(),
                "kl": ((rec_log - bound) / max(self.beta, 1e-12)).mean()}

    def _pack(self, rec: Tensor, kl: Tensor, objective: Tensor | None = None,
              bonus: Tensor | None = None) -> dict[str, Tensor]:
        """The loss and its logged parts; ``bonus`` (a scalar, e.g. CoDEVAE's weight entropy) joins the loss only,
        so the logged ``objective`` stays the bound."""
        obj = rec - self.beta * kl if objective is None else objective
        loss = -obj.mean() if bonus is None else -(obj.mean() + bonus)
        return {"loss": loss, "objective": obj.mean().detach(), "rec": rec.mean().detach(),
                "kl": kl.mean().detach()}

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample_prior(self, n: int) -> list[Tensor]:
        """Unconditional generation: z ~ N(0, I) (or the Laplace prior), decoded for every modality."""
        device = next(self.parameters()).device
        z = self.prior_sample(n, self.D, device=device)
        private = [self.prior_sample(n, self.Dp, device=device) for _ in range(self.M)] if self.Dp else None
        return self.decode(z, private)

    @torch.no_grad()
    def conditional(self, xs: list[Tensor], mask: Tensor, subset_posterior: str = "pool") -> list[Tensor]:
        """Conditional generation of every modality from the observed ones (mask (M, B)); ``subset_posterior``:
        what a mixture-of-pools method conditions on (:meth:`subset_posterior`)."""
        mu, logvar, pmu, plogvar = self.encode(xs)
        q = self.subset_posterior(mu, logvar, mask, subset_posterior)
        z = q.rsample()
        if self.spec.latent_family == "laplace" and isinstance(q, GaussianMixture):
            idx = torch.multinomial(q.weights.T, 1).T  # (1, B)
            g = idx.unsqueeze(-1).expand(1, *q.mu.shape[1:])
            z = latent_rsample(torch.gather(q.mu, 0, g)[0], torch.gather(q.logvar, 0, g)[0], "laplace")
        private = None
        if self.Dp:  # observed modalities keep their own style; missing ones draw from the prior
            eps = [self.prior_sample(*pmu[m].shape, device=pmu.device) for m in range(self.M)]
            private = [torch.where(mask[m].unsqueeze(-1), latent_rsample(pmu[m], plogvar[m], self.spec.latent_family),
                                   eps[m]) for m in range(self.M)]
        return self.decode(z, private)

