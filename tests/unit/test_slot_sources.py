"""Slot sources, K per text and the verbatim pathway (issue 25) end to end on tiny models: train,
save, load, generate, evaluate and serve; a model saved before them loads and behaves as before."""

import json
import math
import threading

import pytest
import torch

from llink_app.__main__ import main

from .test_stage_b import rows, slots_args, stage_a  # noqa: F401 - stage_a is a fixture

SHORT = "បើក ឯកសារ 7"
LONG = "បើក ឯកសារ ម៉ឺនុយ ប៊ូតុង ទំព័រ ការកំណត់ បើក ឯកសារ ម៉ឺនុយ ប៊ូតុង ទំព័រ 12 PDF"


@pytest.fixture(scope="module")
def segments(stage_a, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("segments") / "b"
    assert main(slots_args(stage_a, out, slot_source="segments", k_rule="2,1,6", hints="true")) == 0
    return out


def test_segments_with_a_k_rule_and_hints_learn_and_save_what_they_read(segments):
    from llink.hints import extract_hints
    from llink.model import LLINK

    log = rows(segments)
    assert sum(r["sft"] for r in log[-4:]) < 0.8 * sum(r["sft"] for r in log[:4])
    usage = json.loads((segments / "usage.json").read_text())
    # the second control: another text's slots beside the text's own hints
    assert set(usage) >= {"loss_true", "loss_zeroed", "loss_shuffled", "loss_shuffled_slots"}
    m = LLINK.from_pretrained(segments / "llink")
    cfg = m.config
    assert cfg.slot_source == "segments" and cfg.prompt_config.hints
    assert cfg.prompt_config.k_rule == {"ratio": 2.0, "min": 1, "max": 6} and cfg.prompt_config.k == 6
    inj = m.read([SHORT, LONG])
    n = [m.encoder.span_token_count(t) for t in (SHORT, LONG)]
    assert inj.k == [min(max(math.ceil(x / 2), 1), 6) for x in n] and inj.k[0] < inj.k[1]
    assert inj.hints == [extract_hints(SHORT), extract_hints(LONG)] and inj.hints[1] == ["12", "PDF"]
    assert inj.slots.shape == (2, max(inj.k), cfg.hidden_size)
    # a batch of different K decodes each text as it decodes alone
    both = m.generate([SHORT, LONG], max_new_tokens=4)
    assert both == [m.generate([t], max_new_tokens=4)[0] for t in (SHORT, LONG)]


def test_eval_generate_runs_both_controls_for_a_hint_model(segments, stage_a, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "gen"
    argv = ["eval", "generate", "--model", str(segments / "llink"), "--data", str(stage_a["data"]), "--n", "6",
            "--systems", "llink,llink_shuffled,llink_shuffled_slots", "--max_new_tokens", "3", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "generate.json").read_text())["generate"]
    assert set(res) == {"llink", "llink_shuffled", "llink_shuffled_slots"}
    assert set(res["llink"]) >= {"chrf", "fidelity", "numeric", "names"}


def test_the_english_in_controls_read_each_pairs_english_through_the_slots(segments, stage_a, tmp_path):  # noqa: F811
    """The perfect-reader ceiling (issue 26): llink reading the English of each pair instead of
    its foreign text, with the hints a translation of it would carry; off unless asked for."""
    from llink.generate import generate
    from llink.hints import english_hints
    from llink.model import LLINK

    out = tmp_path / "gen"
    argv = ["eval", "generate", "--model", str(segments / "llink"), "--data", str(stage_a["data"]), "--n", "6",
            "--systems", "llink,llink_english_in,llink_english_in_shuffled", "--max_new_tokens", "3", "--n_other", "0", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "generate.json").read_text())["generate"]
    assert set(res) == {"llink", "llink_english_in", "llink_english_in_shuffled"}  # they compete, scored like llink
    rows_ = [json.loads(x) for x in (out / "outputs.jsonl").read_text().splitlines()]
    mine = [r for r in rows_ if r["system"] == "llink_english_in"]
    ens = [r["reference"] for r in mine]
    assert len(mine) == 6 and [r["src"] for r in mine] == [r["src"] for r in rows_ if r["system"] == "llink"]  # same pairs
    m = LLINK.from_pretrained(segments / "llink")
    inj = m.read(ens, english=[True] * len(ens))
    assert inj.hints == [english_hints(e) for e in ens]
    assert any(inj.hints[i] != m.read([e]).hints[0] for i, e in enumerate(ens))  # not the foreign text's hint rule
    with m.using_adapter():
        want = generate(m.decoder, inj.prompts(m.builder, "Translate to English."), inj.slots, max_new_tokens=3)
    assert [r["output"] for r in mine] == want
    assert main(["eval", "generate", "--model", str(segments / "llink"), "--data", str(stage_a["data"]), "--n", "4",
                 "--max_new_tokens", "2", "--n_other", "0", "--out", str(tmp_path / "default")]) == 0
    default = json.loads((tmp_path / "default" / "generate.json").read_text())["generate"]
    assert not set(default) & {"llink_english_in", "llink_english_in_shuffled"}  # asked for only


