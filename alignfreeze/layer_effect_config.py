"""The layer-effect study's config (:mod:`alignfreeze.layer_effect`): one dataclass, saved in
``layer_effect.json``, the ``alignfreeze layer-effect`` options generated from it.

Kept apart from the study so that building the parser imports neither torch nor pandas
(``alignfreeze --help`` answers at once) and the command checks its options before the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import option as _f

MEASURES = ("upos-probe", "sentence-retrieval", "word-retrieval", "upos-finetune")


@dataclass
class LayerEffectConfig:
    """Everything that decides a layer-effect study (saved in ``layer_effect.json``)."""

    model: tuple[str, ...] = field(metadata={"help": "realigned checkpoint folder(s): one, or several seeds of one strategy"})
    base: str = field(metadata={"help": "the pretrained model they were realigned from (prepared name, folder, hub name)"})
    train: str = field(metadata={"help": "probe training treebank (held-out sentences when it is also in --eval)"})
    eval: tuple[str, ...] = field(metadata={"help": "treebanks to measure (files, globs, UD folders); language from the name"})
    pivot: str = _f("", "parallel CoNLL-U file the retrieval measures pair every language with (default: --train)")
    revert: tuple[str, ...] = _f(("each", "front", "back", "all"), "variants: each (every layer alone, 0 = embeddings), "
                                 "front/back (lower/upper half), all (the pretrained model), or freeze specs (emb,1-3)")
    measures: tuple[str, ...] = _f(("upos-probe", "sentence-retrieval"),
                                   "upos-probe | sentence-retrieval | word-retrieval (needs --pairs) | upos-finetune "
                                   "(needs --finetune-train; fine-tunes every variant: GPU path)")
    readout: str = _f("last", "layers at which probes and retrieval read the model: last | all | 0,6-12")
    pairs: tuple[str, ...] = _f((), "word-pair JSONL files from `alignfreeze pairs` (pivot -> lang), named *-LANG.jsonl")
    max_sentences: int = _f(0, "first N sentences of every eval/pivot file (0 = all)")
    train_sentences: int = _f(0, "first N sentences of the probe training file (0 = --max-sentences)")
    pooling: str = _f("first", "sub-word pooling: first | mean | last | sum")
    batch_size: int = _f(32, "sentences per forward pass")
    chunk_sentences: int = _f(64, "sentences per chunk: block outputs of one chunk are kept for the replay")
    reuse: bool = _f(True, "replay the blocks below each variant's lowest reverted layer instead of recomputing them")
    probe_seed: int = _f(0, "seed of the probes' held-out split (the same for every variant: paired)")
    holdout: float = _f(0.2, "share of the training treebank's sentences held out when it is also evaluated")
    C: float = _f(1.0, "inverse L2 strength of the probes (scikit-learn's C)")
    max_iter: int = _f(100, "probe L-BFGS iterations")
    max_unknown: float = _f(0.9, "error when more than this share of a file's words are only the unknown token")
    finetune_train: tuple[str, ...] = _f((), "upos-finetune: source treebank(s) to fine-tune every variant on")
    finetune_steps: int = _f(0, "upos-finetune: optimizer steps (0 = by epochs)")
    finetune_epochs: int = _f(0, "upos-finetune: epochs (0 = the task's default, 5)")
    finetune_batch_size: int = _f(32, "upos-finetune: effective batch size")
    finetune_lr: float = _f(0.0, "upos-finetune: learning rate (0 = by family)")
    finetune_seed: int = _f(42, "upos-finetune: seed (the same for every variant: paired)")
    keep_models: bool = _f(False, "upos-finetune: keep the reverted and fine-tuned checkpoints under OUT/models")
    level: float = _f(0.95, "confidence level of the intervals")
    device: str = _f("cpu", "device of the models (cpu, cuda, cuda:1)")
    name: str = _f("", "value of the model column (default: the checkpoints' strategy, from their manifests)")

    def validate(self) -> LayerEffectConfig:
        """Raise ``ValueError`` naming the first bad field; return self."""
        bad = [m for m in self.measures if m not in MEASURES]
        if bad or not self.measures:
            raise ValueError(f"measures {list(bad) or '(none)'}: expected some of {', '.join(MEASURES)}")
        if "word-retrieval" in self.measures and not self.pairs:
            raise ValueError("measure word-retrieval needs --pairs (word-pair JSONL files, one per language)")
        if "upos-finetune" in self.measures and not self.finetune_train:
            raise ValueError("measure upos-finetune needs --finetune-train (the source treebank)")
        if not self.model:
            raise ValueError("--model: at least one realigned checkpoint is needed")
        if not self.eval:
            raise ValueError("--eval: at least one treebank to measure is needed")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), not {self.level}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), not {self.holdout}")
        for name in ("batch_size", "chunk_sentences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("max_sentences", "train_sentences"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        return self
