"""A damaged model directory (truncated weights, config.json that is not JSON, a missing file)
is an LlinkError naming the file and the fix, never a safetensors/JSON traceback."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from llink.errors import LlinkError
from llink.model import CONFIG, WEIGHTS, LLINK, DirectModel, LLINKConfig


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A real (tiny, untrained) Stage A artifact: projector 8 -> 16, no models needed to save it."""
    path = tmp_path_factory.mktemp("art") / "llink"
    config = LLINKConfig(encoder="enc", encoder_id="enc", encoder_dim=8, decoder="dec", decoder_id="dec",
                         hidden_size=16, teacher={"layer": 1, "pooling": "mean", "norm": "none"})
    LLINK(config).save_pretrained(path)
    assert LLINK.from_pretrained(path).config.hidden_size == 16
    return path


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    path = tmp_path_factory.mktemp("direct")
    (path / CONFIG).write_text(json.dumps({"stage": "direct", "decoder_id": "dec", "lora": {}}))
    save_file({"lora.a": torch.zeros(64, 64)}, str(path / WEIGHTS))
    assert set(DirectModel.from_pretrained(path)._lora) == {"a"}
    return path


def damaged(src, tmp_path, name, content: bytes | None):
    """A copy of artifact `src` whose file `name` is replaced by `content` (None: removed)."""
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    (dst / name).unlink()
    if content is not None:
        (dst / name).write_bytes(content)
    return dst


def load_error(load, path) -> str:
    with pytest.raises(LlinkError) as e:
        load(path)
    return str(e.value)


@pytest.mark.parametrize("keep", [0, 5, 20, 200, -10])  # header too small / length / not covered
@pytest.mark.parametrize("kind", ["llink", "direct"])
def test_truncated_weights(artifact, direct, tmp_path, kind, keep):
    src, load = (artifact, LLINK.from_pretrained) if kind == "llink" else (direct, DirectModel.from_pretrained)
    data = (src / WEIGHTS).read_bytes()
    msg = load_error(load, damaged(src, tmp_path, WEIGHTS, data[:keep]))
    assert str(tmp_path / "copy" / WEIGHTS) in msg
    assert "truncated or corrupt" in msg and "re-save / re-train" in msg


@pytest.mark.parametrize("kind", ["llink", "direct"])
@pytest.mark.parametrize("content", [b'{"stage": "A", "encoder', b"\xff\xfe not utf-8", b"[1, 2]"])
def test_config_not_json(artifact, direct, tmp_path, kind, content):
    src, load = (artifact, LLINK.from_pretrained) if kind == "llink" else (direct, DirectModel.from_pretrained)
    msg = load_error(load, damaged(src, tmp_path, CONFIG, content))
    assert f"{tmp_path / 'copy' / CONFIG} is corrupt" in msg and "re-save / re-train" in msg


def test_missing_weights(artifact, direct, tmp_path):
    msg = load_error(LLINK.from_pretrained, damaged(artifact, tmp_path, WEIGHTS, None))
    assert f"{tmp_path / 'copy' / WEIGHTS} is missing" in msg and "re-save / re-train" in msg
    shutil.rmtree(tmp_path / "copy")
    msg = load_error(DirectModel.from_pretrained, damaged(direct, tmp_path, WEIGHTS, None))
    assert f"{tmp_path / 'copy' / WEIGHTS} missing" in msg and "re-train" in msg
