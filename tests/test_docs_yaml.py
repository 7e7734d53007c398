"""Every YAML example of the documentation (```yaml blocks of README.md and docs/*.md) and
every file of examples/ is loaded by the loader that would read it: an example that the
loader refuses is a documentation bug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from alignfreeze.experiment import load_experiment

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = sorted([*(REPO / "examples").glob("*.yaml"), *(REPO / "examples").glob("*.yml")])
_BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def yaml_blocks() -> list[tuple[str, str]]:
    """``(file:line, text)`` of every ```yaml block."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"{doc.relative_to(REPO)}:{line}", m.group(1)))
    return out


def _kind(data) -> str:
    """Which loader reads a YAML example (only experiment configs exist today)."""
    if isinstance(data, dict) and {"out", "models", "strategies"} <= set(data):
        return "experiment"
    return "unknown"


def test_the_docs_have_yaml_examples_and_examples_exist():
    assert any("experiments.md" in where for where, _ in yaml_blocks())
    assert EXAMPLES


@pytest.mark.parametrize("where, text", yaml_blocks(), ids=[w for w, _ in yaml_blocks()])
def test_every_yaml_block_of_the_docs_loads(where, text, tmp_path):
    data = yaml.safe_load(text)
    assert _kind(data) != "unknown", f"{where}: a YAML example no test loads: teach tests/test_docs_yaml.py its kind"
    f = tmp_path / "docs" / "example.yaml"
    f.parent.mkdir()
    f.write_text(text, encoding="utf-8")
    exp = load_experiment(f, check_files=False)  # the data files are those of the machine in the example
    assert exp.cells(), where


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_file_loads_with_its_files(path):
    exp = load_experiment(path)
    assert exp.cells()


def test_the_loader_refuses_what_the_docs_once_showed(tmp_path):
    """The key the docs showed (``evaluate: {tasks: [upos]}``) is refused, so the test above
    would have caught it."""
    from alignfreeze.experiment import ExperimentConfigError

    f = tmp_path / "x.yaml"
    f.write_text("out: o\nmodels: [m]\nstrategies: [baseline]\nsource: [a.conllu]\ntargets: [b.conllu]\n"
                 "evaluate: {tasks: [upos]}\n")
    with pytest.raises(ExperimentConfigError, match="key 'evaluate'"):
        load_experiment(f, check_files=False)
