"""Meaning-choice comprehension: items, cached option scoring, metrics and `llink eval comprehend`."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from benchmarks.support import untrained_artifact
from llink.data.io import Pair
from llink.errors import LlinkError
from llink.eval.comprehend import (Item, choice_metrics, document_group, gap_closed, meaning_items, option_logprobs,
                                   wilson_ci)
from llink.prompts import IGNORE, PromptBuilder, PromptConfig
from llink_app.__main__ import main

KM = ["ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។", "បើក​ម៉ឺនុយ​ឯកសារ ហើយ​ជ្រើស​រក្សា​ទុក​ជា", "ជ្រើស", "ឯកសារ ២"]
OPTIONS = ["a", "Open the file menu.", "The quick brown fox jumps over the lazy dog.", "Save the file as a copy."]


@pytest.fixture(scope="module")
def sharp(tiny_dirs, tmp_path_factory):
    """The tiny decoder with large initial weights: its log-probabilities differ by whole nats
    between tokens, so a position off by one in the scoring cannot hide under the tolerance."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..conftest import make_tokenizer

    root = tmp_path_factory.mktemp("comprehend")
    torch.manual_seed(0)
    tok = make_tokenizer()
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=1,
                                 eos_token_id=2, pad_token_id=2, initializer_range=0.3)).save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    return {"encoder": tiny_dirs["encoder"], "decoder": str(root / "llama"), "root": root}


@pytest.fixture(scope="module")
def decoder(sharp):
    from llink.decoders import load_decoder

    return load_decoder(sharp["decoder"])


def full_sequence(decoder, prompt, option, slots=None) -> float:
    """By hand: one forward pass over prompt + option, log_softmax of its logits gathered at the
    option's tokens, summed."""
    ids = torch.tensor([prompt.input_ids + list(option)])
    emb = decoder.embeddings(ids)
    if prompt.slot_positions:
        emb[0, prompt.slot_positions] = slots
    with torch.no_grad():
        logp = decoder.model(inputs_embeds=emb).logits[0].float().log_softmax(-1)
    return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(option))


def encode(builder, instruction, passage, options):
    prompt = builder.chat(instruction, passage=passage)
    return prompt, [builder.chat(instruction, passage=passage, answer=o, close=False).input_ids[len(prompt):] for o in options]


def test_close_false_labels_only_the_answer(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2))
    closed, bare = (b.chat("Q?", passage=KM[0], answer="Save the file.", close=c) for c in (True, False))
    assert tiny_tokenizer.decode([t for t, l in zip(bare.input_ids, bare.labels) if l != IGNORE]) == "Save the file."
    assert closed.input_ids[: len(bare)] == bare.input_ids and len(closed) == len(bare) + 1  # + <|im_end|>


def test_option_scores_are_the_hand_computed_log_likelihoods(decoder):
    b = PromptBuilder(decoder.tokenizer, PromptConfig(k=4))
    prompt, opts = encode(b, "What does this text say?", KM[0], OPTIONS)
    assert len(opts[0]) == 1 and decoder.tokenizer.decode(opts[2]) == OPTIONS[2]
    got, ntok = option_logprobs(decoder, [prompt], [opts])
    want = [full_sequence(decoder, prompt, o) for o in opts]
    assert got.shape == (1, 4) and ntok.tolist() == [[len(o) for o in opts]]
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-4)
    assert max(want) - min(want) > 1.0  # a sharp decoder: the options are told apart


@pytest.mark.parametrize("with_slots", [False, True])
def test_cached_prefix_scoring_equals_one_forward_per_option(decoder, with_slots):
    """Prompts of different lengths (left-padded) in one batch, each prompt run once and its cache
    repeated for options of different lengths (right-padded): the same as each full sequence."""
    b = PromptBuilder(decoder.tokenizer, PromptConfig(k=4))
    # slot prompts differ in length only by their instruction
    cases = [("Q?", None), ("What does this text say in English?", None), ("Say it.", None)] if with_slots \
        else [("What does this text say?", km) for km in KM[:3]]
    items = [encode(b, instr, passage, OPTIONS[i:] + OPTIONS[:i]) for i, (instr, passage) in enumerate(cases)]
    torch.manual_seed(1)
    slots = torch.randn(3, 4, decoder.hidden_size) if with_slots else None
    assert len({len(p) for p, _ in items}) == 3
    got, _ = option_logprobs(decoder, [p for p, _ in items], [o for _, o in items], slots)
    want = [[full_sequence(decoder, p, o, None if slots is None else slots[i]) for o in opts] for i, (p, opts) in enumerate(items)]
    np.testing.assert_allclose(got.numpy(), np.array(want), atol=1e-4)


