import pytest
import torch

from llink.prompts import PromptBuilder, PromptConfig, pad_batch
from llink.errors import LlinkError
from llink.slots import (Injection, SegmentExpander, SlotExpander, chunk_targets, fit_segment_expander, inject,
                         median_embedding_norm, pad_slots)


def test_expander_shapes_norms_and_initial_copy():
    torch.manual_seed(0)
    e = SlotExpander(hidden=16, k=4, target_norm=3.0, init_noise=0.0)
    v = torch.randn(5, 16)
    s = e(v)
    assert s.shape == (5, 4, 16)
    torch.testing.assert_close(s.norm(dim=-1), torch.full((5, 4), 3.0))
    # with no noise every slot starts as the (normalised) aligned vector
    direction = torch.nn.functional.normalize(e.norm(v), dim=-1)
    torch.testing.assert_close(torch.nn.functional.normalize(s, dim=-1), direction[:, None].expand(-1, 4, -1))


def test_expander_trains_its_scale_and_projection():
    e = SlotExpander(hidden=8, k=2)
    e(torch.randn(3, 8)).pow(2).sum().backward()
    assert e.log_scale.grad is not None and e.proj.weight.grad.abs().sum() > 0


def test_inject_replaces_exactly_the_slot_positions(tiny_decoder):
    b = PromptBuilder(tiny_decoder.tokenizer, PromptConfig(k=3))
    batch = pad_batch([b.chat("Translate to English."), b.chat("Summarise this in English please.")],
                      tiny_decoder.tokenizer.pad_token_id, left=True)
    emb = tiny_decoder.embeddings(batch["input_ids"])
    slots = torch.randn(2, 3, tiny_decoder.hidden_size)
    out = inject(emb, batch["slot_mask"], slots)
    torch.testing.assert_close(out[batch["slot_mask"]].view(2, 3, -1), slots)
    torch.testing.assert_close(out[~batch["slot_mask"]], emb[~batch["slot_mask"]])
    assert median_embedding_norm(tiny_decoder.embeddings) > 0
    with pytest.raises(ValueError, match="between 1 and 2 slot positions, found \\[3, 3\\]"):
        inject(emb, batch["slot_mask"], slots[:, :2])


def test_inject_with_k_per_prompt_reads_each_rows_first_k_slots(tiny_decoder):
    """A K rule gives texts different K: slots are padded to the largest and a prompt reserving
    k positions takes its row's first k, never the padding."""
    b = PromptBuilder(tiny_decoder.tokenizer, PromptConfig(k=4))
    batch = pad_batch([b.chat("Translate to English.", k=2), b.chat("Translate to English.", k=4)], tiny_decoder.tokenizer.pad_token_id)
    assert batch["slot_mask"].sum(1).tolist() == [2, 4]
    emb = tiny_decoder.embeddings(batch["input_ids"])
    slots = pad_slots([torch.randn(2, tiny_decoder.hidden_size), torch.randn(4, tiny_decoder.hidden_size)])
    assert slots.shape == (2, 4, tiny_decoder.hidden_size) and slots[0, 2:].abs().sum() == 0
    out = inject(emb, batch["slot_mask"], slots)
    torch.testing.assert_close(out[0][batch["slot_mask"][0]], slots[0, :2])
    torch.testing.assert_close(out[1][batch["slot_mask"][1]], slots[1])
    torch.testing.assert_close(out[~batch["slot_mask"]], emb[~batch["slot_mask"]])


def test_prompt_refuses_more_slots_than_its_config_holds(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=4))
    with pytest.raises(LlinkError, match="1 to 4 slots"):
        b.chat("Translate to English.", k=5)
    with pytest.raises(LlinkError, match="1 to 4 slots"):
        b.chat("Translate to English.", k=0)


