"""The Fréchet distance against closed forms, and the FID pipeline through torch-fidelity with a small
registered feature extractor (no Inception weights, no download)."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from poolvae import fid

# --------------------------------------------------------------------------------------------------
# The Fréchet distance
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_identical_sets_give_zero_and_shifted_sets_more(method):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    assert abs(fid.frechet_distance_features(f, f, method)) < 1e-6
    shifts = [fid.frechet_distance_features(f, f + s, method) for s in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0])  # a pure shift adds |delta|^2
    # scaling by 2: mean 2m, covariance 4S, so FD = |m|^2 + tr(S + 4S - 2 (4 S^2)^(1/2)) = |m|^2 + tr S
    closed = np.sum(f.mean(0) ** 2) + np.trace(np.cov(f, rowvar=False))
    assert fid.frechet_distance_features(f, 2.0 * f, method) == pytest.approx(closed, rel=1e-8)


def test_samples_of_two_gaussians_match_the_closed_form():
    # diagonal covariances: FD = |m1 - m2|^2 + sum_i (s1_i - s2_i)^2 with standard deviations s
    rng = np.random.default_rng(1)
    m1, m2 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([0.5, 1.0, 0.0, 1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([2.0, 1.0, 0.5, 3.0])
    closed = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
    n = 200_000
    a, b = m1 + s1 * rng.normal(size=(n, 4)), m2 + s2 * rng.normal(size=(n, 4))
    assert fid.frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2)) == pytest.approx(closed, rel=1e-10)
    assert fid.frechet_distance_features(a, b) == pytest.approx(closed, rel=0.02)


def test_full_covariances_agree_across_three_implementations():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    S1, S2 = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    by_eigh = fid.frechet_distance(m1, S1, m2, S2, "eigh")
    by_sqrtm = fid.frechet_distance(m1, S1, m2, S2, "sqrtm")
    # the 2-Wasserstein form: tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2)
    r = scipy.linalg.sqrtm(S2).real
    w2 = np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2 * scipy.linalg.sqrtm(r @ S1 @ r).real)
    tf = torch_fidelity.metric_fid.fid_statistics_to_metric({"mu": m1, "sigma": S1}, {"mu": m2, "sigma": S2}, False)
    assert by_eigh == pytest.approx(by_sqrtm, rel=1e-8)
    assert by_eigh == pytest.approx(w2, rel=1e-8)
    assert by_eigh == pytest.approx(tf[torch_fidelity.metric_fid.KEY_METRIC_FID], rel=1e-8)
    with pytest.raises(ValueError, match="unknown method"):
        fid.frechet_distance(m1, S1, m2, S2, "svd")
    with pytest.raises(ValueError, match="shapes"):
        fid.frechet_distance(m1, S1, m2[:3], S2[:3, :3])


# --------------------------------------------------------------------------------------------------
# FID through torch-fidelity, with a registered extractor
# --------------------------------------------------------------------------------------------------


class PixelStats(FeatureExtractorBase):
    """A deterministic test extractor: per-channel means over a 2x2 grid and per-channel std (15 numbers)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("stats",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "stats"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        x = x.float() / 255.0
        grid = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # (B, 12)
        return (torch.cat([grid, x.flatten(2).std(-1)], 1),)


NAME = "poolvae-test-pixels"
if NAME not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(NAME, PixelStats)


class _Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = fid.to_uint8_rgb(x)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def _images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.25  # a random colour per image
    return (base + 0.1 * torch.randn(n, 3, 16, 16, generator=g) + shift).clamp(0, 1)


def test_registered_extractor_fid_pipeline():
    ext = fid.FeatureExtractor(NAME, "stats", device="cpu", batch_size=32)
    a, b, shifted = _images(300, 0), _images(300, 1), _images(300, 1, shift=0.2)
    fa, fb, fs = ext(a), ext(b), ext(shifted)
    assert fa.shape == (300, 15) and fa.dtype == torch.float64
    assert abs(fid.fid_from_features(fa, fa)) < 1e-8  # identical sets
    same_law, moved = fid.fid_from_features(fa, fb), fid.fid_from_features(fa, fs)
    assert moved > 5 * same_law and moved > 0.05
    # our FD on the same features agrees with torch-fidelity's formula
    assert fid.frechet_distance_features(fa, fs) == pytest.approx(moved, rel=1e-6)
    # and the whole pipeline agrees with torch-fidelity's own calculate_metrics on the same images
    ref = torch_fidelity.calculate_metrics(input1=_Images(a), input2=_Images(shifted), fid=True,
                                           feature_extractor=NAME, cuda=False, verbose=False, save_cpu_ram=True,
                                           batch_size=64)
    assert ref[torch_fidelity.metric_fid.KEY_METRIC_FID] == pytest.approx(moved, rel=1e-6)
    assert ext.describe()["name"] == NAME and ext.describe()["library"] == "torch-fidelity"


def test_to_uint8_rgb_rounds_and_repeats_grey_channels():
    x = torch.tensor([0.0, 0.5, 1.0, 1.2]).view(1, 1, 2, 2)
    u = fid.to_uint8_rgb(x)
    assert u.shape == (1, 3, 2, 2) and u.dtype == torch.uint8
    assert u[0, 2].flatten().tolist() == [0, 128, 255, 255]
    with pytest.raises(ValueError, match="channels"):
        fid.to_uint8_rgb(torch.zeros(1, 2, 4, 4))


def test_missing_inception_weights_name_the_file_and_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as err:
        fid.inception_weights_path()
    msg = str(err.value)
    assert fid.INCEPTION_WEIGHTS_FILE in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "--inception-weights" in msg and "Nothing is downloaded" in msg
    with pytest.raises(FileNotFoundError, match="weights-inception-2015-12-05-6726825d.pth"):
        fid.FeatureExtractor(weights_path=tmp_path / "nowhere.pth", device="cpu")  # fails before any download
    # found in the hub cache, or in a folder given explicitly
    target = tmp_path / "hub" / "checkpoints" / fid.INCEPTION_WEIGHTS_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert fid.inception_weights_path() == target
    assert fid.inception_weights_path(target.parent) == target
