import pytest
import torch

from llink.prompts import PromptBuilder, PromptConfig, pad_batch
from llink.slots import SlotExpander, inject, median_embedding_norm


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
    with pytest.raises(ValueError, match="exactly 2 slot positions"):
        inject(emb, batch["slot_mask"], slots[:, :2])
