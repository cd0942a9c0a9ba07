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
