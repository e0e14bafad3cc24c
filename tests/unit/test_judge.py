"""Pairwise judging: verdict parsing, both-order aggregation, the Wilson interval, the offline judge."""

import pytest

from llink.errors import LlinkError
from llink.eval.judge import ReferenceJudge, judge_prompt, pairwise, parse_verdict, wilson


def rows(a_out, b_out, refs):
    out = []
    for i, (x, y, r) in enumerate(zip(a_out, b_out, refs)):
        out += [{"system": "A", "task": "translate", "src": f"s{i}", "reference": r, "output": x},
                {"system": "B", "task": "translate", "src": f"s{i}", "reference": r, "output": y}]
    return out


class Positional:
    """A maximally position-biased judge: always prefers Answer 1."""

    name = "positional"

    def __call__(self, items):
        return [1] * len(items)


class Longer:
    name = "longer"

    def __call__(self, items):
        return [0 if len(i["answer_1"]) == len(i["answer_2"]) else (1 if len(i["answer_1"]) > len(i["answer_2"]) else 2) for i in items]


def test_parse_verdict():
    assert [parse_verdict(t) for t in ("1", " 2.", "Tie", "**1**", "banana", "")] == [1, 2, 0, 1, 0, 0]


def test_both_orders_turn_position_bias_into_ties():
    r = pairwise(rows(["x"] * 4, ["y"] * 4, ["r"] * 4), "A", "B", Positional())
    assert (r["wins"], r["ties"], r["losses"]) == (0, 4, 0) and r["win_rate"] == 0.5 and r["order_agreement"] == 0.0


def test_consistent_judge_counts_wins_losses_and_ties():
    r = pairwise(rows(["long answer", "s", "same", "long one"], ["s", "long answer", "same", "x"], ["r"] * 4), "A", "B", Longer())
    assert (r["wins"], r["ties"], r["losses"]) == (2, 1, 1) and r["win_rate"] == 0.625 and r["order_agreement"] == 1.0
    assert r["per_task"] == {"translate": {"wins": 2, "ties": 1, "losses": 1}}
    with pytest.raises(LlinkError, match="both"):
        pairwise(rows(["x"], ["y"], ["r"]), "A", "C", Longer())


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_reference_judge_prefers_the_reference_and_rejects_non_english(tiny_dirs):
    from llink.encoders import load_encoder

    j = ReferenceJudge(load_encoder(tiny_dirs["encoder"]))
    refs = ["Open the file menu.", "Save the document."]
    r = pairwise(rows(refs, ["The quick brown fox.", "បើក​ឯកសារ"], refs), "A", "B", j)
    assert r["wins"] == 2 and r["losses"] == 0


def test_judge_prompt_is_versioned_and_filled():
    p = judge_prompt("Translate to English.", "Open it.", "Open it.", "")
    assert "Reference translation of the text: Open it." in p and "Answer 2:\n(empty)" in p and p.rstrip().endswith("1, 2, tie")


def test_eval_judge_cli(tmp_path, capsys):
    from llink_app.__main__ import main

    f = tmp_path / "outputs.jsonl"
    f.write_text('{"system": "A"}\n')
    assert main(["eval", "judge", "--outputs", str(f)]) == 2
    assert "outputs.jsonl:1" in capsys.readouterr().err
    assert main(["eval", "judge", "--outputs", str(tmp_path / "none.jsonl")]) == 2
