"""Stage A across two CPU processes (gloo) launched by torchrun, which accelerate picks up:
batches and the queue are gathered across processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_align import args, rows, write_pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes(tiny_dirs, tmp_path):
    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip("torchrun not installed next to this python")
    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "ddp"
    cmd = [str(launcher), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "llink_app", *args(tiny_dirs, data, out, epochs=8, batch_size=8)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = rows(out)
    # 96 pairs / (8 per process x 2 processes) = 6 steps per epoch: the global batch is 16
    assert log[-1]["step"] == 8 * 6
    assert log[-1]["loss"] < log[0]["loss"]
    assert (out / "llink" / "model.safetensors").exists()
