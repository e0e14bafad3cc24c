"""`llink eval retrieval | generate | judge`: the evaluation commands over the library's metrics."""

from __future__ import annotations

from pathlib import Path

from llink.errors import LlinkError


def chosen_systems(systems: str | None, known, direct, default=lambda name: True) -> list[str]:
    """The systems `--systems` names (checked against `known`), or by default every known one
    that `default` admits, direct_finetune only when a --direct artifact is given."""
    if systems is None:
        return [x for x in known if (x != "direct_finetune" or direct is not None) and default(x)]
    wanted = [x.strip() for x in systems.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in known]
    if unknown or not wanted:
        raise LlinkError(f"unknown system(s) {unknown or systems!r}; choose from {', '.join(known)}")
    if "direct_finetune" in wanted and direct is None:
        raise LlinkError("--systems direct_finetune needs --direct DIR")
    return wanted


def seen_languages(model, lang: str, data) -> dict:
    """The evaluated language beside the ones the bridge trained on. A language no stage trained
    on is a zero-shot score (issue 27): said in the result, never left implied. None when the
    artifact does not record its languages, or the pairs come from a user's file."""
    trained = model.config.trained_languages()
    return {"lang": None if data else lang, "trained_languages": trained,
            "zero_shot": None if trained is None or data else lang not in trained}


def print_retrieval(res: dict) -> None:
    trained = res.get("trained_languages")
    seen = ""
    if trained is not None:
        on = ",".join(trained) or "no language's pairs (English only)"
        seen = f", zero-shot: the bridge trained on {on}{' only' if trained else ''}" if res.get("zero_shot") else f", bridge trained on {on}"
    print(f"{res['pairs']} pairs, teacher {res['teacher']}{seen}")
    print(f"{'system':<23}{'dir':<7}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MRR':>7}{'mean rank':>11}")
    for name, r in res.items():
        if not isinstance(r, dict) or "src2en" not in r:
            continue
        for d in ("src2en", "en2src"):
            m = r[d]
            print(f"{name:<23}{d:<7}{m['r1']:>7.3f}{m['r5']:>7.3f}{m['r10']:>7.3f}{m['mrr']:>7.3f}{m['mean_rank']:>11.1f}")


def eval_retrieval(
    model: Path | None = None,
    split: str = "test",
    lang: str = "km",
    data: Path | None = None,
    base: bool = True,
    out: Path | None = None,
    json: bool = False,
) -> None:
    """Retrieval in decoder space: each projected source vector ranked against all English teachers.

    Args:
        model: an LLINK artifact directory (e.g. runs/align/llink).
        split: train, dev or test of the committed corpus (ignored with --data).
        lang: language of the committed corpus, or several (km,hi,my): each scored on its own split,
            each result saying whether the bridge trained on that language or meets it zero-shot.
        data: any TSV/JSONL of (source, english) pairs to evaluate on instead.
        base: also score the base decoder reading the raw source text (slow: long token sequences).
        out: directory for retrieval.json (retrieval_<lang>.json with several languages) and the rank
            histogram PNG (default: next to the model).
        json: print JSON instead of a table ({lang: result} with several languages).
    """
    import json as jsonlib

    from llink.data import load_pairs
    from llink.data.languages import parse_langs
    from llink.eval.plots import rank_histogram
    from llink.eval.retrieval import retrieval_report
    from llink.model import LLINK

    if model is None:
        raise LlinkError("--model is required: an LLINK artifact directory (e.g. runs/align/llink)")
    langs = parse_langs(lang)
    if data and len(langs) > 1:
        raise LlinkError(f"--data is one file of one language; --lang {lang} names {len(langs)}: give one --lang, or drop --data")
    sets = {one: load_pairs(split, one, data) for one in langs}  # every split is found before the model loads
    m = LLINK.from_pretrained(model)
    out = Path(out) if out else Path(model).parent
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for one, pairs in sets.items():
        res, rk = retrieval_report(m, pairs, with_base=base)
        res["split"] = str(data) if data else split
        res.update(seen_languages(m, one, data))
        name = "" if len(langs) == 1 else f"_{one}"
        (out / f"retrieval{name}.json").write_text(jsonlib.dumps(res, indent=2))
        rank_histogram(rk, out / f"retrieval_ranks{name}.png")
        results[one] = res
    if json:
        print(jsonlib.dumps(results[langs[0]] if len(langs) == 1 else results, indent=2))
        return
    for one, res in results.items():
        if len(langs) > 1:
            print(f"\n== {one}")
        print_retrieval(res)


