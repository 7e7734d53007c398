"""A report as a list of blocks, rendered twice: Markdown (figures linked as files next to
it) and one self-contained HTML page (figures embedded as base64 PNG; no script, no
external URL, no stylesheet but its own).

Inline text may use ``**bold**`` and ```code```; everything else is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.1em}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}code,pre{background:#f6f6f6;font-size:.88em}
pre{padding:.6em;overflow-x:auto}caption{caption-side:bottom;text-align:left;font-size:.85em;color:#444;
padding-top:.3em}
""".strip()


def inline_html(text: str) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f"<strong>{html.escape(m.group(1))}</strong>" if m.group(1) is not None
                   else f"<code>{html.escape(m.group(2))}</code>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@dataclass
class Document:
    """Blocks: ``("h", level, text)``, ``("p", text)``, ``("ul", items)``, ``("table", header,
    rows, caption, numeric columns)``, ``("figure", png path, caption)``, ``("pre", text)``."""

    title: str
    blocks: list = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items) -> None:
        items = list(items)
        if items:
            self.blocks.append(("ul", items))

    def table(self, header, rows, caption: str = "", numeric=()) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows], caption, set(numeric)))

    def figure(self, png: Path, caption: str) -> None:
        self.blocks.append(("figure", Path(png), caption))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    # ------------------------------------------------------------------ Markdown
    def markdown(self, base: Path) -> str:
        """Markdown; figures are linked relative to ``base`` (the report's folder)."""
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out += ["#" * (b[1] + 1) + " " + b[2], ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "ul":
                out += [f"- {item}" for item in b[1]] + [""]
            elif kind == "table":
                _, header, rows, caption, numeric = b
                out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                out.append("|" + "".join("---:|" if i in numeric else "---|" for i in range(len(header))))
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
                out += ([""] + [f"_{caption}_"] if caption else []) + [""]
            elif kind == "figure":
                rel = Path(b[1]).relative_to(base).as_posix()
                out += [f"![{_md_cell(b[2])[:120]}]({rel})", "", f"_{b[2]}_", ""]
            elif kind == "pre":
                out += ["```", b[1].rstrip("\n"), "```", ""]
        return "\n".join(out).rstrip() + "\n"

    # ------------------------------------------------------------------ HTML
    def html(self) -> str:
        """One self-contained page (PNG figures embedded as data URIs)."""
        body = [f"<h1>{inline_html(self.title)}</h1>"]
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                level = min(6, b[1] + 1)
                anchor = re.sub(r"[^a-z0-9]+", "-", b[2].lower()).strip("-")
                body.append(f'<h{level} id="{anchor}">{inline_html(b[2])}</h{level}>')
            elif kind == "p":
                body.append(f"<p>{inline_html(b[1])}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "table":
                _, header, rows, caption, numeric = b
                cls = [' class="num"' if i in numeric else "" for i in range(len(header))]
                head = "".join(f"<th{cls[i]}>{inline_html(str(h))}</th>" for i, h in enumerate(header))
                trs = "".join("<tr>" + "".join(f"<td{cls[i]}>{inline_html(str(c))}</td>" for i, c in enumerate(r))
                              + "</tr>" for r in rows)
                cap = f"<caption>{inline_html(caption)}</caption>" if caption else ""
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "figure":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                alt = html.escape(b[2][:200], quote=True)
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                            f"<figcaption>{inline_html(b[2])}</figcaption></figure>")
            elif kind == "pre":
                body.append(f"<pre>{html.escape(b[1])}</pre>")
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                "<link rel=\"icon\" href=\"data:,\">\n"  # no favicon request when the page is served
                f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                + "\n".join(body) + "\n</body>\n</html>\n")
