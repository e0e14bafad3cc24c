"""The demo's summary block in the README and its token-count plot."""

import pytest

from llink_app.demo.readme import update_readme
from llink_app.demo.report import summary_lines
from llink.errors import LlinkError
from llink.eval.plots import token_bars

METRICS = {
    "size": "smoke",
    "retrieval": {"llink": {"src2en": {"r1": 0.7, "mrr": 0.8}}, "encoder_ceiling": {"src2en": {"r1": 0.6, "mrr": 0.7}}},
    "generate": {"base": {"chrf": 3.0, "bleu": 0.1, "fidelity": 0.0, "distinct_outputs": 5},
                 "llink": {"chrf": 15.5, "bleu": 1.0, "fidelity": 0.3, "distinct_outputs": 9}},
    "prompt_tokens": {"base": 103.2, "llink": 35},
    "stage_b": {"usage": {"loss_true": 2.8, "loss_shuffled": 4.4, "loss_zeroed": 3.9}, "steps": 300},
    "judge": [{"judge": "reference", "b": "base", "win_rate": 0.9, "win_rate_ci95": [0.85, 0.94]}],
    "timings_s": {"stage A": 600.0, "stage B": 1260.0},
    "total_s": 1860.0,
}


def test_summary_lines_carry_the_numbers():
    text = "\n".join(summary_lines(METRICS))
    assert "| llink | 35 | 15.50 | 1.00 | 0.300 | 9 |" in text
    assert "| base | 103.2 | 3.00 |" in text
    assert "R@1 **0.700**" in text and "stage B 21.0" in text and "total **31.0**" in text


def test_timings_say_which_stages_were_reused_and_how_warm_the_caches_were():
    m = {**METRICS, "stage_a": {"steps": 1960, "resumed_from_step": 1960}, "stage_b": {**METRICS["stage_b"], "resumed_from_step": 150},
         "direct": {"steps": 300, "resumed_from_step": 0},
         "cache_rows": {"vectors": {"computed": 0, "reused": 27189}, "teacher": {"computed": 25148, "reused": 3000}}}
    text = "\n".join(summary_lines(m))
    assert "stage A 10.0 (reused from an earlier run)" in text
    assert "stage B 21.0 (resumed at step 150 of 300)" in text
    assert "direct finetune" not in text  # trained from scratch: nothing to say
    assert "encoder vectors 0 computed / 27,189 read from the cache" in text
    assert "teacher states (text × setting) 25,148 computed" in text
    assert "Caches" not in "\n".join(summary_lines(METRICS))  # older metrics render as before


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\nbefore\n<!-- demo:begin -->\nold numbers\n<!-- demo:end -->\nafter\n")
    (tmp_path / "run" / "slots").mkdir(parents=True)
    (tmp_path / "run" / "slots" / "curve.png").write_bytes(b"png")
    update_readme(METRICS, tmp_path / "run", readme)
    text = readme.read_text()
    assert text.startswith("# x\nbefore\n<!-- demo:begin") and text.endswith("<!-- demo:end -->\nafter\n")
    assert "old numbers" not in text and "15.50" in text
    assert (tmp_path / "docs" / "demo_stage_b.png").read_bytes() == b"png"
    update_readme(METRICS, tmp_path / "run", readme)  # idempotent: the block is found again
    assert readme.read_text() == text


def test_update_readme_refuses_a_readme_without_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# nothing to replace\n")
    with pytest.raises(LlinkError, match="demo:begin"):
        update_readme(METRICS, tmp_path, readme)
    assert readme.read_text() == "# nothing to replace\n"


def test_token_bars_writes_a_png(tmp_path):
    tok = {"en_mean": 8.1, "src_mean": 93.4, "slots": 8}
    path = token_bars(tok, tmp_path / "t.png", {"base": 103.2, "llink": 35})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_checks_the_readme_before_running(tmp_path):
    from llink_app.demo.pipeline import demo

    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    with pytest.raises(LlinkError, match="demo:begin"):
        demo(size="smoke", out=tmp_path / "run", readme=readme)
    assert not (tmp_path / "run").exists()  # nothing ran


def test_numbers_diagnostic_samples_dev_texts_that_share_a_number_with_their_reference(tmp_path):
    from llink.data.io import Pair
    from llink_app.demo.pipeline import _numbers
    from llink.eval.generate import System

    dev = [Pair("ចុច ៣ ដង", "Click 3 times"), Pair("ទំព័រទី ១", "The first page"), Pair("គ្មាន​លេខ", "No number"),
           Pair("ជ្រើស ២០ ជួរ", "Select 20 rows"), Pair("៥ " + "ពាក្យ " * 30, "5 " + "word " * 30)]
    refs = {p.src: p.en for p in dev}
    echo = System("echo", lambda srcs, instr: [refs[s] for s in srcs])
    mute = System("mute", lambda srcs, instr: ["nothing" for _ in srcs])
    res = _numbers([echo, mute], dev, 10, tmp_path / "numbers.jsonl")
    # only "3" and "20" qualify: "first page" drops its 1, "No number" has none, the 31-word one is too long
    assert (res["pairs"], res["eligible"]) == (2, 2)
    assert res["systems"]["echo"] == {"texts_with_numbers": 2, "numbers": 2, "kept": 2, "rate": 1.0,
                                      "names": {"texts_with_names": 0, "names": 0, "kept": 0, "rate": None}}
    assert res["systems"]["mute"]["rate"] == 0.0
    assert len((tmp_path / "numbers.jsonl").read_text().splitlines()) == 4
