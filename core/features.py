"""Batched extraction of word-level representations at any set of layers.

Layers are those of :mod:`core.layers` (0 = input of block 1, i = raw output of block i,
before a decoder's final norm), read with :func:`core.layers.layer_states`, which stops the
forward pass after the highest requested layer. Sentences are tokenised as running text and
pieces are mapped to words by character overlap (:mod:`core.encoding`); words are pooled by
:func:`core.pooling.pool_subwords`; padding, special tokens and bare word-start markers
never leak in. A sentence longer than the model's maximum is split into windows at word
boundaries (each window encoded with its own special tokens), a word longer than a window
is truncated inside its own window; both are counted in ``stats`` (and reported on stderr)
— never truncated silently, never a crash.

Large runs: :meth:`WordFeatureExtractor.extract_to_disk` streams chunks of sentences to
safetensors shards (fp16 by default, fp32 on request), so memory is bounded by one chunk
whatever the corpus size. fp16 keeps ~3 significant digits, which is ample for CKA,
probes and retrieval; use fp32 when exact reproduction of a float is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .arch import num_layers, parse_layers
from .encoding import (  # noqa: F401  (encode_words, model_max_length, SentenceLike: public here too)
    PIECE_TO_WORD,
    EncodedBatch,
    EncodingStats,
    SentenceLike,
    collate,
    encode_windows,
    encode_words,
    model_max_length,
    pad_id_of,
    report,
    surface,
)
from .io import atomic_dir, atomic_write_text
from .layers import LAYER_DEFINITION, layer_states

DEVICE_BUFFER_BYTES = 4 << 30  # features of one chunk kept on the accelerator up to this size
STAT_KEYS = ("sentences", "words", "lost_words", *(k for k in EncodingStats().to_dict() if k not in
                                                   ("sentences", "words", "max_length")))


@dataclass
class WordFeatures:
    """Word vectors of a corpus: ``features[layer]`` is ``(N_words, D)``; sentence ``s``
    owns rows ``offsets[s]:offsets[s+1]``; ``valid`` is False for words no token reached."""

    layers: tuple[int, ...]
    features: dict[int, np.ndarray]
    offsets: np.ndarray
    valid: np.ndarray
    pooling: str
    stats: dict = field(default_factory=dict)

    @property
    def n_sentences(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_words(self) -> int:
        return int(self.offsets[-1])

    def sentence(self, s: int, layer: int) -> np.ndarray:
        return self.features[layer][self.offsets[s] : self.offsets[s + 1]]


class WordFeatureExtractor:
    """Word representations at ``layers`` of ``model`` with one pooling method.

    Args:
        model: a HF encoder or decoder in the architecture table.
        tokenizer: its fast tokenizer.
        layers: ``"all"``, ``"last"``, ``"0,4-6"``, an int or a list of ints (0..L).
        pooling: ``first`` | ``mean`` | ``last`` | ``sum``.
        batch_size: sentences (windows) per forward pass.
        max_length: tokens per sequence; default the model's maximum.
        progress: show a tqdm bar.

    ``encoding_stats`` accumulates the :class:`core.encoding.EncodingStats` of every call
    (windows, truncated words, shared pieces) for the caller's report and manifest.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        layers="all",
        pooling: str = "first",
        batch_size: int = 32,
        max_length: int | None = None,
        progress: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.n_layers = num_layers(model)
        self.layers = parse_layers(layers, self.n_layers)
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length or model_max_length(model, tokenizer)
        self.progress = progress
        self.encoding_stats = EncodingStats(max_length=self.max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def states(self, batch: EncodedBatch) -> dict[int, torch.Tensor]:
        """``{layer: (R, T, D)}`` token states of one batch at the extractor's layers
        (differentiable when called with grad enabled)."""
        return layer_states(self.model, self.layers, input_ids=batch.input_ids, attention_mask=batch.attention_mask)

    @torch.no_grad()
    def _extract_chunk(self, sents: Sequence[SentenceLike], bar) -> WordFeatures:
        converted = [surface(s) for s in sents]
        tok_off = np.zeros(len(sents) + 1, dtype=np.int64)
        tok_off[1:] = np.cumsum([len(c.words) for c in converted])
        n_tok = int(tok_off[-1])
        enc_stats = EncodingStats()
        windows = encode_windows(self.tokenizer, sents, self.max_length, stats=enc_stats) if n_tok else []
        windows = [w for w in windows if w.end > w.start]
        # longest first: less padding, and an out-of-memory shows up at once
        windows.sort(key=lambda w: -len(w.input_ids))
        pad = pad_id_of(self.tokenizer)
        # the chunk's features are gathered where the model runs (one transfer to the host
        # at the end instead of a synchronising copy per batch and layer), unless that
        # would take more than DEVICE_BUFFER_BYTES of accelerator memory
        buf: torch.Tensor | None = None
        buf_valid: torch.Tensor | None = None
        for k in range(0, len(windows), self.batch_size):
            chunk = windows[k : k + self.batch_size]
            enc = collate(chunk, pad).to(self.device)
            states = self.states(enc)
            # rows of this batch -> global token rows (the words of a window are contiguous)
            dest = np.concatenate([tok_off[w.sentence] + np.arange(w.start, w.end) for w in chunk])
            for i, layer in enumerate(self.layers):
                # one layer at a time: no stacked copy of all layers
                words, counts = enc.pool(states[layer], self.pooling)
                if buf is None:
                    nbytes = len(self.layers) * n_tok * words.shape[-1] * 4
                    place = self.device if nbytes <= DEVICE_BUFFER_BYTES else torch.device("cpu")
                    # every token row is written by exactly one window: no zero fill needed
                    buf = torch.empty((len(self.layers), n_tok, words.shape[-1]), dtype=torch.float32, device=place)
                    buf_valid = torch.zeros(n_tok, dtype=torch.bool, device=place)
                    dest_dev = buf.device
                dest_t = torch.from_numpy(dest).to(dest_dev, non_blocking=True)
                buf[i].index_copy_(0, dest_t, words.to(dest_dev, torch.float32))
            buf_valid.index_copy_(0, dest_t, (counts > 0).to(dest_dev))
            if bar is not None:
                bar.update(len({w.sentence for w in chunk if w.end == len(converted[w.sentence].words)}))
        if buf is None:
            tok_feats, tok_valid = np.zeros((len(self.layers), 0, 0), dtype=np.float32), np.zeros(0, dtype=bool)
        else:
            tok_feats, tok_valid = buf.cpu().numpy(), buf_valid.cpu().numpy()
        # syntactic words: gather the surface token that carries each word
        gather, w_off = [], [0]
        for s, c in enumerate(converted):
            idx = np.arange(len(c.words)) if c.word_to_token is None else np.asarray(c.word_to_token, dtype=np.int64)
            gather.append(tok_off[s] + idx)
            w_off.append(w_off[-1] + len(idx))
        g = np.concatenate(gather) if gather else np.zeros(0, dtype=np.int64)
        if len(g) == n_tok and bool((g == np.arange(n_tok)).all()):
            # no multiword tokens: words are the tokens, keep views instead of copies
            feats = {layer: tok_feats[i] for i, layer in enumerate(self.layers)}
            valid = tok_valid
        else:
            feats = {layer: tok_feats[i][g] for i, layer in enumerate(self.layers)}
            valid = tok_valid[g]
        self.encoding_stats += enc_stats
        stats = {**enc_stats.to_dict(), "words": len(g), "lost_words": int((~valid).sum())}
        stats.pop("max_length")
        return WordFeatures(self.layers, feats, np.asarray(w_off, dtype=np.int64), valid, self.pooling, stats)

    def iter_chunks(self, sentences, chunk_sentences: int = 1024, total: int | None = None) -> Iterator[WordFeatures]:
        """Yield :class:`WordFeatures` for consecutive chunks of an iterable of sentences."""
        if total is None and hasattr(sentences, "__len__"):
            total = len(sentences)
        bar = tqdm(total=total, desc="word features", unit="sent", disable=not self.progress)
        buf: list[SentenceLike] = []
        before = EncodingStats(**self.encoding_stats.to_dict())
        try:
            for s in sentences:
                buf.append(s)
                if len(buf) >= chunk_sentences:
                    yield self._extract_chunk(buf, bar)
                    buf = []
            if buf:
                yield self._extract_chunk(buf, bar)
        finally:
            bar.close()
        run = EncodingStats(max_length=self.max_length)
        for f in dataclass_fields(EncodingStats):
            if f.name != "max_length":
                setattr(run, f.name, getattr(self.encoding_stats, f.name) - getattr(before, f.name))
        report(run, "word features")

    def extract(self, sentences) -> WordFeatures:
        """All word features in memory (use :meth:`extract_to_disk` for large corpora)."""
        parts = list(self.iter_chunks(sentences, chunk_sentences=1 << 30))
        if not parts:
            raise ValueError("no sentences to extract features from")
        return parts[0]

    def extract_to_disk(
        self, sentences, out_dir: str | Path, *, dtype: str = "float16", chunk_sentences: int = 1024,
        meta: dict | None = None,
    ) -> ShardedFeatures:
        """Stream features to ``out_dir`` as safetensors shards (one per chunk), atomically."""
        from safetensors.numpy import save_file

        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, not {dtype!r}")
        totals = dict.fromkeys(STAT_KEYS, 0)
        with atomic_dir(out_dir) as tmp:
            shards = []
            for k, wf in enumerate(self.iter_chunks(sentences, chunk_sentences)):
                name = f"shard_{k:05d}.safetensors"
                tensors = {f"layer_{lay}": wf.features[lay].astype(dtype) for lay in wf.layers}
                tensors["offsets"] = wf.offsets
                tensors["valid"] = wf.valid.astype(np.uint8)
                save_file(tensors, str(Path(tmp) / name))
                shards.append({"file": name, "sentences": wf.n_sentences, "words": wf.n_words})
                for key in totals:
                    totals[key] += wf.stats[key]
            index = {
                "layers": list(self.layers), "layer_definition": LAYER_DEFINITION,
                "pooling": self.pooling, "piece_to_word": PIECE_TO_WORD, "dtype": dtype,
                "max_length": self.max_length, "shards": shards, "stats": totals, "meta": meta or {},
            }
            atomic_write_text(Path(tmp) / "index.json", json.dumps(index, indent=2))
        return ShardedFeatures(out_dir)


class ShardedFeatures:
    """Read-back of :meth:`WordFeatureExtractor.extract_to_disk` output."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file}: not a feature folder (index.json missing)")
        self.index = json.loads(index_file.read_text())
        self.layers = tuple(self.index["layers"])
        self.pooling = self.index["pooling"]

    def __len__(self) -> int:
        return len(self.index["shards"])

    def iter_shards(self, layers=None) -> Iterator[WordFeatures]:
        from safetensors.numpy import load_file

        want = self.layers if layers is None else tuple(layers)
        for sh in self.index["shards"]:
            t = load_file(str(self.path / sh["file"]))
            feats = {lay: t[f"layer_{lay}"] for lay in want}
            yield WordFeatures(want, feats, t["offsets"], t["valid"].astype(bool), self.pooling, {})

    def load(self, layers=None) -> WordFeatures:
        """Concatenate all shards (memory = the whole corpus at the stored dtype)."""
        parts = list(self.iter_shards(layers))
        offs = [parts[0].offsets]
        for p in parts[1:]:
            offs.append(p.offsets[1:] + offs[-1][-1])
        want = parts[0].layers
        return WordFeatures(
            want,
            {lay: np.concatenate([p.features[lay] for p in parts]) for lay in want},
            np.concatenate(offs),
            np.concatenate([p.valid for p in parts]),
            self.pooling,
            self.index["stats"],
        )
