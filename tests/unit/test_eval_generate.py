"""Generation metrics on hand-made cases: fidelity, the English check, numeric fidelity; free-form
understanding against the oracle (the frozen decoder reading the English) on the tiny models."""

import numpy as np
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


def test_numeric_fidelity_reads_every_scripts_digits_in_sources_and_outputs():
    from llink.eval.generate import source_numbers

    assert source_numbers("໑໐ ແລະ ៣.៥ and ٤٢") == ["10", "3.5", "42"]  # Lao, Khmer, Arabic-Indic
    srcs = ["ราคา ๓๐ บาท", "कुल ४२ और ७.५", "ဈေး ၁၂", "٣ تفاح"]  # Thai, Devanagari, Myanmar, Arabic-Indic
    outs = ["30 baht", "total 42 and 7", "၁၂ kyat", "three apples"]  # the Myanmar digits of an answer count too
    assert numeric_fidelity(srcs, outs) == {"texts_with_numbers": 4, "numbers": 5, "kept": 3, "rate": 0.6}


def test_names_are_capitalised_words_and_the_sources_latin_tokens():
    from llink.eval.generate import reference_names

    # not the first word nor a sentence's first, not a function word
    assert reference_names("ក", "Click Save. Then the Calc window opens. If you want, use Writer.") == ["Save", "Calc", "Writer"]
    # the source's Latin-script tokens that the reference has as whole words; numbers are not names
    assert reference_names("=SUM(A1) ត្រឡប់ ៣ ជាមួយ ctrl និង xyz", "=SUM(A1) returns 3 with ctrl.") == ["A1", "SUM", "ctrl"]
    assert reference_names("ក", "Add New Rule") == []  # Title Case: a label, its words are no names
    assert reference_names("ប្រើ Firefox", "Use Firefox") == ["Firefox"]  # ... but a source token still is


def test_names_kept_counts_whole_case_sensitive_words():
    from llink.eval.generate import names_kept

    srcs = ["បើក Firefox ហើយចុច យល់ព្រម", "ចុច ctrl", "រក្សាទុកឯកសារ", "បន្ថែមច្បាប់ថ្មី"]
    refs = ["Open Firefox and click OK.", "Press ctrl to copy.", "The file is saved.", "Add New Rule"]
    outs = ["Open Firefox and click Ok.", "press Ctrl to copy", "The file is saved.", "Add new rule"]
    assert names_kept(srcs, outs, refs) == {"texts_with_names": 2, "names": 3, "kept": 1, "rate": 0.3333}
    assert names_kept(["ក"], ["Saved in Calc"], ["Click Save in the Calc window."])["kept"] == 1  # "Saved" is not "Save"
    assert names_kept(["ក"], ["x"], ["The file."]) == {"texts_with_names": 0, "names": 0, "kept": 0, "rate": None}


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
    assert res["echo"]["names"] == {"texts_with_names": 0, "names": 0, "kept": 0, "rate": None}  # REFS have no names
    assert encode_cached(encoder, []).shape == (0, encoder.dim)  # an empty batch keeps its width


# -- free-form understanding, scored against the oracle (the frozen decoder reading the English) --

KM = ["ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។", "បើក​ម៉ឺនុយ​ឯកសារ ហើយ​ជ្រើស​រក្សា​ទុក​ជា", "ចុច​ប៊ូតុង", "បើក​ឯកសារ"]


def test_own_closest_exact_on_hand_made_vectors():
    from llink.eval.generate import own_closest

    refs = np.eye(3, dtype=np.float32)
    assert own_closest(refs, refs) == 1.0
    assert own_closest(np.roll(refs, 1, axis=0), refs) == 0.0  # each answer is exactly another item's reference
    near = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.5, 0.5, 0]], np.float32)  # the third is as close to ref 0 as to ref 1
    assert own_closest(near, refs) == 2 / 3
    assert own_closest(near, refs, ok=[True, False, True]) == 1 / 3  # a non-English answer is a miss
    assert own_closest(refs * 5, refs) == 1.0  # cosine: lengths do not matter
    dup = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]], np.float32)  # items 0 and 1 have the same reference
    assert own_closest(dup, dup) == 1 / 3  # no answer is strictly closer to one copy than to the other
    with pytest.raises(LlinkError):
        own_closest(refs[:1], refs[:1])
    with pytest.raises(LlinkError):
        own_closest(refs[:2], refs)


