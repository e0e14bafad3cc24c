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

    assert busy_machine(limit=1e9, window_s=0.1) is None
    msg = busy_machine(limit=-1.0, window_s=0.1)  # any use is above a negative limit
    assert msg.startswith(("CPU use ", "load average ")) and "--busy_ok" in msg


def test_the_busy_check_reads_the_cpus_it_may_use_over_a_window():
    """The check samples /proc/stat instead of the 1-minute load average (which refused a run
    right after another): a process spinning on every allowed CPU shows up within the window."""
    import os
    import time

    from benchmarks.support import _cpu_times, busy_machine

    cpus = set(os.sched_getaffinity(0))
    busy, total = _cpu_times(cpus)
    assert 0 <= busy <= total
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus]
    try:
        time.sleep(0.3)
        msg = busy_machine(limit=0.75, window_s=0.5)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert msg is not None and msg.startswith("CPU use ") and f"of {len(cpus)} CPUs" in msg


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
    # the untrained model has a fixed K of 8 and no hints: every request is the shortest of its format
    assert res["format_tokens"] == res["llink_prompt_tokens"] - res["shared_prefix_tokens"] > 8
    assert res["format_floor_ms"] > 0 and res["max_speedup_format"] > 0
