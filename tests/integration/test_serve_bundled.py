"""The serving benchmark end to end on the bundled models (an untrained Stage B artifact)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("fastapi")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
PREFILL = BENCH.with_name("prefill.py")


def test_serve_load_benchmark_on_bundled_models():
    r = subprocess.run([sys.executable, str(BENCH), "--requests", "4", "--concurrency", "2", "--max_tokens", "4", "--passages", "2", "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert set(res["runs"]) == {"1", "8"} and res["requests_per_s_ratio"] > 0  # without and with batching, one model
    for run in res["runs"].values():
        assert run["failures"] == 0, run["errors"]
        assert run["slot_cache_hit_rate"] == 0.5  # 2 passages, 4 requests: the first per passage misses (each server its own cache)
    assert res["runs"]["1"]["mean_batch"] == 1.0 and 1.0 <= res["runs"]["8"]["mean_batch"] <= 2.0


def test_a_timing_benchmark_names_the_load_that_makes_the_machine_busy():
    from benchmarks.support import busy_machine

    assert busy_machine(limit=1e9) is None
    msg = busy_machine(limit=-1.0)  # any load is above a negative limit
    assert msg.startswith("load average ") and "--busy_ok" in msg


def test_prefill_benchmark_says_where_the_time_goes():
    """benchmarks/prefill.py on the bundled models (run as a script, importing benchmarks.support):
    the served path's breakdown adds up to its total and sits next to the floors it is held to."""
    # --busy_ok: the suite itself loads the machine; this checks the report's shape, not its timings
    r = subprocess.run([sys.executable, str(PREFILL), "--passages", "1", "--sizes", "1", "--threads", "1", "--json", "--busy_ok"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (res,) = json.loads(r.stdout)
    parts = res["breakdown_ms"]
    assert set(parts) == {"encoder", "projector_expander", "prompt", "decoder"} and min(parts.values()) > 0
    assert abs(sum(parts.values()) - res["llink_folded_cached_ms"]) < 0.05
    assert res["floor_ms"] > 0 and res["floor2_ms"] > 0 and res["encoder_repeat_ms"] > 0
    assert isinstance(res["target_met"], bool) and res["vs_floor"] > 0