def test_segment_expander_one_shared_map_for_any_k():
    torch.manual_seed(0)
    e = SegmentExpander(hidden=8, k=6, target_norm=2.0, init_noise=0.0)
    spans, pooled = torch.randn(3, 4, 8), torch.randn(3, 8)
    s = e(spans, pooled)
    assert s.shape == (3, 4, 8)
    torch.testing.assert_close(s.norm(dim=-1), torch.full((3, 4), 2.0))
    # identity start, no context: slot j is span j's direction (the pooled vector does not enter yet)
    torch.testing.assert_close(torch.nn.functional.normalize(s, dim=-1), torch.nn.functional.normalize(e.norm(spans), dim=-1))
    # the same weights read a text of 2 spans: its slots are the first rows of what 4 spans give
    torch.testing.assert_close(e(spans[:, :2], pooled), s[:, :2])
    e(spans, pooled).sum().backward()
    assert e.context.weight.grad.abs().sum() > 0  # the context map trains from zero


def test_fit_segment_expander_recovers_a_linear_map_on_the_used_rows_only():
    torch.manual_seed(0)
    h, k = 6, 3
    e = SegmentExpander(hidden=h, k=k)
    spans = torch.randn(400, k, h)
    ks = [1 + i % k for i in range(400)]
    w = torch.randn(h, h)
    targets = e.norm(spans) @ w + 0.5
    for i, ki in enumerate(ks):  # padding rows: garbage the fit must not see
        spans[i, ki:] = 1e3
        targets[i, ki:] = -1e3
    r2 = fit_segment_expander(e, spans, ks, targets, ridge=1e-6)
    assert r2 > 0.999
    # LayerNorm output has no component along the all-ones direction, so W is identifiable only
    # on its image: compare what the fitted map predicts there
    for i, ki in enumerate(ks[:30]):
        x = e.norm(spans[i, :ki])
        torch.testing.assert_close(e.proj(x), targets[i, :ki], atol=1e-3, rtol=1e-3)


def test_chunk_targets_with_k_per_sentence(tiny_decoder):
    emb = tiny_decoder.embeddings
    t = chunk_targets([[1, 2, 3, 4], [5]], emb, [2, 3])
    w = emb.weight.detach().float()
    assert t.shape == (2, 3, w.shape[1])
    torch.testing.assert_close(t[0, 0], w[[1, 2]].mean(0))
    torch.testing.assert_close(t[0, 1], w[[3, 4]].mean(0))
    assert t[0, 2].abs().sum() == 0  # past the sentence's own K
    torch.testing.assert_close(t[1], w[[5, 5, 5]])  # one token, three chunks: repeated


def test_injection_take_moves_slots_k_and_hints_together_or_keeps_own_hints():
    inj = Injection(torch.arange(3.0).view(3, 1, 1).expand(3, 2, 1).clone(), [1, 2, 2], [["1"], ["PDF"], []])
    t = inj.take([2, 0, 1])
    assert t.k == [2, 1, 2] and t.hints == [[], ["1"], ["PDF"]] and t.slots[:, 0, 0].tolist() == [2.0, 0.0, 1.0]
    own = inj.take([2, 0, 1], hints_of=inj)
    assert own.k == [2, 1, 2] and own.hints == [["1"], ["PDF"], []]
    assert inj.zeroed().slots.abs().sum() == 0 and inj.zeroed().k == inj.k
    assert inj.prompt_kwargs()[1] == {"k": 2, "hints": ["PDF"]}


def test_a_fresh_resampler_gives_every_slot_the_pooled_vector_and_ignores_padding():
    from llink.slots import Resampler, pad_states

    torch.manual_seed(0)
    r = Resampler(16, 4, target_norm=2.0, positions=6)
    pooled = torch.randn(2, 16)
    states, mask = pad_states([torch.randn(3, 16), torch.randn(6, 16)])
    out = r(states, mask, pooled)
    assert out.shape == (2, 4, 16)
    torch.testing.assert_close(out.norm(dim=-1), torch.full((2, 4), 2.0))
    # zeroed residual outputs: slot 0 is the pooled vector (normalised), the others near it
    torch.testing.assert_close(out[:, 0], 2.0 * torch.nn.functional.normalize(r.norm(pooled), dim=-1))
    with torch.no_grad():
        for p in r.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out = r(states, mask, pooled)
    # what sits past a text's own tokens is never read
    noisy = states.clone()
    noisy[0, 3:] = 100.0
    torch.testing.assert_close(r(noisy, mask, pooled), out)
    # and its tokens are: another token state changes the slots
    moved = states.clone()
    moved[0, 1] = torch.randn(16)
    assert not torch.allclose(r(moved, mask, pooled)[0], out[0])
