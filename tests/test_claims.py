"""The claims ledger: at least 25 quoted claims, verdicts computed from results (they change when the results do),
'not run' with a reason where the data is missing, and quotes that are really in the papers."""

import json
import re
import shutil
from pathlib import Path

import pytest

from poolvae import claims as C
from poolvae.artefacts import REPO_ROOT, RESULTS_DIR

PAPERS = REPO_ROOT.parent / "shared" / "papers"


def test_the_ledger_has_at_least_25_claims_with_their_fields():
    assert len(C.CLAIMS) >= 25
    assert len({c.id for c in C.CLAIMS}) == len(C.CLAIMS)
    for c in C.CLAIMS:
        assert c.quote and c.source.split()[0] in ("HEL", "WB") and c.kind in C.KINDS and c.how


def _letters(text: str) -> str:
    """Lower-case letters only: quotes and paper text compare without maths markup, spaces or punctuation."""
    text = re.sub(r"\\(rightarrow|to|mathcal|mathbf|boldsymbol|mathrm|text)\b", " ", text.replace("->", " "))
    return "".join(ch for ch in text.lower() if ch.isalpha())


@pytest.mark.skipif(not PAPERS.exists(), reason="the papers are in ../shared/papers (beside the repository)")
def test_every_quote_is_in_its_paper():
    papers = {"HEL": _letters((PAPERS / "hellinger-multimodal-vae.md").read_text()),
              "WB": _letters((PAPERS / "barycentric-multimodal-vae.md").read_text())}
    for c in C.CLAIMS:
        paper = papers[c.source.split()[0]]
        # "..." marks a cut and "[...]" an insertion that names the subject; every piece must be in the paper
        pieces = [p for p in re.split(r"\.\.\.|\[[^\]]*'s\]|\[[^\]]*\]", c.quote) if len(_letters(p)) > 8]
        assert pieces, c.id
        for piece in pieces:
            assert _letters(piece) in paper, (c.id, piece)


def _table_item(tmp: Path, name: str, scale: str, values: dict[str, dict[str, float]], metric: str) -> None:
    """A rendered table item with our means per beta and method."""
    cells = {b: {metric: {m: {"ours": {"mean": v, "n": 1, "std": None}} for m, v in row.items()}}
             for b, row in values.items()}
    obj = {"item": name, "scale": scale, "runs_found": 1, "runs_expected": 1, "cells": cells,
           "methods": list(next(iter(values.values())))}
    (tmp / f"{name}.json").write_text(json.dumps(obj))


def _verdict(claim_id: str, scale: str, results: Path) -> dict:
    claim = next(c for c in C.CLAIMS if c.id == claim_id)
    return claim.check(scale, results).as_dict()


def test_a_trained_verdict_follows_the_numbers(tmp_path):
    first = {b: {"helvae": 0.9, "mvae": 0.5, "mmvae": 0.7} for b in C.TABLE8_BETAS}
    _table_item(tmp_path, "hel-table8", "cpu", first, "coherence/conditional")
    v = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert v["verdict"] == "holds" and v["evidence"]["ranks"] == dict.fromkeys(C.TABLE8_BETAS, 1)
    second = dict(first, **{"5": {"helvae": 0.6, "mvae": 0.5, "mmvae": 0.7}})
    _table_item(tmp_path, "hel-table8", "cpu", second, "coherence/conditional")
    v = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert v["verdict"] == "does not hold" and v["evidence"]["ranks"]["5"] == 2
    assert _verdict("hel-mvae-poor-coherence", "cpu", tmp_path)["verdict"] == "holds"  # last of 3 everywhere


def test_a_missing_or_other_scale_item_is_not_run_with_a_reason(tmp_path):
    v = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert v["verdict"] == "not run" and "make reproduce-hel-table8" in v["reason"]
    _table_item(tmp_path, "hel-table8", "ci", {b: {"helvae": 0.9, "mvae": 0.5} for b in C.TABLE8_BETAS},
                "coherence/conditional")
    v = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert v["verdict"] == "not run" and "'ci'" in v["reason"]
    v = _verdict("hel-helvae-highest-conditional-coherence", "paper", tmp_path)
    assert v["verdict"] == "not run" and "accelerator" in v["reason"]
    v = _verdict("wb-mst-mwb-superior", "cpu", tmp_path)
    assert v["verdict"] == "not run" and "MNIST-SVHN-Text" in v["reason"]


