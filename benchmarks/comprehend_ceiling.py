"""The ceiling behind `llink eval comprehend`: on the same meaning-choice items and options, how
often does the encoder alone, and the Stage A projection in decoder space, pick the right English?
If these are high and llink's option log-likelihood is not, the content reaches the slot vector
and is lost in the decoder's reading of the slots.

    python benchmarks/comprehend_ceiling.py --model runs/demo/slots/llink --n 60 [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)).clip(1e-8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an LLINK artifact (Stage A or B)")
    ap.add_argument("--split", default="test_passages")
    ap.add_argument("--lang", default="km")
    ap.add_argument("--n", type=int, default=None, help="items (the same seeded sample as `llink eval comprehend --n`)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    import torch

    from llink.data import load_split
    from llink.eval.comprehend import meaning_items
    from llink.model import LLINK
    from llink.teacher import teacher_vectors

    items = meaning_items(load_split(args.split, args.lang), 4, seed=args.seed, limit=args.n, where=args.split)
    answers = np.array([i.answer for i in items])
    k = len(items[0].options)
    m = LLINK.from_pretrained(args.model)
    src = m.encoder.encode([i.src for i in items], progress=False)
    opts = [o for i in items for o in i.options]
    ov = m.encoder.encode(opts, progress=False).reshape(len(items), k, -1)
    mu = np.concatenate([src, ov.reshape(-1, ov.shape[-1])]).mean(0)
    spec = m.config.teacher_spec
    teacher = teacher_vectors(m.decoder, m.builder, spec, opts, m.teacher_stats, progress=False).reshape(len(items), k, -1)
    with torch.no_grad():
        projected = m.project(src).numpy()
    rows = {
        "encoder (cosine)": _cos(src[:, None], ov),
        "encoder (centred cosine)": _cos((src - mu)[:, None], ov - mu),
        "Stage A projection vs teacher states": _cos(projected[:, None], teacher),
    }
    res = {"items": len(items), "options": k, "chance": 1 / k,
           "acc": {name: round(float((s.argmax(1) == answers).mean()), 4) for name, s in rows.items()}}
    print(f"{len(items)} items, {k} options each (chance {1 / k:.3f})")
    for name, acc in res["acc"].items():
        print(f"{name:<40}{acc:>7.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
