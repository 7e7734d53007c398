"""Parallel readers: CoNLL-U joined on sent_id, line-aligned text, TSV; misalignment errors."""

from __future__ import annotations

import pytest

from core.parallel import ParallelDataError, read_parallel


def test_conllu_pairs_join_on_sent_id(fixtures_dir):
    pairs = read_parallel(fixtures_dir / "en_demo-ud-test.conllu", fixtures_dir / "fr_demo-ud-test.conllu")
    assert len(pairs) == 12
    p = pairs[2]
    assert p.id == "demo-03"
    assert p.src.words[:2] == ["We", "walked"]
    assert "au" in p.tgt.words and "à" not in p.tgt.words  # surface tokens, not syntactic words


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
    assert [p.id for p in pairs] == ["1", "3"] and pairs[1].tgt.words == ["un", "chien", "aboie"]
    b.write_text("le chat\n\n")
    with pytest.raises(ParallelDataError, match=rf"^{a}:3: {b} has only 2 lines"):
        read_parallel(a, b)
    with pytest.raises(ParallelDataError, match=rf"^{a}:3: {b} has only 2 lines"):
        read_parallel(b, a)  # the longer file is named, whichever side it is
    b.write_text("le chat\nx\nun chien aboie\n")
    with pytest.raises(ParallelDataError, match=rf"^{a}:2: empty line, but line 2 of {b} is not"):
        read_parallel(a, b)
    with pytest.raises(ParallelDataError, match=rf"^{a}:2: empty line"):
        read_parallel(b, a)


def _pud(ids, lang="x"):
    return "".join(f"# sent_id = {i}\n# text = {lang}{i}\n1\t{lang}{i}\tw\tNOUN\t_\t_\t0\troot\t_\t_\n\n" for i in ids)


@pytest.mark.parametrize("side", ["src", "tgt"])
def test_repeated_sent_id_on_either_side_names_file_and_line(tmp_path, side):
    """A sent_id repeated on the SOURCE side used to pair a sentence with the wrong translation."""
    a, b = tmp_path / "a.conllu", tmp_path / "b.conllu"
    ids = ["s1", "s2", "s1"]
    (a if side == "src" else b).write_text(_pud(ids), encoding="utf-8")
    (b if side == "src" else a).write_text(_pud(["s1", "s2", "s3"]), encoding="utf-8")
    bad = a if side == "src" else b
    with pytest.raises(ValueError, match=rf"^{bad}:9: sent_id 's1' repeats the one at line 1"):
        read_parallel(a, b)


def test_conllu_pairs_check_both_sides_in_order(tmp_path):
    a, b = tmp_path / "a.conllu", tmp_path / "b.conllu"
    a.write_text(_pud(["s1", "s2"], "en"), encoding="utf-8")
    b.write_text(_pud(["s2", "s1"], "fr"), encoding="utf-8")
    pairs = read_parallel(a, b)  # joined on sent_id, not on position
    assert [(p.id, p.src.words, p.tgt.words) for p in pairs] == [("s1", ["ens1"], ["frs1"]), ("s2", ["ens2"], ["frs2"])]
    b.write_text(_pud(["s1", "s2", "s3"], "fr"), encoding="utf-8")
    with pytest.raises(ParallelDataError, match=rf"^{b}:9: sent_id 's3' has no match in {a}"):
        read_parallel(a, b)
    with pytest.raises(ParallelDataError, match=rf"^{b}:9: sent_id 's3' has no match in {a}"):
        read_parallel(b, a)
    b.write_text(_pud(["s1"], "fr") + "1\tx\tx\tNOUN\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match=rf"^{b}:5: sentence without '# sent_id'"):
        read_parallel(a, b)


def test_text_files_as_they_come(tmp_path):
    """BOM and CRLF are read as a clean file; bytes that are not UTF-8 name the line."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"\xef\xbb\xbfthe cat\r\na dog\r\n")
    b.write_bytes(b"le chat\nun chien\n")
    pairs = read_parallel(a, b)
    assert [p.src.words for p in pairs] == [["the", "cat"], ["a", "dog"]]
    b.write_bytes("le chat\nun chien \xe9l\xe9gant\n".encode("latin-1"))
    with pytest.raises(ParallelDataError, match=rf"^{b}:2: byte 0xE9 at column 10 \(byte offset 17 in the file\)"):
        read_parallel(a, b)


def test_hf_rows_check_both_sides(monkeypatch):
    import sys
    import types

    rows = [{"translation": {"en": "the cat", "fr": "le chat"}}, {"translation": {"en": "a dog", "fr": " "}}]
    fake = types.SimpleNamespace(load_dataset=lambda name, config, split: rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert read_parallel("hf:x/y:en-fr", limit=1)[0].tgt.words == ["le", "chat"]
    with pytest.raises(ParallelDataError, match=r"hf:x/y:en-fr \(train\) row 1: no text on the fr side"):
        read_parallel("hf:x/y:en-fr")
    rows[1] = {"translation": {"de": "ein Hund"}}
    with pytest.raises(ParallelDataError, match="row 1: no text on the en and fr side"):
        read_parallel("hf:x/y:en-fr")


def test_tsv_pairs_and_bad_line(tmp_path):
    t = tmp_path / "p.tsv"
    t.write_text("the cat\tle chat\nred apples\tpommes rouges\n")
    pairs = read_parallel(t, limit=1)
    assert len(pairs) == 1 and pairs[0].src.words == ["the", "cat"]
    t.write_text("the cat\tle chat\nonly one column\n")
    with pytest.raises(ParallelDataError, match=r"p\.tsv:2: expected two non-empty tab-separated"):
        read_parallel(t)
    t.write_text("the cat\tle chat\nred apples\t \n")
    with pytest.raises(ParallelDataError, match=r"p\.tsv:2: .* with an empty side"):
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
