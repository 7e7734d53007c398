"""The probing run config: one dataclass, saved in every probe's metadata, CLI generated from it.

Kept apart from :mod:`probing.run` so that building the ``alignfreeze probe`` parser imports
neither torch nor pandas (``alignfreeze --help`` answers at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("upos", "translation", "xnli")


@dataclass
class ProbeConfig:
    """Everything a probing run needs; saved in its metadata JSON so it can be repeated."""

    model: str = field(metadata={"help": "prepared name, local folder (checkpoint) or hub name"})
    task: str = field(default="upos", metadata={"help": "upos | translation | xnli"})
    train: str = field(default="", metadata={
        "help": "upos: training treebank; translation: pivot CoNLL-U file; xnli: training language"})
    eval: tuple[str, ...] = field(default=(), metadata={
        "help": "upos: treebanks (files, globs, UD folders); translation: parallel CoNLL-U files; xnli: languages"})
    layers: str = field(default="all", metadata={"help": "all | last | middle | 0,3-5 (0 = embeddings)"})
    pooling: str = field(default="first", metadata={"help": "sub-word pooling: first | mean | last | sum"})
    seeds: int = field(default=3, metadata={
        "help": "number of seeds (seed, seed+1, ...); with 2 or more, each seed trains on a bootstrap resample "
                "of the training sentences (independent replicates); with 1, one probe on all of them"})
    seed: int = field(default=0, metadata={"help": "first seed"})
    control: bool = field(default=False, metadata={"help": "upos: also fit the control task and report selectivity"})
    C: float = field(default=1.0, metadata={"help": "inverse L2 strength of the probes (scikit-learn's C)"})
    backend: str = field(default="torch", metadata={"help": "torch (all layers batched) | sklearn (per layer)"})
    solver: str = field(default="lbfgs", metadata={"help": "torch backend: lbfgs | adam"})
    max_iter: int = field(default=100, metadata={"help": "L-BFGS iterations (Adam: epochs)"})
    holdout: float = field(default=0.2, metadata={
        "help": "upos: share of the training treebank's sentences held out (seeded) when it is also evaluated"})
    max_sentences: int = field(default=0, metadata={"help": "read at most this many sentences per file (0 = all)"})
    max_unknown: float = field(default=0.9, metadata={
        "help": "error when more than this share of a file's words are only the unknown token"})
    center: bool = field(default=False, metadata={"help": "translation: mean-centre each language before cosine"})
    pair_probe: bool = field(default=False, metadata={"help": "translation: also a linear translation-pair probe"})
    xnli_train_size: int = field(default=5000, metadata={"help": "xnli: training pairs (from the train split)"})
    xnli_eval_size: int = field(default=0, metadata={"help": "xnli: test pairs per language (0 = all 5,010)"})
    batch_size: int = field(default=32, metadata={"help": "sentences per forward pass"})
    max_length: int = field(default=0, metadata={"help": "tokens per window (0 = the model's maximum)"})
    model_name: str = field(default="", metadata={"help": "value of the model column (default: --model)"})

    def check(self) -> None:
        """Raise ``ValueError`` for settings that cannot run."""
        from .linear import BACKENDS, SOLVERS  # lazy: building the CLI must not import torch

        if self.task not in TASKS:
            raise ValueError(f"unknown probing task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown probe backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}: expected one of {', '.join(SOLVERS)}")
        if not self.train:
            what = {"upos": "a training treebank", "translation": "a pivot CoNLL-U file",
                    "xnli": "a training language"}[self.task]
            raise ValueError(f"probe --task {self.task}: --train needs {what}")
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.task == "translation" and not self.eval:
            raise ValueError("probe --task translation: --eval needs at least one parallel CoNLL-U file")
        if str(self.layers).strip() == "":
            raise ValueError("empty layer selection: --layers needs e.g. all, last, 0,3-5")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]
