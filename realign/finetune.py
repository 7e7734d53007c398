"""Task fine-tuning: UPOS tagging (token classification) or XNLI (sentence-pair
classification), with the optional "during" variant.

Reading order of :func:`finetune`:

1. read the source treebank(s) (:mod:`core.conllu`), load the model with a fresh
   token-classification head over :data:`core.conllu.UPOS_TAGS` (in that order) — or,
   for ``task="xnli"``, the XNLI training data of the languages in ``train`` (HF hub)
   and a 3-way sequence-classification head (entailment, neutral, contradiction);
2. hash the starting weights, UNFREEZE every parameter (after realignment all layers
   are trained on the task, as in the paper);
3. AdamW, linear schedule with 10% warm-up, effective batch 32 = ``batch_size``
   sentences per optimizer step split into ``grad_accumulation`` micro-batches;
4. the loop (HF Accelerate: CPU, one GPU or DDP without code changes);
5. write ``OUT`` atomically: ``save_pretrained`` + tokenizer + ``manifest.json``.

Labels and sub-words. The model sees the running text of the *surface tokens* (``au``,
not ``à le``; ``SpaceAfter=No`` glues tokens, :mod:`core.encoding`). Each surface token is
labelled on its FIRST piece that carries its characters (never a bare ``▁`` marker); the
other pieces get -100 and never enter the loss. A piece that is the first piece of two
tokens (XLM-R's ``是中国``) is labelled with the first token's tag, like a multiword token,
and counted (``data.shared_first_pieces`` in the manifest). At prediction time the token logits are pooled to words with the
toolkit's one pooling function, :func:`core.pooling.pool_subwords`, with method
``first`` — so training and prediction use the same convention as ``pooling="first"``
everywhere else (realignment, probes). With ``label_all_subwords=True`` every sub-word
carries the label and predictions pool the logits with ``mean``; the manifest records
which (``prediction_pooling``).

Multiword tokens (MWT). Training: a surface token that holds several syntactic words
(``au`` = ``à`` ADP + ``le`` DET) is labelled with its FIRST word's tag (ADP). Evaluation
(:mod:`realign.evaluate`) is per syntactic word, every word taking the prediction of the
token that carries it, so ``le`` is scored against the prediction made for ``au``.
Effect: the non-first words of an MWT whose tag differs from the first word's are
always wrong, which caps accuracy on MWT-rich languages (French, German, Arabic...) a
little below 100%; the cap is the same for every model and strategy, so comparisons
between strategies are unaffected. English EWT (the usual source) has few MWTs.

Sentences longer than ``max_length`` tokens are split into windows at word boundaries
(:func:`core.encoding.encode_windows`); only a single word longer than a window is
truncated, inside its own window; windows and truncations are counted in the manifest.

"During" variant (``during_realign``). The realignment loss
(:func:`realign.losses.realignment_loss`) on a batch of word pairs is added at every
optimizer step, and the ``during_freeze`` half's REALIGNMENT gradients are dropped, so
only the task gradient moves it. Done exactly, per step:

1. realignment backward with ``inputs=`` the free parameters only (autograd never writes
   a gradient into the dropped half); the gradients are set aside (averaged over
   processes) and cleared;
2. the task micro-batches' backward as in a plain run, then clipping of the TASK
   gradient exactly as in a plain run;
3. ``grad += during_weight * realignment grad`` on the free parameters; optimizer step.

So the dropped half receives bit for bit the update of a task-only run at the same
weights (tested); the free half gets task + realignment.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import option as _f
from core.conllu import UPOS_TAGS, Sentence

if TYPE_CHECKING:  # pragma: no cover
    import torch

IGNORE = -100
TASKS = ("upos", "xnli")
DEFAULT_EPOCHS = {"upos": 5, "xnli": 2}
XNLI_LABELS = ("entailment", "neutral", "contradiction")  # the dataset's label ids 0, 1, 2



@dataclass
class FinetuneConfig:
    """Everything that decides a fine-tuning run (saved in the manifest)."""

    model: str = field(metadata={"help": "prepared name, local folder (e.g. a realigned checkpoint) or hub name"})
    train: tuple[str, ...] = field(metadata={"help": "source treebank(s): CoNLL-U files, globs or UD folders, each "
                                                     "optionally with a selection (en_ewt-ud-train.conllu@1:500)"})
    out: str = field(metadata={"help": "output folder (model + tokenizer + manifest.json, written atomically)"})
    task: str = _f("upos", "upos (token classification, 17 UD tags) | xnli (train = XNLI languages, hub needed)")
    epochs: int = _f(0, "passes over the training data; 0 = by task (5 PoS, 2 XNLI, as the reference)")
    train_limit: int = _f(0, "use only the first N training examples (0 = all; XNLI's English train has 393k)")
    steps: int = _f(0, "optimizer steps; 0 = epochs x ceil(examples / batch_size)")
    batch_size: int = _f(32, "EFFECTIVE batch: sentences (windows) per optimizer step, all micro-batches and processes")
    grad_accumulation: int = _f(1, "micro-batches per optimizer step (batch_size must be divisible by it)")
    lr: float = _f(0.0, "AdamW learning rate; 0 = by family (2e-5 mBERT/DistilmBERT, 7.5e-6 XLM-R, else 2e-5)")
    weight_decay: float = _f(0.0, "AdamW weight decay (HF Trainer default 0)")
    warmup_ratio: float = _f(0.1, "share of the steps with a linear warm-up, then linear decay to 0")
    max_grad_norm: float = _f(1.0, "clip the task gradient norm (0 = off; HF Trainer default 1.0)")
    max_length: int = _f(128, "tokens per sequence; longer sentences are split into windows, never truncated")
    seed: int = _f(42, "seed of the head initialisation, data order and dropout")
    label_all_subwords: bool = _f(False, "label every sub-word (predict with mean-pooled logits) instead of the first only")
    dropout: bool = _f(True, "train mode (dropout on) during fine-tuning")
    mixed_precision: str = _f("no", "no | fp16 | bf16 (via accelerate)")
    during_realign: tuple[str, ...] = _f((), "word-pair JSONL file(s): add the realignment loss during fine-tuning")
    during_freeze: str = _f("none", "freeze spec whose REALIGNMENT gradients are dropped (task gradients still move it)")
    during_weight: float = _f(1.0, "weight of the realignment loss added to the task loss")
    during_batch_size: int = _f(16, "sentence pairs per realignment batch (one per optimizer step)")
    during_layers: str = _f("last", "realigned layers of the during variant: last | middle | 0,3-5 ...")
    during_loss: str = _f("word_infonce", "word_infonce | sentence_infonce | l2")
    during_temperature: float = _f(0.1, "InfoNCE temperature of the during variant")
    during_negatives: str = _f("strong", "strong | weak negatives of the during variant")
    during_max_length: int = _f(96, "tokens per sentence of the realignment batches")
    name: str = _f("", "display name recorded in the manifest and shown in tables (default: the starting "
                       "model's name + task, e.g. front-s42+upos)")

    def validate(self) -> FinetuneConfig:
        """Raise ``ValueError`` naming the first bad field; return self."""
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: expected one of {', '.join(TASKS)}")
        if not self.train:
            raise ValueError("train: at least one source treebank (upos) or XNLI language (xnli) is needed")
        for name in ("batch_size", "grad_accumulation", "max_length", "during_batch_size",
                     "during_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("epochs", "train_limit", "steps", "lr", "weight_decay", "max_grad_norm", "during_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.batch_size % self.grad_accumulation:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accumulation "
                             f"{self.grad_accumulation}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision={self.mixed_precision!r}: expected no, fp16 or bf16")
        if self.name:
            from core.names import NAME

            if not NAME.match(self.name):
                raise ValueError(f"name={self.name!r}: expected letters, digits, '_', '.', '+' or '-'")
        return self

    @property
    def n_epochs(self) -> int:
        """``epochs``, or the reference's default for the task (5 PoS, 2 XNLI)."""
        return self.epochs or DEFAULT_EPOCHS[self.task]

    @property
    def prediction_pooling(self) -> str:
        """How token logits become word logits (the labelling convention's twin)."""
        return "mean" if self.label_all_subwords else "first"

    def realign_config(self):
        """The :class:`realign.config.RealignConfig` of the during variant's loss."""
        from .config import RealignConfig

        return RealignConfig(
            model=self.model, pairs=tuple(self.during_realign), out=self.out, freeze=self.during_freeze,
            batch_size=self.during_batch_size, max_length=self.during_max_length, seed=self.seed,
            layers=self.during_layers, loss=self.during_loss, temperature=self.during_temperature,
            negatives=self.during_negatives, pooling="first",
        ).validate()


