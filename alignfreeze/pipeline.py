"""End-to-end pipelines of the top floor: the demo (and, later, experiment grids)."""

from __future__ import annotations

from pathlib import Path

PLAN = (
    "data      read the embedded treebanks (en, fr, de; authored) and count them",
    "features  word representations at every layer (0 = embeddings .. L)",
)


def _say(step: str, msg: str) -> None:
    print(f"[{step}] {msg}", flush=True)


def choose_model(model: str | None, quick: bool):
    """The demo's model: an explicit name, else e5-small if preparable, else tiny random."""
    from core import prepared
    from core.models import load
    from core.tiny import tiny_model

    if model:
        return model, *load(model, offline=True)
    if not quick and "e5-small" in prepared.PREPARED_MODELS and prepared.is_available("e5-small"):
        return "e5-small", *load("e5-small", offline=True)
    m, t = tiny_model("bert")
    return "tiny-random-bert", m, t


def run_demo(out: str | Path = "runs/demo", model: str | None = None, quick: bool = False) -> dict:
    from core import FIXTURES
    from core.conllu import read_conllu, treebank_lang, treebank_stats
    from core.features import WordFeatureExtractor

    out = Path(out)
    print("alignfreeze demo: plan")
    for i, line in enumerate(PLAN, 1):
        print(f"  {i}. {line}")
    files = sorted(FIXTURES.glob("*_demo-ud-test.conllu"))
    for f in files:
        st = treebank_stats(f)
        _say("data", f"{f.name}: {st.sentences} sentences, {st.words} words, {len(st.upos)} UPOS tags")
    name, model, tok = choose_model(model, quick)
    _say("model", f"{name}: {type(model).__name__}")
    ex = WordFeatureExtractor(model, tok, layers="all", pooling="first", progress=False)
    result = {"model": name, "features": {}}
    for f in files:
        lang = treebank_lang(f)
        wf = ex.extract(list(read_conllu(f)))
        result["features"][lang] = wf
        d = wf.features[wf.layers[-1]].shape[1]
        _say("features", f"{lang}: {wf.n_words} words x {len(wf.layers)} layers x {d} dims")
    _say("done", f"outputs under {out}")
    return result
