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
    direct = {k: v for k, v in stage_b.items()}  # the same budget; no Stage-B-only option
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text(yaml.safe_dump(stage_a))
    b.write_text(yaml.safe_dump(stage_b))
    c.write_text(yaml.safe_dump({**direct, "checkpoint_above_tokens": 64}))  # exercises the per-batch switch
    return a, b, c


def test_demo_runs_the_recipes_models_end_to_end_and_reuses_everything_the_second_time(tmp_path, tiny_dirs):
    from llink_app.demo.pipeline import demo
    from llink_app.demo.report import timing_notes
    from llink.model import LLINK

    a, b, c = _recipes(tmp_path, tiny_dirs)
    out = tmp_path / "run"
    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c)
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
    u = m["understanding"]
    assert u["choice"]["items"] == 8 and u["choice"]["n_options"] == 4
    assert set(u["choice"]["systems"]) == {"chance", "base", "direct_finetune", "llink", "llink_shuffled", "english"}
    assert set(u["free"]["systems"]) == {"base", "direct_finetune", "llink", "llink_shuffled"} and u["free"]["n"] == 2
    assert {j["b"] for j in u["judge"]} == {"base", "direct_finetune", "llink_shuffled"}
    assert all(j["reference_kinds"] == ["oracle"] for j in u["judge"])
    assert "## Understanding (test passages" in report and "### Meaning choice (8 items" in report
    assert len((out / "outputs_passages.jsonl").read_text().splitlines()) == 5 * 3 * 2
    assert all(r["numbers"] >= 8 for r in m["numbers_dev"]["systems"].values())  # each text shares a number with its reference
    assert "### Numbers and names (dev: 8 of the" in report and len((out / "outputs_numbers.jsonl").read_text().splitlines()) == 32
    # the held-out numbers set is where numbers kept is reported (dev is where a setting is chosen)
    assert m["numbers_test"]["pairs"] == 8 and set(m["numbers_test"]["systems"]) == set(m["generate"])
    assert all({"names", "rate"} <= set(r) for r in m["numbers_test"]["systems"].values())
    assert "### Numbers and names (test_numbers: 8 of the" in report
    # out of domain (ood_test, never trained on) beside in domain, with the shuffled control and
    # llink scored centred on the set as the encoder ceiling is
    o = m["ood"]
    # and the perfect-reader ceiling: the same bridge reading each paragraph's English
    assert o["pairs"] == 8 and o["max_new_tokens"] == 48
    assert set(o["generate"]) == {"llink", "llink_shuffled", "llink_english_in", "llink_english_in_shuffled"}
    assert set(o["retrieval"]) >= {"llink", "llink_centred", "encoder_ceiling", "encoder_ceiling_plain"} and "base" not in o["retrieval"]
    assert "## In domain and out of domain (ood_test: 8 UDHR paragraphs" in report and "Out of domain (ood_test, 8" in report
    assert "| chrF++, llink reading the English | - |" in report and "scored the same way" in report
    ood_rows = [json.loads(x) for x in (out / "outputs_ood.jsonl").read_text().splitlines()]
    assert len(ood_rows) == 4 * 8
    pairs = dict((r["src"], r["reference"]) for r in ood_rows)
    assert len(pairs) == 8 and all(pairs[r["src"]] == r["reference"] for r in ood_rows)
    assert f"encoder `{tiny_dirs['encoder']}` → decoder `{tiny_dirs['decoder']}`, encoder read at layers 1, 2" in report
    assert "bundled models" not in report
    for png in ("retrieval_ranks.png", "tokens.png", "judge.png", "sweep/sweep.png", "slots/curve.png", "align/curve.png"):
        assert (out / png).stat().st_size > 0, png
    model = LLINK.from_pretrained(out / "llink")
    assert model.decoder.model.config.num_hidden_layers == 2  # the artifact names the tiny decoder, not the bundled one
    assert model.config.encoder_layers == [1, 2] and model.encoder.dim == 48  # and the recipe's encoder readout

    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c)
    again = json.loads((out / "metrics.json").read_text())
    for key in ("stage_a", "stage_b", "direct"):
        assert again[key]["resumed_from_step"] == again[key]["steps"], key
        # a reused stage reports the training time its last checkpoint recorded, as the run that
        # made it did: no clock is read twice, so the two are equal
        assert again[key]["train_seconds"] == m[key]["train_seconds"] > 0, key
    assert again["stage_b"]["run_key"] == m["stage_b"]["run_key"] and again["machine"]["precision"] == {"stage_b": "fp32", "direct": "fp32"}
    assert again["cache_rows"]["vectors"]["computed"] == 0 and again["cache_rows"]["teacher"]["computed"] == 0
    # the sweep and every answer (test, other tasks, numbers) come back from the first run
    assert again["sweep"]["reused"] and again["sweep"]["rows"] == m["sweep"]["rows"]
    # 4 systems x (translate + 3 other tasks + numbers on dev + numbers on test_numbers) on test,
    # then on the passages the oracle's 3 tasks and the 4 systems' 3 tasks each
    calls = 4 * 6 + 3 + 4 * 3 + 4  # + llink, its control and the two reading the English on ood_test
    assert again["cache_rows"]["generations"]["computed"] == 0 and again["cache_rows"]["generations"]["reused"] == calls
    assert m["cache_rows"]["generations"] == {"computed": calls, "reused": 0}
    assert again["understanding"]["choice"] == m["understanding"]["choice"]  # read back from comprehend.json
    notes = timing_notes(again)
    assert notes["teacher sweep"] == "reused from an earlier run" and notes["generation (test)"] == "answers read from the cache"
    assert f"| teacher sweep | {again['timings_s']['teacher sweep']} | reused from an earlier run |" in (out / "report.md").read_text()
    assert again["retrieval"] == m["retrieval"] and again["generate"]["llink"]["chrf"] == m["generate"]["llink"]["chrf"]


