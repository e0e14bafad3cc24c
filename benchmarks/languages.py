"""Many languages (issue 27): one Stage A bridge per language, one bridge for several, and the
languages neither saw, scored side by side on each language's test split; prints the README's
per-language table and can write JSON.

Every language's own bridge and the multilingual bridge train on the same number of pairs per
language (`--per_lang`, a seeded sample: the multilingual run is balanced the same way), so the
gap between them is the price of sharing one projector, not of less data. Training goes through
`llink align` (resumed and reused by its run key), scoring through `llink eval retrieval` and,
with `--stage_b`, `llink eval generate` (that Stage B model's translation against its shuffled
control on each --own language: zero-shot wherever the model never trained). `--multi_stage_b
RECIPE` also trains one Stage B on the multilingual bridge (`llink slots --lang` with every --multi
language, balanced) and scores its translation the same way.

    python benchmarks/languages.py --own km,hi,si,am,my --multi km,hi,si,am --also ta,th,ka,dz \\
        --stage_b runs/demo/slots/llink --multi_stage_b recipes/cpu_slots.yaml --json runs/langs/languages.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

LLINK = [sys.executable, "-m", "llink_app"]


BAR = None  # one tqdm step per llink command (each runs minutes; its own output goes to the log)


def run(args: list[str], log: Path) -> None:
    if BAR is not None:
        BAR.set_postfix_str(" ".join(args[:2]) + " " + next((a for a in args if a.startswith("--lang=")), ""))
    with log.open("a") as f:
        f.write("$ llink " + " ".join(args) + "\n")
        f.flush()
        done = subprocess.run(LLINK + args, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"llink {' '.join(args)} failed (exit {done.returncode}); see {log}")
    if BAR is not None:
        BAR.update(1)


def retrieval(model: Path, langs: list[str], out: Path, log: Path) -> dict:
    run(["eval", "retrieval", f"--model={model}", f"--lang={','.join(langs)}", "--base=false", f"--out={out}"], log)
    name = (lambda l: "retrieval.json") if len(langs) == 1 else (lambda l: f"retrieval_{l}.json")
    return {l: json.loads((out / name(l)).read_text()) for l in langs}


def translate(model: Path, lang: str, n: int, out: Path, log: Path) -> dict:
    """A Stage B model's test translation in one language against its shuffled control."""
    run(["eval", "generate", f"--model={model}", f"--lang={lang}", f"--n={n}", "--n_other=0",
         "--systems=llink,llink_shuffled", f"--out={out}"], log)
    g = json.loads((out / "generate.json").read_text())
    return {"zero_shot": g["zero_shot"], "n": g["n"],
            **{s: {"chrf": g["generate"][s]["chrf"], "fidelity": g["generate"][s]["fidelity"]} for s in ("llink", "llink_shuffled")}}


def _stage_b_cells(b: dict | None) -> str:
    if b is None:
        return " - | - |"
    return (f" {b['llink']['chrf']:.2f} ({b['llink_shuffled']['chrf']:.2f}){' z' if b['zero_shot'] else ''} "
            f"| {b['llink']['fidelity']:.3f} ({b['llink_shuffled']['fidelity']:.3f}) |")


