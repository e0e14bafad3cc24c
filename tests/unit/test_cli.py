"""Bad input gets one line naming the problem and exit code 2, never a traceback."""

import subprocess
import sys

import pytest

from llink_app.__main__ import main


def run(args):
    return subprocess.run([sys.executable, "-m", "llink_app", *args], capture_output=True, text=True, timeout=120)


def test_every_command_documents_its_options():
    for cmd in (["data", "build"], ["data", "stats"], ["tokens"], ["teacher", "build"], ["teacher", "sweep"], ["align"],
                ["eval", "retrieval"], ["demo"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0


@pytest.mark.parametrize(
    "content, needle",
    [("km\ten\nសួស្តី\n", ":2:"), ("km\ten\n \thello\n", ":2:")],
)
def test_malformed_pairs_file_names_file_and_line(tmp_path, content, needle):
    f = tmp_path / "bad.tsv"
    f.write_text(content, encoding="utf-8")
    r = run(["tokens", f"--data={f}", "--decoder", str(tmp_path / "no-such-model")])
    assert r.returncode == 2
    assert "bad.tsv" in r.stderr and needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_model_path_is_one_line(tmp_path):
    f = tmp_path / "ok.tsv"
    f.write_text("km\ten\nសួស្តី\thello there\n", encoding="utf-8")
    r = run(["tokens", f"--data={f}", "--decoder", str(tmp_path / "no-such-model")])
    assert r.returncode == 2 and "no-such-model" in r.stderr and "Traceback" not in r.stderr


def test_missing_artifact_and_bad_teacher(tmp_path):
    r = run(["eval", "retrieval", "--model", str(tmp_path)])
    assert r.returncode == 2 and "not an LLINK artifact" in r.stderr
    r = run(["teacher", "--teacher", "layer=x", "--data", str(tmp_path / "none.tsv")])
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_bad_numbers_are_refused(tmp_path):
    r = run(["tokens", "--k", "0"])
    assert r.returncode == 2 and "--k must be >= 1" in r.stderr
    r = run(["align", "--epochs", "0", f"--out={tmp_path}"])
    assert r.returncode == 2 and "--epochs must be >= 1" in r.stderr
    r = run(["demo", "--size", "huge"])
    assert r.returncode == 2 and "--size" in r.stderr


def test_empty_text_is_refused_by_encoders():
    from llink.encoders import check_texts
    from llink.errors import LlinkError

    for bad in ([""], ["ok", "   "], [None]):
        with pytest.raises(LlinkError):
            check_texts(bad)


def test_flag_forms_and_path_options_do_not_collide():
    from llink_app.__main__ import _normalise_argv

    assert _normalise_argv(["demo", "--no_direct"]) == ["demo", "--direct=false"]
    assert _normalise_argv(["eval", "generate", "--direct", "runs/d", "--json"]) == ["eval", "generate", "--direct", "runs/d", "--json=true"]
    assert _normalise_argv(["slots", "--from", "runs/a/llink", "--resume"]) == ["slots", "--from_stage_a", "runs/a/llink", "--resume=true"]
    assert _normalise_argv(["align", "--recipe", "r.yaml"]) == ["align", "--config", "r.yaml"]


def test_options_may_be_spelled_with_dashes():
    from llink_app.__main__ import _normalise_argv

    assert _normalise_argv(["generate", "--max-new-tokens", "5"]) == ["generate", "--max_new_tokens", "5"]
    assert _normalise_argv(["finetune-direct", "--gradient-checkpointing", "--max-dev=3"]) == \
        ["finetune-direct", "--gradient_checkpointing=true", "--max_dev=3"]
    # values keep their dashes; the command name `finetune-direct` is not an option
    assert _normalise_argv(["generate", "--text", "a-b", "--instruction=c-d"]) == ["generate", "--text", "a-b", "--instruction=c-d"]
    r = run(["generate", "--max-new-tokens", "5"])
    assert r.returncode == 2 and "unrecognized" not in r.stderr and "--text or --file" in r.stderr  # parsed, then checked


def test_bool_flags_are_read_from_each_commands_signature():
    from llink_app.__main__ import _normalise_argv

    # --no_X negates only a boolean option of the command at hand; `--direct` is a path in eval generate
    assert _normalise_argv(["eval", "generate", "--no_direct"]) == ["eval", "generate", "--no_direct"]
    assert _normalise_argv(["slots", "--no-progress"]) == ["slots", "--progress=false"]


@pytest.mark.parametrize("command", ["align", "slots", "finetune-direct"])
def test_out_that_is_a_file_is_a_clear_error(tmp_path, command):
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    pairs = tmp_path / "p.tsv"
    pairs.write_text("km\ten\nសួស្តី\thello there\n", encoding="utf-8")
    r = run([command, f"--out={taken}", "--decoder", str(tmp_path / "no-such-model")] if command == "finetune-direct"
            else [command, f"--out={taken}"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"--out {taken}" in r.stderr and "is a file" in r.stderr, r.stderr