def test_demo_runs_another_language_and_names_it(tmp_path, tiny_dirs):
    """`llink demo --lang hi` reads Hindi's committed corpus (its held-out numbers and passages
    included) and says Hindi, not Khmer; the out-of-domain set it lacks is skipped, not faked."""
    from llink_app.demo.pipeline import demo

    a, b, c = _recipes(tmp_path, tiny_dirs)
    out = tmp_path / "run"
    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c, base=False, direct=False, lang="hi")
    m = json.loads((out / "metrics.json").read_text())
    assert m["models"]["lang"] == "hi" and m["corpus"]["test"]["pairs"] == 1024
    assert m["tokens"]["src_mean"] > m["tokens"]["en_mean"]
    assert set(m["generate"]) == {"base", "llink", "llink_shuffled"}
    assert m["numbers_test"]["pairs"] == 8 and m["understanding"]["choice"]["items"] == 8 and "ood" not in m
    report = (out / "report.md").read_text()
    assert "| Hindi |" in report and "| Khmer |" not in report


def test_demo_trains_one_bridge_for_several_languages_and_reports_each(tmp_path, tiny_dirs):
    """`llink demo --lang km,hi --zero_shot my`: one bridge on Khmer and Hindi (balanced), a row per
    language with its own test split scored, Burmese marked zero-shot, the detailed sections on
    the first language; a zero-shot language that is also trained, or one without a corpus, is
    refused before anything trains."""
    import pytest

    from llink_app.demo.pipeline import demo
    from llink.errors import LlinkError
    from llink.model import LLINK

    a, b, c = _recipes(tmp_path, tiny_dirs)
    for bad, match in ((dict(lang="km,hi", zero_shot="hi"), "also in --lang"), (dict(lang="km", zero_shot="xx"), "missing .*en-xx")):
        with pytest.raises(LlinkError, match=match):
            demo(size="smoke", out=tmp_path / "bad", recipe=a, slots_recipe=b, direct_recipe=c, **bad)
    assert not (tmp_path / "bad" / "align").exists()

    out = tmp_path / "run"
    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c, base=False, direct=False, lang="km,hi", zero_shot="my")
    m = json.loads((out / "metrics.json").read_text())
    assert m["models"]["lang"] == "km,hi" and m["corpus"]["test"]["pairs"] == 1024
    langs = m["languages"]
    assert list(langs) == ["km", "hi", "my"]
    assert [langs[x]["zero_shot"] for x in langs] == [False, False, True]
    for lang, r in langs.items():
        assert r["pairs"]["test"] >= 500 and r["tokens_ratio"] > 1 and r["n_generate"] == 16, lang
        assert set(r["generate"]) == {"llink", "llink_shuffled"} and 0 <= r["retrieval"]["llink"]["r1"] <= 1, lang
    # the detailed sections read the first language: its retrieval is the per-language row's
    assert langs["km"]["retrieval"]["llink"] == m["retrieval"]["llink"]["src2en"]
    for stage, counts in LLINK.from_pretrained(out / "llink").config.languages.items():  # balanced in both stages
        assert list(counts) == ["km", "hi"] and counts["km"] == counts["hi"] > 0, stage
    rows = (out / "outputs_languages.jsonl").read_text().splitlines()
    assert len(rows) == 3 * 2 * 16 and {json.loads(r)["lang"] for r in rows} == {"km", "hi", "my"}
    report = (out / "report.md").read_text()
    assert "## Per language (test; one bridge trained on `km,hi`)" in report
    assert "| Khmer `km` |" in report and "| Hindi `hi` |" in report and "| Burmese `my` (zero-shot) |" in report
    assert "| Khmer |" in report  # the token table names the first language, not "km,hi"


def test_demo_refuses_a_recipe_that_is_not_a_mapping(tmp_path):
    import pytest

    from llink_app.demo.pipeline import demo
    from llink.errors import LlinkError

    bad = tmp_path / "bad.yaml"
    bad.write_text("- encoder\n- decoder\n")
    with pytest.raises(LlinkError, match="must be a mapping"):
        demo(size="smoke", out=tmp_path / "run", recipe=bad)


