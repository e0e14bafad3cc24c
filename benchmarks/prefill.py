"""Prefill cost of reading a Khmer passage: LLINK (encode + project + expand + a prompt with K
slots) vs the base decoder reading the raw Khmer tokens, timed side by side in one run, for
single sentences and 5-sentence passages. Also transformer FLOPs (2·params·tokens + attention).

    python benchmarks/prefill.py [--model runs/slots/llink] [--device cuda] [--dtype bf16] [--json]

Without --model an untrained Stage B model is assembled from the bundled models: prefill cost
does not depend on the weights' values.

Three extra views:
- `folded`: LLINK with its LoRA added into the decoder weights (what `llink serve` and
  `llink generate` run), on a second copy of the decoder; the main column keeps the LoRA
  unmerged, as in training.
- `prefix cache` (both systems alike): the chat-template tokens before the passage (system turn, user header) are the
  same for every request, so a server computes their KV once; each request then prefills only
  what follows (slots or Khmer, the instruction, the assistant header).
- `floor`: a 1-token forward pass. On a CPU a small decoder is bound by reading its weights, so
  this fixed cost caps the speedup any shorter prompt can buy: base_ms / (floor + encoder) is
  the most a 1-slot prompt could reach.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch


def transformer_flops(tokens: int, layers: int, hidden: int, ffn: int, gated: bool) -> float:
    """Forward FLOPs of one sequence: projections (QKV+O: 4·h², MLP: 2 or 3 matrices of h·ffn)
    at 2 FLOPs per multiply-add, plus attention scores and mixing (2·T²·h per layer, causal)."""
    per_token = 2 * (4 * hidden * hidden + (3 if gated else 2) * hidden * ffn)
    return float(layers * (per_token * tokens + 2 * tokens * tokens * hidden))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a Stage B artifact (default: an untrained one from the bundled models)")
    ap.add_argument("--passages", type=int, default=24, help="passages timed per setting")
    ap.add_argument("--sizes", default="1,5", help="sentences per passage")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="decoder weights (bf16 is fast on CPUs with AVX512-BF16 or AMX); the bundled encoder keeps its own")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from llink.data import load_split
    from llink.decoders import LORA_TARGETS, load_decoder
    from llink.encoders import load_encoder
    from llink.model import LLINK, inference_dtype
    from llink.serve.load import untrained_stage_b

    torch.manual_seed(0)
    # The artifact's own encoder readout (the engine, or the torch rebuild for encoder_layers): its cost counts.
    enc = LLINK.from_pretrained(args.model).encoder if args.model else load_encoder()
    dec = load_decoder(device=args.device)
    lora = {"r": 16, "alpha": 16, "dropout": 0.05, "targets": list(LORA_TARGETS)}  # the recipes' LoRA: its unmerged cost counts

    def build(d):
        torch.manual_seed(0)
        m = LLINK.from_pretrained(args.model, encoder=enc, decoder=d) if args.model else untrained_stage_b("e5-small", enc, "smollm2-135m", d, lora=lora)
        return m.to(args.device)

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

    @torch.no_grad()
    def prefill(ids, slots=None, prefix=None, d=dec):
        """Prefill `ids` on decoder `d`; with `prefix` = (n, kv) the first n tokens come from a cached KV."""
        body = d.model.get_decoder()
        x = d.embeddings(torch.tensor([ids.input_ids], device=args.device))
        if slots is not None:
            x = x.clone()
            x[0, ids.slot_positions] = slots[0].to(x.dtype)
        if prefix is None:
            return body(inputs_embeds=x, use_cache=True).past_key_values
        n, kv = prefix
        return body(inputs_embeds=x[:, n:], past_key_values=copy.deepcopy(kv), use_cache=True).past_key_values

    @torch.no_grad()
    def encode_slots(text, m=model):
        vec = torch.from_numpy(enc.encode([text], progress=False)).to(args.device)  # uncached: the encoder's cost counts
        return m.expand(m.projector.eval()(vec))

    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        passages = [" ".join(test[i * size : (i + 1) * size]) for i in range(args.passages)]
        rows = {"base": [], "llink": [], "base_cached": [], "llink_cached": [], "llink_folded": [], "llink_folded_cached": [], "encoder": []}
        toks = {"base": [], "llink": [], "encoder": []}
        slot_prompt = builder.chat("Translate to English.")
        raws = [builder.chat("Translate to English.", passage=text) for text in passages]
        # the shared prefix: template tokens before the passage, identical in every prompt of both systems
        n = len(os.path.commonprefix([slot_prompt.input_ids] + [r.input_ids for r in raws]))
        n = min(n, min(slot_prompt.slot_positions))
        head = type(slot_prompt)(input_ids=slot_prompt.input_ids[:n])
        kv_base = prefill(head)
        with model.using_adapter():
            kv_llink = prefill(head)  # LoRA changes the prefix's keys and values too
        kv_folded = prefill(head, d=dec_f)
        # warm-up (first calls allocate)
        prefill(raws[0]); prefill(raws[0], prefix=(n, kv_base))
        for text, raw in zip(passages, raws):
            rows["base"].append(_timed(lambda: prefill(raw), sync))
            rows["base_cached"].append(_timed(lambda: prefill(raw, prefix=(n, kv_base)), sync))
            for key, prefix in (("llink", None), ("llink_cached", (n, kv_llink))):
                sync(); t = time.perf_counter()
                slots = encode_slots(text)
                sync(); rows["encoder"].append(time.perf_counter() - t)
                with model.using_adapter():
                    prefill(slot_prompt, slots, prefix)
                sync()
                rows[key].append(time.perf_counter() - t)
            # a folded decoder has no adapter to switch on: the LoRA is in its weights
            rows["llink_folded"].append(_timed(lambda: prefill(slot_prompt, encode_slots(text, folded), d=dec_f), sync))
            rows["llink_folded_cached"].append(
                _timed(lambda: prefill(slot_prompt, encode_slots(text, folded), prefix=(n, kv_folded), d=dec_f), sync))
            toks["base"].append(len(raw.input_ids))
            toks["llink"].append(len(slot_prompt.input_ids))
            toks["encoder"].append(enc.token_count(text))
        one = type(slot_prompt)(input_ids=slot_prompt.input_ids[:1])
        floor = statistics.median(_timed(lambda: prefill(one), sync) for _ in range(len(passages)))
        ms = {k: statistics.mean(v) * 1e3 for k, v in rows.items()}
        base_ms, llink_ms = ms["base"], ms["llink"]
        f_base = statistics.mean(transformer_flops(t, **dshape) for t in toks["base"])
        f_dec = statistics.mean(transformer_flops(t, **dshape) for t in toks["llink"])
        f_head = transformer_flops(n, **dshape)
        f_enc = statistics.mean(transformer_flops(t, enc.shape["layers"], enc.shape["hidden"], enc.shape["ffn"], gated=False) for t in toks["encoder"])
        results.append({
            "sentences": size, "passages": len(passages), "device": args.device,
            "base_prompt_tokens": statistics.mean(toks["base"]), "llink_prompt_tokens": statistics.mean(toks["llink"]),
            "encoder_tokens": statistics.mean(toks["encoder"]),
            "base_ms": round(base_ms, 2), "llink_ms": round(llink_ms, 2), "speedup": round(base_ms / llink_ms, 2),
            "encoder_ms": round(ms["encoder"], 2), "shared_prefix_tokens": n,
            "llink_folded_ms": round(ms["llink_folded"], 2), "speedup_folded": round(base_ms / ms["llink_folded"], 2),
            "base_cached_ms": round(ms["base_cached"], 2), "llink_cached_ms": round(ms["llink_cached"], 2),
            "speedup_cached": round(ms["base_cached"] / ms["llink_cached"], 2),
            "llink_folded_cached_ms": round(ms["llink_folded_cached"], 2),
            "speedup_folded_cached": round(ms["base_cached"] / ms["llink_folded_cached"], 2),
            "floor_ms": round(floor * 1e3, 2), "max_speedup": round(base_ms / (floor * 1e3 + ms["encoder"]), 2), "dtype": args.dtype,
            "base_gflops": round(f_base / 1e9, 3), "llink_gflops": round((f_dec + f_enc) / 1e9, 3),
            "llink_decoder_gflops": round(f_dec / 1e9, 3), "flops_ratio": round(f_base / (f_dec + f_enc), 2),
            # with the shared prefix cached, each system computes f(T) - f(n): its own tokens, attending to the prefix
            "flops_ratio_cached": round((f_base - f_head) / (f_dec - f_head + f_enc), 2),
        })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'sentences':>9} {'base tok':>9} {'llink tok':>9} {'base ms':>9} {'llink ms':>9} {'speedup':>8} "
          f"{'folded ms':>9} {'speedup':>8} {'cached b/l ms':>14} {'speedup':>8} {'c+fold ms':>9} {'speedup':>8} {'floor ms':>9} {'max':>6} {'base GF':>8} {'llink GF':>9} {'FLOP ratio':>10} {'cached':>7}")
    for r in results:
        print(f"{r['sentences']:>9} {r['base_prompt_tokens']:>9.1f} {r['llink_prompt_tokens']:>9.1f} {r['base_ms']:>9.1f} {r['llink_ms']:>9.1f} "
              f"{r['speedup']:>7.2f}x {r['llink_folded_ms']:>9.1f} {r['speedup_folded']:>7.2f}x {r['base_cached_ms']:>6.1f}/{r['llink_cached_ms']:<7.1f} {r['speedup_cached']:>7.2f}x "
              f"{r['llink_folded_cached_ms']:>9.1f} {r['speedup_folded_cached']:>7.2f}x {r['floor_ms']:>9.1f} {r['max_speedup']:>5.2f}x {r['base_gflops']:>8.2f} {r['llink_gflops']:>9.2f} {r['flops_ratio']:>9.2f}x {r['flops_ratio_cached']:>6.2f}x")
    print(f"device {args.device}, {args.dtype}. llink = encoder (uncached) + projector + expander + prefill of the K-slot prompt; "
          "base = prefill of the raw-Khmer prompt.\nfolded: llink with its LoRA added into the weights (as served). cached: both reuse the KV of the shared template prefix "
          f"({results[0]['shared_prefix_tokens']} tokens); c+fold: cached, LLINK folded (what llink serve runs). floor: one 1-token forward; max = base / (floor + encoder).")


def _timed(fn, sync) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
