"""Trained figures are drawn from summaries written by poolvae.experiments (here from evaluation
files the test writes), to PNG and PDF, and a figure without runs is skipped with a message."""

import sys
from pathlib import Path

import pytest

from poolvae import experiments as X
from poolvae import figures as F

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments import _evaluation, _write  # noqa: E402


@pytest.mark.parametrize("item", ["hel-fig3", "hel-fig5", "hel-fig6", "wb-fig3"])
def test_trained_figure_is_drawn_from_its_summary(tmp_path, item):
    exp = X.get_experiment(item)
    for k, cfg in enumerate(exp.runs("cpu")):
        _write(tmp_path, cfg, _evaluation(0.1 * (k % 7), 0.05 * (k % 5), 1.0 + k % 3, 2.0 + k % 4, -50.0 - k))
    X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{item}.{ext}").stat().st_size > 1000


def test_trained_figure_without_results_is_skipped(tmp_path):
    drawn, message = F.run_item("hel-fig5", tmp_path, tmp_path, seed=0)
    assert not drawn and "not found" in message and "make reproduce-hel-fig5" in message
