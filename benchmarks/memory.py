"""Peak memory of the direct finetune's longest batches (what set `make demo`'s peak) with no
activation checkpointing, with checkpointing above a token threshold (recipes/cpu_direct.yaml) and
with checkpointing on every batch; each setting in its own process, side by side in one run.

    python benchmarks/memory.py [--steps 3] [--threshold 3072] [--json]

Each process builds the direct recipe from recipes/cpu_direct.yaml on the bundled decoder and the
committed corpus, then trains its first steps on the longest batches of the epoch. Peak RSS is the
process's own (getrusage), so it includes the decoder, the tokenised examples and Python; seconds
are the training steps only. Compare rows only within one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(steps: int, threshold: int | None, every: bool, out: str) -> dict:
    import resource
    import time

    import torch

    from llink_app.demo.pipeline import read_recipe
    from llink_app.recipes.direct import DirectConfig, DirectRecipe, finetune_direct

    settings = read_recipe(finetune_direct, ROOT / "recipes" / "cpu_direct.yaml", out=Path(out), steps=steps, eval_every=10**6,
                           checkpoint_every=10**6, max_dev=2, eval_examples=2, progress=False,
                           checkpoint_above_tokens=threshold, gradient_checkpointing=every)
    rec = DirectRecipe(DirectConfig(**settings)).setup()
    bs = rec.cfg.batch_size
    longest = sorted(range(len(rec.train_enc)), key=lambda i: -len(rec.train_enc[i]))
    rec._batches_epoch, rec._batches = 0, [torch.tensor(longest[i * bs : (i + 1) * bs]) for i in range(steps)]
    t = time.perf_counter()
    rec.train()
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "tokens_per_batch": [int(sum(len(rec.train_enc[i]) for i in b)) for b in rec._batches][:steps],
            "precision": rec.precision}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="training steps per setting, on the longest batches")
    ap.add_argument("--threshold", type=int, default=3072, help="checkpoint_above_tokens of the middle row")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        threshold, every, out = json.loads(args.child)
        print("RESULT " + json.dumps(child(args.steps, threshold, every, out)))
        return
    from llink.precision import cpu_model

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, threshold, every in (("none", None, False), (f"above {args.threshold} tokens", args.threshold, False), ("every batch", None, True)):
            spec = json.dumps([threshold, every, f"{tmp}/{len(rows)}"])
            r = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", spec], capture_output=True, text=True)
            line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"setting {name!r} failed:\n{r.stderr[-2000:]}")
            rows[name] = json.loads(line[len("RESULT "):])
    res = {"rows": rows, "cpu": cpu_model(), "steps": args.steps}
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{'activation checkpointing':<26}{'peak RSS GB':>12}{'seconds':>9}  tokens per batch")
    for name, r in rows.items():
        print(f"{name:<26}{r['peak_rss_gb']:>12}{r['seconds']:>9}  {r['tokens_per_batch']}")
    print(f"{res['cpu']}, precision {next(iter(rows.values()))['precision']}, {args.steps} steps on the longest batches")


if __name__ == "__main__":
    main()
