"""Inputs of middle-layer alignment: parallel sentences, and task examples as token ids.

Parallel sentences come from :func:`core.parallel.read_parallel` (two CoNLL-U files joined
on ``# sent_id``, two line-aligned text files, one TSV, ``hf:DATASET:SRC-TGT``) as
:class:`core.encoding.Surface` objects: a decoder reads their running text (CoNLL-U: the
forms joined with a space unless ``SpaceAfter=No``, which is the sentence's ``# text`` up
to runs of whitespace; plain text and TSV: the line as written), tokenised by
:mod:`core.encoding` (:mod:`core.sentences`).

Prompt length policy (task examples): a prompt is NEVER truncated (a truncated sentence
would be tagged without the model having seen all of it). An example whose prompt + answer
+ end-of-sequence token exceeds ``max_length`` is an error naming its source (file:line)
and both lengths, unless ``drop_long`` is set: then it is dropped and COUNTED, and the
count is printed and written to the manifest. Parallel alignment inputs are different:
a sentence longer than ``align_max_length`` tokens is split into windows at word
boundaries (the one long-input policy of :mod:`core.encoding`, counted), see
:mod:`realign.midalign.loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import tasks


def parallel_sources(parallel: Sequence[str]) -> tuple[str, str | None]:
    """``--parallel SRC TGT`` or ``--parallel FILE.tsv`` -> (src, tgt)."""
    if len(parallel) == 1:
        return parallel[0], None
    if len(parallel) == 2:
        return parallel[0], parallel[1]
    raise ValueError(f"--parallel takes one TSV file or two files (source, target), got {len(parallel)}")


def task_examples(task: str, sources: Sequence[str], *, limit: int | None = None) -> list[tasks.TaggingExample]:
    """Training/evaluation examples: CoNLL-U files for ``upos``; ``LOCALE:SPLIT`` (e.g.
    ``en-US:train``) for ``massive``."""
    out: list[tasks.TaggingExample] = []
    for s in sources:
        if task == "upos":
            from core.selection import parse_spec

            if not Path(parse_spec(s).path).is_file():
                raise FileNotFoundError(f"{s}: no such CoNLL-U file")
            out.extend(tasks.upos_examples(s, limit=limit))
        elif task == "massive":
            locale, _, split = s.partition(":")
            out.extend(tasks.massive_examples(locale, split or "train", limit=limit))
        else:
            raise ValueError(f"unknown task {task!r}: expected one of {', '.join(tasks.TASKS)}")
    if not out:
        raise ValueError(f"{', '.join(sources)}: no {task} examples")
    return out


@dataclass
class EncodedExample:
    prompt_ids: list[int]
    answer_ids: list[int]  # ends with the end-of-sequence token
    source: str

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


def encode_examples(tokenizer, task: str, examples: Sequence[tasks.TaggingExample], max_length: int, *,
                    drop_long: bool = False) -> tuple[list[EncodedExample], int]:
    """Token ids of prompt and answer; returns ``(encoded, n_dropped)`` (policy: module doc)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token: generation could not stop")
    prompts = tokenizer([tasks.prompt(task, ex.words) for ex in examples], add_special_tokens=True)["input_ids"]
    answers = tokenizer([tasks.answer(ex.tags) for ex in examples], add_special_tokens=False)["input_ids"]
    out, dropped = [], 0
    for ex, p, a in zip(examples, prompts, answers):
        enc = EncodedExample(list(p), list(a) + [eos], ex.source)
        if len(enc) > max_length:
            if not drop_long:
                raise ValueError(
                    f"{ex.source}: prompt ({len(p)} tokens) + answer ({len(a) + 1} tokens) = {len(enc)} tokens "
                    f"exceeds the context of {max_length}: prompts are never truncated; pass --drop-long to "
                    "drop (and count) such examples, or raise --max-length up to the model's context")
            dropped += 1
            continue
        out.append(enc)
    if not out:
        raise ValueError(f"every one of the {len(examples)} examples is longer than {max_length} tokens")
    return out, dropped


def collate_task(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    T = max(len(e) for e in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    labels = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, e in enumerate(batch):
        seq = e.prompt_ids + e.answer_ids
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(e.prompt_ids) : len(seq)] = torch.tensor(e.answer_ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def model_context(model, tokenizer=None) -> int:
    """Largest sequence the model accepts (``max_position_embeddings`` / ``n_positions``)."""
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if not n:
        raise ValueError(f"{cfg.model_type}: the config states no maximum sequence length; pass --max-length")
    return int(n)
