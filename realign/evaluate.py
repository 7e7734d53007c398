"""Zero-shot evaluation into a tidy table: UPOS accuracy per treebank, XNLI when reachable.

UPOS: accuracy over SYNTACTIC words (the UD convention; multiword-token ranges and
empty nodes are not words). Each word takes the prediction of the surface token that
carries it (see :mod:`realign.finetune` for the multiword-token rule and its effect);
sentences are tokenised as running text (:mod:`core.encoding`) and token logits are pooled
to words with :func:`core.pooling.pool_subwords` using the manifest's
``prediction_pooling`` (``first`` by default), so padding, special tokens and bare
word-start markers never reach a prediction. A word that no piece reached (a tokenizer
that drops a character) counts as wrong, never silently skipped. Long sentences are split
into windows at word boundaries (a word longer than a window is truncated inside its own
window); the counts are printed and kept in ``df.attrs["encoding"]``.

Rows: ``model, lang, task, metric, value, n_words, file`` (for XNLI ``n_words`` holds
the number of scored examples and ``file`` the dataset split).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from core.conllu import UPOS_TAGS, Sentence

from .finetune import XNLI_LABELS  # noqa: F401  (label order of XNLI heads: entailment, neutral, contradiction)

COLUMNS = ("model", "lang", "task", "metric", "value", "n_words", "n_sentences", "file", "selection")
XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


class HubUnavailable(RuntimeError):
    """The HuggingFace hub cannot be reached (offline mode or no network)."""


# ----------------------------------------------------------------------------- scoring

def upos_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str | None]]) -> tuple[int, int]:
    """``(correct, total)`` over words; ``None`` predictions are wrong. Sentence and word
    counts must match (a mismatch is a ``ValueError`` naming the sentence)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    correct = total = 0
    for s, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {s}: {len(g)} gold words but {len(p)} predictions")
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    return correct, total


def label_names(model) -> tuple[str, ...]:
    """The model's output labels in id order; generic ``LABEL_i`` names of a 17-way head
    are read as :data:`core.conllu.UPOS_TAGS` (our own fine-tuning always names them)."""
    id2label = getattr(model.config, "id2label", None) or {}
    names = tuple(str(id2label[i]) for i in sorted(id2label, key=int))
    if names and all(n.startswith("LABEL_") for n in names) and len(names) == len(UPOS_TAGS):
        return UPOS_TAGS
    unknown = [n for n in names if n not in UPOS_TAGS]
    if not names or unknown:
        raise ValueError(f"the model's labels {list(names)[:5]}... are not UD UPOS tags "
                         f"(unknown: {unknown[:5]}); evaluate a model fine-tuned with `alignfreeze finetune`")
    return names


def predict_upos(model, tokenizer, sentences: Sequence[Sentence], *, batch_size: int = 32,
                 max_length: int | None = None, pooling: str = "first", progress: bool = False,
                 stats=None) -> list[list[str | None]]:
    """UPOS prediction for every syntactic word of every sentence (``None``: no piece).

    Sentences are tokenised as running text and windowed by :func:`core.encoding.encode_windows`;
    token logits are pooled to words by :func:`core.pooling.pool_subwords` with ``pooling``.
    ``stats`` (a :class:`core.encoding.EncodingStats`) receives the window counts.
    """
    import torch
    from tqdm.auto import tqdm

    from core.encoding import collate, encode_windows, model_max_length, pad_id_of

    labels = label_names(model)
    max_length = max_length or model_max_length(model, tokenizer)
    device = next(model.parameters()).device
    token_pred: list[list[str | None]] = [[None] * len(s.tokens) for s in sentences]
    windows = [w for w in encode_windows(tokenizer, sentences, max_length, stats=stats) if w.end > w.start]
    windows.sort(key=lambda w: -len(w.input_ids))  # less padding
    pad = pad_id_of(tokenizer)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for k in tqdm(range(0, len(windows), batch_size), desc="predict", unit="batch", disable=not progress):
                chunk = windows[k : k + batch_size]
                batch = collate(chunk, pad).to(device)
                logits = model(**batch.inputs).logits
                words, counts = batch.pool(logits.float(), pooling)
                best = words.argmax(-1).cpu().tolist()
                counts = counts.cpu().tolist()
                slot = 0
                for w in chunk:
                    for i in range(w.start, w.end):
                        token_pred[w.sentence][i] = labels[best[slot]] if counts[slot] > 0 else None
                        slot += 1
    finally:
        model.train(was_training)
    return [[token_pred[i][t] for t in sent.word_to_token] for i, sent in enumerate(sentences)]