def test_understanding_scores_exact_on_texts(encoder):
    from llink.eval.generate import mean_over_tasks, understanding_scores

    same = understanding_scores(encoder, REFS, REFS)
    assert same["chrf"] == 100.0 and same["oracle_fidelity"] == 1.0 and same["english"] == 1.0 and abs(same["cosine"] - 1) < 1e-4
    assert understanding_scores(encoder, REFS[1:] + REFS[:1], REFS)["oracle_fidelity"] == 0.0  # everyone answers another item
    one_khmer = understanding_scores(encoder, ["បើក​ឯកសារ"] + REFS[1:], REFS)
    assert one_khmer["oracle_fidelity"] == 0.75 and one_khmer["english"] == 0.75
    assert abs(one_khmer["cosine"] - 0.75) < 1e-4  # the non-English answer counts 0, the others 1
    stock = understanding_scores(encoder, [REFS[0]] * 4, REFS)
    assert stock["oracle_fidelity"] == 0.25 and stock["chrf"] < 50
    repeated = understanding_scores(encoder, REFS, [REFS[0], REFS[0], REFS[2], REFS[3]])  # the oracle said the same twice
    assert repeated["oracle_fidelity"] == 0.5
    assert understanding_scores(encoder, REFS[:1], REFS[:1])["oracle_fidelity"] is None  # one item: nothing to rank against
    assert understanding_scores(encoder, ["x", "y"], ["", ""])["chrf"] == 0.0  # an oracle that said nothing does not crash
    agg = mean_over_tasks({"qa": {"chrf": 10.0, "cosine": 0.5, "oracle_fidelity": 0.25},
                           "bullets": {"chrf": 20.0, "cosine": 0.7, "oracle_fidelity": None}})
    assert agg == {"chrf": 15.0, "cosine": 0.6, "oracle_fidelity": 0.25}


def test_system_reads_src_or_en():
    from llink.eval.generate import System

    assert System("x", lambda t, i: list(t)).reads == "src"
    with pytest.raises(LlinkError, match="reads"):
        System("x", lambda t, i: list(t), reads="km")


def test_without_an_oracle_the_other_tasks_keep_the_human_reference(encoder):
    from llink.data.io import Pair
    from llink.eval.generate import System, evaluate_generation

    pairs = [Pair(src=f"ក {i}", en=r) for i, r in enumerate(REFS)]
    res, rows = evaluate_generation([System("echo", lambda t, i: [REFS[0] for _ in t])], encoder, pairs, ["qa"], n_other=2, progress=False)
    assert "understanding" not in res["echo"]
    qa = [r for r in rows if r["task"] == "qa"]
    assert [r["reference"] for r in qa] == REFS[:2] and {r["reference_kind"] for r in qa} == {"human"}
    assert [r["english"] for r in qa] == REFS[:2]