def default_finetune_lr(model_type: str | None) -> float:
    """Fine-tuning learning rate when ``lr`` is 0.

    The reference gives learning rates by family for realignment only (2e-5 mBERT and
    DistilmBERT, 7.5e-6 XLM-R); we use the same table for fine-tuning so that one
    family has one rate, and 2e-5 (the usual BERT fine-tuning rate) for other families.
    """
    from .config import default_lr

    return default_lr(model_type)


# ----------------------------------------------------------------------------- data

def token_labels(sent: Sentence) -> tuple[list[str], list[str]]:
    """Surface tokens of ``sent`` and one UPOS label each: a multiword token takes the
    label of its FIRST syntactic word (see the module doc)."""
    labels: list[str | None] = [None] * len(sent.tokens)
    for w, t in zip(sent.words, sent.word_to_token):
        if labels[t] is None:
            labels[t] = w.upos
    if any(lab is None for lab in labels):  # pragma: no cover - the reader guarantees it
        raise ValueError(f"{sent.path}:{sent.line}: a surface token carries no syntactic word")
    return list(sent.tokens), [str(lab) for lab in labels]


@dataclass
class Example:
    """One training sequence: token ids with specials, labels (-100 = not scored)."""

    input_ids: list[int]
    labels: list[int]
    sequence: bool = False  # one label for the whole sequence (XNLI)


