"""docs/cli/*.md are the CLI's own --help: a page that differs from what the CLI prints now
(an option added, renamed or re-documented without regenerating) fails here."""

from __future__ import annotations

from alignfreeze import docs_cli
from alignfreeze.cli import build_parser


def test_committed_pages_are_what_the_cli_prints():
    stale = docs_cli.stale()
    assert stale == [], f"stale pages {stale}: run `python -m alignfreeze.docs_cli` and commit docs/cli"


def test_every_command_has_a_page_with_its_help(tmp_path):
    pages = docs_cli.pages()
    assert "demo.md" in pages and "report.md" in pages and "midalign-scan.md" in pages
    assert "--realign-share" in pages["demo.md"] and "usage: alignfreeze demo" in pages["demo.md"]
    index = pages["README.md"]
    for name in ("demo", "report", "midalign scan", "plot"):
        assert f"[`alignfreeze {name}`]({name.replace(' ', '-')}.md)" in index
    # the pages do not depend on the terminal's width
    import os

    os.environ["COLUMNS"] = "40"
    try:
        assert docs_cli.pages() == pages
    finally:
        del os.environ["COLUMNS"]


def test_a_stale_or_missing_or_extra_page_is_found(tmp_path):
    assert docs_cli.main(["--out", str(tmp_path)]) == 0
    assert docs_cli.stale(tmp_path) == []
    page = tmp_path / "probe.md"
    page.write_text(page.read_text().replace("--control", "--kontrol"))
    (tmp_path / "cka.md").unlink()
    (tmp_path / "gone.md").write_text("# a command that no longer exists\n")
    assert docs_cli.stale(tmp_path) == ["cka.md", "probe.md", "gone.md (no such command)"]
    assert docs_cli.main(["--check", "--out", str(tmp_path)]) == 1
    assert docs_cli.main(["--out", str(tmp_path)]) == 0 and docs_cli.stale(tmp_path) == []
    assert not (tmp_path / "gone.md").exists()


def test_a_new_option_makes_the_pages_stale(monkeypatch, tmp_path):
    docs_cli.write(tmp_path)

    def with_extra():
        p = build_parser()
        for action in p._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict) and "demo" in action.choices:
                action.choices["demo"].add_argument("--new-option", help="added without regenerating the docs")
        return p

    monkeypatch.setattr("alignfreeze.cli.build_parser", with_extra)
    assert docs_cli.stale(tmp_path) == ["demo.md"]
