"""Pairwise judging: verdict parsing, both-order aggregation, the Wilson interval, the offline judge,
and the reference each item is judged against (the human English, or the oracle answer for free-form tasks)."""

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


def free_form_rows(a_out, b_out, oracle, english):
    """qa rows as `llink eval generate` writes them: the oracle's answer is the reference."""
    out = []
    for i, (x, y, o, e) in enumerate(zip(a_out, b_out, oracle, english)):
        common = {"task": "qa", "instruction": "What is this text about? Answer in English.", "src": f"s{i}", "english": e,
                  "reference": o, "reference_kind": "oracle"}
        out += [{**common, "system": "A", "output": x}, {**common, "system": "B", "output": y}]
    return out


class Recording:
    """Records what it is shown; prefers the longer answer."""

    name = "recording"

    def __init__(self):
        self.items = []

    def __call__(self, items):
        self.items += items
        return Longer()(items)


def test_free_form_items_are_judged_against_the_oracle_answer():
    oracle, english = ["The text is about saving files.", "It explains the menu."], ["Save the file.", "Open the menu."]
    translate = rows(["Save it", "x"], ["y", "Open"], english)
    for r in translate:
        r["reference_kind"] = "human"
    j = Recording()
    r = pairwise(translate + free_form_rows(["long answer", "a"], ["b", "long answer"], oracle, english), "A", "B", j)
    assert {(i["instruction"], i["reference"], i["reference_kind"]) for i in j.items if i["reference_kind"] == "oracle"} == \
        {("What is this text about? Answer in English.", o, "oracle") for o in oracle}
    assert {i["reference"] for i in j.items if i["reference_kind"] == "human"} == set(english)
    assert len(j.items) == 2 * 4  # both orders of every item
    assert r["reference_kinds"] == ["human", "oracle"] and r["reference_kind_per_task"] == {"translate": "human", "qa": "oracle"}
    assert r["prompt"] == "judge_v1+judge_oracle_v1" and (r["wins"], r["ties"], r["losses"]) == (2, 0, 2)
    old = pairwise(rows(["x"], ["y"], ["r"]), "A", "B", Longer())  # an outputs.jsonl from before reference kinds: human
    assert old["reference_kinds"] == ["human"] and old["prompt"] == "judge_v1"


def test_rows_with_different_references_for_one_item_are_refused():
    mixed = free_form_rows(["a"], ["b"], ["oracle answer"], ["en"])
    mixed[1]["reference"] = "another run's oracle answer"
    with pytest.raises(LlinkError, match="different references"):
        pairwise(mixed, "A", "B", Longer())
    bad = free_form_rows(["a"], ["b"], ["o"], ["en"])
    for r in bad:
        r["reference_kind"] = "gold"
    with pytest.raises(LlinkError, match="reference kind"):
        pairwise(bad, "A", "B", Longer())


def test_the_oracle_prompt_says_what_the_reference_is():
    p = judge_prompt("What is this text about?", "It is about files.", "Files.", "", reference_kind="oracle")
    assert "Reference answer (from the English text): It is about files." in p and "reference translation" not in p
    assert "Answer 2:\n(empty)" in p and p.rstrip().endswith("1, 2, tie")
    body, ask = p.rsplit("\n\n", 1)  # LocalJudge's split: material, then the instruction
    assert ask == "Reply with exactly one of: 1, 2, tie" and "Request: What is this text about?" in body
    assert judge_prompt("T", "R", "a", "b") == judge_prompt("T", "R", "a", "b", reference_kind="human")
    with pytest.raises(LlinkError):
        judge_prompt("T", "R", "a", "b", reference_kind="gold")


def test_reference_judge_against_the_oracle_answer(tiny_dirs):
    from llink.encoders import load_encoder

    j = ReferenceJudge(load_encoder(tiny_dirs["encoder"]))
    assert "human" not in j.name
    oracle = ["The text is about saving files.", "It explains the file menu."]
    r = pairwise(free_form_rows(oracle, ["The quick brown fox.", "បើក​ឯកសារ"], oracle, ["Save.", "Menu."]), "A", "B", j)
    assert r["wins"] == 2 and r["losses"] == 0 and r["reference_kinds"] == ["oracle"]
    # an oracle that answered nothing leaves nothing to prefer, and does not crash the judge
    r = pairwise(free_form_rows(["Some answer.", "x y"], ["Another one.", "z w"], ["", ""], ["Save.", "Menu."]), "A", "B", j)
    assert r["n"] == 2


def test_eval_judge_cli_reports_the_reference_kinds(tmp_path, tiny_dirs):
    """A local (tiny, real) LM as judge: it sees the oracle prompt for the qa items."""
    import json

    from llink_app.__main__ import main

    oracle, english = ["The text is about saving files.", "It explains the menu."], ["Save the file.", "Open the menu."]
    translate = [{**r, "reference_kind": "human"} for r in rows(["Save it", "x"], ["y", "Open"], english)]
    f = tmp_path / "outputs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in translate + free_form_rows(["a", "b"], ["c", "d"], oracle, english)))
    assert main(["eval", "judge", "--outputs", str(f), "--a", "A", "--b", "B", "--judge", tiny_dirs["decoder"], "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "judge_A_vs_B.json").read_text())
    assert res["n"] == 4 and res["reference_kind_per_task"] == {"translate": "human", "qa": "oracle"}
    assert main(["eval", "judge", "--outputs", str(f), "--a", "A", "--b", "B", "--judge", tiny_dirs["decoder"], "--task", "qa",
                 "--out", str(tmp_path / "qa")]) == 0
    assert json.loads((tmp_path / "qa" / "judge_A_vs_B.json").read_text())["reference_kinds"] == ["oracle"]
