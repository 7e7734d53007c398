"""One selection syntax for every data input: a part of a treebank, of a parallel input or
of a word-pairs file, written after its path (docs/data.md, "Selecting sentences").

::

    PATH                                   every record
    PATH@START:END                         records START..END, 1-based, both included
                                           (@1:500, @501:1000, @501: to the end, @:200 = @1:200)
    PATH@ids=FILE                          the records whose id is a line of FILE
    PATH@sent_ids=ID,ID,...                the records with these ids
    PATH@split=FRAC,seed=N,part=train|test a seeded split: FRAC * n records (half up) are
                                           ``train``, the others ``test``
    PATH@SELECTION,first=N                 the first N records of what SELECTION selects
    PATH@first=N                           the first N records (= @1:N)

A record is what the input holds: a CoNLL-U sentence (id: its ``# sent_id``), a sentence pair
of a parallel input (id: the ``# sent_id`` of two CoNLL-U files, the line number of text and
TSV files, the 0-based row of an ``hf:`` dataset) or a word-pairs record (id: its ``"id"``).
A selection keeps the input's order; ``ids`` and ``sent_ids`` select, they do not reorder.

The split is a pure function of (n, seed): record ``i`` (0-based) gets the key
``sha256("SEED:i")``, the ``FRAC * n`` (rounded half up) records of smallest key are ``train``, the rest
``test``; so ``part=train`` and ``part=test`` of one seed are disjoint and cover the input,
on every machine and every library version.

Nothing is guessed: an empty selection, a range past the end, an id that is not in the input,
a repeated id, a split that leaves a part empty, ``first=N`` past what is selected are errors (:class:`SelectionError`) naming
the file and what was expected; so is a selection that cannot be told from a file name
(``x.conllu@1:5`` when both ``x.conllu@1:5`` and ``x.conllu`` exist). Readers stay plain
readers; their callers read an input through :mod:`core.inputs`, which parses, reads,
selects and records what was used.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SYNTAX = ("PATH@START:END (1-based, inclusive), PATH@ids=FILE, PATH@sent_ids=ID,ID,... or "
          "PATH@split=FRAC,seed=N,part=train|test")
ALL = "all"  # the selection column's value for a whole input
_RANGE = re.compile(r"^(\d*):(\d*)$")
_PARTS = ("train", "test")


class SelectionError(ValueError):
    """A selection that cannot be parsed or applied; the message names the file."""


@dataclass(frozen=True)
class Selection:
    """A parsed selection. ``text`` is its canonical form (recorded in manifests and tables).

    Exactly one kind is set: a range (``start``, ``end``; ``end`` None = to the end), ids
    (``ids``, read from ``ids_file`` when given), or a split (``fraction``, ``seed``, ``part``).
    """

    text: str
    start: int | None = None
    end: int | None = None
    ids: tuple[str, ...] | None = None
    ids_file: str | None = None
    fraction: float | None = None
    seed: int | None = None
    part: str | None = None
    first: int | None = None  # then the first N of what the rest selects (a command's cap, recorded)

    def apply(self, items: Sequence[T], source: str, key: Callable[[T], str] | None = None) -> list[T]:
        """The selected records of ``items`` (the whole input ``source``), in input order.

        Args:
            items: every record of the input, in order.
            source: the input's name, for messages.
            key: a record's id (ids selections); default ``item.id``.
        Raises:
            SelectionError: empty input, a range past the end, an id absent from the input,
                a split leaving a part empty.
        """
        n = len(items)
        if n == 0:
            raise SelectionError(f"{source}: no records to select {self.text!r} from")
        chosen = self._base(items, source, key)
        if self.first is not None:
            if len(chosen) < self.first:
                raise SelectionError(f"{source}: selection {self.text!r} asks for the first {self.first} records "
                                     f"of {len(chosen)}: expected first=N with N <= {len(chosen)}")
            chosen = chosen[: self.first]
        return chosen

    def _base(self, items: Sequence[T], source: str, key: Callable[[T], str] | None) -> list[T]:
        n = len(items)
        if self.start is None and self.ids is None and self.fraction is None:
            return list(items)
        if self.start is not None:
            end = n if self.end is None else self.end
            if self.start > n or end > n:
                last = self.end if self.end is not None else self.start
                raise SelectionError(f"{source}: selection {self.text!r} asks for record {last} but the input has "
                                     f"{n}: expected a range within 1:{n}")
            return list(items[self.start - 1:end])
        if self.ids is not None:
            key = key or (lambda it: it.id)
            wanted = set(self.ids)
            found: dict[str, int] = {}
            for k, it in enumerate(items):
                i = str(key(it))
                if i in wanted:
                    if i in found:
                        raise SelectionError(f"{source}: id {i!r} is held by records {found[i] + 1} and {k + 1}: "
                                             "cannot select by an id the input repeats")
                    found[i] = k
            missing = [i for i in self.ids if i not in found]
            if missing:
                src = f" (listed in {self.ids_file})" if self.ids_file else ""
                raise SelectionError(f"{source}: id {missing[0]!r}{src} is not in the input ({len(missing)} of "
                                     f"{len(self.ids)} ids missing): expected ids of its records")
            return [items[k] for k in sorted(found.values())]
        order = split_order(n, self.seed)
        k = split_size(n, self.fraction)
        if k == 0 or k == n:
            raise SelectionError(f"{source}: split {self.fraction:g} of {n} record(s) leaves the "
                                 f"{'train' if k == 0 else 'test'} part empty: expected a fraction that keeps "
                                 "records on both sides")
        chosen = order[:k] if self.part == "train" else order[k:]
        return [items[i] for i in sorted(chosen)]


def split_size(n: int, fraction: float) -> int:
    """Records in the ``train`` part: ``FRAC * n`` rounded half up."""
    return int(fraction * n + 0.5)


def split_order(n: int, seed: int) -> list[int]:
    """Indices ``0..n-1`` ordered by ``sha256(f"{seed}:{i}")`` (the split's key, module doc)."""
    return sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())


