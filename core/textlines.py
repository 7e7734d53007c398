"""Text files as users' tools save them: UTF-8 lines, with file, line and byte offset in
every error.

Every reader of a text format in ``core`` (CoNLL-U, parallel text and TSV, word-pair
JSONL) and the MUSE dictionary reader take their lines from :func:`read_lines`, so that
the same file is read the same way everywhere:

- a UTF-8 byte-order mark (``EF BB BF``, written by some Windows editors and by some UD
  releases) at the very start of the file is dropped; one at the start of a later line
  (two files concatenated) is an error;
- lines end with LF or CRLF (the CR is dropped); a file that is not UTF-8 is an error that
  names the line, the column and the byte offset of the first offending byte, never a bare
  ``UnicodeDecodeError``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

BOM = "\ufeff"


class FileFormatError(ValueError):
    """A text file that does not follow its format; the message is ``file:line: what``.

    ``line`` is 1-based; 0 means the file as a whole (then the message is ``file: what``).
    """

    def __init__(self, path: str | Path, line: int, message: str):
        self.path, self.line, self.reason = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def read_lines(path: str | Path, error: type[FileFormatError] = FileFormatError) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` of a UTF-8 file, line terminators removed.

    Args:
        path: the file.
        error: the :class:`FileFormatError` subclass to raise (a reader's own error type).

    Raises:
        error: bytes that are not UTF-8 (line, column and byte offset of the first one), or a
            byte-order mark at the start of a line other than the first.
    """
    offset = 0  # byte offset of the current line in the file
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):  # binary iteration splits on b"\n" only
            body = raw[:-1] if raw.endswith(b"\n") else raw
            if body.endswith(b"\r"):
                body = body[:-1]
            skip = 0
            if n == 1 and body.startswith(codecs.BOM_UTF8):
                skip = len(codecs.BOM_UTF8)
            try:
                text = body[skip:].decode("utf-8")
            except UnicodeDecodeError as e:
                bad = body[skip + e.start]
                col = len(body[skip:skip + e.start].decode("utf-8")) + 1
                raise error(
                    path, n,
                    f"byte 0x{bad:02X} at column {col} (byte offset {offset + skip + e.start} in the file) is not "
                    "UTF-8: expected a UTF-8 text file (re-save it as UTF-8, e.g. iconv -f LATIN1 -t UTF-8)",
                ) from None
            if text.startswith(BOM):
                raise error(path, n, "byte-order mark (U+FEFF) at the start of a line: expected one only at the "
                                     "start of the file (were two files concatenated?)")
            yield n, text
            offset += len(raw)
