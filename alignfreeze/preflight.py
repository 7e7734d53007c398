"""Checks every command runs BEFORE its work starts, and the one output policy.

Inputs: a missing file, a folder where a file is expected, an empty file, a model folder
that is not there fail at once with one line naming the path and what was expected, before
torch is even imported. (The format of a file's content is checked by its reader, which
names the file and line.)

Outputs, for every command with ``--out`` (:func:`check_outputs`, run by the CLI):

- an ``--out`` that exists is refused unless ``--overwrite`` (a folder that exists but is
  empty is fine: nothing is lost; ``--resume`` continues what is there); with ``--overwrite`` the CLI says what will be replaced,
  and the old output is replaced only when the new one is complete;
- an ``--out`` whose folder cannot be created or written is refused before the work;
- a file expected where a folder exists (or the reverse) is refused;
- ``--overwrite`` of a folder that is, or holds, one of the command's inputs is refused (the
  old folder is set aside while the run reads its inputs).

Commands declare what their ``--out`` is with ``set_defaults(out_kind="folder")`` (default
``"file"``) and, when one ``--out`` names several files, ``out_paths=callable(args) -> paths``.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


class InputError(ValueError):
    """A bad path or file on the command line (the message is the one line shown)."""


# --------------------------------------------------------------------------- inputs

def check_utf8(path: Path, what: str, chunk: int = 1 << 20) -> None:
    """Every byte of ``path`` decodes as UTF-8 (streamed; a byte-order mark is fine), else
    :class:`InputError` naming the file, the line and the byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            pending = len(decoder.getstate()[0])  # bytes of a sequence cut by the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                at = max(0, e.start - pending)
                bad = block[at]
                line += block[:at].count(b"\n")
                raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{bad:02x}); expected {what} "
                                 "as UTF-8 text") from None
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{path}:{line}: not UTF-8 text (the file ends inside a character); expected {what} "
                             "as UTF-8 text") from None


def need_file(path: str | Path, what: str, *, allow_empty: bool = False, text: bool = True) -> Path:
    """``path`` must be a readable, non-empty file (``text``: of UTF-8 text); ``what`` says
    what it should hold (e.g. "a CoNLL-U treebank"). Returns it as a Path."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file (expected {what})")
    if p.is_dir():
        raise InputError(f"{path}: is a folder (expected {what})")
    if not os.access(p, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied; expected {what})")
    if not allow_empty and p.stat().st_size == 0:
        raise InputError(f"{path}: is empty (expected {what})")
    if text:
        check_utf8(p, what)
    return p


def need_files(paths: Iterable[str | Path] | None, what: str) -> list[Path]:
    return [need_file(p, what) for p in (paths or ())]


def _spec(spec: str | Path):
    """``PATH@SELECTION`` parsed (:func:`core.selection.parse_spec`); a bad selection is an InputError."""
    from core.selection import SelectionError, parse_spec

    try:
        return parse_spec(spec)
    except SelectionError as e:
        raise InputError(str(e)) from None


def need_data(spec: str | Path | None, what: str) -> None:
    """A data file with an optional selection (``en.conllu@1:500``, docs/data.md): the selection
    must parse and the file must pass :func:`need_file`; ``hf:`` datasets pass."""
    if spec is None:
        return
    d = _spec(spec)
    if not d.path.startswith("hf:"):
        need_file(d.path, what)


def need_treebanks(specs: Iterable[str | Path] | None, what: str = "a CoNLL-U treebank") -> list[Path]:
    """Expand files, globs and UD folders (:func:`core.conllu.find_treebanks`), each with an
    optional selection, and check every file found."""
    from core.conllu import find_treebanks

    files: list[Path] = []
    for raw in specs or ():
        spec = _spec(raw).path
        p = Path(spec)
        if p.exists() and not p.is_dir():
            files.append(need_file(p, what))
            continue
        try:
            found = find_treebanks(spec)
        except FileNotFoundError as e:
            raise InputError(f"{e.args[0] if e.args else spec} (expected {what}: a file, a glob or a UD folder)") \
                from None
        files.extend(need_file(f, what) for f in found)
    return files


def need_model(name: str | None, named: bool = False) -> None:
    """A model argument: a missing local folder fails now (see :func:`core.models.check_model_name`).
    ``named``: the command takes ``NAME=PATH`` (:func:`core.names.split_named`)."""
    if name:
        from core.models import check_model_name

        if named:
            from core.names import split_named

            try:
                name = split_named(name)[1]
            except ValueError as e:
                raise InputError(str(e)) from None
        check_model_name(name)


# --------------------------------------------------------------------------- outputs

def out_paths(args) -> list[Path]:
    """The paths a command's ``--out`` stands for."""
    fn = getattr(args, "out_paths", None)
    if fn is not None:
        return [Path(p) for p in fn(args)]
    out = getattr(args, "out", None)
    return [Path(out)] if out else []


