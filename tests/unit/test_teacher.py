import numpy as np
import pytest
import torch

from llink.errors import LlinkError
from llink.prompts import PromptBuilder
from llink.teacher import PRESETS, TeacherSpec, TeacherStats, cached_states, extract, normalise, parse_teacher

TEXTS = ["Open the file menu.", "The quick brown fox jumps over the lazy dog.", "Save As.", "Choose the file."]


def _reference(decoder, builder, text):
    ids, sent, ph = builder.teacher(text)
    emb = decoder.embeddings(torch.tensor([ids])).clone()
    emb[0, ph] = decoder.placeholder_vector()
    out = decoder.model.model(inputs_embeds=emb, output_hidden_states=True)
    return out.hidden_states, out.last_hidden_state, sent, ph


def test_extract_matches_hugging_face_hidden_states(tiny_decoder):
    b = PromptBuilder(tiny_decoder.tokenizer)
    got = extract(tiny_decoder, b, TEXTS, [0, 1, "final"], ["mean", "placeholder"], batch_size=3, progress=False)
    for i, t in enumerate(TEXTS):
        hs, last, sent, ph = _reference(tiny_decoder, b, t)
        np.testing.assert_allclose(got[(1, "mean")][i], hs[1][0, sent].mean(0).detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(got[(0, "placeholder")][i], hs[0][0, ph].detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(got[("final", "placeholder")][i], last[0, ph].detach().numpy(), atol=1e-5)


def test_a_text_gets_the_same_states_in_any_company(tiny_decoder):
    """What else is missing from the cache decides what shares a batch; it must not change a row."""
    b = PromptBuilder(tiny_decoder.tokenizer)
    texts = TEXTS + ["Close the file.", "Print it.", "Open the file menu again."]
    together = extract(tiny_decoder, b, texts, [1, "final"], ["mean", "placeholder"], batch_size=2, progress=False)
    for i in (0, 2, 5):
        alone = extract(tiny_decoder, b, [texts[i]], [1, "final"], ["mean", "placeholder"], progress=False)
        for key, rows in alone.items():
            np.testing.assert_allclose(rows[0], together[key][i], rtol=1e-6, atol=1e-6)  # any CPU: no bit-identity across shapes


def test_early_stop_gives_the_same_states_as_a_full_pass(tiny_decoder):
    b = PromptBuilder(tiny_decoder.tokenizer)
    early = extract(tiny_decoder, b, TEXTS, [1], ["mean"], progress=False)
    full = extract(tiny_decoder, b, TEXTS, [1, "final"], ["mean"], progress=False)
    np.testing.assert_array_equal(early[(1, "mean")], full[(1, "mean")])


def test_layer_zero_needs_no_forward_pass(tiny_decoder):
    b = PromptBuilder(tiny_decoder.tokenizer)
    calls = []
    h = tiny_decoder.model.model.layers[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        got = extract(tiny_decoder, b, TEXTS, [0], ["mean"], progress=False)
    finally:
        h.remove()
    assert calls == []
    ids, sent, _ = b.teacher(TEXTS[1])
    np.testing.assert_allclose(got[(0, "mean")][1], tiny_decoder.embeddings(torch.tensor(ids))[sent].mean(0).detach().numpy(), atol=1e-6)


def test_layer_beyond_the_decoder_is_refused(tiny_decoder):
    with pytest.raises(LlinkError, match="layers"):
        extract(tiny_decoder, PromptBuilder(tiny_decoder.tokenizer), TEXTS, [7], ["mean"])


def _shards(root):
    return sorted(root.glob("teacher/*/*.safetensors"))


def test_cache_hits_and_invalidation(tiny_decoder, tmp_path, monkeypatch):
    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path))
    b = PromptBuilder(tiny_decoder.tokenizer)
    first = cached_states(tiny_decoder, b, TEXTS, [1], ["mean"], progress=False)
    assert len(_shards(tmp_path)) == 1
    again = cached_states(tiny_decoder, b, TEXTS, [1], ["mean"], progress=False)
    np.testing.assert_array_equal(first[(1, "mean")], again[(1, "mean")])
    sub = cached_states(tiny_decoder, b, TEXTS[2:0:-1], [1], ["mean"], progress=False)  # a reordered subset
    np.testing.assert_array_equal(sub[(1, "mean")], first[(1, "mean")][[2, 1]])
    assert len(_shards(tmp_path)) == 1  # hits write nothing
    more = cached_states(tiny_decoder, b, TEXTS + ["A new sentence."], [1], ["mean"], progress=False)
    assert len(_shards(tmp_path)) == 2  # only the new text was computed and stored
    np.testing.assert_allclose(more[(1, "mean")][:4], first[(1, "mean")], atol=1e-6)
    cached_states(tiny_decoder, b, TEXTS, [2], ["mean"], progress=False)  # other layer
    cached_states(tiny_decoder, b, TEXTS, [1], ["placeholder"], progress=False)  # other pooling
    b2 = PromptBuilder(tiny_decoder.tokenizer, type(b.cfg)(teacher_max_tokens=3))  # other template settings
    cached_states(tiny_decoder, b2, TEXTS, [1], ["mean"], progress=False)
    assert len({p.parent for p in _shards(tmp_path)}) == 4


def test_encoder_cache_serves_subsets(tiny_dirs, tmp_path, monkeypatch):
    from llink.encoders import encode_cached, load_encoder

    from llink.cache import cache_counts, counts_since

    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path))
    enc = load_encoder(tiny_dirs["encoder"])
    before = cache_counts()
    full = encode_cached(enc, TEXTS + TEXTS[:1], progress=False)  # a repeated text is one row
    assert counts_since(before)["vectors"] == {"computed": 4, "reused": 0}
    calls = []
    real = enc.encode
    enc.encode = lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw)
    np.testing.assert_array_equal(encode_cached(enc, TEXTS[::-1], progress=False), full[3::-1])
    encode_cached(enc, TEXTS + ["Another one."], progress=False)
    assert calls == [["Another one."]]
    assert counts_since(before)["vectors"] == {"computed": 5, "reused": 8}