def test_option_scoring_refuses_missing_slots(decoder):
    b = PromptBuilder(decoder.tokenizer, PromptConfig(k=4))
    prompt, opts = encode(b, "Q?", None, OPTIONS[:2])
    with pytest.raises(LlinkError, match="slot"):
        option_logprobs(decoder, [prompt], [opts])


def pairs_in_documents(sizes: dict[str, int]) -> list[Pair]:
    return [Pair(src=f"ឯកសារ {d} {i}", en=f"{d} sentence {i}.", source=f"help:text/{d}.xhp#par_id{i}")
            for d, n in sizes.items() for i in range(n)]


def test_meaning_items_draw_distinct_distractors_from_the_same_document():
    pairs = pairs_in_documents({"a": 6, "b": 4, "small": 3})
    pairs.append(Pair(src="ឯកសារ b x", en="b sentence 0.", source="help:text/b.xhp#par_a..par_c"))  # a duplicate English in b
    items = meaning_items(pairs, n_options=4, seed=3)
    assert len(items) == 6 + 5 and not any(document_group(it.source) == "help:text/small.xhp" for it in items)
    docs = {}
    for p in pairs:
        docs.setdefault(document_group(p.source), set()).add(p.en)
    for it in items:
        assert isinstance(it, Item) and len(it.options) == 4 and len(set(it.options)) == 4
        assert it.options[it.answer] == it.en and it.options.count(it.en) == 1
        assert set(it.options) <= docs[document_group(it.source)]
    assert meaning_items(pairs, n_options=4, seed=3) == items
    assert meaning_items(pairs, n_options=4, seed=4) != items
    assert len({it.answer for it in items}) > 1  # the answer is not always in one place
    sample = meaning_items(pairs, n_options=4, seed=3, limit=5)
    assert len(sample) == 5 and meaning_items(pairs, n_options=4, seed=3, limit=5) == sample
    assert {it.src for it in sample} <= {it.src for it in items}
    assert document_group("firefox:browser/foo.ftl#key") == "firefox:browser/foo.ftl"


def test_meaning_items_say_what_the_data_needs():
    with pytest.raises(LlinkError, match="has no provenance") as e:
        meaning_items([Pair(src="ក", en="a"), Pair(src="ខ", en="b")], where="pairs.tsv")
    assert "pairs.tsv" in str(e.value) and "`source`" in str(e.value) and "'#'" in str(e.value)
    with pytest.raises(LlinkError, match=">= 4 items") as e:
        meaning_items(pairs_in_documents({"a": 3, "b": 3}), where="split 'test_passages'")
    assert "split 'test_passages'" in str(e.value)
    with pytest.raises(LlinkError, match="n_options"):
        meaning_items(pairs_in_documents({"a": 5}), n_options=1)


