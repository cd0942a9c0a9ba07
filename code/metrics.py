"""The evaluation metrics of the two papers as small functions with known answers.

Each metric is a pure function of tensors or arrays; :mod:`poolvae.evaluate` feeds them a trained
model's samples. In order:

* **subsets and curves** - names of the ``2^M - 1`` input subsets (the order of
  :func:`poolvae.aggregators.subsets`) and :func:`by_size`, the mean and spread of per-subset values
  by number of inputs (WB Fig. 3, HEL Fig. 5);
* **coherence** - conditional coherence per (subset, target) pair and its summaries, unconditional
  coherence (all classifiers agree), average precision for the 40 CelebA attributes
  (HEL B.2, WB App. B);
* **latent representation** - a scikit-learn logistic regression on posterior means of 500 training
  samples, tested on the test set (HEL B.2, WB App. B);
* **log-likelihood** - importance sampling with the method's own posterior as proposal, per data
  point (WB Table 3 and Fig. 3, HEL Fig. 3);
* **CUB colour coherence** - HSV pixel counts with the ranges of Palumbo et al. (2023), as HEL B.2
  describes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import aggregators as agg
from .distributions import DiagGaussian, GaussianMixture
from .likelihoods import log_likelihood
from .models import MultimodalVAE, latent_log_prob, latent_rsample

# --------------------------------------------------------------------------------------------------
# Subsets and curves by number of inputs
# --------------------------------------------------------------------------------------------------


def subset_list(M: int) -> list[tuple[int, ...]]:
    """All non-empty subsets of range(M) as index tuples, in :func:`poolvae.aggregators.subsets` order."""
    members = agg.subsets(M)
    return [tuple(int(i) for i in torch.nonzero(row).flatten()) for row in members]


def subset_name(subset: Sequence[int], names: Sequence[str]) -> str:
    """``(0, 2)`` with names m0..m4 -> ``"m0+m2"`` (the key used in every results file)."""
    return "+".join(names[i] for i in subset)


def subset_mask(subset: Sequence[int], M: int, B: int, device=None) -> Tensor:
    """Observation mask (M, B): True for the modalities of ``subset`` in every row."""
    mask = torch.zeros(M, B, dtype=torch.bool, device=device)
    mask[list(subset)] = True
    return mask


def by_size(values: dict[tuple[int, ...], float]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (over subsets, ddof=0) and count of per-subset values by subset size.

    ``{(0,): a, (1,): b, (0, 1): c}`` -> ``{"1": {"mean": (a+b)/2, "std": |a-b|/2, "n": 2}, "2": ...}``.
    The curves of WB Fig. 3 and HEL Fig. 5 plot these means with these spreads. NaN values (a
    metric undefined for a subset) are left out.
    """
    out: dict[str, dict[str, float]] = {}
    for k in sorted({len(s) for s in values}):
        v = np.array([values[s] for s in values if len(s) == k and np.isfinite(values[s])], dtype=float)
        out[str(k)] = {"mean": float(v.mean()) if v.size else float("nan"),
                       "std": float(v.std()) if v.size else float("nan"), "n": int(v.size)}
    return out


def by_size_pairs(values: dict[tuple[tuple[int, ...], int], float]) -> dict[str, dict[str, float]]:
    """:func:`by_size` over (subset, target) pairs: mean and std over every pair whose subset has k members."""
    out: dict[str, dict[str, float]] = {}
    for k in sorted({len(s) for s, _ in values}):
        v = np.array([x for (s, _), x in values.items() if len(s) == k and np.isfinite(x)], dtype=float)
        out[str(k)] = {"mean": float(v.mean()) if v.size else float("nan"),
                       "std": float(v.std()) if v.size else float("nan"), "n": int(v.size)}
    return out


def by_size_per_target(values: dict[tuple[tuple[int, ...], int], float], M: int) -> dict[int, dict]:
    """:func:`by_size` for each target modality of (subset, target) pairs (HEL Fig. 5: FID of target m
    against the number of inputs, averaged over the subsets of that size that exclude m)."""
    return {m: by_size({s: v for (s, t), v in values.items() if t == m}) for m in range(M)}


