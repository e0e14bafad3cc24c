"""The demo's understanding stage (the paper's Table 2 on our data): meaning choice and free-form
answers on the held-out help passages, each system against the decoder reading the English."""

from __future__ import annotations

import json
from pathlib import Path

FREE_TASKS = ("summarise", "bullets", "qa")


def understanding(model, direct, encoder, lang: str, n_choice: int | None, n_free: int, key: dict, out: Path) -> dict | None:
    """Meaning choice (log-likelihood of 4 same-document options) and free-form answers scored
    against the oracle (the frozen decoder reading the English passage), plus the pairwise judge
    with the oracle answer as its reference. None when the language has no passage split."""
    from llink.data import load_split
    from llink.data.sampling import subsample
    from llink.data.splits import split_path
    from llink.eval.comprehend import meaning_items
    from llink.eval.generate import cached_system, evaluate_generation, llink_systems, oracle_summary
    from llink.eval.judge import ReferenceJudge, pairwise

    if not split_path("test_passages", lang).is_file():
        print(f"   no test_passages split for {lang!r} (`llink data build --lang {lang}` writes one): skipped")
        return None
    passages = load_split("test_passages", lang)
    items = meaning_items(passages, 4, seed=17, limit=n_choice, where="test_passages")
    res = {"passages": len(passages), "choice": _choice(model, direct, items, key, out / "comprehend.json")}
    decoding = dict(max_new_tokens=48, batch_size=8, seed=17)
    systems = [cached_system(s, **{**key, **decoding}) for s in llink_systems(model, direct, english=True, **decoding)]
    sample = subsample(passages, n_free, 17)
    free, rows = evaluate_generation(systems, encoder, sample, FREE_TASKS, n_other=len(sample), translate=False)
    (out / "outputs_passages.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    res["free"] = {"n": len(sample), "max_new_tokens": decoding["max_new_tokens"],
                   "systems": {name: r["understanding"] for name, r in free.items()}, "oracle": oracle_summary(encoder, rows)}
    judge = ReferenceJudge(encoder)
    res["judge"] = [pairwise(rows, "llink", other, judge) for other in ("base", "direct_finetune", "llink_shuffled")
                    if any(r["system"] == other for r in rows)]
    return res


def _choice(model, direct, items, key: dict, path: Path) -> dict:
    """Scored once per set of models and items: a rerun reads comprehend.json back."""
    from llink.cache import atomic_write, read_keyed
    from llink.eval.comprehend import MEANING_INSTRUCTION, comprehension_systems, evaluate_comprehension, gap_closed
    from llink.lineage import content_key, digest, version

    k = digest({**key, "items": content_key([(i.src, i.options, i.answer) for i in items]), "tags": version("comprehend")})
    old = read_keyed(path, k)
    if old is not None:
        return old
    results = evaluate_comprehension(comprehension_systems(model, direct, seed=17), items)
    res = {"items": len(items), "n_options": len(items[0].options), "instruction": MEANING_INSTRUCTION, "systems": results,
           "gap_closed": gap_closed(results), "key": k}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(res, indent=2)))
    return res


def print_understanding(u: dict) -> None:
    from ..comprehend import print_comprehension

    print_comprehension(u["choice"])
    f = u["free"]
    print(f"free-form on {f['n']} passages ({', '.join(FREE_TASKS)}), scored against the decoder reading the English:")
    print(f"{'system':<17}{'chrF++':>8}{'cosine':>8}{'oracle-fidelity':>17}")
    for name, r in f["systems"].items():
        m = r["mean"]
        fid = "-" if m["oracle_fidelity"] is None else f"{m['oracle_fidelity']:.3f}"
        print(f"{name:<17}{m['chrf']:>8.2f}{m['cosine']:>8.3f}{fid:>17}")
    for j in u["judge"]:
        print(f"judge (oracle answer as reference): llink vs {j['b']}: win rate {j['win_rate']:.3f} ({j['wins']}/{j['ties']}/{j['losses']} w/t/l)")
