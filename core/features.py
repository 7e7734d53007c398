"""Batched extraction of word-level representations at any set of layers.

Layers follow the HF ``hidden_states`` convention (0 = embeddings, 1..L = blocks).
Words are pooled from sub-words by :func:`core.pooling.pool_subwords`; padding and special
tokens never leak in. A sentence longer than the model's maximum is split into windows at
word boundaries (each window re-encoded with its own special tokens) and counted in
``stats["windowed"]`` — never truncated silently, never a crash.

Large runs: :meth:`WordFeatureExtractor.extract_to_disk` streams chunks of sentences to
safetensors shards (fp16 by default, fp32 on request), so memory is bounded by one chunk
whatever the corpus size. fp16 keeps ~3 significant digits, which is ample for CKA,
probes and retrieval; use fp32 when exact reproduction of a float is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .arch import num_layers, parse_layers
from .conllu import Sentence
from .io import atomic_dir, atomic_write_text
from .pooling import pool_subwords

SentenceLike = Sentence | Sequence[str]
DEVICE_BUFFER_BYTES = 4 << 30  # features of one chunk kept on the accelerator up to this size


def _as_tokens(sent: SentenceLike) -> tuple[list[str], list[int] | None]:
    """Surface tokens to tokenise and, for CoNLL-U sentences, the word -> token map."""
    if isinstance(sent, Sentence):
        identity = len(sent.tokens) == len(sent.words)
        return list(sent.tokens), None if identity else list(sent.word_to_token)
    if isinstance(sent, str):
        raise TypeError("a sentence must be a list of words (or a core.conllu.Sentence), not a str")
    return list(sent), None


def model_max_length(model, tokenizer) -> int:
    """Largest number of tokens (specials included) the model accepts."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 512
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta"):
        n -= 2  # positions start after the padding index
    tok_max = getattr(tokenizer, "model_max_length", None) or n
    return int(min(n, tok_max if tok_max < 1e9 else n))


@dataclass
class EncodedBatch:
    """Model inputs plus the word index of each token (-1 = special or padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    n_words: list[int]

    def to(self, device) -> EncodedBatch:
        return EncodedBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.word_index.to(device), self.n_words
        )


def encode_words(tokenizer, batch: Sequence[Sequence[str]], max_length: int | None = None) -> EncodedBatch:
    """Tokenise pre-split words; ``word_index`` comes from ``word_ids()``.

    With ``max_length`` the batch is truncated (callers that must not lose words use
    :func:`split_windows` first).
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    enc = tokenizer(
        [list(b) for b in batch],
        is_split_into_words=True,
        padding=True,
        truncation=max_length is not None,
        max_length=max_length,
        return_tensors="pt",
    )
    wi = torch.full(enc["input_ids"].shape, -1, dtype=torch.long)
    for r in range(len(batch)):
        ids = enc.word_ids(r)
        wi[r] = torch.tensor([-1 if w is None else w for w in ids], dtype=torch.long)
    return EncodedBatch(enc["input_ids"], enc["attention_mask"], wi, [len(b) for b in batch])


