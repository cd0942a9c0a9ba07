"""Tests for poolvae.palette: one distinct colour and label per method, aliases, the paper style."""

import matplotlib
import pytest

from poolvae import palette


def test_every_method_has_its_own_colour_and_marker():
    methods = list(palette.METHODS.values())
    assert len({m.color.lower() for m in methods}) == len(methods)
    markers = [m.marker for m in methods if m.key != "truth"]
    assert len(set(markers)) == len(markers)
    for key in ("poe", "moe", "mopoe", "mmvae+", "code", "wb", "mwb", "holder", "hellinger", "mohel", "truth"):
        assert matplotlib.colors.is_color_like(palette.color(key))


@pytest.mark.parametrize("alias,key", [("MVAE", "poe"), ("mmvae", "moe"), ("HELVAE", "hellinger"),
                                       ("holder_half", "holder"), ("MoHELVAE", "mohel"), ("WB-VAE", "wb")])
def test_model_names_are_aliases(alias, key):
    assert palette.method(alias).key == key
    assert palette.color(alias) == palette.color(key)


def test_labels_and_unknown_names():
    assert palette.label("poe") == "PoE" and palette.label("poe", "model") == "MVAE"
    assert palette.label("hellinger", "model") == "HELVAE"
    with pytest.raises(ValueError, match="unknown method"):
        palette.method("nope")
    with pytest.raises(ValueError):
        palette.label("poe", "paper")


def test_paper_style_sets_and_restores_rcparams():
    before = matplotlib.rcParams["font.size"]
    with palette.paper_style():
        assert matplotlib.rcParams["font.size"] == palette.FONT_SIZE
    assert matplotlib.rcParams["font.size"] == before
