"""Instruction data: task families, self-distilled targets from a real (tiny) decoder, caching."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from llink.data.io import Pair
from llink.data.synth import TASKS, EndpointGenerator, LocalGenerator, eligible, read_examples, synthesize, write_examples
from llink.errors import LlinkError

PAIRS = [Pair(f"ខ្មែរ​អត្ថបទ​លេខ {i} " + "ក" * (i % 7), f"English text number {i}") for i in range(30)] + [Pair("ក", "A"), Pair("ក" * 300, "long")]


class Counting:
    def __init__(self, inner):
        self.inner, self.calls, self.id, self.batch_size = inner, 0, inner.id, 8

    def __call__(self, requests):
        self.calls += len(requests)
        return self.inner(requests)


def test_tasks_filters_and_cache(tiny_decoder, tmp_path):
    gen = Counting(LocalGenerator(tiny_decoder, max_new_tokens=4, batch_size=8))
    ex = synthesize(PAIRS, gen, ["translate", "qa", "bullets"], per_task=5, progress=False)
    assert len(eligible(PAIRS)) == 30  # the 1-char and 300-char texts are dropped
    by_task = {t: [e for e in ex if e.task == t] for t in ("translate", "qa", "bullets")}
    assert len(by_task["translate"]) == 30 and all(e.answer == e.en for e in by_task["translate"])
    # a random tiny decoder may answer with nothing but whitespace; such rows are dropped
    assert len(by_task["qa"]) <= 5 and all(e.instruction in TASKS["qa"] and e.answer.strip() for e in by_task["qa"])
    assert gen.calls == 10
    again = synthesize(PAIRS, gen, ["translate", "qa", "bullets"], per_task=5, progress=False)
    assert gen.calls == 10 and again == ex  # served from the cache, identical
    write_examples(tmp_path / "train.jsonl", ex)
    assert read_examples(tmp_path / "train.jsonl") == ex


def test_bad_tasks_and_bad_files(tmp_path):
    with pytest.raises(LlinkError, match="unknown task"):
        synthesize(PAIRS, None, ["poetry"])
    with pytest.raises(LlinkError, match="llink synth"):
        read_examples(tmp_path / "missing.jsonl")
    f = tmp_path / "bad.jsonl"
    f.write_text('{"src": "a", "en": "b", "task": "translate", "instruction": "x", "answer": "b"}\n{"src": 1}\n')
    with pytest.raises(LlinkError, match="bad.jsonl:2"):
        read_examples(f)


def test_endpoint_generator_speaks_openai_chat_completions():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            reply = {"choices": [{"message": {"role": "assistant", "content": " It is about text. "}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        gen = EndpointGenerator(f"http://127.0.0.1:{srv.server_port}/v1", "judge-model", max_new_tokens=16)
        assert gen([("What is this text about?", "Open the file.")]) == ["It is about text."]
        path, body, _ = seen[0]
        assert path == "/v1/chat/completions" and body["model"] == "judge-model" and body["max_tokens"] == 16
        assert body["messages"][0]["content"] == "Open the file.\n\nWhat is this text about?"
    finally:
        srv.shutdown()
    with pytest.raises(LlinkError, match="failed"):
        EndpointGenerator(f"http://127.0.0.1:{srv.server_port}/v1", "m", timeout=2)([("q", "t")])


def test_passages_join_every_task_past_the_length_filter(tiny_decoder):
    asked = []

    class Recording(Counting):
        def __call__(self, requests):
            asked.extend(en for _, en in requests)
            return super().__call__(requests)

    gen = Recording(LocalGenerator(tiny_decoder, max_new_tokens=4, batch_size=8))
    passages = [Pair("ក" * 400 + str(i), f"First sentence {i}. Second sentence {i}.", f"help:f.xhp#p{i}..p{i + 1}") for i in range(3)]
    ex = synthesize(PAIRS, gen, ["translate", "summarise"], per_task=5, seed=29, progress=False, passages=passages)
    tr = [e for e in ex if e.task == "translate"]
    assert len(tr) == 33 and [e.answer for e in tr[-3:]] == [p.en for p in passages]
    # 5 sentences and the 3 passages, though each passage is past max_chars
    assert gen.calls == 8 and {p.en for p in passages} <= set(asked)


def test_synth_refuses_bad_passages_before_loading_anything(tmp_path, capsys):
    from llink_app.__main__ import main

    for extra, message in [(["--passages", "-1"], "--passages must be >= 0, got -1"),
                           (["--passages", "2", "--lang", "km,hi"], "--passages with several languages (km,hi)")]:
        assert main(["synth", "--out", str(tmp_path / "s"), *extra]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "s").exists()
