"""Zero-shot task evaluation per language: greedy generation, parsing and scoring from :mod:`.tasks`.

Greedy decoding (``do_sample=False``) of the answer after the prompt of
:data:`.tasks.PROMPT_FORMAT`, batched with LEFT padding (generation appends to the right
end; transformers derives the positions from the attention mask, and a test checks that a
batch gives the same tags as one sentence at a time). At most
``n_words * max_tag_tokens + 2`` new tokens, where ``max_tag_tokens`` is the longest
tokenisation of ``" TAG"`` over the task's label set: enough for one tag per word, and
independent of the gold answer. Prompts longer than the context follow the policy of
:mod:`.data` (error naming the example, or dropped and counted with ``drop_long``).

Rows are tidy: ``lang, task, metric, value`` (+ ``n_dropped_long``, ``n``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import tasks
from .data import model_context


def _max_tag_tokens(tokenizer, labels: Sequence[str]) -> int:
    ids = tokenizer([" " + t for t in labels], add_special_tokens=False)["input_ids"]
    return max(len(i) for i in ids)


@torch.no_grad()
def generate_tags(model, tokenizer, task: str, examples: Sequence[tasks.TaggingExample], *,
                  labels: Sequence[str], batch_size: int = 8, max_length: int | None = None,
                  drop_long: bool = False) -> tuple[list[list[str]], list[int], int]:
    """Predicted tag sequences; returns ``(preds, kept_indices, n_dropped)``."""
    ctx = model_context(model)
    if max_length and max_length > ctx:
        raise ValueError(f"--max-length {max_length} exceeds the model's context ({ctx} tokens)")
    ctx = max_length or ctx
    per_tag = _max_tag_tokens(tokenizer, labels)
    prompts = tokenizer([tasks.prompt(task, ex.words) for ex in examples], add_special_tokens=True)["input_ids"]
    keep, dropped = [], 0
    for i, (ex, p) in enumerate(zip(examples, prompts)):
        need = len(p) + len(ex.words) * per_tag + 2
        if need > ctx:
            if not drop_long:
                raise ValueError(f"{ex.source}: prompt ({len(p)} tokens) + room for {len(ex.words)} tags "
                                 f"({need - len(p)} tokens) = {need} exceeds the context of {ctx}: prompts are "
                                 "never truncated; pass --drop-long to drop (and count) such examples")
            dropped += 1
            continue
        keep.append(i)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    preds: dict[int, list[str]] = {}
    order = sorted(keep, key=lambda i: len(prompts[i]))
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        T = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), T), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for r, i in enumerate(idx):  # left padding
            ids[r, T - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[r, T - len(prompts[i]):] = 1
        new = max(len(examples[i].words) for i in idx) * per_tag + 2
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=new,
                             do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        for r, i in enumerate(idx):
            own = len(examples[i].words) * per_tag + 2  # each row its own budget, batched or not
            text = tokenizer.decode(out[r, T : T + own], skip_special_tokens=True)
            preds[i] = tasks.parse_tags(text)
    return [preds[i] for i in keep], keep, dropped


def evaluate_task(model, tokenizer, task: str, by_lang: dict[str, Sequence[tasks.TaggingExample]], *,
                  labels: Sequence[str] | None = None, batch_size: int = 8, max_length: int | None = None,
                  drop_long: bool = False) -> list[dict]:
    """Per-language scores of ``task`` (tidy rows)."""
    model.eval()
    if labels is None:
        labels = tasks.label_set(task, [ex for exs in by_lang.values() for ex in exs])
    rows = []
    for lang, exs in by_lang.items():
        preds, keep, dropped = generate_tags(model, tokenizer, task, exs, labels=labels, batch_size=batch_size,
                                             max_length=max_length, drop_long=drop_long)
        if not keep:
            raise ValueError(f"{lang}: every example was dropped as too long")
        golds = [list(exs[i].tags) for i in keep]
        for metric, value in tasks.score(task, golds, preds).items():
            rows.append({"lang": lang, "task": task, "metric": metric, "value": value, "n": len(keep),
                         "n_dropped_long": dropped})
    return rows
