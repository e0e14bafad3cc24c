"""Where plain retrieval loses long passages (issue 26): a Stage A bridge's R@1 src→en per split,
plain and with each side's shared direction removed, beside two fixed corrections fitted on
training-side texts only (no evaluated text is used to fit them):

- centred: queries and keys each minus their mean on the evaluated set (what `llink eval
  retrieval` prints as llink_centred; transductive, so a diagnosis, not a model);
- keys only / queries only: the same centring on one side, which says whose shared direction costs;
- teacher mean ~ log length: the teacher's z-scored vector minus a per-dimension mean fitted as
  a + b·log(decoder tokens) on English texts of train and `data/en` (teacher statistics that hold
  for long passages as well as short strings);
- query mean ~ log length: the projected vector minus a + b·log(encoder tokens), fitted on train
  source texts and `data/en` English texts read by the encoder.

    python benchmarks/long_passages.py --model runs/demo/align/llink [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np


def _design(lengths: np.ndarray) -> np.ndarray:
    return np.stack([np.ones(len(lengths)), np.log(lengths)], 1)


def _length_fit(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-dimension least squares of values on [1, log length]: a (2, dim) coefficient matrix."""
    return np.linalg.lstsq(_design(lengths), values, rcond=None)[0]


def _minus_fit(values: np.ndarray, lengths: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return (values - _design(lengths) @ coef).astype(np.float32)


def _mean_cosine(v: np.ndarray) -> float:
    u = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-8)
    n = len(u)
    return float(((u @ u.T).sum() - n) / (n * (n - 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a Stage A (or B) LLINK artifact")
    ap.add_argument("--splits", default="test,dev,ood_dev,ood_test")
    ap.add_argument("--lang", default="km")
    ap.add_argument("--n", type=int, default=1000, help="pairs per split (its first n)")
    ap.add_argument("--n_fit", type=int, default=3000, help="texts the length fits read (half train, half data/en)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    import torch

    from llink.data import load_split
    from llink.data.sampling import duplicate_groups
    from llink.data.mixture import read_english
    from llink.encoders import encode_cached
    from llink.eval.retrieval import both_directions
    from llink.model import LLINK
    from llink.prompts import PromptBuilder
    from llink.teacher import teacher_vectors

    model = LLINK.from_pretrained(args.model)
    spec, stats = model.config.teacher_spec, model.teacher_stats
    builder = PromptBuilder(model.decoder.tokenizer, model.config.prompt_config)
    keys = lambda texts: teacher_vectors(model.decoder, builder, spec, texts, stats)  # noqa: E731
    queries = lambda texts: model.project(encode_cached(model.encoder, texts)).float().numpy()  # noqa: E731
    dec_len = lambda texts: np.array([len(model.decoder.tokenizer(t).input_ids) for t in texts], np.float64)  # noqa: E731
    enc_len = lambda texts: np.array([model.encoder.token_count(t) for t in texts], np.float64)  # noqa: E731

    english = read_english()
    train = load_split("train", args.lang)
    rng = random.Random(args.seed)
    half = args.n_fit // 2
    fit_en = [p.en for p in rng.sample(train, half)] + rng.sample(english, half)
    fit_src = [p.src for p in rng.sample(train, half)] + rng.sample(english, half)
    key_coef = _length_fit(keys(fit_en), dec_len(fit_en))
    query_coef = _length_fit(queries(fit_src), enc_len(fit_src))

    rows = {}
    for split in args.splits.split(","):
        pairs = load_split(split, args.lang)[: args.n]
        src, en = [p.src for p in pairs], [p.en for p in pairs]
        groups = duplicate_groups(src, en)
        q, k = queries(src), keys(en)
        k_len = dec_len(en)
        r1 = lambda a, b: both_directions(torch.from_numpy(a), torch.from_numpy(b), key_groups=groups)["src2en"]["r1"]  # noqa: E731
        qc, kc = q - q.mean(0), k - k.mean(0)
        k_fit, q_fit = _minus_fit(k, k_len, key_coef), _minus_fit(q, enc_len(src), query_coef)
        rows[split] = {"pairs": len(pairs), "plain": r1(q, k), "centred": r1(qc, kc), "keys_centred": r1(q, kc),
                       "queries_centred": r1(qc, k), "teacher_length_fit": r1(q, k_fit), "query_length_fit": r1(q_fit, k),
                       "mean_cos_keys": _mean_cosine(k), "mean_cos_keys_fit": _mean_cosine(k_fit), "mean_cos_queries": _mean_cosine(q),
                       "median_decoder_tokens": float(np.median(k_len))}

    print(f"R@1 src→en, {args.model}; length fits on {args.n_fit:,} texts (half train, half data/en)")
    print("| split | pairs | median tokens | plain | centred (both) | keys only | queries only | teacher mean ~ log length | query mean ~ log length | mean cosine: keys / fitted keys / queries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for split, r in rows.items():
        print(f"| {split} | {r['pairs']:,} | {r['median_decoder_tokens']:.0f} | {r['plain']:.3f} | {r['centred']:.3f} | {r['keys_centred']:.3f} "
              f"| {r['queries_centred']:.3f} | {r['teacher_length_fit']:.3f} | {r['query_length_fit']:.3f} "
              f"| {r['mean_cos_keys']:.2f} / {r['mean_cos_keys_fit']:.2f} / {r['mean_cos_queries']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(args.model), "n_fit": args.n_fit, "splits": rows}, indent=2))


if __name__ == "__main__":
    main()
