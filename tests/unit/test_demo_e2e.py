"""`llink demo` end to end on tiny random models named by the recipes: every stage runs, the
report is filled, the artifact loads, and a second run reuses every stage and cache."""

import json

import yaml


def _recipes(tmp_path, tiny_dirs):
    stage_a = {"encoder": tiny_dirs["encoder"], "encoder_layers": [1, 2], "decoder": tiny_dirs["decoder"], "teacher": "layer=1,pooling=mean,norm=none",
               "batch_size": 128, "queue_size": 512, "hard_negatives": 16, "max_dev": 64, "eval_every": 8,
               "checkpoint_every": 8, "warmup_steps": 2, "progress": False}
    stage_b = {"tasks": "translate", "max_answer_tokens": 8, "batch_size": 4, "precision": "fp32", "max_dev": 8,
               "eval_examples": 4, "eval_every": 2, "checkpoint_every": 2, "warmup_steps": 1, "lora_r": 4, "lora_alpha": 4,
               "progress": False}
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(stage_a))
    b.write_text(yaml.safe_dump(stage_b))
    return a, b


def test_demo_runs_the_recipes_models_end_to_end_and_reuses_everything_the_second_time(tmp_path, tiny_dirs):
    from llink.demo import demo, timing_notes
    from llink.model import LLINK

    a, b = _recipes(tmp_path, tiny_dirs)
    out = tmp_path / "run"
    demo(size="smoke", out=out, recipe=a, slots_recipe=b)
    m = json.loads((out / "metrics.json").read_text())
    assert m["models"] == {"encoder": tiny_dirs["encoder"], "encoder_layers": [1, 2], "decoder": tiny_dirs["decoder"], "lang": "km"}
    # the smoke plan's layers (4, final for a 30-layer decoder) scaled to a 2-layer one
    assert {r["layer"] for r in m["sweep"]["rows"]} == {0, "final"}
    assert set(m["generate"]) == {"base", "direct_finetune", "llink", "llink_shuffled"}
    assert set(m["retrieval"]) >= {"llink", "encoder_ceiling", "base", "random"}
    assert m["stage_b"]["steps"] == 3 and m["direct"]["steps"] == 3
    report = (out / "report.md").read_text()
    for heading in ("## Summary", "## Retrieval in decoder space (test, 1,024 pairs)", "## Teacher sweep", "## Token inflation",
                    "## Stage B", "## Generation on test", "### Pairwise preference", "## Stage timings"):
        assert heading in report, heading
    assert m["numbers_dev"]["pairs"] == 8 and set(m["numbers_dev"]["systems"]) == set(m["generate"])
    assert all(r["numbers"] >= 8 for r in m["numbers_dev"]["systems"].values())  # each text shares a number with its reference
    assert "### Numbers (dev: 8 of the" in report and len((out / "outputs_numbers.jsonl").read_text().splitlines()) == 32
    assert f"encoder `{tiny_dirs['encoder']}` → decoder `{tiny_dirs['decoder']}`, encoder read at layers 1, 2" in report
    assert "bundled models" not in report
    for png in ("retrieval_ranks.png", "tokens.png", "judge.png", "sweep/sweep.png", "slots/curve.png", "align/curve.png"):
        assert (out / png).stat().st_size > 0, png
    model = LLINK.from_pretrained(out / "llink")
    assert model.decoder.model.config.num_hidden_layers == 2  # the artifact names the tiny decoder, not the bundled one
    assert model.config.encoder_layers == [1, 2] and model.encoder.dim == 48  # and the recipe's encoder readout

    demo(size="smoke", out=out, recipe=a, slots_recipe=b)
    again = json.loads((out / "metrics.json").read_text())
    for key in ("stage_a", "stage_b", "direct"):
        assert again[key]["resumed_from_step"] == again[key]["steps"], key
        # a reused stage reports the training time that made it (up to the last checkpoint), not
        # the ~0 s of reloading it
        assert again[key]["train_seconds"] > 0.5 * m[key]["train_seconds"] > 0, key
    assert again["cache_rows"]["vectors"]["computed"] == 0 and again["cache_rows"]["teacher"]["computed"] == 0
    # the sweep and every answer (test, other tasks, numbers) come back from the first run
    assert again["sweep"]["reused"] and again["sweep"]["rows"] == m["sweep"]["rows"]
    assert again["cache_rows"]["generations"]["computed"] == 0 and again["cache_rows"]["generations"]["reused"] == 4 * 5
    assert m["cache_rows"]["generations"] == {"computed": 4 * 5, "reused": 0}
    notes = timing_notes(again)
    assert notes["teacher sweep"] == "reused from an earlier run" and notes["generation (test)"] == "answers read from the cache"
    assert f"| teacher sweep | {again['timings_s']['teacher sweep']} | reused from an earlier run |" in (out / "report.md").read_text()
    assert again["retrieval"] == m["retrieval"] and again["generate"]["llink"]["chrf"] == m["generate"]["llink"]["chrf"]


def test_demo_refuses_a_recipe_that_is_not_a_mapping(tmp_path):
    import pytest

    from llink.demo import demo
    from llink.errors import LlinkError

    bad = tmp_path / "bad.yaml"
    bad.write_text("- encoder\n- decoder\n")
    with pytest.raises(LlinkError, match="must be a mapping"):
        demo(size="smoke", out=tmp_path / "run", recipe=bad)


def test_plan_layers_scale_to_the_decoder_depth():
    from llink.demo import scaled_layers

    assert scaled_layers("0,4,8,16,final", 30) == "0,4,8,16,final"
    assert scaled_layers("0,4,8,16,final", 16) == "0,2,4,9,final"
    assert scaled_layers("0,4,8,16,final", 2) == "0,1,final"