def window_labels(window, word_labels: list[int], all_subwords: bool) -> tuple[list[int], int]:
    """Per-token labels of one :class:`core.encoding.Window` and the number of words left
    without a token of their own.

    Specials, padding and bare markers: -100. The FIRST piece carrying characters of each
    word gets the word's label; later pieces -100 (or the label too with ``all_subwords``).
    A piece that is the first piece of two words (XLM-R's ``是中国`` = ``是`` + ``中国``)
    takes the label of the first of them, as a multiword token does; the other word is
    predicted from the same piece (``first`` pooling), so it is counted, not lost.
    """
    import numpy as np

    labels = np.full(len(window.input_ids), IGNORE, dtype=np.int64)
    order = np.lexsort((window.piece_token, window.piece_word))  # by word, then position
    tok, word = window.piece_token[order], window.piece_word[order]
    first = np.ones(len(tok), dtype=bool)
    first[1:] = word[1:] != word[:-1]
    keep = first if not all_subwords else np.ones(len(tok), dtype=bool)
    # later words first, so that the earliest word of a shared piece writes last and wins
    for t, w in zip(tok[keep][::-1].tolist(), word[keep][::-1].tolist()):
        labels[t] = word_labels[w - window.start]
    first_tok = tok[first]
    shared = len(first_tok) - len(np.unique(first_tok))
    return labels.tolist(), shared


