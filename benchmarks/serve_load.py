"""Serving load on this machine: starts `llink serve`'s app on a loopback port and sends a bounded
number of chat completions, a few at a time, cycling through Khmer test sentences so that later
requests about a passage hit the slot cache. Prints requests/s, p50/p95 latency, failures, the
slot-cache hit rate and the mean batch each request was decoded in; `--json` prints JSON.

`--max_batch 1,8` (the default) serves the same load twice from one loaded model, without and
with batching of greedy requests, and prints the ratio.

Without --model it measures an untrained Stage B artifact built from the bundled models (random
projector and expander, zero LoRA): the answers are nonsense, the serving cost is the real one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.support


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="LLINK artifact directory (default: an untrained one from the bundled models)")
    ap.add_argument("--requests", type=int, default=32, help="chat completions sent in all")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    ap.add_argument("--max_tokens", type=int, default=16, help="answer length cap per request")
    ap.add_argument("--passages", type=int, default=8, help="distinct passages (test-split Khmer sentences)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", help="decoder weights: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16, fp16")
    ap.add_argument("--max_batch", default="1,8", help="comma-separated server --max_batch settings, each served in turn (1: no batching)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if min(args.requests, args.concurrency, args.max_tokens, args.passages) < 1:
        ap.error("--requests, --concurrency, --max_tokens and --passages must be >= 1")
    try:
        batches = [int(b) for b in args.max_batch.split(",")]
    except ValueError:
        ap.error(f"--max_batch must be comma-separated integers, got {args.max_batch!r}")
    if min(batches) < 1:
        ap.error("--max_batch values must be >= 1")

    from llink.data import load_pairs
    from llink.model import load_for_inference
    from llink.serve import Limits, create_app
    from benchmarks.support import run_load, running, untrained_artifact

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or untrained_artifact("e5-small", "smollm2-135m", f"{tmp}/untrained-bundled")
        t = time.perf_counter()
        # loaded as `llink serve` loads it: LoRA folded, on --device in --dtype
        model = load_for_inference(path, device=args.device, dtype=args.dtype)
        load_s = time.perf_counter() - t
        passages = [p.src for p in load_pairs("test", "km")[: args.passages]]
        runs = {}
        for b in batches:  # one server at a time over the same model: each one's worker is its only user
            app = create_app(model, limits=Limits(max_tokens=args.max_tokens, timeout_s=600, max_batch=b))
            with running(app) as url:
                runs[b] = run_load(url, passages, requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens)
    res = {"model": str(args.model or "untrained bundled (e5-small + smollm2-135m)"), "device": args.device, "dtype": args.dtype,
           "load_s": round(load_s, 1), "runs": {str(b): r for b, r in runs.items()}}
    if len(batches) > 1:
        res["requests_per_s_ratio"] = round(runs[batches[-1]]["requests_per_s"] / runs[batches[0]]["requests_per_s"], 2)
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return
    first = runs[batches[0]]
    print(f"{res['model']}: {first['requests']} requests, {first['concurrency']} at a time, max_tokens {first['max_tokens']}, "
          f"{first['passages']} passages, {res['device']} {res['dtype']} (model loaded in {res['load_s']} s)")
    rows = [("requests/s", "requests_per_s"), ("latency p50 (ms)", "latency_p50_ms"), ("latency p95 (ms)", "latency_p95_ms"),
            ("completion tokens/s", "completion_tokens_per_s"), ("slot-cache hit rate", "slot_cache_hit_rate"),
            ("mean batch", "mean_batch"), ("failures", "failures")]
    print(f"{'--max_batch':<22}" + "".join(f"{b:>10}" for b in batches))
    for name, key in rows:
        print(f"{name:<22}" + "".join(f"{runs[b][key]:>10}" for b in batches))
    if "requests_per_s_ratio" in res:
        print(f"requests/s, max_batch {batches[-1]} vs {batches[0]}: {res['requests_per_s_ratio']}x")
    for b in batches:
        for e in runs[b]["errors"]:
            print(f"error (max_batch {b}): {e}")


if __name__ == "__main__":
    main()