# --------------------------------------------------------------------------------------------------
# Coherence
# --------------------------------------------------------------------------------------------------


def coherence(predictions: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Fraction of generated samples whose predicted class equals the label of the conditioning data."""
    p, y = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0]} predictions for {y.shape[0]} labels")
    return float((p == y).mean())


def unconditional_coherence(predictions: Tensor | np.ndarray) -> float:
    """Fraction of prior samples on which every modality's classifier predicts the same class.

    ``predictions`` has shape (M, N): one row of predicted classes per modality (HEL B.2: "the
    proportion assigned the same label").
    """
    p = np.asarray(predictions)
    return float(np.all(p == p[:1], axis=0).mean())


def coherence_summary(pairs: dict[tuple[tuple[int, ...], int], float], names: Sequence[str]) -> dict:
    """Per-pair, per-subset, per-size and overall conditional coherence of (subset, target) pairs.

    * ``per_pair[subset][target]`` - coherence of target generated from subset (WB Table 2's cells);
    * ``per_subset[subset]`` - mean over the targets outside the subset;
    * ``by_size[k]`` - mean and std over subsets of size k of ``per_subset`` (WB Fig. 3 centre);
    * ``overall`` - mean over all pairs. Every pair has the same number of generated samples, so this
      is the average "over all generated images conditioned on all corresponding subsets and
      modalities" of HEL B.2, and WB Table 2's "Avg." column.
    """
    per_subset: dict[tuple[int, ...], list[float]] = {}
    for (s, _), v in pairs.items():
        per_subset.setdefault(s, []).append(v)
    subset_means = {s: float(np.mean(v)) for s, v in per_subset.items()}
    per_pair: dict[str, dict[str, float]] = {}
    for (s, t), v in pairs.items():
        per_pair.setdefault(subset_name(s, names), {})[names[t]] = v
    return {
        "per_pair": per_pair,
        "per_subset": {subset_name(s, names): v for s, v in subset_means.items()},
        "by_size": by_size(subset_means),
        "overall": float(np.mean(list(pairs.values()))) if pairs else float("nan"),
    }


def average_precision_per_attribute(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn) of each column of ``scores`` (N, A) against 0/1 ``labels`` (N, A).

    An attribute without a positive example has no defined AP and gets NaN (left out of means with
    ``np.nanmean``). Used for CelebA's coherence and latent representation (WB Table 4).
    """
    from sklearn.metrics import average_precision_score

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(int)
    out = np.full(scores.shape[1], np.nan)
    for a in range(scores.shape[1]):
        if labels[:, a].any():
            out[a] = average_precision_score(labels[:, a], scores[:, a])
    return out


def attribute_agreement(predictions: np.ndarray) -> dict[str, float | list[float]]:
    """Unconditional coherence of multi-label predictions (M, N, A) in {0, 1}: per attribute, the
    fraction of samples on which all modalities agree; and the fraction on which all 40 agree."""
    p = np.asarray(predictions).astype(int)
    agree = np.all(p == p[:1], axis=0)  # (N, A)
    return {"per_attribute": agree.mean(0).tolist(), "mean": float(agree.mean()),
            "all_attributes": float(agree.all(1).mean())}


# --------------------------------------------------------------------------------------------------
# Latent representation
# --------------------------------------------------------------------------------------------------


def posterior_mean(q: DiagGaussian | GaussianMixture) -> Tensor:
    """The representation a linear probe sees: the Gaussian's mean or the mixture's mean ``sum_k w_k mu_k``."""
    return q.mu if isinstance(q, DiagGaussian) else q.mean()


def _logistic_regression(seed: int):
    from sklearn.linear_model import LogisticRegression

    # MoPoE's settings (Sutter et al., 2021): lbfgs, at most 1000 iterations, default C = 1
    return LogisticRegression(random_state=seed, solver="lbfgs", max_iter=1000)


def latent_accuracy(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray,
                    seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on (train_z, train_y) - the linear probe of HEL B.2.

    The papers report "the average performance across all test batches"; we report the accuracy over
    the whole test set, which is the same number when the batches have equal size.
    """
    train_y, test_y = np.asarray(train_y).reshape(-1), np.asarray(test_y).reshape(-1)
    if len(np.unique(train_y)) < 2:  # one class seen: the probe can only predict it
        return float((test_y == train_y[0]).mean())
    clf = _logistic_regression(seed).fit(np.asarray(train_z), train_y)
    return float((clf.predict(np.asarray(test_z)) == test_y).mean())


def latent_average_precision(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray,
                             test_y: np.ndarray, seed: int = 0) -> dict[str, list[float] | float]:
    """One logistic regression per binary attribute (CelebA): average precision and accuracy per
    attribute on the test set, and their means (WB Table 4, HEL Table 3 and Fig. 14).

    An attribute with one class among the training samples gets a constant score (its AP is then
    the attribute's test prevalence); one without test positives gets NaN AP.
    """
    train_y, test_y = np.asarray(train_y).astype(int), np.asarray(test_y).astype(int)
    scores = np.zeros(test_y.shape, dtype=float)
    for a in range(train_y.shape[1]):
        if len(np.unique(train_y[:, a])) < 2:
            scores[:, a] = float(train_y[0, a])
            continue
        clf = _logistic_regression(seed).fit(train_z, train_y[:, a])
        scores[:, a] = clf.predict_proba(test_z)[:, 1]
    ap = average_precision_per_attribute(scores, test_y)
    acc = ((scores > 0.5).astype(int) == test_y).mean(0)
    return {"per_attribute_ap": ap.tolist(), "mean_ap": float(np.nanmean(ap)),
            "per_attribute_accuracy": acc.tolist(), "mean_accuracy": float(acc.mean())}


# --------------------------------------------------------------------------------------------------
# Log-likelihood by importance sampling
# --------------------------------------------------------------------------------------------------


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(log_w)))`` along ``dim``, stably: ``logsumexp - log K``."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def proposal_sample(q: DiagGaussian | GaussianMixture, k: int, family: str = "gaussian") -> tuple[Tensor, Tensor]:
    """``k`` draws from the proposal and their log densities: z (k, B, D), log q(z) (k, B).

    ``family`` is the latent family of the method (Laplace for MMVAE and MMVAE+): a mixture's
    components are then Laplace with the components' means and variances, as in training.
    """
    if family == "gaussian":
        z = q.rsample(k)  # (k, B, D); a mixture draws its component per sample and row
        return z, q.log_prob(z)
    if isinstance(q, DiagGaussian):
        z = latent_rsample(q.mu, q.logvar, family, (k,))
        return z, latent_log_prob(z, q.mu, q.logvar, family)
    K, B, D = q.mu.shape
    idx = torch.multinomial(q.weights.T, k, replacement=True).T  # (k, B) component per draw
    g = idx.unsqueeze(-1).expand(k, B, D)
    z = latent_rsample(torch.gather(q.mu, 0, g), torch.gather(q.logvar, 0, g), family)  # (k, B, D)
    comp = latent_log_prob(z.unsqueeze(1), q.mu, q.logvar, family)  # (k, K, B)
    comp = torch.where(torch.isfinite(q.log_weights), comp, torch.full_like(comp, -math.inf))  # absent parts
    return z, torch.logsumexp(comp + q.log_weights, dim=1)


def importance_log_weights(log_joint: Callable[[Tensor], Tensor], q: DiagGaussian | GaussianMixture, K: int,
                           family: str = "gaussian", chunk: int | None = None) -> Tensor:
    """Log importance weights ``log p(x, z_k) - log q(z_k | x)``, shape (K, B), with z_k ~ q.

    ``log_joint(z)`` maps z (k, B, D) to ``log p(x, z)`` (k, B) for the B data points. The samples
    are drawn ``chunk`` at a time to bound memory; row k of the result holds the k-th sample of
    **every** data point (sample-major), so the average over samples is an average over dim 0.
    """
    chunk = K if not chunk else chunk
    out = []
    for k0 in range(0, K, chunk):
        z, log_q = proposal_sample(q, min(chunk, K - k0), family)
        out.append(log_joint(z) - log_q)
    return torch.cat(out, 0)


def importance_log_likelihood(log_joint: Callable[[Tensor], Tensor], q: DiagGaussian | GaussianMixture, K: int,
                              family: str = "gaussian", chunk: int | None = None) -> Tensor:
    """Per-data-point estimate ``log p(x_b) ~ logsumexp_k [log p(x_b, z_k) - log q(z_k | x_b)] - log K``.

    Shape (B,). The estimate is a stochastic lower bound (Jensen), tight as K grows for any proposal
    that covers the posterior. The log-sum-exp runs over the K samples of the *same* data point:
    the weights are kept sample-major (K, B) and reduced over dim 0. Several original evaluations
    built the weights sample-major (repeating the data ``K`` times along dim 0) and then read them
    with ``.view(batch_size, n_samples)``, which groups samples of *different* data points into one
    log-sum-exp; the per-point estimates are then wrong and their batch mean is biased towards the
    best-fitted points. ``tests/test_metrics.py`` checks this estimator against the closed form of a
    linear-Gaussian model and shows that the mis-reshaped one fails the same test.
    """
    return log_mean_exp(importance_log_weights(log_joint, q, K, family, chunk), dim=0)


@torch.no_grad()
def model_log_likelihood(model: MultimodalVAE, xs: list[Tensor], mask: Tensor, K: int, weighted: bool = False,
                         chunk: int | None = None) -> Tensor:
    """Importance-sampled ``log p(x_1, ..., x_M)`` of every data point, (B,), with the method's posterior
    given the modalities in ``mask`` (M, B) as proposal (WB Table 3: ``X | x_M`` etc.; the joint
    posterior when the mask is all True).

    **Unweighted by default.** The likelihood weights (:func:`poolvae.datasets.likelihood_weights`)
    rescale each modality's log-likelihood during training so that small modalities are not drowned
    out; ``p(x|z)^w`` is not a normalised density, so the weighted "marginal likelihood" is not the
    likelihood of the data under the generative model and is not comparable across weightings.
    ``weighted=True`` gives the weighted quantity for comparison with implementations that use it
    (on PolyMNIST every weight is 1 and both agree). The prior term is never scaled by beta: beta is
    a weight of the training objective, not part of the model.

    MMVAE+'s modality-specific latents are importance-sampled too: from ``q(w_m | x_m)`` for observed
    modalities (the ratio ``p(w_m) / q(w_m | x_m)`` enters the weight) and from the prior otherwise.
    """
    was_training = model.training
    model.eval()
    fam = model.spec.latent_family
    mu, logvar, pmu, plogvar = model.encode(xs)
    q = model.posterior(mu, logvar, mask)

    def log_joint(z: Tensor) -> Tensor:  # z (k, B, D) -> log p(x, z) (k, B)
        log_pz = model.prior_log_prob(z)
        private = None
        if model.Dp:
            private = []
            for m in range(model.M):
                w_q = latent_rsample(pmu[m], plogvar[m], fam, (z.shape[0],))
                w = torch.where(mask[m].unsqueeze(-1), w_q, model.prior_sample(*w_q.shape, device=z.device))
                ratio = model.prior_log_prob(w) - latent_log_prob(w, pmu[m], plogvar[m], fam)
                log_pz = log_pz + torch.where(mask[m], ratio, torch.zeros_like(ratio))
                private.append(w)
        outs = model.decode(z, private)
        log_px = 0.0
        for mod, x, out in zip(model.modalities, xs, outs, strict=True):
            log_px = log_px + (mod.weight if weighted else 1.0) * log_likelihood(mod.likelihood, x, out)
        return log_px + log_pz

    est = importance_log_likelihood(log_joint, q, K, fam, chunk)
    model.train(was_training)
    return est


# --------------------------------------------------------------------------------------------------
# CUB colour coherence (Palumbo et al., 2023, as HEL B.2 describes it)
# --------------------------------------------------------------------------------------------------

#: The eight caption colours of HEL B.2, in the paper's order.
CUB_COLOURS = ("white", "yellow", "red", "blue", "green", "gray", "brown", "black")

#: HSV boxes (lower, upper), inclusive, per colour, on OpenCV's 8-bit scale: hue 0-180 (degrees / 2),
#: saturation and value 0-255. These are the ranges of Palumbo et al. (2023, Table 2) as their
#: protocol is implemented in the MultiVae evaluation scripts; red wraps around hue 0.
HSV_RANGES: dict[str, tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]] = {
    "white": (((0, 0, 120), (180, 18, 255)),),
    "yellow": (((25, 50, 70), (35, 255, 255)),),
    "red": (((0, 50, 70), (15, 255, 255)), ((159, 50, 70), (180, 255, 255))),
    "blue": (((90, 50, 70), (158, 255, 255)),),
    "green": (((36, 50, 70), (89, 255, 255)),),
    "gray": (((0, 0, 50), (180, 18, 120)),),
    "brown": (((16, 50, 70), (24, 255, 255)),),
    "black": (((0, 0, 0), (180, 255, 50)),),
}


def hsv_opencv(images: Tensor | np.ndarray) -> np.ndarray:
    """RGB images (N, 3, H, W) in [0, 1] -> integer HSV (N, H, W, 3) on OpenCV's 8-bit scale.

    The images are first quantised to 8 bits, as when they are saved. scikit-image returns hue,
    saturation and value in [0, 1]; OpenCV stores 8-bit hue as degrees / 2 (0-180) and saturation and
    value as 0-255, and the published ranges use that scale. (PIL's ``convert("HSV")`` uses 0-255 for
    hue: reading the ranges on that scale turns pure blue, hue 240 degrees, into "red".)
    """
    from skimage.color import rgb2hsv

    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not torch.is_tensor(images) else images)
    x8 = (x.float().clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8)  # (N, 3, H, W)
    rgb = x8.permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
    n, h, w, _ = rgb.shape
    hsv = rgb2hsv(rgb.reshape(n * h, w, 3)).reshape(n, h, w, 3)  # each in [0, 1]
    out = np.empty((n, h, w, 3), dtype=np.int64)
    out[..., 0] = np.rint(hsv[..., 0] * 180.0)
    out[..., 1] = np.rint(hsv[..., 1] * 255.0)
    out[..., 2] = rgb.max(-1)  # value = max channel, exactly
    return out


def colour_pixel_counts(images: Tensor | np.ndarray) -> np.ndarray:
    """Pixels per image inside each colour's HSV ranges: (N, 8) in :data:`CUB_COLOURS` order.

    A pixel inside two ranges (the boxes touch at their borders) counts for both, as in the reference
    implementation.
    """
    hsv = hsv_opencv(images)
    counts = np.zeros((hsv.shape[0], len(CUB_COLOURS)), dtype=np.int64)
    for c, colour in enumerate(CUB_COLOURS):
        inside = np.zeros(hsv.shape[:3], dtype=bool)
        for lo, hi in HSV_RANGES[colour]:
            inside |= np.all((hsv >= np.array(lo)) & (hsv <= np.array(hi)), axis=-1)
        counts[:, c] = inside.sum((1, 2))
    return counts


def dominant_colours(counts: np.ndarray, top: int = 2) -> list[set[str]]:
    """The ``top`` colours with the most pixels in each image; colours tied with the ``top``-th count
    are included, and colours with no pixel never are."""
    out = []
    for row in np.asarray(counts):
        threshold = max(np.sort(row)[-top], 1)
        out.append({CUB_COLOURS[c] for c in range(len(row)) if row[c] >= threshold})
    return out


def colour_coherence(images: Tensor | np.ndarray, colour: str) -> np.ndarray:
    """Per image, whether ``colour`` is among its two dominant colours (HEL B.2, after Palumbo et al.)."""
    if colour not in CUB_COLOURS:
        raise ValueError(f"unknown colour {colour!r}; valid: {', '.join(CUB_COLOURS)}")
    return np.array([colour in d for d in dominant_colours(colour_pixel_counts(images))])