def test_stale_runs_are_named_in_the_reason_and_make_the_verdict_provisional(tmp_path):
    _table_item(tmp_path, "hel-table8", "cpu", {b: {"helvae": 0.9, "mvae": 0.5} for b in C.TABLE8_BETAS},
                "coherence/conditional")
    fresh = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert fresh["provisional"] is False and C.verdict_text(fresh) == "holds"
    f = tmp_path / "hel-table8.json"
    obj = json.loads(f.read_text())
    obj["runs_stale"] = {"cpu/polymnist-mini/mvae/beta=1/seed=0": "epochs: 60 there, 200 now"}
    f.write_text(json.dumps(obj))
    stale = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)
    assert "1 of its 1 runs are stale" in stale["reason"] and stale["provisional"] is True
    assert C.verdict_text(stale) == stale["verdict"] + " *"
    obj["own_budget"] = {"codevae": "why"}
    f.write_text(json.dumps(obj))
    reason = _verdict("hel-helvae-highest-conditional-coherence", "cpu", tmp_path)["reason"]
    assert reason.endswith("runs are stale (made with earlier defaults); codevae trained to a smaller budget of "
                           "its own")


def test_exact_figure_claims_read_the_computed_claims(tmp_path):
    shutil.copy(RESULTS_DIR / "hel-fig7.json", tmp_path / "hel-fig7.json")
    v = _verdict("hel-moe-slightly-better-without-bad", "cpu", tmp_path)
    assert v["verdict"] == "does not hold" and "identical good experts" in v["reason"]
    obj = json.loads((tmp_path / "hel-fig7.json").read_text())
    for c in obj["claims"]:
        c["holds"] = True
    (tmp_path / "hel-fig7.json").write_text(json.dumps(obj))
    assert _verdict("hel-moe-slightly-better-without-bad", "cpu", tmp_path)["verdict"] == "holds"
    assert _verdict("hel-poe-performs-poorly", "cpu", tmp_path)["verdict"] == "not run"  # no hel-fig2 there


def test_exact_checks_give_the_same_verdict_at_every_scale():
    for c in C.CLAIMS:
        if c.kind == "exact":
            a, b = (c.check(s, RESULTS_DIR).verdict for s in C.SCALES)
            assert a == b, c.id


def test_the_wb_half_claim_holds_for_two_experts_only():
    v = C._wb_sharper_than_half(RESULTS_DIR)
    assert v.verdict == "holds" and v.evidence["share_by_M"][2] == 1.0 and v.evidence["share_by_M"][3] < 1.0


def test_linear_fit_r2_by_hand():
    assert C._linear_fit_r2([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.0)
    y = [0.0, 1.0, 0.0, 1.0]  # best line 0.2 x; residuals by hand: SS_res = 0.8, SS_tot = 1.0
    assert C._linear_fit_r2(y) == pytest.approx(0.2)


def test_write_claims_writes_json_and_markdown(tmp_path):
    for name in ("hel-fig1", "hel-fig2", "hel-fig7"):
        shutil.copy(RESULTS_DIR / f"{name}.json", tmp_path / f"{name}.json")
    obj = C.write_claims(tmp_path)
    stored = json.loads((tmp_path / "claims.json").read_text())
    assert len(stored["claims"]) == len(C.CLAIMS) >= 25
    for c in stored["claims"]:
        assert {"id", "quote", "source", "verdict"} <= set(c)
        for s in C.SCALES:
            assert c["verdict"][s]["verdict"] in C.VERDICTS and c["verdict"][s]["reason"]
    assert sum(obj["counts"]["cpu"].values()) == len(C.CLAIMS)
    assert obj["provisional"] == {"cpu": 0, "paper": 0}  # no trained item here, so nothing rests on stale runs
    md = (tmp_path / "claims.md").read_text()
    assert md.startswith("# Which claims hold") and f"`{C.CLAIMS[0].id}`" in md


def test_committed_ledger_is_up_to_date():
    """results/claims.json is what the code computes from the committed results (run `make claims` otherwise)."""
    stored = json.loads((RESULTS_DIR / "claims.json").read_text())
    fresh = C.evaluate_claims(RESULTS_DIR)
    assert [(c["id"], {s: c["verdict"][s]["verdict"] for s in C.SCALES}) for c in stored["claims"]] == \
        [(c["id"], {s: c["verdict"][s]["verdict"] for s in C.SCALES}) for c in fresh]


def test_the_counts_line_says_how_many_verdicts_are_provisional():
    def claim(verdict, provisional):
        return {"verdict": {"cpu": {"verdict": verdict, "provisional": provisional}}}

    claims = [claim("holds", True), claim("holds", False), claim("does not hold", True), claim("not run", False)]
    assert C.counts_line(claims, "cpu") == "2 hold, 1 do not hold, 1 not run (2 provisional *)"
    assert C.counts_line(claims[1:2], "cpu") == "1 hold, 0 do not hold, 0 not run"
    md = C.claims_markdown([{"id": "x", "quote": "q", "source": "s", "kind": "trained",
                             "verdict": {"cpu": {"verdict": "holds", "provisional": True, "reason": "r"},
                                         "paper": {"verdict": "not run", "provisional": False, "reason": "r"}}}])
    assert "| holds * | not run |" in md and C.PROVISIONAL_NOTE in md
