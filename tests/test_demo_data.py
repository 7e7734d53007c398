"""What the demo reads: the embedded corpus with its own dictionaries and the split, a UD
folder (PUD files, the English training treebank), --pairs and --dictionary, and the errors."""

from __future__ import annotations

import pytest

from alignfreeze.pipeline import DemoConfig
from alignfreeze.pipeline_data import resolve

ALL = ("fr", "de", "ru", "ar", "hi", "zh")


def test_embedded_corpus_is_split_and_uses_its_own_dictionaries():
    c = resolve(DemoConfig())
    assert c.langs == ["en", *ALL]
    # core/fixtures/en-fr.txt is the unit tests' 12-sentence dictionary: never the demo's
    assert {lang: p.name for lang, p in c.dictionary.items()} == {lang: f"en-{lang}.afdemo.txt" for lang in ALL}
    assert c.realign_ids == [f"demo-{i:02d}" for i in range(1, 51)]
    assert c.eval_ids == [f"demo-{i:02d}" if i < 100 else "demo-100" for i in range(51, 101)]
    for lang in c.langs:
        assert [s.sent_id for s in c.eval_sentences[lang]] == c.eval_ids
    assert len(c.train_sentences) == 150 and c.train_file.name == "en_afdemo-ud-train.conllu"
    assert all(spec["spec"] == "eval treebanks" for spec in c.parallel.values())


def test_quick_and_max_sentences_take_the_first_parallel_sentences():
    c = resolve(DemoConfig(quick=True, langs=("zh",)))
    assert c.realign_ids == [f"demo-{i:02d}" for i in range(1, 9)]
    assert [s.sent_id for s in c.eval_sentences["zh"]] == [f"demo-{i:02d}" for i in range(9, 17)]
    assert len(c.train_sentences) == 24
    c = resolve(DemoConfig(max_sentences=20, realign_share=0.25, langs=("ar",), max_train=40))
    assert len(c.realign_ids) == 5 and len(c.eval_sentences["ar"]) == 15
    assert [s.sent_id for s in c.train_sentences] == [f"train-{i:03d}" for i in range(1, 41)]


def test_explicit_pairs_measure_every_sentence(tmp_path):
    src, tgt = tmp_path / "en.txt", tmp_path / "fr.txt"
    src.write_text("The cat sleeps .\nI read a book .\n", encoding="utf-8")
    tgt.write_text("Le chat dort .\nJe lis un livre .\n", encoding="utf-8")
    c = resolve(DemoConfig(langs=("fr",), pairs=(f"fr={src},{tgt}",)))
    assert c.realign_ids == [] and len(c.eval_sentences["fr"]) == 100
    assert c.parallel["fr"] == {"spec": f"{src},{tgt}", "src": str(src), "tgt": str(tgt), "files": [str(src), str(tgt)]}
    assert src in c.files() or str(src) in map(str, c.files())
    hf = resolve(DemoConfig(langs=("fr",), pairs=("fr=hf:Helsinki-NLP/opus-100:en-fr",)))
    assert hf.parallel["fr"]["src"] == "hf:Helsinki-NLP/opus-100:en-fr" and hf.parallel["fr"]["files"] == []


@pytest.mark.parametrize(("over", "message"), [
    ({"langs": ("en", "fr")}, "English is always measured"),
    ({"langs": ("fr", "fr")}, "expected distinct language codes"),
    ({"langs": ("fr", "sw")}, "--langs sw: the embedded corpus has"),
    ({"pairs": ("de=x.tsv",), "langs": ("fr",)}, "'de' is not among --langs"),
    ({"pairs": ("fr=/nope/a.txt,/nope/b.txt",), "langs": ("fr",)}, "/nope/a.txt: no such parallel file"),
    ({"dictionary": ("fr=/nope.txt",), "langs": ("fr",)}, "/nope.txt: no such dictionary file"),
    ({"realign_share": 1.0}, "--realign-share 1.0"),
    ({"max_sentences": 3}, "cannot be split"),
    ({"ud_dir": "/nope"}, "/nope: no such folder"),
])
def test_bad_options(over, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(").replace(".", r"\.")):
        resolve(DemoConfig(**over))


def test_ud_folder_picks_pud_and_needs_dictionaries(ud_dir, muse_dir):
    with pytest.raises(ValueError, match="no dictionary for en-fr"):
        resolve(DemoConfig(ud_dir=str(ud_dir), langs=("fr",), train_treebank=str(ud_dir / "en_ewt-ud-dev.conllu")))
    c = resolve(DemoConfig(ud_dir=str(ud_dir), langs=("fr", "zh"), dictionary=(str(muse_dir),), max_sentences=40))
    assert c.eval_files["en"].name == "en_pud-ud-test.conllu" and c.eval_files["zh"].name == "zh_pud-ud-test.conllu"
    assert c.train_file.name == "en_ewt-ud-dev.conllu"  # no train split in the folder: dev
    assert c.dictionary["fr"].name == "en-fr.txt"
    assert len(c.realign_ids) == 20 and len(c.eval_sentences["zh"]) == 20
    assert {s.sent_id for s in c.eval_sentences["fr"]} == {s.sent_id for s in c.eval_sentences["en"]}