def split_windows(tokenizer, words: Sequence[str], max_length: int) -> list[tuple[int, int]]:
    """Split a sentence into word ranges ``[a, b)`` whose encodings fit ``max_length``."""
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_length - n_special
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for words")
    enc = tokenizer([list(words)], is_split_into_words=True, add_special_tokens=False)
    lengths = np.bincount([w for w in enc.word_ids(0) if w is not None], minlength=len(words)).tolist()
    windows, start, used = [], 0, 0
    for i, n in enumerate(lengths):
        if n > budget:
            n = budget  # a single huge word is truncated inside its own window
        if used + n > budget and i > start:
            windows.append((start, i))
            start, used = i, 0
        used += n
    windows.append((start, len(words)))
    return windows


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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def hidden_words(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: ``(len(layers), B, W, D)`` word vectors and ``(B, W)`` counts.

        Differentiable when called with grad enabled (realignment uses it).
        """
        batch = batch.to(self.device)
        out = self.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True
        )
        hs = out.hidden_states
        stacked = torch.stack([hs[i] for i in self.layers])
        return pool_subwords(stacked, batch.word_index, max(batch.n_words), self.pooling)

    def _windows(self, token_lists: list[list[str]]) -> tuple[list[tuple[int, int, int]], int]:
        """(sentence, start, end) work items; long sentences become several windows."""
        items, n_windowed = [], 0
        # fast length check with one batched tokenisation
        enc = self.tokenizer(token_lists, is_split_into_words=True, add_special_tokens=True)
        for s, ids in enumerate(enc["input_ids"]):
            if len(ids) <= self.max_length:
                items.append((s, 0, len(token_lists[s])))
            else:
                n_windowed += 1
                for a, b in split_windows(self.tokenizer, token_lists[s], self.max_length):
                    items.append((s, a, b))
        return items, n_windowed

    @torch.no_grad()
    def _extract_chunk(self, sents: Sequence[SentenceLike], bar) -> WordFeatures:
        converted = [_as_tokens(s) for s in sents]
        token_lists = [t for t, _ in converted]
        tok_off = np.zeros(len(sents) + 1, dtype=np.int64)
        tok_off[1:] = np.cumsum([len(t) for t in token_lists])
        n_tok = int(tok_off[-1])
        items, n_windowed = self._windows(token_lists) if n_tok else ([], 0)
        # longest first: less padding, and an out-of-memory shows up at once
        items.sort(key=lambda it: -(it[2] - it[1]))
        # the chunk's features are gathered where the model runs (one transfer to the host
        # at the end instead of a synchronising copy per batch and layer), unless that
        # would take more than DEVICE_BUFFER_BYTES of accelerator memory
        buf: torch.Tensor | None = None
        buf_valid: torch.Tensor | None = None
        for k in range(0, len(items), self.batch_size):
            chunk = items[k : k + self.batch_size]
            enc = encode_words(self.tokenizer, [token_lists[s][a:b] for s, a, b in chunk]).to(self.device)
            hs = self.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                            output_hidden_states=True).hidden_states
            # rows of this batch -> global token rows (the words of a window are contiguous)
            dest = np.concatenate([tok_off[s] + np.arange(a, b) for s, a, b in chunk])
            for i, layer in enumerate(self.layers):
                # one layer at a time: no stacked copy of all hidden states
                words, counts = pool_subwords(hs[layer], enc.word_index, enc.n_words, self.pooling, flat=True)
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
                bar.update(len({s for s, _, _ in chunk}))
        if buf is None:
            tok_feats, tok_valid = np.zeros((len(self.layers), 0, 0), dtype=np.float32), np.zeros(0, dtype=bool)
        else:
            tok_feats, tok_valid = buf.cpu().numpy(), buf_valid.cpu().numpy()
        # syntactic words: gather the surface token that carries each word
        gather, w_off = [], [0]
        for s, (toks, w2t) in enumerate(converted):
            idx = np.arange(len(toks)) if w2t is None else np.asarray(w2t, dtype=np.int64)
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
        stats = {"sentences": len(sents), "words": len(g), "windowed": n_windowed, "lost_words": int((~valid).sum())}
        return WordFeatures(self.layers, feats, np.asarray(w_off, dtype=np.int64), valid, self.pooling, stats)

    def iter_chunks(self, sentences, chunk_sentences: int = 1024, total: int | None = None) -> Iterator[WordFeatures]:
        """Yield :class:`WordFeatures` for consecutive chunks of an iterable of sentences."""
        if total is None and hasattr(sentences, "__len__"):
            total = len(sentences)
        bar = tqdm(total=total, desc="word features", unit="sent", disable=not self.progress)
        buf: list[SentenceLike] = []
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
        totals = {"sentences": 0, "words": 0, "windowed": 0, "lost_words": 0}
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
                "layers": list(self.layers), "pooling": self.pooling, "dtype": dtype,
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
