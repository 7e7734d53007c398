"""Word pairs: the dictionary rule, gdfa, eflomal, similarity; JSONL reading and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.parallel import ParallelPair, read_parallel
from realign.aligners import (
    dictionary_links,
    eflomal_links,
    grow_diag_final_and,
    read_dictionary,
    similarity_links_from_vectors,
)
from realign.pairs import extract_pairs, one_to_one, read_pairs, write_pairs


@pytest.fixture(scope="module")
def en_fr():
    from core import FIXTURES

    return read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / "fr_demo-ud-test.conllu")


D = {"cat": {"chat"}, "the": {"le", "la"}, "chair": {"chaise"}, "warm": {"chaude"}, "big": {"grand", "gros"},
     "dog": {"chien"}, "sleeps": {"dort"}, "paris": {"paris"}}


def test_dictionary_rule_by_hand():
    # "The"/"the" occur twice in the source: never linked; "la"/"Le" both translate "the" anyway
    src = "The cat sleeps on the warm chair".split()
    tgt = "Le chat dort sur la chaise chaude".split()
    assert dictionary_links(src, tgt, D) == {(1, 1), (2, 2), (5, 6), (6, 5)}
    # ambiguous: "big" matches both "grand" and "gros" in the target -> no link for it
    assert dictionary_links(["big", "dog"], ["grand", "gros", "chien"], D) == {(1, 2)}
    # the target word occurs twice -> no link
    assert dictionary_links(["cat", "dog"], ["chat", "chat", "chien"], D) == {(1, 2)}
    # two source words sharing one target translation: unique in neither direction
    d2 = {"a": {"x"}, "b": {"x"}}
    assert dictionary_links(["a", "b"], ["x"], d2) == set()


def test_identical_strings_and_one_to_one():
    assert one_to_one({(0, 0), (1, 1)}, ["Paris", "dort"], ["paris", "sleeps"]) == [[1, 1]]
    # word 0 has two links: both go; word 2 - 2 stays
    assert one_to_one({(0, 0), (0, 1), (2, 2)}, ["a", "b", "c"], ["x", "y", "z"]) == [[2, 2]]
    recs, summary = extract_pairs([ParallelPair("1", ["Paris", "cat"], ["Paris", "chat"])], "dictionary",
                                  dictionary=D)
    assert recs[0]["links"] == [[1, 1]]
    assert summary["pairs_kept"] == 1 and summary["links"] == 1 and summary["src_coverage"] == 0.5


def test_dictionary_on_fixtures(en_fr, fixtures_dir):
    recs, summary = extract_pairs(en_fr, "dictionary", dictionary=fixtures_dir / "en-fr.txt")
    first = recs[0]
    assert first["id"] == "demo-01"
    words = {(first["src"][i], first["tgt"][j]) for i, j in first["links"]}
    assert words == {("cat", "chat"), ("sleeps", "dort"), ("warm", "chaude"), ("chair", "chaise")}
    d = read_dictionary(fixtures_dir / "en-fr.txt")
    for r in recs:  # every kept link is a dictionary translation between words occurring once
        for i, j in r["links"]:
            assert r["tgt"][j].lower() in d[r["src"][i].lower()]
            assert [w.lower() for w in r["src"]].count(r["src"][i].lower()) == 1
    assert summary["sentence_pairs"] == 12 and 0 < summary["src_coverage"] < 1


def test_grow_diag_final_and_by_hand():
    fwd = {(0, 0), (1, 1), (2, 1)}
    rev = {(0, 0), (1, 1), (1, 2), (3, 3)}
    # intersection {(0,0), (1,1)}; grow-diag adds (2,1) (source 2 unaligned, neighbour of
    # (1,1)) and (1,2) (target 2 unaligned); final-and adds (3,3) (both words unaligned)
    assert grow_diag_final_and(fwd, rev) == {(0, 0), (1, 1), (2, 1), (1, 2), (3, 3)}
    # a union link far from the intersection whose words are already aligned is not added
    assert grow_diag_final_and({(0, 0), (1, 1)}, {(0, 0), (1, 1), (0, 1)}) == {(0, 0), (1, 1)}
    # final-and: only links whose BOTH words are unaligned
    assert grow_diag_final_and({(0, 0), (3, 0)}, {(0, 0)}) == {(0, 0)}


def test_eflomal_on_fixtures(en_fr):
    raw = eflomal_links([(p.src.words, p.tgt.words) for p in en_fr])
    assert len(raw) == len(en_fr)
    for p, links in zip(en_fr, raw):
        assert all(0 <= i < len(p.src) and 0 <= j < len(p.tgt) for i, j in links)
    recs, summary = extract_pairs(en_fr, "eflomal")
    assert summary["links_per_sentence"] > 3
    # demo-01 is word-for-word except for the swapped adjective/noun
    words = {(recs[0]["src"][i], recs[0]["tgt"][j]) for i, j in recs[0]["links"]}
    assert ("cat", "chat") in words and ("sleeps", "dort") in words


def test_similarity_rule_on_vectors():
    src = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) * 10
    tgt = src[[2, 0, 1]]
    assert similarity_links_from_vectors(src, tgt) == {(0, 1), (1, 2), (2, 0)}
    # two source words pointing at the same target: only the mutual argmax links
    src2 = np.array([[1.0, 0.0], [0.9, 0.1]]) * 10
    assert similarity_links_from_vectors(src2, np.array([[1.0, 0.0], [-1.0, 0.0]]) * 10) == {(0, 0)}
    # a threshold above every probability removes the links
    assert similarity_links_from_vectors(src, tgt, threshold=1.0) == set()


def test_similarity_with_tiny_model(tiny_models, en_fr):
    model, tok = tiny_models("xlm-roberta")
    recs, summary = extract_pairs(en_fr, "similarity", model=model, tokenizer=tok, layer=2, progress=False)
    assert summary["links"] > 0
    for r in recs:
        assert len({i for i, _ in r["links"]}) == len(r["links"]) == len({j for _, j in r["links"]})
    with pytest.raises(ValueError, match=r"0\.\.2"):
        extract_pairs(en_fr, "similarity", model=model, tokenizer=tok, layer=8, progress=False)


def test_extract_errors(en_fr, tmp_path):
    with pytest.raises(ValueError, match="unknown aligner 'fastalign'"):
        extract_pairs(en_fr, "fastalign")
    with pytest.raises(ValueError, match="needs a bilingual dictionary"):
        extract_pairs(en_fr, "dictionary")
    with pytest.raises(ValueError, match="needs a model"):
        extract_pairs(en_fr, "similarity")
    with pytest.raises(FileNotFoundError, match="no such dictionary"):
        extract_pairs(en_fr, "dictionary", dictionary=tmp_path / "none.txt")
    d = tmp_path / "de-xx.txt"
    d.write_text("Hund dog\nKatze cat\n")
    with pytest.raises(ValueError, match="no usable one-to-one links in 12 sentence pairs"):
        extract_pairs(en_fr, "dictionary", dictionary=d)
    d.write_text("Hund dog\nKatze\n")
    with pytest.raises(ValueError, match=r"de-xx.txt:2: expected 'source target'"):
        read_dictionary(d)


def test_roundtrip_and_bad_files(tmp_path):
    recs = [{"id": "a", "src": ["x", "y"], "tgt": ["u"], "links": [[1, 0]]},
            {"id": "b", "src": ["z"], "tgt": ["w", "v"], "links": []}]
    p = write_pairs(tmp_path / "p.jsonl", recs)
    assert read_pairs(p) == recs
    assert read_pairs([p, p]) == recs + recs

    def bad(text, match):
        f = tmp_path / "bad.jsonl"
        f.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_pairs(f)

    good = json.dumps(recs[0])
    bad(good + "\n{not json\n", r"bad.jsonl:2: invalid JSON")
    bad(good + "\n" + json.dumps({"id": "c", "src": ["a"], "tgt": ["b"], "links": [[0, 1]]}),
        r"bad.jsonl:2: link \[0, 1\] out of range: the pair has 1 source and 1 target words")
    bad(json.dumps({"id": "c", "src": ["a"], "links": []}), r"bad.jsonl:1: missing key\(s\) \['tgt'\]")
    bad(json.dumps({"id": "c", "src": [], "tgt": ["b"], "links": []}), "'src' must be a non-empty list")
    bad(json.dumps({"id": "c", "src": ["a"], "tgt": ["b"], "links": [[0]]}), r"bad link \[0\]")
    bad(json.dumps([1, 2]), "expected a JSON object")
    bad("\n\n", "no word-pair records")
    with pytest.raises(FileNotFoundError, match="no such word-pair file"):
        read_pairs(tmp_path / "missing.jsonl")


def test_pud_en_fr_with_muse(ud_dir, muse_dir):
    """Sanity on real data: the dictionary rule keeps most PUD sentences and the links
    it keeps are translations (checked against the dictionary itself)."""
    pairs = read_parallel(ud_dir / "en_pud-ud-test.conllu", ud_dir / "fr_pud-ud-test.conllu")
    d = read_dictionary(muse_dir / "en-fr.txt")
    recs, summary = extract_pairs(pairs, "dictionary", dictionary=d)
    assert summary["sentence_pairs"] == 1000
    assert summary["pairs_kept"] > 800
    assert 2 < summary["links_per_sentence"] < 25
    assert 0.1 < summary["src_coverage"] < 0.8
    for r in recs[:100]:
        for i, j in r["links"]:
            assert r["tgt"][j].lower() in d[r["src"][i].lower()] and r["src"][i].lower() != r["tgt"][j].lower()


def test_eflomal_limit_is_the_installed_packages():
    """EFLOMAL_MAX_WORDS is eflomal's own: a side of that many words is aligned, one more
    word (on either side) and eflomal gives no link at all."""
    import tempfile
    from pathlib import Path

    eflomal = pytest.importorskip("eflomal")
    from realign.aligners import EFLOMAL_MAX_WORDS

    n = EFLOMAL_MAX_WORDS

    def words(prefix, k):
        return " ".join(f"{prefix}{i % 40}" for i in range(k)) + "\n"

    src = [words("s", n), words("s", n + 1), words("s", 5), "a b c\n"]
    tgt = [words("t", n), words("t", 5), words("t", n + 1), "x y z\n"]
    with tempfile.TemporaryDirectory() as d:
        fwd, rev = Path(d) / "f", Path(d) / "r"
        eflomal.Aligner(n_iterations=(1, 1, 1)).align(src, tgt, links_filename_fwd=str(fwd),
                                                      links_filename_rev=str(rev), quiet=True)
        counts = [[len(line.split()) for line in f.read_text().splitlines()] for f in (fwd, rev)]
    for c in counts:
        assert c[0] > n // 2 and c[1] == 0 and c[2] == 0, counts


def _long_pair(n, pid="long"):
    return ParallelPair(pid, [f"w{i}" for i in range(n)], [f"m{i}" for i in range(5)])


def test_eflomal_long_pair_is_counted_and_reported(en_fr, capsys):
    """cases/08: a pair over eflomal's limit used to vanish, and the coverage left it out."""
    from realign.aligners import EFLOMAL_MAX_WORDS

    pairs = list(en_fr) + [_long_pair(EFLOMAL_MAX_WORDS + 1, "42")]
    raw = eflomal_links([(p.src.words, p.tgt.words) for p in pairs])
    assert raw[-1] is None and all(r is not None for r in raw[:-1])
    recs, summary = extract_pairs(pairs, "eflomal")
    assert "42" not in {r["id"] for r in recs}
    assert summary["sentence_pairs"] == 13 and summary["pairs_not_aligned"] == 1
    assert summary["pairs_kept"] + summary["pairs_without_links"] + 1 == 13
    n_src = sum(len(p.src) for p in pairs)
    assert summary["src_coverage"] == pytest.approx(summary["links"] / n_src)
    assert summary["links_per_sentence"] == pytest.approx(summary["links"] / 13)
    (w,) = summary["warnings"]
    assert "1 of 13 sentence pairs not aligned by eflomal" in w and f"longer than {EFLOMAL_MAX_WORDS}" in w
    assert "id 42" in w
    assert f"alignfreeze pairs: warning: {w}" in capsys.readouterr().err


