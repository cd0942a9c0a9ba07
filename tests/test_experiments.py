"""The reproduction registry: run lists per scale, summaries over seeds, ranks and Kendall's tau,
the paper's numbers beside ours, and rendering, checked on evaluation files written by the test."""

import dataclasses
import json
import math

import pytest

from poolvae import experiments as X
from poolvae.train import run_path


def _evaluation(cond: float, uncond: float, fd_c: float, fd_u: float, ll: float = -100.0) -> dict:
    subsets = ["m0", "m1", "m0+m1"]
    return {"schema": "poolvae.evaluate/1", "subsets": subsets,
            "metrics": {"coherence": {"conditional": {"overall": cond, "by_size": {"1": {"mean": cond - 0.1},
                                                                                  "2": {"mean": cond}}},
                                      "unconditional": uncond},
                        "fd_classifier": {"conditional": {"mean": fd_c, "by_size": {"1": {"mean": fd_c}}},
                                          "unconditional": {"m0": fd_u, "m1": fd_u + 2.0}},
                        "log_likelihood": {"joint": ll, "by_size": {"1": {"mean": ll}}},
                        "latent": {"per_subset": {s: 0.5 for s in subsets}, "by_size": {"1": {"mean": 0.5}}}}}


def _write(root, cfg, ev):
    d = root / "runs" / run_path(cfg)
    d.mkdir(parents=True)
    (d / "evaluation.json").write_text(json.dumps(ev))


def test_run_lists_per_scale():
    e = X.get_experiment("hel-table8")
    cpu, paper = e.runs("cpu"), e.runs("paper")
    assert len(cpu) == 7 * (3 + 1 + 1 + 1) and len(paper) == 7 * 4 * 3  # cpu: three seeds at beta 2.5 only
    assert {c.seed for c in cpu if c.beta == 2.5} == {0, 1, 2} and {c.seed for c in cpu if c.beta != 2.5} == {0}
    assert {c.dataset for c in cpu} == {"polymnist-mini"} and {c.dataset for c in paper} == {"polymnist"}
    assert {c.beta for c in X.get_experiment("hel-fig6").runs("cpu")} == {3e-2, 3e-1, 1.0, 2.5, 5.0, 10.0}
    with pytest.raises(ValueError, match="valid: .*hel-table8"):
        X.get_experiment("hel-table99")


def test_run_folder_is_the_documented_layout(tmp_path):
    # results/runs/<scale>/<data set>/<method>/beta=<b>/seed=<s>/, as README and chapter 9 describe it
    cfg = X.make_config("polymnist-mini", "mopoe", "cpu", beta=2.5, seed=3)
    assert X.run_folder(cfg, tmp_path) == tmp_path / "runs" / "cpu" / "polymnist-mini" / "mopoe" / "beta=2.5" / "seed=3"
    _write(tmp_path, cfg, _evaluation(0.7, 0.2, 1.0, 2.0))  # what collect and status read is found there
    assert (X.run_folder(cfg, tmp_path) / "evaluation.json").exists()


