"""Generation metrics on hand-made cases: fidelity, the English check, numeric fidelity."""

import pytest

from llink.errors import LlinkError
from llink.eval.generate import fidelity, is_english, numeric_fidelity, translation_scores

REFS = ["Open the file menu.", "The quick brown fox.", "Save the document as a copy.", "Close this message."]


@pytest.fixture(scope="module")
def encoder(tiny_dirs):
    from llink.encoders import load_encoder

    return load_encoder(tiny_dirs["encoder"])


def test_is_english():
    assert is_english("Open the file.")
    assert not is_english("បើក​ឯកសារ")
    assert not is_english("")
    assert not is_english("12 34 !!")
    assert is_english("Save ឯ")  # 4 of 5 letters ASCII


def test_fidelity_exact_cases(encoder):
    assert fidelity(encoder, REFS, REFS) == 1.0
    assert fidelity(encoder, REFS[1:] + REFS[:1], REFS) == 0.0  # each output is exactly another reference
    assert fidelity(encoder, ["បើក​ឯកសារ"] + REFS[1:], REFS) == 0.75  # non-English output is a miss
    same = [REFS[0]] * 4
    assert fidelity(encoder, same, REFS) == 0.25  # a stock sentence hits at most its own reference
    with pytest.raises(LlinkError):
        fidelity(encoder, REFS[:1], REFS[:1])


def test_translation_scores_distinct_and_chrf(encoder):
    s = translation_scores(encoder, REFS, REFS)
    assert s["chrf"] == 100.0 and s["bleu"] == 100.0 and s["distinct_outputs"] == 4 and s["english"] == 1.0
    stock = translation_scores(encoder, ["The user can open a file."] * 4, REFS)
    assert stock["distinct_outputs"] == 1 and stock["chrf"] < 40


def test_numeric_fidelity_maps_khmer_digits():
    res = numeric_fidelity(["ទំហំ ៣០ MW", "គ្មាន​លេខ", "12 និង 7.5"], ["30 MW", "none", "12 and 7"])
    assert res == {"texts_with_numbers": 2, "numbers": 3, "kept": 2, "rate": round(2 / 3, 4)}
    assert numeric_fidelity(["no digits"], ["x"])["rate"] is None


def test_numeric_fidelity_with_references_counts_only_the_numbers_the_reference_keeps():
    # "ទំព័រទី ១" is "the first page": the 1 is not expected in the answer, the 30 is
    srcs = ["ទំព័រទី ១ មាន ៣០ ជួរ"]
    res = numeric_fidelity(srcs, ["The first page has 30 rows"], ["On the first page there are 30 rows"])
    assert (res["numbers"], res["kept"], res["rate"]) == (1, 1, 1.0)
    assert numeric_fidelity(srcs, ["The first page has 30 rows"])["numbers"] == 2
    assert numeric_fidelity(srcs, ["Three rows"], ["On the first page there are 30 rows"])["rate"] == 0.0


def test_cached_system_answers_once_per_call_and_key(tmp_path, monkeypatch):
    from llink.eval.generate import System, cached_system

    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path))
    calls = []

    def answer(srcs, instruction):
        calls.append((list(srcs), instruction))
        return [f"{instruction} {s} #{len(calls)}" for s in srcs]

    sys_ = cached_system(System("llink", answer), weights="a", max_new_tokens=32)
    first = sys_.answer(["ក", "ខ"], "Translate.")
    assert sys_.answer(["ក", "ខ"], "Translate.") == first and len(calls) == 1  # read back, not recomputed
    assert sys_.answer(["ក"], "Translate.") == ["Translate. ក #2"]  # another call (a subset): its own answers
    assert sys_.answer(["ក", "ខ"], "Summarise.")[0].startswith("Summarise.") and len(calls) == 3
    other = cached_system(System("llink", answer), weights="b", max_new_tokens=32)  # changed weights: a new key
    assert other.answer(["ក", "ខ"], "Translate.") != first and len(calls) == 4
    again = cached_system(System("llink", answer), weights="a", max_new_tokens=32)  # a new process, same key
    assert again.answer(["ក", "ខ"], "Translate.") == first and len(calls) == 4


def test_n_other_zero_is_translation_only(encoder, tmp_path):
    """`--n_other 0` used to answer every other task on an empty list (a torch shape error)."""
    from llink.data.io import Pair
    from llink.encoders import encode_cached
    from llink.eval.generate import System, evaluate_generation

    asked = []

    def answer(srcs, instruction):
        asked.append(instruction)
        return [REFS[0] for _ in srcs]

    pairs = [Pair(src=f"ក {i}", en=r) for i, r in enumerate(REFS)]
    res, rows = evaluate_generation([System("echo", answer)], encoder, pairs, ["summarise", "qa"], n_other=0, progress=False)
    assert len(asked) == 1 and {r["task"] for r in rows} == {"translate"} and "echo" in res
    assert encode_cached(encoder, []).shape == (0, encoder.dim)  # an empty batch keeps its width
