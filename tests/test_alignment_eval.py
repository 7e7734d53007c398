"""Word and sentence retrieval on synthetic embeddings; align-eval CLI and pairs errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignfreeze.cli import main
from analysis.alignment import (
    LinkedPair,
    align_eval,
    read_pairs_jsonl,
    retrieval_accuracy,
    sentence_means,
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


class WordVectors:
    """A stand-in extractor whose vector of a word depends on the word alone (a fixed random
    vector per word form), so a word and its copy anywhere have the same vector."""

    layers = (0, 1)

    def __init__(self, dim: int = 16):
        self.dim = dim

    def _vec(self, word: str) -> np.ndarray:
        import hashlib

        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        return np.random.default_rng(seed).normal(size=self.dim)

    def extract(self, sentences):
        from core.features import WordFeatures

        sentences = [list(getattr(s, "words", s)) for s in sentences]  # a Surface or a list of words
        words = [w for s in sentences for w in s]
        base = np.stack([self._vec(w) for w in words])
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        return WordFeatures(self.layers, {0: base, 1: 2.0 * base + 0.1}, offsets, np.ones(len(words), bool), "first")


def _permuted_pairs(n_sent: int = 6, n_words: int = 5):
    """Sentence pairs whose target is the source's words in reversed order, linked word to
    word: ``(pairs, linked, mislinked)`` (mislinked: each source word linked to the target word
    at the SAME position, i.e. to the wrong word)."""
    from types import SimpleNamespace

    pairs, linked, wrong = [], [], []
    for k in range(n_sent):
        src = [f"w{k}_{i}" for i in range(n_words)]
        tgt = src[::-1]
        pairs.append(SimpleNamespace(src=src, tgt=tgt))
        linked.append(LinkedPair(str(k), src, tgt, [(i, n_words - 1 - i) for i in range(n_words)]))
        wrong.append(LinkedPair(str(k), src, tgt, [(i, i) for i in range(n_words) if i != n_words - 1 - i]))
    return pairs, linked, wrong


def test_align_eval_follows_each_link_to_its_word():
    """Linked words have identical vectors here, so every retrieval is perfect exactly when
    each link reads the source word and the target word it names (not the word at the same
    position, not a neighbour); links to the wrong words retrieve (almost) nothing."""
    pairs, linked, wrong = _permuted_pairs()
    rows = align_eval(WordVectors(), linked_pairs=linked, csls_k=3)
    words = [r for r in rows if r["task"] == "word"]
    assert len(words) == 2 * 2 * 2 * 2 * 2  # layers x scores x centred x candidates x directions
    assert all(r["value"] == 1.0 for r in words), [r for r in words if r["value"] < 1]
    assert all(r["n"] == 30 for r in words)
    bad = [r for r in align_eval(WordVectors(), linked_pairs=wrong, csls_k=3) if r["candidates"] == "weak"]
    assert max(r["value"] for r in bad) < 0.2


def test_align_eval_sentence_vectors_are_word_means():
    """A target sentence that is a permutation of its source has the same mean vector, so
    retrieval is perfect; constant (or otherwise uninformative) sentence vectors give 1/6."""
    pairs, _, _ = _permuted_pairs()
    rows = align_eval(WordVectors(), sentence_pairs=pairs)
    assert len(rows) == 2 * 2 and all(r["value"] == 1.0 and r["n"] == 6 for r in rows)
    # shuffled targets: every source retrieves the target that was its translation before
    shuffled = [type(p)(src=p.src, tgt=pairs[(k + 1) % 6].tgt) for k, p in enumerate(pairs)]
    assert all(r["value"] == 0.0 for r in align_eval(WordVectors(), sentence_pairs=shuffled))
    feats = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 4.0]])
    means = sentence_means(feats, np.array([0, 2, 2, 4]), np.array([True, True, True, False]))
    np.testing.assert_allclose(means, [[2.0, 1.0], [0.0, 0.0], [5.0, 5.0]])  # an empty sentence: zeros


# sentences written for this test in several scripts (pre-split into words)
SCRIPTS = ["The old river flows slowly through the green valley .",
           "Старый учитель читает длинное письмо .",
           "Ο μικρός σκύλος τρέχει στον κήπο .",
           "الطالب يقرأ كتابا جديدا في المكتبة .",
           "我 的 姐姐 在 医院 工作 。",
           "แมว ตัว นี้ นอน บน หลังคา",
           "우리 는 아침 에 커피 를 마신다 .",
           "La petite fille achète du pain frais ."]


def _conllu(path, sentences):
    lines = []
    for k, text in enumerate(sentences, 1):
        lines += [f"# sent_id = s{k}", f"# text = {text}"]
        for i, w in enumerate(text.split(), 1):
            lines.append(f"{i}\t{w}\t_\tX\t_\t_\t{0 if i == 1 else 1}\t{'root' if i == 1 else 'dep'}\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def e5_tiny(tmp_path_factory):
    """A tiny random XLM-R-architecture model with e5-small's REAL SentencePiece (Unigram)
    tokenizer, saved as a model folder."""
    from transformers import AutoModel

    from core.models import load_tokenizer
    from core.tiny import tiny_config

    tok = load_tokenizer("e5-small")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config("xlm-roberta", len(tok), pad_token_id=tok.pad_token_id)).eval()
    d = tmp_path_factory.mktemp("e5tiny") / "m"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_align_eval_cli_with_a_sentencepiece_tokenizer(e5_tiny, tmp_path, capsys):
    """Each sentence paired with itself, in eight scripts, through e5-small's tokenizer: every
    sentence and every linked word must find its copy (identical input -> identical vector;
    at layer 0 two words at the same position may share a bare word-start piece, so words are
    checked on the contextual layers); links shifted to the next word must not."""
    from core.pieces import surface
    from core.wordpairs import pair_record

    src = _conllu(tmp_path / "mul_a-ud-test.conllu", SCRIPTS)
    tgt = _conllu(tmp_path / "xx_copy-ud-test.conllu", SCRIPTS)
    good, shifted = tmp_path / "good.jsonl", tmp_path / "shifted.jsonl"
    with good.open("w") as g, shifted.open("w") as h:
        for k, text in enumerate(SCRIPTS, 1):
            w = surface(text.split())
            g.write(json.dumps(pair_record(f"s{k}", w, w, [[i, i] for i in range(len(w))])) + "\n")
            h.write(json.dumps(pair_record(f"s{k}", w, w, [[i, (i + 1) % len(w)] for i in range(len(w))])) + "\n")
    out = tmp_path / "a.csv"
    assert main(["align-eval", "--model", str(e5_tiny), "--src", str(src), "--tgt", str(tgt), "--pairs", str(good),
                 "--csls-k", "3", "--out", str(out), "--no-progress"]) == 0
    df = pd.read_csv(out)
    assert set(df["task"]) == {"sentence", "word"} and set(df["layer"]) == {0, 1, 2}
    assert df.iloc[0]["src"] == "mul" and df.iloc[0]["tgt"] == "xx"
    sent = df[df.task == "sentence"]
    assert (sent["value"] == 1.0).all() and (sent["n"] == len(SCRIPTS)).all()
    n_words = sum(len(t.split()) for t in SCRIPTS)
    word = df[(df.task == "word") & (df.layer > 0)]
    assert (word["n"] == n_words).all()
    # cosine (plain or centred), weak or strong: the copy is identical, cosine 1, the maximum
    assert (word[word.score == "cosine"]["value"] == 1.0).all()
    # CSLS trades similarity against hubness: random tiny-model vectors are near each other,
    # so a copy with a crowded neighbourhood may lose; still far above chance (1/59)
    assert (word[word.score == "csls"]["value"] > 0.6).all()
    out2 = tmp_path / "b.csv"
    assert main(["align-eval", "--model", str(e5_tiny), "--pairs", str(shifted), "--langs", "mul", "xx", "--csls-k", "0",
                 "--out", str(out2), "--no-progress"]) == 0
    bad = pd.read_csv(out2)
    assert bad[(bad.layer == 2) & (bad.candidates == "weak")]["value"].max() < 0.3
    # errors
    assert main(["align-eval", "--model", str(e5_tiny), "--src", str(src), "--out", str(out)]) == 2
    assert "--tgt" in capsys.readouterr().err
    assert main(["align-eval", "--model", str(e5_tiny), "--out", str(out)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from core.tiny import tiny_model

    d = tmp_path_factory.mktemp("align") / "m"
    m, t = tiny_model("xlm-roberta")
    m.save_pretrained(d)
    t.save_pretrained(d)
    return d


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


class TableVectors(WordVectors):
    """A stand-in extractor with a given vector per word form (one layer)."""

    layers = (0,)

    def __init__(self, table: dict):
        self.table = table
        self.dim = len(next(iter(table.values())))

    def _vec(self, word: str) -> np.ndarray:
        return np.asarray(self.table[word], dtype=float)

    def extract(self, sentences):
        from core.features import WordFeatures

        words = [w for s in sentences for w in s]
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        return WordFeatures(self.layers, {0: np.stack([self._vec(w) for w in words])}, offsets,
                            np.ones(len(words), bool), "first")


def test_align_eval_rows_are_scored_and_labelled_as_named():
    """Source words sit near a hub target word: cosine retrieval picks the hub, CSLS does not;
    every row says which score, candidates, centring and direction it measured."""
    d = 6
    table = {f"s{k}": np.eye(d)[k] + 0.6 for k in range(d)} | {f"t{k}": np.eye(d)[k] for k in range(d)}
    table |= {"sh": np.ones(d) + 0.1 * np.eye(d)[0], "th": np.ones(d)}
    linked = [LinkedPair(str(k), [f"s{k}"], [f"t{k}"], [(0, 0)]) for k in range(d)]
    linked.append(LinkedPair("hub", ["sh"], ["th"], [(0, 0)]))
    rows = align_eval(TableVectors(table), linked_pairs=linked, csls_k=3)
    got = {(r["score"], r["centred"], r["candidates"], r["direction"]): r["value"] for r in rows}
    assert len(got) == len(rows) == 2 * 2 * 2 * 2
    assert {r["metric"] for r in rows} == {"accuracy@1"} and {r["n"] for r in rows} == {d + 1}
    X = np.stack([table[f"s{k}"] for k in range(d)] + [table["sh"]])
    Y = np.stack([table[f"t{k}"] for k in range(d)] + [table["th"]])
    for score, k in (("cosine", 0), ("csls", 3)):
        for centred in (False, True):
            ref = {(r["candidates"], r["direction"]): r["value"] for r in word_retrieval(X, Y, csls_k=k, centre=centred)}
            for (cand, direction), v in ref.items():
                assert got[(score, centred, cand, direction)] == v, (score, centred, cand, direction)
    assert got[("cosine", False, "weak", "src->tgt")] == pytest.approx(1 / 7)  # every query takes the hub
    assert got[("csls", False, "weak", "src->tgt")] == 1.0  # CSLS discounts it
    assert got[("cosine", True, "weak", "src->tgt")] > got[("cosine", False, "weak", "src->tgt")]
    # no CSLS rows when k = 0; sentence rows are labelled too
    assert {r["score"] for r in align_eval(TableVectors(table), linked_pairs=linked, csls_k=0)} == {"cosine"}
    pairs, _, _ = _permuted_pairs()
    sent = align_eval(WordVectors(), sentence_pairs=pairs)
    assert {(r["task"], r["candidates"], r["score"], r["centred"]) for r in sent} == {("sentence", "all", "cosine", False)}
    assert {r["direction"] for r in sent} == {"src->tgt", "tgt->src"}


def test_alignment_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in shape"):
        word_retrieval(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="no queries"):
        retrieval_accuracy(np.ones((0, 2)), np.ones((3, 2)), np.arange(0))

    class NoValid(WordVectors):
        def extract(self, sentences):
            wf = super().extract(sentences)
            wf.valid[:] = False
            return wf

    _, linked, _ = _permuted_pairs(2, 3)
    with pytest.raises(ValueError, match="no linked word has a representation"):
        align_eval(NoValid(), linked_pairs=linked)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        align_eval(WordVectors())


def _csls_reference(Q, C, k):
    """CSLS (Conneau et al. 2018, eq. 6) written out: 2 cos(q, c) - r_C(q) - r_Q(c), with
    r the mean cosine of the k nearest neighbours on the other side."""
    cos = np.array([[q @ c / np.linalg.norm(q) / np.linalg.norm(c) for c in C] for q in Q])
    r_q = np.array([np.sort(row)[::-1][:k].mean() for row in cos])
    r_c = np.array([np.sort(col)[::-1][:k].mean() for col in cos.T])
    return 2 * cos - r_q[:, None] - r_c[None, :]


@pytest.mark.parametrize("k", [1, 3])
def test_csls_accuracy_against_the_written_out_formula(k):
    """Every query's CSLS choice is the formula's, k = 1 included (a mutant that ignored
    k = 1, and one that weighted the cosine 3 instead of 2, survived the earlier tests)."""
    differs = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        C = rng.normal(size=(12, 5))
        C[:4] += 2.5 * rng.normal(size=5)  # a crowded region: hubs, where CSLS and cosine part
        Q = C + 0.9 * rng.normal(size=C.shape)
        target = np.arange(12)
        ref = _csls_reference(Q, C, k)
        got = retrieval_accuracy(Q, C, target, csls_k=k)
        assert got == pytest.approx((ref.argmax(1) == target).mean()), (seed, k)
        differs += got != retrieval_accuracy(Q, C, target)
    assert differs > 0  # the data are such that CSLS and plain cosine disagree somewhere


def test_read_pairs_jsonl_round_trip(tmp_path):
    from core.pieces import surface
    from core.wordpairs import pair_record

    p = tmp_path / "pairs.jsonl"
    S = lambda text: surface(text.split())  # noqa: E731
    recs = [pair_record("a1", S("The black cat"), S("Le chat noir"), [[0, 0], [1, 2], [2, 1]]),
            pair_record("a2", S("Dogs bark loudly"), S("Hunde bellen laut"), [[2, 2], [0, 0]])]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    got = read_pairs_jsonl(p)
    assert [g.id for g in got] == ["a1", "a2"]
    assert [list(g.src.words) for g in got] == [["The", "black", "cat"], ["Dogs", "bark", "loudly"]]
    assert [list(g.tgt.words) for g in got] == [["Le", "chat", "noir"], ["Hunde", "bellen", "laut"]]
    assert [list(g.links) for g in got] == [[(0, 0), (1, 2), (2, 1)], [(2, 2), (0, 0)]]
