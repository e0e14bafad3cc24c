"""`llink teacher` (fill the teacher cache) and `llink teacher sweep` (measure teacher choices)."""

from __future__ import annotations

import json
import time
from pathlib import Path


def teacher_build(
    teacher: str = "layer=4,pooling=mean,norm=zscore",
    split: str = "train",
    lang: str = "km",
    data: Path | None = None,
    decoder: str = "smollm2-135m",
    batch_size: int = 32,
) -> None:
    """Fill the teacher cache for one split (or a --data file) and report throughput.

    Args:
        teacher: 'paper' or 'layer=N,pooling=mean|placeholder,norm=none|zscore|zscore_length'.
        split: train, dev or test.
        lang: language of the committed corpus.
        data: any TSV/JSONL of (source, english) pairs instead of a split.
        decoder: bundled 'smollm2-135m' or a Hugging Face causal LM id/path.
        batch_size: sentences per forward pass.
    """
    from llink.data import load_pairs
    from llink.decoders import load_decoder
    from llink.prompts import PromptBuilder
    from llink.teacher import cached_states, parse_teacher

    spec = parse_teacher(teacher)
    pairs = load_pairs(split, lang, data)
    dec = load_decoder(decoder)
    builder = PromptBuilder(dec.tokenizer)
    t0 = time.time()
    states = cached_states(dec, builder, [p.en for p in pairs], [spec.layer], [spec.pooling], batch_size=batch_size)
    dt = time.time() - t0
    arr = states[(spec.layer, spec.pooling)]
    print(json.dumps({"teacher": str(spec), "sentences": len(arr), "dim": arr.shape[1], "seconds": round(dt, 2),
                      "sentences_per_s": round(len(arr) / max(dt, 1e-9), 1)}, indent=2))


def teacher_sweep(
    layers: str = "0,2,4,8,12,16,20,24,30,final",
    poolings: str = "placeholder,mean",
    norms: str = "none,zscore",
    lang: str = "km",
    train_data: Path | None = None,
    dev_data: Path | None = None,
    decoder: str = "smollm2-135m",
    encoder: str = "e5-small",
    encoder_layers: list[int] | None = None,
    train_pairs: int = 4000,
    dev_pairs: int = 1000,
    steps: int = 100,
    batch_size: int = 256,
    seed: int = 17,
    out: Path = Path("runs/sweep"),
    json: bool = False,
) -> None:
    """Measure teacher settings: one probe projector per layer x pooling x norm, scored on dev.

    The 'paper' preset (final layer after the norm, placeholder, no norm) is always included.
    Results: a table, out/sweep.json and out/sweep.png. Pick the default teacher from dev, never test.

    Args:
        layers: comma-separated decoder layers (0 = embeddings) and/or 'final'.
        poolings: comma-separated subset of placeholder,mean.
        norms: comma-separated subset of none,zscore,zscore_length.
        lang: language of the committed corpus.
        train_data: any TSV/JSONL of (source, english) pairs instead of the train split.
        dev_data: any TSV/JSONL of pairs instead of the dev split.
        decoder: bundled 'smollm2-135m' or a Hugging Face causal LM id/path.
        encoder: bundled 'e5-small' or a Hugging Face encoder id/path.
        encoder_layers: encoder layers the probes read (as `llink align --encoder_layers`); unset: the final one.
        train_pairs: seeded subset of train used to fit each probe.
        dev_pairs: seeded subset of dev used to score each probe.
        steps: optimisation steps per probe.
        batch_size: pairs per step.
        seed: seed for subsets, initialisation and batches.
        out: directory for sweep.json and sweep.png.
        json: print JSON instead of a table.
    """
    import json as jsonlib

    from llink.decoders import load_decoder
    from llink.encoders import load_encoder

    from llink.sweep import run_sweep

    dec, enc = load_decoder(decoder), load_encoder(encoder, layers=encoder_layers)
    result = run_sweep(enc, dec, layers, poolings, norms, lang=lang, train_data=train_data, dev_data=dev_data,
                       train_pairs=train_pairs, dev_pairs=dev_pairs, steps=steps, batch_size=batch_size, seed=seed, out=out)
    rows, best, out = result["rows"], next(r for r in result["rows"] if r["name"] == result["best"]), Path(out)
    if json:
        return print(jsonlib.dumps(result, indent=2))
    print(f"{'teacher':<46}{'mean cos':>9}{'dev R@1':>9}{'dev MRR':>9}{'en→km R@1':>11}")
    for r in rows:
        mark = "  <- best" if r["name"] == best["name"] else ""
        print(f"{r['name']:<46}{r['teacher_mean_cos']:>9.3f}{r['dev_r1']:>9.3f}{r['dev_mrr']:>9.3f}{r['dev_r1_en2src']:>11.3f}{mark}")
    print(f"best on dev: {best['name']}  (written {out / 'sweep.json'}, {out / 'sweep.png'})")


