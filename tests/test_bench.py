"""The aggregator benchmark (poolvae.bench) runs and reports ratios to its PoE baselines; compiled rules give the
eager numbers."""

import pytest

from poolvae import bench


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


def test_compiled_rules_give_the_eager_numbers_and_are_benchmarked_against_both_poes():
    """torch.compile fuses kernels but must not change the pooled moments or their gradients."""
    import torch

    from poolvae import aggregators as agg

    res = bench.run_compiled(["hellinger"], ms=(3,), B=4, D=8, repeats=1)
    assert set(res["seconds"]) == {"poe", "hellinger"}
    assert res["ratio_to_compiled_poe"]["poe"]["3"] == 1.0
    assert res["ratio_to_eager_poe"]["hellinger"]["3"] > 0
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(3, 4, 8, generator=g, requires_grad=True)
    lv = (3 * torch.randn(3, 4, 8, generator=g)).requires_grad_()
    outs = []
    for fn in (agg.hellinger, agg.compiled("hellinger")):
        mu.grad = lv.grad = None
        q = fn(mu, lv)
        (q.mu.square().sum() + q.logvar.sum()).backward()
        outs.append((q.mu.detach(), q.logvar.detach(), mu.grad.clone(), lv.grad.clone()))
    for eager, comp in zip(*outs, strict=True):
        torch.testing.assert_close(comp, eager, rtol=1e-5, atol=1e-5)
