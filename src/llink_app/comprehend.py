"""`llink eval comprehend`: multiple-choice comprehension (meaning choice) over the library's scorer."""

from __future__ import annotations

from pathlib import Path

from llink.errors import LlinkError


def print_comprehension(report: dict) -> None:
    print(f"{report['items']} items, {report['n_options']} options each: {report['instruction']!r}")
    print(f"{'system':<17}{'acc':>7}{'acc_norm':>10}{'95% CI (acc_norm)':>20}{'n':>7}")
    for name, r in report["systems"].items():
        ci = r["acc_norm_ci95"]
        ci = "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}"
        print(f"{name:<17}{r['acc']:>7.3f}{r['acc_norm']:>10.3f}{ci:>20}{r['n']:>7}")
    gap = report["gap_closed"]
    if gap is not None:
        print(f"gap closed (acc_norm): {gap:.3f} = (llink - base) / (english - base)")


def eval_comprehend(
    model: Path | None = None,
    direct: Path | None = None,
    split: str = "test_passages",
    lang: str = "km",
    data: Path | None = None,
    n: int | None = None,
    n_options: int = 4,
    systems: str | None = None,
    batch_size: int = 8,
    seed: int = 17,
    out: Path | None = None,
    json: bool = False,
) -> None:
    """Multiple-choice comprehension: which English text does the foreign text say?

    Each item offers the text's own English among English texts of other items from the same
    document (provenance up to '#'); a system's choice is the option the decoder finds most likely
    as its answer (log-likelihood, as lm-evaluation-harness scores Belebele; no generation).
    Systems: chance, base (frozen decoder reading the raw text), direct_finetune, llink,
    llink_shuffled (another item's slots), english (frozen decoder reading the true English: the
    ceiling). Reports acc, acc_norm (per UTF-8 byte) with 95% Wilson intervals, and the share of
    the base-to-english gap llink closes.

    Args:
        model: a Stage B LLINK artifact directory.
        direct: a direct-finetune artifact (from `llink finetune-direct`) to compare against.
        split: a split of the committed corpus (ignored with --data); its pairs need provenance: test_passages, or
            dev_passages (passages of dev's held-out help files, made on the fly) to choose a recipe on.
        lang: language of the committed corpus.
        data: any TSV/JSONL of (source, english) pairs with a `source` provenance column/field whose
            part before '#' names the document, instead of a split.
        n: items in the fixed (seeded) sample (default: every usable item).
        n_options: options per item (the true English and n_options-1 from its document).
        systems: which of chance, base, direct_finetune (needs --direct), llink, llink_shuffled,
            english to run (default: all of them, direct_finetune only when --direct is given).
        batch_size: items scored together (each with all its options).
        seed: seed of the sample, the distractors, the option order and the shuffled-slot control.
        out: directory for comprehend.json (default: next to the model).
        json: print JSON instead of a table.
    """
    import json as jsonlib

    from llink.data import load_pairs
    from llink.eval.comprehend import (MEANING_INSTRUCTION, SYSTEMS, comprehension_systems, evaluate_comprehension,
                                       gap_closed, meaning_items)
    from llink.model import LLINK, DirectModel

    if model is None:
        raise LlinkError("--model is required: a Stage B LLINK artifact directory (e.g. runs/slots/llink)")
    if n_options < 2:
        raise LlinkError(f"--n_options must be >= 2, got {n_options}")
    if n is not None and n < 2:
        raise LlinkError(f"--n must be >= 2 (or left out for every item), got {n}")
    if batch_size < 1:
        raise LlinkError(f"--batch_size must be >= 1, got {batch_size}")
    from .evaluate import chosen_systems

    wanted = chosen_systems(systems, SYSTEMS, direct)
    where = str(data) if data else f"split {split!r} ({lang})"
    items = meaning_items(load_pairs(split, lang, data), n_options=n_options, seed=seed, limit=n, where=where)
    stage = LLINK.from_pretrained(model).config.stage  # cheap: no encoder or decoder yet
    if stage != "B":
        raise LlinkError(f"{model} is a Stage {stage} artifact (config stage {stage!r}), not Stage B: comprehension reads the "
                         f"text through slots; train Stage B with `llink slots --from {model}`")
    from .generate import _load

    m = _load(model, fold=False)  # the base, direct and english systems need the decoder without this LoRA
    d = DirectModel.from_pretrained(direct, decoder=m.decoder) if direct is not None else None
    chosen = [s for s in comprehension_systems(m, d, seed=seed, batch_size=batch_size) if s.name in wanted]
    res = evaluate_comprehension(chosen, items)
    report = {"split": str(data) if data else split, "items": len(items), "n_options": n_options, "seed": seed,
              "instruction": MEANING_INSTRUCTION, "systems": res, "gap_closed": gap_closed(res)}
    out = Path(out) if out else Path(model).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "comprehend.json").write_text(jsonlib.dumps(report, indent=2))
    if json:
        print(jsonlib.dumps(report, indent=2))
    else:
        print_comprehension(report)