def test_length_normalisation_can_flip_the_choice():
    # item 0: the right option is long (40 bytes); its sum is lower, its per-byte score higher
    # item 1: the right option is short and best by sum; per byte a long wrong option wins
    logp = [[-10.0, -4.0], [-2.0, -12.0]]
    nbytes = [[40, 8], [2, 40]]
    m = choice_metrics(logp, nbytes, [0, 0])
    assert (m["acc"], m["acc_norm"], m["n"]) == (0.5, 0.5, 2)
    assert choice_metrics(logp, nbytes, [0, 1])["acc"] == 0.0 and choice_metrics(logp, nbytes, [0, 1])["acc_norm"] == 1.0
    assert choice_metrics([[-1.0, -1.0]], [[4, 4]], [0])["acc"] == 0.0  # a tie is wrong
    assert m["acc_ci95"] == [round(x, 4) for x in wilson_ci(1, 2)]


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_ci(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    z = 1.959963984540054
    assert wilson_ci(81, 100)[0] == pytest.approx((0.81 + z * z / 200 - z * math.sqrt(0.81 * 0.19 / 100 + z * z / 40000)) / (1 + z * z / 100))
    assert wilson_ci(0, 0) == (0.0, 1.0)


def test_gap_closed():
    res = {"base": {"acc_norm": 0.3}, "llink": {"acc_norm": 0.5}, "english": {"acc_norm": 0.7}}
    assert gap_closed(res) == 0.5
    assert gap_closed({**res, "english": {"acc_norm": 0.3}}) is None and gap_closed({"base": res["base"]}) is None


@pytest.fixture(scope="module")
def artifacts(sharp):
    from llink.decoders import load_decoder
    from llink.model import DirectModel

    art = untrained_artifact(sharp["encoder"], sharp["decoder"], sharp["root"] / "b" / "llink", k=4)
    dec = load_decoder(sharp["decoder"])
    lora = {"r": 4, "alpha": 4, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}
    direct = DirectModel.save(sharp["root"] / "direct", dec, dec.new_lora("direct", **lora), PromptConfig(k=4), lora)
    data = sharp["root"] / "passages.tsv"
    rows = ["km\ten\tsource"] + [f"{KM[i % 4]} {d}{i}\t{d} {OPTIONS[i % 4]} {i}\thelp:text/{d}.xhp#par_id{i}" for d in "xyz" for i in range(4)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"model": str(art), "direct": str(direct), "data": str(data)}


def test_cli_scores_every_system(artifacts, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", "comprehend", "--model", artifacts["model"], "--direct", artifacts["direct"], "--data", artifacts["data"],
            "--n_options", "3", "--batch_size", "5", "--out", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "comprehend.json").read_text())
    assert (report["items"], report["n_options"], report["seed"]) == (12, 3, 17)
    assert report["instruction"] == "What does this text say in English?"
    res = report["systems"]
    assert list(res) == ["chance", "base", "direct_finetune", "llink", "llink_shuffled", "english"]
    assert res["chance"]["acc"] == res["chance"]["acc_norm"] == round(1 / 3, 4)
    for name, r in res.items():
        assert {"n", "acc", "acc_norm", "acc_ci95", "acc_norm_ci95"} <= set(r) and r["n"] == 12
        if name != "chance":
            assert 0 <= r["acc"] <= 1 and r["acc_norm_ci95"][0] <= r["acc_norm"] <= r["acc_norm_ci95"][1]
            assert r["option_tokens"] > 1
    assert report["gap_closed"] is None or isinstance(report["gap_closed"], float)
    assert main(["eval", "comprehend", "--model", artifacts["model"], "--data", artifacts["data"], "--n", "4",
                 "--systems", "base,llink", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "4 items, 4 options each" in table and "acc_norm" in table and "llink" in table


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "comprehend", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--model", "--direct", "--split", "--data", "--n ", "--n_options", "--systems", "--batch_size", "--seed", "--out"):
        assert opt in text
    text = " ".join(text.split())
    assert "names the document" in text and "default: every usable item" in text


def test_cli_bad_inputs_are_one_clear_line(artifacts, tmp_path, capsys):
    bare = tmp_path / "bare.tsv"
    bare.write_text("km\ten\n" + "".join(f"{KM[i % 4]} {i}\tsentence {i}\n" for i in range(8)), encoding="utf-8")
    stage_a = tmp_path / "stage_a"
    shutil.copytree(artifacts["model"], stage_a)
    cfg = json.loads((stage_a / "config.json").read_text())
    (stage_a / "config.json").write_text(json.dumps({**cfg, "stage": "A"}))
    base = ["eval", "comprehend", "--model", artifacts["model"], "--data", artifacts["data"]]
    cases = [
        (["eval", "comprehend", "--model", artifacts["model"], "--data", str(bare)], ["bare.tsv", "no provenance", "`source`", "'#'"]),
        (base + ["--systems", "llink,oracle"], ["unknown system", "oracle"]),
        (base + ["--systems", "direct_finetune"], ["--direct"]),
        (base + ["--n_options", "1"], ["--n_options must be >= 2"]),
        (base + ["--n", "1"], ["--n must be >= 2"]),
        (base + ["--n_options", "5"], [">= 5 items"]),
        (["eval", "comprehend", "--model", str(stage_a), "--data", artifacts["data"]], ["Stage A", "not Stage B"]),
        (["eval", "comprehend", "--data", artifacts["data"]], ["--model is required"]),
    ]
    for argv, needles in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert all(s in err for s in needles), (argv, err)
        assert len(err.strip().splitlines()) == 1, err
