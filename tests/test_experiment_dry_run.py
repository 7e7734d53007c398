"""``alignfreeze experiment --dry-run`` rejects exactly what the run rejects (issue 13: a freeze
spec the run refused passed the dry run), and reads every input as the run does."""

from __future__ import annotations

import json

import pytest

from alignfreeze.cli import main
from alignfreeze.experiment import ExperimentConfigError, load_experiment, run_experiment
from alignfreeze.experiment_check import _check_cell, check_experiment


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_models):
    model, tok = tiny_models("bert")
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _grid(tmp_path, tiny_dir, fixtures_dir, **over):
    fx = fixtures_dir
    cfg = {
        "name": "dry", "out": "out", "models": [{"name": "tiny", "path": str(tiny_dir)}],
        "strategies": ["front",
                       {"name": "range", "freeze": "emb,1-9"},  # no layers 3..9: L = 2
                       {"name": "all", "freeze": "0-2"},  # nothing at or below the realigned layer learns
                       {"name": "during-ok", "during": "emb"},
                       {"name": "during-range", "during": "4"}],
        "seeds": [1],
        "parallel": [{"src": str(fx / "en_demo-ud-test.conllu"), "tgt": str(fx / "fr_demo-ud-test.conllu"),
                      "dictionary": str(fx / "en-fr.txt")}],
        "aligners": ["dictionary"],
        "source": [str(fx / "en_demo-ud-test.conllu")], "targets": [str(fx / "fr_demo-ud-test.conllu")],
        "realign": {"steps": 1, "batch_size": 4}, "finetune": {"steps": 1, "batch_size": 4, "during_batch_size": 4},
    }
    cfg.update(over)
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_dry_run_rejects_the_cells_the_run_rejects(tmp_path, tiny_dir, fixtures_dir):
    exp = load_experiment(_grid(tmp_path, tiny_dir, fixtures_dir))
    dry = set()
    for cell in exp.cells():
        try:
            _check_cell(exp, cell)
        except ValueError:
            dry.add(cell.id)
    report = run_experiment(exp)
    assert dry == set(report.failed) == {"tiny__dictionary__range__s1", "tiny__dictionary__all__s1",
                                         "tiny__dictionary__during-range__s1"}
    assert set(report.ran) == {c.id for c in exp.cells()} - dry


def test_dry_run_cli_names_every_bad_cell_and_writes_nothing(tmp_path, tiny_dir, fixtures_dir, capsys):
    path = _grid(tmp_path, tiny_dir, fixtures_dir)
    assert main(["experiment", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"alignfreeze: error: {path}: cell tiny__dictionary__range__s1: freeze spec 'emb,1-9'")
    assert err.endswith("(and 2 more cell(s) fail: tiny__dictionary__all__s1, tiny__dictionary__during-range__s1)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("over, message", [
    ({"realign": {"steps": 1, "layers": "7"}}, r"cell tiny__dictionary__front__s1: .*7"),
    ({"finetune": {"batch_size": 3, "grad_accumulation": 2}}, r"batch_size 3 is not divisible by grad_accumulation"),
    ({"strategies": ["baseline"], "targets": ["{bad}"]}, r"{bad}:1: "),
    ({"strategies": ["front"], "parallel": [{"src": "{bad}", "tgt": "{bad}", "dictionary": "{dict}"}]},
     r"{bad}:1: "),
])
def test_dry_run_reads_and_resolves_what_the_run_would(tmp_path, tiny_dir, fixtures_dir, over, message):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tThe\tthe\tDETERMINER\t_\t_\t0\troot\t_\t_\n\n")
    text = json.dumps(over).replace("{bad}", str(bad)).replace("{dict}", str(fixtures_dir / "en-fr.txt"))
    exp = load_experiment(_grid(tmp_path, tiny_dir, fixtures_dir, **json.loads(text)))
    with pytest.raises(ExperimentConfigError, match=message.replace("{bad}", str(bad))):
        check_experiment(exp)
