"""Task definitions shared by training and evaluation: label sets, prompt format, parsing, scoring.

Both tasks are *tagging as generation*: the prompt lists the words of a sentence, the model
answers with one tag per word, separated by single spaces, then its end-of-sequence token.
Prompt format ``tagging-v1`` (the instruction line differs per task)::

    <instruction>
    Words: w1 w2 ... wn
    Tags:

and the answer (what the task loss trains; the prompt tokens carry no loss)::

     t1 t2 ... tn<eos>

A word that contains whitespace (rare: "10 000" in some treebanks) has it replaced by
``_`` so that one word is one whitespace-separated item. The prompt and the answer are
tokenised separately and concatenated, so training sees exactly the prompt tokens that
generation starts from.

Tasks:

- ``upos``: UD treebanks (CoNLL-U), one tag per SYNTACTIC word (a multiword token such as
  French "du" appears as its words "de le"), labels :data:`core.conllu.UPOS_TAGS`.
  Scores per language: ``tag_accuracy`` = position-wise matches / gold tags (a missing tag
  is wrong; extra predicted tags are ignored), ``exact_match`` = share of sentences whose
  predicted sequence equals the gold one, ``well_formed`` = share with as many valid tags
  as words.
- ``massive``: MASSIVE slot filling (FitzGerald et al. 2022, HF dataset
  ``AmazonScience/massive``, one locale per language, needs the hub), BIO tags over
  whitespace-separated words of ``annot_utt`` (``[slot : words]`` spans). Score:
  ``f1`` (seqeval, micro over entity spans, default conlleval-style matching) with
  ``precision``/``recall``; a prediction shorter than the gold sequence is padded with
  ``O``, a longer one cut (seqeval needs equal lengths), and ``well_formed`` counts how
  often that was NOT needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.conllu import UPOS_TAGS

PROMPT_FORMAT = "tagging-v1"
TASKS = ("upos", "massive")
INSTRUCTIONS = {
    "upos": "Tag each word with its Universal Dependencies part-of-speech tag (UPOS).",
    "massive": "Tag each word with its slot label in BIO format (O outside slots).",
}


class TaskUnavailable(RuntimeError):
    """A task whose data cannot be reached here (MASSIVE without the hub)."""


@dataclass(frozen=True)
class TaggingExample:
    """One sentence: its words and gold tags (one per word), language and where it came from."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    lang: str
    source: str  # "file:line" or "dataset:split:index"

    def __post_init__(self):
        if len(self.words) != len(self.tags):
            raise ValueError(f"{self.source}: {len(self.words)} words but {len(self.tags)} tags")
        if not self.words:
            raise ValueError(f"{self.source}: empty sentence")


def _word(w: str) -> str:
    return re.sub(r"\s+", "_", w.strip()) or "_"


def prompt(task: str, words: Sequence[str]) -> str:
    """The prompt of :data:`PROMPT_FORMAT` (ends with ``Tags:``; the answer starts with a space)."""
    if task not in INSTRUCTIONS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    return f"{INSTRUCTIONS[task]}\nWords: {' '.join(_word(w) for w in words)}\nTags:"


def answer(tags: Sequence[str]) -> str:
    """The answer text (without the end-of-sequence token, which the encoder appends)."""
    return " " + " ".join(tags)


def parse_tags(text: str) -> list[str]:
    """Tags from generated text: its first line, split at whitespace."""
    line = text.strip().split("\n", 1)[0] if text.strip() else ""
    return line.split()


def label_set(task: str, examples: Sequence[TaggingExample] = ()) -> tuple[str, ...]:
    """Valid tags: UPOS for ``upos``; ``O`` and B-/I- of every slot seen in ``examples`` for ``massive``."""
    if task == "upos":
        return UPOS_TAGS
    if task == "massive":
        slots = sorted({t[2:] for ex in examples for t in ex.tags if t != "O"})
        return ("O", *[f"{p}-{s}" for s in slots for p in ("B", "I")])
    raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")


