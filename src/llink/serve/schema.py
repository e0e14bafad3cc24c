"""The OpenAI wire format as llink reads it: limits, request bodies, error bodies, and the
conversation -> (passage, instruction, history) mapping onto the one prompt builder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..errors import LlinkError

FOREIGN = re.compile(r"<foreign>(.*?)</foreign>", re.S)


@dataclass(frozen=True)
class Limits:
    max_passage_chars: int = 2000
    max_tokens: int = 256  # cap on a request's max_tokens (and its default)
    max_request_bytes: int = 65536
    timeout_s: float = 60.0  # per request, waiting in the queue included
    cache_size: int = 256  # passages whose slots are kept
    max_inputs: int = 64  # texts per embeddings request
    max_batch: int = 8  # greedy requests decoded together (1: one at a time)

    def __post_init__(self):
        for name in ("max_passage_chars", "max_tokens", "max_request_bytes", "max_inputs", "max_batch"):
            if getattr(self, name) < 1:
                raise LlinkError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout_s <= 0 or self.cache_size < 0:
            raise LlinkError("--timeout_s must be > 0 and --cache_size >= 0")


class ApiError(Exception):
    """An HTTP error with OpenAI's body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str | None = None, type: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_response(status: int, message: str, code: str | None = None, type: str = "invalid_request_error",
                   param: str | None = None, headers=None) -> JSONResponse:
    return JSONResponse(ApiError(status, message, code, type, param).body(), status_code=status, headers=headers)


# -- request bodies (extra fields are ignored, as OpenAI clients send many) -----------------
class _Strict(BaseModel):
    model_config = ConfigDict(strict=True)  # "5" is not a number; wrong types are a 400


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)  # greedy by default, as `llink` decodes everywhere
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None


class EmbeddingRequest(_Strict):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


class TokensRequest(_Strict):
    text: str


# -- the conversation -> (passage, instruction, history) ------------------------------------
def parse_chat(messages: list[Message], max_chars: int) -> tuple[str, str, list[tuple[str, str]]]:
    """The prompt builder's view of an OpenAI conversation. System messages are ignored: the
    artifact's trained system prompt is part of the model."""
    turns = [(m.role, m.text()) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ApiError(400, "messages must end with a user message", "invalid_messages", param="messages")
    if any(role != ("user", "assistant")[i % 2] for i, (role, _) in enumerate(turns)):
        raise ApiError(400, "user and assistant messages must alternate, starting with a user message", "invalid_messages", param="messages")
    users = [t for r, t in turns if r == "user"]
    if any(t.count("<foreign>") != t.count("</foreign>") for t in users):
        raise ApiError(400, "unbalanced <foreign> tag: wrap the passage in <foreign>...</foreign>", "invalid_passage", param="messages")
    found = [len(FOREIGN.findall(t)) for t in users]
    if sum(found) == 0:
        raise ApiError(400, "no <foreign> passage: put the foreign-language text in <foreign>...</foreign> in the first user message "
                            "(this server answers about a passage; it does not serve the plain decoder)", "no_passage", param="messages")
    if sum(found) > 1:
        raise ApiError(400, f"only one <foreign> passage per conversation is supported, found {sum(found)}", "too_many_passages", param="messages")
    if found[0] != 1:
        raise ApiError(400, "the <foreign> passage must be in the first user message", "invalid_passage", param="messages")
    first = users[0]
    passage = FOREIGN.search(first).group(1).strip()
    if not passage:
        raise ApiError(400, "the <foreign> passage is empty", "empty_passage", param="messages")
    if len(passage) > max_chars:
        raise ApiError(400, f"the passage has {len(passage)} characters; this server accepts at most {max_chars}", "passage_too_long", param="messages")
    texts = [t for _, t in turns]
    texts[0] = FOREIGN.sub("", first).strip()
    history = [(texts[i], texts[i + 1]) for i in range(0, len(texts) - 1, 2)]
    return passage, texts[-1], history
