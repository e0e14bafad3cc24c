"""`llink serve`: load an artifact and serve it with uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llink.errors import LlinkError


def serve(model: Path | None = None, host: str = "127.0.0.1", port: int = 8000, max_passage_chars: int = 2000, max_tokens: int = 256,
          max_request_bytes: int = 65536, timeout_s: float = 60.0, cache_size: int = 256, device: str = "cpu",
          dtype: str = "auto", max_batch: int = 8) -> None:
    """Serve an LLINK artifact over HTTP: OpenAI-compatible /v1/chat/completions and
    /v1/embeddings, /health, /v1/models, and a web page at /.

    A passage goes in <foreign>...</foreign> in the first user message; its K slots are cached,
    so follow-up questions skip the encoder. If the environment variable LLINK_API_KEY is set,
    /v1/* and /api/* require `Authorization: Bearer <key>` (the page, /health and /docs stay
    open). The key is never a flag, so it does not show in the process list.

    Args:
        model: the LLINK artifact directory (Stage B for chat; Stage A serves embeddings only).
        host: interface to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: TCP port.
        max_passage_chars: longest passage (and embeddings input) accepted, in characters.
        max_tokens: the most tokens one answer may have; also the default when a request gives none.
        max_request_bytes: largest request body; larger ones get 413.
        timeout_s: per-request limit in seconds, time queued behind other requests included; past it, 504.
        cache_size: number of passages whose slots are kept in memory (0: no cache).
        device: where the models run (cpu, cuda, cuda:1, mps).
        dtype: decoder weights: auto (bf16 on CUDA, fp32 elsewhere), fp32, bf16 (on CPUs with
            AVX512-BF16 or AMX it halves a single prompt's prefill), fp16 (GPU).
        max_batch: greedy, non-streamed requests waiting for the model at the same time (and
            asking for the same max_tokens) are decoded together, up to this many; 1 turns
            batching off. Sampled and streamed requests always run one at a time.
    """
    import uvicorn

    from llink.model import load_for_inference
    from llink.serve.app import Limits, create_app

    limits = Limits(max_passage_chars=max_passage_chars, max_tokens=max_tokens, max_request_bytes=max_request_bytes,
                    timeout_s=timeout_s, cache_size=cache_size, max_batch=max_batch)
    if model is None:
        raise LlinkError("--model is required: an LLINK artifact directory")
    if not 0 < port < 65536:
        raise LlinkError(f"--port must be in 1..65535, got {port}")
    api_key = os.environ.get("LLINK_API_KEY") or None
    name = Path(model).resolve().name
    # one model per server: its LoRA is folded into the decoder weights (same answers, faster)
    app = create_app(load_for_inference(model, device=device, dtype=dtype), name=name, api_key=api_key, limits=limits)
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"llink: warning: serving on {host} without an API key (set LLINK_API_KEY)", file=sys.stderr)
    print(f"llink: serving {name} at http://{host}:{port}/ (API key {'required' if api_key else 'not set'})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info")