def build_examples(sentences: list[Sentence], tokenizer, max_length: int, all_subwords: bool = False,
                   labels: tuple[str, ...] = UPOS_TAGS) -> tuple[list[Example], dict]:
    """Tokenise labelled sentences as running text (:mod:`core.encoding`); a sentence over
    ``max_length`` tokens becomes windows, a word over a window is truncated; all counted."""
    from core.encoding import EncodingStats, encode_windows, report

    lab_id = {t: i for i, t in enumerate(labels)}
    enc_stats = EncodingStats()
    windows = encode_windows(tokenizer, sentences, max_length, stats=enc_stats)
    ids = [[lab_id[x] for x in token_labels(s)[1]] for s in sentences]
    examples, shared = [], 0
    for w in windows:
        labs, n_shared = window_labels(w, ids[w.sentence], all_subwords)
        shared += n_shared
        examples.append(Example(w.input_ids.tolist(), labs))
    stats = {"sentences": len(sentences), "examples": len(examples), "windowed": enc_stats.windowed,
             "windows": enc_stats.windows, "truncated_words": enc_stats.truncated_words,
             "words_without_pieces": enc_stats.words_without_pieces,
             "shared_piece_words": enc_stats.shared_piece_words, "shared_first_pieces": shared,
             "labelled_tokens": sum(sum(x != IGNORE for x in e.labels) for e in examples)}
    report(enc_stats, "fine-tuning data")
    return examples, stats


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels``: per token (-100 on
    padding) for tagging, ``(B,)`` for sentence-pair examples (one label each)."""
    import torch

    T = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for r, e in enumerate(examples):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        mask[r, :n] = 1
    if examples[0].sequence:
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e.labels[0] for e in examples])}
    lab = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for r, e in enumerate(examples):
        lab[r, : len(e.labels)] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def step_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Example indices of optimizer step ``step``: consecutive slices of a stream of seeded
    per-epoch permutations (a pure function of ``step`` and ``seed``)."""
    out: list[int] = []
    start = step * batch_size
    while len(out) < batch_size:
        epoch, pos = divmod(start + len(out), n)
        perm = _epoch_permutation(seed, epoch, n)
        out.extend(perm[pos : pos + batch_size - len(out)].tolist())
    return out


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int):
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


# ----------------------------------------------------------------------------- model

def xnli_examples(langs, tokenizer, max_length: int, limit: int = 0, split: str = "train") -> tuple[list[Example], dict]:
    """XNLI premise/hypothesis pairs of ``langs`` (HF hub, see :func:`realign.evaluate.load_xnli`)."""
    from . import evaluate as ev

    examples: list[Example] = []
    per_lang = {}
    for lang in langs:
        ds = ev.load_xnli(lang, split)
        if limit:
            ds = ds.select(range(min(limit, len(ds))))
        enc = tokenizer(list(ds["premise"]), list(ds["hypothesis"]), truncation=True, max_length=max_length)
        examples.extend(Example(list(ids), [int(lab)], True) for ids, lab in zip(enc["input_ids"], ds["label"]))
        per_lang[lang] = len(ds)
    return examples, {"examples": len(examples), "per_language": per_lang, "split": split}


def load_nli(name: str, labels: tuple[str, ...] = XNLI_LABELS):
    """A sequence-classification model over ``labels`` (fresh head on ``name``'s encoder)."""
    from transformers import AutoModelForSequenceClassification

    from core.models import from_pretrained_checked, is_offline, resolve_model_path

    id2label = dict(enumerate(labels))
    model = from_pretrained_checked(
        AutoModelForSequenceClassification, resolve_model_path(name), str(name), local_files_only=is_offline(),
        num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model.eval()
    return model


def load_tagger(name: str, labels: tuple[str, ...] = UPOS_TAGS):
    """A token-classification model over ``labels``: a fresh head on ``name``'s encoder
    (a realigned checkpoint, a prepared or a hub model), or the head of a tagger."""
    from core.models import load_model

    id2label = dict(enumerate(labels))
    return load_model(name, task="token-classification", num_labels=len(labels), id2label=id2label,
                      label2id={v: k for k, v in id2label.items()})


def _set_labels(model, labels: tuple[str, ...]) -> None:
    n = getattr(model.config, "num_labels", None)
    if n != len(labels):
        raise ValueError(f"the model has {n} output labels but the task has {len(labels)} "
                         f"({', '.join(labels)}); pass a token-classification model with {len(labels)} labels "
                         "or a model name/folder (a fresh head is then created)")
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}


def task_loss_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy (float32) and the number of scored items: labelled tokens for
    tagging (``labels`` ``(B, T)``), sequences for sentence-pair tasks (``(B,)``)."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((labels != IGNORE).sum())


# ----------------------------------------------------------------------------- the loop

