"""The realignment run config: one dataclass, saved in every manifest, CLI generated from it.

Defaults follow the reference (``../shared/design/REFERENCE.md``): Adam with lr 2e-5 for
mBERT/DistilmBERT and 7.5e-6 for XLM-R, betas (0.9, 0.999), eps 1e-8, no scheduler,
batch 16 sentence pairs, max length 96, word-level InfoNCE with strong negatives at
tau = 0.1 on the LAST layer, first sub-word pooling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import option as _f

LOSSES = ("word_infonce", "sentence_infonce", "l2")
NEGATIVES = ("strong", "weak")
CANDIDATES = ("all", "aligned")

# Adam learning rates of the paper code, by config.model_type
FAMILY_LR = {"bert": 2e-5, "distilbert": 2e-5, "xlm-roberta": 7.5e-6, "roberta": 7.5e-6}
DEFAULT_LR = 2e-5


def default_lr(model_type: str | None) -> float:
    """The reference learning rate for a family (2e-5 when the paper gives none)."""
    return FAMILY_LR.get(model_type or "", DEFAULT_LR)



@dataclass
class RealignConfig:
    """Everything that decides a realignment run (enough to repeat it from its manifest)."""

    model: str = field(metadata={"help": "prepared name, local folder or hub name of the model to realign"})
    pairs: tuple[str, ...] = field(metadata={"help": "word-pair JSONL file(s) from `alignfreeze pairs`, each optionally "
                                                     "with a selection (pairs.jsonl@1:500; docs/data.md)"})
    out: str = field(metadata={"help": "output folder (model + tokenizer + manifest.json, written atomically)"})
    freeze: str = _f("none", "none | front | back | front+emb | back+emb | layers such as emb,1-3 (0 = embeddings)")
    steps: int = _f(0, "optimizer steps; 0 = one pass over the pairs")
    batch_size: int = _f(16, "sentence pairs per step (all processes together)")
    lr: float = _f(0.0, "Adam learning rate; 0 = by family (2e-5 mBERT/DistilmBERT, 7.5e-6 XLM-R, else 2e-5)")
    betas: tuple[float, ...] = _f((0.9, 0.999), "Adam betas")
    eps: float = _f(1e-8, "Adam epsilon")
    max_length: int = _f(96, "tokens per window, at most the model's positions (longer sentences are split into "
                             "windows at word boundaries, never truncated)")
    seed: int = _f(42, "seed of data order, dropout and initialisation")
    layers: str = _f("last", "layers whose outputs are realigned, losses summed: last | middle | 0,3-5 ...")
    loss: str = _f("word_infonce", "word_infonce | sentence_infonce | l2")
    temperature: float = _f(0.1, "InfoNCE temperature tau")
    negatives: str = _f("strong", "word InfoNCE negatives: strong (mask only the word itself) | weak (also same-language words)")
    candidates: str = _f("all", "word InfoNCE candidates: all words of both sentences | aligned words only")
    pooling: str = _f("first", "sub-word -> word pooling: first | mean | last | sum")
    reg_weight: float = _f(0.0, "weight of the L2 pull of trainable weights towards their initial values")
    dropout: bool = _f(True, "train mode (dropout on) during realignment, as the reference")
    checkpoint_every: int = _f(0, "save a resumable checkpoint every N steps (0 = never)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep under OUT/checkpoints")
    retain_checkpoints: bool = _f(False, "keep OUT/checkpoints once the run has finished (each holds the model, "
                                         "Adam's moments and RNG states, ~3x the model); by default they are deleted "
                                         "when the final model is written, since they only serve --resume")
    name: str = _f("", "display name recorded in the manifest and shown in tables (default: STRATEGY-sSEED, "
                       "e.g. front-s42; freeze none is full)")
    mixed_precision: str = _f("no", "no | fp16 | bf16 (via accelerate)")
    embedding_update: str = _f("dense", "Adam on the word embeddings: dense (torch Adam) | touched (only rows that "
                                        "ever had a gradient: bit-identical result, faster on large vocabularies)")

    def validate(self) -> RealignConfig:
        """Raise ``ValueError`` naming the first bad field; return self."""
        from core.pooling import POOLING_METHODS  # lazy: building the CLI must not import torch

        choices = {"loss": LOSSES, "negatives": NEGATIVES, "candidates": CANDIDATES,
                   "pooling": POOLING_METHODS, "mixed_precision": ("no", "fp16", "bf16"),
                   "embedding_update": ("dense", "touched")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if not self.pairs:
            raise ValueError("pairs: at least one word-pair file is needed")
        if self.name:
            from core.names import NAME

            if not NAME.match(self.name):
                raise ValueError(f"name={self.name!r}: expected letters, digits, '_', '.', '+' or '-'")
        for name in ("batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("steps", "checkpoint_every", "lr", "reg_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, not {self.temperature}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), not {self.betas}")
        return self

    def resolved_lr(self, model_type: str | None) -> float:
        return self.lr if self.lr > 0 else default_lr(model_type)
