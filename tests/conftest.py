"""Shared fixtures: tiny randomly initialised models built in the test (no downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "Open the file menu and choose Save As.",
    "The quick brown fox jumps over the lazy dog.",
    "Translate to English. Summarise in English. You are a helpful assistant.",
    "ចុច​លើ​ប៊ូតុង​ដើម្បី​រក្សា​ទុក​ឯកសារ។",
    "បើក​ម៉ឺនុយ​ឯកសារ ហើយ​ជ្រើស​រក្សា​ទុក​ជា",
    "system user assistant 0123456789",
]


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """A 2-layer Llama decoder and a 2-layer BERT encoder saved as HF directories."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny")
    tok = make_tokenizer()
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2))
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                num_attention_heads=2, max_position_embeddings=256, pad_token_id=2))
    dec, enc = root / "llama", root / "bert"
    llama.save_pretrained(dec)
    bert.save_pretrained(enc)
    tok.save_pretrained(dec)
    tok.save_pretrained(enc)
    return {"decoder": str(dec), "encoder": str(enc)}


@pytest.fixture(scope="session")
def tiny_decoder(tiny_dirs):
    from llink.decoders import load_decoder

    return load_decoder(tiny_dirs["decoder"])


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or pollute the user's vector/teacher cache. The converted bundled
    decoder (slow to make, keyed by the GGUF's bytes) stays in the user's model cache."""
    from llink.cache import models_root

    os.environ["LLINK_MODELS_DIR"] = str(models_root())
    os.environ["LLINK_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
