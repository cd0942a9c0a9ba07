"""The aggregator benchmark and the training-cost table run and report ratios to their baselines."""

import pytest

from poolvae import bench, timing


def test_bench_reports_ratios_to_poe_and_skips_oversized_mixtures():
    res = bench.run(ms=(2, 3), B=4, D=8, repeats=1, rules=["poe", "hellinger", "mopoe"],
                    max_gib=bench.mixture_gib(2, 4, 8) * 1.5)
    assert res["ratio_to_poe"]["poe"] == {"2": 1.0, "3": 1.0}
    assert res["ratio_to_poe"]["hellinger"]["2"] > 0
    assert isinstance(res["ratio_to_poe"]["mopoe"]["2"], float)
    assert res["ratio_to_poe"]["mopoe"]["3"].startswith("skipped")
    assert set(res["growth_exponent_in_M"]) == {"poe", "hellinger"}  # mopoe has one point only


def test_mixture_working_set_grows_like_two_to_the_m():
    assert bench.mixture_gib(6, 10, 10) / bench.mixture_gib(5, 10, 10) == pytest.approx(6 * 63 / (5 * 31))


def test_training_cost_table_at_ci_scale():
    res = timing.run("ci", methods=["helvae", "wbvae"], steps=1, warmup=1)
    assert res["methods"]["helvae"]["ratio_to_helvae"] == 1.0
    assert res["methods"]["wbvae"]["seconds_per_batch"] > 0
    assert 0 < res["helvae_pooling_share_of_step"] < 1
