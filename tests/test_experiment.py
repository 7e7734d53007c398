"""The experiment grid end to end on tiny models: results, table, resumability, failures
that do not stop the grid, the paper-style table by hand, and config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alignfreeze.cli import main
from alignfreeze.experiment import (
    ExperimentConfigError,
    format_table,
    headline_counts,
    load_experiment,
    run_experiment,
    summary_table,
)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_models):
    model, tok = tiny_models("bert")
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _config(fixtures_dir, tiny_dir, **over) -> dict:
    fx = Path(fixtures_dir)
    cfg = {
        "name": "tiny-grid",
        "out": "out",
        "models": [{"name": "tiny", "path": str(tiny_dir)}],
        "strategies": ["baseline", "full", "front", {"name": "during-front", "during": "front"},
                       {"name": "bad", "freeze": "emb,1-9"}],
        "seeds": [1, 2],
        "parallel": [
            {"src": str(fx / "en_demo-ud-test.conllu"), "tgt": str(fx / "fr_demo-ud-test.conllu"),
             "dictionary": str(fx / "en-fr.txt")},
            {"src": str(fx / "en_demo-ud-test.conllu"), "tgt": str(fx / "de_demo-ud-test.conllu"),
             "dictionary": str(fx / "en-de.txt")},
        ],
        "aligners": ["dictionary"],
        "source": [str(fx / "en_demo-ud-test.conllu")],
        "targets": [str(fx / "*_demo-ud-test.conllu")],
        "realign": {"steps": 2, "batch_size": 4, "lr": 1e-3},
        "finetune": {"steps": 3, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "during_batch_size": 4},
        "keep_models": True,
    }
    cfg.update(over)
    return cfg


def _write(tmp_path: Path, cfg, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return p


def test_grid_end_to_end_resumable_and_failures_do_not_stop_it(tmp_path, tiny_dir, fixtures_dir, capsys):
    path = _write(tmp_path, _config(fixtures_dir, tiny_dir))
    out = tmp_path / "out"
    report = run_experiment(path)
    good = {f"tiny__{a}__{s}__s{seed}" for a, s in (("-", "baseline"), ("dictionary", "full"),
                                                     ("dictionary", "front"), ("dictionary", "during-front"))
            for seed in (1, 2)}
    bad = {"tiny__dictionary__bad__s1", "tiny__dictionary__bad__s2"}
    assert set(report.ran) == good and set(report.failed) == bad and report.skipped == []
    assert all("do not exist" in msg for msg in report.failed.values())

    results = pd.read_csv(out / "results.csv")
    assert len(results) == len(good) * 3
    assert {"run", "model", "aligner", "strategy", "freeze", "seed", "lang", "task", "metric", "value",
            "n_words"} <= set(results.columns)
    assert set(results["strategy"]) == {"baseline", "full", "front", "during-front"}
    assert set(results["lang"]) == {"en", "fr", "de"} and results["value"].between(0, 1).all()
    assert set(results.loc[results["strategy"] == "front", "freeze"]) == {"front"}

    table = pd.read_csv(out / "table.csv")
    assert len(table) == 4 * 4  # strategies x (3 languages + avg), baseline shown under the aligner
    assert (table["n_seeds"] == 2).all() and table.loc[table["strategy"] == "full", "beats_full"].isna().all()
    assert set(table["treebanks"]) >= {"fr_demo-ud-test.conllu", "de_demo-ud-test.conllu"}
    assert (out / "headline.csv").is_file()
    md = (out / "table.md").read_text()
    assert "| lang | baseline | full | front | during-front |" in md and "±" in md and "| avg |" in md

    failures = json.loads((out / "failures.json").read_text())
    assert set(failures) == bad and "Traceback" in failures["tiny__dictionary__bad__s1"]["traceback"]
    # what each cell trained on: the realigned front model froze block 1, fine-tuning started from it
    cells = out / "cells"
    assert json.loads((cells / "tiny__dictionary__front__s1/realigned/manifest.json").read_text())["frozen_layers"] == [1]
    ft = json.loads((cells / "tiny__dictionary__front__s1/finetuned/manifest.json").read_text())
    assert ft["parent"]["kind"] == "realign" and ft["config"]["seed"] == 1
    during = json.loads((cells / "tiny__dictionary__during-front__s2/finetuned/manifest.json").read_text())
    assert during["during"]["dropped_layers"] == [1] and during["parent"] is None

    # re-run: finished cells are skipped (their results untouched), the bad ones fail again
    stamps = {f: f.stat().st_mtime_ns for f in cells.glob("*/results.csv")}
    assert len(stamps) == len(good)
    capsys.readouterr()
    assert main(["experiment", str(path)]) == 1
    printed = capsys.readouterr()
    assert printed.out.count("done already, skipped") == len(good)
    assert "cell tiny__dictionary__bad__s1 failed" in printed.out
    assert {f: f.stat().st_mtime_ns for f in cells.glob("*/results.csv")} == stamps

    # a half-finished cell (killed during fine-tuning) reuses its finished realignment
    half = cells / "tiny__dictionary__full__s2"
    (half / "results.csv").unlink()
    shutil.rmtree(half / "finetuned")
    realigned_stamp = (half / "realigned" / "manifest.json").stat().st_mtime_ns
    report_half = run_experiment(path)
    assert report_half.ran == ["tiny__dictionary__full__s2"]
    assert (half / "realigned" / "manifest.json").stat().st_mtime_ns == realigned_stamp
    assert (half / "finetuned" / "manifest.json").is_file()

    # fix the bad strategy: only its cells run, and the failures file empties
    cfg = _config(fixtures_dir, tiny_dir)
    cfg["strategies"][-1] = {"name": "bad", "freeze": "emb"}
    report3 = run_experiment(_write(tmp_path, cfg))
    assert set(report3.ran) == bad and set(report3.skipped) == good and not report3.failed
    assert json.loads((out / "failures.json").read_text()) == {}
    assert len(pd.read_csv(out / "results.csv")) == (len(good) + 2) * 3


def _rows(values: dict, langs=(("fr", 0.0), ("de", -0.1)), files: dict | None = None) -> pd.DataFrame:
    """Accuracy rows: ``values[strategy]`` = one value per seed; ``files[lang]`` = its treebank files."""
    rows = []
    for strat, vals in values.items():
        for seed, v in enumerate(vals, 1):
            for lang, shift in langs:
                for k, f in enumerate((files or {}).get(lang, [f"{lang}_pud-ud-test.conllu"])):
                    rows.append({"run": f"{strat}{seed}", "model": "m",
                                 "aligner": "-" if strat == "baseline" else "dict", "strategy": strat, "seed": seed,
                                 "lang": lang, "task": "upos", "metric": "accuracy", "value": v + shift + 0.02 * k,
                                 "file": f"/data/{f}"})
    return pd.DataFrame(rows)


def test_summary_table_by_hand():
    values = {"baseline": (0.70, 0.71), "full": (0.80, 0.82), "front": (0.90, 0.92), "back": (0.81, 0.83)}
    s = summary_table(_rows(values)).set_index(["strategy", "lang"])
    assert s.loc[("front", "fr"), "beats_full"] and s.loc[("front", "avg"), "beats_full"]
    assert not s.loc[("back", "fr"), "beats_full"]  # +0.01 < one std (0.0141)
    assert pd.isna(s.loc[("full", "fr"), "beats_full"])  # a strategy is not compared with itself
    assert not s.loc[("baseline", "fr"), "beats_full"] and s.loc[("baseline", "fr"), "loses_full"]
    assert s.loc[("back", "fr"), "beats_baseline"] and s.loc[("full", "fr"), "beats_baseline"]
    assert s.loc[("front", "fr"), "mean"] == pytest.approx(0.91)
    assert s.loc[("front", "fr"), "std"] == pytest.approx(0.0141421, abs=1e-6)
    assert s.loc[("front", "avg"), "mean"] == pytest.approx(0.86)  # (fr + de) / 2, per seed first
    assert s.loc[("front", "de"), "delta_vs_full"] == pytest.approx(0.10)
    assert s.loc[("front", "de"), "delta_vs_baseline"] == pytest.approx(0.205)
    assert s.loc[("front", "fr"), "treebanks"] == "fr_pud-ud-test.conllu"
    assert set(s.reset_index()["aligner"]) == {"dict"}  # the baseline joins the aligner's table
    md = format_table(s.reset_index(), ["baseline", "full", "front", "back"])
    assert "| fr | 70.5 ± 0.7 | 81.0 ± 1.4 † | **91.0 ± 1.4** † | 82.0 ± 1.4 † |" in md
    assert "| front | 2 | 0 | 2 | 0 |" in md and "| baseline | n/a | n/a | 0 | 2 |" in md


def test_two_treebanks_of_a_language_are_one_value_per_seed():
    """dev + test (or two treebanks) of one language must not count as two seeds."""
    values = {"full": (0.80, 0.84), "front": (0.90, 0.90)}
    files = {"fr": ["fr_gsd-ud-test.conllu", "fr_pud-ud-test.conllu"]}  # the second is +0.02
    s = summary_table(_rows(values, langs=(("fr", 0.0),), files=files)).set_index(["strategy", "lang"])
    assert s.loc[("full", "fr"), "n_seeds"] == 2
    assert s.loc[("full", "fr"), "mean"] == pytest.approx(0.83)  # mean of treebanks, then of seeds
    assert s.loc[("full", "fr"), "std"] == pytest.approx(np.std([0.81, 0.85], ddof=1))
    assert s.loc[("full", "fr"), "treebanks"] == "fr_gsd-ud-test.conllu+fr_pud-ud-test.conllu"
    assert s.loc[("front", "fr"), "std"] == 0.0  # identical seeds; the treebank spread is not a std
    assert s.loc[("front", "fr"), "beats_full"]  # 0.91 - 0.83 = 0.08 > std_full 0.028
    # ONE seed with two treebanks of a language: one value, not two replicates, so no std and
    # no marks (a std over the two treebanks would be 0.0141 here and 'front' would "beat" full)
    one = summary_table(_rows({"full": (0.80,), "front": (0.90,)}, langs=(("fr", 0.0),), files=files))
    one = one.set_index(["strategy", "lang"])
    assert (one["n_seeds"] == 1).all() and one["std"].isna().all()
    assert one.loc[("front", "fr"), "mean"] == pytest.approx(0.91)
    assert pd.isna(one.loc[("front", "fr"), "beats_full"]) and pd.isna(one.loc[("front", "fr"), "beats_baseline"])
    assert one.loc[("front", "fr"), "delta_vs_full"] == pytest.approx(0.10)
    md = format_table(one.reset_index(), ["full", "front"])
    assert "| fr | 81.0 ± n/a | 91.0 ± n/a |" in md and "| front | n/a | n/a | n/a | n/a |" in md
    # a seed that saw another treebank set is not mixed with the others
    extra = _rows({"full": (0.5,)}, langs=(("fr", 0.0),), files={"fr": ["fr_gsd-ud-test.conllu"]}).assign(seed=3)
    s2 = summary_table(pd.concat([_rows(values, langs=(("fr", 0.0),), files=files), extra]))
    full = s2[(s2.strategy == "full") & (s2.lang == "fr")]
    assert sorted(full["n_seeds"]) == [1, 2] and len(full) == 2


def test_headline_counts_against_baseline_and_full():
    langs = (("fr", 0.0), ("de", 0.0), ("ko", 0.0))
    rows = []
    for strat, per_lang in {"baseline": {"fr": 0.70, "de": 0.70, "ko": 0.70},
                            "full": {"fr": 0.80, "de": 0.80, "ko": 0.60},
                            "front": {"fr": 0.85, "de": 0.80, "ko": 0.71}}.items():
        for lang, v in per_lang.items():
            rows.append(_rows({strat: (v, v + 0.02)}, langs=((lang, 0.0),)))
    s = summary_table(pd.concat(rows, ignore_index=True))
    h = headline_counts(s).set_index("strategy")
    assert h.loc["front", "n_langs"] == len(langs)
    # every std is 0.0141; front: fr +0.15 and de +0.10 over the baseline, ko +0.01 (less
    # than one std); over full: fr +0.05 and ko +0.11, de 0
    assert (h.loc["front", "beats_baseline"], h.loc["front", "loses_baseline"]) == (2, 0)
    assert (h.loc["front", "beats_full"], h.loc["front", "loses_full"]) == (2, 0)
    assert (h.loc["full", "beats_baseline"], h.loc["full", "loses_baseline"]) == (2, 1)
    assert pd.isna(h.loc["full", "beats_full"]) and pd.isna(h.loc["baseline", "beats_baseline"])


def test_single_seed_std_and_marks_are_na_and_no_rows_is_empty():
    df = pd.DataFrame([{"model": "m", "aligner": "a", "strategy": s, "seed": 1, "lang": "fr", "task": "upos",
                        "metric": "accuracy", "value": v} for s, v in (("full", 0.5), ("front", 0.6))])
    s = summary_table(df).set_index(["strategy", "lang"])
    assert np.isnan(s.loc[("front", "fr"), "std"]) and pd.isna(s.loc[("front", "fr"), "beats_full"])
    assert s.loc[("front", "fr"), "delta_vs_full"] == pytest.approx(0.1)
    md = format_table(s.reset_index(), ["full", "front"])
    assert "| fr | 50.0 ± n/a | 60.0 ± n/a |" in md
    assert "| front | n/a | n/a | n/a | n/a |" in md
    assert headline_counts(s.reset_index())["beats_full"].isna().all()
    assert len(summary_table(pd.DataFrame())) == 0 and "no finished cells" in format_table(summary_table(None))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(stratgies=["full"]), r"key 'stratgies': unknown key"),
    (lambda c: c.pop("targets"), r"key 'targets': missing"),
    (lambda c: c.update(strategies=["none"]), r"key 'strategies\[0\]': 'none' is ambiguous"),
    (lambda c: c.update(strategies=["sideways"]), r"key 'strategies\[0\]': unknown strategy 'sideways'"),
    (lambda c: c.update(strategies=[{"name": "x", "freeze": "front", "during": "front"}]), r"exactly one of"),
    (lambda c: c.update(seeds=["one"]), r"key 'seeds': expected int items"),
    (lambda c: c.update(targets=["nowhere/xx_*.conllu"]), r"key 'targets': .*nowhere"),
    (lambda c: c.update(finetune={"model": "x"}), r"key 'finetune.model': is set by each cell"),
    (lambda c: c.update(realign={"stepz": 3}), r"key 'realign.stepz': unknown field"),
    (lambda c: c.update(aligners=["magic"]), r"key 'aligners\[0\].aligner': unknown aligner 'magic'"),
    (lambda c: c["parallel"][1].pop("dictionary"), r"key 'parallel\[1\].dictionary'"),
    (lambda c: c.update(keep_models="yes please"), r"key 'keep_models'"),
])
def test_bad_configs_name_the_file_and_key(tmp_path, tiny_dir, fixtures_dir, mutate, message):
    cfg = _config(fixtures_dir, tiny_dir)
    mutate(cfg)
    path = _write(tmp_path, cfg)
    with pytest.raises(ExperimentConfigError, match=message) as e:
        load_experiment(path)
    assert str(path) in str(e.value)


def test_bad_yaml_syntax_and_shape(tmp_path, capsys):
    broken = _write(tmp_path, "out: x\nmodels: [a, b\nstrategies: [full]\n", "broken.yaml")
    with pytest.raises(ExperimentConfigError, match=r"broken.yaml:\d+: invalid YAML"):
        load_experiment(broken)
    listed = _write(tmp_path, "- full\n- front\n", "list.yaml")
    with pytest.raises(ExperimentConfigError, match="expected a YAML mapping"):
        load_experiment(listed)
    assert main(["experiment", str(broken)]) == 2
    assert "invalid YAML" in capsys.readouterr().err
    assert main(["experiment", str(tmp_path / "missing.yaml")]) == 2


def test_dry_run_lists_cells_and_runs_nothing(tmp_path, tiny_dir, fixtures_dir, capsys):
    path = _write(tmp_path, _config(fixtures_dir, tiny_dir, seeds=[7]))
    exp = load_experiment(path)
    assert [c.id for c in exp.cells()] == ["tiny__-__baseline__s7", "tiny__dictionary__full__s7",
                                          "tiny__dictionary__front__s7", "tiny__dictionary__during-front__s7",
                                          "tiny__dictionary__bad__s7"]
    # the dry run validates what the run would: the bad freeze spec fails now, naming the cell
    assert main(["experiment", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: cell tiny__dictionary__bad__s7: freeze spec 'emb,1-9'" in err and "0..2" in err
    cfg = _config(fixtures_dir, tiny_dir, seeds=[7])
    cfg["strategies"] = cfg["strategies"][:-1]
    path = _write(tmp_path, cfg)
    assert main(["experiment", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("would run") == 4
    assert not (tmp_path / "out" / "cells").exists()


def test_demo_example_config_validates():
    from core import FIXTURES

    example = FIXTURES.parents[1] / "examples" / "demo_experiment.yaml"
    exp = load_experiment(example)
    assert exp.models and exp.targets and len(exp.cells()) >= 4


def test_xnli_second_task_is_skipped_offline_and_the_cell_still_finishes(tmp_path, tiny_dir, fixtures_dir,
                                                                        capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _config(fixtures_dir, tiny_dir, strategies=["baseline"], seeds=[3],
                  xnli={"train": ["en"], "langs": ["fr"], "finetune": {"steps": 1}})
    report = run_experiment(_write(tmp_path, cfg))
    assert report.ran == ["tiny__-__baseline__s3"] and not report.failed
    assert "XNLI skipped" in capsys.readouterr().err
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(results["task"]) == {"upos"} and len(results) == 3


def test_an_error_after_ctrl_c_stops_the_grid_instead_of_failing_the_cell(tmp_path, tiny_dir, fixtures_dir,
                                                                         monkeypatch):
    """A Ctrl-C inside a lazy import surfaced as ModuleNotFoundError (transformers'
    get_linear_schedule_with_warmup, seen in the interrupt test): the grid recorded a failed
    cell and went on. After a Ctrl-C, the error is the interruption."""
    import alignfreeze.experiment_cell as experiment_cell
    from alignfreeze.interrupts import SIGINT_SEEN

    calls = []

    def interrupted_import(*args, **kwargs):
        calls.append(1)
        SIGINT_SEEN.set()
        raise ModuleNotFoundError("Could not import module 'get_linear_schedule_with_warmup'")

    monkeypatch.setattr(experiment_cell, "run_cell", interrupted_import)
    cfg = _config(fixtures_dir, tiny_dir, strategies=["baseline"], seeds=[3, 4])
    try:
        with pytest.raises(ModuleNotFoundError):
            run_experiment(_write(tmp_path, cfg))
    finally:
        SIGINT_SEEN.clear()
    assert calls == [1]  # the second cell never started
    assert not (tmp_path / "out" / "failures.json").exists() or "baseline" not in (
        tmp_path / "out" / "failures.json").read_text()