def _ids_from_file(path: Path, where: str) -> tuple[str, ...]:
    from .textlines import read_lines

    if not path.is_file():
        raise SelectionError(f"{where}: ids file {path}: no such file (expected one id per line)")
    ids, seen = [], {}
    for n, line in read_lines(path):
        i = line.strip()
        if not i:
            continue
        if i in seen:
            raise SelectionError(f"{path}:{n}: id {i!r} repeats line {seen[i]}: expected each id once")
        seen[i] = n
        ids.append(i)
    if not ids:
        raise SelectionError(f"{path}: no ids (expected one id per line)")
    return tuple(ids)


def _at(base: str | Path | None, p: str) -> Path:
    """``p`` relative to ``base`` (a YAML's folder), ``~`` expanded; as given without a base."""
    q = Path(p).expanduser()
    if base is None or q.is_absolute():
        return q
    import os

    return Path(os.path.normpath(Path(base) / q))


def parse_selection(text: str, where: str = "", base: str | Path | None = None) -> Selection:
    """Parse the part after ``@`` (module doc); ``where`` names the input in errors, ``base``
    is the folder a relative ``ids=FILE`` is read from (default: the working folder).

    Any selection may end in ``,first=N`` (alone: ``first=N``): then the first N records of
    what it selects. Commands record their "at most N" caps this way when a cap cut records.
    """
    at = f"{where}: " if where else ""
    bad = f"{at}selection {text!r} not understood"
    first = None
    m = re.match(r"^(?:(.*),)?first=(\d+)$", text)
    if m:
        first = int(m.group(2))
        if first < 1:
            raise SelectionError(f"{bad}: first=0 selects nothing; expected first=N with N >= 1")
        if m.group(1) is None:
            return Selection(f"first={first}", first=first)
        base_sel = parse_selection(m.group(1), where, base)
        if base_sel.first is not None:
            raise SelectionError(f"{bad}: first= is given twice; expected it once, last")
        return Selection(f"{base_sel.text},first={first}", base_sel.start, base_sel.end, base_sel.ids,
                         base_sel.ids_file, base_sel.fraction, base_sel.seed, base_sel.part, first)
    m = _RANGE.match(text)
    if m:
        a, b = m.group(1), m.group(2)
        if not a and not b:
            raise SelectionError(f"{bad}: ':' selects nothing; expected START:END such as 1:500")
        start, end = int(a) if a else 1, int(b) if b else None
        if start < 1 or (end is not None and end < 1):
            raise SelectionError(f"{bad}: records are numbered from 1; expected START:END with 1 <= START <= END")
        if end is not None and end < start:
            raise SelectionError(f"{bad}: the range is empty (END < START); expected START <= END")
        return Selection(f"{start}:{'' if end is None else end}", start=start, end=end)
    name, eq, value = text.partition("=")
    if not eq:
        raise SelectionError(f"{bad}: expected {SYNTAX}")
    if name == "ids":
        if not value:
            raise SelectionError(f"{bad}: expected ids=FILE (one id per line)")
        path = _at(base, value)
        return Selection(f"ids={path}", ids=_ids_from_file(path, where or text), ids_file=str(path))
    if name == "sent_ids":
        ids = [i.strip() for i in value.split(",")]
        if not value or not all(ids):
            raise SelectionError(f"{bad}: expected sent_ids=ID,ID,... (non-empty ids separated by commas)")
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise SelectionError(f"{bad}: id {dup!r} is listed twice; expected each id once")
        return Selection(f"sent_ids={','.join(ids)}", ids=tuple(ids))
    if name in ("split", "seed", "part"):  # the split's keys, in any order
        return _parse_split(text, bad)
    raise SelectionError(f"{bad}: unknown key {name!r}; expected {SYNTAX}")


