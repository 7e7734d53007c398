"""Names that survive (core.names): display names of models from NAME=PATH, manifests or
folders; language codes of parallel data from the data, never 'src'/'tgt'."""

from __future__ import annotations

import pytest

from core.manifest import write_manifest
from core.names import (
    LanguageUnknown,
    default_name,
    file_lang,
    named_models,
    pair_lang,
    parallel_langs,
    split_named,
)


def _ckpt(path, manifest):
    path.mkdir(parents=True)
    write_manifest(path, manifest)
    return str(path)


def test_names_come_from_the_manifest_then_the_folder(tmp_path):
    full = _ckpt(tmp_path / "a" / "realigned", {"kind": "realign", "config": {"freeze": "none", "seed": 42}, "seed": 42})
    front = _ckpt(tmp_path / "b" / "realigned", {"kind": "realign", "config": {"freeze": "front", "seed": 7}, "seed": 7})
    named = _ckpt(tmp_path / "c" / "realigned", {"kind": "realign", "name": "cell-x", "config": {"freeze": "back"}})
    assert default_name(full) == "full-s42" and default_name(front) == "front-s7" and default_name(named) == "cell-x"
    tuned = _ckpt(tmp_path / "d", {"kind": "finetune", "task": "upos", "parent": {"path": front, "kind": "realign"},
                                   "base_model": {"name": front}, "config": {"seed": 1}})
    assert default_name(tuned) == "front-s7+upos"
    # a parent recorded by name survives its folder's deletion (the grid deletes checkpoints)
    gone = _ckpt(tmp_path / "e", {"kind": "finetune", "task": "upos",
                                  "parent": {"path": str(tmp_path / "nope"), "name": "back-s3"}, "config": {}})
    assert default_name(gone) == "back-s3+upos"
    base_tuned = _ckpt(tmp_path / "f", {"kind": "finetune", "task": "upos", "parent": None,
                                        "base_model": {"name": "e5-small"}, "config": {}})
    assert default_name(base_tuned) == "e5-small+upos"
    plain = tmp_path / "plain_model"
    plain.mkdir()
    assert default_name(str(plain) + "/") == "plain_model"
    assert default_name("FacebookAI/xlm-roberta-base") == "FacebookAI/xlm-roberta-base"  # a hub name is a name
    assert default_name("e5-small") == "e5-small"


def test_named_models_take_names_and_refuse_two_equal_ones(tmp_path):
    a = _ckpt(tmp_path / "a" / "realigned", {"kind": "realign", "config": {"freeze": "none"}, "seed": 1})
    b = _ckpt(tmp_path / "b" / "realigned", {"kind": "realign", "config": {"freeze": "none"}, "seed": 1})
    assert named_models([f"full={a}", f"other={b}"]) == [("full", a), ("other", b)]
    with pytest.raises(ValueError, match=r"two models are named 'full-s1'.*NAME=PATH"):
        named_models([a, b])
    assert named_models([a, b], names=["x", "y"]) == [("x", a), ("y", b)]
    with pytest.raises(ValueError, match="one name per model"):
        named_models([a, b], names=["x"])
    plain = [tmp_path / "p" / "realigned", tmp_path / "q" / "realigned"]
    for p in plain:
        p.mkdir(parents=True)
    with pytest.raises(ValueError, match="two models are named 'realigned'"):
        named_models(map(str, plain))


def test_split_named_refuses_bad_names_and_ambiguous_folders(tmp_path):
    assert split_named("runs/a") == (None, "runs/a")
    assert split_named("full=runs/a") == ("full", "runs/a")
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        split_named("my model=runs/a")
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        split_named("full=")
    odd = tmp_path / "x=y"
    odd.mkdir()
    assert split_named(str(odd)) == (None, str(odd))  # only one reading: 'y' does not exist
    (tmp_path / "y").mkdir()
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ValueError, match="ambiguous"):
            split_named("x=y")
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name, lang", [
    ("fr_pud-ud-test.conllu", "fr"), ("qhe_hiencs-ud-test.conllu", "qhe"), ("europarl.en-fr.fr", "fr"),
    ("corpus.de.txt", "de"), ("de.txt", "de"), ("zh_news.txt", "zh"), ("src.txt", None), ("train.tsv", None),
    ("en-fr.txt", None), ("data.txt", None),
])
def test_file_lang(name, lang):
    assert file_lang(f"some/dir/{name}") == lang


def test_parallel_langs_from_files_records_or_options(tmp_path):
    assert parallel_langs("a/en_pud-ud-test.conllu", "b/fr_pud-ud-test.conllu") == ("en", "fr")
    assert parallel_langs("muse.en-de.tsv") == ("en", "de")
    assert parallel_langs("hf:Helsinki-NLP/opus-100:en-fr") == ("en", "fr")
    assert pair_lang("00_en_pud-ud-test__fr_pud-ud-test.jsonl") is None  # 'ud-te' is no pair
    assert pair_lang("run_zz-qq.jsonl") is None  # not ISO 639-1 codes
    recs = [{"src_lang": "en", "tgt_lang": "zh"}] * 3
    assert parallel_langs("pairs.jsonl", records=recs) == ("en", "zh")
    with pytest.raises(LanguageUnknown, match="several language pairs"):
        parallel_langs("pairs.jsonl", records=recs + [{"src_lang": "en", "tgt_lang": "de"}])
    with pytest.raises(LanguageUnknown, match=r"src\.txt: the name does not say its language.*--langs SRC TGT"):
        parallel_langs("src.txt", "tgt.txt")
    with pytest.raises(LanguageUnknown, match="does not say its two languages"):
        parallel_langs("pairs.jsonl", records=[{}])
    assert parallel_langs("src.txt", "tgt.txt", given=["en", "fr"]) == ("en", "fr")


def test_one_model_given_twice_keeps_its_name(tmp_path):
    a = _ckpt(tmp_path / "a", {"kind": "realign", "config": {"freeze": "back"}, "seed": 2})
    assert named_models([a, a]) == [("back-s2", a), ("back-s2", a)]