def print_generation(res: dict, oracle: dict | None = None) -> None:
    """The translation table; then, when the other tasks were scored, the understanding table
    (each system's answers vs the oracle's, per task and their mean), the oracle marked as such."""
    w = max([17, *(len(n) + 2 for n in res)])
    print(f"{'system':<{w}}{'chrF++':>8}{'BLEU':>7}{'fidelity':>10}{'distinct':>10}{'English':>9}{'numbers':>9}")
    for name, r in res.items():
        num = r.get("numeric", {}).get("rate")
        print(f"{name:<{w}}{r['chrf']:>8.2f}{r['bleu']:>7.2f}{r['fidelity']:>10.3f}{r['distinct_outputs']:>10}{r['english']:>9.2f}"
              f"{'-' if num is None else f'{num:.2f}':>9}")
    scored = {name: r["understanding"] for name, r in res.items() if r.get("understanding")}
    if not scored:
        return
    first = next(iter(scored.values()))
    fmt = lambda x, spec: "-" if x is None else format(x, spec)  # noqa: E731
    print(f"\nUnderstanding: answers vs the oracle's (`{first['reference']}`: the frozen decoder reading the English text), "
          f"{first['n']} texts per task")
    w = max([19, *(len(n) + 2 for n in scored)])
    print(f"{'system':<{w}}{'task':<11}{'chrF++':>8}{'cosine':>8}{'oracle-fid':>12}{'English':>9}")
    for name, u in scored.items():
        for task, t in [*u["tasks"].items(), ("mean", u["mean"])]:
            eng = fmt(t.get("english"), ".2f")
            print(f"{name:<{w}}{task:<11}{fmt(t['chrf'], '.2f'):>8}{fmt(t['cosine'], '.3f'):>8}{fmt(t['oracle_fidelity'], '.3f'):>12}{eng:>9}")
    for task, t in (oracle or {}).items():
        print(f"{first['reference'] + ' (oracle)':<{w}}{task:<11}{t['chrf']:>8.2f}{t['cosine']:>8.3f}{fmt(t['oracle_fidelity'], '.3f'):>12}"
              f"{t['english']:>9.2f}  {t['distinct_outputs']} distinct")
    if oracle:
        print("The oracle's own row is its answers against themselves: its oracle-fidelity is the ceiling (a repeated answer is a miss for all).")