def finetune(config: FinetuneConfig, model=None, tokenizer=None, progress: bool = True, *,
             callback: Callable[[int, dict], None] | None = None) -> Path:
    """Fine-tune ``config.model`` on ``config.train`` (UPOS or XNLI); returns the output folder.

    Args:
        config: the run (see :class:`FinetuneConfig`).
        model, tokenizer: an already loaded model with the task's head (17 UPOS labels, or
            3 XNLI labels) and its fast tokenizer; the model is trained IN PLACE. By
            default the model is loaded from ``config.model`` with a fresh, seeded head.
        progress: tqdm bar with the loss.
        callback: called as ``callback(step, parts)`` after every optimizer step (``step``
            counts from 1; ``parts`` holds ``"task"`` and, in the during variant,
            ``"realign"``), as in :func:`realign.train.realign`: logging, timing
            (``bench/bench_study_cost.py``).

    Raises ``ValueError`` for a finished output folder, bad configs, a model whose head
    does not have 17 labels, or an empty treebank.
    """
    import numpy as np
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from core.arch import arch_of
    from core.config import to_dict
    from core.encoding import model_max_length
    from core.io import atomic_dir
    from core.manifest import MANIFEST, base_weight_hash, read_manifest, write_manifest
    from core.models import load_tokenizer
    from core.names import name_from_manifest

    config.validate()
    t_start = time.perf_counter()
    out = Path(config.out)
    if (out / MANIFEST).is_file():
        raise ValueError(f"{out}: already holds a finished run ({MANIFEST}); choose another --out")
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)  # before loading: the new head's initialisation is seeded too

    # 1. data, model, tokenizer
    labels = UPOS_TAGS if config.task == "upos" else XNLI_LABELS
    if tokenizer is None:
        tokenizer = load_tokenizer(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if config.task == "upos":
        from core.inputs import entries, select_treebanks, selected_items

        selected = select_treebanks(config.train)  # FILE@SELECTION (core.selection)
        sentences = selected_items(selected)
        if config.train_limit:
            sentences = sentences[: config.train_limit]
        if not sentences:
            raise ValueError(f"{', '.join(config.train)}: no sentences to fine-tune on")
        if model is None:
            model = load_tagger(config.model)
        # windows never exceed the model's own positions (a 64-position model with max_length 128)
        max_length = min(config.max_length, model_max_length(model, tokenizer))
        examples, data_stats = build_examples(sentences, tokenizer, max_length, config.label_all_subwords)
        data_files = entries(selected)
    else:
        examples, data_stats = xnli_examples(config.train, tokenizer, config.max_length, config.train_limit)
        data_files = [{"path": f"hf:xnli/{lang}/train", "examples": n} for lang, n in data_stats["per_language"].items()]
        if not examples:
            raise ValueError(f"XNLI {', '.join(config.train)}: no training examples")
    if model is None:
        model = load_nli(config.model)
    _set_labels(model, labels)
    arch_of(model)  # unsupported families fail here, not mid-run
    model_type = model.config.model_type

    # 2. starting point, everything trainable (after realignment every layer is unfrozen)
    start_hash = base_weight_hash(model)
    for p in model.parameters():
        p.requires_grad_(True)

    during = bool(config.during_realign)
    records, rcfg, free_names, dropped = [], None, [], ()
    if during:
        from core.inputs import select_pairs, selected_items

        from .freeze import resolve_freeze
        from .losses import realignment_loss

        rcfg = config.realign_config()
        during_selected = select_pairs(config.during_realign)
        records = selected_items(during_selected)
        plan = resolve_freeze(model, config.during_freeze)
        dropped = tuple(plan.frozen_layers)
        drop = set(plan.frozen_parameter_names)
        free_names = [n for n, _ in model.named_parameters() if n not in drop]

    # 3. optimizer + schedule
    steps = config.steps or config.n_epochs * math.ceil(len(examples) / config.batch_size)
    lr = config.lr if config.lr > 0 else default_finetune_lr(model_type)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_ratio * steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    model.train(config.dropout)
    # the scheduler is NOT prepared: accelerate would step it once per process, but our
    # step count is already global (one step = one global batch split over the processes)
    model, optimizer = accelerator.prepare(model, optimizer)
    params = dict(accelerator.unwrap_model(model).named_parameters())
    free = [params[n] for n in free_names]

    # 4. the loop
    rank, world = accelerator.process_index, accelerator.num_processes
    history: list[dict] = []
    bar = tqdm(total=steps, desc="finetune", unit="step", disable=not (progress and accelerator.is_local_main_process))
    for step in range(steps):
        idx = step_indices(step, config.batch_size, len(examples), config.seed)[rank::world]
        parts: dict[str, float] = {}
        real_grads = None
        if during:
            # (a) realignment gradient of the FREE parameters only, set aside
            ridx = step_indices(step, config.during_batch_size, len(records), config.seed + 1)
            rbatch = [records[i] for i in ridx[rank::world]]
            with accelerator.no_sync(model), accelerator.autocast():
                rloss, rparts = realignment_loss(model, tokenizer, rbatch, rcfg)
            accelerator.backward(rloss, inputs=free)
            scale = accelerator.scaler.get_scale() if accelerator.scaler is not None else 1.0
            real_grads = [p.grad.detach().clone() / scale if p.grad is not None else torch.zeros_like(p)
                          for p in free]
            if world > 1:
                real_grads = accelerator.reduce(real_grads, reduction="mean")
            optimizer.zero_grad(set_to_none=True)
            parts["realign"] = rparts["total"]
        # (b) task gradient, micro-batch by micro-batch; the loss is normalised by the
        # labelled tokens of the whole step so accumulation equals one big batch
        micro = math.ceil(len(idx) / config.grad_accumulation)  # this process's share, split
        chunks = [idx[k : k + micro] for k in range(0, len(idx), micro)] or [[]]
        n_lab = sum(sum(x != IGNORE for x in examples[i].labels) for i in idx)
        task_total = 0.0
        for k, chunk in enumerate(chunks):
            if not chunk:
                continue
            batch = {key: v.to(accelerator.device) for key, v in collate([examples[i] for i in chunk],
                                                                           tokenizer.pad_token_id).items()}
            sync = contextlib.nullcontext() if k == len(chunks) - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss_sum, _ = task_loss_sum(model, batch)
                loss = loss_sum / max(n_lab, 1)
            accelerator.backward(loss)
            task_total += float(loss.detach())
        parts["task"] = task_total
        # (c) clip the task gradient as a plain run would, then add the realignment part
        accelerator.unscale_gradients()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                           config.max_grad_norm)
        if real_grads is not None:
            for p, g in zip(free, real_grads):
                if p.grad is None:
                    p.grad = config.during_weight * g
                else:
                    p.grad.add_(g, alpha=config.during_weight)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        history = (history + [parts])[-50:]
        bar.set_postfix({k: f"{v:.4f}" for k, v in parts.items()})
        bar.update(1)
        if callback is not None:
            callback(step + 1, parts)
    bar.close()

    # 5. output, atomically
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.eval()
        last = history[-10:]
        final_losses = {k: float(np.mean([h[k] for h in last])) for k in (last[0] if last else {})}
        parent = read_manifest(config.model) if Path(config.model).is_dir() else None
        manifest = {
            "kind": "finetune",
            "task": config.task,
            "config": to_dict(config),
            "base_model": {"name": config.model, "weight_hash": start_hash, "model_type": model_type},
            "parent": None if parent is None else {
                "path": str(config.model), "kind": parent.get("kind"), "base_model": parent.get("base_model"),
                "frozen_layers": parent.get("frozen_layers"), "name": name_from_manifest(parent)},
            "labels": list(labels),
            "label_scheme": ("premise/hypothesis pair, one label" if config.task == "xnli" else
                             "first character-carrying piece of each surface token (running text); MWT token and "
                             "shared first piece = the first word's tag"
                             if not config.label_all_subwords else "all sub-words; MWT token = its first word's tag"),
            "prediction_pooling": config.prediction_pooling,
            "frozen_parameters": [],
            "during": None if not during else {
                "pairs": [e for sel in during_selected for e in sel.entries()], "dropped_layers": list(dropped),
                "dropped_parameters": sorted(set(params) - set(free_names)), "weight": config.during_weight},
            "data_files": data_files,
            "data": data_stats,
            "seed": config.seed,
            "lr": lr,
            "steps": steps,
            "warmup_steps": warmup,
            "processes": world,
            "wall_time_s": time.perf_counter() - t_start,
            "final_losses": final_losses,
        }
        manifest["name"] = config.name or name_from_manifest(manifest)
        with atomic_dir(out) as tmp:
            final.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, manifest)
    accelerator.wait_for_everyone()
    return out
