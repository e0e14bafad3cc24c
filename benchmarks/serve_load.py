"""Serving load on this machine: starts `llink serve`'s app on a loopback port and sends a bounded
number of chat completions, a few at a time, cycling through Khmer test sentences so that later
requests about a passage hit the slot cache. Prints requests/s, p50/p95 latency, failures and the
slot-cache hit rate; `--json` prints JSON.

Without --model it measures an untrained Stage B artifact built from the bundled models (random
projector and expander, zero LoRA): the answers are nonsense, the serving cost is the real one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="LLINK artifact directory (default: an untrained one from the bundled models)")
    ap.add_argument("--requests", type=int, default=32, help="chat completions sent in all")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    ap.add_argument("--max_tokens", type=int, default=16, help="answer length cap per request")
    ap.add_argument("--passages", type=int, default=8, help="distinct passages (test-split Khmer sentences)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", help="decoder weights: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16, fp16")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if min(args.requests, args.concurrency, args.max_tokens, args.passages) < 1:
        ap.error("--requests, --concurrency, --max_tokens and --passages must be >= 1")

    from llink.data import load_pairs
    from llink.model import load_for_inference
    from llink.serve import Limits, create_app
    from llink.serve.load import run_load, running, untrained_artifact

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or untrained_artifact("e5-small", "smollm2-135m", f"{tmp}/untrained-bundled")
        t = time.perf_counter()
        # loaded as `llink serve` loads it: LoRA folded, on --device in --dtype
        app = create_app(load_for_inference(path, device=args.device, dtype=args.dtype), limits=Limits(max_tokens=args.max_tokens, timeout_s=600))
        load_s = time.perf_counter() - t
        passages = [p.src for p in load_pairs("test", "km")[: args.passages]]
        with running(app) as url:
            res = run_load(url, passages, requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens)
    res = {"model": str(args.model or "untrained bundled (e5-small + smollm2-135m)"), "device": args.device, "dtype": args.dtype,
           "load_s": round(load_s, 1), **res}
    if args.json:
        print(json.dumps(res, indent=2, ensure_ascii=False))
        return
    print(f"{res['model']}: {res['requests']} requests, {res['concurrency']} at a time, max_tokens {res['max_tokens']}, "
          f"{res['passages']} passages, {res['device']} {res['dtype']} (model loaded in {res['load_s']} s)")
    rows = [("requests/s", res["requests_per_s"]), ("latency p50 (ms)", res["latency_p50_ms"]),
            ("latency p95 (ms)", res["latency_p95_ms"]), ("completion tokens/s", res["completion_tokens_per_s"]),
            ("slot-cache hit rate", res["slot_cache_hit_rate"]), ("failures", res["failures"])]
    for name, value in rows:
        print(f"{name:<22}{value:>10}")
    for e in res["errors"]:
        print(f"error: {e}")


if __name__ == "__main__":
    main()