# --------------------------------------------------------------------------- scoring
def score_upos(golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict[str, float]:
    """``tag_accuracy``, ``exact_match``, ``well_formed`` and ``n_sentences``, ``n_tags`` (see module doc)."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold but {len(preds)} predicted sequences")
    if not golds:
        raise ValueError("nothing to score")
    valid = set(UPOS_TAGS)
    right = total = exact = formed = 0
    for g, p in zip(golds, preds):
        right += sum(a == b for a, b in zip(g, p))
        total += len(g)
        exact += list(g) == list(p)
        formed += len(p) == len(g) and all(t in valid for t in p)
    n = len(golds)
    return {"tag_accuracy": right / total, "exact_match": exact / n, "well_formed": formed / n,
            "n_sentences": float(n), "n_tags": float(total)}


def score_slots(golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict[str, float]:
    """seqeval micro ``f1``, ``precision``, ``recall`` over BIO spans, ``well_formed``, ``n_sentences``."""
    try:
        from seqeval.metrics import f1_score, precision_score, recall_score
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("MASSIVE scoring needs seqeval: pip install 'alignfreeze[tasks]'") from e
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold but {len(preds)} predicted sequences")
    if not golds:
        raise ValueError("nothing to score")
    fixed, formed = [], 0
    for g, p in zip(golds, preds):
        p = list(p)[: len(g)]
        formed += len(p) == len(g)
        fixed.append(p + ["O"] * (len(g) - len(p)))
    y_true = [list(g) for g in golds]
    return {"f1": float(f1_score(y_true, fixed)), "precision": float(precision_score(y_true, fixed)),
            "recall": float(recall_score(y_true, fixed)), "well_formed": formed / len(golds),
            "n_sentences": float(len(golds))}


def score(task: str, golds, preds) -> dict[str, float]:
    """Scores of ``task`` (``upos``: :func:`score_upos`; ``massive``: :func:`score_slots`)."""
    if task == "upos":
        return score_upos(golds, preds)
    if task == "massive":
        return score_slots(golds, preds)
    raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")


PRIMARY_METRIC = {"upos": "tag_accuracy", "massive": "f1"}


# --------------------------------------------------------------------------- data
def upos_examples(path, lang: str | None = None, limit: int | None = None) -> list[TaggingExample]:
    """Sentences of a CoNLL-U file (optionally ``FILE@SELECTION``, :mod:`core.selection`) as
    ``upos`` examples (language from the file name); ``limit``: at most N after the selection."""
    from core.conllu import treebank_lang
    from core.inputs import select_treebanks

    out = []
    for sel in select_treebanks([path], limit=limit):
        f = sel.files[0]
        out.extend(TaggingExample(tuple(s.forms), tuple(s.upos), lang or treebank_lang(f), f"{f}:{s.line}")
                   for s in sel.items)
    return out


_SPAN = re.compile(r"\[\s*([^\]:]+?)\s*:\s*([^\]]*?)\s*\]")


def parse_massive_annotation(annot: str, source: str = "") -> tuple[list[str], list[str]]:
    """Words and BIO tags of a MASSIVE ``annot_utt`` such as ``wake me up at [time : five am]``."""
    words: list[str] = []
    tags: list[str] = []
    pos = 0
    for m in _SPAN.finditer(annot):
        outside = annot[pos : m.start()]
        if "[" in outside or "]" in outside:
            raise ValueError(f"{source}: unbalanced bracket in annotation {annot!r}")
        for w in outside.split():
            words.append(w)
            tags.append("O")
        slot, value = m.group(1).strip(), m.group(2).split()
        if not value:
            raise ValueError(f"{source}: empty slot value for {slot!r} in {annot!r}")
        for i, w in enumerate(value):
            words.append(w)
            tags.append(("B-" if i == 0 else "I-") + slot)
        pos = m.end()
    rest = annot[pos:]
    if "[" in rest or "]" in rest:
        raise ValueError(f"{source}: unbalanced bracket in annotation {annot!r}")
    for w in rest.split():
        words.append(w)
        tags.append("O")
    return words, tags


MASSIVE_DATASET = "AmazonScience/massive"


def massive_examples(locale: str, split: str, limit: int | None = None) -> list[TaggingExample]:
    """MASSIVE examples of ``locale`` (``en-US``, ``de-DE``...) from the HF hub.

    Raises :class:`TaskUnavailable` with the reason when the dataset cannot be loaded
    (no network, offline mode, ``datasets`` missing).
    """
    import os

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or \
            os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise TaskUnavailable(f"MASSIVE ({MASSIVE_DATASET}, {locale}) skipped: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE "
                              "is set, and the dataset comes from the HuggingFace hub")
    try:
        import datasets

        ds = datasets.load_dataset(MASSIVE_DATASET, locale, split=split)
    except Exception as e:  # network, auth, missing package: all mean "not here"
        raise TaskUnavailable(f"MASSIVE ({MASSIVE_DATASET}, {locale}, {split}) skipped: the HuggingFace hub is "
                              f"not reachable or the dataset failed to load ({type(e).__name__}: {e})") from e
    out = []
    lang = locale.split("-")[0]
    for i, row in enumerate(ds):
        if limit is not None and i >= limit:
            break
        src = f"{MASSIVE_DATASET}:{locale}:{split}:{i}"
        words, tags = parse_massive_annotation(row["annot_utt"], src)
        out.append(TaggingExample(tuple(words), tuple(tags), lang, src))
    return out
