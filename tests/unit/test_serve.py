"""`llink serve` over a real loopback socket, on a tiny untrained Stage B artifact (no mocks)."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from llink.model import LLINK  # noqa: E402
from llink.serve import Limits, create_app  # noqa: E402
from benchmarks.support import post, run_load, running, untrained_artifact  # noqa: E402

KM = "ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។"
KM2 = "បើក​ម៉ឺនុយ​ឯកសារ ហើយ​ជ្រើស​រក្សា​ទុក​ជា"
LIMITS = Limits(max_passage_chars=300, max_tokens=24, max_request_bytes=8192, timeout_s=120, cache_size=8)


@pytest.fixture(scope="module")
def artifact(tiny_dirs, tmp_path_factory):
    return untrained_artifact(tiny_dirs["encoder"], tiny_dirs["decoder"], tmp_path_factory.mktemp("serve") / "tiny-llink", k=4)


def _serve(artifact, **kw):
    """A server over its own LLINK instance (one app per model: the app's worker owns it)."""
    model = LLINK.from_pretrained(artifact)
    app = create_app(model, name="tiny-llink", **kw)
    return app, running(app)


@pytest.fixture(scope="module")
def srv(artifact):
    app, ctx = _serve(artifact, limits=LIMITS)
    with ctx as url:
        yield SimpleNamespace(url=url, engine=app.state.engine)


def ask(passage: str, question: str = "Translate to English.", **kw) -> dict:
    return {"model": "tiny-llink", "max_tokens": 6, "messages": [{"role": "user", "content": f"<foreign>{passage}</foreign>\n{question}"}], **kw}


def get(url: str, api_key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else {"text": body.decode()}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def stream(url: str, body: dict) -> tuple[int, dict, list]:
    """(status, headers, events) of a streamed chat completion; the last event is '[DONE]'."""
    req = urllib.request.Request(url, json.dumps({**body, "stream": True}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers.get_content_type() == "text/event-stream"
        events = []
        for line in r:
            line = line.decode().strip()
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
        return r.status, r.headers, events


def is_error(status: int, body: dict, expected: int, code: str | None = None) -> bool:
    err = body.get("error", {})
    assert isinstance(err.get("message"), str) and err["message"] and "Traceback" not in err["message"], body
    assert isinstance(err.get("type"), str), body
    return status == expected and (code is None or err.get("code") == code)


# -- happy paths ---------------------------------------------------------------------------
def test_health_models_page_and_openapi(srv):
    assert get(f"{srv.url}/health") == (200, {"status": "ok", "model": "tiny-llink", "k": 4, "stage": "B"})
    status, body = get(f"{srv.url}/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["tiny-llink"]
    status, body = get(f"{srv.url}/")
    assert status == 200 and "<foreign>" in body["text"] and "/v1/chat/completions" in body["text"]
    status, schema = get(f"{srv.url}/openapi.json")
    assert status == 200 and {"/v1/chat/completions", "/v1/embeddings", "/health"} <= set(schema["paths"])


def test_chat_completion_and_slot_cache(srv):
    status, headers, out = post(f"{srv.url}/v1/chat/completions", ask(KM))
    assert status == 200, out
    assert headers["x-llink-slot-cache"] in ("hit", "miss")  # another test may have seen KM first
    assert out["object"] == "chat.completion" and out["model"] == "tiny-llink"
    (choice,) = out["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    prompt = srv.engine.builder.chat("Translate to English.")  # K slot positions, no Khmer tokens
    u = out["usage"]
    assert u["prompt_tokens"] == len(prompt) and 0 < u["completion_tokens"] <= 6 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # Greedy is deterministic, and the same passage is now served from the slot cache.
    status, headers, again = post(f"{srv.url}/v1/chat/completions", ask(KM, model="llink"))
    assert status == 200 and headers["x-llink-slot-cache"] == "hit"
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]


def test_streaming_matches_non_streaming(srv):
    body = ask(KM2, "What is it about?", stream_options={"include_usage": True})
    _, _, plain = post(f"{srv.url}/v1/chat/completions", body)
    status, headers, events = stream(f"{srv.url}/v1/chat/completions", body)
    assert status == 200 and headers["x-llink-slot-cache"] == "hit" and events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip() == plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_follow_up_reuses_the_passage_slots(srv):
    passage = "ជ្រើស​ឯកសារ​ថ្មី"
    first = ask(passage)
    status, headers, out = post(f"{srv.url}/v1/chat/completions", first)
    assert status == 200 and headers["x-llink-slot-cache"] == "miss"
    answer = out["choices"][0]["message"]["content"] or "I do not know."
    follow = {**first, "messages": [{"role": "system", "content": "ignored: the artifact's system prompt is used"},
                                    *first["messages"], {"role": "assistant", "content": answer},
                                    {"role": "user", "content": [{"type": "text", "text": "And in one word?"}]}]}
    status, headers, out2 = post(f"{srv.url}/v1/chat/completions", follow)
    assert status == 200 and headers["x-llink-slot-cache"] == "hit"
    expected = srv.engine.builder.chat("And in one word?", history=[("Translate to English.", answer)])
    assert out2["usage"]["prompt_tokens"] == len(expected) > out["usage"]["prompt_tokens"]


def test_embeddings(srv):
    status, _, one = post(f"{srv.url}/v1/embeddings", {"model": "llink", "input": KM})
    assert status == 200 and one["object"] == "list" and len(one["data"]) == 1
    hidden = srv.engine.decoder.hidden_size
    assert len(one["data"][0]["embedding"]) == hidden
    status, _, many = post(f"{srv.url}/v1/embeddings", {"input": [KM2, KM, KM2]})
    assert status == 200 and [d["index"] for d in many["data"]] == [0, 1, 2]
    vecs = np.array([d["embedding"] for d in many["data"]])
    assert vecs.shape == (3, hidden)
    np.testing.assert_allclose(vecs[1], one["data"][0]["embedding"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vecs[0], vecs[2])
    status, _, b64 = post(f"{srv.url}/v1/embeddings", {"input": KM, "encoding_format": "base64"})
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), np.float32), vecs[1], rtol=1e-5, atol=1e-6)


def test_token_comparison_for_the_page(srv):
    status, _, out = post(f"{srv.url}/api/tokens", {"text": KM})
    n = len(srv.engine.decoder.tokenizer(KM, add_special_tokens=False)["input_ids"])
    assert status == 200 and out == {"raw_tokens": n, "slots": 4} and n > 4


# -- bad input: always a 4xx with an OpenAI error body ------------------------------------
def msgs(*contents, roles=None):
    roles = roles or ["user", "assistant"] * len(contents)
    return {"messages": [{"role": r, "content": c} for r, c in zip(roles, contents)]}


BAD_CHAT = [
    ({}, 400, "invalid_value"),  # no messages
    ({"messages": []}, 400, "invalid_value"),
    ({"messages": "hello"}, 400, "invalid_value"),
    ({**ask(KM), "max_tokens": "5"}, 400, "invalid_value"),  # wrong type, not coerced
    ({**ask(KM), "temperature": -1}, 400, "invalid_value"),
    ({**ask(KM), "n": 2}, 400, "unsupported_value"),
    ({**ask(KM), "max_tokens": 25}, 400, "invalid_value"),  # above the server's cap
    ({**ask(KM), "model": "gpt-4o"}, 404, "model_not_found"),
    ({"messages": [{"role": "tool", "content": "x"}]}, 400, "invalid_value"),
    (msgs("Translate this."), 400, "no_passage"),
    (msgs("<foreign> </foreign> Translate."), 400, "empty_passage"),
    (msgs(f"<foreign>{KM}</foreign><foreign>{KM2}</foreign> Compare."), 400, "too_many_passages"),
    (msgs(f"<foreign>{KM}</foreign> Translate.", "ok", f"<foreign>{KM2}</foreign> And this?"), 400, "too_many_passages"),
    (msgs("Hello.", "Hi.", f"<foreign>{KM}</foreign> Translate."), 400, "invalid_passage"),
    (msgs(f"<foreign>{KM} Translate."), 400, "invalid_passage"),
    (msgs(f"<foreign>{'ក' * 301}</foreign> Translate."), 400, "passage_too_long"),
    (msgs(f"<foreign>{KM}</foreign> Translate.", "ok"), 400, "invalid_messages"),  # ends with the assistant
    (msgs(f"<foreign>{KM}</foreign>"), 400, "invalid_request"),  # the library's LlinkError: empty instruction
]


@pytest.mark.parametrize("body, status, code", BAD_CHAT)
def test_bad_chat_requests(srv, body, status, code):
    got, _, out = post(f"{srv.url}/v1/chat/completions", body)
    assert is_error(got, out, status, code), (got, out)


@pytest.mark.parametrize("body, status, code", [
    ({"input": []}, 400, "invalid_value"),
    ({"input": 5}, 400, "invalid_value"),
    ({"input": ["ok", " "]}, 400, "invalid_request"),  # the encoder's LlinkError, not a 500
    ({"input": "x", "model": "nope"}, 404, "model_not_found"),
])
def test_bad_embeddings_requests(srv, body, status, code):
    got, _, out = post(f"{srv.url}/v1/embeddings", body)
    assert is_error(got, out, status, code), (got, out)


def test_invalid_json_oversized_body_and_unknown_routes(srv):
    req = urllib.request.Request(f"{srv.url}/v1/chat/completions", b'{"messages": [', {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert is_error(e.value.code, json.loads(e.value.read()), 400, "invalid_json")
    got, _, out = post(f"{srv.url}/v1/chat/completions", {**ask(KM), "pad": "x" * 9000})
    assert is_error(got, out, 413, "request_too_large")
    # a chunked body has no Content-Length: it is counted as it arrives
    host, port = srv.url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/embeddings", body=iter([b'{"input": "', b"x" * 9000, b'"}']),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    r = conn.getresponse()
    assert is_error(r.status, json.loads(r.read()), 413, "request_too_large")
    conn.close()
    assert is_error(*get(f"{srv.url}/v1/nothing"), 404)
    assert is_error(*get(f"{srv.url}/v1/chat/completions"), 405)


# -- keys, timeouts, concurrency -------------------------------------------------------------
def test_api_key(artifact):
    _, ctx = _serve(artifact, api_key="s3cret", limits=LIMITS)
    with ctx as url:
        for route in ("/health", "/", "/openapi.json"):  # every route is protected
            assert is_error(*get(f"{url}{route}"), 401, "invalid_api_key")
            assert get(f"{url}{route}", api_key="s3cret")[0] == 200
        assert get(f"{url}/?key=s3cret")[0] == 200  # a browser opening the page
        assert is_error(*get(f"{url}/?key=wrong"), 401, "invalid_api_key")
        assert is_error(*get(f"{url}/v1/models"), 401, "invalid_api_key")
        assert is_error(*get(f"{url}/v1/models", api_key="wrong"), 401, "invalid_api_key")
        assert get(f"{url}/v1/models", api_key="s3cret")[0] == 200
        got, _, out = post(f"{url}/v1/chat/completions", ask(KM))
        assert is_error(got, out, 401, "invalid_api_key")
        got, _, out = post(f"{url}/api/tokens", {"text": KM})
        assert is_error(got, out, 401, "invalid_api_key")
        got, _, out = post(f"{url}/v1/chat/completions", ask(KM), api_key="s3cret")
        assert got == 200 and out["object"] == "chat.completion"


def test_timeout_is_a_504(artifact):
    _, ctx = _serve(artifact, limits=Limits(timeout_s=1e-6))
    with ctx as url:
        got, _, out = post(f"{url}/v1/chat/completions", ask(KM))
        assert is_error(got, out, 504, "timeout")
        assert get(f"{url}/health", api_key="s3cret")[0] == 200  # the server is still up


def test_concurrent_requests_all_succeed(srv):
    passages = [KM, KM2, "ឯកសារ", "ប៊ូតុង"]
    results: list = [None] * 8

    def worker(i: int) -> None:
        body = ask(passages[i % 4], ("Translate to English.", "What is it about?")[i % 2])
        try:
            if i % 2:
                status, _, events = stream(f"{srv.url}/v1/chat/completions", body)
                results[i] = status == 200 and events[-1] == "[DONE]" and not any("error" in e for e in events[:-1])
            else:
                status, _, out = post(f"{srv.url}/v1/chat/completions", body)
                results[i] = status == 200 and out["object"] == "chat.completion"
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            results[i] = repr(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [True] * 8
    assert get(f"{srv.url}/health")[0] == 200


def test_waiting_greedy_requests_are_decoded_as_one_batch(artifact):
    """Requests queued behind a busy worker share one pass when they ask for the same max_tokens,
    and get the answers they would have got alone."""
    from concurrent.futures import CancelledError

    from llink.errors import LlinkError
    from llink.serve.engine import Cancelled, Engine

    engine = Engine(LLINK.from_pretrained(artifact), cache_size=8, max_batch=3)
    try:
        texts = [KM, KM2, "ឯកសារ", "ប៊ូតុង", "ទំព័រ​ដើម", "ការ​កំណត់", "ម៉ឺនុយ"]
        q = "Translate to English."
        preps = [engine.submit(engine.prepare, t, q, [], threading.Event()).result() for t in texts]
        alone = [engine.submit(engine.generate, p, 6, 0.0, 1.0, 0, threading.Event()).result() for p in preps]
        gate = threading.Event()
        engine.submit(gate.wait)  # hold the worker so that requests pile up
        sizes = [6, 6, 3, 6, 6, 6, 6]
        cancels = [threading.Event() for _ in texts]

        def refuse(prep):
            raise LlinkError("too long")

        futures = [engine.answer(t, q, [], n, c, refuse if i == 6 else None) for i, (t, n, c) in enumerate(zip(texts, sizes, cancels))]
        cancels[4].set()  # its client went away while it waited
        assert futures[5].cancel()  # its client timed out before the model reached it
        gate.set()
        with pytest.raises(Cancelled):
            futures[4].result(60)
        with pytest.raises(CancelledError):
            futures[5].result(60)
        with pytest.raises(LlinkError, match="too long"):
            futures[6].result(60)
        got = [f.result(60) for f in futures[:4]]
        # the oldest (max_tokens 6) goes with the next two that also ask for 6; the 3 waits
        assert [g[3] for g in got] == [3, 3, 1, 3]
        # batched answers are the ones each request gets alone, token counts included
        assert [g[1:3] for i, g in enumerate(got) if i != 2] == [alone[0], alone[1], alone[3]]
        assert [g[0].prompt.input_ids for g in got] == [p.prompt.input_ids for p in preps[:4]]
    finally:
        engine.close()


def test_concurrent_greedy_requests_share_a_batch_over_http(artifact):
    app, ctx = _serve(artifact, limits=LIMITS)
    with ctx as url:
        _, _, alone = post(f"{url}/v1/chat/completions", ask(KM2))
        engine, gate, queued = app.state.engine, threading.Event(), threading.Semaphore(0)
        answer = engine.answer

        def counted(*args):  # the four requests wait behind the gate before it opens
            queued.release()
            return answer(*args)

        engine.submit(gate.wait)
        engine.answer = counted
        results: list = [None] * 4

        def worker(i: int) -> None:
            results[i] = post(f"{url}/v1/chat/completions", ask((KM2, KM)[i % 2]))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        queued_all = all(queued.acquire(timeout=60) for _ in range(4))
        gate.set()  # before asserting: the requests would otherwise wait for the gate
        assert queued_all
        for t in threads:
            t.join(120)
        assert all(r is not None and r[0] == 200 for r in results), results
        assert [r[1]["x-llink-batch"] for r in results] == ["4"] * 4
        assert results[0][2]["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]
        # sampled requests are not batched: no header
        status, headers, _ = post(f"{url}/v1/chat/completions", ask(KM, temperature=0.7, seed=1))
        assert status == 200 and "x-llink-batch" not in headers


def test_load_generator(srv):
    res = run_load(srv.url, ["ទំព័រ​ដើម", "ការ​កំណត់"], requests=6, concurrency=3, max_tokens=4)
    assert res["failures"] == 0, res["errors"]
    assert res["slot_cache_hit_rate"] == pytest.approx(4 / 6, abs=1e-3)  # the first request per passage misses
    assert res["latency_p50_ms"] > 0 and res["requests_per_s"] > 0


def test_cli_documents_serve_and_needs_a_model(capsys):
    from llink_app.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--model", "--host", "--port", "--max_passage_chars", "--max_tokens", "--max_request_bytes", "--timeout_s", "--cache_size"):
        assert opt in out
    assert main(["serve"]) == 2 and "--model is required" in capsys.readouterr().err
    assert main(["serve", "--model", "x", "--max_tokens", "0"]) == 2


# -- the web page in a real browser ----------------------------------------------------------
def _chromium():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no Chromium and ChromeDriver on PATH (`make setup` installs Debian's chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def test_web_page_streams_an_answer(srv):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chromium()
    try:
        browser.get(f"{srv.url}/")
        browser.find_element(By.ID, "passage").send_keys(KM)
        n = len(srv.engine.decoder.tokenizer(KM, add_special_tokens=False)["input_ids"])
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "tokens").text == f"raw tokens {n} vs 4 slots")
        temperature = browser.find_element(By.ID, "temperature")
        temperature.clear()
        temperature.send_keys("1")  # sampled: a random tiny model's greedy answer may be all whitespace
        for turn, question in enumerate(["What is it about?", "And in one word?"]):
            box = browser.find_element(By.ID, "question")
            box.clear()
            box.send_keys(question)
            browser.find_element(By.ID, "send").click()
            WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#log .assistant[data-done='1'], #log .error")) == turn + 1)
            answers = browser.find_elements(By.CSS_SELECTOR, "#log .assistant")
            assert not browser.find_elements(By.CSS_SELECTOR, "#log .error"), browser.find_element(By.ID, "log").text
            assert len(answers) == turn + 1 and answers[-1].get_attribute("textContent").strip()
        assert browser.find_element(By.ID, "cache").text == "slot cache: hit"  # the follow-up reused the slots
    finally:
        browser.quit()
