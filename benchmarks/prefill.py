"""Prefill cost of reading a Khmer passage: LLINK (encode + project + expand + a prompt with K
slots) vs the base decoder reading the raw Khmer tokens, timed side by side in one run, for
single sentences and 5-sentence passages. Also transformer FLOPs (2·params·tokens + attention).

    python benchmarks/prefill.py [--model runs/slots/llink] [--device cuda] [--json]

Without --model an untrained Stage B model is assembled from the bundled models: prefill cost
does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from llink.data import load_split
    from llink.decoders import LORA_TARGETS, load_decoder
    from llink.encoders import load_encoder
    from llink.model import LLINK
    from llink.serve.load import untrained_stage_b

    torch.manual_seed(0)
    enc, dec = load_encoder(), load_decoder(device=args.device)
    lora = {"r": 16, "alpha": 16, "dropout": 0.05, "targets": list(LORA_TARGETS)}  # the recipes' LoRA: its unmerged cost counts
    model = LLINK.from_pretrained(args.model, encoder=enc, decoder=dec) if args.model else untrained_stage_b("e5-small", enc, "smollm2-135m", dec, lora=lora)
    model.to(args.device)
    builder = model.builder
    c = dec.model.config
    dshape = dict(layers=c.num_hidden_layers, hidden=c.hidden_size, ffn=c.intermediate_size, gated=True)
    test = [p.src for p in load_split("test")]
    body = dec.model.get_decoder()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    @torch.no_grad()
    def prefill(ids, slots=None):
        x = dec.embeddings(torch.tensor([ids.input_ids], device=args.device))
        if slots is not None:
            x = x.clone()
            x[0, ids.slot_positions] = slots[0].to(x.dtype)
        body(inputs_embeds=x, use_cache=True)

    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        passages = [" ".join(test[i * size : (i + 1) * size]) for i in range(args.passages)]
        rows = {"base": [], "llink": []}
        toks = {"base": [], "llink": [], "encoder": []}
        # warm-up (first calls allocate)
        prefill(builder.chat("Translate to English.", passage=passages[0]))
        for text in passages:
            raw = builder.chat("Translate to English.", passage=text)
            sync(); t = time.perf_counter(); prefill(raw); sync()
            rows["base"].append(time.perf_counter() - t)
            slot_prompt = builder.chat("Translate to English.")
            sync(); t = time.perf_counter()
            with torch.no_grad():
                vec = enc.encode([text], progress=False)  # uncached: the encoder's cost counts
                slots = model.expand(model.projector.eval()(torch.from_numpy(vec).to(args.device)))
            with model.using_adapter():
                prefill(slot_prompt, slots)
            sync()
            rows["llink"].append(time.perf_counter() - t)
            toks["base"].append(len(raw.input_ids))
            toks["llink"].append(len(slot_prompt.input_ids))
            toks["encoder"].append(enc.token_count(text))
        base_ms, llink_ms = statistics.mean(rows["base"]) * 1e3, statistics.mean(rows["llink"]) * 1e3
        f_base = statistics.mean(transformer_flops(t, **dshape) for t in toks["base"])
        f_dec = statistics.mean(transformer_flops(t, **dshape) for t in toks["llink"])
        f_enc = statistics.mean(transformer_flops(t, enc.shape["layers"], enc.shape["hidden"], enc.shape["ffn"], gated=False) for t in toks["encoder"])
        results.append({
            "sentences": size, "passages": len(passages), "device": args.device,
            "base_prompt_tokens": statistics.mean(toks["base"]), "llink_prompt_tokens": statistics.mean(toks["llink"]),
            "encoder_tokens": statistics.mean(toks["encoder"]),
            "base_ms": round(base_ms, 2), "llink_ms": round(llink_ms, 2), "speedup": round(base_ms / llink_ms, 2),
            "base_gflops": round(f_base / 1e9, 3), "llink_gflops": round((f_dec + f_enc) / 1e9, 3),
            "llink_decoder_gflops": round(f_dec / 1e9, 3), "flops_ratio": round(f_base / (f_dec + f_enc), 2),
        })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'sentences':>9} {'base tok':>9} {'llink tok':>9} {'base ms':>9} {'llink ms':>9} {'speedup':>8} {'base GF':>8} {'llink GF':>9} {'FLOP ratio':>10}")
    for r in results:
        print(f"{r['sentences']:>9} {r['base_prompt_tokens']:>9.1f} {r['llink_prompt_tokens']:>9.1f} {r['base_ms']:>9.1f} {r['llink_ms']:>9.1f} "
              f"{r['speedup']:>7.2f}x {r['base_gflops']:>8.2f} {r['llink_gflops']:>9.2f} {r['flops_ratio']:>9.2f}x")
    print("llink = encoder (uncached) + projector + expander + prefill of the K-slot prompt; base = prefill of the raw-Khmer prompt.")


if __name__ == "__main__":
    main()
