"""Word and sentence retrieval on synthetic embeddings; align-eval CLI and pairs errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignfreeze.cli import main
from analysis.alignment import (
    read_pairs_jsonl,
    retrieval_accuracy,
    sentence_retrieval,
    word_retrieval,
)


def test_identical_embeddings_retrieve_perfectly():
    X = np.random.default_rng(0).normal(size=(50, 16))
    rows = word_retrieval(X, X.copy())
    assert len(rows) == 4
    assert all(r["value"] == 1.0 for r in rows)
    assert all(r["value"] == 1.0 for r in word_retrieval(X, X.copy(), csls_k=5, centre=True))
    assert all(r["value"] == 1.0 for r in sentence_retrieval(X, X.copy()))


def test_weak_versus_strong():
    rng = np.random.default_rng(1)
    # source words are tight duplicates of one another; targets are distinct and aligned
    Xs = np.tile(rng.normal(size=(1, 8)), (10, 1)) + 0.001 * rng.normal(size=(10, 8))
    Xt = Xs + 0.5 * rng.normal(size=(10, 8))
    rows = {(r["candidates"], r["direction"]): r["value"] for r in word_retrieval(Xs, Xt)}
    # strong: a near-duplicate same-language neighbour beats the translation
    assert rows[("strong", "src->tgt")] == 0.0
    assert rows[("weak", "src->tgt")] > rows[("strong", "src->tgt")]


def test_csls_fixes_a_hub():
    # queries q_i = e_i + hub direction; a hub candidate close to every query
    d = 6
    Q = np.eye(d) + 0.6
    C = np.eye(d) * 1.0
    C = np.vstack([C, np.ones((1, d))])  # candidate 6 = the hub
    target = np.arange(d)
    assert retrieval_accuracy(Q, C, target) == 0.0  # cosine: every query picks the hub
    assert retrieval_accuracy(Q, C, target, csls_k=3) == 1.0


def test_strong_excludes_the_query_itself():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 4))
    both = np.vstack([X + 0.01 * rng.normal(size=(5, 4)), X])  # the query itself would win
    assert retrieval_accuracy(X, both, np.arange(5)) == 0.0
    assert retrieval_accuracy(X, both, np.arange(5), exclude=np.arange(5) + 5) == 1.0


def test_read_pairs_errors(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "src": ["x"], "tgt": ["y"], "links": [[0, 0]]}\n{"id": "b", "src": ["x"]}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: missing key"):
        read_pairs_jsonl(p)
    p.write_text('{"id": "a", "src": ["x"], "tgt": ["y"], "links": [[0, 3]]}\n')
    with pytest.raises(ValueError, match=r":1: link \[0, 3\] out of range"):
        read_pairs_jsonl(p)
    p.write_text("not json\n")
    with pytest.raises(ValueError, match=":1: invalid JSON"):
        read_pairs_jsonl(p)
    with pytest.raises(FileNotFoundError):
        read_pairs_jsonl(tmp_path / "missing.jsonl")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from core.tiny import tiny_model

    d = tmp_path_factory.mktemp("align") / "m"
    m, t = tiny_model("xlm-roberta")
    m.save_pretrained(d)
    t.save_pretrained(d)
    return d


def test_align_eval_cli(saved_model, fixtures_dir, tmp_path, capsys):
    from core.parallel import read_parallel
    from core.wordpairs import pair_record

    en, fr = fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu"
    pairs = read_parallel(en, fr)
    pj = tmp_path / "pairs.jsonl"
    with pj.open("w") as f:
        for p in pairs:
            links = [[0, 0], [1, 1]] if len(p.src) > 1 and len(p.tgt) > 1 else [[0, 0]]
            f.write(json.dumps(pair_record(p.id, p.src, p.tgt, links)) + "\n")
    out = tmp_path / "a.csv"
    assert main(["align-eval", "--model", str(saved_model), "--src", str(en), "--tgt", str(fr),
                 "--pairs", str(pj), "--csls-k", "3", "--out", str(out), "--no-progress"]) == 0
    df = pd.read_csv(out)
    assert set(df["task"]) == {"sentence", "word"}
    assert set(df["layer"]) == {0, 1, 2}
    assert set(df[df.task == "word"]["candidates"]) == {"weak", "strong"}
    assert set(df[df.task == "word"]["score"]) == {"cosine", "csls"}
    assert df["value"].between(0, 1).all()
    assert (df[df.task == "sentence"]["n"] == len(pairs)).all()
    assert df.iloc[0]["src"] == "en" and df.iloc[0]["tgt"] == "fr"
    # errors
    assert main(["align-eval", "--model", str(saved_model), "--src", str(en), "--out", str(out)]) == 2
    assert "--tgt" in capsys.readouterr().err
    assert main(["align-eval", "--model", str(saved_model), "--out", str(out)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_cka_cli(saved_model, fixtures_dir, tmp_path):
    out = tmp_path / "c.csv"
    assert main(["cka", "--model", str(saved_model), "--treebank", str(fixtures_dir / "en_demo-ud-test.conllu"),
                 "--out", str(out), "--no-progress"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 9
    diag = df[df.layer_a == df.layer_b]["cka"]
    np.testing.assert_allclose(diag, 1.0, atol=1e-6)
    assert main(["cka", "--model", str(saved_model), "--model", str(saved_model), "--treebank",
                 str(fixtures_dir / "en_demo-ud-test.conllu"), "--out", str(out), "--no-progress",
                 "--overwrite"]) == 0
    df2 = pd.read_csv(out)
    np.testing.assert_allclose(df2.sort_values(["layer_a", "layer_b"])["cka"].to_numpy(),
                               df.sort_values(["layer_a", "layer_b"])["cka"].to_numpy(), atol=1e-6)
