"""The embedded demo corpus (core/fixtures/): built from its source, valid CoNLL-U for our
reader and the UD validator, parallel, tagged with the UD tag set in a way simple rules can
check, and dictionaries that really link the parallel sentences."""

from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
from collections import Counter

import pytest

from core import FIXTURES
from core.conllu import UPOS_TAGS, read_conllu
from core.parallel import read_parallel
from realign.aligners import read_dictionary
from realign.pairs import extract_pairs

LANGS = ("en", "fr", "de", "ru", "ar", "hi", "zh")
TARGETS = LANGS[1:]
COMMON = {"NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "AUX", "CCONJ", "SCONJ", "NUM", "PART",
          "PROPN", "PUNCT"}
# French follows UD French GSD: "ne" and "pas" are ADV, the language has no PART word here
NO_PART = {"fr"}
SCRIPT = {"en": "LATIN", "fr": "LATIN", "de": "LATIN", "ru": "CYRILLIC", "ar": "ARABIC",
          "hi": "DEVANAGARI", "zh": "CJK"}
# closed-class words whose tag the UD treebank of the language fixes (PUD, GSD, HDTB, PADT)
ANCHORS = {
    "en": {"the": {"DET"}, "a": {"DET"}, "and": {"CCONJ"}, "but": {"CCONJ"}, "not": {"PART"},
           "n't": {"PART"}, "if": {"SCONJ"}, "because": {"SCONJ", "ADP"}, "my": {"PRON"}, "will": {"AUX"}},
    "fr": {"et": {"CCONJ"}, "mais": {"CCONJ"}, "ne": {"ADV"}, "n'": {"ADV"}, "pas": {"ADV"},
           "que": {"SCONJ", "PRON"}, "dans": {"ADP"}, "à": {"ADP"}, "ma": {"DET"}, "est": {"AUX"}},
    "de": {"und": {"CCONJ"}, "aber": {"CCONJ"}, "nicht": {"PART"}, "dass": {"SCONJ"}, "weil": {"SCONJ"},
           "die": {"DET"}, "meine": {"DET"}, "in": {"ADP"}, "ist": {"AUX"}},
    "ru": {"не": {"PART"}, "и": {"CCONJ"}, "но": {"CCONJ"}, "в": {"ADP"}, "на": {"ADP"},
           "что": {"SCONJ", "PRON"}, "был": {"AUX"}, "моя": {"DET"}},
    "ar": {"في": {"ADP"}, "على": {"ADP"}, "إلى": {"ADP"}, "و": {"CCONJ"}, "لا": {"PART"}, "لم": {"PART"},
           "أن": {"SCONJ"}, "هل": {"PART"}, "كان": {"AUX"}},
    "hi": {"में": {"ADP"}, "का": {"ADP"}, "की": {"ADP"}, "के": {"ADP"}, "को": {"ADP"}, "ने": {"ADP"},
           "से": {"ADP"}, "पर": {"ADP"}, "नहीं": {"PART"}, "कि": {"SCONJ"}, "है": {"AUX", "VERB"},
           "हैं": {"AUX", "VERB"}, "था": {"AUX"}},
    "zh": {"的": {"PART"}, "了": {"AUX", "PART"}, "是": {"AUX"}, "吗": {"PART"}, "和": {"CCONJ"},
           "不": {"ADV"}, "个": {"NOUN"}, "很": {"ADV"}, "我": {"PRON"}},
}


