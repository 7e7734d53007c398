"""The report of a demo run and of an experiment grid: self-contained HTML and Markdown, the
paper-style table equal to the tables, ``alignfreeze report DIR`` rebuilding it; and the
page opened in a real headless Chromium: every figure renders, the console has no error.

The browser test skips when Chromium, its driver or selenium is absent, unless
``ALIGNFREEZE_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where it fails instead."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from alignfreeze.cli import main

FIGURES = ("drift", "forgetting", "cka", "probe", "retrieval_sentence", "retrieval_word")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "demo"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def _md_table(md: str, first_cell: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_demo_report_sections_and_paper_table_match_the_tables(demo_dir):
    md = (demo_dir / "report.md").read_text(encoding="utf-8")
    for head in ("## Reading", "### Which layers moved", "### Probes: lost and gained (forgetting)", "### Retrieval",
                 "## The paper-style table", "## Figures", "## Configuration and manifests", "### Model and seeds"):
        assert head in md, head
    for name in FIGURES:
        assert f"](figures/{name}.png)" in md and (demo_dir / "figures" / f"{name}.png").is_file()
    probe = pd.read_csv(demo_dir / "probe.csv")
    last = probe[probe["layer"] == probe["layer"].max()].set_index(["lang", "model"])
    header = _md_table(md, "language")
    assert header == ["language", "baseline", "full", "front", "back"]
    for lang in ("fr", "zh"):
        row = _md_table(md, lang)
        for arm, cell in zip(header[1:], row[1:], strict=True):
            r = last.loc[(lang, arm)]
            want = f"{100 * r['value']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
            assert cell.strip("*").startswith(want), (lang, arm, cell)
    run = json.loads((demo_dir / "run.json").read_text())
    assert f"`{run['model']['weight_hash']}`" in md
    for arm in ("full", "front", "back"):
        assert f"- **{arm}** " in md  # one generated sentence per arm about drift and probes


def test_demo_report_html_is_self_contained(demo_dir):
    html = (demo_dir / "report.html").read_text(encoding="utf-8")
    srcs = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert srcs and all(s.startswith("data:") or s.startswith("#") for s in srcs), srcs[:5]
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == len(FIGURES)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "<h2 id=\"the-paper-style-table\">" in html


def test_report_command_rebuilds_the_same_report(demo_dir, tmp_path, capsys):
    copy = tmp_path / "demo"
    shutil.copytree(demo_dir, copy)
    shutil.rmtree(copy / "figures")
    (copy / "report.md").unlink()
    assert main(["report", str(copy), "--no-progress"]) == 0
    assert "demo report:" in capsys.readouterr().out
    assert (copy / "report.md").read_text() == (demo_dir / "report.md").read_text()
    for ext in ("png", "svg", "pdf", "csv"):
        assert (copy / "figures" / f"drift.{ext}").stat().st_size > 0
    (copy / "forgetting.csv").unlink()
    assert main(["report", str(copy)]) == 2
    assert "forgetting.csv: missing" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a demo run (run.json) nor an experiment grid" in capsys.readouterr().err


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory, tiny_models):
    import yaml

    from core import FIXTURES

    base = tmp_path_factory.mktemp("grid")
    model, tok = tiny_models("bert")
    model.save_pretrained(base / "tiny")
    tok.save_pretrained(base / "tiny")
    cfg = {
        "name": "tiny-grid", "out": "out", "models": [{"name": "tiny", "path": str(base / "tiny")}],
        "strategies": ["baseline", "full", "front", "back"], "seeds": [1, 2],
        "parallel": [{"src": str(FIXTURES / "en_demo-ud-test.conllu"), "tgt": str(FIXTURES / "fr_demo-ud-test.conllu"),
                      "dictionary": str(FIXTURES / "en-fr.txt")}],
        "aligners": ["dictionary"], "source": [str(FIXTURES / "en_demo-ud-test.conllu")],
        "targets": [str(FIXTURES / "fr_demo-ud-test.conllu"), str(FIXTURES / "de_demo-ud-test.conllu")],
        "realign": {"steps": 2, "batch_size": 4, "lr": 1e-3},
        "finetune": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0},
    }
    (base / "exp.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["experiment", str(base / "exp.yaml")]) == 0
    return base / "out"


def test_grid_report(grid_dir, capsys):
    assert main(["report", str(grid_dir), "--no-progress"]) == 0
    assert "grid report:" in capsys.readouterr().out
    md = (grid_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# alignfreeze experiment: tiny-grid")
    assert "strategies baseline, full, front, back; seeds 1, 2" in md
    # the grid's own table, as it wrote it
    table = (grid_dir / "table.md").read_text(encoding="utf-8")
    fr_row = next(x for x in table.splitlines() if x.startswith("| fr |"))
    assert fr_row.replace(" ", "") in md.replace(" ", "")
    assert "- **front** against full (tiny, aligner dictionary, upos):" in md
    assert "name: tiny-grid" in md  # the YAML as run (experiment.json)
    assert (grid_dir / "figures" / "accuracy.png").stat().st_size > 0
    html = (grid_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == 1


# ----------------------------------------------------------------------------- the browser
def _chromium():
    """A headless Chromium driven by selenium, or skip (fail under ALIGNFREEZE_REQUIRE_BROWSER=1)."""
    required = os.environ.get("ALIGNFREEZE_REQUIRE_BROWSER") == "1"
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [what for what, ok in (("chromium", browser), ("chromedriver", driver), ("selenium", webdriver)) if not ok]
    if missing:
        msg = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver; pip install selenium)"
        if required:
            pytest.fail(msg)
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--allow-file-access-from-files",
                # no background connections: a closed network refuses them, many at a time
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


RENDERED = """
const out = [];
for (const el of document.querySelectorAll('img, svg')) {
  const r = el.getBoundingClientRect();
  const natural = el.tagName === 'IMG' ? [el.complete, el.naturalWidth, el.naturalHeight] : [true, 1, 1];
  out.push({tag: el.tagName, ok: natural[0] && natural[1] > 0 && natural[2] > 0 && r.width > 0 && r.height > 0,
            width: r.width, height: r.height, natural: natural.slice(1)});
}
return out;
"""


def _open(driver, page: Path):
    driver.get(page.resolve().as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    figures = driver.execute_script(RENDERED)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    return figures, errors


def test_report_renders_in_headless_chromium(demo_dir, tmp_path):
    driver = _chromium()
    try:
        figures, errors = _open(driver, demo_dir / "report.html")
        assert len(figures) == len(FIGURES)
        bad = [f for f in figures if not f["ok"]]
        assert not bad, bad
        assert errors == [], errors
        # the checks can fail: a figure whose data does not decode, and a script's console error
        html = (demo_dir / "report.html").read_text(encoding="utf-8")
        broken = tmp_path / "broken.html"
        broken.write_text(html.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1), encoding="utf-8")
        figures, errors = _open(driver, broken)
        assert sum(not f["ok"] for f in figures) == 1
        assert len(errors) == 1 and "Failed to load resource" in errors[0]["message"]
        noisy = tmp_path / "noisy.html"
        noisy.write_text(html.replace("</body>", "<script>console.error('boom')</script></body>"), encoding="utf-8")
        figures, errors = _open(driver, noisy)
        assert all(f["ok"] for f in figures) and len(errors) == 1 and '"boom"' in errors[0]["message"]
    finally:
        driver.quit()