def test_coverage_counts_pairs_without_links():
    pairs = [ParallelPair("1", ["Paris", "cat"], ["Paris", "chat"]), ParallelPair("2", ["dog"], ["xyz", "abc"])]
    recs, summary = extract_pairs(pairs, "dictionary", dictionary=D)
    assert [r["id"] for r in recs] == ["1"]
    assert summary["pairs_without_links"] == 1 and summary["pairs_not_aligned"] == 0
    assert summary["src_coverage"] == pytest.approx(1 / 3) and summary["tgt_coverage"] == pytest.approx(1 / 4)
    assert summary["links_per_sentence"] == pytest.approx(1 / 2) and summary["warnings"] == []


def test_similarity_pair_without_vectors_is_reported(tiny_models, en_fr, capsys):
    model, tok = tiny_models("xlm-roberta")
    pairs = list(en_fr[:3]) + [ParallelPair("novec", [" "], ["chat"])]  # a word no token reaches
    recs, summary = extract_pairs(pairs, "similarity", model=model, tokenizer=tok, layer=1, progress=False)
    assert summary["pairs_not_aligned"] == 1 and "id novec" in summary["warnings"][0]
    assert "no word has a vector" in capsys.readouterr().err


def test_dictionary_file_as_it_comes(tmp_path):
    d = tmp_path / "en-fr.txt"
    d.write_bytes(b"\xef\xbb\xbfcat chat\r\ndog chien\r\n")
    assert read_dictionary(d) == {"cat": {"chat"}, "dog": {"chien"}}
    d.write_bytes(b"cat chat\ncaf\xe9 caf\xe9\n")
    with pytest.raises(ValueError, match=r"en-fr.txt:2: byte 0xE9 at column 4 \(byte offset 12"):
        read_dictionary(d)


def test_pairs_file_with_bom(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "src": ["x"], "tgt": ["y"], "links": [[0, 0]]}).encode())
    assert read_pairs(p)[0]["id"] == "a"
