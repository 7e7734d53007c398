"""Steps of a pipeline that a re-run reuses when their inputs are unchanged.

A step has a name, a *key* (a JSON-able dict of everything its result depends on: the
config fields it reads, the SHA-256 of its input files, the base model's weight hash, the
code version) and the outputs it writes. When the step finishes, its record
``OUT/steps/<name>.json`` is written LAST (atomically): the key, its digest, and a
fingerprint of every output (SHA-256 of files up to :data:`HASH_LIMIT` bytes, size of
larger ones). A re-run reuses the step exactly when a record exists, its key digest equals
the new key's, and every output is still there with the same fingerprint; otherwise the
step runs again and says why (which key fields changed, or which output is missing or was
edited). An interrupted step has no record, so it runs again.

The code version is the git commit of the installed package when it is a checkout, else
the package version: a commit that changes the code recomputes everything; uncommitted
edits are not seen (``--overwrite`` starts afresh).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

STEPS_DIR = "steps"
HASH_LIMIT = 64 << 20  # files larger than this are fingerprinted by size (model weights)


def digest(obj) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def code_version() -> str:
    """``git:<commit>`` of the package's checkout, else ``alignfreeze <version>``."""
    from alignfreeze import __version__
    from core.io import git_commit

    commit = git_commit(Path(__file__).parent)
    return f"git:{commit}" if commit else f"alignfreeze {__version__}"


def file_fingerprint(path: Path) -> str:
    from core.io import file_sha256

    size = path.stat().st_size
    return f"sha256:{file_sha256(path)}" if size <= HASH_LIMIT else f"size:{size}"


def fingerprint(paths: Iterable[Path], root: Path) -> dict[str, str]:
    """``{relative path: fingerprint}`` of every file under the given files and folders."""
    out: dict[str, str] = {}
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            rel = f.relative_to(root).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                continue  # temp files of atomic writes
            out[rel] = file_fingerprint(f)
    return out


def _changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    names = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed_fields(a, b, f"{prefix}{k}.")
        else:
            names.append(f"{prefix}{k}")
    return names


@dataclass
class StepCache:
    """Records of the finished steps of one run folder ``root``."""

    root: Path
    say: Callable[[str, str], None] = lambda step, msg: print(f"[{step}] {msg}", flush=True)
    log: list[dict] = field(default_factory=list)

    def record_path(self, name: str) -> Path:
        return self.root / STEPS_DIR / f"{name}.json"

    def why_not(self, name: str, key: dict, outputs: list[Path]) -> str | None:
        """None when step ``name`` can be reused, else the reason it must run."""
        path = self.record_path(name)
        if not path.is_file():
            return "not run yet"
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"{path}: unreadable record"
        if rec.get("key_digest") != digest(key):
            changed = _changed_fields(rec.get("key") or {}, json.loads(json.dumps(key, default=str)))
            return "inputs changed (" + ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "") + ")"
        for p in outputs:
            if not p.exists():
                return f"output {p} is missing"
        now = fingerprint(outputs, self.root)
        was = rec.get("outputs") or {}
        for rel, fp in was.items():
            if now.get(rel) != fp:
                return f"output {rel} was changed or removed since the step finished"
        extra = sorted(set(now) - set(was))
        if extra:
            return f"output {extra[0]} was not written by the step"
        return None

    def run(self, name: str, key: dict, outputs: list[Path], compute: Callable[[], None]) -> bool:
        """Reuse step ``name`` or run ``compute`` (which writes ``outputs``); returns True
        when the step was reused. The record is written after ``compute`` returns."""
        reason = self.why_not(name, key, outputs)
        if reason is None:
            rec = json.loads(self.record_path(name).read_text(encoding="utf-8"))
            self.say(name, f"reused: inputs unchanged (key {rec['key_digest'][:10]}, "
                           f"computed in {rec.get('seconds', 0):.0f} s on {rec.get('finished', '?')})")
            self.log.append({"step": name, "status": "reused", "key_digest": rec["key_digest"], "seconds": 0.0})
            return True
        if reason != "not run yet":
            self.say(name, f"runs again: {reason}")
        self.record_path(name).unlink(missing_ok=True)  # an interrupted rerun must not look finished
        t0 = time.perf_counter()
        compute()
        seconds = time.perf_counter() - t0
        self.finish(name, key, outputs, seconds)
        self.log.append({"step": name, "status": "ran", "key_digest": digest(key), "seconds": round(seconds, 2)})
        return False

    def finish(self, name: str, key: dict, outputs: list[Path], seconds: float) -> None:
        from core.io import atomic_write_json

        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {name} finished without writing {', '.join(missing)}")
        atomic_write_json(self.record_path(name), {
            "step": name, "key": key, "key_digest": digest(key), "outputs": fingerprint(outputs, self.root),
            "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
