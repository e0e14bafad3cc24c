"""A minimal client for OpenAI-compatible chat-completion endpoints (stdlib only).

Used wherever a remote model answers a prompt: the Stage B data generator and the judge.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from .errors import LlinkError


class ChatEndpoint:
    """POST {url}/chat/completions; the key comes from the first set variable of `key_envs`."""

    def __init__(self, url: str, model: str, key_envs: tuple[str, ...] = ("OPENAI_API_KEY",), timeout: float = 120.0):
        base = url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.model, self.timeout = model, timeout
        self.key = next((os.environ[k] for k in key_envs if os.environ.get(k)), None)

    def complete(self, content: str, max_tokens: int) -> str:
        """The reply to one user message, greedy (temperature 0), stripped."""
        body = {"model": self.model, "temperature": 0, "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]}
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        if self.key:
            req.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                reply = json.loads(r.read())
            return reply["choices"][0]["message"]["content"].strip()
        except (urllib.error.URLError, TimeoutError, KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
            raise LlinkError(f"endpoint {self.url} failed: {e}") from None
