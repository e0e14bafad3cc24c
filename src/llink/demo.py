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

from .errors import LlinkError

SIZES = {
    # smoke: every stage for a few steps, to check the pipeline end to end in minutes (numbers meaningless)
    "smoke": {"sweep_layers": "4,final", "sweep_train": 500, "sweep_steps": 10, "max_train": 2000, "epochs": 1, "b_steps": 3, "n_generate": 16, "n_numbers": 8},
    "small": {"sweep_layers": "0,4,8,16,final", "sweep_train": 3000, "sweep_steps": 100, "max_train": None, "epochs": 20, "b_steps": None, "n_generate": None, "n_numbers": 48},
    "full": {"sweep_layers": "0,2,4,6,8,12,16,20,24,28,30,final", "sweep_train": 6000, "sweep_steps": 150, "max_train": None, "epochs": 40,
             "b_steps": 600, "n_generate": 1000, "n_numbers": 1000},
}


def _recipe(path: Path) -> dict:
    if not path.is_file():
        raise LlinkError(f"recipe {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise LlinkError(f"recipe {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise LlinkError(f"recipe {path} must be a mapping of option: value, got {type(data).__name__}")
    return data


def scaled_layers(layers: str, num_layers: int, reference: int = 30) -> str:
    """The plans name layers of the bundled 30-layer decoder; another decoder gets the same
    relative depths (layer 8 of 30 is layer 4 of 16), so a sweep never asks for a layer it lacks."""
    out = []
    for part in layers.split(","):
        part = part.strip()
        out.append(part if part == "final" else str(min(num_layers, round(int(part) * num_layers / reference))))
    return ",".join(dict.fromkeys(out))


def demo(size: str = "small", out: Path = Path("runs/demo"), recipe: Path = Path("recipes/cpu.yaml"),
         slots_recipe: Path = Path("recipes/cpu_slots.yaml"), base: bool = True, direct: bool = True, n_generate: int = 200,
         readme: Path | None = None) -> None:
    """Run the LLINK pipeline end to end on the bundled models and write a report.

    Args:
        size: 'small' (CPU scale), 'full' (longer sweep and training: for a GPU or a patient user), or
            'smoke' (every stage for a few steps: checks the pipeline in minutes; its numbers mean nothing).
        out: output directory (Stage B artifact in out/llink, report.md, metrics.json, plots).
        recipe: Stage A recipe whose settings the demo uses, its encoder, decoder and language included
            (the bundled models and Khmer when it names none).
        slots_recipe: Stage B recipe (also sets the direct finetune's budget: same steps and examples).
        base: also score the base decoder reading raw Khmer in retrieval (about 4 minutes cold).
        direct: train and evaluate the direct-finetune baseline (the slowest stage on a CPU).
        n_generate: test texts in the generation evaluation.
        readme: a README.md whose `<!-- demo:begin -->` … `<!-- demo:end -->` block is replaced by this
            run's summary table, with its Stage B curve copied to docs/demo_stage_b.png beside it
            (`make demo` passes the repository's README).
    """
    from .data import corpus_stats, load_pairs, load_split
    from .decoders import load_decoder
    from .encoders import load_encoder
    from .eval.cli import print_retrieval, retrieval_report
    from .eval.plots import rank_histogram
    from .eval.tokens import inflation
    from .model import LLINK
    from .teacher_cli import run_sweep
    from .train.align import AlignConfig, AlignRecipe

    if size not in SIZES:
        raise LlinkError(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    plan, out = SIZES[size], Path(out)
    # Read both recipes before anything runs: a typo should not surface after an hour of training.
    defaults = AlignConfig.__dataclass_fields__
    settings = {k: v for k, v in _recipe(Path(recipe)).items() if k in defaults}
    stage_b = _recipe(Path(slots_recipe))
    names = {k: settings.get(k, defaults[k].default) for k in ("encoder", "encoder_layers", "decoder", "lang")}
    if readme:
        _readme_block(Path(readme))  # a bad --readme fails now, not after an hour and a half of training
    out.mkdir(parents=True, exist_ok=True)
    timings, metrics, started = {}, {"size": size, "models": names}, time.time()
    from .cache import cache_counts, counts_since

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
    lang = names["lang"]
    metrics["corpus"] = corpus_stats(lang)
    test = load_split("test", lang)
    metrics["tokens"] = inflation(dec.tokenizer, [p.src for p in test], [p.en for p in test], settings.get("k", defaults["k"].default))
    print(f"   train {metrics['corpus']['train']['pairs']}, dev {metrics['corpus']['dev']['pairs']}, test {metrics['corpus']['test']['pairs']} pairs; "
          f"Khmer costs {metrics['tokens']['ratio']}x the English tokens")
    done("corpus")

    stage("teacher sweep")
    metrics["sweep"] = run_sweep(enc, dec, scaled_layers(plan["sweep_layers"], dec.num_layers), "placeholder,mean", "none,zscore",
                                 lang=lang, train_data=settings.get("train_data"), dev_data=settings.get("dev_data"),
                                 train_pairs=plan["sweep_train"], steps=plan["sweep_steps"], out=out / "sweep")
    done("teacher sweep")

    stage("stage A")
    settings.update(out=out / "align", resume=True, epochs=plan["epochs"], max_train=plan["max_train"])
    rec = _resume_or_restart(lambda: AlignRecipe(AlignConfig(**settings)).setup(encoder=enc, decoder=dec))
    rec.train()
    art = rec.save()
    metrics["stage_a"] = {"teacher": rec.spec.to_dict(), "steps": rec.total_steps, "resumed_from_step": rec.resumed_from_step,
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

    from .train.slots import DirectConfig, SlotsConfig, run_recipe

    if plan["b_steps"]:
        stage_b.update(steps=plan["b_steps"], eval_every=min(plan["b_steps"], stage_b.get("eval_every", 50)))
    n_generate = plan["n_generate"] or n_generate
    stage("stage B")
    stage_b.setdefault("lang", lang)
    stage_b.setdefault("decoder", names["decoder"])  # the direct finetune's; Stage B takes its models from the Stage A artifact
    b_cfg = SlotsConfig(**{k: v for k, v in stage_b.items() if k in SlotsConfig.__dataclass_fields__}, from_stage_a=art,
                        out=out / "slots", resume=True)
    metrics["stage_b"] = _resume_or_restart(lambda: run_recipe(b_cfg, "llink", encoder=enc, decoder=dec))
    _copy_artifact(Path(metrics["stage_b"]["artifact"]), out / "llink")
    done("stage B")

    direct_model = None
    if direct:
        stage("direct finetune")
        d_cfg = DirectConfig(**{k: v for k, v in stage_b.items() if k in DirectConfig.__dataclass_fields__}, out=out / "direct", resume=True)
        metrics["direct"] = _resume_or_restart(lambda: run_recipe(d_cfg, "direct", decoder=dec))
        from .model import DirectModel

        direct_model = DirectModel.from_pretrained(metrics["direct"]["artifact"], decoder=dec)
        done("direct finetune")

    stage("generation (test)")
    from .eval.cli import print_generation
    from .eval.generate import evaluate_generation, llink_systems
    from .train.align import subsample

    llink_b = LLINK.from_pretrained(out / "llink", encoder=enc, decoder=dec)
    sample = subsample(test, n_generate, 17)
    # A rerun with the same models and texts reads the answers back instead of decoding ~1,000
    # of them again (~7 min here); changed weights, decoder or settings are a new key.
    from .cache import code_fingerprint, tensors_fingerprint
    from .eval.generate import cached_system
    from .model import WEIGHTS, versions

    weights = {"llink": tensors_fingerprint(out / "llink" / WEIGHTS), "direct": tensors_fingerprint(Path(metrics["direct"]["artifact"]) / WEIGHTS)
               if direct_model is not None else None}
    decoding = dict(max_new_tokens=32, batch_size=16, seed=17)
    key = dict(decoder=dec.id, encoder=enc.id, weights=weights, versions=versions(), code=code_fingerprint(), **decoding)
    systems = [cached_system(s, **key) for s in llink_systems(llink_b, direct_model, **decoding)]
    gen, rows = evaluate_generation(systems, enc, sample, ("summarise", "bullets", "qa"), n_other=10)
    (out / "outputs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    metrics["generate"] = gen
    metrics["slot_norms"] = _slot_norms(llink_b, sample)
    b = llink_b.builder
    metrics["prompt_tokens"] = {"base": round(sum(len(b.chat("Translate to English.", passage=p.src).input_ids) for p in sample) / len(sample), 1),
                                "llink": len(b.chat("Translate to English.").input_ids)}
    print_generation(gen)
    done("generation (test)")

    stage("numbers (dev)")
    metrics["numbers_dev"] = _numbers(systems, load_pairs("dev", lang, settings.get("dev_data")), plan["n_numbers"], out / "outputs_numbers.jsonl")
    done("numbers (dev)")

    stage("judge")
    from .eval.judge import ReferenceJudge, pairwise
    from .eval.plots import win_tie_loss

    judge = ReferenceJudge(enc)
    metrics["judge"] = [pairwise(rows, "llink", other, judge) for other in ("base", "direct_finetune", "llink_shuffled")
                        if any(r["system"] == other for r in rows)]
    win_tie_loss(metrics["judge"], out / "judge.png")
    done("judge")

    from .eval.plots import token_bars

    token_bars(metrics["tokens"], out / "tokens.png", metrics["prompt_tokens"])
    metrics["timings_s"] = timings
    metrics["cache_rows"] = counts_since(counts_before)
    metrics["total_s"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    write_report(metrics, out)
    if readme:
        update_readme(metrics, out, Path(readme))
    r = res["llink"]["km2en"]
    print("\n== summary")
    print(f"retrieval (test, km→en): llink R@1 {r['r1']:.3f} MRR {r['mrr']:.3f}; encoder ceiling {res['encoder_ceiling']['km2en']['r1']:.3f}")
    u = metrics["stage_b"]["usage"]
    print(f"slot usage (dev answer loss): true {u['loss_true']:.3f}, shuffled {u['loss_shuffled']:.3f}, zeroed {u['loss_zeroed']:.3f}")
    print_generation(metrics["generate"])
    for j in metrics["judge"]:
        print(f"judge: llink vs {j['b']}: win rate {j['win_rate']:.3f} ({j['wins']}/{j['ties']}/{j['losses']} w/t/l)")
    print("\n".join(f"{k:<20}{v:>8} s" for k, v in timings.items()))
    print(f"{'total':<20}{metrics['total_s']:>8} s")
    print(f"report: {out / 'report.md'}; model: {out / 'llink'} (try: llink generate --model {out / 'llink'} --text '...')")


# a 32-token answer holds a sentence of up to this many English words, so a number late in it is
# not lost to the length cap
NUMBERS_MAX_WORDS = 20


def _numbers(systems, dev, n: int, path: Path) -> dict:
    """Numeric fidelity where there are numbers to keep. The test split has none by construction
    (no digits on its Khmer side: no lexical shortcuts), so this runs on a fixed sample of the dev
    texts whose source and reference share a number, translation only."""
    from tqdm.auto import tqdm

    from .eval.generate import NUMBER, TRANSLATE, numeric_fidelity, source_numbers
    from .train.align import subsample

    eligible = [p for p in dev if set(source_numbers(p.src)) & set(NUMBER.findall(p.en)) and len(p.en.split()) <= NUMBERS_MAX_WORDS]
    sample = subsample(eligible, n, 17)
    srcs, refs = [p.src for p in sample], [p.en for p in sample]
    res, rows = {"pairs": len(sample), "eligible": len(eligible), "max_words": NUMBERS_MAX_WORDS, "systems": {}}, []
    for sys_ in tqdm(systems, desc="numbers", unit="system"):
        outs = sys_.answer(srcs, TRANSLATE)
        res["systems"][sys_.name] = numeric_fidelity(srcs, outs, refs)
        rows += [{"system": sys_.name, "src": s, "reference": r, "output": o} for s, r, o in zip(srcs, refs, outs)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return res


def _resume_or_restart(run):
    """Resume a stage from its checkpoint, or, when the recipe, data or upstream artifact changed
    since it was written, keep it as checkpoint.stale.safetensors and run the stage from scratch."""
    from .train.common import StaleCheckpoint

    try:
        return run()
    except StaleCheckpoint as e:
        print(f"   {e}\n   -> starting this stage over (old checkpoint kept as {e.path.with_suffix('.stale.safetensors').name})", flush=True)
        e.path.replace(e.path.with_suffix(".stale.safetensors"))
        return run()


def _copy_artifact(src: Path, dst: Path) -> None:
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        shutil.copy2(f, dst / f.name)


def _slot_norms(model, pairs) -> dict:
    import numpy as np

    slots = model.slots([p.src for p in pairs])
    norms = slots.norm(dim=-1).flatten().numpy()
    emb = model.decoder.embeddings.weight.detach().norm(dim=-1).numpy()
    return {"slot_norm_mean": round(float(norms.mean()), 3), "slot_norm_std": round(float(norms.std()), 3),
            "embedding_norm_median": round(float(np.median(emb)), 3),
            "slot_cosine_within_text": round(float(_mean_offdiag_cos(slots)), 3)}


def _mean_offdiag_cos(slots) -> float:
    import torch

    x = torch.nn.functional.normalize(slots, dim=-1)
    sims = x @ x.transpose(1, 2)
    k = sims.shape[-1]
    return float((sims.sum((1, 2)) - k).mean() / (k * k - k))


def write_report(m: dict, out: Path) -> Path:
    res, tok, sweep = m["retrieval"], m["tokens"], m["sweep"]
    lines = ["# LLINK demo report", "", f"Size `{m['size']}`, {models_line(m)}.", ""]
    lines += ["## Summary", ""] + summary_lines(m) + [""]
    names = m.get("models") or {}
    n_test = (m.get("corpus") or {}).get("test", {}).get("pairs")
    lines += [f"## Retrieval in decoder space (test, {f'{n_test:,} ' if n_test else ''}pairs)", "",
              "| system | dir | R@1 | R@5 | R@10 | MRR | mean rank |", "|---|---|---|---|---|---|---|"]
    for name in ("llink", "encoder_ceiling", "base", "random"):
        if name in res:
            for d in ("km2en", "en2km"):
                r = res[name][d]
                lines.append(f"| {name} | {d} | {r['r1']:.3f} | {r['r5']:.3f} | {r['r10']:.3f} | {r['mrr']:.3f} | {r['mean_rank']:.1f} |")
    lines += ["", f"Teacher: `{res['teacher']}`. Paper (XLM-R-base + Llama-3.2-1B, ParaCrawl, 1,024 held-out pairs): "
              "R@1 0.45 / R@5 0.724 / R@10 0.835 / MRR 0.66 / mean rank 3.4. Different encoder, decoder and test set: "
              "compare the gap to our own baselines, not the absolute numbers.", "", "![ranks](retrieval_ranks.png)", ""]
    lines += ["## Teacher sweep (dev, probe projectors)", "", "| teacher | mean cos | dev R@1 | dev MRR |", "|---|---|---|---|"]
    for r in sweep["rows"]:
        lines.append(f"| {r['name']} | {r['teacher_mean_cos']:.3f} | {r['dev_r1']:.3f} | {r['dev_mrr']:.3f} |")
    lines += ["", f"Best probe on dev: `{sweep['best']}`. The recipe's teacher (`{res['teacher']}`) was chosen from "
              "full-length dev runs of the top probes (see the comment in recipes/cpu.yaml); short probes within ~0.02 "
              "of each other are within dev noise.", "", "![sweep](sweep/sweep.png)", ""]
    from .decoders import BUNDLED_DECODER

    source = "Khmer" if names.get("lang", "km") == "km" else f"source ({names['lang']})"
    lines += [f"## Token inflation (test, the decoder's tokenizer: `{names.get('decoder', BUNDLED_DECODER)}`)", "",
              "| | mean | median |", "|---|---|---|",
              f"| English | {tok['en_mean']} | {tok['en_median']} |", f"| {source} | {tok['km_mean']} | {tok['km_median']} |",
              f"| LLINK slots | {tok['slots']} | {tok['slots']} |", "",
              f"{source}/English {tok['ratio']}×; paper (Khmer, Llama-3.2 tokenizer): 104 vs 16 tokens.", ""]
    if "prompt_tokens" in m:
        pt = m["prompt_tokens"]
        lines += [f"Whole translate prompt (chat template included): base {pt['base']} tokens, LLINK {pt['llink']}.", ""]
    lines += ["![tokens](tokens.png)", ""]
    if "stage_b" in m:
        u = m["stage_b"]["usage"]
        lines += ["## Stage B: do the slots carry the sentence? (dev answer loss, nats/token)", "",
                  "| slots fed to the model | answer loss |", "|---|---|",
                  f"| the sentence's own | {u['loss_true']:.3f} |", f"| another sentence's (shuffled) | {u['loss_shuffled']:.3f} |",
                  f"| zeroed | {u['loss_zeroed']:.3f} |", "",
                  f"{m['stage_b']['steps']} steps on {m['stage_b']['examples']:,} examples in {m['stage_b']['train_seconds']:.0f} s. "
                  "Shuffled minus true is what the slots say about *this* sentence beyond domain and length.", "",
                  "![stage B](slots/curve.png)", ""]
    if "generate" in m:
        lines += ["## Generation on test (translate to English, greedy, 32 new tokens)", "",
                  "| system | chrF++ | BLEU | fidelity | distinct outputs | English | numbers kept |", "|---|---|---|---|---|---|---|"]
        for name, r in m["generate"].items():
            num = r["numeric"]["rate"]
            lines.append(f"| {name} | {r['chrf']:.2f} | {r['bleu']:.2f} | {r['fidelity']:.3f} | {r['distinct_outputs']} | {r['english']:.2f} | "
                         f"{'-' if num is None else f'{num:.2f}'} |")
        lines += ["", "Fidelity: the share of outputs closer (encoder cosine) to their own reference than to every other "
                  "reference in the sample. `llink_shuffled` is the same model fed another sentence's slots: llink's margin "
                  "over it is the content that crossed through the slots. The paper reports LLM-judge preferences only "
                  "(81% over base, 64% over direct finetuning), not chrF++, so there is no matching paper number.", ""]
        if m.get("judge"):
            lines += [f"### Pairwise preference ({m['judge'][0]['judge']}; both orders, disagreement = tie)", "",
                      "| llink vs | items | wins | ties | losses | win rate | 95% CI |", "|---|---|---|---|---|---|---|"]
            for j in m["judge"]:
                lo, hi = j["win_rate_ci95"]
                lines.append(f"| {j['b']} | {j['n']} | {j['wins']} | {j['ties']} | {j['losses']} | {j['win_rate']:.3f} | {lo:.3f}–{hi:.3f} |")
            lines += ["", "Paper (LLM judge, Llama-3.2-1B): ~81% preference over the base model, ~64% over direct finetuning. "
                      "Ours is an offline reference-based judge, not an LLM: `llink eval judge --judge endpoint` runs the paper's protocol "
                      "against any OpenAI-compatible model.", "", "![judge](judge.png)", ""]
        if m.get("numbers_dev", {}).get("pairs"):
            nd = m["numbers_dev"]
            lines += [f"### Numbers (dev: {nd['pairs']} of the {nd['eligible']} texts of ≤ {nd.get('max_words', NUMBERS_MAX_WORDS)} English words whose source and reference share a number)", "",
                      "| system | numbers | kept | rate |", "|---|---|---|---|"]
            for name, r in nd["systems"].items():
                rate = "-" if r["rate"] is None else f"{r['rate']:.2f}"
                lines.append(f"| {name} | {r['numbers']} | {r['kept']} | {rate} |")
            lines += ["", "The test split has no digits on its Khmer side (no lexical shortcuts), so its numbers-kept column is "
                      "empty; these dev texts (LibreOffice help, the training domain) ask whether a number survives the slots. "
                      "Outputs in `outputs_numbers.jsonl`.", ""]
        if "slot_norms" in m:
            n = m["slot_norms"]
            lines += [f"Slot norms: mean {n['slot_norm_mean']} (sd {n['slot_norm_std']}) vs median embedding norm "
                      f"{n['embedding_norm_median']}; mean cosine between a text's slots {n['slot_cosine_within_text']}.", ""]
        lines += ["Samples (first 5 test texts): see `outputs.jsonl` for all of them.", ""]
        rows = [json.loads(l) for l in (out / "outputs.jsonl").read_text(encoding="utf-8").splitlines()] if (out / "outputs.jsonl").exists() else []
        tr = [r for r in rows if r["task"] == "translate"]
        def show(srcs):
            for src in srcs:
                mine = {r["system"]: r for r in tr if r["src"] == src}
                lines.append(f"- reference: *{next(iter(mine.values()))['reference']}*")
                for name, r in mine.items():
                    lines.append(f"  - {name}: {r['output'][:160]!r}")

        show(list(dict.fromkeys(r["src"] for r in tr))[:5])
        lines += ["", "Failures: the 3 test texts where llink's sentence chrF++ is lowest.", ""]
        show(_worst(tr, "llink", 3))
        lines.append("")
    notes = timing_notes(m)
    lines += ["## Stage timings (s)", "", "| stage | seconds | note |", "|---|---|---|"]
    lines += [f"| {k} | {v} | {notes.get(k, '')} |" for k, v in m["timings_s"].items()]
    if "total_s" in m:
        slowest = max(m["timings_s"], key=m["timings_s"].get)
        lines += [f"| **total** | **{m['total_s']}** | |", "",
                  f"Total {m['total_s'] / 60:.1f} min (target for a fresh clone: 30 min); the slowest stage is {slowest} "
                  f"({m['timings_s'][slowest] / 60:.1f} min). A second run reuses caches and checkpoints."]
        if "cache_rows" in m:
            lines.append(cache_line(m["cache_rows"]))
    lines += ["", "![stage A](align/curve.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def models_line(m: dict) -> str:
    from .decoders import BUNDLED_DECODER
    from .encoders import BUNDLED_ENCODER

    names = m.get("models") or {}
    enc, dec = names.get("encoder", BUNDLED_ENCODER), names.get("decoder", BUNDLED_DECODER)
    if (enc, dec) == (BUNDLED_ENCODER, BUNDLED_DECODER):
        text = "bundled models (multilingual-e5-small → SmolLM2-135M-Instruct)"
    else:
        text = f"encoder `{enc}` → decoder `{dec}`"
    if names.get("encoder_layers"):
        text += f", encoder read at layers {', '.join(map(str, names['encoder_layers']))}"
    return text + ("" if names.get("lang", "km") == "km" else f", language `{names['lang']}`")


def _worst(rows: list[dict], system: str, n: int) -> list[str]:
    from sacrebleu.metrics import CHRF

    chrf = CHRF(word_order=2)
    mine = [r for r in rows if r["system"] == system]
    mine.sort(key=lambda r: chrf.sentence_score(r["output"], [r["reference"]]).score)
    return [r["src"] for r in mine[:n]]


def summary_lines(m: dict) -> list[str]:
    """The headline table: what the README shows and the report opens with."""
    out = []
    if "retrieval" in m:
        r, c = m["retrieval"]["llink"]["km2en"], m["retrieval"]["encoder_ceiling"]["km2en"]
        out += [f"Retrieval (test, km→en, decoder space): llink R@1 **{r['r1']:.3f}** (MRR {r['mrr']:.3f}); "
                f"encoder-only ceiling {c['r1']:.3f}.", ""]
    if "generate" in m:
        g = m["generate"]
        pt = m.get("prompt_tokens", {})
        out += ["| system | prompt tokens | chrF++ | BLEU | fidelity | distinct outputs |", "|---|---|---|---|---|---|"]
        for name, r in g.items():
            toks = pt.get("base") if name in ("base", "direct_finetune") else pt.get("llink")
            out.append(f"| {name} | {toks if toks is not None else '-'} | {r['chrf']:.2f} | {r['bleu']:.2f} | {r['fidelity']:.3f} | {r['distinct_outputs']} |")
        out.append("")
    if "stage_b" in m:
        u = m["stage_b"]["usage"]
        out += [f"Slot usage (dev answer loss, nats/token): own slots {u['loss_true']:.3f}, another sentence's "
                f"{u['loss_shuffled']:.3f}, zeroed {u['loss_zeroed']:.3f}. Stage B: {m['stage_b']['steps']} steps."]
    if m.get("judge"):
        out.append(f"Pairwise judge, {m['judge'][0]['judge']}: llink's win rate "
                   + "; ".join(f"vs {j['b']} {j['win_rate']:.2f} (95% CI {j['win_rate_ci95'][0]:.2f}–{j['win_rate_ci95'][1]:.2f})" for j in m["judge"]) + ".")
    if "total_s" in m:
        notes = timing_notes(m)
        out += ["", "Stage timings (min): " + ", ".join(f"{k} {v / 60:.1f}" + (f" ({notes[k]})" if k in notes else "")
                                                       for k, v in m["timings_s"].items())
                + f"; total **{m['total_s'] / 60:.1f}**."]
        if "cache_rows" in m:
            out.append(cache_line(m["cache_rows"]))
    return out


def timing_notes(m: dict) -> dict[str, str]:
    """Which stages picked up earlier work (a checkpoint, a sweep, cached answers): their wall
    time covers only what was left to do."""
    notes = {}
    if (m.get("sweep") or {}).get("reused"):
        notes["teacher sweep"] = "reused from an earlier run"
    gens = (m.get("cache_rows") or {}).get("generations") or {}
    if gens.get("reused") and not gens.get("computed"):
        notes["generation (test)"] = notes["numbers (dev)"] = "answers read from the cache"
    for stage, key in (("stage A", "stage_a"), ("stage B", "stage_b"), ("direct finetune", "direct")):
        s = m.get(key) or {}
        start, steps = s.get("resumed_from_step"), s.get("steps")
        if start and steps:
            notes[stage] = "reused from an earlier run" if start >= steps else f"resumed at step {start} of {steps}"
    return notes


def cache_line(rows: dict) -> str:
    """How warm the caches were: a run that computed nothing measured none of the encoding."""
    names = {"vectors": "encoder vectors", "teacher": "teacher states (text × setting)", "generations": "generation calls",
             "synth": "synthesised answers"}
    parts = [f"{names.get(k, k)} {c.get('computed', 0):,} computed / {c.get('reused', 0):,} read from the cache"
             for k, c in sorted(rows.items())]
    return "Caches in this run: " + ("; ".join(parts) if parts else "none used") + "."


BEGIN, END = "<!-- demo:begin", "<!-- demo:end -->"


def update_readme(m: dict, out: Path, readme: Path) -> None:
    """Replace the README's demo block with this run's summary and its Stage B curve."""
    import shutil

    head, tail = _readme_block(readme)
    plot = readme.parent / "docs" / "demo_stage_b.png"
    plot.parent.mkdir(exist_ok=True)
    if (out / "slots" / "curve.png").exists():
        shutil.copy2(out / "slots" / "curve.png", plot)
    block = [f"{BEGIN} (written by `make demo` from {out / 'metrics.json'}; do not edit by hand) -->",
             f"Size `{m['size']}`, {models_line(m)}, this machine.", ""] + summary_lines(m) + ["", "![Stage B curve from the demo](docs/demo_stage_b.png)", END]
    readme.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    print(f"README summary updated: {readme}")


def _readme_block(readme: Path) -> tuple[str, str]:
    """The README's text before and after its demo block; a clear error if there is none."""
    if not readme.is_file():
        raise LlinkError(f"--readme {readme}: no such file")
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise LlinkError(f"--readme {readme}: no '{BEGIN} -->' … '{END}' block to replace")
    head, rest = text.split(BEGIN, 1)
    return head, rest.split(END, 1)[1]
