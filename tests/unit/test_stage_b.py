"""Stage B, the direct baseline, generation and chat on tiny random models."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llink_app.__main__ import main
from llink.errors import LlinkError

from .test_align import args as align_args
from .test_align import kill_after_first_checkpoint, write_pairs


@pytest.fixture(scope="module")
def stage_a(tiny_dirs, tmp_path_factory):
    """A Stage A artifact on a tiny decoder whose weights are large enough to be trainable:
    with the default 0.02 init, tied embeddings cap the logits and no answer loss can fall."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..conftest import make_tokenizer

    root = tmp_path_factory.mktemp("stage_b")
    torch.manual_seed(0)
    tok = make_tokenizer()
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
                                         initializer_range=0.3))
    llama.save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    dirs = {"encoder": tiny_dirs["encoder"], "decoder": str(root / "llama")}
    data = write_pairs(root / "pairs.tsv", n=96)
    assert main(align_args(dirs, data, root / "a", epochs=4)) == 0
    return {"artifact": root / "a" / "llink", "data": data, "root": root, "dirs": dirs}


def slots_args(stage_a, out, **over):
    base = dict(from_stage_a=stage_a["artifact"], train_data=stage_a["data"], dev_data=stage_a["data"], tasks="translate",
                steps=24, batch_size=8, warmup_steps=2, eval_every=12, eval_examples=16, max_dev=32, checkpoint_every=12,
                lr_lora=1e-2, lr_expander=1e-2, precision="fp32", progress="false", out=out)
    base.update(over)
    return ["slots"] + [f"--{k}={v}" for k, v in base.items()]