def test_parse_teacher():
    assert parse_teacher("paper") == PRESETS["paper"] == TeacherSpec("final", "placeholder", "none")
    assert parse_teacher("layer=8,pooling=mean,norm=zscore") == TeacherSpec(8, "mean", "zscore")
    assert parse_teacher("layer=final") == TeacherSpec("final")
    for bad in ("layer=-1", "pooling=max", "norm=l2", "depth=3"):
        with pytest.raises(LlinkError):
            parse_teacher(bad)


def test_zscore_uses_train_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(5, 3, size=(200, 4)).astype(np.float32)
    stats = TeacherStats.fit(train)
    z = normalise(TeacherSpec(norm="zscore"), train, stats)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    with pytest.raises(LlinkError):
        normalise(TeacherSpec(norm="zscore"), train, None)


def test_zscore_length_removes_the_mean_that_moves_with_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=5000).astype(np.float32)
    drift = np.array([2.0, -1.0, 0.0, 0.5], np.float32)
    train = (3 + np.log(lengths)[:, None] * drift + rng.normal(0, 0.5, size=(5000, 4))).astype(np.float32)
    stats = TeacherStats.fit(train, lengths)
    np.testing.assert_allclose(stats.slope, drift, atol=0.05)
    spec = TeacherSpec(norm="zscore_length")
    z = normalise(spec, train, stats, lengths)
    long, short = lengths > 100, lengths < 10
    np.testing.assert_allclose(z[long].mean(0), 0, atol=0.2)  # plain zscore leaves these ~±1.5 std apart
    np.testing.assert_allclose(z[short].mean(0), 0, atol=0.2)
    plain = normalise(TeacherSpec(norm="zscore"), train, TeacherStats.fit(train))
    assert np.abs(plain[long].mean(0) - plain[short].mean(0))[0] > 2
    with pytest.raises(LlinkError, match="pooled token count"):
        normalise(spec, train, stats)
    with pytest.raises(LlinkError, match="length term"):
        normalise(spec, train, TeacherStats.fit(train), lengths)
    with pytest.raises(LlinkError, match="length term"):
        normalise(TeacherSpec(norm="zscore"), train, stats)
    with pytest.raises(LlinkError, match="more than one length"):
        TeacherStats.fit(train, np.full(5000, 7.0))
    assert parse_teacher("norm=zscore_length") == TeacherSpec(norm="zscore_length")