def print_table(result: dict) -> None:
    rows, multi = result["languages"], result["multi"]
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"Bridges: own (one language, {result['per_lang']:,} train pairs) and multilingual ({','.join(multi)}, "
          f"{result['per_lang']:,} each); test R@1 src→en, zero-shot marked z")
    head = "| lang | train / dev / test | tokens × English | encoder ceiling | own bridge | multilingual | multi − own |"
    if result["stage_b"]:
        head += f" {result['stage_b']}: chrF++ (shuffled) | fidelity (shuffled) |"
    if result.get("multi_stage_b"):
        head += " multilingual Stage B: chrF++ (shuffled) | fidelity (shuffled) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for lang, r in rows.items():
        p = r["pairs"]
        multi_r1 = fmt(r["multi"]) + (" z" if r["multi_zero_shot"] else "")
        gap = "-" if "own" not in r else f"{r['multi'] - r['own']:+.3f}" + (f" ({r['multi'] / r['own']:.0%} of own)" if r["multi_zero_shot"] else "")
        line = (f"| {lang} {r['name']} | {p['train']:,} / {p['dev']:,} / {p['test']:,} | {r['tokens_ratio']:.2f} | {fmt(r['encoder_ceiling'])} "
                f"| {fmt(r.get('own'))} | {multi_r1} | {gap} |")
        if result["stage_b"]:
            line += _stage_b_cells(r.get("stage_b"))
        if result.get("multi_stage_b"):
            line += _stage_b_cells(r.get("multi_stage_b"))
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--own", default="km,hi,si,am,my", help="languages that each get their own bridge")
    ap.add_argument("--multi", default="km,hi,si,am", help="the languages of the one multilingual bridge")
    ap.add_argument("--also", default="ta,th,ka,dz", help="more languages scored zero-shot (no bridge trains on them)")
    ap.add_argument("--per_lang", type=int, default=5000, help="train pairs per language, for every bridge")
    ap.add_argument("--recipe", default="recipes/cpu.yaml", help="the Stage A recipe every bridge uses")
    ap.add_argument("--stage_b", default=None, help="a Stage B artifact to translate the --own languages with (and its shuffled control)")
    ap.add_argument("--multi_stage_b", default=None, metavar="RECIPE",
                    help="a Stage B recipe to train on the multilingual bridge (every --multi language, balanced); "
                         "its translation is scored on every --own language")
    ap.add_argument("--n_generate", type=int, default=100, help="test texts translated per language with --stage_b")
    ap.add_argument("--out", default="runs/langs")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--table", default=None, help="print the table of an earlier --json result and stop (runs nothing)")
    args = ap.parse_args()
    if args.table:
        return print_table(json.loads(Path(args.table).read_text()))

    from llink.data.languages import parse_langs
    from llink.data.scripts import language_name
    from llink.data.splits import corpus_stats, load_split
    from llink.eval.tokens import inflation

    own, multi, also = parse_langs(args.own), parse_langs(args.multi), parse_langs(args.also) if args.also else []
    every = list(dict.fromkeys(own + multi + also))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "languages.log"
    common = [f"--config={args.recipe}", "--resume=true", "--progress=false"]
    from tqdm.auto import tqdm

    global BAR
    BAR = tqdm(total=2 * len(own) + 2 + (len(own) if args.stage_b else 0) + (len(own) + 1 if args.multi_stage_b else 0),
               desc="languages", unit="run")
    for lang in own:
        run(["align", *common, f"--lang={lang}", f"--max_train={args.per_lang}", f"--out={out / ('own_' + lang)}"], log)
    run(["align", *common, f"--lang={','.join(multi)}", f"--max_train={args.per_lang * len(multi)}", f"--out={out / 'multi'}"], log)

    from llink.decoders import load_decoder

    decoder = load_decoder(json.loads((out / "multi" / "llink" / "config.json").read_text())["decoder"])
    rows = {}
    for lang in every:
        test = load_split("test", lang)
        tok = inflation(decoder.tokenizer, [p.src for p in test], [p.en for p in test], k=8)
        rows[lang] = {"name": language_name(lang), "pairs": {s: st["pairs"] for s, st in corpus_stats(lang).items()},
                      "tokens_ratio": tok["ratio"]}
    for lang in own:
        res = retrieval(out / f"own_{lang}" / "llink", [lang], out / "eval" / f"own_{lang}", log)[lang]
        rows[lang]["own"] = res["llink"]["src2en"]["r1"]
    for lang, res in retrieval(out / "multi" / "llink", every, out / "eval" / "multi", log).items():
        rows[lang]["encoder_ceiling"] = res["encoder_ceiling"]["src2en"]["r1"]
        rows[lang]["multi"] = res["llink"]["src2en"]["r1"]
        rows[lang]["multi_zero_shot"] = res["zero_shot"]
    if args.stage_b:
        for lang in own:
            rows[lang]["stage_b"] = translate(Path(args.stage_b), lang, args.n_generate, out / "eval" / f"generate_{lang}", log)
    if args.multi_stage_b:
        run(["slots", f"--config={args.multi_stage_b}", f"--from_stage_a={out / 'multi' / 'llink'}", f"--lang={','.join(multi)}",
             "--resume=true", "--progress=false", f"--out={out / 'multi_slots'}"], log)
        for lang in own:
            rows[lang]["multi_stage_b"] = translate(out / "multi_slots" / "llink", lang, args.n_generate,
                                                    out / "eval" / f"multi_generate_{lang}", log)
    BAR.close()
    result = {"per_lang": args.per_lang, "own": own, "multi": multi, "also": also, "stage_b": args.stage_b,
              "multi_stage_b": args.multi_stage_b, "languages": rows}

    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
