"""Recorded-loss regression tests (torchtune style): each recipe trains a tiny model for six steps
and its per-step losses must match the values recorded here, within a tolerance that covers
rounding differences between CPUs and BLAS builds (~1e-7 relative per op) but not a change in the
math. Two runs agreeing proves determinism; these values prove the computation is the one that
was reviewed. After an intended change, rerun with LLINK_PRINT_LOSSES=1 and record the new values
(and bump the lineage tag: tests/unit/test_lineage.py)."""

import json
import os
from pathlib import Path

import pytest

from llink_app.__main__ import main
from tests.unit.test_align import args as align_args
from tests.unit.test_align import write_pairs
from tests.unit.test_stage_b import slots_args, stage_a  # noqa: F401  (the module-scoped fixture)

RTOL = 1e-4

STAGE_A = [4.342985, 5.428013, 5.601581, 6.144765, 7.426108, 13.573998]
STAGE_B = [7.393128, 7.535709, 7.534984, 6.83553, 6.936175, 7.293923]
STAGE_B_KL = [8.566948, 8.937811, 8.850571, 8.389679, 8.00608, 8.574087]  # --distill kl
DIRECT = [7.190821, 7.162781, 7.826321, 7.342715, 6.41049, 7.102046]


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _check(name: str, got: list[float], recorded: list[float] | None) -> None:
    if os.environ.get("LLINK_PRINT_LOSSES") or recorded is None:
        print(f"{name} = {[round(v, 6) for v in got]}")
    assert recorded is not None, f"record {name} in {__file__}"
    assert got == pytest.approx(recorded, rel=RTOL)


def test_stage_a_losses_match_the_recorded_values(tiny_dirs, tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv")
    assert main(align_args(tiny_dirs, data, tmp_path / "a", epochs=1, batch_size=16, warmup_steps=2, eval_every=6)) == 0
    _check("STAGE_A", _losses(tmp_path / "a"), STAGE_A)


def test_stage_b_losses_match_the_recorded_values(stage_a, tmp_path):  # noqa: F811
    assert main(slots_args(stage_a, tmp_path / "b", steps=6, eval_every=6)) == 0
    _check("STAGE_B", _losses(tmp_path / "b"), STAGE_B)


def test_stage_b_kl_distillation_losses_match_the_recorded_values(stage_a, tmp_path):  # noqa: F811
    assert main(slots_args(stage_a, tmp_path / "b", steps=6, eval_every=6, distill="kl")) == 0
    _check("STAGE_B_KL", _losses(tmp_path / "b"), STAGE_B_KL)


def test_direct_finetune_losses_match_the_recorded_values(stage_a, tmp_path):  # noqa: F811
    argv = ["finetune-direct", f"--decoder={stage_a['dirs']['decoder']}", f"--train_data={stage_a['data']}", f"--dev_data={stage_a['data']}",
            "--tasks=translate", "--steps=6", "--batch_size=8", "--warmup_steps=2", "--eval_every=6", "--eval_examples=16", "--max_dev=32",
            "--checkpoint_every=6", "--lr_lora=1e-2", "--precision=fp32", "--progress=false", f"--out={tmp_path / 'd'}"]
    assert main(argv) == 0
    _check("DIRECT", _losses(tmp_path / "d"), DIRECT)
