"""generate() with a cached prompt head gives the same answers as a full prefill."""

from __future__ import annotations

import pytest
import torch

from llink.errors import LlinkError
from llink.generate import PrefixKV, generate
from llink.prompts import PromptBuilder


@pytest.fixture()
def setup(tiny_decoder):
    builder = PromptBuilder(tiny_decoder.tokenizer)
    prompts = [builder.chat(q) for q in ("Translate to English.", "Summarise in English.", "Open the file menu.")]
    torch.manual_seed(0)
    slots = torch.randn(len(prompts), builder.cfg.k, tiny_decoder.hidden_size) * 0.5
    head = prompts[0].input_ids[: prompts[0].slot_positions[0]]
    return tiny_decoder, builder, prompts, slots, head


def _one_by_one(dec, prompts, slots, prefix=None):
    return [generate(dec, [p], slots[i : i + 1], max_new_tokens=10, prefix=prefix)[0] for i, p in enumerate(prompts)]


def test_prefix_cache_gives_the_same_answers_and_is_not_consumed(setup):
    dec, _, prompts, slots, head = setup
    prefix = PrefixKV.compute(dec, head)
    assert all(prefix.fits(p) for p in prompts)
    plain = _one_by_one(dec, prompts, slots)
    assert _one_by_one(dec, prompts, slots, prefix) == plain
    assert prefix.kv.get_seq_length() == len(head)  # each request worked on a copy


def test_the_prefix_cache_is_read_under_its_current_name(setup, monkeypatch):
    """transformers 5 renamed an output's `past_key_values` to `cache`; the old name still works but
    warns, once per process, in every served request's first prefill."""
    from transformers.utils.generic import ModelOutput

    if "past_key_values" not in vars(ModelOutput):
        pytest.skip("this transformers has no deprecated name to avoid")

    def old_name(self):
        raise AssertionError("the cache was read through the deprecated `past_key_values`")

    monkeypatch.setattr(ModelOutput, "past_key_values", property(old_name))
    dec, _, _, _, head = setup
    assert PrefixKV.compute(dec, head).kv.get_seq_length() == len(head)


def test_prefix_cache_is_really_used(setup):
    dec, _, prompts, slots, head = setup
    plain = _one_by_one(dec, prompts, slots)
    broken = PrefixKV.compute(dec, head)
    for layer in broken.kv.layers:  # keys/values of another text: the answers must change
        layer.keys.normal_(generator=torch.Generator().manual_seed(1))
        layer.values.mul_(-20.0)
    assert _one_by_one(dec, prompts, slots, broken) != plain


def test_prefix_is_skipped_where_it_does_not_fit(setup):
    dec, builder, prompts, slots, head = setup
    other = PrefixKV(ids=[head[0] + 1] + head[1:], kv=None)  # kv=None: using it would fail
    assert not other.fits(prompts[0])
    assert _one_by_one(dec, prompts[:1], slots, other) == _one_by_one(dec, prompts[:1], slots)
    whole = PrefixKV(ids=list(prompts[0].input_ids), kv=None)  # no token left to prefill
    assert not whole.fits(prompts[0])
    # batches of several left-padded prompts never use it, even when it fits
    broken = PrefixKV.compute(dec, head)
    for layer in broken.kv.layers:
        layer.values.mul_(-20.0)
    assert generate(dec, prompts, slots, max_new_tokens=10, prefix=broken) == generate(dec, prompts, slots, max_new_tokens=10)
    with pytest.raises(LlinkError, match="at least one token"):
        PrefixKV.compute(dec, [])


def test_counts_and_stop(setup):
    dec, _, prompts, slots, _ = setup
    counts: list[int] = []
    answers = generate(dec, prompts, slots, max_new_tokens=10, counts=counts)
    assert len(counts) == len(answers) and all(0 <= c <= 10 for c in counts)
    assert generate(dec, prompts, slots, max_new_tokens=10) == answers  # counting changes nothing
    polls, stopped = [], []
    generate(dec, prompts, slots, max_new_tokens=10, stop=lambda: polls.append(1) or len(polls) >= 2, counts=stopped)
    assert stopped == [min(c, 2) for c in counts]  # the batch ended after its second token
