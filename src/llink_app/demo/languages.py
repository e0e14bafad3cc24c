"""The demo over several languages (`llink demo --lang km,hi`): one bridge trained on all of them,
and each language's own test split scored the same way, so the report shows one row per language.

The detailed sections (sweep, numbers, understanding, out of domain) stay on the first language:
they need splits only some languages have, and the sweep picks one teacher for the whole bridge.
"""

from __future__ import annotations

import json
from pathlib import Path


def per_language(stage_a, model, direct, encoder, langs: list[str], n: int, key: dict, trained: list[str] | None, out: Path,
                 retrieval: dict[str, dict] | None = None) -> dict:
    """Per language: pairs per split, decoder tokens per English token, Stage A's retrieval beside
    the encoder-only ceiling, and translation by llink, its shuffled control and (when trained) the
    direct finetune on a seeded `n` of the test split. `trained`: the languages Stage B learned
    (from its config), so a language outside it is marked zero-shot, never guessed. `retrieval`:
    test results already computed (the detailed sections' language), reused, not scored again."""
    from llink.data import corpus_stats, load_split
    from llink.data.sampling import subsample
    from llink.eval.generate import cached_system, evaluate_generation, llink_systems
    from llink.eval.retrieval import retrieval_report
    from llink.eval.tokens import inflation

    decoding = dict(max_new_tokens=32, batch_size=16, seed=17)
    systems = [cached_system(s, **key) for s in llink_systems(model, direct, **decoding) if s.name != "base"]
    res, rows = {}, []
    for lang in langs:
        test = load_split("test", lang)
        ret = (retrieval or {}).get(lang) or retrieval_report(stage_a, test, with_base=False)[0]
        sample = subsample(test, n, 17)
        gen, r = evaluate_generation(systems, encoder, sample)
        rows += [{**x, "lang": lang} for x in r]
        res[lang] = {"pairs": {s: v["pairs"] for s, v in corpus_stats(lang).items()},
                     "tokens_ratio": inflation(model.decoder.tokenizer, [p.src for p in test], [p.en for p in test], 1)["ratio"],
                     "retrieval": {k: ret[k]["src2en"] for k in ("llink", "encoder_ceiling")},
                     "generate": {name: {"chrf": g["chrf"], "fidelity": g["fidelity"]} for name, g in gen.items()},
                     "n_generate": len(sample), "zero_shot": None if trained is None else lang not in trained}
    (out / "outputs_languages.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    return res


def language_lines(per: dict) -> list[str]:
    """One row per language: the README's issue-27 table, from this run."""
    from llink.data.scripts import language_name

    g = lambda r, name, f: f"{r['generate'][name][f]:.{2 if f == 'chrf' else 3}f}" if name in r["generate"] else "-"
    lines = ["| language | train / dev / test pairs | tokens × English | encoder-only R@1 | llink R@1 | chrF++ llink (shuffled) | "
             "fidelity llink (shuffled) | chrF++ direct_finetune |", "|---|---|---|---|---|---|---|---|"]
    for lang, r in per.items():
        p = r["pairs"]
        zs = " (zero-shot)" if r.get("zero_shot") else ""
        lines.append(f"| {language_name(lang)} `{lang}`{zs} | {p['train']:,} / {p['dev']:,} / {p['test']:,} | {r['tokens_ratio']:.2f} | "
                     f"{r['retrieval']['encoder_ceiling']['r1']:.3f} | {r['retrieval']['llink']['r1']:.3f} | "
                     f"{g(r, 'llink', 'chrf')} ({g(r, 'llink_shuffled', 'chrf')}) | {g(r, 'llink', 'fidelity')} ({g(r, 'llink_shuffled', 'fidelity')}) | "
                     f"{g(r, 'direct_finetune', 'chrf')} |")
    return lines
