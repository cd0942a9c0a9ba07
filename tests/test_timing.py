"""The training-cost table (poolvae.timing, HEL Table 6): ratios to HELVAE measured in the same run, synthetic
batches with the real loaders' shapes, and columns added without touching the PolyMNIST numbers."""

import pytest

from poolvae import timing


def test_training_cost_table_at_ci_scale():
    res = timing.run("ci", methods=["helvae", "wbvae"], steps=1, warmup=1, rounds=2)
    assert res["methods"]["helvae"]["timed_steps"] == 2  # one step in each of two interleaved rounds
    assert res["methods"]["helvae"]["ratio_to_helvae"] == 1.0
    assert res["methods"]["wbvae"]["seconds_per_batch"] > 0
    assert 0 < res["helvae_pooling_share_of_step"] < 1
    cols = res["columns"]
    assert list(cols) == ["polymnist", "cub", "celeba"]
    assert cols["polymnist"]["batches"] == "real" and cols["polymnist"]["methods"]["wbvae"]["seconds_per_batch"] == \
        res["methods"]["wbvae"]["seconds_per_batch"]
    for c in ("cub", "celeba"):
        assert cols[c]["batches"] == "synthetic" and cols[c]["paper_column"] == timing.COLUMNS[c]
        rows = cols[c]["methods"]
        assert rows["helvae"]["ratio_to_helvae"] == 1.0 and rows["helvae"]["timed_steps"] == 2
        assert rows["wbvae"]["ratio_to_helvae"] == pytest.approx(
            rows["wbvae"]["seconds_per_batch"] / rows["helvae"]["seconds_per_batch"])
        assert rows["wbvae"]["config"]["dataset"] == c
    assert cols["cub"]["shapes"] == {"img": [3, 64, 64], "text": [32, timing.CUB_VOCABULARY]}
    assert cols["celeba"]["shapes"] == {"img": [3, 64, 64], "text": [256, 70]}


def test_synthetic_batches_have_the_real_loaders_shapes(fixture_data_root):
    """CelebA's and PolyMNIST's synthetic specs equal the real loaders' (CUB's differs only in its vocabulary
    size, which the real file fixes); batches are in [0, 1] with one-hot texts."""
    import torch

    from poolvae import datasets as D

    celeba = D.get_dataset("celeba", "train", fixture_data_root, scale="paper")
    syn = timing.synthetic_spec("celeba")
    assert [(m.name, m.shape, m.likelihood) for m in syn.modalities] == \
        [(m.name, m.shape, m.likelihood) for m in celeba.spec.modalities]
    cub = D.get_dataset("cub", "train", fixture_data_root, scale="paper")
    syn_cub = timing.synthetic_spec("cub")
    assert [(m.name, m.shape[:-1] if m.kind == "text" else m.shape, m.likelihood) for m in syn_cub.modalities] == \
        [(m.name, m.shape[:-1] if m.kind == "text" else m.shape, m.likelihood) for m in cub.spec.modalities]
    assert timing.synthetic_spec("polymnist-mini") == D.polymnist_spec("polymnist-mini")
    batch = timing.synthetic_batch(syn, 5, torch.Generator().manual_seed(0))
    (img, text), _ = celeba[0]
    assert [tuple(x.shape) for x in batch] == [(5, *img.shape), (5, *text.shape)]
    assert batch[0].dtype == img.dtype and 0 <= batch[0].min() and batch[0].max() <= 1
    assert torch.equal(batch[1].sum(-1), torch.ones(5, 256)) and batch[1].dtype == text.dtype


def test_add_columns_keeps_the_polymnist_numbers(monkeypatch):
    table = {"item": "hel-table6", "scale": "ci", "dataset": "polymnist-mini",
             "methods": {"helvae": {"seconds_per_batch": 0.5, "ratio_to_helvae": 1.0},
                         "wbvae": {"seconds_per_batch": 0.25, "ratio_to_helvae": 0.5}}}
    out = timing.add_columns(table, "ci", steps=1, warmup=0, rounds=1, columns=("celeba",))
    assert out["methods"] == table["methods"] and list(out["columns"]) == ["polymnist", "celeba"]
    assert out["columns"]["polymnist"]["methods"]["wbvae"]["ratio_to_helvae"] == 0.5
    check = out["columns"]["polymnist"]["synthetic_check"]
    assert check["batches"] == "synthetic" and check["methods"]["helvae"]["ratio_to_helvae"] == 1.0
    assert set(check["real_batches_same_run"]) == {"helvae", "wbvae"}
    assert check["real_batches_same_run"]["wbvae"]["seconds_per_batch"] != 0.25  # timed anew, not copied
    assert out["columns"]["celeba"]["batches"] == "synthetic" and out["columns_run"]["rounds"] == 1
    with pytest.raises(ValueError, match="timed on real batches"):
        timing.add_columns({"scale": "ci"}, "ci")
