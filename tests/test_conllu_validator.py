"""Our CoNLL-U reader against the UD validator (PyPI ``udtools``, ``udvalidate --level 2``).

Table-driven: a clean two-sentence file (a multiword token, an empty node, SpaceAfter=No,
an enhanced graph) and malformed variants of it. For every variant, either both the UD
validator and our reader reject it, or our reader reads it exactly as the clean file
(harmless deviations: BOM, CRLF, extra blank lines, values in columns we do not read).
Deliberate differences are listed in ``DELIBERATE`` and in docs/data.md. The UD side is
skipped cleanly when udtools is absent; our side is always checked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.conllu import ConlluError, read_conllu

CLEAN = """\
# sent_id = s1
# text = Il va au parc.
1	Il	il	PRON	_	_	2	nsubj	2:nsubj	_
2	va	aller	VERB	_	_	0	root	0:root	_
3-4	au	_	_	_	_	_	_	_	_
3	à	à	ADP	_	_	5	case	5:case	_
4	le	le	DET	_	_	5	det	5:det	_
5	parc	parc	NOUN	_	_	2	obl	2:obl	SpaceAfter=No
6	.	.	PUNCT	_	_	2	punct	2:punct	_

# sent_id = s2
# text = Sie kauft Brot und Milch.
1	Sie	sie	PRON	_	_	2	nsubj	2:nsubj|4.1:nsubj	_
2	kauft	kaufen	VERB	_	_	0	root	0:root	_
3	Brot	Brot	NOUN	_	_	2	obj	2:obj	_
4	und	und	CCONJ	_	_	5	cc	4.1:cc	_
4.1	kauft	kaufen	VERB	_	_	_	_	2:conj	_
5	Milch	Milch	NOUN	_	_	3	conj	4.1:obj	SpaceAfter=No
6	.	.	PUNCT	_	_	2	punct	2:punct	_

