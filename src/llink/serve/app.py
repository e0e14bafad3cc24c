"""An OpenAI-compatible HTTP server for an LLINK artifact, with slot caching and a web page.

Routes: POST /v1/chat/completions (a passage in <foreign>...</foreign> in the first user message,
read through K slots), POST /v1/embeddings (projected vectors), GET /v1/models, GET /health,
GET / (the page), POST /api/tokens (raw tokens vs K slots for the page).

With an API key (LLINK_API_KEY) every route needs `Authorization: Bearer <key>`. The page is the
one exception in form, not in substance: a browser cannot send that header when it opens a URL,
so `/` also accepts `?key=<key>`, and the page then sends the header on every call it makes.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import random
import threading
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ..errors import LlinkError
from .engine import Cancelled, Engine
from .schema import ApiError, ChatRequest, EmbeddingRequest, Limits, TokensRequest, error_response, parse_chat

log = logging.getLogger("llink.serve")


def _stream_error(e: BaseException) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, LlinkError):
        return ApiError(400, str(e), "invalid_request")
    if isinstance(e, Cancelled):
        return ApiError(504, "the request was cancelled", "timeout", "timeout_error")
    log.error("generation failed", exc_info=e)
    return ApiError(500, "internal server error (see the server log)", "internal_error", "server_error")


# -- the app -------------------------------------------------------------------------------
class _Gate:
    """ASGI middleware: the API key on /v1 and /api, then the request-body size limit (413)."""

    def __init__(self, app, api_key: str | None, max_bytes: int):
        self.app, self.key, self.max = app, api_key, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.key:
            given = headers.get(b"authorization", b"")
            if scope["path"] == "/" and not given:
                from urllib.parse import parse_qs

                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = b"Bearer " + query.get("key", [""])[0].encode()
            if not hmac.compare_digest(given, b"Bearer " + self.key.encode()):  # constant time
                msg = "missing API key: send Authorization: Bearer <key>" if not given else "invalid API key"
                return await error_response(401, msg, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        too_big = error_response(413, f"request body larger than {self.max} bytes", "request_too_large")
        length = headers.get(b"content-length")
        if length is not None:  # the server itself enforces that the body matches its length
            if not length.isdigit() or int(length) > self.max:
                return await too_big(scope, receive, send)
            return await self.app(scope, receive, send)
        # Chunked body: read it up to the limit, then replay it to the app.
        body, more = b"", True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            body, more = body + msg.get("body", b""), msg.get("more_body", False)
            if len(body) > self.max:
                return await too_big(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def create_app(model, *, name: str = "llink", api_key: str | None = None, limits: Limits = Limits()) -> FastAPI:
    """The server for one loaded LLINK model. One app per model object: the app's worker thread
    must be the only user of the model."""
    engine = Engine(model, cache_size=limits.cache_size, max_batch=limits.max_batch)
    names = {name, "llink"}
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        yield
        engine.close()

    app = FastAPI(title="llink", description=__doc__, version=model.config.versions.get("llink", ""), lifespan=lifespan)
    app.state.engine = engine
    app.add_middleware(_Gate, api_key=api_key, max_bytes=limits.max_request_bytes)

    # -- errors: always the OpenAI body, never a traceback -------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(LlinkError)
    async def _llink_error(request, e: LlinkError):
        return error_response(400, str(e), "invalid_request")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        err = e.errors()[0] if e.errors() else {}
        if err.get("type") == "json_invalid":
            return error_response(400, f"invalid JSON body: {err.get('ctx', {}).get('error', 'cannot parse')}", "invalid_json")
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"  # loc[0] is "body"
        return error_response(400, f"{where}: {err.get('msg', 'invalid value')}", "invalid_value", param=where)

    @app.exception_handler(HTTPException)
    async def _http(request, e: HTTPException):
        return error_response(e.status_code, str(e.detail), "not_found" if e.status_code == 404 else None, headers=e.headers)

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        log.exception("internal error")
        return error_response(500, "internal server error (see the server log)", "internal_error", "server_error")

    # -- helpers ----------------------------------------------------------------------------
    def check_model(requested: str | None) -> None:
        if requested is not None and requested not in names:
            raise ApiError(404, f"model {requested!r} does not exist; this server serves {name!r} (or 'llink')", "model_not_found", param="model")

    async def run(deadline: float, cancel: threading.Event, fn, *args):
        """A job on the model's worker, bounded by the request's deadline (504 past it)."""
        return await wait(deadline, cancel, engine.submit(fn, *args))

    async def wait(deadline: float, cancel: threading.Event, fut):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), deadline - time.monotonic())
        except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
            cancel.set()
            fut.cancel()
            raise ApiError(504, f"the request took longer than {limits.timeout_s:g}s (time waiting for the model included)",
                           "timeout", "timeout_error") from None
        except Cancelled:
            raise ApiError(504, "the request was cancelled", "timeout", "timeout_error") from None

    # -- routes -----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return resources.files("llink.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "k": engine.k, "stage": model.config.stage}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "llink"}]}

    @app.post("/api/tokens")
    async def tokens(req: TokensRequest):
        if len(req.text) > limits.max_passage_chars:
            raise ApiError(400, f"the passage has {len(req.text)} characters; this server accepts at most {limits.max_passage_chars}", "passage_too_long")
        n, k = await run(time.monotonic() + limits.timeout_s, threading.Event(), engine.count_tokens_and_slots, req.text.strip())
        return {"raw_tokens": n, "slots": k}

    @app.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest):
        check_model(req.model)
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts or len(texts) > limits.max_inputs:
            raise ApiError(400, f"input must hold 1 to {limits.max_inputs} texts, got {len(texts)}", "invalid_value", param="input")
        if any(len(t) > limits.max_passage_chars for t in texts):
            raise ApiError(400, f"an input text is longer than {limits.max_passage_chars} characters", "passage_too_long", param="input")
        vectors = (await run(time.monotonic() + limits.timeout_s, threading.Event(), engine.embed, texts)).numpy().astype(np.float32)
        enc = (lambda v: base64.b64encode(v.tobytes()).decode()) if req.encoding_format == "base64" else (lambda v: v.tolist())
        data = [{"object": "embedding", "index": i, "embedding": enc(v)} for i, v in enumerate(vectors)]
        # The encoder's own token count is not exposed by llink's encoders.
        return {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": 0, "total_tokens": 0}}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        deadline = time.monotonic() + limits.timeout_s
        check_model(req.model)
        if req.n != 1:
            raise ApiError(400, "only n=1 is supported", "unsupported_value", param="n")
        max_tokens = req.max_completion_tokens or req.max_tokens or limits.max_tokens
        if max_tokens > limits.max_tokens:
            raise ApiError(400, f"max_tokens is {max_tokens}; this server allows at most {limits.max_tokens}", "invalid_value", param="max_tokens")
        passage, instruction, history = parse_chat(req.messages, limits.max_passage_chars)
        cancel = threading.Event()
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": name}

        def fits(prep) -> None:
            if engine.max_positions and len(prep.prompt) + max_tokens > engine.max_positions:
                raise ApiError(400, f"the conversation ({len(prep.prompt)} tokens) plus max_tokens ({max_tokens}) exceeds the decoder's "
                                    f"{engine.max_positions} positions", "context_length_exceeded", param="messages")

        def usage(prep, completion: int) -> dict:
            return {"prompt_tokens": len(prep.prompt), "completion_tokens": completion, "total_tokens": len(prep.prompt) + completion}

        def finish(completion: int) -> str:
            return "length" if completion >= max_tokens else "stop"

        def respond(prep, text: str, n: int, headers: dict) -> JSONResponse:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish(n), "logprobs": None}
            headers = {"X-LLINK-Slot-Cache": "hit" if prep.cache_hit else "miss", **headers}
            return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage(prep, n)}, headers=headers)

        if not req.stream and req.temperature == 0:  # greedy: batched with the other requests waiting for the model
            prep, text, n, batch = await wait(deadline, cancel, engine.answer(passage, instruction, history, max_tokens, cancel, fits))
            return respond(prep, text, n, {"X-LLINK-Batch": str(batch)})

        prep = await run(deadline, cancel, engine.prepare, passage, instruction, history, cancel)
        fits(prep)
        seed = req.seed if req.seed is not None else random.randrange(2**31)
        args = (prep, max_tokens, req.temperature, req.top_p, seed, cancel)
        if not req.stream:
            return respond(prep, *await run(deadline, cancel, engine.generate, *args), {})
        headers = {"X-LLINK-Slot-Cache": "hit" if prep.cache_hit else "miss"}

        # Streaming: the worker pushes pieces into an asyncio queue from its own thread.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (server shutting down)
                cancel.set()

        def job():
            try:
                put(("done", engine.generate(*args, on_text=lambda t: put(("text", t)))))
            except BaseException as e:  # noqa: BLE001 - handed to the response, which reports it
                put(("error", e))

        fut = engine.submit(job)

        def event(obj: dict) -> str:
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

        def chunk(delta: dict, finish_reason: str | None = None) -> str:
            return event({**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

        async def events():
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    try:
                        kind, value = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
                    except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
                        yield event(ApiError(504, f"the request took longer than {limits.timeout_s:g}s", "timeout", "timeout_error").body())
                        break
                    if kind == "text":
                        if value:
                            yield chunk({"content": value})
                    elif kind == "error":  # headers are sent: the error goes in the stream
                        yield event(_stream_error(value).body())
                        break
                    else:
                        n = value[1]
                        yield chunk({}, finish(n))
                        if req.stream_options and req.stream_options.include_usage:
                            yield event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage(prep, n)})
                        break
                yield "data: [DONE]\n\n"
            finally:  # finished, timed out or the client went away: stop the worker's job
                cancel.set()
                fut.cancel()

        headers.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return app
