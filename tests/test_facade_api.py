"""The facade itself: ``import alignfreeze`` is cheap, ``dir(af)`` shows every verb, every
name resolves to a documented object, and bad arguments are clear errors before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

import alignfreeze as af

VERBS = {"features", "drift", "cka", "align_eval", "probe", "layer_scan", "choose_layer", "word_pairs", "realign",
         "read_table", "load_tables", "load_manifests", "checkpoints", "plot", "load_model", "tiny_model",
         "treebanks", "dictionaries", "run_demo", "load_experiment", "run_experiment", "main"}


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_is_cheap_until_a_verb_runs():
    mods = _modules_after("import alignfreeze as af\naf.drift, af.plot, af.checkpoints, af.layer_scan, af.realign")
    heavy = {"torch", "transformers", "pandas", "matplotlib", "numpy"} & mods
    assert not heavy, f"import alignfreeze (and looking verbs up) imported {heavy}"
    assert "alignfreeze.api" in mods  # the lookup did import the facade's modules: they are light
    assert "numpy" in _modules_after("import alignfreeze as af\nimport numpy")  # the check sees an import


def test_dir_lists_every_verb_and_each_is_documented():
    names = set(dir(af))
    assert VERBS <= names, VERBS - names
    assert not {n for n in names if n.startswith("_") and n != "__version__"}
    assert {"annotations", "importlib", "api", "cli"}.isdisjoint(names)  # no implementation details
    for name in VERBS - {"main"} | {"Features"}:  # main is the CLI's own entry point
        obj = getattr(af, name)
        assert callable(obj) and obj.__doc__ and len(obj.__doc__) > 40, name
    assert set(af.STRATEGIES) == {"baseline", "full", "front", "back"} and af.STRATEGIES["full"] == "none"
    with pytest.raises(AttributeError, match="no attribute 'drfit'"):
        af.drfit  # noqa: B018


def test_model_arguments_are_checked(tiny_models):
    from alignfreeze.api_models import named_models

    pair = tiny_models("bert")
    with pytest.raises(TypeError, match="loaded \\(model, tokenizer\\) pair; got Bert"):
        named_models(pair[0])
    with pytest.raises(TypeError, match=r"models\['x'\]: expected a model name"):
        named_models({"x": 3})
    with pytest.raises(ValueError, match="both be shown as 'a/pert'; give display names"):
        named_models(["a/pert", "a/pert"])
    # two folders of the same name: refused, as the CLI refuses them (name them with a dict)
    with pytest.raises(ValueError, match="both be shown as 'full'; give display names"):
        named_models(["a/full", "b/full"], label=lambda s: s.split("/")[-1])
    with pytest.raises(ValueError, match="no model given"):
        named_models([])
    with pytest.raises(ValueError, match="display names must be non-empty strings"):
        named_models({"": "x"})
    assert named_models(pair)[0].name == "model"  # an unnamed random model
    assert named_models(af.tiny_model())[0].name == "tiny-random-bert"
    assert [m.name for m in named_models({"b": "x", "a": "y"})] == ["b", "a"]  # the order given


def test_verbs_refuse_bad_calls_before_loading(tmp_path, fixtures_dir):
    en = fixtures_dir / "en_demo-ud-test.conllu"
    missing = "org/no-such-model"  # a hub name, never loaded: every error below comes first
    with pytest.raises(FileNotFoundError, match="typo: no such local folder"):
        af.cka(str(tmp_path / "typo"), en)
    with pytest.raises(ValueError, match="expected A, or A and B"):
        af.cka([missing, missing + "2", missing + "3"], en)
    with pytest.raises(ValueError, match="give both src and tgt"):
        af.align_eval(missing, src=en)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        af.align_eval(missing)
    with pytest.raises(FileNotFoundError, match="no such file, folder or glob"):
        af.drift(missing, [missing], tmp_path / "absent.conllu")
    with pytest.raises(ValueError, match="expected one model, got 2"):
        af.features([missing, missing + "2"], en)
    with pytest.raises(ValueError, match="freeze=None is the baseline arm"):
        af.realign(missing, "p.jsonl", out=tmp_path / "r", freeze=af.STRATEGIES["baseline"])
    with pytest.raises(ValueError, match="unknown field"):
        af.realign(missing, "p.jsonl", out=tmp_path / "r", no_such_option=1)
    with pytest.raises(ValueError, match="give model= .* or n_layers="):
        af.choose_layer([{"layer": 1, "metric": "retrieval_mean", "value": 0.5}])
    with pytest.raises(ValueError, match="holds 2 models"):
        af.choose_layer([{"model": "a", "layer": 1, "metric": "retrieval_mean", "value": 0.5},
                         {"model": "b", "layer": 1, "metric": "retrieval_mean", "value": 0.5}], n_layers=2)
    with pytest.raises(ValueError, match="dictionary aligner needs dictionary="):
        af.word_pairs(en, fixtures_dir / "fr_demo-ud-test.conllu", out=tmp_path / "p.jsonl")


def test_treebanks_and_dictionaries_of_the_demo_corpus_and_of_a_ud_folder(tmp_path):
    tb = af.treebanks(["en", "zh"])
    assert [p.name for p in tb.values()] == ["en_afdemo-ud-test.conllu", "zh_afdemo-ud-test.conllu"]
    assert af.treebanks("en", split="train")["en"].name == "en_afdemo-ud-train.conllu"
    assert af.dictionaries(["fr"])["fr"].name == "en-fr.afdemo.txt"
    with pytest.raises(FileNotFoundError, match="no treebank ko_afdemo-ud-test.conllu for language 'ko'"):
        af.treebanks(["en", "ko"])
    ud = tmp_path / "ud"
    (ud / "UD_English-EWT").mkdir(parents=True)
    (ud / "UD_English-PUD").mkdir()
    for f in ("UD_English-EWT/en_ewt-ud-test.conllu", "UD_English-PUD/en_pud-ud-test.conllu"):
        (ud / f).write_text("")
    with pytest.raises(ValueError, match="2 test treebanks for 'en' .*name='pud'"):
        af.treebanks("en", ud)
    assert af.treebanks("en", ud, name="pud")["en"].name == "en_pud-ud-test.conllu"
    with pytest.raises(FileNotFoundError, match="en-de.txt: no such dictionary"):
        af.dictionaries("de", tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        af.treebanks("en", tmp_path / "absent")
