"""Training examples/s: Stage B (K slots in the prompt) vs the direct finetune (raw Khmer in the
prompt), same LoRA, batch size, examples and precision, timed side by side in one run.

    python benchmarks/stage_b_throughput.py [--from runs/align/llink] [--steps 6] [--json]

Without --from an untrained Stage A artifact is assembled from the bundled models (speed does not
depend on the weights' values). The first step of each mode is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="stage_a", help="a Stage A artifact (default: an untrained one)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--precisions", default="auto", help="comma-separated, each timed side by side, e.g. fp32,bf16 (bf16 on a CPU without AVX512-BF16 or AMX is emulated: a 512x576x1536 matmul took 94x the fp32 time on an AVX2 AMD EPYC)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from llink.decoders import load_decoder
    from llink.encoders import load_encoder
    from llink.model import LLINK, LLINKConfig
    from llink.precision import cpu_model, native_bf16, resolve_precision
    from llink_app.recipes.direct import DirectConfig, DirectRecipe
    from llink_app.recipes.slots import SlotsConfig, SlotsRecipe

    enc, dec = load_encoder(), load_decoder()
    tmp = Path(tempfile.mkdtemp())
    stage_a = args.stage_a
    if stage_a is None:
        cfg = LLINKConfig.for_models("e5-small", enc, "smollm2-135m", dec, teacher={"layer": 4, "pooling": "mean", "norm": "zscore"})
        stage_a = LLINK(cfg).save_pretrained(tmp / "a")
    rows = {}
    for precision in args.precisions.split(","):
        common = dict(tasks="translate", max_answer_tokens=24, steps=args.steps + 1, batch_size=args.batch_size, eval_every=10**6,
                      checkpoint_every=10**6, max_dev=2, eval_examples=2, precision=precision, progress=False, max_translate=2000)
        for mode, rec in (("llink", SlotsRecipe(SlotsConfig(from_stage_a=Path(stage_a), out=tmp / f"b-{precision}", expander_init="identity", **common))),
                          ("direct", DirectRecipe(DirectConfig(out=tmp / f"d-{precision}", **common)))):
            rec.setup(encoder=enc, decoder=dec)
            lengths = [len(e) for e in rec.train_enc]
            rec.total_steps = 1
            rec.train()  # warm-up step
            rec.total_steps = args.steps + 1
            t = time.perf_counter()
            rec.train()
            dt = time.perf_counter() - t
            rows[f"{mode} {resolve_precision(precision)}"] = {"examples_per_s": round(args.steps * args.batch_size / dt, 2),
                                                              "seconds_per_step": round(dt / args.steps, 2),
                                                              "mean_tokens_per_example": round(sum(lengths) / len(lengths), 1)}
            if not args.json:  # a slow setting (emulated bf16) should not hide the rows already measured
                print(f"{mode} {resolve_precision(precision)}: {rows[f'{mode} {resolve_precision(precision)}']}", flush=True)
    rows = {"rows": rows, "setup": {"batch_size": args.batch_size, "steps_timed": args.steps, "threads": torch.get_num_threads(),
                                    "cpu": cpu_model(), "native_bf16": native_bf16("cpu")}}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'mode':<14}{'examples/s':>12}{'s/step':>9}{'tokens/example':>16}")
    for m, r in rows["rows"].items():
        print(f"{m:<14}{r['examples_per_s']:>12}{r['seconds_per_step']:>9}{r['mean_tokens_per_example']:>16}")
    print(f"batch {args.batch_size}, {rows['setup']['cpu']} (native bf16: {rows['setup']['native_bf16']}); compare rows only within one run")

if __name__ == "__main__":
    main()