def test_evaluate_generation_scores_answers_against_the_oracle_not_the_english(encoder):
    """Hand-made systems whose scores are known: one gives the oracle's answer, one another item's, one Khmer."""
    from llink.data.io import Pair
    from llink.eval.generate import System, evaluate_generation

    pairs = [Pair(src=k, en=e) for k, e in zip(KM, REFS)]
    en_of = dict(zip(KM, REFS))
    about = lambda en: f"It says: {en.lower()}"  # noqa: E731
    oracle = System("english", lambda texts, instr: [about(t) for t in texts], reads="en", oracle=True)
    right = System("right", lambda srcs, instr: [about(en_of[s]) if instr != "Translate to English." else en_of[s] for s in srcs])
    shifted = System("shifted", lambda srcs, instr: [about(en_of[KM[(KM.index(s) + 1) % 4]]) for s in srcs])
    khmer = System("khmer", lambda srcs, instr: list(srcs))
    res, rows = evaluate_generation([right, shifted, oracle, khmer], encoder, pairs, ["qa", "bullets"], n_other=4, progress=False)
    assert list(res) == ["right", "shifted", "khmer"]
    assert res["right"]["chrf"] == 100.0  # translation: still against the human English
    for task in ("qa", "bullets"):
        r, s, k = (res[n]["understanding"]["tasks"][task] for n in ("right", "shifted", "khmer"))
        assert r["chrf"] == 100.0 and r["oracle_fidelity"] == 1.0 and abs(r["cosine"] - 1) < 1e-4
        assert s["oracle_fidelity"] == 0.0 and s["chrf"] < 100
        assert k == {"chrf": 0.0, "cosine": 0.0, "oracle_fidelity": 0.0, "english": 0.0}
    assert res["right"]["understanding"]["mean"]["oracle_fidelity"] == 1.0
    qa = [r for r in rows if r["task"] == "qa" and r["system"] == "khmer"]
    assert [r["reference"] for r in qa] == [about(e) for e in REFS] and {r["reference_kind"] for r in qa} == {"oracle"}
    assert [r["english"] for r in qa] == REFS
    assert [r["output"] for r in rows if r["system"] == "english" and r["task"] == "bullets"] == [about(e) for e in REFS]
    with pytest.raises(LlinkError, match="more than one"):
        evaluate_generation([oracle, System("english2", oracle.answer, reads="en", oracle=True)], encoder, pairs, ["qa"], n_other=2, progress=False)


def test_without_translation_only_the_other_tasks_run(encoder):
    """Passages are too long to translate in 32 tokens: translate=False answers the other tasks only."""
    from llink.data.io import Pair
    from llink.eval.generate import System, evaluate_generation

    pairs = [Pair(src=k, en=e) for k, e in zip(KM, REFS)]
    asked = []
    oracle = System("english", lambda texts, instr: [f"It says: {t}" for t in texts], reads="en", oracle=True)
    echo = System("echo", lambda srcs, instr: asked.append(instr) or [f"It says: {dict(zip(KM, REFS))[s]}" for s in srcs])
    res, rows = evaluate_generation([echo, oracle], encoder, pairs, ["summarise", "qa"], n_other=4, progress=False, translate=False)
    assert "Translate to English." not in asked and len(asked) == 2
    assert set(res["echo"]) == {"understanding", "seconds"} and res["echo"]["understanding"]["mean"]["oracle_fidelity"] == 1.0
    assert {r["task"] for r in rows} == {"summarise", "qa"}
    with pytest.raises(LlinkError, match="translate=False"):
        evaluate_generation([echo], encoder, pairs, ["qa"], n_other=4, progress=False, translate=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_dirs, encoder):
    import torch

    from benchmarks.support import untrained_stage_b
    from llink.decoders import load_decoder

    torch.manual_seed(0)
    return untrained_stage_b(tiny_dirs["encoder"], encoder, tiny_dirs["decoder"], load_decoder(tiny_dirs["decoder"]), k=4)


def test_the_english_system_is_base_reading_the_english_text(tiny_model, monkeypatch):
    from llink.eval.generate import OTHER_TASKS, llink_systems
    from llink.prompts import PromptBuilder

    prompts = []
    chat = PromptBuilder.chat

    def recording_chat(self, instruction, passage=None, *a, **kw):  # the real builder; the prompt it built is kept
        enc = chat(self, instruction, passage, *a, **kw)
        prompts.append(self.tok.decode(enc.input_ids))
        return enc

    monkeypatch.setattr(PromptBuilder, "chat", recording_chat)
    systems = {s.name: s for s in llink_systems(tiny_model, max_new_tokens=3, batch_size=4, english=True)}
    assert set(systems) == {"base", "llink", "llink_shuffled", "english"}
    assert set(s.name for s in llink_systems(tiny_model)) == {"base", "llink", "llink_shuffled"}  # the oracle is asked for
    english = systems["english"]
    assert english.reads == "en" and all(s.reads == "src" for n, s in systems.items() if n != "english")
    en = REFS[:2]
    out = english.answer(en, OTHER_TASKS["qa"])
    assert len(prompts) == 2 and all(e in p and OTHER_TASKS["qa"] in p for e, p in zip(en, prompts))
    assert not any(k in p for k in KM for p in prompts)
    # exactly the base system (frozen decoder, no adapter), fed the English instead of the Khmer
    assert systems["base"].answer(en, OTHER_TASKS["qa"]) == out