def check_writable(out: str | Path, *, inside: bool = False) -> None:
    """``out`` can be created: the nearest existing folder above it (``inside``: the nearest
    existing of ``out`` itself and its parents) must be a folder in which files can be created
    (tried with a temporary file, so a read-only file system or missing permission shows too)."""
    out = Path(out)
    probe = out if inside else out.parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{out}: cannot be written: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise InputError(f"{out}: cannot be written: {probe}: {e.strerror or e} (choose another --out)") from None


def _describe(p: Path) -> str:
    if p.is_dir():
        n = sum(1 for _ in p.rglob("*"))
        return f"the folder {p} ({n} entries)"
    return f"{p}"


def _input_paths(args) -> Iterator[tuple[str, Path]]:
    """``(option, path)`` for every argument value (other than ``--out``) that names an
    existing file or folder."""
    for dest, value in vars(args).items():
        if dest == "out" or callable(value):
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, str | Path) and str(v) and os.path.exists(v):
                yield "--" + dest.replace("_", "-"), Path(v)


def _refuse_replacing_an_input(args, folder: Path) -> None:
    """``--overwrite`` sets ``folder`` aside while the run reads its inputs: an input that is
    the folder or lies inside it would be gone (or, once the run completes, deleted)."""
    root = folder.resolve()
    for option, p in _input_paths(args):
        q = p.resolve()
        if q == root or root in q.parents:
            raise InputError(f"{folder}: is also an input of this command ({option} {p}); --overwrite would "
                             "replace what the run reads: choose another --out")


def check_outputs(args) -> list[Path]:
    """Apply the output policy (module doc) to ``args``; returns the outputs that
    ``--overwrite`` will replace (already announced on stderr)."""
    overwrite = bool(getattr(args, "overwrite", False))
    replaced = []
    for p in out_paths(args):
        # what the command declares, else a name with a suffix (x.csv) is a file; else either
        kind = getattr(args, "out_kind", None) or ("file" if p.suffix else None)
        if kind == "file" and p.is_dir():
            raise InputError(f"{p}: is a folder (expected the name of an output file)")
        if kind == "folder" and p.exists() and not p.is_dir():
            raise InputError(f"{p}: is a file (expected the name of an output folder)")
        exists = p.is_file() or (p.is_dir() and any(p.iterdir()))
        if exists and not overwrite and not getattr(args, "resume", False):
            hint = getattr(args, "exists_hint", None)
            extra = f"; {hint(p)}" if hint is not None and hint(p) else ""
            what = ("already holds a finished run (manifest.json)" if (p / "manifest.json").is_file()
                    else "exists already (an earlier run?)")
            raise InputError(f"{p}: {what}; pass --overwrite to replace it, or choose another --out{extra}")
        check_writable(p)  # outputs are built next to their final place, then renamed
        if exists and overwrite:
            if p.is_dir():
                _refuse_replacing_an_input(args, p)
            replaced.append(p)
    for p in replaced:
        print(f"alignfreeze: --overwrite: {_describe(p)} will be replaced when this run completes", file=sys.stderr)
    return replaced


@contextlib.contextmanager
def set_aside(folders: Iterable[str | Path]) -> Iterator[None]:
    """``--overwrite`` of folders: each existing folder is moved aside before the run, deleted
    once the run completes, and put back when it fails or is interrupted (whatever the run
    left in its place is removed). The CLI does this for every command."""
    aside: list[tuple[Path, Path]] = []
    try:
        for p in map(Path, folders):
            if p.is_dir():
                a = p.with_name(f".{p.name}.replaced-{os.getpid()}")
                os.replace(p, a)
                aside.append((p, a))
        yield
    except BaseException:
        for p, a in aside:
            if p.exists():
                shutil.rmtree(p, ignore_errors=True)
            os.replace(a, p)
        raise
    for _, a in aside:
        shutil.rmtree(a, ignore_errors=True)


@contextlib.contextmanager
def replacing_folder(out: str | Path, *, overwrite: bool, keep_partial: bool = False) -> Iterator[None]:
    """For commands that build ``out`` in place (not via :func:`core.io.atomic_dir`):

    - with ``overwrite`` an existing ``out`` is set aside first (:func:`set_aside`);
    - a run that fails leaves no half-written ``out`` behind, unless ``keep_partial``
      (a realignment's checkpoints are what ``--resume`` continues from).
    """
    out = Path(out)
    with set_aside([out] if overwrite else []):
        existed = out.exists()
        try:
            yield
        except BaseException:
            if not keep_partial and not existed and out.exists():
                shutil.rmtree(out, ignore_errors=True)
            raise
