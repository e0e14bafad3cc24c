"""Quality against K: a Stage B model trained with mixed K (a K rule) read at one fixed K at a
time, on the same seeded dev sample (issue 25: the curve the paper never drew).

    python benchmarks/k_curve.py --models runs/slots_segments/llink,runs/slots_resampler/llink \
        [--ks 2,4,8,16,32] [--split dev] [--n 200] [--json out.json] [--plot out.png]

Per model and K: the dev answer loss of the reference translation (nats/token, teacher forced),
chrF++, fidelity, numbers kept and names kept of greedy translations (`llink eval generate`'s
scoring), and the mean prompt length. A K above the model's K_max (the slots its expander was
built for) is reported as not measurable: the model never learned that slot index. The row
`rule` is the model reading with its own K rule. Prefill cost at each K: benchmarks/prefill.py
--k K (it does not depend on the weights).

`--passages dev_passages` adds meaning choice at each K (`llink eval comprehend`'s llink system:
acc_norm over the split's seeded items, 4 same-document options): a K rule gives a 2-6 sentence
passage 10-16 slots, more than almost any translation example Stage B trains on, and a fixed
smaller K says whether reading fewer would do better. `--translation false` skips the translation
measures (the slow part) when only the passages are wanted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@torch.no_grad()
def dev_loss(m, pairs, instruction: str, batch_size: int = 16) -> float:
    """Mean answer cross-entropy of each pair's English behind its own slots (and hints)."""
    from llink.losses import answer_loss
    from llink.prompts import pad_batch
    from llink.slots import inject

    losses = []
    for s in range(0, len(pairs), batch_size):
        part = pairs[s : s + batch_size]
        inj = m.read([p.src for p in part])
        enc = [m.builder.chat(instruction, None, p.en, k=k, hints=h) for p, k, h in zip(part, inj.k, inj.hints)]
        b = pad_batch(enc, m.decoder.tokenizer.pad_token_id)
        emb = inject(m.decoder.embeddings(b["input_ids"]), b["slot_mask"], inj.slots)
        with m.using_adapter():
            losses.append(answer_loss(m.decoder, emb, b["attention_mask"], b["labels"]))
    return float(torch.cat(losses).mean())


def measure(m, pairs, k, items=None, translation: bool = True) -> dict:
    from llink.eval.generate import TRANSLATE, evaluate_generation, llink_systems

    m.with_k(k)
    t0 = time.perf_counter()
    row = {"k": "rule" if k is None else k}
    if translation:
        inj = m.read([p.src for p in pairs])
        tokens = [len(inj.prompt(m.builder, i, TRANSLATE)) for i in range(len(inj))]
        llink = next(s for s in llink_systems(m) if s.name == "llink")
        res, _ = evaluate_generation([llink], m.encoder, pairs)
        r = res["llink"]
        row.update({"mean_k": sum(inj.k) / len(inj.k), "prompt_tokens": sum(tokens) / len(tokens),
                    "dev_loss": round(dev_loss(m, pairs, TRANSLATE), 4), "chrf": r["chrf"], "fidelity": r["fidelity"],
                    "numbers_kept": r["numeric"]["rate"], "names_kept": r["names"]["rate"]})
    if items:
        from llink.eval.comprehend import comprehension_systems, evaluate_comprehension

        llink = next(s for s in comprehension_systems(m) if s.name == "llink")
        c = evaluate_comprehension([llink], items)["llink"]  # its bar: ~2 min per K on a 2-core CPU
        row.update({"passages_k": sum(m.slot_counts([it.src for it in items])) / len(items),
                    "meaning_acc_norm": c["acc_norm"], "meaning_acc": c["acc"], "meaning_ci95": c["acc_norm_ci95"]})
    row["seconds"] = round(time.perf_counter() - t0, 1)
    m.with_k(None)
    return row