def test_evaluate_generation_scores_every_system_against_the_oracle(tiny_model, encoder):
    from llink.data.io import Pair
    from llink.eval.generate import OTHER_TASKS, System, evaluate_generation, llink_systems, oracle_summary

    pairs = [Pair(src=k, en=e) for k, e in zip(KM, REFS)]
    systems = llink_systems(tiny_model, max_new_tokens=3, batch_size=4, english=True)
    english = next(s for s in systems if s.name == "english")
    read = []
    spy = System("english", lambda texts, instr: read.append(list(texts)) or english.answer(texts, instr), reads="en", oracle=True)
    systems = [spy if s.name == "english" else s for s in systems]
    res, rows = evaluate_generation(systems, encoder, pairs, ["qa", "summarise"], n_other=3, progress=False)
    assert read == [REFS[:3], REFS[:3]]  # the oracle read the English, once per task, and did not translate
    assert set(res) == {"base", "llink", "llink_shuffled"}  # the oracle is no competitor
    oracle = {t: english.answer(REFS[:3], OTHER_TASKS[t]) for t in ("qa", "summarise")}
    for name, r in res.items():
        assert {"chrf", "bleu", "fidelity", "distinct_outputs", "numeric"} <= set(r), name  # translation as before
        u = r["understanding"]
        assert u["reference"] == "english" and u["n"] == 3 and set(u["tasks"]) == {"qa", "summarise"}
        for t in u["tasks"].values():
            assert set(t) == {"chrf", "cosine", "oracle_fidelity", "english"} and 0 <= t["chrf"] <= 100 and 0 <= t["oracle_fidelity"] <= 1
        assert u["mean"]["chrf"] == round((u["tasks"]["qa"]["chrf"] + u["tasks"]["summarise"]["chrf"]) / 2, 2)
    for r in rows:
        if r["task"] == "translate":
            assert r["reference_kind"] == "human" and r["reference"] == REFS[KM.index(r["src"])] and "english" not in r
        else:
            i = KM.index(r["src"])
            assert r["reference_kind"] == "oracle" and r["english"] == REFS[i] and r["reference"] == oracle[r["task"]][i]
            assert r["instruction"] == OTHER_TASKS[r["task"]]
    mine = [r for r in rows if r["system"] == "english"]
    assert len(mine) == 6 and {r["task"] for r in mine} == {"qa", "summarise"} and all(r["output"] == r["reference"] for r in mine)
    # the base system's qa answers, scored by hand against the oracle's
    base_qa = [r["output"] for r in rows if r["system"] == "base" and r["task"] == "qa"]
    from llink.eval.generate import understanding_scores

    assert res["base"]["understanding"]["tasks"]["qa"] == understanding_scores(encoder, base_qa, oracle["qa"])
    summary = oracle_summary(encoder, rows)
    assert set(summary) == {"qa", "summarise"} and summary["qa"]["n"] == 3 and summary["qa"]["chrf"] in (0.0, 100.0)

    # left out of the systems, the oracle still answers: its answers stay the reference, its rows are not saved
    res2, rows2 = evaluate_generation([s for s in systems if s.name == "base"], encoder, pairs, ["qa"], n_other=3, progress=False,
                                      oracle=english)
    assert set(res2) == {"base"} and {r["system"] for r in rows2} == {"base"}
    assert [r["reference"] for r in rows2 if r["task"] == "qa"] == oracle["qa"]
    assert res2["base"]["understanding"]["tasks"]["qa"] == res["base"]["understanding"]["tasks"]["qa"]
    with pytest.raises(LlinkError, match="oracle"):
        evaluate_generation(systems[:1], encoder, pairs, ["qa"], n_other=3, progress=False, oracle=systems[0])