def _parse_split(text: str, bad: str) -> Selection:
    want = "split=FRAC,seed=N,part=train|test (FRAC between 0 and 1)"
    fields: dict[str, str] = {}
    for item in text.split(","):
        k, eq, v = item.partition("=")
        if not eq or not v or k not in ("split", "seed", "part") or k in fields:
            raise SelectionError(f"{bad}: {item!r}: expected {want}")
        fields[k] = v
    missing = [k for k in ("split", "seed", "part") if k not in fields]
    if missing:
        raise SelectionError(f"{bad}: {missing[0]} is missing (nothing is assumed); expected {want}")
    try:
        frac = float(fields["split"])
        seed = int(fields["seed"])
    except ValueError:
        raise SelectionError(f"{bad}: expected {want}") from None
    if not 0 < frac < 1:
        raise SelectionError(f"{bad}: the fraction {frac:g} is not between 0 and 1; expected {want}")
    if fields["part"] not in _PARTS:
        raise SelectionError(f"{bad}: part {fields['part']!r}; expected part=train or part=test")
    return Selection(f"split={frac:g},seed={seed},part={fields['part']}", fraction=frac, seed=seed,
                     part=fields["part"])


def _exists(spec: str, base: str | Path | None = None) -> bool:
    if spec.startswith("hf:"):
        return False
    p = _at(base, spec)
    if p.exists():
        return True
    return any(ch in spec for ch in "*?[") and bool(glob.glob(str(p), recursive=True))


@dataclass(frozen=True)
class DataSpec:
    """An input as written: ``path`` (a file, glob, folder or ``hf:`` name) and its selection."""

    path: str
    selection: Selection | None = None

    @property
    def text(self) -> str:
        """The spec again (paths as resolved), e.g. ``ud/en_ewt-ud-train.conllu@1:500``."""
        return self.path if self.selection is None else f"{self.path}@{self.selection.text}"


def parse_spec(spec: str | Path, base: str | Path | None = None) -> DataSpec:
    """Split ``PATH@SELECTION`` at its last ``@``; with ``base``, relative paths (of the input
    and of an ``ids=FILE``) are taken from that folder (a YAML's) and returned resolved.

    A name that exists as written is a path (``data@v2.conllu``), unless the part before
    the ``@`` exists too and the part after it is a selection: that is ambiguous and refused.
    A name that does not exist must end in a valid selection if it holds an ``@``.
    """
    s = str(spec)
    hf = s.startswith("hf:")
    if "@" not in s:
        return DataSpec(s if hf or base is None else str(_at(base, s)))
    head, _, tail = s.rpartition("@")
    try:
        sel = parse_selection(tail, head, base) if head else None
        err = None
    except SelectionError as e:
        sel, err = None, e
    if _exists(s, base):
        if sel is not None and (_exists(head, base) or head.startswith("hf:")):
            raise SelectionError(f"{s}: ambiguous: a file of that name exists, and so does {head} with the "
                                 f"selection {tail!r}; rename the file whose name holds '@'")
        return DataSpec(s if base is None else str(_at(base, s)))
    if err is not None:
        raise SelectionError(f"{err} (and no file is named {s})") from None
    if sel is None:
        raise SelectionError(f"{s}: no path before '@': expected {SYNTAX}")
    return DataSpec(head if head.startswith("hf:") or base is None else str(_at(base, head)), sel)


def resolve_spec(spec: str, base: str | Path) -> str:
    """``spec`` with its paths taken from ``base`` (a YAML's folder), selection kept."""
    return parse_spec(spec, base).text


def with_first(sel: Selection | None, n: int) -> Selection:
    """``sel`` followed by ``first=n`` (how a cap that cut records is recorded)."""
    if sel is None:
        return Selection(f"first={n}", first=n)
    if sel.first is not None:
        n = min(n, sel.first)
    text = sel.text.rsplit(",first=", 1)[0] if sel.first is not None else sel.text
    text = f"{text},first={n}" if not text.startswith("first=") else f"first={n}"
    return Selection(text, sel.start, sel.end, sel.ids, sel.ids_file, sel.fraction, sel.seed, sel.part, n)
