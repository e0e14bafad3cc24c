"""`llink eval retrieval | generate | judge`: the evaluation commands over the library's metrics."""

from __future__ import annotations

from pathlib import Path

from llink.errors import LlinkError


def print_retrieval(res: dict) -> None:
    print(f"{res['pairs']} pairs, teacher {res['teacher']}")
    print(f"{'system':<17}{'dir':<7}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MRR':>7}{'mean rank':>11}")
    for name, r in res.items():
        if not isinstance(r, dict) or "km2en" not in r:
            continue
        for d in ("km2en", "en2km"):
            m = r[d]
            print(f"{name:<17}{d:<7}{m['r1']:>7.3f}{m['r5']:>7.3f}{m['r10']:>7.3f}{m['mrr']:>7.3f}{m['mean_rank']:>11.1f}")


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
        lang: language of the committed corpus.
        data: any TSV/JSONL of (source, english) pairs to evaluate on instead.
        base: also score the base decoder reading the raw source text (slow: long token sequences).
        out: directory for retrieval.json and the rank histogram PNG (default: next to the model).
        json: print JSON instead of a table.
    """
    import json as jsonlib

    from llink.data import load_pairs
    from llink.eval.plots import rank_histogram
    from llink.eval.retrieval import retrieval_report
    from llink.model import LLINK

    if model is None:
        raise LlinkError("--model is required: an LLINK artifact directory (e.g. runs/align/llink)")
    pairs = load_pairs(split, lang, data)
    m = LLINK.from_pretrained(model)
    res, rk = retrieval_report(m, pairs, with_base=base)
    res["split"] = str(data) if data else split
    out = Path(out) if out else Path(model).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(jsonlib.dumps(res, indent=2))
    rank_histogram(rk, out / "retrieval_ranks.png")
    if json:
        print(jsonlib.dumps(res, indent=2))
    else:
        print_retrieval(res)


def print_generation(res: dict) -> None:
    print(f"{'system':<17}{'chrF++':>8}{'BLEU':>7}{'fidelity':>10}{'distinct':>10}{'English':>9}{'numbers':>9}")
    for name, r in res.items():
        num = r.get("numeric", {}).get("rate")
        print(f"{name:<17}{r['chrf']:>8.2f}{r['bleu']:>7.2f}{r['fidelity']:>10.3f}{r['distinct_outputs']:>10}{r['english']:>9.2f}"
              f"{'-' if num is None else f'{num:.2f}':>9}")


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
    """Generation with content-transfer controls: base, direct finetune, llink, llink_shuffled.

    Translation is scored with chrF++ and BLEU (sacrebleu) against the English reference, and
    with fidelity (output closer to its own reference than to every other one, encoder cosine).
    The other task prompts run on the first --n_other texts; every output is saved.

    Args:
        model: a Stage B LLINK artifact directory.
        direct: a direct-finetune artifact (from `llink finetune-direct`) to compare against.
        split: train, dev or test of the committed corpus (ignored with --data).
        lang: language of the committed corpus.
        data: any TSV/JSONL of (source, english) pairs instead of a split.
        n: texts in the fixed (seeded) sample.
        tasks: other task prompts to run (summarise, bullets, qa; empty for none).
        n_other: texts per other task (0: translation only).
        systems: which of base, direct_finetune (needs --direct), llink, llink_shuffled to run
            (default: all of them, direct_finetune only when --direct is given).
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
    from llink.eval.generate import OTHER_TASKS, SYSTEMS, evaluate_generation, llink_systems

    if n < 2:
        raise LlinkError(f"--n must be >= 2, got {n}")
    if n_other < 0:
        raise LlinkError(f"--n_other must be >= 0 (0 skips the other tasks), got {n_other}")
    other = [t.strip() for t in tasks.split(",") if t.strip()]
    bad = [t for t in other if t not in OTHER_TASKS]
    if bad:
        raise LlinkError(f"unknown task(s) {bad}; choose from {', '.join(OTHER_TASKS)}")
    if systems is None:
        wanted = [x for x in SYSTEMS if x != "direct_finetune" or direct is not None]
    else:
        wanted = [x.strip() for x in systems.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in SYSTEMS]
        if unknown or not wanted:
            raise LlinkError(f"unknown system(s) {unknown or systems!r}; choose from {', '.join(SYSTEMS)}")
        if "direct_finetune" in wanted and direct is None:
            raise LlinkError("--systems direct_finetune needs --direct DIR")
    from .generate import _load

    m = _load(model, fold=False)  # the base and direct systems need the decoder without this LoRA
    d = DirectModel.from_pretrained(direct, decoder=m.decoder) if direct is not None else None
    pairs = subsample(load_pairs(split, lang, data), n, seed)
    chosen = [s_ for s_ in llink_systems(m, d, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed) if s_.name in wanted]
    res, rows = evaluate_generation(chosen, m.encoder, pairs, other, n_other)
    report = {"split": str(data) if data else split, "n": len(pairs), "max_new_tokens": max_new_tokens, "generate": res}
    out = Path(out) if out else Path(model).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "generate.json").write_text(jsonlib.dumps(report, indent=2))
    (out / "outputs.jsonl").write_text("".join(jsonlib.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    if json:
        print(jsonlib.dumps(report, indent=2))
    else:
        print_generation(res)


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

    Args:
        outputs: outputs.jsonl written by `llink eval generate` (or the demo).
        a: system A (e.g. llink).
        b: system B (e.g. base, direct_finetune, llink_shuffled).
        judge: 'reference' (offline: encoder cosine + chrF++ to the human reference), 'endpoint'
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
        print(f"{a} vs {b} ({res['n']} items, judge: {res['judge']}): {res['wins']} wins, {res['ties']} ties, {res['losses']} losses; "
              f"win rate {res['win_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f})")