def test_the_slots_only_control_needs_a_hint_model(stage_a, tmp_path, capsys):  # noqa: F811
    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    capsys.readouterr()
    argv = ["eval", "generate", "--model", str(tmp_path / "b" / "llink"), "--data", str(stage_a["data"]), "--n", "4",
            "--systems", "llink,llink_shuffled_slots"]
    assert main(argv) == 2
    assert "llink_shuffled_slots needs a model trained with hints" in capsys.readouterr().err


def test_the_resampler_trains_saves_and_reads_each_texts_tokens(stage_a, tmp_path):  # noqa: F811
    from llink.model import LLINK

    out = tmp_path / "r"
    assert main(slots_args(stage_a, out, slot_source="resampler", k_rule="2,1,6", resampler_positions=5)) == 0
    log = rows(out)
    assert sum(r["sft"] for r in log[-4:]) < 0.8 * sum(r["sft"] for r in log[:4])
    m = LLINK.from_pretrained(out / "llink")
    assert m.config.slot_source == "resampler" and m.config.expander["layers"] == 1 and m.config.expander["positions"] == 5
    n = [m.encoder.span_token_count(t) for t in (SHORT, LONG)]
    ks = m.slot_counts([SHORT, LONG])
    assert m.detail_counts([SHORT, LONG], ks) == [min(x, 5) for x in n]
    states, mask = m.detail([SHORT, LONG], ks)
    assert states.shape[:2] == mask.shape == (2, 5) and mask.sum(1).tolist() == [min(x, 5) for x in n]
    inj = m.read([SHORT, LONG])
    assert inj.slots.shape == (2, 6, m.config.hidden_size) and inj.k == ks
    both = m.generate([SHORT, LONG], max_new_tokens=4)
    assert both == [m.generate([t], max_new_tokens=4)[0] for t in (SHORT, LONG)]


@pytest.mark.parametrize("over, message", [(dict(slot_source="tokens"), "--slot_source must be one of pooled, segments, resampler"),
                                           (dict(slot_source="resampler", resampler_positions=0), "--resampler_positions must be >= 1"),
                                           (dict(k_rule="4,2"), "--k_rule must be 'ratio,min,max'"),
                                           (dict(k_rule="4,2,8", k=6), "with a K rule, K is the rule's max")])
def test_bad_slot_settings_are_named(stage_a, tmp_path, capsys, over, message):  # noqa: F811
    assert main(slots_args(stage_a, tmp_path / "b", steps=2, **over)) == 2
    assert message in capsys.readouterr().err


def test_pooled_slots_with_a_k_rule_read_the_first_k_of_their_slots(stage_a, tmp_path):  # noqa: F811
    from llink.model import LLINK

    assert main(slots_args(stage_a, tmp_path / "b", steps=6, eval_every=6, k_rule="3,2,5")) == 0
    m = LLINK.from_pretrained(tmp_path / "b" / "llink")
    assert m.config.slot_source == "pooled" and m.config.prompt_config.k == 5
    inj = m.read([SHORT, LONG])
    assert inj.hints == [None, None] and inj.k[0] < inj.k[1] <= 5
    # pooled: one vector expanded to K_max slots; a shorter text reads the first ones
    torch.testing.assert_close(inj.slots, m.expand(m.embed([SHORT, LONG])))