def _load_build():
    spec = importlib.util.spec_from_file_location("_alignfreeze_fixture_build", FIXTURES / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build():
    return _load_build()


@pytest.fixture(scope="module")
def corpus():
    return {lang: list(read_conllu(FIXTURES / f"{lang}_afdemo-ud-test.conllu")) for lang in LANGS}


@pytest.fixture(scope="module")
def train():
    return list(read_conllu(FIXTURES / "en_afdemo-ud-train.conllu"))


def _fixture_files():
    return sorted(FIXTURES.glob("*.conllu"))


# ----------------------------------------------------------------------------- build


def test_committed_files_are_what_the_source_gives(build):
    files = build.outputs()
    assert len(files) == 19
    for name, content in files.items():
        assert (FIXTURES / name).read_text(encoding="utf-8") == content, f"{name}: run python core/fixtures/build.py"
    assert build.main(["--check"]) == 0
    # nothing else in the folder looks like a fixture the source does not make
    made = set(files)
    assert {p.name for p in _fixture_files()} <= made
    assert {p.name for p in FIXTURES.glob("en-*.txt")} <= made


@pytest.mark.parametrize("line, message", [
    ("en The/DET cat/NOUN sleeps/VERB ./PUNCT", "0 words marked '!'"),
    ("en The/DET cat/NOUN! sleeps/VERB! ./PUNCT", "2 words marked '!'"),
    ("en The/DET cat/NOM sleeps/VERB! ./PUNCT", "NOM is not a UD UPOS tag"),
    ("en The/DET cat/NOUN is/AUX sleeping/VERB! ./PUNCT", "an AUX needs its lemma"),
    ("en The cat/NOUN sleeps/VERB! ./PUNCT", "expected FORM/UPOS"),
    ("en The/DET cat/NOUN sleeps/VERB! zum=zu/ADP ./PUNCT", "expected SURFACE=W1+W2"),
])
def test_source_errors_name_the_line(build, tmp_path, line, message):
    src = tmp_path / "s.txt"
    src.write_text(f"# a comment\n@ s1\n{line}\n", encoding="utf-8")
    with pytest.raises(build.SourceError, match=re.escape(f"{src}:3: ") + ".*" + re.escape(message)):
        build.read_source(src, ("en",))


def test_source_errors_on_blocks_and_dictionary_marks(build, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text("@ s1\nen The/DET cat/NOUN! ./PUNCT\n", encoding="utf-8")
    with pytest.raises(build.SourceError, match=r"s\.txt:1: s1: no line for fr"):
        build.read_source(src, ("en", "fr"))
    src.write_text("@ s1\nen A/DET cat/NOUN! ./PUNCT\n@ s1\nen A/DET dog/NOUN! ./PUNCT\n", encoding="utf-8")
    with pytest.raises(build.SourceError, match=r":3: sentence id 's1'"):
        build.read_source(src, ("en",))
    src.write_text("@ s1\nen A/DET cat/NOUN! ./PUNCT\nfr Un/DET chien/NOUN!@dog ./PUNCT\n", encoding="utf-8")
    blocks = build.read_source(src, ("en", "fr"))
    with pytest.raises(build.SourceError, match=r"'@dog' on 'chien' is not a word of the English sentence"):
        build.dictionary(blocks, "fr", src)
    src.write_text("@ s1\nfr Il/PRON va/VERB! au=à/ADP@to+le/DET parc/NOUN ./PUNCT\n", encoding="utf-8")
    with pytest.raises(build.SourceError, match="inside a multiword token cannot carry '@english'"):
        build.read_source(src, ("fr",))


def test_spacing_rules(build, tmp_path):
    src = tmp_path / "s.txt"
    src.write_text(
        "@ s1\n"
        "en I/PRON do/AUX/do n't/PART know/VERB! Anna/PROPN 's/PART cat/NOUN ,/PUNCT ok/ADJ ?/PUNCT\n"
        "fr Où/PRON! est/AUX/être l'/DET hôtel/NOUN ?/PUNCT\n"
        "zh 你/PRON 好/ADJ! 吗/PART ？/PUNCT\n"
        "de Ich/PRON sehe/VERB! ~X/NOUN im=in/ADP+dem/DET Haus/NOUN ./PUNCT\n",
        encoding="utf-8")
    (b,) = build.read_source(src, ("en", "fr", "zh", "de"))
    assert build.text_of(b["en"]) == "I don't know Anna's cat, ok?"
    assert build.text_of(b["fr"]) == "Où est l'hôtel ?"  # French: a space before ? ! ; :
    assert build.text_of(b["zh"]) == "你好吗？"
    assert build.text_of(b["de"]) == "Ich seheX im Haus."
    conllu = build.to_conllu([b["de"]])
    assert "4-5\tim\t_\t_\t_\t_\t_\t_\t_\t_\n4\tin\t_\tADP\t_\t_\t2\tdep\t_\t_\n" in conllu
    assert "\n7\t.\t_\tPUNCT\t_\t_\t2\tpunct\t_\t_\n" in conllu and "\n2\tsehe\t_\tVERB\t_\t_\t0\troot\t_\tSpaceAfter=No\n" in conllu


# ----------------------------------------------------------------------------- the files


def test_every_fixture_reads_and_the_corpus_is_parallel(corpus, train):
    ids = [s.sent_id for s in corpus["en"]]
    assert len(ids) == 100 and len(set(ids)) == 100
    for lang in LANGS:
        assert [s.sent_id for s in corpus[lang]] == ids, lang
    for f in _fixture_files():
        assert list(read_conllu(f)), f  # every file reads with the strict reader
    assert len(train) == 150 and len({s.sent_id for s in train}) == 150
    assert not {s.sent_id for s in train} & set(ids)
    # the training sentences are not the evaluation sentences
    assert not {s.text.lower() for s in train} & {s.text.lower() for s in corpus["en"]}
    for s in corpus["en"] + train:  # everyday sentences of 5-15 words
        assert 5 <= sum(w.upos != "PUNCT" for w in s.words) <= 15, s.text


def test_unit_subset_is_the_first_sentences_of_the_corpus(corpus, build):
    for lang in ("en", "fr", "de"):
        unit = list(read_conllu(FIXTURES / f"{lang}_demo-ud-test.conllu"))
        assert len(unit) == build.UNIT_SENTENCES == 12
        for u, c in zip(unit, corpus[lang]):
            assert (u.sent_id, u.text, u.tokens, u.forms, u.upos) == (c.sent_id, c.text, c.tokens, c.forms, c.upos)
    assert any(len(s.tokens) < len(s.words) for s in corpus["fr"][:12])  # French MWT (au = à le)


def test_multiword_tokens_where_ud_has_them(corpus):
    mwt = {lang: {s.tokens[s.word_to_token[k]] for s in corpus[lang] for k in range(len(s.words))
                  if s.word_to_token.count(s.word_to_token[k]) > 1} for lang in LANGS}
    assert {"au", "du", "des", "aux"} <= mwt["fr"]
    assert {"im", "zum", "zur", "vom", "ans"} <= {t.lower() for t in mwt["de"]}
    assert len(mwt["ar"]) >= 20  # clitics split as UD Arabic-PADT does (و، ب، ل، pronoun suffixes)
    assert not (mwt["en"] or mwt["ru"] or mwt["hi"] or mwt["zh"])


@pytest.fixture(scope="module")
def ud_validator():
    try:
        from udtools import Validator
    except ImportError:
        pytest.skip("udtools (udvalidate) not installed: pip install 'alignfreeze[dev]'")

    def passes(path, lang, level):
        return Validator(lang=lang, level=level, output=None).validate_files([str(path)]).passed()

    return passes


@pytest.mark.parametrize("name", [p.name for p in sorted(FIXTURES.glob("*.conllu"))])
def test_udvalidate_accepts_every_file(ud_validator, name):
    """``udvalidate --level 2`` (universal), and level 5 for the file's language: the
    language's registered auxiliaries (every AUX lemma) and the rest of levels 3-5."""
    path = FIXTURES / name
    assert ud_validator(path, "ud", 2)
    assert ud_validator(path, name.split("_", 1)[0], 5)


def test_udvalidate_catches_an_auxiliary_that_is_not_one(ud_validator, tmp_path):
    text = (FIXTURES / "fr_afdemo-ud-test.conllu").read_text(encoding="utf-8")
    bad = tmp_path / "fr_bad-ud-test.conllu"
    bad.write_text(text.replace("\tavoir\tAUX\t", "\tpouvoir\tAUX\t", 1), encoding="utf-8")
    assert ud_validator(bad, "fr", 2) and not ud_validator(bad, "fr", 5)


# ----------------------------------------------------------------------------- the tags


def test_upos_histogram_covers_the_common_tags(corpus, train):
    for lang in LANGS:
        hist = Counter(t for s in corpus[lang] for t in s.upos)
        assert set(hist) <= set(UPOS_TAGS)
        want = COMMON - ({"PART"} if lang in NO_PART else set())
        assert want <= set(hist), (lang, want - set(hist))
        assert 700 <= sum(hist.values()) <= 1100, lang
        assert hist["NOUN"] > hist["VERB"] > hist["NUM"], lang
    assert COMMON | {"INTJ"} <= {t for s in train for t in s.upos}


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return "CJK" if name.startswith("CJK") else name.split()[0]


def test_tag_sanity_rules(corpus, train):
    for lang in LANGS:
        for s in corpus[lang] + (train if lang == "en" else []):
            root = [w for w in s.words if w.head == 0]
            assert len(root) == 1 and root[0].upos not in {"PUNCT", "ADP", "DET", "AUX", "CCONJ", "PART"}, s.sent_id
            for w in s.words:
                punct = all(unicodedata.category(c).startswith("P") for c in w.form)
                assert punct == (w.upos == "PUNCT"), (lang, s.sent_id, w.form, w.upos)
                if w.form.isdigit():
                    assert w.upos == "NUM", (lang, s.sent_id, w.form)
                if w.upos == "AUX":
                    assert w.lemma != "_", (lang, s.sent_id, w.form)
                allowed = ANCHORS[lang].get(w.form.lower())
                assert allowed is None or w.upos in allowed, (lang, s.sent_id, w.form, w.upos, allowed)
                letters = {_script(c) for c in w.form if c.isalpha()}
                assert letters <= {SCRIPT[lang]}, (lang, s.sent_id, w.form, letters)
    for lang, anchors in ANCHORS.items():  # the anchors are really there
        forms = {w.form.lower() for s in corpus[lang] for w in s.words}
        assert len(set(anchors) & forms) >= len(anchors) - 1, lang


def test_chinese_is_written_without_spaces(corpus):
    for s in corpus["zh"]:
        assert " " not in s.text and s.space_after[:-1] == [False] * (len(s.tokens) - 1)
        assert s.text == "".join(s.tokens)
    assert all(" " in s.text for lang in TARGETS if lang != "zh" for s in corpus[lang])


# ----------------------------------------------------------------------------- dictionaries


@pytest.mark.parametrize("lang", TARGETS)
def test_dictionaries_link_every_sentence_pair(corpus, lang):
    d = read_dictionary(FIXTURES / f"en-{lang}.afdemo.txt")
    lines = (FIXTURES / f"en-{lang}.afdemo.txt").read_text(encoding="utf-8").splitlines()
    assert all(line == line.lower() and len(line.split(" ")) == 2 for line in lines)
    assert len(lines) >= 200
    en_words = {t.lower() for s in corpus["en"] for t in s.tokens}
    xx_words = {t.lower() for s in corpus[lang] for t in s.tokens}
    for src, tgts in d.items():  # every entry's words occur in the corpus
        assert src in en_words and tgts <= xx_words, (src, tgts)
    pairs = read_parallel(FIXTURES / "en_afdemo-ud-test.conllu", FIXTURES / f"{lang}_afdemo-ud-test.conllu")
    records, summary = extract_pairs(pairs, "dictionary", dictionary=FIXTURES / f"en-{lang}.afdemo.txt",
                                     progress=False)
    assert summary["pairs_kept"] == summary["sentence_pairs"] == 100
    assert summary["links_per_sentence"] >= 3.5
    assert min(len(r["links"]) for r in records) >= 1
    row = f"| {lang} | {len(lines)} | {summary['links']} | {summary['links_per_sentence']:.1f} |"
    assert row in _readme(), f"core/fixtures/README.md: dictionary row {row!r} is out of date"


def test_unit_dictionaries_are_the_subsets_the_tests_expect():
    for lang, n in (("fr", 49), ("de", 33)):
        d = read_dictionary(FIXTURES / f"en-{lang}.txt")
        full = read_dictionary(FIXTURES / f"en-{lang}.afdemo.txt")
        assert sum(len(v) for v in d.values()) == n
        assert all(v <= full[k] for k, v in d.items())
    assert read_dictionary(FIXTURES / "en-fr.txt")["the"] == {"le", "la", "les"}


def _readme() -> str:
    return re.sub(r" +", " ", (FIXTURES / "README.md").read_text(encoding="utf-8"))


def test_readme_tables_are_the_corpus(corpus, train):
    """The sizes, intervals and UPOS counts that core/fixtures/README.md states."""
    readme = _readme()
    cols = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
            "PUNCT", "SCONJ", "VERB")
    for name, sents in [*corpus.items(), ("en train", train)]:
        hist = Counter(t for s in sents for t in s.upos)
        words = sum(hist.values())
        width = f" {200 * 1.96 * (0.16 / words) ** 0.5:.1f} " if name != "en train" else " "
        size = f"| {name} | {len(sents)} | {words} | {sum(len(s.tokens) for s in sents)} | {words - hist['PUNCT']} |"
        assert size in readme and (name == "en train" or size + width in readme), size
        upos = re.sub(" +", " ", "| " + name + " | " + " | ".join(str(hist[c] or "") for c in cols) + " |")
        assert upos in readme, upos


# ----------------------------------------------------------------------------- tiny models


def test_tiny_tokenizers_train_on_the_fixed_latin_subset():
    from core.tiny import TINY_TEXT_FILES, fixture_texts

    texts = fixture_texts()
    assert len(texts) == 36 and TINY_TEXT_FILES == tuple(f"{x}_demo-ud-test.conllu" for x in ("de", "en", "fr"))
    assert texts[0] == "Die Katze schläft auf dem warmen Stuhl ."
    letters = {_script(c) for t in texts for c in t if c.isalpha()}
    assert letters == {"LATIN"}