def test_ranks_and_kendall_tau():
    assert X.ranks({"a": 0.9, "b": 0.5, "c": 0.9, "d": None}, higher_is_better=True) == {"a": 1, "c": 1, "b": 3}
    assert X.ranks({"a": 10.0, "b": 5.0}, higher_is_better=False) == {"b": 1, "a": 2}
    assert X.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}) == pytest.approx(1.0)
    assert X.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}) == pytest.approx(-1.0)
    assert X.kendall_tau({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None
    # a tie: tau-b = (concordant - discordant) / sqrt((pairs - ties in a)(pairs - ties in b)) = 5 / sqrt(6 * 5)
    assert X.kendall_tau({"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "b": 1, "c": 3, "d": 4}) == \
        pytest.approx(5 / math.sqrt(30))


def _tau_b_by_hand(x: dict, y: dict) -> float:
    """Kendall's tau-b from pair counts."""
    common = sorted(set(x) & set(y))
    pairs = [(i, j) for k, i in enumerate(common) for j in common[k + 1:]]
    sign = [((x[i] > x[j]) - (x[i] < x[j])) * ((y[i] > y[j]) - (y[i] < y[j])) for i, j in pairs]
    tied_x = sum(x[i] == x[j] for i, j in pairs)
    tied_y = sum(y[i] == y[j] for i, j in pairs)
    return sum(sign) / math.sqrt((len(pairs) - tied_x) * (len(pairs) - tied_y))


def test_the_stored_tau_compares_the_papers_ranks_with_ours(tmp_path):
    # wb-table1's fixture values rise with the method's position, so ours rank in the registry's reverse order,
    # which is not the paper's: tau is neither 1 nor -1, and each column's stored tau is the one of its cells
    e = _fill(tmp_path, "wb-table1")
    s = X.summarise(e, "cpu", tmp_path)
    taus = []
    for key, cells in s["cells"]["5"].items():
        paper = {m: c["paper_rank"] for m, c in cells.items() if c["paper_rank"] is not None}
        ours = {m: c["ours_rank"] for m, c in cells.items() if c["ours_rank"] is not None}
        assert s["kendall_tau"]["5"][key] == pytest.approx(_tau_b_by_hand(paper, ours)), key
        taus.append(s["kendall_tau"]["5"][key])
    assert any(abs(t) < 0.99 for t in taus)


def test_summary_over_seeds_with_paper_values_and_render(tmp_path):
    e = X.get_experiment("hel-table7")
    # two seeds of helvae, one of helvae-learned, at the cpu scale's run paths
    cfgs = {(c.method, c.seed): c for c in e.runs("cpu")}
    helvae = cfgs[("helvae", 0)]
    _write(tmp_path, helvae, _evaluation(0.8, 0.3, 10.0, 12.0))
    seed1 = type(helvae)(**{**helvae.__dict__, "seed": 1})
    _write(tmp_path, seed1, _evaluation(0.6, 0.5, 14.0, 16.0))
    _write(tmp_path, cfgs[("helvae-learned", 0)], _evaluation(0.75, 0.4, 9.0, 11.0))
    s = X.summarise(e, "cpu", tmp_path)
    assert s["runs_found"] == 2  # only seed 0 belongs to the cpu run list
    cell = s["cells"]["5"]["coherence/conditional"]
    assert cell["helvae"]["ours"]["mean"] == pytest.approx(0.8)
    assert cell["helvae"]["ours_rank"] == 1 and cell["helvae-learned"]["ours_rank"] == 2
    # the paper's Table 7: uniform 0.887 +- 0.006, learned 0.886 +- 0.002
    assert cell["helvae"]["paper"] == {"mean": 0.887, "std": 0.006}
    assert cell["helvae"]["paper_rank"] == 1
    q = s["cells"]["5"]["quality/unconditional"]
    assert q["helvae"]["ours"]["mean"] == pytest.approx(13.0)  # mean over modalities of fd_classifier
    assert q["helvae-learned"]["ours_rank"] == 1  # lower is better
    summary = X.render("hel-table7", "cpu", tmp_path)
    md = (tmp_path / "hel-table7.md").read_text()
    assert "0.887 ± 0.006 (1)" in md and "0.800 (1)" in md and "fd_classifier" in md
    assert (tmp_path / "hel-table7.csv").read_text().count("\n") == 1 + 2 * 4
    assert "\\toprule" in (tmp_path / "hel-table7.tex").read_text()
    assert json.loads((tmp_path / "hel-table7.json").read_text())["runs_found"] == summary["runs_found"]


def _table7_summary(tmp_path) -> tuple[dict, dict]:
    """HEL Table 7's cpu summary over one run each of HELVAE and HELVAE with learned weights, and its configs."""
    e = X.get_experiment("hel-table7")
    cfgs = {c.method: c for c in e.runs("cpu")}
    _write(tmp_path, cfgs["helvae"], _evaluation(0.8, 0.3, 10.0, 12.0))
    _write(tmp_path, cfgs["helvae-learned"], _evaluation(0.75, 0.4, 9.0, 11.0))
    return X.summarise(e, "cpu", tmp_path), cfgs


def test_a_cell_resting_on_a_stale_run_is_marked_in_the_table(tmp_path):
    s, cfgs = _table7_summary(tmp_path)
    assert X.STALE_MARK not in X.table_markdown(s)  # nothing stale, no mark and no legend
    s["runs_stale"] = {str(run_path(cfgs["helvae"])): "epochs: 60 there, 65 now"}
    assert X.stale_cells(s) == {("polymnist-mini", "helvae", 5.0)}
    md = X.table_markdown(s)
    assert f"| helvae {X.STALE_MARK} |" in md and "| helvae-learned |" in md
    assert f"{X.STALE_MARK}: a run of this cell is stale" in md and "epochs: 60 there, 65 now" in md


def test_three_seeds_at_the_headline_beta_of_every_polymnist_item_at_cpu():
    for item in ("hel-table8", "hel-fig3", "hel-fig5", "hel-fig6", "wb-fig3", "hel-table5"):
        runs = [c for c in X.get_experiment(item).runs("cpu") if c.dataset == "polymnist-mini"]
        per_cell = {}
        for c in runs:
            per_cell.setdefault((c.method, c.beta), set()).add(c.seed)
        assert all(seeds == ({0, 1, 2} if b == 2.5 else {0}) for (_, b), seeds in per_cell.items()), item
    assert {c.seed for c in X.get_experiment("hel-table7").runs("cpu")} == {0}  # beta 5 only
    assert {c.seed for c in X.get_experiment("wb-table1").runs("cpu")} == {0}  # not PolyMNIST


def test_seeds_are_averaged(tmp_path, monkeypatch):
    e = X.get_experiment("hel-table7")
    monkeypatch.setitem(e.seeds, "cpu", (0, 1))
    cfgs = {(c.method, c.seed): c for c in e.runs("cpu")}
    _write(tmp_path, cfgs[("helvae", 0)], _evaluation(0.8, 0.3, 10.0, 12.0))
    _write(tmp_path, cfgs[("helvae", 1)], _evaluation(0.6, 0.5, 14.0, 16.0))
    ours = X.summarise(e, "cpu", tmp_path)["cells"]["5"]["coherence/conditional"]["helvae"]["ours"]
    assert ours["mean"] == pytest.approx(0.7) and ours["std"] == pytest.approx(0.1414213562) and ours["n"] == 2


def test_curves_by_number_of_inputs(tmp_path):
    e = X.get_experiment("wb-fig3")
    for c in e.runs("cpu"):
        _write(tmp_path, c, _evaluation(0.7, 0.2, 5.0, 6.0))
    s = X.summarise(e, "cpu", tmp_path)
    assert s["curves"]["coherence"]["2.5"]["wbvae"]["1"]["mean"] == pytest.approx(0.6)
    assert s["curves"]["coherence"]["2.5"]["wbvae"]["2"]["mean"] == pytest.approx(0.7)


# --------------------------------------------------------------------------------------------------
# The tables of the other data sets: test fixtures shaped like poolvae.evaluate's schema (no training)
# --------------------------------------------------------------------------------------------------

MODALITIES = {"mnist-svhn-text": ["mnist", "svhn", "text"], "celeba": ["img", "text"], "cub": ["img", "text"]}


def _subsets(names):
    import itertools
    return ["+".join(c) for k in range(1, len(names) + 1) for c in itertools.combinations(names, k)]


def _fixture_evaluation(dataset: str, v: float, quality: str | None = "fd_classifier") -> dict:
    """A test fixture of evaluation.json (schema poolvae.evaluate/1) whose numbers are simple functions of ``v``:
    latent of a subset = v + 0.01 * its size, coherence of a pair = v + 0.01 * the subset's size, log-likelihood of
    a subset = -1000 v - 10 * its size, quality = 100 v."""
    names = MODALITIES[dataset]
    subsets = _subsets(names)
    size = {s: len(s.split("+")) for s in subsets}
    pairs = {s: {t: v + 0.01 * size[s] for t in names if t not in s.split("+")} for s in subsets[:-1]}
    flat = [x for d in pairs.values() for x in d.values()]
    metrics = {"latent": {"per_subset": {s: v + 0.01 * size[s] for s in subsets}},
               "log_likelihood": {"per_subset": {s: -1000 * v - 10 * size[s] for s in subsets},
                                  "joint": -1000 * v - 10 * len(names)},
               "coherence": {"conditional": {"per_pair": pairs, "overall": sum(flat) / len(flat)},
                             "unconditional": {"per_attribute": [v], "mean": v / 2, "all_attributes": 0.0}}}
    if quality:
        image = [n for n in names if n != "text"]
        metrics[quality] = {"conditional": {"per_pair": {s: {t: 100 * v for t in image if t not in s.split("+")}
                                                         for s in subsets[:-1]}, "mean": 100 * v},
                            "unconditional": {n: 100 * v + 1 for n in image}}
    if dataset == "cub":
        metrics = {"cub_colour_coherence": {"overall": v, "per_colour": {}}}
        if quality:
            metrics[quality] = {"conditional": {"per_pair": {"text": {"img": 100 * v}}, "mean": 100 * v},
                                "unconditional": {"img": 100 * v}}
    return {"schema": "poolvae.evaluate/1", "modalities": names, "subsets": subsets, "metrics": metrics}


NEW_TABLES = ["hel-table1", "hel-table2", "hel-table3", "hel-table4", "wb-table1", "wb-table2", "wb-table3",
              "wb-table4"]


@pytest.mark.parametrize("item", NEW_TABLES + ["hel-table5", "hel-fig4", "hel-fig9"])
def test_every_item_runs_on_its_data_set_with_the_papers_settings(item):
    e = X.get_experiment(item)
    cpu, paper = e.runs("cpu"), e.runs("paper")
    assert {c.seed for c in cpu if (c.dataset, c.beta) != ("polymnist-mini", 2.5)} <= {0}  # 0, 1, 2 at the headline
    assert {c.method for c in cpu} == set(e.methods)
    assert {c.seed for c in paper} == set(range(5 if item.startswith("wb") else 3))
    base = {"cub": "cub", "celeba": "celeba", "mnist-svhn-text": "mnist-svhn-text-mini", "polymnist": "polymnist-mini"}
    if item != "hel-table5":
        assert {c.dataset for c in cpu} == {base[e.dataset]} and len(paper) == len(cpu) * len(e.seeds["paper"])
    betas = {(c.method, c.beta) for c in paper}
    if item == "hel-table1":  # each model at its best CUB beta (HEL Table 5)
        assert betas == {("mvae", 2.5), ("mmvae", 2.5), ("mopoe", 5.0), ("mmvaeplus", 2.5), ("mwbvae", 2.5),
                         ("codevae", 5.0), ("helvae", 2.5)}
        assert {(c.method, c.beta) for c in cpu} == betas
    if item in ("hel-table2", "hel-table3", "hel-table4"):
        assert {b for _, b in betas} == {1.0}
    if item.startswith("wb-table"):  # WB App. B: beta 5 on MNIST-SVHN-Text, 2.5 on CelebA
        assert {b for _, b in betas} == ({2.5} if item == "wb-table4" else {5.0})
    if item in ("hel-fig4", "hel-fig9"):  # best PolyMNIST beta at paper scale; the committed beta 2.5 runs below
        assert ("helvae", 5.0) in betas and ("mmvaeplus", 2.5) in betas and {c.beta for c in cpu} == {2.5}
        assert {X.run_path(c) for c in cpu} <= {X.run_path(c) for c in X.get_experiment("hel-table8").runs("cpu")}
    if item == "hel-table5":
        paths = {X.run_path(c) for c in cpu}
        assert {X.run_path(c) for c in X.get_experiment("hel-table8").runs("cpu")} <= paths
        assert {c.dataset for c in cpu} == {"polymnist-mini", "cub", "celeba"} and len(cpu) == 7 * (4 + 2 + 3 + 3)


def _fill(tmp_path, item, value=lambda k: 0.3 + 0.05 * k, quality="fd_classifier"):
    e = X.get_experiment(item)
    for k, cfg in enumerate(e.runs("cpu")):
        _write(tmp_path, cfg, _fixture_evaluation(e.dataset, value(k), quality))
    return e


@pytest.mark.parametrize("item", NEW_TABLES)
def test_new_tables_render_ours_beside_the_papers_values(tmp_path, item):
    e = _fill(tmp_path, item)
    s = X.render(item, "cpu", tmp_path)
    assert s["runs_found"] == s["runs_expected"] == len(e.methods)
    (block,) = s["cells"].values()
    keys = [c.key for c in e.table_columns()]
    assert list(block) == keys
    for col in e.table_columns():
        have = [c for c in block[col.key].values() if c["paper"] is not None]
        assert len(have) == len(e.methods), f"{item} {col.key}: a method without the paper's value"
    md = (tmp_path / f"{item}.md").read_text()
    assert md.count("\n| ") == len(e.methods) + 1 and "Kendall's tau" in md
    csv_rows = (tmp_path / f"{item}.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(e.methods) * len(keys)
    assert "\\toprule" in (tmp_path / f"{item}.tex").read_text()
    first = block[keys[0]][e.methods[0]]
    assert first["ours"]["n"] == 1 and first["ours"]["mean"] is not None


def test_new_table_columns_read_the_right_entries(tmp_path):
    e = _fill(tmp_path, "wb-table1")  # mvae gets v = 0.3, mmvae 0.35, ...
    cells = X.summarise(e, "cpu", tmp_path)["cells"]["5"]
    assert cells["latent/M"]["mvae"]["ours"]["mean"] == pytest.approx(0.31)
    assert cells["latent/M,S,T"]["mmvae"]["ours"]["mean"] == pytest.approx(0.38)
    avg = (0.31 * 3 + 0.32 * 3 + 0.33) / 7
    assert cells["latent/avg"]["mvae"]["ours"]["mean"] == pytest.approx(avg)
    assert cells["latent/M"]["mwbvae"]["paper"] == {"mean": 0.97, "std": 0.0}
    assert cells["latent/avg"]["mvae"]["paper"] == {"mean": 0.83, "std": None}
    assert cells["latent/M"]["mwbvae"]["ours_rank"] == 1 and cells["latent/M"]["mvae"]["ours_rank"] == 5
    # WB Tables 1-3 share their runs
    assert X.get_experiment("wb-table2").runs("paper") == e.runs("paper") == X.get_experiment("wb-table3").runs("paper")
    c2 = X.summarise(X.get_experiment("wb-table2"), "cpu", tmp_path)["cells"]["5"]
    assert list(c2)[:3] == ["coherence/S→M", "coherence/T→M", "coherence/S,T→M"]
    assert c2["coherence/S,T→M"]["mvae"]["ours"]["mean"] == pytest.approx(0.32)
    assert c2["coherence/S,T→M"]["mvae"]["paper"]["mean"] == 0.32
    c3 = X.summarise(X.get_experiment("wb-table3"), "cpu", tmp_path)["cells"]["5"]
    assert c3["log_likelihood/X"]["mvae"]["ours"]["mean"] == pytest.approx(-330.0)
    assert c3["log_likelihood/X|x_M,x_T"]["mvae"]["ours"]["mean"] == pytest.approx(-320.0)
    assert c3["log_likelihood/X|x_M,x_T"]["mvae"]["paper"]["mean"] == -2050
    _fill(tmp_path, "wb-table4")
    c4 = X.summarise(X.get_experiment("wb-table4"), "cpu", tmp_path)["cells"]["2.5"]
    assert c4["coherence/T→I"]["mvae"]["ours"]["mean"] == pytest.approx(0.31)
    assert c4["coherence/T→I"]["mopoe"]["paper"]["mean"] == 0.43 and c4["avg"]["mvae"]["paper"]["mean"] == 0.30
    assert c4["avg"]["mvae"]["ours"]["mean"] == pytest.approx((0.31 + 0.31 + 0.32 + 0.31 + 0.31) / 5)


def test_celeba_tables_use_each_models_best_beta_and_say_how_they_differ(tmp_path):
    _fill(tmp_path, "hel-table2")
    s = X.render("hel-table2", "cpu", tmp_path)
    assert list(s["cells"]) == ["best"] and s["block_betas"]["best"]["helvae"] == 1.0
    cell = s["cells"]["best"]["coherence/conditional"]["helvae"]
    assert cell["paper"] == {"mean": 0.386, "std": 0.003} and cell["ours"]["mean"] == pytest.approx(0.61)
    q = s["cells"]["best"]["quality/unconditional"]["mvae"]
    assert q["ours"]["mean"] == pytest.approx(31.0) and q["paper"]["mean"] == 78.64
    md = (tmp_path / "hel-table2.md").read_text()
    assert "each model at its best beta (HEL Table 5): mvae 1" in md and "mean average precision" in md
    assert (tmp_path / "hel-table2.csv").read_text().splitlines()[1].startswith("1,mvae,coherence/conditional,")
    _fill(tmp_path / "t4", "hel-table4")  # its HELVAE run is hel-table2's
    s4 = X.summarise(X.get_experiment("hel-table4"), "cpu", tmp_path / "t4")
    assert s4["cells"]["1"]["latent/I,T"]["mohelvae"]["paper"]["mean"] == 0.43
    assert s4["cells"]["1"]["latent/I,T"]["mohelvae"]["ours"]["mean"] == pytest.approx(0.37)


def test_cub_quality_absent_below_paper_scale_is_said_not_guessed(tmp_path):
    _fill(tmp_path, "hel-table1", quality=None)  # CUB at cpu: no classifiers, FID off
    s = X.render("hel-table1", "cpu", tmp_path)
    assert s["absent"] == ["quality/text→img"]
    cells = s["cells"]["best"]
    assert cells["colour_coherence"]["helvae"]["paper"]["mean"] == 0.75
    assert all(c["ours"]["mean"] is None for c in cells["quality/text→img"].values())
    md = (tmp_path / "hel-table1.md").read_text()
    assert "Absent from every evaluation found (not computed at this scale): `quality/text→img`" in md
    _fill(tmp_path / "fid", "hel-table1", quality="fid")
    s2 = X.summarise(X.get_experiment("hel-table1"), "cpu", tmp_path / "fid")
    assert "absent" not in s2 and s2["cells"]["best"]["quality/text→img"]["mvae"]["ours"]["mean"] == pytest.approx(30)


def test_a_column_evaluate_does_not_compute_is_marked(tmp_path, monkeypatch):
    e = X.get_experiment("hel-table3")
    cols = (*e.table_columns()[:2], X.Column("latent/I,T", None, True, {"metric": "latent_accuracy",
                                                                          "setting": "I,T"}))
    monkeypatch.setitem(X.EXPERIMENTS, "hel-table3", dataclasses.replace(e, columns=cols))
    _fill(tmp_path, "hel-table3")
    s = X.render("hel-table3", "cpu", tmp_path)
    assert s["not_computed"] == ["latent/I,T"]
    md = (tmp_path / "hel-table3.md").read_text()
    assert "not computed here" in md and "Not computed here (poolvae.evaluate has no such metric): `latent/I,T`" in md


def test_best_beta_selection(tmp_path):
    e = X.get_experiment("hel-table5")
    for cfg in e.runs("cpu"):  # conditional coherence peaks at beta 2.5 for every method and data set
        v = 0.9 - abs(cfg.beta - 2.5) / 10
        ev = _fixture_evaluation("cub", v, None) if cfg.dataset == "cub" else \
            _evaluation(v, 0.1, 1.0, 1.0) if cfg.dataset == "polymnist-mini" else _fixture_evaluation("celeba", v)
        _write(tmp_path, cfg, ev)
    s = X.render("hel-table5", "cpu", tmp_path)
    assert s["runs_found"] == 84  # 7 methods x (PolyMNIST 4 betas + 2 more seeds at 2.5, CUB 3, CelebA 3)
    rows = s["selection"]["polymnist"]["rows"]
    assert rows["helvae"]["ours_beta"] == 2.5 and rows["helvae"]["paper_beta"] == 5.0
    assert s["selection"]["polymnist"]["agree"] == 4 and s["selection"]["polymnist"]["of"] == 7  # 2.5 in Table 5
    assert s["selection"]["celeba"]["agree"] == 0 and s["selection"]["cub"]["rows"]["mopoe"]["ours_beta"] == 2.5
    assert s["paper_rule_check"] == {"table": "hel-table8", "criterion": "coherence/conditional", "agree": 3, "of": 7}
    assert X.select_beta({1.0: 0.5, 2.5: 0.5, 5.0: None}) == 1.0 and X.select_beta({1.0: None}) is None
    md = (tmp_path / "hel-table5.md").read_text()
    assert "| helvae | 5 | 2.5 |" in md and "3 of 7 methods" in md
    assert (tmp_path / "hel-table5.csv").read_text().count("\n") == 1 + 7 * (4 + 3 + 3)


def test_missing_data_set_stops_reproduce_before_training(tmp_path, monkeypatch, capsys):
    from poolvae import datasets as ds

    monkeypatch.setattr(ds, "DATA_DIR", tmp_path / "data")
    with pytest.raises(FileNotFoundError) as expected:
        ds.get_dataset("mnist-svhn-text", "train", scale="ci")

    def no_training(*a, **k):
        raise AssertionError("training started before the data sets were checked")

    monkeypatch.setattr(X, "run_one", no_training)
    with pytest.raises(FileNotFoundError) as err:
        X.reproduce("wb-table1", "ci", results_dir=tmp_path)
    assert str(err.value) == str(expected.value) and "Get it from" in str(err.value)
    assert X.main(["reproduce", "wb-table2", "--scale", "ci"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {expected.value}"


def test_list_shows_every_item_with_its_status(capsys):
    assert X.main(["list"]) == 0
    out = capsys.readouterr().out
    for item in [*X.EXPERIMENTS, *X.ELSEWHERE]:
        assert f"\n{item} " in "\n" + out
    assert "status:" in out and "hel-table6" in out


def _coherence_ev(pairs: list[float], n: int) -> dict:
    """An evaluation whose conditional coherence has the given per-pair values over ``n`` test points."""
    per_pair = {f"s{i}": {"t": p} for i, p in enumerate(pairs)}
    return {"metrics": {"coherence": {"conditional": {"overall": sum(pairs) / len(pairs), "per_pair": per_pair}}},
            "samples": {"conditional": n}}


def test_tau_interval_contains_the_estimate_and_narrows_with_more_test_points():
    col = X.Column("coherence/conditional", lambda ev: ev["metrics"]["coherence"]["conditional"]["overall"], True)
    paper = {"a": 1, "b": 2, "c": 3, "d": 4}
    values = {"a": [0.80, 0.82], "b": [0.70, 0.72], "c": [0.69, 0.71], "d": [0.50, 0.52]}
    beta = dict.fromkeys(paper, 1.0)
    widths = []
    for n in (50, 5000):
        found = {(m, 1.0): [_coherence_ev(v, n)] for m, v in values.items()}
        lo, hi = X.tau_interval(col, list(paper), beta, found, paper)
        assert lo <= 1.0 <= hi + 1e-12  # the point estimate: ours rank like the paper's, tau 1
        widths.append(hi - lo)
    assert widths[0] > 0 and widths[1] <= widths[0]  # b and c swap places often only with 50 points
    assert X.tau_interval(col, list(paper), beta, found, paper, seed=1) is not None


def test_tau_interval_is_none_when_nothing_varies():
    col = X.Column("quality/conditional", lambda ev: ev["fd"], False)
    paper = {"a": 1, "b": 2, "c": 3}
    found = {(m, 1.0): [{"fd": v}] for m, v in zip(paper, (1.0, 2.0, 3.0), strict=True)}
    assert X.tau_interval(col, list(paper), dict.fromkeys(paper, 1.0), found, paper) is None
    found[("a", 1.0)].append({"fd": 2.5})  # a second seed of one method: the seeds are resampled
    lo, hi = X.tau_interval(col, list(paper), dict.fromkeys(paper, 1.0), found, paper)
    # by hand (lower is better): a's mean is 2.5 with probability 1/4 (both draws 2.5), then a ranks behind b and
    # tau = 1/3; otherwise a ranks first and tau = 1. The 2.5th percentile is 1/3, the 97.5th 1.
    assert [lo, hi] == pytest.approx([1 / 3, 1.0])


def test_a_single_seed_coherence_cell_gets_a_test_point_interval():
    col = X.Column("coherence/conditional", lambda ev: ev["metrics"]["coherence"]["conditional"]["overall"], True)
    lo, hi = X.mean_interval(col, [_coherence_ev([0.5, 0.6], 400)])
    # by hand: the mean of two binomial proportions over 400 points has sd sqrt((.25 + .24) / 400) / 2 = 0.0175
    assert lo == pytest.approx(0.55 - 1.96 * 0.0175, abs=0.006) and hi == pytest.approx(0.55 + 1.96 * 0.0175, abs=0.006)
    fd = X.Column("quality/conditional", lambda ev: ev["fd"], False)
    assert X.mean_interval(fd, [{"fd": 2.0}]) is None


# --------------------------------------------------------------------------------------------------
# The command line (#19): progress per run, Ctrl-C, checked arguments, items that cannot run
# --------------------------------------------------------------------------------------------------

def _no_work(monkeypatch, calls=None):
    """Stub out the data check, the runs and the render of reproduce (the lines it prints are what is tested)."""
    monkeypatch.setattr(X, "check_data", lambda cfgs: None)
    monkeypatch.setattr(X, "render", lambda *a, **k: {"item": a[0]})
    monkeypatch.setattr(X, "run_one", lambda cfg, *a, **k: (calls if calls is not None else []).append(cfg))


def test_reproduce_prints_a_line_per_run_with_what_it_does_and_an_eta(tmp_path, monkeypatch, capsys):
    calls = []
    _no_work(monkeypatch, calls)
    exp = X.get_experiment("hel-table7")
    done, todo = exp.runs("ci")  # one run finished (kept), one not started
    d = tmp_path / "runs" / run_path(done)
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"finished": True}))
    (d / "config.json").write_text(json.dumps(dataclasses.asdict(done)))
    X.reproduce("hel-table7", "ci", results_dir=tmp_path, checkpoint_dir=tmp_path / "ckpt")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "hel-table7: 2 runs at scale ci (serial, jobs=1)"
    assert lines[1] == f"run 1/2 {run_path(done)}: trained; evaluating; ETA after this run"
    assert lines[2].startswith(f"run 2/2 {run_path(todo)}: training, then evaluating; ETA ")
    assert lines[3].startswith("hel-table7: 2 runs done in ") and calls == [done, todo]
    assert X.duration_text(75.2) == "1 min 15 s" and X.duration_text(3.4) == "3 s"
    assert X.duration_text(7300) == "2 h 01 min"


def test_reproduce_at_ci_scale_runs_on_one_thread_and_restores_it(tmp_path, monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    seen = []
    monkeypatch.setattr(X, "check_data", lambda cfgs: None)
    monkeypatch.setattr(X, "render", lambda *a, **k: {})
    monkeypatch.setattr(X, "run_one", lambda *a, **k: seen.append(
        (torch.get_num_threads(), {p["num_threads"] for p in threadpool_info()})))
    before = torch.get_num_threads()
    X.reproduce("hel-table7", "ci", results_dir=tmp_path, checkpoint_dir=tmp_path / "ckpt")
    assert seen and all(n == 1 and pools <= {1} for n, pools in seen)
    assert torch.get_num_threads() == before


def test_ctrl_c_in_reproduce_prints_one_line_and_exits_130(monkeypatch, capsys):
    _no_work(monkeypatch)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(X, "run_one", interrupted)
    assert X.main(["reproduce", "hel-table7", "--scale", "ci"]) == 130
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == ("interrupted hel-table7 at scale ci: finished runs are kept and an "
                                                "interrupted one resumes; run the same command again")
    assert "Traceback" not in out.out + out.err

    def interrupted_in_training(*a, **k):  # train() says where it stopped: that line is printed as it is
        raise KeyboardInterrupt("interrupted ci/x at epoch 2/2, step 1/4; run the same command again to resume")

    monkeypatch.setattr(X, "run_one", interrupted_in_training)
    assert X.main(["reproduce", "hel-table7", "--scale", "ci"]) == 130
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("interrupted ci/x at epoch 2/2")


@pytest.mark.parametrize("args, message", [
    (["reproduce", "nosuch"], "unknown item 'nosuch'; valid: hel-table8"),
    (["reproduce", "hel-fig1"], "hel-fig1 is not a trained item; it is made by exact: make reproduce-hel-fig1"),
    (["render", "nosuch"], "unknown item 'nosuch'"),
    (["reproduce", "hel-table8", "--methods", "nosuch"], "--methods: nosuch not among hel-table8's methods"),
    (["reproduce", "hel-table8", "--betas", "3"], "--betas: 3 not in hel-table8's betas at scale cpu: 1, 2.5, 5, 10"),
    (["reproduce", "hel-table8", "--betas", "nan"], "argument --betas: beta must be finite and above 0"),
    (["reproduce", "hel-table8", "--jobs", "0"], "argument --jobs: must be at least 1"),
    (["reproduce", "hel-table8", "--scale", "huge"], "argument --scale: invalid choice"),
])
def test_bad_arguments_are_one_line_errors_before_anything_runs(args, message, monkeypatch, capsys):
    _no_work(monkeypatch)
    monkeypatch.setattr(X, "reproduce", lambda *a, **k: pytest.fail("ran despite a bad argument"))
    with pytest.raises(SystemExit) as err:
        X.main(args)
    assert err.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m poolvae.experiments") and message in last


def test_list_says_which_items_cannot_run_and_which_data_set_is_absent(tmp_path, monkeypatch, capsys):
    from poolvae import datasets as ds

    monkeypatch.setattr(ds, "DATA_DIR", tmp_path / "no-data")
    data = ds.status()
    assert X.absent_data(X.get_experiment("hel-table8"), "cpu", data) == []  # the mini set is built on first use
    assert X.absent_data(X.get_experiment("hel-table8"), "paper", data) == ["polymnist"]
    assert X.absent_data(X.get_experiment("hel-table2"), "cpu", data) == ["celeba"]
    line = X.status(X.get_experiment("hel-table2"), "cpu", tmp_path, data)
    assert line.startswith("cannot run at cpu: data set celeba absent (`python -m poolvae.datasets --list` says "
                           "where to get it); 0/7 cpu runs evaluated")
    assert X.status(X.get_experiment("hel-table8"), "cpu", tmp_path, data).startswith("0/42 cpu runs evaluated")
    assert X.main(["list", "--scale", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cannot run at cpu: data set cub absent" in out


def test_sweep_runs_each_polymnist_run_once_headline_first_and_codevae_last(tmp_path, monkeypatch):
    from poolvae import convergence

    monkeypatch.setattr(convergence, "ROOT", tmp_path)  # no convergence diagnostic yet
    cfgs = [c for i in X.POLYMNIST_ITEMS for c in X.get_experiment(i).runs("cpu") if c.dataset == "polymnist-mini"]
    order = X.sweep_order(cfgs)
    keys = [(c.method, c.beta, c.seed) for c in order]
    assert len(keys) == len(set(keys)) == len({X.run_path(c) for c in cfgs})  # every run once
    slow = [c.method in X.SLOW_METHODS for c in order]
    assert slow == sorted(slow) and any(slow)  # CoDEVAE's runs after every other
    fast = [k for k in keys if k[0] not in X.SLOW_METHODS]
    first = [k for k in fast if k[1:] == (2.5, 0)]
    assert fast[:len(first)] == first and len(first) == 7  # beta 2.5, seed 0 of every other method first
    later_seeds = [i for i, k in enumerate(fast) if k[2] > 0]
    main_grid = [i for i, k in enumerate(fast) if k[1] in (1.0, 5.0, 10.0)]
    assert max(main_grid) < min(later_seeds)  # the grid of Table 8 before the extra seeds
    # once a diagnostic on these tuples is under way, the runs it trains (beta 2.5, seed 0 of every method without
    # a budget of its own) wait until just before CoDEVAE's, whether or not their diagnostic run has started
    diag = convergence.config("helvae", tuples=order[0].tuples)
    (convergence.roots(diag.tuples)[0] / "runs").mkdir(parents=True)
    keys = [(c.method, c.beta, c.seed) for c in X.sweep_order(cfgs)]
    deferred = [k for k in keys if convergence.covered(X.make_config("polymnist-mini", k[0], "cpu", beta=k[1],
                                                                      seed=k[2]))]
    assert sorted(deferred) == sorted((m, 2.5, 0) for m in convergence.METHODS if m != "codevae")
    codevae_first = keys.index(("codevae", 2.5, 0))
    assert keys[codevae_first - len(deferred):codevae_first] == deferred
    assert not convergence.covered(X.make_config("polymnist-mini", "helvae", "cpu", beta=2.5, seed=1))


def test_the_sweep_covers_every_trained_polymnist_item():
    polymnist = {k for k, e in X.EXPERIMENTS.items() if e.dataset == "polymnist" or "polymnist" in (e.selection or {})}
    assert set(X.POLYMNIST_ITEMS) == polymnist


def test_sweep_names_an_unknown_item_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        X.main(["sweep", "--items", "hel-table8", "hel-table99"])
    assert e.value.code == 2 and "unknown hel-table99" in capsys.readouterr().err


def test_sweep_trains_the_union_once_then_renders_every_item(tmp_path, monkeypatch, capsys):
    done, rendered = [], []
    monkeypatch.setattr(X, "check_data", lambda cfgs: None)
    monkeypatch.setattr(X, "run_one", lambda cfg, *a, **k: done.append(X.run_path(cfg)))
    monkeypatch.setattr(X, "render", lambda item, *a, **k: rendered.append(item) or {})
    X.sweep(("hel-fig5", "wb-fig3"), "ci", results_dir=tmp_path, checkpoint_dir=tmp_path / "ckpt")
    union = {X.run_path(c) for i in ("hel-fig5", "wb-fig3") for c in X.get_experiment(i).runs("ci")}
    assert sorted(done) == sorted(union) and len(done) == len(union) < 7 + 5  # shared runs trained once
    assert rendered == ["hel-fig5", "wb-fig3"]
    assert capsys.readouterr().out.startswith(f"sweep of 2 items: {len(union)} runs at scale ci")


def test_a_method_with_a_budget_of_its_own_is_named_in_every_table_it_is_in(tmp_path):
    from poolvae import train as T

    key = ("polymnist", "codevae", "cpu")
    assert X.make_config("polymnist-mini", "codevae", "cpu").epochs == T.METHOD_AT_SCALE[key]["epochs"]
    ci_epochs = X.make_config("polymnist-mini", "mvae", "ci").epochs
    assert X.make_config("polymnist-mini", "codevae", "ci").epochs == ci_epochs
    for cfg in X.get_experiment("hel-table8").runs("cpu"):
        _write(tmp_path, cfg, _evaluation(0.5, 0.1, 1.0, 1.0))
    s = X.render("hel-table8", "cpu", tmp_path, tmp_path)
    assert set(s["own_budget"]) == {"codevae"} and "decodes every subset" in s["own_budget"]["codevae"]
    assert "codevae has a budget of its own at this scale" in (tmp_path / "hel-table8.md").read_text()
    assert "own_budget" not in X.render("wb-fig3", "cpu", tmp_path, tmp_path)  # no CoDEVAE there


@pytest.mark.slow
def test_retrain_stale_trains_a_run_on_when_only_its_epochs_grew(tmp_path, capsys):
    short = X.make_config("polymnist-mini", "helvae", "ci", epochs=1)
    longer = X.make_config("polymnist-mini", "helvae", "ci", epochs=2)
    runs, ckpt = tmp_path / "runs", tmp_path / "ckpt"
    X.run_one(short, runs, ckpt)
    run_dir = runs / run_path(longer)
    assert X.stale_reason(longer, run_dir, ckpt) == "epochs: 1 there, 2 now"
    assert X.interrupted_elsewhere(longer, ckpt) == ("epochs: 1 there, 2 now", True)
    assert X.run_state(longer, runs, ckpt, retrain_stale=True) is X.RunAction.EXTEND
    X.run_one(longer, runs, ckpt, retrain_stale=True)
    assert "extend " in capsys.readouterr().out
    assert len(json.loads((run_dir / "metrics.json").read_text())["epochs"]) == 2
    assert json.loads((run_dir / "evaluation.json").read_text())["run"]["epochs"] == 2  # evaluated again
    assert X.stale_reason(longer, run_dir, ckpt) is None
    other = X.make_config("polymnist-mini", "helvae", "ci", epochs=3, lr=1e-2)  # not only epochs: trained afresh
    assert X.interrupted_elsewhere(other, ckpt)[1] is False


def test_a_train_only_sweep_evaluates_and_renders_nothing(tmp_path, monkeypatch, capsys):
    calls, rendered = [], []
    monkeypatch.setattr(X, "check_data", lambda cfgs: None)
    monkeypatch.setattr(X, "run_one", lambda cfg, *a: calls.append(a[-1]))  # the last argument: evaluate
    monkeypatch.setattr(X, "render", lambda item, *a, **k: rendered.append(item) or {})
    assert X.sweep(("hel-table7",), "ci", results_dir=tmp_path, checkpoint_dir=tmp_path / "c", train_only=True) == {}
    assert calls == [False, False] and rendered == []
    assert "(trained, not evaluated)" in capsys.readouterr().out


def test_list_counts_the_stale_runs_among_those_evaluated(tmp_path):
    import dataclasses

    e = X.get_experiment("hel-table7")
    old, current = e.runs("ci")
    for cfg in (old, current):
        _write(tmp_path, cfg, _evaluation(0.5, 0.1, 1.0, 1.0))
    folder = X.run_folder(old, tmp_path)  # a finished run made with one epoch more than today's config
    (folder / "config.json").write_text(json.dumps({**dataclasses.asdict(old), "epochs": old.epochs + 1}))
    (folder / "metrics.json").write_text(json.dumps({"finished": True, "epochs": []}))
    line = X.status(e, "ci", tmp_path, data={})
    assert line.startswith("2/2 ci runs evaluated (1 of them stale: made with earlier defaults; --retrain-stale)")


@pytest.mark.slow
def test_retrain_stale_trains_on_an_interrupted_run_of_a_provisional_budget(tmp_path, capsys):
    from poolvae.train import train

    provisional = X.make_config("polymnist-mini", "helvae", "ci", epochs=2)
    final = X.make_config("polymnist-mini", "helvae", "ci", epochs=3)
    runs, ckpt = tmp_path / "runs", tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(provisional, runs, ckpt, progress=False, stop_after_steps=5)  # interrupted in its second epoch
    assert X.interrupted_elsewhere(final, ckpt) == ("epochs: 2 there, 3 now", True)
    with pytest.raises(ValueError, match="another config"):  # without --retrain-stale it is another run
        X.run_one(final, runs, ckpt, evaluate=False)
    X.run_one(final, runs, ckpt, retrain_stale=True, evaluate=False)
    assert "extend " in capsys.readouterr().out
    m = json.loads((runs / run_path(final) / "metrics.json").read_text())
    assert m["finished"] and len(m["epochs"]) == 3
    shorter = X.make_config("polymnist-mini", "helvae", "ci", epochs=2, lr=2e-3)
    assert X.interrupted_elsewhere(shorter, ckpt)[1] is False  # another lr: trained afresh, not on


def _fails_for_mvae(cfg, *args):
    if cfg.method == "mvae":
        raise ValueError("mvae cannot")
    return cfg.method


def test_a_failing_run_is_reported_at_once_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(X, "check_data", lambda cfgs: None)
    monkeypatch.setattr(X, "run_one", _fails_for_mvae)  # the workers are forked: they see the patched function
    cfgs = [X.make_config("polymnist-mini", m, "ci") for m in ("mvae", "helvae", "mopoe")]
    with pytest.raises(RuntimeError, match=r"1 of 3 runs failed \(the others finished\):\nci/polymnist-mini/mvae"):
        X.execute("test", cfgs, "ci", jobs=2, executor="local", results_dir=tmp_path, checkpoint_dir=tmp_path)
    out = capsys.readouterr().out
    assert "mvae/beta=1/seed=0: FAILED (mvae cannot)" in out
    assert out.count(": done") == 2


def test_a_single_seed_cell_shows_its_bootstrap_interval_and_a_seeded_one_its_std(tmp_path):
    s, _ = _table7_summary(tmp_path)
    ours = s["cells"]["5"]["coherence/conditional"]["helvae"]["ours"]
    ours.update(interval=[0.79, 0.81], std=None)
    assert "| 0.800 [0.790, 0.810] (1) |" in X.table_markdown(s)
    row = next(r for r in X.table_csv(s).splitlines() if r.startswith("5,helvae,coherence/conditional,"))
    assert row.endswith(",cpu,0.79,0.81")
    ours.update(std=0.01, n=2)  # seeds: mean +- std, the interval stays in the json and csv only
    md = X.table_markdown(s)
    assert "| 0.800 ± 0.010 (1) |" in md and "[0.790, 0.810]" not in md
