"""The report's two renderings of one document: a self-contained HTML page (figures as data
URIs, text escaped) and Markdown (figures linked next to it, table cells escaped)."""

from __future__ import annotations

import base64
import re
import struct
import zlib

from alignfreeze.report_doc import Document, inline_html


def _png(path):
    """A valid 2x1 RGB PNG written by hand."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"\x00" + b"\xff\x00\x00" + b"\x00\x00\xff"
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return path


def _doc(tmp_path):
    (tmp_path / "figures").mkdir()
    png = _png(tmp_path / "figures" / "x.png")
    d = Document("Run <1> & co")
    d.h(1, "The paper-style table")
    d.p("**full** lost 3 points in `ar` <script>alert(1)</script>")
    d.ul(["a | b", "c"])
    d.table(["lang", "full"], [["fr", "**80.1 [78.0, 82.2]**"], ["a|b", "1 < 2"]], caption="cap", numeric=(1,))
    d.figure(png, "A figure: red then blue.")
    d.pre("name: tiny\n<yaml>")
    return d, png


def test_html_is_one_self_contained_escaped_page(tmp_path):
    d, png = _doc(tmp_path)
    html = d.html()
    assert html.startswith("<!DOCTYPE html>") and "<title>Run &lt;1&gt; &amp; co</title>" in html
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert refs == ["data:,", "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<p><strong>full</strong> lost 3 points in <code>ar</code>" in html
    assert '<td class="num"><strong>80.1 [78.0, 82.2]</strong></td>' in html and "<td>a|b</td>" in html
    assert '<h2 id="the-paper-style-table">' in html and "<pre>name: tiny\n&lt;yaml&gt;</pre>" in html


def test_markdown_links_figures_and_escapes_cells(tmp_path):
    d, _ = _doc(tmp_path)
    md = d.markdown(tmp_path)
    assert md.startswith("# Run <1> & co\n")
    assert "## The paper-style table" in md
    assert "| lang | full |\n|---|---:|\n| fr | **80.1 [78.0, 82.2]** |\n| a\\|b | 1 < 2 |" in md
    assert "![A figure: red then blue.](figures/x.png)" in md
    assert "```\nname: tiny\n<yaml>\n```" in md


def test_inline_markup():
    assert inline_html("a **b** `c<d>` e") == "a <strong>b</strong> <code>c&lt;d&gt;</code> e"