def k_exposure(m, items, train, max_answer_tokens: int) -> dict:
    """How many slots the model's own K rule gives the passages, against the Stage B translation
    examples it trained on (train pairs whose English answer fits `max_answer_tokens`)."""
    tok = m.decoder.tokenizer
    # counted as Stage B's own cap counts them (no special tokens), so the same examples pass
    examples = [p.src for p in train if len(tok(p.en, add_special_tokens=False).input_ids) <= max_answer_tokens]
    passage_k, train_k = m.slot_counts([it.src for it in items]), m.slot_counts(examples)
    low, top = min(passage_k), m.config.prompt_config.k
    share = lambda ks, f: round(sum(map(f, ks)) / len(ks), 4)  # noqa: E731
    return {"k_max": top, "passage_k_min": low, "examples": len(examples), "max_answer_tokens": max_answer_tokens,
            "passages_at_k_max": share(passage_k, lambda k: k == top), "examples_at_k_max": share(train_k, lambda k: k == top),
            "examples_at_passage_k_min_or_more": share(train_k, lambda k: k >= low)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for name, rows in results.items():
        pts = [r for r in rows if isinstance(r["k"], int) and "chrf" in r]
        if not pts:
            continue
        for ax, key in zip(axes, ("chrf", "fidelity", "dev_loss")):
            ax.plot([r["k"] for r in pts], [r[key] for r in pts], marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("K (slots per text)")
            ax.set_title(key)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="comma-separated Stage B artifacts trained with a K rule")
    ap.add_argument("--ks", default="2,4,8,16,32")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--lang", default="km")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--passages", default=None, help="a split with provenance (dev_passages) to score meaning choice on at each K")
    ap.add_argument("--n_passages", type=int, default=None, help="meaning-choice items (default: every usable one)")
    ap.add_argument("--max_answer_tokens", type=int, default=24, help="the Stage B recipe's cap, for the K exposure of its train examples")
    ap.add_argument("--translation", default="true", choices=("true", "false"), help="score translation at each K (the slow part)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from llink.data import load_pairs
    from llink.data.sampling import subsample
    from llink.errors import LlinkError
    from llink.model import load_for_inference

    ks = [int(k) for k in args.ks.split(",") if k.strip()]  # "" reads only with the model's own K (rule)
    pairs = subsample(load_pairs(args.split, args.lang), args.n, args.seed)
    translation = args.translation == "true"
    items = None
    if args.passages:
        from llink.eval.comprehend import meaning_items

        items = meaning_items(load_pairs(args.passages, args.lang), 4, seed=args.seed, limit=args.n_passages, where=args.passages)
    results, exposure = {}, {}
    for path in args.models.split(","):
        # unfolded, as `llink eval comprehend` loads it, so meaning choice here is the command's to the bit
        m = load_for_inference(path, fold=items is None)
        k_max = m.config.prompt_config.k
        if items and m.config.prompt_config.k_rule:
            exposure[path] = k_exposure(m, items, load_pairs("train", args.lang), args.max_answer_tokens)
            print(json.dumps({"model": path, "k_exposure": exposure[path]}), flush=True)
        rows = []
        for k in [None, *ks]:
            if k is not None and k > k_max:
                rows.append({"k": k, "skipped": f"above the model's K_max {k_max}"})
                continue
            try:
                rows.append(measure(m, pairs, k, items, translation))
            except LlinkError as e:
                rows.append({"k": k, "skipped": str(e)})
            print(json.dumps({"model": path, **rows[-1]}), flush=True)
        results[path] = rows
    if translation:
        print(f"\n{args.split} ({len(pairs)} pairs, seed {args.seed}), greedy, 32 new tokens")
        print(f"{'model':<42} {'K':>5} {'mean K':>7} {'prompt':>7} {'loss':>7} {'chrF++':>7} {'fid':>6} {'num':>6} {'names':>6}")
        for path, rows in results.items():
            for r in rows:
                if "skipped" in r:
                    print(f"{path:<42} {r['k']!s:>5}  {r['skipped']}")
                    continue
                f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
                print(f"{path:<42} {r['k']!s:>5} {r['mean_k']:>7.2f} {r['prompt_tokens']:>7.1f} {r['dev_loss']:>7.3f} {r['chrf']:>7.2f} "
                      f"{f(r['fidelity']):>6} {f(r['numbers_kept']):>6} {f(r['names_kept']):>6}")
    if items:
        print(f"\nmeaning choice on {args.passages} ({len(items)} items, 4 options, seed {args.seed}): llink acc_norm (95% CI)")
        print(f"{'model':<42} {'K':>5} {'passage K':>10} {'acc_norm':>9} {'95% CI':>13} {'acc':>6}")
        for path, e in exposure.items():
            print(f"{path}: under its K rule {e['passages_at_k_max']:.1%} of the passages get K_max = {e['k_max']} and none fewer than "
                  f"{e['passage_k_min']}; of its {e['examples']:,} Stage B translation examples (answers <= {e['max_answer_tokens']} "
                  f"tokens) {e['examples_at_k_max']:.1%} get {e['k_max']} and {e['examples_at_passage_k_min_or_more']:.1%} {e['passage_k_min']} or more")
        for path, rows in results.items():
            for r in rows:
                if "meaning_acc_norm" in r:
                    lo, hi = r["meaning_ci95"]
                    print(f"{path:<42} {r['k']!s:>5} {r['passages_k']:>10.2f} {r['meaning_acc_norm']:>9.3f} {lo:>6.3f}-{hi:.3f} {r['meaning_acc']:>6.3f}")
    if args.json:
        args.json.write_text(json.dumps({"split": args.split, "n": len(pairs), "seed": args.seed, "passages": args.passages,
                                         "k_exposure": exposure, "results": results}, indent=2))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
