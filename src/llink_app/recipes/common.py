"""Pieces every training recipe shares: its config, run key, clock, out directory and safe
checkpoints."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path

from llink.cache import atomic_write
from llink.errors import LlinkError


def settings_of(cfg) -> dict:
    """The settings that change what a run computes (JSON-ready): the run key's `settings`. An
    option's own metadata says whether it is run-only (llink_app.args.opt)."""
    keep = {f.name for f in fields(cfg) if not f.metadata.get("run_only")
            and (f.metadata.get("keyed_when") is None or f.metadata["keyed_when"](cfg))}
    return {k: v for k, v in json.loads(json.dumps(asdict(cfg), default=str)).items() if k in keep}


def check_passages(passages: int, lang: str) -> None:
    """`--passages` as Stage A, Stage B and the direct finetune all take it, refused before any model loads."""
    from llink.data.languages import parse_langs

    if passages < 0:
        raise LlinkError(f"--passages must be >= 0, got {passages}")
    if passages and len(parse_langs(lang)) > 1:
        raise LlinkError(f"--passages with several languages ({lang}) is not supported: each language's help files would "
                         "need their own passages; train with one --lang or --passages 0")


def check_english(share: float, data) -> None:
    """`--english_share` / `--english_data` as every training stage takes them, refused before any model loads."""
    from llink.data.mixture import english_count, english_file, names_pairs

    english_count(0, share)  # the range check
    if data is not None and share == 0:
        raise LlinkError(f"--english_data {data}: English-only texts join the pairs only with --english_share > 0 "
                         "(e.g. 0.2); add one or drop --english_data")
    # an ambiguous `pairs` or a missing file, refused here rather than after the models load
    if not names_pairs(data) and share > 0:
        english_file(data)


def no_grad(fn):
    """torch.no_grad() as a decorator that imports torch when called, not when the module loads
    (the command table imports every recipe module, and `llink --help` should not load torch)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        import torch

        with torch.no_grad():
            return fn(*a, **kw)

    return wrapper


def prepare_out(out: Path) -> Path:
    """The run directory, created; a clear error when the path is taken by a file."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise LlinkError(f"--out {out}: {p} is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LlinkError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    return out


class TrainClock:
    """Training wall time of every run that led to a step: a resumed run starts from what its
    checkpoint recorded, so a reused or resumed stage reports its real cost, not ~0 s."""

    def __init__(self, before: float = 0.0):
        self.before, self.t0 = float(before), None

    def start(self) -> None:
        self.t0 = time.time()

    def seconds(self) -> float:
        return self.before + (time.time() - self.t0 if self.t0 is not None else 0.0)


# -- checkpoints: safetensors + JSON, never pickles ------------------------------------------
def optimizer_to_tensors(opt) -> tuple[dict, list]:
    import torch

    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = v.detach().cpu().clone() if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(opt, tensors: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda t: save_file(clean, t, metadata={"meta": json.dumps(meta)}))


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # a truncated or foreign file: say which
        raise LlinkError(f"cannot read checkpoint {path}: {e}") from None


class StaleCheckpoint(LlinkError):
    """A checkpoint written under other settings or inputs than the run asked to resume."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


def check_resumable(path: Path, meta: dict, key: str, parts: dict) -> None:
    """Refuse to resume from a checkpoint written under another run key, naming what changed:
    continuing it would silently mix two runs."""
    from llink.lineage import changed

    if meta.get("run_key") != key:
        diff = changed(meta.get("key_parts"), parts) or ["written by an older llink without a run key"]
        raise StaleCheckpoint(f"checkpoint {path} was written by a run with other settings or inputs ({'; '.join(diff)}): "
                              "use another --out, or drop --resume to start over", path)


def resume_progress(recipe, meta: dict) -> None:
    """A resumed run's step, clock and log, as its checkpoint recorded them (Stage A and the LoRA
    recipes alike)."""
    recipe.step = int(meta["step"])
    recipe.clock = TrainClock(meta.get("train_seconds", 0.0))
    recipe.recorded_seconds = meta.get("train_seconds", 0.0)
    if recipe.acc.is_main_process:
        truncate_jsonl(recipe.log, recipe.step)
        print(f"resumed from {recipe.ckpt} at step {recipe.step}/{recipe.total_steps}")


def artifact_is_current(recipe, art: Path) -> bool:
    """Whether this run trained nothing and `art` is the artifact its run key made: then it is
    left as it is (an artifact is written once)."""
    from llink.model import artifact_key

    return recipe.resumed_from_step == recipe.total_steps and artifact_key(art) == recipe.key


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_jsonl(path: Path, max_step: int) -> None:
    """On resume, drop log rows written after the checkpoint we resume from."""
    if not path.exists():
        return
    rows = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= max_step]
    atomic_write(path, lambda t: Path(t).write_text("".join(r + "\n" for r in rows)))
