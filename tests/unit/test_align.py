"""Stage A end to end on tiny random models: learns, resumes exactly, refuses mismatches."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llink_app.__main__ import main
from llink.errors import LlinkError

WORDS_EN = "open save file menu choose quick brown fox lazy dog help tool".split()
WORDS_KM = ["បើក", "រក្សា", "ឯកសារ", "ម៉ឺនុយ", "ជ្រើស", "ប៊ូតុង", "ចុច", "ទុក", "ជា", "លើ", "ដើម្បី", "ហើយ"]


def write_pairs(path: Path, n: int = 96) -> Path:
    lines = ["km\ten"]
    for i in range(n):
        a, b, c = i % 12, (i * 5 + 1) % 12, (i * 7 + 3) % 12
        lines.append(f"{WORDS_KM[a]} {WORDS_KM[b]} {WORDS_KM[c]} {i}\t{WORDS_EN[a]} {WORDS_EN[b]} {WORDS_EN[c]} {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def args(tiny_dirs, data, out, **over):
    base = dict(encoder=tiny_dirs["encoder"], decoder=tiny_dirs["decoder"], teacher="layer=1,pooling=mean,norm=zscore",
                train_data=data, dev_data=data, batch_size=16, epochs=10, warmup_steps=5, eval_every=20,
                checkpoint_every=20, queue_size=64, hard_negatives=16, progress="false", out=out)
    base.update(over)
    return ["align"] + [f"--{k}={v}" for k, v in base.items()]


def rows(out):
    return [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_stage_a_learns_and_writes_a_loadable_artifact(tiny_dirs, tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    assert main(args(tiny_dirs, data, out, epochs=15)) == 0
    log = rows(out)
    first, last = log[0], log[-1]
    assert last["loss"] < 0.6 * first["loss"]
    assert last["dev_r1"] > 0.3  # chance is 1/96
    assert (out / "curve.png").stat().st_size > 1000
    from llink.model import LLINK

    m = LLINK.from_pretrained(out / "llink")
    assert m.config.teacher == {"layer": 1, "pooling": "mean", "norm": "zscore"}
    assert m.project(m.encoder.encode(["បើក ឯកសារ"], progress=False)).shape == (1, 32)


def test_same_seed_same_metrics(tiny_dirs, tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv")
    assert main(args(tiny_dirs, data, tmp_path / "a", epochs=3)) == 0
    assert main(args(tiny_dirs, data, tmp_path / "b", epochs=3)) == 0
    assert rows(tmp_path / "a") == rows(tmp_path / "b")


def kill_after_first_checkpoint(argv: list[str], out: Path, timeout: float = 180) -> None:
    """Run `llink argv` in a subprocess and SIGKILL it as soon as out/checkpoint.safetensors exists."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llink_app", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (out / "checkpoint.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_run_resumes_to_the_same_weights(tiny_dirs, tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv", n=160)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    over = dict(epochs=60, checkpoint_every=10, eval_every=50)
    assert main(args(tiny_dirs, data, ref, **over)) == 0
    kill_after_first_checkpoint(args(tiny_dirs, data, cut, **over), cut)
    killed_at = rows(cut)[-1]["step"]
    total = rows(ref)[-1]["step"]
    assert killed_at < total, "the run finished before it could be killed; make it longer"
    assert main(args(tiny_dirs, data, cut, resume="true", **over)) == 0
    assert json.loads((ref / "summary.json").read_text())["resumed_from_step"] == 0
    assert 0 < json.loads((cut / "summary.json").read_text())["resumed_from_step"] <= killed_at
    a, b = load_file(str(ref / "llink" / "model.safetensors")), load_file(str(cut / "llink" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    assert [r["step"] for r in rows(cut)] == list(range(1, total + 1))
    assert rows(cut)[-1] == rows(ref)[-1]


def test_resume_refuses_another_teacher(tiny_dirs, tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    assert main(args(tiny_dirs, data, out, epochs=2)) == 0
    assert main(args(tiny_dirs, data, out, epochs=2, resume="true", teacher="layer=2,pooling=mean,norm=none")) == 2
    assert "teacher" in capsys.readouterr().err


def test_resume_refuses_other_training_data(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(tiny_dirs, write_pairs(tmp_path / "a.tsv", n=96), out, epochs=2)) == 0
    assert main(args(tiny_dirs, write_pairs(tmp_path / "b.tsv", n=64), out, epochs=2, resume="true")) == 2
    assert "train changed" in capsys.readouterr().err


def test_artifact_refuses_mismatched_models(tiny_dirs, tmp_path):
    from llink.encoders import load_encoder
    from llink.model import LLINK

    data = write_pairs(tmp_path / "pairs.tsv")
    assert main(args(tiny_dirs, data, tmp_path / "run", epochs=1)) == 0
    with pytest.raises(LlinkError, match="encoder mismatch"):
        LLINK.from_pretrained(tmp_path / "run" / "llink", encoder=load_encoder("e5-small"))
    with pytest.raises(LlinkError, match="not an LLINK artifact"):
        LLINK.from_pretrained(tmp_path)


def test_artifact_with_wrong_shapes_is_refused(tiny_dirs, tmp_path):
    from llink.model import LLINK

    data = write_pairs(tmp_path / "pairs.tsv")
    assert main(args(tiny_dirs, data, tmp_path / "run", epochs=1)) == 0
    cfg = tmp_path / "run" / "llink" / "config.json"
    raw = json.loads(cfg.read_text())
    raw["hidden_size"] = 48
    cfg.write_text(json.dumps(raw))
    with pytest.raises(LlinkError, match="does not match its config"):
        LLINK.from_pretrained(tmp_path / "run" / "llink")


def test_encoder_layers_are_recorded_and_reloaded(tiny_dirs, tmp_path, capsys):
    from llink.model import LLINK

    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    assert main(args(tiny_dirs, data, out, epochs=2, encoder_layers="[0,2]")) == 0
    m = LLINK.from_pretrained(out / "llink")
    assert m.config.encoder_layers == [0, 2] and m.config.encoder_dim == 48
    assert m.encoder.layers == [0, 2]  # loaded from config.json, not the default readout
    assert m.project(m.encoder.encode(["បើក ឯកសារ"], progress=False)).shape == (1, 32)
    assert main(args(tiny_dirs, data, tmp_path / "bad", epochs=1, encoder_layers="[5]")) == 2
    assert "encoder_layers" in capsys.readouterr().err


def test_train_passages_join_the_pairs_and_bad_settings_are_refused(tiny_dirs, tmp_path, capsys):
    from .test_stage_b import help_file

    data = help_file(tmp_path)  # 16 one-sentence paragraphs in 4 help files: one passage per file
    assert main(args(tiny_dirs, data, tmp_path / "a", epochs=2, passages=3)) == 0
    assert main(args(tiny_dirs, data, tmp_path / "b", epochs=2)) == 0
    a, b = (json.loads((tmp_path / r / "summary.json").read_text()) for r in "ab")
    assert a["train_pairs"] == 16 + 3 and a["mixture"]["passages"] == 3
    assert b["train_pairs"] == 16 and "passages" not in b["mixture"] and a["run_key"] != b["run_key"]
    config = json.loads((tmp_path / "a" / "llink" / "config.json").read_text())
    assert config["mixture"]["stage_a"]["passages"] == 3
    capsys.readouterr()
    no_provenance = write_pairs(tmp_path / "pairs.tsv")
    for over, message in [(dict(train_data=no_provenance), "--passages 3: "), (dict(passages=-1), "--passages must be >= 0, got -1"),
                          (dict(lang="km,hi"), "--passages with several languages (km,hi)")]:
        out = tmp_path / "refused"
        assert main(args(tiny_dirs, data, out, epochs=2, **{"passages": 3, **over})) == 2
        assert message in capsys.readouterr().err and not (out / "llink").exists()


def test_length_aware_teacher_statistics_are_fitted_saved_and_used(tiny_dirs, tmp_path):
    import numpy as np

    from llink.model import LLINK
    from llink.teacher import TeacherStats, cached_states, pooled_lengths, teacher_vectors

    lines = ["km\ten"]  # texts of 3 to 25 words: the length term needs more than one length
    for i in range(96):
        n = 3 + (i * 7) % 23
        lines.append(" ".join(WORDS_KM[(i + j) % 12] for j in range(n)) + f" {i}\t" + " ".join(WORDS_EN[(i + j) % 12] for j in range(n)) + f" {i}")
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(args(tiny_dirs, data, out, epochs=15, teacher="layer=1,pooling=mean,norm=zscore_length")) == 0
    assert "teacher.slope" in load_file(str(out / "checkpoint.safetensors"))
    m = LLINK.from_pretrained(out / "llink")
    assert m.config.teacher["norm"] == "zscore_length"
    en = [l.split("\t")[1] for l in lines[1:]]
    raw = cached_states(m.decoder, m.builder, en, [1], ["mean"], progress=False)[(1, "mean")]
    want = TeacherStats.fit(raw, pooled_lengths(m.builder, en))
    got = m.teacher_stats
    np.testing.assert_allclose(got.slope, want.slope, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-4, atol=1e-5)
    assert np.abs(got.slope).max() > 1e-3
    y = teacher_vectors(m.decoder, m.builder, m.config.teacher_spec, en, got, progress=False)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-3)  # centred at every length, so on the whole train set
    assert json.loads((out / "summary.json").read_text())["dev_r1"] > 0.1  # chance is 1/96