def rows(out):
    return [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_stage_b_learns_writes_usage_and_a_loadable_artifact(stage_a, tmp_path):
    from llink.model import LLINK

    out = tmp_path / "b"
    assert main(slots_args(stage_a, out)) == 0
    log = rows(out)
    assert [r["step"] for r in log] == list(range(1, 25))
    assert sum(r["sft"] for r in log[-4:]) < 0.8 * sum(r["sft"] for r in log[:4])
    assert any("usage" in r for r in log) and all("usage" in r for r in log if r["step"] % 3 == 0)
    usage = json.loads((out / "usage.json").read_text())
    assert set(usage) >= {"loss_true", "loss_zeroed", "loss_shuffled"}
    m = LLINK.from_pretrained(out / "llink")
    assert m.config.stage == "B" and m.config.lora["r"] == 16
    assert m.slots(["បើក ឯកសារ ម៉ឺនុយ"]).shape == (1, 8, 32)
    state = load_file(str(out / "llink" / "model.safetensors"))
    assert any(k.startswith("lora.") for k in state) and any(k.startswith("expander.") for k in state)
    # the LoRA weights were trained (lora_B starts at zero) and come back into a fresh decoder
    lora_b = [v for k, v in state.items() if k.startswith("lora.") and "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)
    out_text = m.generate(["បើក ឯកសារ ម៉ឺនុយ"], max_new_tokens=4)
    assert isinstance(out_text[0], str)


def test_stage_b_is_reproducible_and_matches_a_recorded_loss(stage_a, tmp_path):
    assert main(slots_args(stage_a, tmp_path / "x", steps=6, eval_every=6)) == 0
    assert main(slots_args(stage_a, tmp_path / "y", steps=6, eval_every=6)) == 0
    assert rows(tmp_path / "x") == rows(tmp_path / "y")


def test_killed_stage_b_resumes_to_the_same_weights(stage_a, tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    over = dict(steps=40, checkpoint_every=5, eval_every=40)
    assert main(slots_args(stage_a, ref, **over)) == 0
    kill_after_first_checkpoint(slots_args(stage_a, cut, **over), cut)
    assert rows(cut)[-1]["step"] < 40, "the run finished before it could be killed"
    killed_at = rows(cut)[-1]["step"]
    assert main(slots_args(stage_a, cut, resume="true", **over)) == 0
    # the summary says where the second run started, so its wall time is not read as a full run's
    assert json.loads((ref / "summary.json").read_text())["resumed_from_step"] == 0
    assert 0 < json.loads((cut / "summary.json").read_text())["resumed_from_step"] <= killed_at
    a, b = load_file(str(ref / "llink" / "model.safetensors")), load_file(str(cut / "llink" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["step"] for r in rows(cut)] == list(range(1, 41))
    assert rows(cut)[-1] == rows(ref)[-1]


def test_stage_b_keys_on_the_stage_a_run_not_its_weights(stage_a, tmp_path, capsys):
    """Stage B's upstream input is the Stage A artifact's run key: the same Stage A run re-saved
    with weights that differ by ~1e-6 (what another CPU's rounding gives) is the same input, and a
    Stage A made with other settings (another key) is refused by name."""
    import shutil

    from llink.model import CONFIG, LLINK

    art = tmp_path / "a"
    shutil.copytree(stage_a["artifact"], art)
    out = tmp_path / "b"
    assert main(slots_args({**stage_a, "artifact": art}, out, steps=3, eval_every=3)) == 0
    before = (out / "llink" / "model.safetensors").read_bytes()
    with torch.no_grad():
        m = LLINK.from_pretrained(art)
        for p in m.projector.parameters():
            p.add_(1e-6)
        m.save_pretrained(art)
    assert main(slots_args({**stage_a, "artifact": art}, out, steps=3, eval_every=3, resume="true")) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 3
    assert (out / "llink" / "model.safetensors").read_bytes() == before  # reused, not re-saved
    config = json.loads((art / CONFIG).read_text())
    (art / CONFIG).write_text(json.dumps({**config, "run_key": "another-stage-a-run"}))
    capsys.readouterr()
    assert main(slots_args({**stage_a, "artifact": art}, out, steps=3, eval_every=3, resume="true")) == 2
    assert "upstream" in capsys.readouterr().err


def test_a_finished_run_reads_its_dev_scores_back(stage_a, tmp_path, monkeypatch):
    """A rerun that trains nothing does not re-score the dev set (~1.5 min per stage in the demo);
    a changed dev set does (dev is not part of the training run's key: the run resumes)."""
    from llink_app.recipes.slots import SlotsRecipe

    out = tmp_path / "b"
    assert main(slots_args(stage_a, out, steps=3, eval_every=3)) == 0
    first = json.loads((out / "usage.json").read_text())
    calls, real = [], SlotsRecipe.usage
    monkeypatch.setattr(SlotsRecipe, "usage", lambda self, limit=None: calls.append(limit) or real(self, limit))
    assert main(slots_args(stage_a, out, steps=3, eval_every=3, resume="true")) == 0
    assert calls == [] and json.loads((out / "usage.json").read_text()) == first
    assert json.loads((out / "summary.json").read_text())["usage"] == first
    assert main(slots_args(stage_a, out, steps=3, eval_every=3, max_dev=16, resume="true")) == 0
    again = json.loads((out / "usage.json").read_text())
    assert calls == [None] and again["examples"] == 16 and again["key"] != first["key"]


def test_from_must_be_a_stage_a_artifact(stage_a, tmp_path, capsys):
    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    assert main(slots_args(stage_a, tmp_path / "c", steps=3, eval_every=3, from_stage_a=tmp_path / "b" / "llink")) == 2
    assert "Stage A" in capsys.readouterr().err
    assert main(["slots", "--out", str(tmp_path / "d"), "--progress=false"]) == 2
    assert "--from is required" in capsys.readouterr().err


def test_direct_finetune_trains_and_is_not_an_llink_model(stage_a, tmp_path):
    from llink.decoders import load_decoder
    from llink.model import LLINK, DirectModel

    out = tmp_path / "direct"
    argv = ["finetune-direct", f"--decoder={stage_a['dirs']['decoder']}", f"--train_data={stage_a['data']}", f"--dev_data={stage_a['data']}",
            "--tasks=translate", "--steps=20", "--batch_size=8", "--eval_every=10", "--eval_examples=8", "--max_dev=16",
            "--precision=fp32", "--lr_lora=5e-3", "--progress=false", f"--out={out}"]
    assert main(argv) == 0
    log = rows(out)
    assert sum(r["sft"] for r in log[-4:]) < 0.9 * sum(r["sft"] for r in log[:4])
    d = DirectModel.from_pretrained(out / "direct", decoder=load_decoder(stage_a["dirs"]["decoder"]))
    assert d.adapter_name in d.decoder.adapters
    with pytest.raises(LlinkError, match="direct-finetune"):
        LLINK.from_pretrained(out / "direct")


def test_generate_cli_json_file_and_errors(stage_a, tmp_path, capsys):
    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    art = str(tmp_path / "b" / "llink")
    capsys.readouterr()
    assert main(["generate", "--model", art, "--text", "បើក ឯកសារ", "--max_new_tokens", "3", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"output"}
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "បើក ឯកសារ"}\n{"text": "ចុច ម៉ឺនុយ", "instruction": "Summarise in English."}\n', encoding="utf-8")
    assert main(["generate", "--model", art, "--file", str(f), "--out", str(tmp_path / "o.jsonl"), "--max_new_tokens", "3"]) == 0
    got = [json.loads(l) for l in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [g["instruction"] for g in got] == ["Translate to English.", "Summarise in English."]
    assert main(["generate", "--model", art, "--file", str(f), "--batch_size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err
    f.write_text('{"text": "បើក"}\n{"txt": 1}\n', encoding="utf-8")
    assert main(["generate", "--model", art, "--file", str(f)]) == 2
    assert f"{f}:2" in capsys.readouterr().err
    assert main(["generate", "--model", str(stage_a["artifact"]), "--text", "បើក"]) == 2
    assert "Stage A" in capsys.readouterr().err
    assert main(["generate", "--model", art, "--text", "  "]) == 2
    assert "empty" in capsys.readouterr().err


def test_chat_encodes_the_passage_once_for_every_question(stage_a, tmp_path, monkeypatch, capsys):
    from llink.model import LLINK

    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    calls = []
    real = LLINK.read

    def counting(self, texts, progress=False, cache=True):
        calls.append(list(texts))
        return real(self, texts, progress, cache)

    monkeypatch.setattr(LLINK, "read", counting)
    monkeypatch.setattr(sys, "stdin", io.StringIO("បើក ឯកសារ\nWhat is it?\nAnd then?\n/quit\n"))
    assert main(["chat", "--model", str(tmp_path / "b" / "llink"), "--max_new_tokens", "3"]) == 0
    assert calls == [["បើក ឯកសារ"]]
    assert capsys.readouterr().out.count("llink> ") == 2


def test_answer_loss_matches_the_full_logits_loss(tiny_decoder):
    from llink.losses import answer_loss
    from llink.prompts import PromptBuilder, pad_batch

    b = PromptBuilder(tiny_decoder.tokenizer)
    enc = [b.chat("Hi.", passage="a b", answer="Yes."), b.chat("Translate to English.", passage="c", answer="No, no.")]
    # right padding (training: the mask is dropped for the causal kernel) and left padding (kept)
    for left in (False, True):
        batch = pad_batch(enc, tiny_decoder.tokenizer.pad_token_id, left=left)
        emb = tiny_decoder.embeddings(batch["input_ids"])
        per = answer_loss(tiny_decoder, emb, batch["attention_mask"], batch["labels"])
        for i, e in enumerate(enc):
            ref = tiny_decoder.model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss
            assert torch.allclose(per[i], ref, atol=1e-5), (left, i)


def test_adapters_are_off_unless_asked_for_and_teachers_ignore_them(tiny_dirs):
    from llink.decoders import load_decoder
    from llink.prompts import PromptBuilder
    from llink.teacher import extract

    dec = load_decoder(tiny_dirs["decoder"])
    b = PromptBuilder(dec.tokenizer)
    ids = torch.tensor([[1, 5, 6, 7]])
    before = dec.model(ids).logits
    t_before = extract(dec, b, ["open the file"], [1], ["mean"], progress=False)[(1, "mean")]
    dec.add_lora("x", r=2, alpha=2, dropout=0.0, targets=["q_proj", "v_proj"])
    with torch.no_grad():
        for p in dec.lora_parameters("x"):
            p.add_(0.5)
    assert torch.equal(dec.model(ids).logits, before)
    with dec.adapter("x"):
        assert not torch.allclose(dec.model(ids).logits, before)
        t_inside = extract(dec, b, ["open the file"], [1], ["mean"], progress=False)[(1, "mean")]
        assert dec.active == "x"
    assert (t_inside == t_before).all()
    state = dec.lora_state("x")
    dec.add_lora("y", r=2, alpha=2, dropout=0.0, targets=["q_proj", "v_proj"])
    dec.load_lora("y", state)
    with dec.adapter("x"):
        lx = dec.model(ids).logits
    with dec.adapter("y"):
        assert torch.equal(dec.model(ids).logits, lx)
    with pytest.raises(LlinkError, match="not modules"):
        dec.add_lora("z", targets=["no_such_proj"])
    with pytest.raises(LlinkError, match="no adapter"):
        with dec.adapter("nope"):
            pass


def test_a_folded_adapter_gives_the_same_logits_and_refuses_everything_else(tiny_dirs):
    from llink.decoders import load_decoder

    dec = load_decoder(tiny_dirs["decoder"])
    ids = torch.tensor([[1, 5, 6, 7]])
    dec.add_lora("x", r=2, alpha=4, dropout=0.0)
    with torch.no_grad():
        for p in dec.lora_parameters("x"):
            p.add_(0.3)
    with dec.adapter("x"):
        want = dec.model(ids).logits
    assert not torch.allclose(dec.model(ids).logits, want)
    dec.fold("x")
    assert not dec._lora_layers() and not any("lora_" in n for n, _ in dec.model.named_parameters())
    with dec.adapter("x"):
        assert torch.allclose(dec.model(ids).logits, want, atol=1e-5)
    for name in (None, "y"):
        with pytest.raises(LlinkError, match="folded"):
            with dec.adapter(name):
                pass
    with pytest.raises(LlinkError, match="folded"):
        dec.add_lora("y")


def test_shuffled_order_never_keeps_a_sentence_its_own_slots():
    from llink.eval.controls import shuffled_order

    for n in (2, 3, 10, 257):
        p = shuffled_order(n, seed=n)
        assert sorted(p.tolist()) == list(range(n)) and (p != list(range(n))).all()
    with pytest.raises(LlinkError):
        shuffled_order(1, 0)


def test_stage_b_on_two_cpu_processes(stage_a, tmp_path):
    from tests.unit.test_distributed import _free_port

    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip("torchrun not installed next to this python")
    out = tmp_path / "ddp"
    cmd = [str(launcher), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "llink_app", *slots_args(stage_a, out, steps=12, batch_size=4, eval_every=12, checkpoint_every=6)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    log = rows(out)
    assert [x["step"] for x in log] == list(range(1, 13))
    assert (out / "llink" / "model.safetensors").exists() and (out / "usage.json").exists()


def test_eval_generate_cli_writes_metrics_and_outputs(stage_a, tmp_path, capsys):
    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    art, out = str(tmp_path / "b" / "llink"), tmp_path / "gen"
    argv = ["eval", "generate", "--model", art, "--data", str(stage_a["data"]), "--n", "6", "--tasks", "qa", "--n_other", "2",
            "--systems", "base,llink,llink_shuffled", "--max_new_tokens", "3", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "generate.json").read_text())["generate"]
    assert set(res) == {"base", "llink", "llink_shuffled"}
    assert set(res["llink"]) >= {"chrf", "bleu", "fidelity", "distinct_outputs"}
    rows = [json.loads(l) for l in (out / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * (6 + 2) and {r["task"] for r in rows} == {"translate", "qa"}
    assert main(["eval", "generate", "--model", art, "--systems", "direct_finetune,llink"]) == 2
    assert "--direct" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_from_other_settings_or_data(stage_a, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(slots_args(stage_a, out, steps=3, eval_every=3)) == 0
    capsys.readouterr()
    # reporting settings may change on resume; training settings may not
    assert main(slots_args(stage_a, out, steps=3, eval_every=1, checkpoint_every=1, resume="true")) == 0
    assert main(slots_args(stage_a, out, steps=3, eval_every=3, lr_lora=5e-3, resume="true")) == 2
    err = capsys.readouterr().err
    assert "lr_lora: 0.01 -> 0.005" in err and "checkpoint.safetensors" in err
    other = write_pairs(tmp_path / "other.tsv", n=64)
    assert main(slots_args(stage_a, out, steps=3, eval_every=3, train_data=other, resume="true")) == 2
    assert "examples changed" in capsys.readouterr().err


def test_demo_restarts_a_stage_whose_checkpoint_is_stale(tmp_path):
    from llink_app.demo.pipeline import _resume_or_restart
    from llink_app.recipes.common import StaleCheckpoint

    ckpt = tmp_path / "checkpoint.safetensors"
    ckpt.write_bytes(b"old")
    calls = []

    def run():
        calls.append(ckpt.exists())
        if ckpt.exists():
            raise StaleCheckpoint("stale", ckpt)
        return "trained"

    assert _resume_or_restart(run) == "trained"
    assert calls == [True, False]
    assert (tmp_path / "checkpoint.stale.safetensors").read_bytes() == b"old"


def test_inference_load_folds_the_lora_and_takes_device_and_dtype(stage_a, tmp_path, capsys):
    import torch

    from llink_app.generate import _load

    assert main(slots_args(stage_a, tmp_path / "b", steps=3, eval_every=3)) == 0
    art = str(tmp_path / "b" / "llink")
    m = _load(art)
    assert m.decoder.folded == m.adapter_name is not None  # the LoRA is in the weights, not beside them
    assert not m.decoder._lora_layers() and m.decoder.model.dtype == torch.float32
    evaluating = _load(art, fold=False)  # evaluations run the base decoder beside this model
    assert evaluating.decoder.folded is None and evaluating.adapter_name in evaluating.decoder.adapters
    # folded answers are the unmerged adapter's
    unmerged = evaluating.generate(["បើក ឯកសារ", "ចុច ម៉ឺនុយ"], max_new_tokens=6)
    assert m.generate(["បើក ឯកសារ", "ចុច ម៉ឺនុយ"], max_new_tokens=6) == unmerged
    half = _load(art, dtype="bf16")
    assert half.decoder.model.dtype == torch.bfloat16 and half.projector.net[0].weight.dtype == torch.float32
    assert len(half.generate(["បើក ឯកសារ"], max_new_tokens=4)) == 1
    capsys.readouterr()
    assert main(["generate", "--model", art, "--text", "បើក ឯកសារ", "--max_new_tokens", "3", "--dtype", "bf16", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"output"}
    for flags, msg in ((["--dtype", "int3"], "--dtype must be"), (["--dtype", "fp16"], "needs a GPU"),
                       (["--device", "cuda:7"], "no such CUDA device"), (["--device", "toaster"], "is not a device")):
        assert main(["generate", "--model", art, "--text", "បើក", *flags]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.parametrize("command", ["slots", "finetune-direct"])
def test_gradient_checkpointing_recomputes_layers_and_trains_the_same_weights(stage_a, tmp_path, monkeypatch, command):
    from transformers.models.llama.modeling_llama import LlamaMLP

    # Count the MLPs, not the decoder layers: transformers checkpoints inside the layers' own forward.
    calls = []
    forward = LlamaMLP.forward
    monkeypatch.setattr(LlamaMLP, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))

    def run(out, **over):
        calls.clear()
        argv = slots_args(stage_a, out, steps=4, eval_every=4, checkpoint_every=4, **over)
        if command == "finetune-direct":
            argv = ["finetune-direct", f"--decoder={stage_a['dirs']['decoder']}"] + [a for a in argv[1:] if not a.startswith(("--from_stage_a", "--lr_expander"))]
        assert main(argv) == 0
        return len(calls)

    plain = run(tmp_path / "plain")
    recomputed = run(tmp_path / "ckpt", gradient_checkpointing="true")
    assert recomputed - plain == 4 * 2  # each training step runs both layers' forward once more, in the backward
    art = "llink" if command == "slots" else "direct"
    a, b = (load_file(str(tmp_path / d / art / "model.safetensors")) for d in ("plain", "ckpt"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def help_file(tmp_path) -> Path:
    """4 help files of 4 paragraphs each: one passage of 4 sentences (>= 150 Khmer characters) per file."""
    from .test_align import WORDS_EN, WORDS_KM

    lines = ["km\ten\tsource"]
    for f in range(4):
        for i in range(1, 5):
            w = [(f * 4 + i + k) % 12 for k in range(3)]
            lines.append(f"{' '.join(WORDS_KM[j] for j in w)} {f}{i} " + "ក" * 40 + f"\t{' '.join(WORDS_EN[j] for j in w).capitalize()} {f}{i}.\t"
                         f"help:text/shared/f{f}.xhp#par_id{i}")
    data = tmp_path / "help.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def test_train_passages_join_the_examples_and_a_file_without_provenance_is_refused(stage_a, tmp_path, capsys):
    data = help_file(tmp_path)
    assert main(slots_args(stage_a, tmp_path / "b", train_data=data, steps=2, eval_every=2, checkpoint_every=2, passages=3,
                           max_answer_tokens=200)) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["passages"] == 3 and summary["tasks"] == {"translate": 16 + 3}
    capsys.readouterr()
    assert main(slots_args(stage_a, tmp_path / "c", steps=2, passages=3)) == 2
    assert "--passages 3:" in capsys.readouterr().err and not (tmp_path / "c" / "llink").exists()
    assert main(slots_args(stage_a, tmp_path / "d", passages=-1)) == 2
    assert "--passages must be >= 0, got -1" in capsys.readouterr().err
    assert main(slots_args(stage_a, tmp_path / "e", passages=3, data=tmp_path / "b" / "none.jsonl")) == 2
    assert "drop --data or --passages" in capsys.readouterr().err


def test_passages_get_their_own_answer_cap_and_the_sentences_keep_theirs(stage_a, tmp_path, capsys):
    data = help_file(tmp_path)
    common = dict(train_data=data, steps=1, eval_every=1, checkpoint_every=1, passages=3)
    # a sentence's English is a few tokens, a passage's four times that: a cap between them drops only the passages
    assert main(slots_args(stage_a, tmp_path / "one", max_answer_tokens=20, **common)) == 0
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert one["passages"] == 0 and one["tasks"] == {"translate": 16}
    assert main(slots_args(stage_a, tmp_path / "own", max_answer_tokens=20, passage_answer_tokens=200, **common)) == 0
    own = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert own["passages"] == 3 and own["tasks"] == {"translate": 16 + 3}
    assert own["run_key"] != one["run_key"]
    capsys.readouterr()
    assert main(slots_args(stage_a, tmp_path / "x", passage_answer_tokens=200)) == 2
    assert "--passage_answer_tokens 200: needs --passages" in capsys.readouterr().err
    assert main(slots_args(stage_a, tmp_path / "y", passage_answer_tokens=0, passages=3)) == 2
    assert "must be >= 1" in capsys.readouterr().err
