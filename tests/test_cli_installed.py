"""The INSTALLED ``alignfreeze`` console script, run as a user runs it (a subprocess), for
every sub-command on tiny inputs; the parser imports nothing heavy; the scripts folder
(``sys.path[0]`` of a console script) shadows no package (issue 10.3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from clitools import (
    COMMANDS,
    ENV,
    case_inputs,
    installed,
    leaf_commands,
    one_error,
    run,
    write_tiny_inputs,
)


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory):
    return write_tiny_inputs(tmp_path_factory)


def test_every_subcommand_has_a_case():
    """A sub-command added to the CLI must get a case in tests/clitools.py (and so these tests)."""
    assert sorted(leaf_commands()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_installed_subcommand_runs(name, tiny_inputs, tmp_path):
    case = COMMANDS[name]
    case.skip_if_unavailable()
    p = case_inputs(tiny_inputs, tmp_path, case)
    proc = run(case.argv(p), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    case.check(tmp_path / case.out if case.out else None, proc)


def test_help_of_every_subcommand_imports_nothing_heavy():
    """``--help`` of the installed script, for the program and every sub-command: exit 0, a
    usage line, and (PYTHONPROFILEIMPORTTIME lists every import) no torch, transformers, pandas."""
    env = {**ENV, "PYTHONPROFILEIMPORTTIME": "1"}
    for name in ["", *leaf_commands()]:
        proc = run([*name.split(), "--help"], env=env)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: alignfreeze"), (name, proc.stderr[-2000:])
        imported = {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in proc.stderr.splitlines()
                    if ln.startswith("import time:")}
        assert "alignfreeze" in imported
        assert not imported & {"torch", "transformers", "pandas", "sklearn", "matplotlib"}, (name, imported)


def test_building_the_parser_imports_neither_torch_nor_transformers():
    code = ("import sys; from alignfreeze.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'pandas'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_argument_errors_are_usage_errors_without_heavy_imports():
    env = {**ENV, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = run(["drift", "--ci-groups", "many"], env=env)
    assert proc.returncode == 2 and "invalid int value: 'many'" in proc.stderr
    assert "torch" not in {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in proc.stderr.splitlines()
                           if ln.startswith("import time:")}


SHADOWS = ("lang2vec", "core", "realign", "probing", "analysis", "yaml", "pandas")


def test_the_scripts_folder_shadows_no_package(tiny_inputs, tmp_path):
    """A console script runs with its own folder as sys.path[0]; lang2vec installs
    ``bin/lang2vec.py`` there, which shadowed the package (case 07). Here the installed script
    is copied next to modules named like the packages it imports, each failing loudly."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "alignfreeze"
    shutil.copy2(installed(), script)
    for name in SHADOWS:
        (bin_dir / f"{name}.py").write_text(f"raise SystemExit('shadowed: bin/{name}.py was imported')\n")
    proc = run(["data", "stats", tiny_inputs["en"], "--json"], script=script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[tiny_inputs["en"]]["sentences"] == 12
    proc = run(["plot", "cka", "--input", tiny_inputs["table"], "--out", tmp_path / "fig"], script=script)
    assert proc.returncode == 0, proc.stderr
    try:
        import lang2vec  # noqa: F401
    except ImportError:
        return
    proc = run(["typology", "--gains", tiny_inputs["gains"], "--reference", "en", "--features", "syntactic",
                "--out", tmp_path / "t.csv"], script=script, env={**ENV, "ALIGNFREEZE_CACHE": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    # the table of cases/07-typology-console-script/expected.txt
    row = next(ln.split() for ln in proc.stdout.splitlines() if ln.strip().startswith("syntactic"))
    assert row[:2] == ["syntactic", "3"]
    assert [round(float(x), 6) for x in row[2:]] == [-0.145127, 0.907282, -0.5, 0.666667]


def test_offline_flag_on_every_command_that_takes_a_model():
    from alignfreeze.cli import build_parser

    parser = build_parser()
    for name in leaf_commands():
        sub = parser
        for part in name.split():
            sub = next(a for a in sub._actions
                       if a.dest in ("command", "data_command", "models_command", "midalign_command")).choices[part]
        dests = {a.dest for a in sub._actions}
        opts = {o for a in sub._actions for o in a.option_strings}
        if dests & {"model", "base"} or name == "experiment":
            assert "--offline" in opts, name
        if "out" in dests:
            assert "--overwrite" in opts, name


def test_offline_flag_switches_the_hub_off(tiny_inputs, tmp_path):
    """--offline with a hub name that is not cached: one line, saying so and what to pass instead."""
    env = {k: v for k, v in ENV.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    proc = run(["cka", "--model", "some-org/not-cached", "--treebank", tiny_inputs["en"], "--out", tmp_path / "c.csv",
                "--offline"], env=env)
    assert proc.returncode == 2
    assert one_error(proc) == (
        "alignfreeze: error: some-org/not-cached: not a local folder and not in the local HF cache, and offline "
        "mode is on (--offline or HF_HUB_OFFLINE=1); pass a local copy instead: a folder saved with save_pretrained "
        "(it holds config.json), or a prepared name (`alignfreeze models list`)")
    assert not (tmp_path / "c.csv").exists()


def test_mistyped_local_model_fails_before_any_heavy_import(tiny_inputs, tmp_path):
    env = {**ENV, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = run(["features", "--model", "./runs/tiny-bret", "--treebank", tiny_inputs["en"], "--out",
                tmp_path / "f"], env=env, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert len(lines) == 1 and lines[0].startswith("alignfreeze: error: ./runs/tiny-bret: no such local folder")
    assert "torch" not in {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in proc.stderr.splitlines()
                           if ln.startswith("import time:")}