"""  # line numbers: s1 comments 1-2, words 3-9, blank 10; s2 comments 11-12, words 13-19, blank 20


def _sub(lineno: int, old: str, new: str):
    """Replace ``old`` by ``new`` in line ``lineno`` (1-based) of the clean text."""
    def f(text: str) -> str:
        lines = text.split("\n")
        assert old in lines[lineno - 1], (lineno, old)
        lines[lineno - 1] = lines[lineno - 1].replace(old, new, 1)
        return "\n".join(lines)
    return f


def _ins(lineno: int, new: str):
    """Insert ``new`` (one or more lines) before line ``lineno``."""
    def f(text: str) -> str:
        lines = text.split("\n")
        return "\n".join(lines[:lineno - 1] + new.split("\n") + lines[lineno - 1:])
    return f


def _cols(lineno: int, **changes: str):
    """Set columns (ID, FORM, ..., by name) of line ``lineno``."""
    names = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")

    def f(text: str) -> str:
        lines = text.split("\n")
        cols = lines[lineno - 1].split("\t")
        for k, v in changes.items():
            cols[names.index(k)] = v
        lines[lineno - 1] = "\t".join(cols)
        return "\n".join(lines)
    return f


def _all(*fs):
    def f(text: str) -> str:
        for g in fs:
            text = g(text)
        return text
    return f


# name -> (transform of the clean text (str) or bytes, what our reader does:
#          ("reject", line, message part) or ("same",) = reads exactly as the clean file)
VARIANTS: dict[str, tuple] = {
    # harmless: read as the clean file (the validator rejects most of them)
    "bom": (lambda t: "\ufeff" + t, ("same",)),
    "crlf": (lambda t: t.replace("\n", "\r\n"), ("same",)),
    "extra blank lines": (lambda t: "\n" + t.replace("\n\n", "\n\n\n\n") + "\n", ("same",)),
    "whitespace-only separator": (_sub(10, "", "  "), ("same",)),
    "values on a multiword-token line": (_cols(5, UPOS="ADP", HEAD="5", DEPREL="case"), ("same",)),
    "HEAD on an empty node": (_cols(17, HEAD="2", DEPREL="conj"), ("same",)),
    "no # text (rebuilt from forms and SpaceAfter)": (_sub(2, "# text = Il va au parc.", "# x = y"),
                                                      ("same",)),
    # the line structure
    "comment after word lines": (_sub(10, "", "# note"), ("reject", 10, "comment after word lines")),
    "comment between word lines": (_ins(4, "# note"), ("reject", 4, "comment after word lines")),
    "comments without a sentence": (lambda t: "# sent_id = s0\n# text = x\n\n" + t,
                                    ("reject", 1, "comment lines without a sentence")),
    "comments only at the end": (lambda t: t + "# sent_id = s3\n", ("reject", 21, "comment lines without a sentence")),
    "trailing garbage": (lambda t: t + "garbage\n", ("reject", 21, "unexpected line 'garbage'")),
    "no blank line at the end": (lambda t: t[:-1], ("reject", 19, "file ends without a blank line")),
    "BOM of a second file": (_sub(11, "#", "\ufeff#"), ("reject", 11, "byte-order mark")),
    "not UTF-8": (lambda t: t.encode("utf-8").replace("à".encode(), b"\xe0"), ("reject", 6, "byte 0xE0 at column 3")),
    "stray CR inside a line": (_sub(15, "Brot\tBrot", "Br\rot\tBrot"), ("reject", 15, "carriage return")),
    "9 columns": (_sub(13, "\tPRON\t_", "\tPRON"), ("reject", 13, "found 9")),
    "11 columns": (_cols(13, MISC="_\tx"), ("reject", 13, "found 11")),
    # IDs
    "overlapping multiword tokens": (_all(_sub(7, "4\tle", "4-5\tleparc\t_\t_\t_\t_\t_\t_\t_\t_\n4\tle")),
                                     ("reject", 7, "multiword token 4-5 overlaps 3-4 (line 5)")),
    "nested multiword tokens": (_all(_sub(5, "3-4\tau", "3-5\tauparc"), _ins(7, "4-5\tleparc\t_\t_\t_\t_\t_\t_\t_\t_")),
                                ("reject", 7, "multiword token 4-5 overlaps 3-5 (line 5)")),
    "range past the sentence's end": (_ins(9, "6-7\t.x\t_\t_\t_\t_\t_\t_\t_\t_"),
                                      ("reject", 9, "multiword token 6-7 ends at word 7 but the sentence has 6")),
    "range before the wrong word": (_sub(5, "3-4", "4-5"), ("reject", 5, "bad multiword-token range '4-5'")),
    "reversed range": (_sub(5, "3-4", "4-3"), ("reject", 5, "bad multiword-token range")),
    "empty node skips a number": (_cols(17, ID="4.2"), ("reject", 17, "empty node '4.2' out of order: expected 4.1")),
    "empty node repeated": (_ins(18, "4.1\tkauft\tkaufen\tVERB\t_\t_\t_\t_\t2:conj\t_"),
                            ("reject", 18, "empty node '4.1' out of order: expected 4.2")),
    "empty node after the wrong word": (_cols(17, ID="3.1"), ("reject", 17, "expected 4.1")),
    "word ID skips a number": (_cols(15, ID="4"), ("reject", 15, "word ID 4 out of sequence: expected 3")),
    # columns
    "empty FORM": (_cols(15, FORM=""), ("reject", 15, "empty FORM")),
    "empty LEMMA": (_cols(15, LEMMA=""), ("reject", 15, "empty LEMMA")),
    "FORM with a leading space": (_all(_cols(15, FORM=" Brot")), ("reject", 15, "leading, trailing or repeated")),
    "space in a multiword token": (_cols(5, FORM="a u"), ("reject", 5, "whitespace in FORM")),
    "space in UPOS": (_cols(15, UPOS="NOUN "), ("reject", 15, "whitespace in UPOS")),
    "not NFC": (_sub(6, "à\tà", "a\u0300\tà"), ("reject", 6, "not in Unicode NFC (column 3)")),
    "replacement character": (_all(_cols(15, FORM="Br\ufffdt")), ("reject", 15, "U+FFFD")),
    "unknown UPOS": (_cols(15, UPOS="NOM"), ("reject", 15, "unknown UPOS tag 'NOM'")),
    # HEAD
    "HEAD not a number": (_cols(15, HEAD="x"), ("reject", 15, "bad HEAD 'x'")),
    "HEAD past the sentence": (_cols(15, HEAD="9"), ("reject", 15, "HEAD 9 is not a word of the sentence")),
    "HEAD on itself": (_cols(15, HEAD="3"), ("reject", 15, "HEAD 3 is the word itself")),
    "two roots": (_cols(15, HEAD="0", DEPREL="root"), ("reject", 15, "second root")),
    "a cycle": (_all(_cols(15, HEAD="5"), _cols(18, HEAD="3")), ("reject", 15, "word 3 cannot be reached")),
    "HEAD _ on one word only": (_cols(15, HEAD="_"), ("reject", 15, "HEAD is _ here")),
    # sentence metadata
    "repeated sent_id": (_sub(11, "s2", "s1"), ("reject", 11, "sent_id 's1' repeats the one at line 1")),
    "two sent_id comments": (_ins(12, "# sent_id = s3"), ("reject", 12, "second '# sent_id'")),
    "sent_id with a space": (_sub(11, "s2", "s 2"), ("reject", 11, "contains whitespace")),
    "sent_id without a value": (_sub(11, "= s2", "="), ("reject", 11, "'# sent_id' without a value")),
    "two text comments": (_ins(12, "# text = Sie kauft Brot und Milch."), ("reject", 13, "second '# text'")),
    "empty text": (_sub(12, "Sie kauft Brot und Milch.", ""), ("reject", 12, "'# text' without a value")),
    "text does not match the forms": (_sub(12, "und", "and"), ("reject", 16, "FORM 'und' does not match")),
    "text with extra words": (_sub(12, "Milch.", "Milch. Ja."), ("reject", 12, "'# text' ends with 'Ja.'")),
    "SpaceAfter=No missing": (_cols(18, MISC="_"), ("reject", 18, "no space after 'Milch'")),
    "SpaceAfter=No too many": (_cols(15, MISC="SpaceAfter=No"), ("reject", 16, "FORM 'und' does not match")),
    "SpaceAfter=Yes": (_cols(15, MISC="SpaceAfter=Yes"), ("reject", 15, "'SpaceAfter=Yes'")),
    "SpaceAfter=No inside a multiword token": (_all(_cols(7, MISC="SpaceAfter=No")),
                                               ("reject", 7, "SpaceAfter=No on word 4 inside multiword token 3-4")),
    "SpaceAfter=No on an empty node": (_cols(17, MISC="SpaceAfter=No"), ("reject", 17, "SpaceAfter=No on an empty")),
}

# Where our reader knowingly differs from the validator (docs/data.md, "CoNLL-U"):
# name -> (transform, what our reader does, why)
DELIBERATE: dict[str, tuple] = {
    "no sent_id": (_sub(11, "# sent_id = s2", "# x = y"), ("reads", "sent_id", "x.conllu#11"),
                   "sent_id is optional: a fallback id (file#line) is unique and never joins by accident"),
    "HEAD and DEPREL not annotated": (
        lambda t: "\n".join("\t".join(c[:6] + ["_", "_"] + c[8:]) if len(c := ln.split("\t")) == 10 else ln
                            for ln in t.split("\n")),
        ("reads", "heads", [-1] * 6),
        "a tagger's output (UPOS only) is a valid input for the toolkit, which reads no tree"),
    "empty file": (lambda t: "", ("reject", 0, "no sentence in the file"),
                   "an empty file is an error for every reader of the toolkit"),
}


def _view(sentences):
    """What the toolkit reads from a file (no path, no line numbers, no other comments)."""
    return [(s.sent_id, s.text, s.tokens, s.space_after, s.word_to_token, s.forms, s.upos,
             [w.head for w in s.words]) for s in sentences]


def _write(tmp_path: Path, content: str | bytes, name: str = "x.conllu") -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def _ours(path: Path):
    try:
        return list(read_conllu(path)), None
    except ConlluError as e:
        return None, e


@pytest.fixture(scope="module")
def ud_validator():
    """``udtools.Validator`` at level 2 for the universal part ('ud'), silent; None when absent."""
    try:
        from udtools import Validator
    except ImportError:
        return None

    def rejects(path: Path) -> bool:
        try:
            state = Validator(lang="ud", level=2, output=None).validate_files([str(path)])
        except UnicodeDecodeError:  # the validator reads with Python's strict UTF-8 codec
            return True
        return not state.passed()

    return rejects


def test_clean_file_is_valid_for_both(tmp_path, ud_validator):
    p = _write(tmp_path, CLEAN)
    sents, err = _ours(p)
    assert err is None and [s.sent_id for s in sents] == ["s1", "s2"]
    assert sents[0].tokens == ["Il", "va", "au", "parc", "."] and sents[0].space_after == [True, True, True, False, True]
    assert sents[1].forms == ["Sie", "kauft", "Brot", "und", "Milch", "."]
    if ud_validator is not None:
        assert not ud_validator(p)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_as_the_validator_sees_it(tmp_path, ud_validator, name):
    transform, expected = VARIANTS[name]
    clean, _ = _ours(_write(tmp_path, CLEAN, "clean.conllu"))
    p = _write(tmp_path, transform(CLEAN))
    sents, err = _ours(p)
    if expected[0] == "same":
        assert err is None, f"{name}: rejected: {err}"
        assert _view(sents) == _view(clean), name
    else:
        _, line, part = expected
        assert err is not None, f"{name}: accepted, expected an error at line {line}"
        assert err.line == line and part in str(err), f"{name}: {err}"
        assert str(err).startswith(f"{p}:{line}: ")
    if ud_validator is not None and expected[0] == "reject":
        assert ud_validator(p), f"{name}: we reject what the UD validator accepts; list it in DELIBERATE"


@pytest.mark.parametrize("name", list(DELIBERATE))
def test_deliberate_differences(tmp_path, ud_validator, name):
    transform, expected, _why = DELIBERATE[name]
    p = _write(tmp_path, transform(CLEAN))
    sents, err = _ours(p)
    if expected[0] == "reject":
        assert err is not None and err.line == expected[1] and expected[2] in str(err)
    else:
        assert err is None, err
        got = [s.sent_id for s in sents][1] if expected[1] == "sent_id" else [w.head for w in sents[0].words]
        assert got == expected[2]
    if ud_validator is not None:  # a difference: the validator decides the other way
        assert ud_validator(p) != (err is not None), f"{name}: no longer a difference; move it to VARIANTS"


def test_installed_udvalidate_command_agrees(tmp_path):
    """The command line as installed (``udvalidate --lang ud --level 2``): exit 0 on the clean
    file, non-zero on overlapping multiword tokens, as our reader."""
    exe = shutil.which("udvalidate", path=str(Path(sys.executable).parent)) or shutil.which("udvalidate")
    if exe is None:
        pytest.skip("udtools (udvalidate) not installed: pip install 'alignfreeze[dev]'")
    good = _write(tmp_path, CLEAN, "good.conllu")
    bad = _write(tmp_path, VARIANTS["overlapping multiword tokens"][0](CLEAN), "bad.conllu")
    run = [exe, "--quiet", "--lang", "ud", "--level", "2"]
    assert subprocess.run([*run, str(good)], capture_output=True, timeout=120).returncode == 0
    assert subprocess.run([*run, str(bad)], capture_output=True, timeout=120).returncode != 0
    assert _ours(good)[1] is None and _ours(bad)[1] is not None
