"""Reading an input through its selection: what every caller of the readers uses.

A command or a run never calls a reader on a path it was given: it calls
:func:`select_treebanks` (CoNLL-U files, globs, UD folders), :func:`select_parallel`
(:func:`core.parallel.read_parallel`'s inputs) or :func:`select_pairs` (word-pair JSONL),
which parse the selection (:mod:`core.selection`), read, select, apply a command's "at most
N" cap (recorded as ``first=N`` when it cut records) and return :class:`Selected` objects
that say what was used: ``label`` for a result table's ``selection`` column, ``entries()``
for a manifest's ``data_files`` (path, SHA-256 of the whole file, selection, records used,
records in the input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .selection import ALL, DataSpec, Selection, SelectionError, parse_spec, with_first

T = TypeVar("T")


@dataclass
class Selected(Generic[T]):
    """Records read from one input and selected: what a run used, and how to record it."""

    files: tuple[str, ...]  # the file(s) read: one, or a parallel pair's two ('hf:...' for a dataset)
    selection: Selection | None  # as applied (a cap that cut records appears as first=N)
    items: list[T]
    total: int | None  # records in the whole input (None: a dataset read only as far as needed)

    @property
    def label(self) -> str:
        """The value of a table's ``selection`` column: the canonical selection, or ``all``."""
        return ALL if self.selection is None else self.selection.text

    @property
    def spec(self) -> str:
        """The first file with its selection: what to pass to repeat the reading."""
        return self.files[0] if self.selection is None else f"{self.files[0]}@{self.selection.text}"

    def entries(self) -> list[dict]:
        """Manifest ``data_files`` entries: path, SHA-256 of the whole file, selection, records used
        (``sentences``) and records in the input (``of``)."""
        from .io import file_sha256

        out = []
        for f in self.files:
            e: dict[str, Any] = {"path": f}
            if not f.startswith("hf:"):
                e["sha256"] = file_sha256(f)
            e["selection"] = self.label
            if self.selection is not None and self.selection.ids_file is not None:
                e["ids_file"] = {"path": self.selection.ids_file, "sha256": file_sha256(self.selection.ids_file)}
            e["sentences"] = len(self.items)
            e["of"] = self.total
            out.append(e)
        return out


def _select(items: list[T], files: tuple[str, ...], sel: Selection | None, source: str, limit: int | None,
            key: Callable[[T], str] | None = None) -> Selected[T]:
    chosen = sel.apply(items, source, key) if sel is not None else list(items)
    if limit is not None:
        if limit < 1:
            raise SelectionError(f"{source}: a limit of {limit}: expected at least 1")
        if len(chosen) > limit:  # the cap cut records: recorded as first=N, so the spec repeats the run
            sel = with_first(sel, limit)
            chosen = chosen[:limit]
    return Selected(files, sel, chosen, len(items))


def capped(selected: Selected, limit: int | None) -> Selected:
    """``selected`` with at most ``limit`` records (recorded as ``first=N`` when it cuts)."""
    if limit is None or len(selected.items) <= limit:
        return selected
    out = _select(selected.items, selected.files, selected.selection, selected.files[0], limit)
    out.total = selected.total
    return out


def treebank_files(specs: Iterable[str | Path], base: str | Path | None = None) -> list[tuple[Path, Selection | None]]:
    """Files, globs or UD folders with an optional selection each -> (file, selection) pairs;
    a selection after a glob or folder applies to every file found."""
    from .conllu import find_treebanks

    out = []
    for spec in specs:
        d = parse_spec(spec, base)
        out.extend((f, d.selection) for f in find_treebanks(d.path))
    return out


def select_treebanks(specs: Iterable[str | Path], *, limit: int | None = None) -> list[Selected]:
    """Read and select the sentences of treebank specs, one :class:`Selected` per file.
    ``limit``: at most this many sentences per file, after the selection."""
    from .conllu import read_conllu

    return [_select(list(read_conllu(f)), (str(f),), sel, str(f), limit, key=lambda s: s.sent_id)
            for f, sel in treebank_files(specs)]


def parallel_specs(src: str | Path, tgt: str | Path | None) -> tuple[DataSpec, DataSpec | None, Selection | None]:
    """Parse both sides of a parallel input; the selection (of the sentence pairs) may be written
    on either side, or on both when identical."""
    s = parse_spec(src)
    t = parse_spec(tgt) if tgt is not None else None
    sel = s.selection
    if t is not None and t.selection is not None:
        if sel is not None and sel.text != t.selection.text:
            raise SelectionError(f"{src} and {tgt}: two different selections ({sel.text!r}, "
                                 f"{t.selection.text!r}) of one parallel input: write it once (it selects pairs)")
        sel = t.selection
    return s, t, sel


def select_parallel(src: str | Path, tgt: str | Path | None = None, *, limit: int | None = None,
                    split: str = "train") -> Selected:
    """Read and select sentence pairs (:func:`core.parallel.read_parallel`); ``limit``: at most
    this many pairs after the selection."""
    from .parallel import read_parallel

    s, t, sel = parallel_specs(src, tgt)
    files = (s.path,) if t is None else (s.path, t.path)
    read_limit = None
    if s.path.startswith("hf:") and (sel is None or (sel.start is not None and sel.end is not None)):
        # a dataset is read only as far as needed (a count of it is then unknown: None)
        read_limit = limit if sel is None else sel.end
    pairs = read_parallel(s.path, t.path if t is not None else None, split=split, limit=read_limit)
    out = _select(pairs, files, sel, " and ".join(files), limit)
    if read_limit is not None and len(pairs) >= read_limit:  # the dataset may hold more rows than were read
        out.total = None
        if sel is None:
            out.selection = with_first(None, read_limit)
    return out


def select_pairs(specs: str | Path | Sequence[str | Path]) -> list[Selected]:
    """Read and select word-pair files (:func:`core.wordpairs.read_pairs`), one :class:`Selected`
    per file (records selected by position or by their ``id``)."""
    from .wordpairs import read_pairs

    specs = [specs] if isinstance(specs, str | Path) else list(specs)
    if not specs:
        raise ValueError("no word-pair files given")
    out = []
    for spec in specs:
        d = parse_spec(spec)
        out.append(_select(read_pairs(d.path), (d.path,), d.selection, d.path, None, key=lambda r: r["id"]))
    return out


def selected_items(selected: Iterable[Selected]) -> list:
    """The records of several :class:`Selected`, concatenated in order."""
    return [it for s in selected for it in s.items]


def entries(selected: Iterable[Selected]) -> list[dict]:
    """Manifest ``data_files`` of several :class:`Selected`."""
    return [e for s in selected for e in s.entries()]
