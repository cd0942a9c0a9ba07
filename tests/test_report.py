"""The README's results section is generated from results/ and must be up to date."""

import json

from poolvae import report


def test_readme_results_section_is_up_to_date():
    assert report.update_readme(check=True), "README.md's results section is out of date: run `make readme`"


def test_section_reads_bench_and_table6(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "aggregators.json").write_text(json.dumps({
        "B": 256, "D": 512, "M": [2, 5], "threads": 2,
        "ratio_to_poe": {"poe": {"2": 1.0, "5": 1.0}, "mopoe": {"2": 1.5, "5": "skipped: too big"}},
        "growth_exponent_in_M": {"poe": 0.5}}))
    (tmp_path / "hel-table6.json").write_text(json.dumps({
        "scale": "cpu", "dataset": "polymnist-mini", "threads": 2, "helvae_pooling_share_of_step": 0.012,
        "methods": {"helvae": {"seconds_per_batch": 0.5, "ratio_to_helvae": 1.0},
                    "mopoe": {"seconds_per_batch": 0.75, "ratio_to_helvae": 1.5}}}))
    text = report.section(tmp_path)
    assert "| mopoe | 1.50 | skipped | — |" in text
    assert "| mopoe | 0.750 | 1.50 |" in text and "1.2% of HELVAE's training step" in text
    assert "`hel-table8`: no runs yet" in text


def test_update_rewrites_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nOLD-CONTENT\n{report.END}\noutro\n")
    assert not report.update_readme(readme, tmp_path)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "OLD-CONTENT" not in text
    assert report.update_readme(readme, tmp_path, check=True)


def _run_eval(folder, epochs: int, cond: float, uncond: float) -> None:
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({
        "run": {"epochs": epochs},
        "metrics": {"coherence": {"conditional": {"overall": cond}, "unconditional": uncond}}}))


def test_section_puts_each_diagnostic_run_beside_the_scales_run(tmp_path):
    assert "No diagnostic runs yet" in report.section(tmp_path)
    rel = "cpu/polymnist-mini/helvae/beta=2.5/seed=0"
    _run_eval(tmp_path / "runs" / rel, 60, 0.25, 0.0412)
    _run_eval(tmp_path / "diagnostics" / "epochs=180" / "runs" / rel, 180, 0.75, 0.2)
    # a diagnostic run without a run of the scale's settings has nothing to stand beside: left out
    _run_eval(tmp_path / "diagnostics" / "epochs=180" / "runs" / rel.replace("helvae", "mopoe"), 180, 0.5, 0.1)
    text = report.section(tmp_path)
    assert "`results/diagnostics/epochs=180`" in text
    assert f"| {rel} | 60 → 180 | 0.250 → 0.750 | 0.041 → 0.200 |" in text
    assert "mopoe" not in text.split("### Diagnostics")[1].split("### Cost")[0]
    # a diagnostic may name its baseline, or none (runs kept for reference)
    _run_eval(tmp_path / "diagnostics" / "epochs=60" / "runs" / rel, 60, 0.3, 0.05)
    (tmp_path / "diagnostics" / "epochs=60" / "diagnostic.json").write_text(
        json.dumps({"beside": None, "about": "the first budget's runs"}))
    (tmp_path / "diagnostics" / "epochs=180" / "diagnostic.json").write_text(
        json.dumps({"beside": "diagnostics/epochs=60/runs"}))
    text = report.section(tmp_path)
    assert "`results/diagnostics/epochs=60`: 1 runs kept for reference: the first budget's runs" in text
    assert f"| {rel} | 60 → 180 | 0.300 → 0.750 | 0.050 → 0.200 |" in text
    assert "beside those in `results/diagnostics/epochs=60/runs`" in text
    assert "`results/diagnostics/epochs=180` (book chapter 9): the same runs with another setting, beside" in text
    # and it may say what it changes and which chapter reads it
    (tmp_path / "diagnostics" / "epochs=180" / "diagnostic.json").write_text(
        json.dumps({"beside": "diagnostics/epochs=60/runs", "chapter": 11, "about": "three times the epochs"}))
    assert ("`results/diagnostics/epochs=180` (book chapter 11): the same runs with another setting: three times "
            "the epochs, beside") in report.section(tmp_path)


def test_table6_columns_in_the_papers_order_with_the_papers_ratios(tmp_path):
    """The by-column table: PolyMNIST, CUB, CelebA (whatever the file's key order), synthetic ones starred, our
    ratio beside the paper's seconds divided by its HELVAE's."""
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "hel-table6.json").write_text(json.dumps({"cells": [
        {"dataset": d, "method": m, "mean": v} for d, m, v in
        [("cub", "helvae", 0.2), ("cub", "mvae", 0.5), ("polymnist", "helvae", 0.1), ("polymnist", "mvae", 0.3)]]}))
    rows = {"helvae": {"seconds_per_batch": 1.0, "ratio_to_helvae": 1.0},
            "mvae": {"seconds_per_batch": 1.25, "ratio_to_helvae": 1.25}}
    (tmp_path / "hel-table6.json").write_text(json.dumps({
        "scale": "cpu", "dataset": "polymnist-mini", "threads": 1, "methods": rows,
        "columns": {"celeba": {"paper_column": "CelebA (M = 2)", "batches": "synthetic", "methods": rows},
                    "cub": {"paper_column": "CUB (M = 2)", "batches": "synthetic", "methods": rows},
                    "polymnist": {"paper_column": "PolyMNIST (M = 5)", "batches": "real", "methods": rows}}}))
    text = report.section(tmp_path)
    assert "| method | PolyMNIST (M = 5) ours | paper | CUB (M = 2)* ours | paper | CelebA (M = 2)* ours | paper |" \
        in text
    assert "| mvae | 1.25 | 3.00 | 1.25 | 2.50 | 1.25 |  |" in text


def test_section_counts_each_items_stale_runs(tmp_path):
    summary = {"scale": "cpu", "runs_found": 3, "runs_expected": 5,
               "runs_stale": {"cpu/polymnist-mini/helvae/beta=1/seed=0": "epochs: 60 there, 65 now"}}
    (tmp_path / "hel-table8.json").write_text(json.dumps(summary))
    (tmp_path / "hel-fig6.json").write_text(json.dumps({**summary, "runs_stale": {}}))
    text = report.section(tmp_path)
    assert "`hel-table8`: 3 of 5 runs at scale `cpu` (1 stale: made with earlier defaults" in text
    assert "`hel-fig6`: 3 of 5 runs at scale `cpu` - figures/hel-fig6.png" in text
