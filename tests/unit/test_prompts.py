import pytest

from llink.errors import LlinkError
from llink.prompts import IGNORE, PromptBuilder, PromptConfig, pad_batch


def test_label_mask_covers_exactly_the_answer_and_end_of_turn(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=4))
    e = b.chat("Translate to English.", answer="Save the file.")
    trained = [t for t, l in zip(e.input_ids, e.labels) if l != IGNORE]
    assert tiny_tokenizer.decode(trained) == "Save the file.<|im_end|>"
    assert all(l == t for t, l in zip(e.input_ids, e.labels) if l != IGNORE)
    # the trained tokens are a suffix: nothing of the prompt carries loss
    first = next(i for i, l in enumerate(e.labels) if l != IGNORE)
    assert all(l != IGNORE for l in e.labels[first:])
    assert tiny_tokenizer.decode(e.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_slots_sit_in_the_user_turn_of_the_chat_template(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=3, system="Be brief."))
    e = b.chat("Summarise in English.")
    assert len(e.slot_positions) == 3
    assert e.slot_positions == list(range(e.slot_positions[0], e.slot_positions[0] + 3))
    assert all(e.input_ids[p] == b.placeholder_id for p in e.slot_positions)
    text = tiny_tokenizer.decode(e.input_ids[: e.slot_positions[0]])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    after = tiny_tokenizer.decode(e.input_ids[e.slot_positions[-1] + 1 :])
    assert after == "\n\nSummarise in English.<|im_end|>\n<|im_start|>assistant\n"
    assert e.labels is None


def test_raw_passage_prompt_has_no_slots_and_the_same_frame(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2))
    raw = b.chat("Translate to English.", passage="បើក​ម៉ឺនុយ")
    assert raw.slot_positions == []
    assert "បើក" in tiny_tokenizer.decode(raw.input_ids)


def test_default_system_prompt_is_short_and_none_keeps_the_template_one(tiny_tokenizer):
    short = PromptBuilder(tiny_tokenizer).chat("Hi.")
    default = PromptBuilder(tiny_tokenizer, PromptConfig(system=None)).chat("Hi.")
    assert "SmolLM" in tiny_tokenizer.decode(default.input_ids)
    assert len(short) < len(default)


@pytest.mark.parametrize("kwargs", [dict(instruction=" "), dict(instruction="x", passage="  "), dict(instruction="x", answer=" ")])
def test_empty_inputs_are_refused(tiny_tokenizer, kwargs):
    with pytest.raises(LlinkError):
        PromptBuilder(tiny_tokenizer).chat(**kwargs)


def test_teacher_prompt_appends_placeholder_after_the_sentence(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(teacher_max_tokens=5))
    ids, sent, ph = b.teacher("Open the file menu and choose Save As.")
    assert ids[0] == tiny_tokenizer.bos_token_id and ph == len(ids) - 1
    assert sent == list(range(1, 6))  # truncated to 5 sentence tokens
    assert ids[ph] == b.placeholder_id


def test_pad_batch_left_and_right(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2))
    batch = [b.chat("Hi.", answer="Yes."), b.chat("Translate to English now please.", answer="No.")]
    right, left = pad_batch(batch, 0), pad_batch(batch, 0, left=True)
    assert right["slot_mask"].sum().item() == left["slot_mask"].sum().item() == 4
    assert right["attention_mask"][0, 0] == 1 and left["attention_mask"][0, 0] == 0
    for t in (right, left):
        assert ((t["labels"] != IGNORE) <= (t["attention_mask"] == 1)).all()


def test_follow_up_turns_keep_the_slots_in_the_first_user_turn(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2, system="S."))
    first = b.chat("What is it?")
    e = b.chat("And then?", history=[("What is it?", "A menu.")], answer="It opens.")
    assert e.slot_positions == first.slot_positions
    assert e.input_ids[: len(first)] == first.input_ids  # the first turn's prompt is a prefix: its cache is reusable
    text = tiny_tokenizer.decode(e.input_ids)
    assert "A menu.<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n" in text
    assert tiny_tokenizer.decode([t for t, l in zip(e.input_ids, e.labels) if l != IGNORE]) == "It opens.<|im_end|>"


def test_pad_batch_rounds_the_width_up(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2))
    e = b.chat("Hi.", answer="Yes.")
    out = pad_batch([e], 0, multiple=16)
    assert out["input_ids"].shape[1] % 16 == 0 and out["input_ids"].shape[1] - len(e) < 16
    assert out["attention_mask"].sum() == len(e) and out["slot_mask"].sum() == 2


def test_hints_follow_the_slots_and_carry_no_loss(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(k=2, system="Be brief.", hints=True))
    e = b.chat("Translate to English.", answer="Page 12 of the PDF.", k=2, hints=["12", "PDF"])
    after = tiny_tokenizer.decode(e.input_ids[e.slot_positions[-1] + 1 :])
    assert after.startswith("\nVerbatim: 12 | PDF\n\nTranslate to English.<|im_end|>\n<|im_start|>assistant\n")
    trained = [t for t, l in zip(e.input_ids, e.labels) if l != IGNORE]
    assert tiny_tokenizer.decode(trained) == "Page 12 of the PDF.<|im_end|>"
    # a text without hints: the same frame as a model without the pathway
    plain = PromptBuilder(tiny_tokenizer, PromptConfig(k=2, system="Be brief."))
    assert b.chat("Translate to English.", hints=[]).input_ids == plain.chat("Translate to English.").input_ids
    # hints only with slots, and only for a config trained with them
    with pytest.raises(LlinkError, match="hints go with slots"):
        plain.chat("Translate to English.", hints=["12"])
    with pytest.raises(LlinkError, match="hints go with slots"):
        b.chat("Translate to English.", passage="x", hints=["12"])


def test_k_rule_gives_k_from_the_token_count_within_its_bounds():
    from llink.prompts import parse_k_rule

    rule = parse_k_rule("8,2,16")
    assert rule == {"ratio": 8.0, "min": 2, "max": 16}
    cfg = PromptConfig(k=16, k_rule=rule)
    assert [cfg.k_for(n) for n in (1, 16, 17, 40, 128, 129, 4000)] == [2, 2, 3, 5, 16, 16, 16]
    assert PromptConfig(k=8).k_for(4000) == 8  # no rule: every text gets K
    assert parse_k_rule(None) is None and parse_k_rule("") is None
    for bad in ("8,2", "x,2,4", "8,2.5,4"):
        with pytest.raises(LlinkError, match="k_rule"):
            parse_k_rule(bad)
    with pytest.raises(LlinkError, match="k_rule must be"):
        PromptConfig(k=4, k_rule={"ratio": 8, "min": 5, "max": 4})
    with pytest.raises(LlinkError, match="the rule's max"):
        PromptConfig(k=8, k_rule=rule)