# ----------------------------------------------------------------------------- XNLI

def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE switch the hub off."""
    from core.models import is_offline

    return is_offline() or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False")


def load_xnli(lang: str, split: str = "test"):
    """The XNLI split of ``lang`` from the HF hub; :class:`HubUnavailable` when offline or
    unreachable (never a crash deep inside ``datasets``)."""
    if lang not in XNLI_LANGS:
        raise ValueError(f"XNLI has no language {lang!r}: expected one of {', '.join(XNLI_LANGS)}")
    if hub_offline():
        raise HubUnavailable("the HuggingFace hub is switched off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE=1)")
    try:
        from datasets import load_dataset

        return load_dataset("xnli", lang, split=split)
    except (ConnectionError, OSError, TimeoutError) as e:
        raise HubUnavailable(f"the HuggingFace hub is unreachable ({type(e).__name__}: {e})") from e


def xnli_accuracy(model, tokenizer, dataset, *, batch_size: int = 32, max_length: int = 128) -> tuple[int, int]:
    """``(correct, total)`` of a 3-way sequence-classification model on XNLI examples
    (``premise``, ``hypothesis``, ``label`` in entailment/neutral/contradiction order)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    with torch.no_grad():
        for k in range(0, len(dataset), batch_size):
            rows = dataset[k : k + batch_size]
            enc = tokenizer(rows["premise"], rows["hypothesis"], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt").to(device)
            pred = model(**enc).logits.argmax(-1).cpu()
            gold = torch.as_tensor(rows["label"])
            correct += int((pred == gold).sum())
            total += len(gold)
    return correct, total


# ----------------------------------------------------------------------------- entry point

def _load(model_or_dir, tokenizer, task: str):
    from core.manifest import read_manifest
    from core.models import load_model, load_tokenizer

    if isinstance(model_or_dir, str | Path):
        name = str(model_or_dir)
        manifest = read_manifest(name) if Path(name).is_dir() else None
        if manifest is not None and manifest.get("kind") != "finetune":
            raise ValueError(f"{name}: a {manifest.get('kind')!r} checkpoint has no trained task head; "
                             f"fine-tune it first (alignfreeze finetune --model {name} ...)")
        if manifest is not None and manifest.get("task", "upos") != task:
            raise ValueError(f"{name}: fine-tuned for {manifest.get('task')!r}, not {task!r}")
        hf_task = "token-classification" if task == "upos" else "sequence-classification"
        if hf_task == "token-classification":
            model = load_model(name, task=hf_task)
        else:
            from transformers import AutoModelForSequenceClassification

            from core.models import from_pretrained_checked, is_offline, resolve_model_path

            model = from_pretrained_checked(AutoModelForSequenceClassification, resolve_model_path(name), str(name),
                                            local_files_only=is_offline())
        from core.names import default_name

        return model, tokenizer or load_tokenizer(name), default_name(name), manifest
    if tokenizer is None:
        raise ValueError("evaluate: pass the tokenizer together with a loaded model")
    return model_or_dir, tokenizer, getattr(model_or_dir.config, "_name_or_path", "") or "model", None


def evaluate(
    model,
    treebanks: Sequence[str | Path] = (),
    *,
    tokenizer=None,
    tasks: Sequence[str] = ("upos",),
    xnli_langs: Sequence[str] = (),
    model_name: str | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    progress: bool = True,
    max_sentences: int | None = None,
):
    """Zero-shot evaluation of a fine-tuned model; returns a tidy ``pandas.DataFrame``.

    Args:
        model: a fine-tuned checkpoint folder (with its manifest) or name, or a loaded
            token-classification model (then pass ``tokenizer``).
        treebanks: CoNLL-U files, globs or UD folders, each optionally with a selection
            (``fr_pud-ud-test.conllu@501:1000``, :mod:`core.selection`); one row per file,
            language from the file name (``fr_pud-ud-test.conllu`` -> ``fr``).
        max_sentences: at most this many sentences per file, after its selection (recorded
            in the ``selection`` column as ``first=N`` when it cut sentences).
        tasks: ``upos`` and/or ``xnli``. XNLI needs a 3-way sequence-classification
            model and the hub; when the hub is unreachable it is skipped with a message on
            stderr and recorded in ``df.attrs["skipped"]`` (not an error).
        xnli_langs: XNLI languages (default: all 15).
        model_name: the ``model`` column (default: the checkpoint's display name,
            :func:`core.names.default_name`: e.g. ``front-s42+upos``).
        batch_size, max_length: prediction batches; windows of at most ``max_length``.

    Rows: ``model, lang, task="upos", metric="accuracy", value, n_words, n_sentences, file,
    selection`` (``all`` for a whole file).
    """
    import pandas as pd

    from core.conllu import treebank_lang
    from core.inputs import select_treebanks, treebank_files

    unknown = [t for t in tasks if t not in ("upos", "xnli")]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}: expected upos and/or xnli")
    from core.encoding import EncodingStats, report

    rows: list[dict] = []
    skipped: list[str] = []
    encoding: dict[str, dict] = {}
    if "upos" in tasks:
        if not treebank_files(treebanks):
            raise ValueError("evaluate: no treebank given for the upos task")
        selected = select_treebanks(treebanks, limit=max_sentences)  # every selection checked before the model loads
        m, tok, name, manifest = _load(model, tokenizer, "upos")
        pooling = (manifest or {}).get("prediction_pooling", "first")
        for sel in selected:
            f, sents = sel.files[0], sel.items
            st = EncodingStats()
            pred = predict_upos(m, tok, sents, batch_size=batch_size, max_length=max_length, pooling=pooling,
                                progress=progress, stats=st)
            report(st, str(f))
            encoding[str(f)] = st.to_dict()
            correct, total = upos_accuracy([s.upos for s in sents], pred)
            rows.append({"model": model_name or name, "lang": treebank_lang(f), "task": "upos",
                         "metric": "accuracy", "value": correct / total if total else float("nan"),
                         "n_words": total, "n_sentences": len(sents), "file": str(f), "selection": sel.label})
    if "xnli" in tasks:
        langs = list(xnli_langs) or list(XNLI_LANGS)
        try:
            data = {lang: load_xnli(lang) for lang in langs}
        except HubUnavailable as e:
            msg = f"XNLI skipped: {e}"
            print(f"alignfreeze: {msg}", file=sys.stderr)
            skipped.append(msg)
            data = {}
        if data:
            m, tok, name, _ = _load(model, tokenizer, "xnli")
            for lang, ds in data.items():
                correct, total = xnli_accuracy(m, tok, ds, batch_size=batch_size)
                rows.append({"model": model_name or name, "lang": lang, "task": "xnli", "metric": "accuracy",
                             "value": correct / total if total else float("nan"), "n_words": total,
                             "n_sentences": total, "file": f"xnli/{lang}/test", "selection": "all"})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs["skipped"] = skipped
    df.attrs["encoding"] = encoding  # per treebank: windows, truncated words, words without pieces
    return df
