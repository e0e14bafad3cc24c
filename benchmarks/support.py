"""Scaffolding for benchmarks and tests, not part of the library: an untrained Stage B artifact,
a server on a loopback port in a background thread, and a bounded load generator (stdlib HTTP only).

Benchmarks import it as `benchmarks.support` (each script puts the repository root on sys.path),
tests likewise (pytest puts the repository root on sys.path: tests/ is a package)."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Iterator, Sequence

QUESTIONS = ("Translate to English.", "Summarise this in one sentence.", "What is it about?")


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over `cpus` from /proc/stat, or None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            t = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(t)
            busy += sum(t) - t[3] - t[4]
    return (busy, total) if total else None


def busy_machine(limit: float = 0.5, window_s: float = 1.0) -> str | None:
    """Why timings taken now would measure another job too, or None when the machine is idle
    enough: the CPUs this process may use were busy more than `limit` of the time over the last
    `window_s` (from /proc/stat; the 1-minute load average where there is none). The load average
    still counts a job that ended a minute ago, which refused a benchmark run right after another
    one. The ratios a benchmark reports hold only when both sides run on the same free cores."""
    import os

    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    before = _cpu_times(cpus)
    if before is not None:
        time.sleep(window_s)
        after = _cpu_times(cpus)
        share = (after[0] - before[0]) / max(after[1] - before[1], 1)
        if share <= limit:
            return None
        return (f"CPU use {share:.0%} of {len(cpus)} CPUs over the last {window_s:g} s: another job is using this machine, and its "
                "share of the cores would be timed too; wait for it (or pause it), or pass --busy_ok to time anyway")
    load = os.getloadavg()[0]
    if load <= limit * len(cpus):
        return None
    return (f"load average {load:.2f} on {len(cpus)} CPUs: another job is using this machine, and its share of the cores would be "
            "timed too; wait for it (or pause it), or pass --busy_ok to time anyway (the JSON then records the load)")


def untrained_stage_b(encoder_name: str, encoder, decoder_name: str, decoder, k: int = 8, lora: dict | None = None,
                      slot_source: str = "pooled", k_rule: dict | None = None, hints: bool = False):
    """A Stage B model on loaded models with a random projector and expander and a zero LoRA:
    it answers nonsense, but it exercises exactly the serving and prefill path of a trained one
    (with a K rule, k is the rule's max)."""
    from llink.model import LLINK, LLINKConfig
    from llink.prompts import PromptConfig
    from llink.slots import median_embedding_norm

    config = LLINKConfig.for_models(
        encoder_name, encoder, decoder_name, decoder, teacher={"layer": 1, "pooling": "mean", "norm": "none"},
        prompt=PromptConfig(k=k_rule["max"] if k_rule else k, k_rule=k_rule, hints=hints).to_dict(), stage="B",
        expander={"target_norm": median_embedding_norm(decoder.embeddings)},
        lora=lora or {"r": 4, "alpha": 4, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}, slot_source=slot_source,
    )
    return LLINK(config).attach(encoder=encoder, decoder=decoder)


def untrained_artifact(encoder: str, decoder: str, out: str | Path, k: int = 8, lora_r: int = 4) -> Path:
    """untrained_stage_b, loaded by name and saved as an artifact directory."""
    import torch

    from llink.decoders import load_decoder
    from llink.encoders import load_encoder

    torch.manual_seed(0)
    lora = {"r": lora_r, "alpha": lora_r, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}
    return untrained_stage_b(encoder, load_encoder(encoder), decoder, load_decoder(decoder), k, lora).save_pretrained(out)


@contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a daemon thread; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > 30:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def post(url: str, body: dict, api_key: str | None = None, timeout: float = 120) -> tuple[int, Message, dict]:
    """(status, headers (case-insensitive), JSON body) of a POST; HTTP errors are returned, not raised."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"{}")


def run_load(base_url: str, passages: Sequence[str], requests: int = 32, concurrency: int = 4, max_tokens: int = 16,
             api_key: str | None = None) -> dict:
    """Send `requests` chat completions, `concurrency` at a time, cycling through `passages`
    (so later requests about a passage hit the slot cache); returns the measurements."""

    def one(i: int) -> tuple[float, int, str | None, str | None, int]:
        body = {"model": "llink", "max_tokens": max_tokens, "messages": [
            {"role": "user", "content": f"<foreign>{passages[i % len(passages)]}</foreign>\n{QUESTIONS[i % len(QUESTIONS)]}"}]}
        t = time.perf_counter()
        try:
            status, headers, out = post(f"{base_url}/v1/chat/completions", body, api_key)
        except OSError as e:  # refused, reset, timed out
            return time.perf_counter() - t, 0, None, repr(e), 0
        err = None if status == 200 else out.get("error", {}).get("message", str(out))
        return (time.perf_counter() - t, out.get("usage", {}).get("completion_tokens", 0), headers.get("X-LLINK-Slot-Cache"), err,
                int(headers.get("X-LLINK-Batch") or 1))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    ok = [r for r in results if r[3] is None]
    lat = sorted(r[0] for r in ok) or [0.0]
    return {
        "requests": requests, "concurrency": concurrency, "max_tokens": max_tokens, "passages": len(passages),
        "failures": requests - len(ok), "errors": sorted({r[3] for r in results if r[3]})[:5],
        "wall_s": round(wall, 3), "requests_per_s": round(len(ok) / wall, 2),
        "latency_p50_ms": round(1000 * statistics.median(lat), 1),
        "latency_p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1),
        "completion_tokens_per_s": round(sum(r[1] for r in ok) / wall, 1),
        "slot_cache_hit_rate": round(sum(r[2] == "hit" for r in ok) / max(1, len(ok)), 3),
        "mean_batch": round(sum(r[4] for r in ok) / max(1, len(ok)), 2),  # requests decoded alongside each one, itself included
    }
