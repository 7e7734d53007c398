"""CoNLL-U reader: MWT, empty nodes, malformed files, treebank discovery, stats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.conllu import ConlluError, find_treebanks, read_conllu, treebank_lang, treebank_stats

DATA = Path(__file__).parent / "data"
GOOD_LINE = "1\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_"


def test_mwt_words_and_surface_tokens():
    s1, s2 = list(read_conllu(DATA / "mwt_empty.conllu"))
    assert s1.sent_id == "t1" and s1.text == "Il va au marché."
    assert s1.forms == ["Il", "va", "à", "le", "marché", "."]
    assert s1.upos == ["PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT"]
    assert s1.tokens == ["Il", "va", "au", "marché", "."]
    # both syntactic words of "au" point at the surface token "au"
    assert s1.word_to_token == [0, 1, 2, 2, 3, 4]
    assert [w.head for w in s1.words] == [2, 0, 5, 5, 2, 2]
    assert s1.words[3].deprel == "det"


def test_empty_nodes_are_not_words():
    _, s2 = list(read_conllu(DATA / "mwt_empty.conllu"))
    assert s2.forms == ["Sie", "kauft", "Brot", "und", "Milch", "."]
    assert s2.tokens == s2.forms and s2.word_to_token == list(range(6))


def test_stats_exclude_ranges_and_empty_nodes():
    st = treebank_stats(DATA / "mwt_empty.conllu")
    assert st.sentences == 2 and st.words == 12
    assert st.upos["NOUN"] == 3 and st.upos["PUNCT"] == 2 and sum(st.upos.values()) == 12


def _write(tmp_path, text, name="bad.conllu"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "text, line, expected",
    [
        ("# sent_id = a\n1\tHello\thello\tINTJ\t_\t_\t0\troot\t_\n\n", 2, "expected 10 tab-separated columns, found 9"),
        ("# sent_id = a\nx\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_\n\n", 2, "unexpected line 'x"),
        ("# sent_id = a\n1x\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_\n\n", 2, "bad ID '1x'"),
        (f"{GOOD_LINE}\n3\tx\tx\tNOUN\t_\t_\t1\tdep\t_\t_\n\n", 2, "word ID 3 out of sequence: expected 2"),
        ("1\tHello\thello\tNOM\t_\t_\t0\troot\t_\t_\n\n", 1, "unknown UPOS tag 'NOM'"),
        (f"# sent_id = a\n{GOOD_LINE}\n", 2, "file ends without a blank line"),
        (f"{GOOD_LINE}\n1-3\tzum\t_\t_\t_\t_\t_\t_\t_\t_\n\n", 2, "bad multiword-token range '1-3'"),
        ("1\tHello\thello\tINTJ\t_\t_\tx\troot\t_\t_\n\n", 1, "bad HEAD 'x'"),
    ],
)
def test_malformed_files_name_file_line_and_expectation(tmp_path, text, line, expected):
    p = _write(tmp_path, text)
    with pytest.raises(ConlluError) as ei:
        list(read_conllu(p))
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}:"), msg
    assert expected in msg
    assert ei.value.line == line


def test_error_is_raised_lazily_after_good_sentences(tmp_path):
    p = _write(tmp_path, f"{GOOD_LINE}\n\n1\tBad\tbad\tFOO\t_\t_\t0\troot\t_\t_\n\n")
    it = read_conllu(p)
    assert next(it).forms == ["Hello"]  # streaming: the first sentence comes out first
    with pytest.raises(ConlluError, match=":3: unknown UPOS"):
        next(it)


def test_find_treebanks_path_glob_and_ud_folder(tmp_path):
    ud = tmp_path / "ud-treebanks-v2.14"
    for lang, tb in (("fr", "GSD"), ("de", "HDT"), ("fr", "Sequoia")):
        folder = ud / f"UD_{'French' if lang == 'fr' else 'German'}-{tb}"
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("train", "dev", "test"):
            (folder / f"{lang}_{tb.lower()}-ud-{split}.conllu").write_text(GOOD_LINE + "\n\n")
    fr_train = find_treebanks(ud, lang="fr", split="train")
    assert [p.name for p in fr_train] == ["fr_gsd-ud-train.conllu", "fr_sequoia-ud-train.conllu"]
    assert len(find_treebanks(ud, split="test")) == 3
    assert len(find_treebanks(ud)) == 9
    assert len(find_treebanks(str(ud / "*" / "de_*.conllu"))) == 3
    one = ud / "UD_German-HDT" / "de_hdt-ud-dev.conllu"
    assert find_treebanks(one) == [one]
    with pytest.raises(FileNotFoundError, match="no treebank matches"):
        find_treebanks(ud, lang="xx")
    with pytest.raises(FileNotFoundError, match="glob matches no file"):
        find_treebanks(str(tmp_path / "*.nothing"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_treebanks(tmp_path / "missing.conllu")
    assert treebank_lang(one) == "de"


def test_demo_fixtures_are_parallel_and_valid(fixtures_dir):
    sents = {lang: list(read_conllu(fixtures_dir / f"{lang}_demo-ud-test.conllu")) for lang in ("en", "fr", "de")}
    ids = [[s.sent_id for s in v] for v in sents.values()]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 12
    assert any(len(s.tokens) < len(s.words) for s in sents["fr"])  # French has MWTs


def test_space_after_is_read_per_surface_token(tmp_path):
    f = tmp_path / "x.conllu"
    f.write_text(
        "# text = Il va au parc.\n"
        "1\tIl\til\tPRON\t_\t_\t2\tnsubj\t_\t_\n"
        "2\tva\taller\tVERB\t_\t_\t0\troot\t_\t_\n"
        "3-4\tau\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "3\tà\tà\tADP\t_\t_\t5\tcase\t_\t_\n"
        "4\tle\tle\tDET\t_\t_\t5\tdet\t_\t_\n"
        "5\tparc\tparc\tNOUN\t_\t_\t2\tobl\t_\tSpaceAfter=No\n"
        "6\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\t_\n\n",
        encoding="utf-8",
    )
    (s,) = read_conllu(f)
    assert s.tokens == ["Il", "va", "au", "parc", "."]
    assert s.space_after == [True, True, True, False, True]


CASES = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")).parent / "cases"


def _case(name: str) -> Path:
    d = CASES / name
    if not d.is_dir():
        pytest.skip(f"shared case {name} absent ({d})")
    return d


def test_case_05_bom_is_read(tmp_path):
    """cases/05-conllu-bom: a UTF-8 byte-order mark before '# sent_id' is dropped."""
    f = next(_case("05-conllu-bom").glob("*.conllu"))
    assert f.read_bytes()[:3] == b"\xef\xbb\xbf"
    st = treebank_stats(f)
    assert (st.sentences, st.words, st.upos) == (1, 3, {"PRON": 1, "PUNCT": 1, "VERB": 1})
    (s,) = read_conllu(f)
    assert not s.sent_id.startswith("\ufeff") and "sent_id" in s.comments


def test_case_12_overlapping_mwt_names_the_range_line():
    """cases/12-overlapping-mwt: 3-4 and 4-5 both hold word 4 -> error at the 4-5 line."""
    f = _case("12-overlapping-mwt") / "input.conllu"
    with pytest.raises(ConlluError, match=r"input\.conllu:7: multiword token 4-5 overlaps 3-4") as ei:
        list(read_conllu(f))
    assert ei.value.line == 7


def test_not_utf8_names_line_column_and_byte_offset(tmp_path):
    p = tmp_path / "latin1.conllu"
    head = f"# sent_id = a\n{GOOD_LINE}\n\n# sent_id = b\n".encode()
    p.write_bytes(head + "1\tcafé\tcafé\tNOUN\t_\t_\t0\troot\t_\t_\n\n".encode("latin-1"))
    it = read_conllu(p)
    assert next(it).sent_id == "a"  # the good sentence before the bad bytes is read
    with pytest.raises(ConlluError) as ei:
        next(it)
    assert ei.value.line == 5
    offset = len(head) + len("1\tcaf")
    assert f"byte 0xE9 at column 6 (byte offset {offset} in the file) is not UTF-8" in str(ei.value)
    assert p.read_bytes()[offset] == 0xE9


def test_single_word_range_is_a_token(tmp_path):
    """``N-N`` (the UD validator accepts it) makes the range form the surface token."""
    p = _write(tmp_path, "1\tdu\tdu\tDET\t_\t_\t2\tdet\t_\t_\n2-2\tVin\t_\t_\t_\t_\t_\t_\t_\t_\n"
                         "2\tvin\tvin\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    (s,) = read_conllu(p)
    assert s.tokens == ["du", "Vin"] and s.forms == ["du", "vin"] and s.word_to_token == [0, 1]


def test_text_without_comment_is_rebuilt_with_space_after(tmp_path):
    p = _write(tmp_path, "1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\tSpaceAfter=No\n2\t!\t!\tPUNCT\t_\t_\t1\tpunct\t_\t_\n\n")
    (s,) = read_conllu(p)
    assert s.text == "Hi!" and s.space_after == [False, True]