def eval_generate(
    model: Path | None = None,
    direct: Path | None = None,
    split: str = "test",
    lang: str = "km",
    data: Path | None = None,
    n: int = 200,
    tasks: str = "summarise,bullets,qa",
    n_other: int = 20,
    systems: str | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    seed: int = 17,
    out: Path | None = None,
    json: bool = False,
) -> None:
    """Generation with content-transfer controls: base, direct finetune, llink, llink_shuffled,
    the oracle english, and the perfect-reader controls llink_english_in(_shuffled).

    Translation is scored with chrF++ and BLEU (sacrebleu) against the English reference, and
    with fidelity (output closer to its own reference than to every other one, encoder cosine).
    The other task prompts (free-form understanding) run on the first --n_other texts and are
    scored against the oracle: the frozen decoder (as base) answering the same instruction from
    the item's English text (the system `english`, which does not translate). Per system and
    task: chrF++ and encoder cosine to the oracle's answer, and oracle fidelity (the answer closer
    to its own item's oracle answer than to every other one); and their mean over the tasks.
    The oracle's answers are computed whenever other tasks run, even with `english` left out of
    --systems (its rows are then not saved). Every output is saved.

    generate.json: {"split", "n", "max_new_tokens", "generate": {system: {chrf, bleu, fidelity,
    distinct_outputs, english, numeric, seconds, "understanding": {"reference": "english", "n",
    "tasks": {task: {chrf, cosine, oracle_fidelity, english}}, "mean": {chrf, cosine,
    oracle_fidelity}}}}, "understanding_oracle": {task: {n, distinct_outputs, chrf, cosine,
    oracle_fidelity, english}}} (the oracle against itself; its oracle_fidelity is the ceiling).
    "understanding" and "understanding_oracle" are there only when other tasks ran. outputs.jsonl:
    one row per (system, task, text) with reference_kind "human" (translation: the English
    sentence) or "oracle" (the other tasks: the oracle's answer; these rows also carry english,
    the text's English), which `llink eval judge` judges against.

    Args:
        model: a Stage B LLINK artifact directory.
        direct: a direct-finetune artifact (from `llink finetune-direct`) to compare against.
        split: a split of the committed corpus (ignored with --data): train, dev, test, test_numbers, test_passages,
            dev_passages, ood_dev, ood_test.
        lang: language of the committed corpus.
        data: any TSV/JSONL of (source, english) pairs instead of a split.
        n: texts in the fixed (seeded) sample.
        tasks: other task prompts to run (summarise, bullets, qa; empty for none).
        n_other: texts per other task (0: translation only).
        systems: which of base, direct_finetune (needs --direct), llink, llink_shuffled,
            llink_shuffled_slots, english, llink_english_in, llink_english_in_shuffled to run
            (default: all but the last two, direct_finetune only when --direct is given, english
            only when other tasks run). llink_english_in reads each pair's English instead of its
            foreign text through the same encoder and slots (with the hints a translation of it
            would carry), with its shuffled control: the ceiling of a perfect reader of the
            language, for a bridge whose Stage A read English unmoved (no --english_offset).
        max_new_tokens: answer length cap (greedy decoding for every system).
        batch_size: generation batch size.
        seed: seed of the sample and of the shuffled-slot control.
        out: directory for generate.json and outputs.jsonl (default: next to the model).
        json: print JSON instead of a table.
    """
    import json as jsonlib

    from llink.data import load_pairs
    from llink.model import DirectModel
    from llink.data.sampling import subsample
    from llink.eval.generate import ENGLISH_IN, OTHER_TASKS, SYSTEMS, evaluate_generation, llink_systems, oracle_summary

    if n < 2:
        raise LlinkError(f"--n must be >= 2, got {n}")
    if n_other < 0:
        raise LlinkError(f"--n_other must be >= 0 (0 skips the other tasks), got {n_other}")
    other = [t.strip() for t in tasks.split(",") if t.strip()]
    bad = [t for t in other if t not in OTHER_TASKS]
    if bad:
        raise LlinkError(f"unknown task(s) {bad}; choose from {', '.join(OTHER_TASKS)}")
    free_form = bool(other) and n_other > 0
    wanted = chosen_systems(systems, SYSTEMS, direct, default=lambda x: (x != "english" or free_form) and x not in ENGLISH_IN)
    if systems is not None:
        if "english" in wanted and not free_form:
            raise LlinkError("--systems english answers only the other tasks (it is their oracle; it does not translate): "
                             "give --tasks and --n_other > 0, or leave it out")
    from .generate import _load

    m = _load(model, fold=False)  # the base and direct systems need the decoder without this LoRA
    d = DirectModel.from_pretrained(direct, decoder=m.decoder) if direct is not None else None
    pairs = subsample(load_pairs(split, lang, data), n, seed)
    built = llink_systems(m, d, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, english=True,
                          english_in=any(x in ENGLISH_IN for x in wanted))
    chosen = [s_ for s_ in built if s_.name in wanted]
    absent = [w for w in wanted if w not in {s_.name for s_ in built}]
    if systems is not None and absent:
        raise LlinkError(f"--systems {','.join(absent)}: not available for {model} (llink_shuffled_slots needs a model trained with hints)")
    # the oracle's answers are the other tasks' reference, even when its rows are not wanted
    oracle = next(s_ for s_ in built if s_.name == "english") if free_form else None
    res, rows = evaluate_generation(chosen, m.encoder, pairs, other, n_other, oracle=oracle)
    report = {"split": str(data) if data else split, "n": len(pairs), "max_new_tokens": max_new_tokens, **seen_languages(m, lang, data),
              "generate": res}
    if free_form:
        report["understanding_oracle"] = oracle_summary(m.encoder, rows)
    out = Path(out) if out else Path(model).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "generate.json").write_text(jsonlib.dumps(report, indent=2))
    (out / "outputs.jsonl").write_text("".join(jsonlib.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if json:
        print(jsonlib.dumps(report, indent=2))
    else:
        print_generation(res, report.get("understanding_oracle"))


def eval_judge(
    outputs: Path | None = None,
    a: str = "llink",
    b: str = "base",
    judge: str = "reference",
    judge_url: str | None = None,
    judge_model: str | None = None,
    task: str | None = None,
    out: Path | None = None,
    json: bool = False,
) -> None:
    """Pairwise preference of system A over system B, judged in both orders (ties reported).

    Each item is judged against its row's reference: the English sentence for translation
    (reference_kind "human"), the oracle's answer (the frozen decoder reading the English text)
    for the free-form tasks (reference_kind "oracle"; rows without a kind are "human"). The
    result's reference_kinds and reference_kind_per_task say which were used.

    Args:
        outputs: outputs.jsonl written by `llink eval generate` (or the demo).
        a: system A (e.g. llink).
        b: system B (e.g. base, direct_finetune, llink_shuffled).
        judge: 'reference' (offline: encoder cosine + chrF++ to each item's reference), 'endpoint'
            (an OpenAI-compatible API: --judge_url, --judge_model, key in $LLINK_JUDGE_API_KEY), or a
            local Hugging Face causal LM id/path.
        judge_url: endpoint base URL, e.g. http://localhost:8000/v1 (with --judge endpoint).
        judge_model: model name at the endpoint.
        task: only judge this task (translate, summarise, bullets, qa); default all.
        out: write judge_<a>_vs_<b>.json and a win/tie/loss PNG here (default: next to the outputs).
        json: print JSON instead of a line of text.
    """
    import json as jsonlib

    from llink.eval.judge import EndpointJudge, LocalJudge, ReferenceJudge, pairwise
    from llink.eval.plots import win_tie_loss

    if outputs is None or not Path(outputs).is_file():
        raise LlinkError(f"--outputs must be an outputs.jsonl from `llink eval generate` (got {outputs})")
    rows = []
    for n, line in enumerate(Path(outputs).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                r = jsonlib.loads(line)
                _ = (r["system"], r["task"], r["src"], r["reference"], r["output"])
            except (jsonlib.JSONDecodeError, KeyError, TypeError):
                raise LlinkError(f"{outputs}:{n}: expected a JSON object with system, task, src, reference, output") from None
            if task is None or r["task"] == task:
                rows.append(r)
    if judge == "reference":
        from llink.encoders import load_encoder

        j = ReferenceJudge(load_encoder())
    elif judge == "endpoint":
        if not judge_url or not judge_model:
            raise LlinkError("--judge endpoint needs --judge_url and --judge_model")
        j = EndpointJudge(judge_url, judge_model)
    else:
        j = LocalJudge(judge)
    res = pairwise(rows, a, b, j)
    out = Path(out) if out else Path(outputs).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / f"judge_{a}_vs_{b}.json").write_text(jsonlib.dumps(res, indent=2))
    win_tie_loss([res], out / f"judge_{a}_vs_{b}.png")
    if json:
        print(jsonlib.dumps(res, indent=2))
    else:
        lo, hi = res["win_rate_ci95"]
        refs = ", ".join(f"{t} vs {k}" for t, k in res["reference_kind_per_task"].items())
        print(f"{a} vs {b} ({res['n']} items, judge: {res['judge']}; references: {refs}): {res['wins']} wins, {res['ties']} ties, "
              f"{res['losses']} losses; win rate {res['win_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f})")