def test_print_generation_shows_the_understanding_table_and_marks_the_oracle(capsys):
    from llink_app.evaluate import print_generation

    tr = {"chrf": 20.0, "bleu": 3.0, "fidelity": 0.5, "distinct_outputs": 4, "english": 1.0, "numeric": {"rate": None}}
    u = {"reference": "english", "n": 4, "tasks": {"qa": {"chrf": 30.0, "cosine": 0.8, "oracle_fidelity": 0.25, "english": 1.0}},
         "mean": {"chrf": 30.0, "cosine": 0.8, "oracle_fidelity": 0.25}}
    print_generation({"base": tr}, None)
    assert "Understanding" not in capsys.readouterr().out  # translation only: one table
    print_generation({"llink": {**tr, "understanding": u}},
                     {"qa": {"n": 4, "distinct_outputs": 3, "chrf": 100.0, "cosine": 1.0, "oracle_fidelity": 0.5, "english": 1.0}})
    out = capsys.readouterr().out
    assert "Understanding" in out and "oracle-fid" in out
    assert any(l.startswith("llink") and "qa" in l and "30.00" in l and "0.250" in l for l in out.splitlines())
    assert any(l.startswith("llink") and "mean" in l for l in out.splitlines())
    assert any(l.startswith("english (oracle)") and "100.00" in l and "3 distinct" in l for l in out.splitlines())


def test_eval_generate_cli_runs_the_oracle_and_writes_the_understanding_scores(tiny_dirs, tmp_path, capsys):
    import json

    from benchmarks.support import untrained_artifact
    from llink_app.__main__ import main

    art = untrained_artifact(tiny_dirs["encoder"], tiny_dirs["decoder"], tmp_path / "llink", k=4)
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{k}\t{e}\n" for k, e in zip(KM, REFS)), encoding="utf-8")
    base = ["eval", "generate", "--model", str(art), "--data", str(data), "--n", "4", "--max_new_tokens", "2", "--batch_size", "4"]
    assert main([*base, "--tasks", "qa,bullets", "--n_other", "3", "--out", str(tmp_path / "all")]) == 0
    printed = capsys.readouterr().out
    assert "Understanding" in printed and "english (oracle)" in printed
    report = json.loads((tmp_path / "all" / "generate.json").read_text())
    assert set(report["generate"]) == {"base", "llink", "llink_shuffled"}  # english is the oracle, not a competitor
    for r in report["generate"].values():
        assert set(r["understanding"]["tasks"]) == {"qa", "bullets"} and r["understanding"]["reference"] == "english"
        assert set(r["understanding"]["mean"]) == {"chrf", "cosine", "oracle_fidelity"}
    assert set(report["understanding_oracle"]) == {"qa", "bullets"} and report["understanding_oracle"]["qa"]["n"] == 3
    rows = [json.loads(l) for l in (tmp_path / "all" / "outputs.jsonl").read_text().splitlines()]
    assert {r["system"] for r in rows} == {"base", "llink", "llink_shuffled", "english"}
    assert len(rows) == 3 * (4 + 2 * 3) + 2 * 3 and {r["task"] for r in rows if r["system"] == "english"} == {"qa", "bullets"}
    assert all(r["reference_kind"] == ("human" if r["task"] == "translate" else "oracle") for r in rows)

    # english left out: the oracle still answers (the reference), its rows are not saved
    assert main([*base, "--tasks", "qa", "--n_other", "2", "--systems", "llink", "--out", str(tmp_path / "one"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["generate"]) == {"llink"} and "understanding" in report["generate"]["llink"]
    rows = [json.loads(l) for l in (tmp_path / "one" / "outputs.jsonl").read_text().splitlines()]
    assert {r["system"] for r in rows} == {"llink"} and [r["reference_kind"] for r in rows if r["task"] == "qa"] == ["oracle"] * 2

    # translation only: no oracle, no understanding, and english alone is refused
    assert main([*base, "--tasks", "", "--out", str(tmp_path / "tr")]) == 0
    report = json.loads((tmp_path / "tr" / "generate.json").read_text())
    assert "understanding_oracle" not in report and all("understanding" not in r for r in report["generate"].values())
    assert main([*base, "--n_other", "0", "--systems", "english,llink"]) == 2
    assert "english" in capsys.readouterr().err
