"""Stage B's token-level self-distillation (`llink slots --distill kl`): the KL term, the pairing of
teacher and student answer positions, and a run on the tiny models."""

import math

import pytest
import torch

from llink_app.__main__ import main

from .test_stage_b import rows, slots_args, stage_a  # noqa: F401  (the module-scoped fixture)


def test_token_kl_by_hand():
    from llink.losses import token_kl

    s = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, -1.0]])

    def kl(temp):
        total = 0.0
        for sr, tr in zip(s.tolist(), t.tolist()):
            zs, zt = sum(math.exp(x / temp) for x in sr), sum(math.exp(x / temp) for x in tr)
            q, p = [math.exp(x / temp) / zs for x in sr], [math.exp(x / temp) / zt for x in tr]
            total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        return total / len(s) * temp * temp

    assert token_kl(s, t).item() == pytest.approx(kl(1.0), rel=1e-5)
    assert token_kl(s, t, 2.0).item() == pytest.approx(kl(2.0), rel=1e-5)
    assert kl(1.0) > 0
    assert token_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert token_kl(t + 3.0, t).item() == pytest.approx(0.0, abs=1e-6)  # a constant per row is no change
    assert token_kl(s, s.flip(0)).item() > 0
    # KL(teacher || student), not the reverse: the two differ here
    assert token_kl(s, t).item() != pytest.approx(token_kl(t, s).item(), rel=1e-3)
    # the gradient reaches the student only
    s2, t2 = s.clone().requires_grad_(), t.clone().requires_grad_()
    token_kl(s2, t2).backward()
    assert s2.grad.abs().sum() > 0 and t2.grad is None
    with pytest.raises(ValueError, match="pair up"):
        token_kl(s, t[:1])
    with pytest.raises(ValueError, match="temperature"):
        token_kl(s, t, 0.0)
    assert token_kl(s[:0], t[:0]).item() == 0.0


def test_teacher_and_student_positions_pick_the_same_answer_tokens(tiny_decoder):
    """Raw English (the teacher) and K slots (the student) put the answer at different positions,
    padded differently; answer_logits' rows still predict the same tokens in the same order, and
    each is the full forward's logit row at the position before its token (the shift by one)."""
    from llink.losses import answer_ce, answer_logits, answer_loss
    from llink.prompts import IGNORE, PromptBuilder, pad_batch
    from llink.slots import inject
    from llink_app.recipes.slots import teacher_prompts

    from llink.data.synth import Example

    tok = tiny_decoder.tokenizer
    b = PromptBuilder(tok)
    ex = [Example("km1", "Open the file menu and choose Save As.", "translate", "Translate to English.", "Open the file menu."),
          Example("km2", "The fox.", "qa", "What is this text about? Answer in English.", "A quick brown fox, jumping.")]
    student = [b.chat(e.instruction, None, e.answer) for e in ex]
    teacher = teacher_prompts(b, ex, student)
    assert len(teacher[0]) - len(student[0]) != len(teacher[1]) - len(student[1])  # the offsets differ per example
    sb, tb = pad_batch(student, tok.pad_token_id, multiple=16), pad_batch(teacher, tok.pad_token_id, multiple=16)
    torch.manual_seed(0)
    slots = torch.randn(2, b.cfg.k, tiny_decoder.embeddings.weight.shape[1])
    with torch.no_grad():
        s_logits, s_targets, s_sel = answer_logits(tiny_decoder, inject(tiny_decoder.embeddings(sb["input_ids"]), sb["slot_mask"], slots),
                                                   sb["attention_mask"], sb["labels"])
        t_logits, t_targets, t_sel = answer_logits(tiny_decoder, tiny_decoder.embeddings(tb["input_ids"]), tb["attention_mask"], tb["labels"])
        assert torch.equal(s_targets, t_targets) and torch.equal(s_sel.sum(1), t_sel.sum(1))
        want = [x for e in student for x in e.labels if x != IGNORE]
        assert s_targets.tolist() == want
        # each teacher row is the full forward's logits at the position before its answer token
        n = 0
        for e in teacher:
            full = tiny_decoder.model(input_ids=torch.tensor([e.input_ids])).logits[0]
            for p in range(1, len(e)):
                if e.labels[p] != IGNORE:
                    assert torch.allclose(t_logits[n], full[p - 1], atol=1e-5)
                    assert int(t_targets[n]) == e.input_ids[p]
                    n += 1
        assert n == len(t_logits)
        # answer_loss is answer_ce of answer_logits
        assert torch.equal(answer_ce(t_logits, t_targets, t_sel),
                           answer_loss(tiny_decoder, tiny_decoder.embeddings(tb["input_ids"]), tb["attention_mask"], tb["labels"]))


def test_stage_b_with_kl_distillation_trains_and_logs_kl(stage_a, tmp_path, capsys):  # noqa: F811
    common = dict(steps=6, eval_every=6, checkpoint_every=6)
    assert main(slots_args(stage_a, tmp_path / "seq", **common)) == 0
    assert main(slots_args(stage_a, tmp_path / "kl", distill="kl", **common)) == 0
    seq, kl = rows(tmp_path / "seq"), rows(tmp_path / "kl")
    assert [r["step"] for r in kl] == list(range(1, 7))
    assert all("kl" not in r for r in seq)
    assert all(r["kl"] > 0 for r in kl)
    assert kl[0]["loss"] != pytest.approx(seq[0]["loss"], rel=1e-4)
    # step 1 (no usage term): the loss is exactly the sum of its logged parts
    assert kl[0]["loss"] == pytest.approx(kl[0]["sft"] + 0.1 * kl[0]["aux"] + kl[0]["kl"], rel=1e-5)
    # a zero weight trains what --distill sequence trains: the same cross-entropy, and the
    # teacher's pass draws no random number the student's LoRA dropout would have used
    assert main(slots_args(stage_a, tmp_path / "kl0", distill="kl", kl_weight=0.0, **common)) == 0
    kl0 = rows(tmp_path / "kl0")
    assert [r["loss"] for r in kl0] == pytest.approx([r["loss"] for r in seq], rel=1e-6)
    assert [r["dev_loss_true"] for r in kl0 if "dev_loss_true" in r] == pytest.approx([r["dev_loss_true"] for r in seq if "dev_loss_true" in r],
                                                                                     rel=1e-6)
    # the distillation settings are part of the run key: a resume under another one is refused
    capsys.readouterr()
    assert main(slots_args(stage_a, tmp_path / "kl", distill="kl", kl_temperature=2.0, resume="true", **common)) == 2
    assert "kl_temperature: 1.0 -> 2.0" in capsys.readouterr().err
    for bad, msg in (({"distill": "token"}, "--distill must be"), ({"distill": "kl", "kl_temperature": 0}, "--kl_temperature")):
        assert main(slots_args(stage_a, tmp_path / "bad", **{**common, **bad})) == 2
        assert msg in capsys.readouterr().err