def test_a_model_saved_before_slot_sources_loads_and_reads_as_before(stage_a, tmp_path):  # noqa: F811
    from llink.model import LLINK

    assert main(slots_args(stage_a, tmp_path / "b", steps=6, eval_every=6)) == 0
    art = tmp_path / "b" / "llink"
    before = LLINK.from_pretrained(art)
    want_slots, want_text = before.slots([SHORT, LONG]), before.generate([SHORT, LONG], max_new_tokens=4)
    # the config.json an earlier llink wrote: no slot source, no K rule, no hints
    raw = json.loads((art / "config.json").read_text())
    del raw["slot_source"]
    raw["prompt"] = {k: v for k, v in raw["prompt"].items() if k not in ("k_rule", "hints")}
    (art / "config.json").write_text(json.dumps(raw))
    old = LLINK.from_pretrained(art)
    assert old.config.slot_source == "pooled" and old.config.prompt_config.k_rule is None and not old.config.prompt_config.hints
    inj = old.read([SHORT, LONG])
    assert inj.k == [8, 8] and inj.hints == [None, None]
    torch.testing.assert_close(inj.slots, want_slots)
    assert old.generate([SHORT, LONG], max_new_tokens=4) == want_text


def test_the_server_batches_passages_of_different_k(segments):
    """Requests waiting together are decoded in one batch even when their passages have different
    K, and each gets the answer it gets alone."""
    from llink.model import LLINK
    from llink.serve.engine import Engine

    engine = Engine(LLINK.from_pretrained(segments / "llink"), cache_size=8, max_batch=4)
    try:
        q = "Translate to English."
        preps = [engine.submit(engine.prepare, t, q, [], threading.Event()).result() for t in (SHORT, LONG)]
        assert len(preps[0].prompt.slot_positions) < len(preps[1].prompt.slot_positions)
        alone = [engine.submit(engine.generate, p, 5, 0.0, 1.0, 0, threading.Event()).result() for p in preps]
        gate = threading.Event()
        engine.submit(gate.wait)  # hold the worker so that both requests wait together
        futures = [engine.answer(t, q, [], 5, threading.Event()) for t in (SHORT, LONG)]
        gate.set()
        got = [f.result(60) for f in futures]
        assert [g[3] for g in got] == [2, 2]
        assert [g[1:3] for g in got] == alone
        assert engine.count_tokens_and_slots(LONG)[1] == len(preps[1].prompt.slot_positions)
    finally:
        engine.close()


def test_a_mixed_k_model_reads_at_any_k_up_to_its_max(segments):
    """with_k: the quality-against-K curve (benchmarks/k_curve.py) reads one model at each K."""
    from llink.errors import LlinkError
    from llink.model import LLINK

    m = LLINK.from_pretrained(segments / "llink")
    own = m.read([SHORT, LONG]).k
    assert m.with_k(2).read([SHORT, LONG]).k == [2, 2]
    assert m.with_k(6).read([SHORT, LONG]).slots.shape[1] == 6
    with pytest.raises(LlinkError, match="expander has 6 slots; choose 1 to 6"):
        m.with_k(7)
    assert m.with_k(None).read([SHORT, LONG]).k == own


def test_a_served_read_is_one_encoder_pass_and_matches_the_cached_read(segments, monkeypatch):
    from llink.model import LLINK

    m = LLINK.from_pretrained(segments / "llink")
    cached = m.read([SHORT, LONG])
    calls = []
    for name in ("encode", "encode_spans"):
        real = getattr(m.encoder, name)
        monkeypatch.setattr(m.encoder, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw))
    served = m.read([SHORT, LONG], cache=False)
    assert calls == ["encode_spans"]
    assert served.k == cached.k and served.hints == cached.hints
    torch.testing.assert_close(served.slots, cached.slots, atol=1e-4, rtol=1e-4)
