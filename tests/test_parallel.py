"""Parallel readers: CoNLL-U joined on sent_id, line-aligned text, TSV; misalignment errors."""

from __future__ import annotations

import pytest

from core.parallel import ParallelDataError, read_parallel


def test_conllu_pairs_join_on_sent_id(fixtures_dir):
    pairs = read_parallel(fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu")
    assert len(pairs) == 12
    p = pairs[2]
    assert p.id == "demo-03"
    assert p.src[:2] == ["We", "walked"]
    assert "au" in p.tgt and "à" not in p.tgt  # surface tokens, not syntactic words


def _conllu(ids):
    return "".join(f"# sent_id = {i}\n1\tw{i}\tw\tNOUN\t_\t_\t0\troot\t_\t_\n\n" for i in ids)


def test_conllu_missing_id_names_both_files(tmp_path):
    a, b = tmp_path / "a.conllu", tmp_path / "b.conllu"
    a.write_text(_conllu(["s1", "s2", "s3"]))
    b.write_text(_conllu(["s1", "s3"]))
    with pytest.raises(ParallelDataError) as ei:
        read_parallel(a, b)
    msg = str(ei.value)
    assert str(a) in msg and str(b) in msg and "'s2'" in msg


def test_conllu_extra_id_in_target(tmp_path):
    a, b = tmp_path / "a.conllu", tmp_path / "b.conllu"
    a.write_text(_conllu(["s1"]))
    b.write_text(_conllu(["s1", "s9"]))
    with pytest.raises(ParallelDataError, match="'s9'"):
        read_parallel(a, b)


def test_text_pairs_and_length_mismatch(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the cat\n\na dog barks\n")
    b.write_text("le chat\n\nun chien aboie\n")
    pairs = read_parallel(a, b)
    assert [p.id for p in pairs] == ["1", "3"] and pairs[1].tgt == ["un", "chien", "aboie"]
    b.write_text("le chat\n\n")
    with pytest.raises(ParallelDataError, match=r"\(3 lines\).*\(2 lines\).*line 3"):
        read_parallel(a, b)
    b.write_text("le chat\nx\nun chien aboie\n")
    with pytest.raises(ParallelDataError, match="line 2 is empty in only one"):
        read_parallel(a, b)


def test_tsv_pairs_and_bad_line(tmp_path):
    t = tmp_path / "p.tsv"
    t.write_text("the cat\tle chat\nred apples\tpommes rouges\n")
    pairs = read_parallel(t, limit=1)
    assert len(pairs) == 1 and pairs[0].src == ["the", "cat"]
    t.write_text("the cat\tle chat\nonly one column\n")
    with pytest.raises(ParallelDataError, match=r"p\.tsv:2: expected two non-empty tab-separated"):
        read_parallel(t)


def test_wrong_kinds_of_input(tmp_path, fixtures_dir):
    t = tmp_path / "a.txt"
    t.write_text("x\n")
    with pytest.raises(ParallelDataError, match="must be a TSV"):
        read_parallel(t)
    with pytest.raises(ParallelDataError, match="cannot pair a CoNLL-U file"):
        read_parallel(fixtures_dir / "en_demo-ud-test.conllu", t)
    with pytest.raises(FileNotFoundError):
        read_parallel(tmp_path / "missing.tsv")
    with pytest.raises(ParallelDataError, match="expected hf:DATASET:SRC-TGT"):
        read_parallel("hf:opus-100")
