"""`llink demo`: the pipeline at CPU scale on the bundled models and the committed corpus.

corpus stats, token inflation, the teacher sweep (small grid), Stage A (recipes/cpu.yaml),
retrieval on test against the reference systems, Stage B (recipes/cpu_slots.yaml), the direct
finetune baseline on the same examples, generation on test with the shuffled-slot control, and
numeric fidelity on the dev texts that have numbers (test has none). The Stage A recipe names the
models (bundled by default).
Every stage records its wall time; caches and checkpoints make a second run fast and an
interrupted one resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from llink.errors import LlinkError

from .readme import _readme_block, update_readme
from .report import NUMBERS_MAX_WORDS, write_report

SIZES = {
    # smoke: every stage for a few steps, to check the pipeline end to end in minutes (numbers meaningless)
    "smoke": {"sweep_layers": "4,final", "sweep_train": 500, "sweep_steps": 10, "max_train": 2000, "epochs": 1, "b_steps": 3, "n_generate": 16, "n_numbers": 8,
              "n_choice": 8, "n_free": 2, "n_ood": 8},
    "small": {"sweep_layers": "0,4,8,16,final", "sweep_train": 3000, "sweep_steps": 100, "max_train": None, "epochs": 20, "b_steps": None, "n_generate": None, "n_numbers": 48,
              "n_choice": 60, "n_free": 20, "n_ood": None},
    "full": {"sweep_layers": "0,2,4,6,8,12,16,20,24,28,30,final", "sweep_train": 6000, "sweep_steps": 150, "max_train": None, "epochs": 40,
             "b_steps": 600, "n_generate": 1000, "n_numbers": 1000, "n_choice": None, "n_free": 60, "n_ood": None},
}


def read_recipe(fn, path: Path, **overrides) -> dict:
    """A recipe read by the parser its command uses: types checked, an unknown key an error, and
    every option the recipe leaves out at the command's default; then the demo's overrides."""
    from argparse import ArgumentError

    from jsonargparse import ArgumentParser

    path = Path(path)
    if not path.is_file():
        raise LlinkError(f"recipe {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise LlinkError(f"recipe {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise LlinkError(f"recipe {path} must be a mapping of option: value, got {type(data).__name__}")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_function_arguments(fn)
    try:
        settings = parser.parse_path(str(path)).as_dict()
    except ArgumentError as e:
        raise LlinkError(f"recipe {path}: {e} (the options of `llink {fn.__name__.replace('_', '-')}` are listed by its --help)") from None
    settings.pop("__path__", None)
    settings.update(overrides)
    return settings


def scaled_layers(layers: str, num_layers: int, reference: int = 30) -> str:
    """The plans name layers of the bundled 30-layer decoder; another decoder gets the same
    relative depths (layer 8 of 30 is layer 4 of 16), so a sweep never asks for a layer it lacks."""
    out = []
    for part in layers.split(","):
        part = part.strip()
        out.append(part if part == "final" else str(min(num_layers, round(int(part) * num_layers / reference))))
    return ",".join(dict.fromkeys(out))


def demo(size: str = "small", out: Path = Path("runs/demo"), recipe: Path = Path("recipes/cpu.yaml"),
         slots_recipe: Path = Path("recipes/cpu_slots.yaml"), direct_recipe: Path = Path("recipes/cpu_direct.yaml"), base: bool = True,
         direct: bool = True, n_generate: int = 200, readme: Path | None = None, lang: str | None = None,
         zero_shot: str | None = None) -> None:
    """Run the LLINK pipeline end to end on the bundled models and write a report.

    Args:
        size: 'small' (CPU scale), 'full' (longer sweep and training: for a GPU or a patient user), or
            'smoke' (every stage for a few steps: checks the pipeline in minutes; its numbers mean nothing).
        out: output directory (Stage B artifact in out/llink, report.md, metrics.json, plots).
        recipe: Stage A recipe whose settings the demo uses, its encoder, decoder and language included
            (the bundled models and Khmer when it names none).
        slots_recipe: Stage B recipe (`llink slots`).
        direct_recipe: the direct finetune's recipe (`llink finetune-direct`; give it Stage B's steps and examples).
        base: also score the base decoder reading raw Khmer in retrieval (about 4 minutes cold).
        direct: train and evaluate the direct-finetune baseline (the slowest stage on a CPU).
        n_generate: test texts in the generation evaluation.
        readme: a README.md whose `<!-- demo:begin -->` … `<!-- demo:end -->` block is replaced by this
            run's summary table, with its Stage B curve copied to docs/demo_stage_b.png beside it
            (`make demo` passes the repository's README).
        lang: the corpus language (data/en-<lang>/, `llink data build --lang`) instead of the recipe's;
            several (km,hi,si) train one bridge on all of them, balanced, and the report gets a row per
            language; the detailed sections (sweep, numbers, understanding, out of domain) use the first.
        zero_shot: languages scored beside them that no stage trains on (e.g. my): does the
            multilingual encoder carry the bridge to a script it never saw?
    """
    from llink.data import corpus_stats, load_pairs, load_split
    from llink.data.languages import parse_langs
    from llink.data.scripts import language_name
    from llink.decoders import load_decoder
    from llink.encoders import load_encoder
    from llink.eval.plots import rank_histogram
    from llink.eval.retrieval import retrieval_report
    from llink.eval.tokens import inflation
    from llink.model import LLINK
    from llink.sweep import run_sweep

    from ..evaluate import print_retrieval
    from ..recipes.align import AlignConfig, AlignRecipe, align
    from ..recipes.direct import DirectConfig, DirectRecipe, finetune_direct
    from ..recipes.slots import SlotsConfig, SlotsRecipe, slots

    if size not in SIZES:
        raise LlinkError(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    plan, out = SIZES[size], Path(out)
    # Every recipe is read before anything runs: a typo should not surface after an hour of training.
    settings = read_recipe(align, recipe, out=out / "align", resume=True, epochs=plan["epochs"], max_train=plan["max_train"],
                           **({"lang": lang} if lang else {}))
    langs = parse_langs(settings["lang"])
    unseen = parse_langs(zero_shot) if zero_shot else []
    if set(unseen) & set(langs):
        raise LlinkError(f"--zero_shot {zero_shot}: {', '.join(sorted(set(unseen) & set(langs)))} is also in --lang {settings['lang']}; "
                         "a zero-shot language is one the bridge never trains on")
    from llink.data.splits import split_path

    for one in langs + unseen:  # every language's test split, before an hour of training needs it
        if not split_path("test", one).is_file():
            raise LlinkError(f"--lang/--zero_shot {one}: missing {split_path('test', one)}: run `llink data build --lang {one}`")
    b_steps = {"steps": plan["b_steps"]} if plan["b_steps"] else {}
    # One language and one decoder for the whole demo: Stage B takes its models from the Stage A
    # artifact, and the baseline reads the same decoder.
    stage_b = read_recipe(slots, slots_recipe, out=out / "slots", resume=True, lang=settings["lang"], **b_steps)
    direct_settings = read_recipe(finetune_direct, direct_recipe, out=out / "direct", resume=True, lang=settings["lang"],
                                  decoder=settings["decoder"], **b_steps) if direct else None
    for s_ in (stage_b, direct_settings):
        if s_ is not None and b_steps:
            s_["eval_every"] = min(plan["b_steps"], s_["eval_every"])
    names = {k: settings[k] for k in ("encoder", "encoder_layers", "decoder", "lang")}
    if readme:
        _readme_block(Path(readme))  # a bad --readme fails now, not after an hour and a half of training
    out.mkdir(parents=True, exist_ok=True)
    timings, metrics, started = {}, {"size": size, "models": names}, time.time()
    from llink.cache import cache_counts, counts_since

    counts_before = cache_counts()

    def stage(name):
        print(f"\n== {name}", flush=True)
        timings[name] = time.time()

    def done(name):
        timings[name] = round(time.time() - timings[name], 1)
        print(f"   {name}: {timings[name]} s", flush=True)

    stage("load models")
    # The recipe's models everywhere: the sweep, both stages and the baselines share these two.
    enc, dec = load_encoder(names["encoder"], layers=names["encoder_layers"]), load_decoder(names["decoder"])
    done("load models")

    stage("corpus")
    lang = langs[0]  # the detailed sections' language; every language gets its row in "per language"
    if len(langs) > 1 or unseen:
        print(f"   one bridge for {', '.join(map(language_name, langs))}"
              + (f"; {', '.join(map(language_name, unseen))} scored zero-shot" if unseen else "")
              + f"; the detailed sections use {language_name(lang)}")
    metrics["corpus"] = corpus_stats(lang)
    test = load_split("test", lang)
    metrics["tokens"] = inflation(dec.tokenizer, [p.src for p in test], [p.en for p in test], settings["k"])
    print(f"   train {metrics['corpus']['train']['pairs']}, dev {metrics['corpus']['dev']['pairs']}, test {metrics['corpus']['test']['pairs']} pairs; "
          f"{language_name(lang)} costs {metrics['tokens']['ratio']}x the English tokens")
    done("corpus")

    stage("teacher sweep")
    metrics["sweep"] = run_sweep(enc, dec, scaled_layers(plan["sweep_layers"], dec.num_layers), "placeholder,mean", "none,zscore",
                                 lang=lang, train_data=settings.get("train_data"), dev_data=settings.get("dev_data"),
                                 train_pairs=plan["sweep_train"], steps=plan["sweep_steps"], out=out / "sweep")
    done("teacher sweep")

    stage("stage A")
    rec = _resume_or_restart(lambda: AlignRecipe(AlignConfig(**settings)).setup(encoder=enc, decoder=dec))
    rec.train()
    art = rec.save()
    metrics["stage_a"] = {"teacher": rec.spec.to_dict(), "run_key": rec.key, "steps": rec.total_steps, "resumed_from_step": rec.resumed_from_step,
                          "train_pairs": len(rec.train_t.x),
                          "cache_seconds": round(rec.cache_seconds, 1), "train_seconds": round(rec.train_seconds, 3)}
    done("stage A")

    stage("retrieval (test)")
    model = LLINK.from_pretrained(art, encoder=enc, decoder=dec)
    res, rk = retrieval_report(model, test, with_base=base)
    rank_histogram(rk, out / "retrieval_ranks.png")
    metrics["retrieval"] = res
    print_retrieval(res)
    done("retrieval (test)")

    n_generate = plan["n_generate"] or n_generate
    stage("stage B")
    b_cfg = SlotsConfig(**{**stage_b, "from_stage_a": art})
    metrics["stage_b"] = _resume_or_restart(lambda: SlotsRecipe(b_cfg).run(encoder=enc, decoder=dec))
    _copy_artifact(Path(metrics["stage_b"]["artifact"]), out / "llink")
    done("stage B")

    direct_model = None
    if direct:
        stage("direct finetune")
        d_cfg = DirectConfig(**direct_settings)
        metrics["direct"] = _resume_or_restart(lambda: DirectRecipe(d_cfg).run(decoder=dec))
        from llink.model import DirectModel

        direct_model = DirectModel.from_pretrained(metrics["direct"]["artifact"], decoder=dec)
        done("direct finetune")

    stage("generation (test)")
    from llink.data.sampling import subsample
    from llink.eval.generate import evaluate_generation, llink_systems

    from ..evaluate import print_generation

    llink_b = LLINK.from_pretrained(out / "llink", encoder=enc, decoder=dec)
    sample = subsample(test, n_generate, 17)
    # A rerun with the same models and texts reads the answers back instead of decoding ~1,000
    # of them again (~7 min here): the answers are keyed by the run keys of the models that gave
    # them, the decoding settings and the generation code's version tag.
    from llink.eval.generate import cached_system
    from llink.lineage import version
    from llink.model import upstream_key, versions

    runs = {"llink": upstream_key(out / "llink"), "direct": upstream_key(metrics["direct"]["artifact"]) if direct_model is not None else None}
    decoding = dict(max_new_tokens=32, batch_size=16, seed=17)
    key = dict(decoder=dec.id, encoder=enc.id, runs=runs, versions=versions(), tags=version("generation"), **decoding)
    systems = [cached_system(s, **key) for s in llink_systems(llink_b, direct_model, **decoding)]
    gen, rows = evaluate_generation(systems, enc, sample, ("summarise", "bullets", "qa"), n_other=10)
    (out / "outputs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    metrics["generate"] = gen
    metrics["slot_norms"] = _slot_norms(llink_b, sample)
    b, inj = llink_b.builder, llink_b.read([p.src for p in sample])
    # per text: its K (a K rule) and its hints make LLINK's prompt length vary too
    metrics["prompt_tokens"] = {"base": round(sum(len(b.chat("Translate to English.", passage=p.src).input_ids) for p in sample) / len(sample), 1),
                                "llink": round(sum(len(inj.prompt(b, i, "Translate to English.")) for i in range(len(sample))) / len(sample), 1),
                                "slots": round(sum(inj.k) / len(sample), 2)}
    print_generation(gen)
    done("generation (test)")

    stage("numbers (dev)")
    metrics["numbers_dev"] = _numbers(systems, load_pairs("dev", lang, settings.get("dev_data")), plan["n_numbers"], out / "outputs_numbers.jsonl")
    done("numbers (dev)")

    if split_path("test_numbers", lang).is_file():  # the held-out numbers set (help files held out of train and dev)
        stage("numbers (test_numbers)")
        metrics["numbers_test"] = _numbers(systems, load_pairs("test_numbers", lang), plan["n_numbers"], out / "outputs_numbers_test.jsonl")
        done("numbers (test_numbers)")

    if split_path("ood_test", lang).is_file():  # built by `llink data ood`; never trained on
        stage("out of domain (ood_test)")
        ood = subsample(load_pairs("ood_test", lang), plan["n_ood"], 17)
        metrics["ood"] = _out_of_domain(model, llink_b, enc, ood, key, out / "outputs_ood.jsonl")
        done("out of domain (ood_test)")

    stage("judge")
    from llink.eval.judge import ReferenceJudge, pairwise
    from llink.eval.plots import win_tie_loss

    judge = ReferenceJudge(enc)
    metrics["judge"] = [pairwise(rows, "llink", other, judge) for other in ("base", "direct_finetune", "llink_shuffled")
                        if any(r["system"] == other for r in rows)]
    win_tie_loss(metrics["judge"], out / "judge.png")
    done("judge")

    stage("understanding (test passages)")
    from .understanding import print_understanding, understanding

    u = understanding(llink_b, direct_model, enc, lang, plan["n_choice"], plan["n_free"], key, out)
    if u is not None:
        metrics["understanding"] = u
        print_understanding(u)
    done("understanding (test passages)")

    if len(langs) > 1 or unseen:
        stage("per language (test)")
        from .languages import language_lines, per_language

        metrics["languages"] = per_language(model, llink_b, direct_model, enc, langs + unseen, n_generate, key,
                                            llink_b.config.trained_languages(), out, retrieval={lang: res})
        print("\n".join(language_lines(metrics["languages"])))
        done("per language (test)")

    from llink.eval.plots import token_bars

    token_bars(metrics["tokens"], out / "tokens.png", metrics["prompt_tokens"], source=language_name(lang))
    from llink.precision import cpu_model, native_bf16

    metrics["machine"] = {"cpu": cpu_model(), "native_bf16": native_bf16("cpu"),
                          "precision": {k: metrics[k].get("precision") for k in ("stage_b", "direct") if k in metrics}}
    metrics["timings_s"] = timings
    metrics["cache_rows"] = counts_since(counts_before)
    metrics["total_s"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    write_report(metrics, out)
    if readme:
        update_readme(metrics, out, Path(readme))
    r = res["llink"]["src2en"]
    print("\n== summary")
    print(f"retrieval (test, src→en): llink R@1 {r['r1']:.3f} MRR {r['mrr']:.3f}; encoder ceiling {res['encoder_ceiling']['src2en']['r1']:.3f}")
    u = metrics["stage_b"]["usage"]
    print(f"slot usage (dev answer loss): true {u['loss_true']:.3f}, shuffled {u['loss_shuffled']:.3f}, zeroed {u['loss_zeroed']:.3f}")
    print_generation(metrics["generate"])
    for j in metrics["judge"]:
        print(f"judge: llink vs {j['b']}: win rate {j['win_rate']:.3f} ({j['wins']}/{j['ties']}/{j['losses']} w/t/l)")
    print("\n".join(f"{k:<20}{v:>8} s" for k, v in timings.items()))
    print(f"{'total':<20}{metrics['total_s']:>8} s")
    print(f"report: {out / 'report.md'}; model: {out / 'llink'} (try: llink generate --model {out / 'llink'} --text '...')")




def _numbers(systems, dev, n: int, path: Path) -> dict:
    """Numeric fidelity where there are numbers to keep. The test split has none by construction
    (no digits on its Khmer side: no lexical shortcuts), so this runs on a fixed sample of the dev
    texts whose source and reference share a number, translation only."""
    from tqdm.auto import tqdm

    from llink.data.sampling import subsample
    from llink.eval.generate import NUMBER, TRANSLATE, names_kept, numeric_fidelity, source_numbers

    eligible = [p for p in dev if set(source_numbers(p.src)) & set(NUMBER.findall(p.en)) and len(p.en.split()) <= NUMBERS_MAX_WORDS]
    sample = subsample(eligible, n, 17)
    srcs, refs = [p.src for p in sample], [p.en for p in sample]
    res, rows = {"pairs": len(sample), "eligible": len(eligible), "max_words": NUMBERS_MAX_WORDS, "systems": {}}, []
    for sys_ in tqdm(systems, desc="numbers", unit="system"):
        outs = sys_.answer(srcs, TRANSLATE)
        res["systems"][sys_.name] = {**numeric_fidelity(srcs, outs, refs), "names": names_kept(srcs, outs, refs)}
        rows += [{"system": sys_.name, "src": s, "reference": r, "output": o} for s, r, o in zip(srcs, refs, outs)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return res


def _out_of_domain(stage_a, llink_b, enc, pairs, key: dict, path: Path) -> dict:
    """The held-out set from outside software: Stage A's retrieval beside the encoder's ceiling, and
    Stage B's translation beside its shuffled-slot control (48 new tokens: these are paragraphs),
    and beside the same two reading the English (a perfect reader, unless Stage A moved its English
    by the language offset)."""
    from llink.eval.generate import ENGLISH_IN, cached_system, evaluate_generation, llink_systems
    from llink.eval.retrieval import retrieval_report

    res, _ = retrieval_report(stage_a, pairs, with_base=False)
    decoding = dict(max_new_tokens=48, batch_size=16, seed=17)
    wanted = ("llink", "llink_shuffled", *ENGLISH_IN)
    systems = [cached_system(s, **{**key, **decoding}) for s in llink_systems(llink_b, english_in=True, **decoding) if s.name in wanted]
    gen, rows = evaluate_generation(systems, enc, pairs)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {"pairs": len(pairs), "retrieval": res, "generate": gen, "max_new_tokens": decoding["max_new_tokens"]}


def _resume_or_restart(run):
    """Resume a stage from its checkpoint, or, when the recipe, data or upstream artifact changed
    since it was written, keep it as checkpoint.stale.safetensors and run the stage from scratch."""
    from ..recipes.common import StaleCheckpoint

    try:
        return run()
    except StaleCheckpoint as e:
        print(f"   {e}\n   -> starting this stage over (old checkpoint kept as {e.path.with_suffix('.stale.safetensors').name})", flush=True)
        e.path.replace(e.path.with_suffix(".stale.safetensors"))
        return run()


def _copy_artifact(src: Path, dst: Path) -> None:
    """out/llink is the Stage B artifact's copy; left alone when it already is this run's."""
    import shutil

    from llink.model import artifact_key

    if artifact_key(dst) is not None and artifact_key(dst) == artifact_key(src):
        return
    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        shutil.copy2(f, dst / f.name)


def _slot_norms(model, pairs) -> dict:
    import numpy as np

    inj = model.read([p.src for p in pairs])
    rows = [inj.slots[i, :k] for i, k in enumerate(inj.k)]  # the slots each text reads (K per text)
    norms = np.concatenate([r.norm(dim=-1).numpy() for r in rows])
    emb = model.decoder.embeddings.weight.detach().norm(dim=-1).numpy()
    return {"slot_norm_mean": round(float(norms.mean()), 3), "slot_norm_std": round(float(norms.std()), 3),
            "embedding_norm_median": round(float(np.median(emb)), 3),
            "slot_cosine_within_text": round(float(np.mean([_mean_offdiag_cos(r) for r in rows if len(r) > 1] or [float("nan")])), 3)}


def _mean_offdiag_cos(slots) -> float:
    """Mean cosine between a text's distinct slots [K, H]."""
    import torch

    x = torch.nn.functional.normalize(slots, dim=-1)
    k = x.shape[0]
    return float(((x @ x.T).sum() - k) / (k * k - k))