def test_plan_layers_scale_to_the_decoder_depth():
    from llink_app.demo.pipeline import scaled_layers

    assert scaled_layers("0,4,8,16,final", 30) == "0,4,8,16,final"
    assert scaled_layers("0,4,8,16,final", 16) == "0,2,4,9,final"
    assert scaled_layers("0,4,8,16,final", 2) == "0,1,final"


def test_a_second_demo_reuses_every_stage_when_cached_vectors_moved_by_1e_6(tmp_path, tiny_dirs, monkeypatch):
    """Another CPU, or another batch shape, rounds a cached vector differently (~1e-7). Reuse is
    decided by run keys of declared inputs, never by the bits of a computed tensor: with every
    cached encoder vector and teacher state perturbed by 1e-6, a second demo still reuses every
    stage, the sweep, the dev scores and the generated answers, and rewrites no artifact."""
    from pathlib import Path

    import numpy as np

    from llink.cache import load_arrays, save_arrays
    from llink_app.demo.pipeline import demo

    monkeypatch.setenv("LLINK_CACHE_DIR", str(tmp_path / "cache"))  # this test's own cache, so it can rewrite it
    a, b, c = _recipes(tmp_path, tiny_dirs)
    out = tmp_path / "run"
    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c, base=False)
    first = json.loads((out / "metrics.json").read_text())
    artifacts = {p: p.read_bytes() for p in (out / "align" / "llink" / "model.safetensors", out / "llink" / "model.safetensors",
                                             out / "direct" / "direct" / "model.safetensors")}
    moved = 0
    for shard in Path(tmp_path / "cache").glob("*/*/*.safetensors"):
        arrays, meta = load_arrays(shard)
        if "vectors" in arrays:
            arrays["vectors"] = arrays["vectors"] + np.float32(1e-6)
            save_arrays(shard, arrays, meta)
            moved += 1
    assert moved >= 2  # the encoder vectors and the teacher states

    demo(size="smoke", out=out, recipe=a, slots_recipe=b, direct_recipe=c, base=False)
    again = json.loads((out / "metrics.json").read_text())
    for key in ("stage_a", "stage_b", "direct"):
        assert again[key]["resumed_from_step"] == again[key]["steps"], key
    assert again["stage_b"]["run_key"] == first["stage_b"]["run_key"]
    assert again["sweep"]["reused"]
    assert again["cache_rows"]["generations"] == {"computed": 0, "reused": 4 * 6 + 3 + 4 * 3 + 4}  # with numbers on test_numbers and ood_test (4 systems)
    assert again["cache_rows"]["vectors"]["computed"] == 0 and again["cache_rows"]["teacher"]["computed"] == 0
    for path, data in artifacts.items():
        assert path.read_bytes() == data, path  # written once, never re-saved


def test_demo_reads_every_recipe_with_its_commands_parser(tmp_path):
    """A typo in any recipe stops the demo before anything runs, naming the key (it used to be
    dropped silently); the baseline reads its own recipe, not Stage B's."""
    import pytest

    from llink.errors import LlinkError
    from llink_app.demo.pipeline import demo

    good = tmp_path / "good.yaml"
    good.write_text("steps: 3\n")
    for which in ("recipe", "slots_recipe", "direct_recipe"):
        bad = tmp_path / f"{which}.yaml"
        bad.write_text("epochz: 3\n")
        kw = {"recipe": tmp_path / "a.yaml", "slots_recipe": good, "direct_recipe": good, which: bad}
        (tmp_path / "a.yaml").write_text("epochs: 1\n")
        with pytest.raises(LlinkError, match="epochz"):
            demo(size="smoke", out=tmp_path / "run", **kw)
        assert not (tmp_path / "run" / "metrics.json").exists()


def test_every_committed_recipe_parses_with_its_command():
    """Recipes nobody runs in a test still must not carry a typo: each is read by its command's parser."""
    from pathlib import Path

    from llink_app.demo.pipeline import read_recipe
    from llink_app.recipes.align import align
    from llink_app.recipes.direct import finetune_direct
    from llink_app.recipes.slots import slots

    paths = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        fn = slots if "slots" in path.name else finetune_direct if "direct" in path.name else align
        settings = read_recipe(fn, path)
        assert settings["seed"] == 17, path
        if "mixture" in path.name:
            assert settings["tasks"] == "translate,summarise,bullets,qa" and settings["max_translate"] == 3600, path
    # the *_long recipes are their short twins at twice the steps, nothing else: a copy must not drift
    for short in ("cpu_slots", "cpu_direct"):
        fn = slots if short == "cpu_slots" else finetune_direct
        a, b = (read_recipe(fn, paths[0].parent / f"{short}{tail}.yaml") for tail in ("", "_long"))
        assert b["steps"] == 2 * a["steps"] and {**b, "steps": a["steps"]} == a, short
