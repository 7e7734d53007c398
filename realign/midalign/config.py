"""The middle-layer alignment run config: one dataclass, saved in every manifest, CLI generated.

Defaults are the paper's (arXiv 2502.14830, see REFERENCE.md): LoRA r = 8, alpha = 16,
dropout 0.1 on q, k, v, o, gate, up, down; lr 5e-4 with an inverse-square-root schedule
and 3 % warm-up; effective batch 128 (8 examples x 16 accumulated micro-batches); the
task and the alignment loss alternate every micro-batch; sentence InfoNCE at tau = 0.1,
source -> target only. The layer is chosen from a scan (``auto``) rather than fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import option as _f

DETACH = ("none", "src", "tgt")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class MidalignConfig:
    """Everything that decides a joint (task + alignment) or alignment-only LoRA run."""

    model: str = field(metadata={"help": "prepared name, local folder or hub name of the DECODER (causal LM)"})
    out: str = field(metadata={"help": "output folder: PEFT adapter + tokenizer + manifest.json (atomic)"})
    task: str = _f("upos", "upos | massive | none (alignment adapter alone)")
    train: tuple[str, ...] = _f((), "task training data: CoNLL-U file(s) for upos; LOCALE:SPLIT for massive")
    parallel: tuple[str, ...] = _f((), "parallel text for the alignment loss: SRC TGT files or one TSV; "
                                       "empty = no alignment loss (task LoRA alone)")
    layer: str = _f("auto", "alignment layer K (1..L): auto (from --scan), middle, or an integer")
    scan: str = _f("", "layer-scan CSV of `alignfreeze midalign scan` (needed by --layer auto)")
    lora_r: int = _f(8, "LoRA rank r")
    lora_alpha: float = _f(16.0, "LoRA alpha (scaling = alpha / r)")
    lora_dropout: float = _f(0.1, "dropout on the LoRA input")
    lora_targets: str = _f("paper", "projections with LoRA: paper (q,k,v,o,gate,up,down that the family has) "
                                    "or a comma list of them")
    freeze: str = _f("none", "freeze spec (front | back | front+emb | back+emb | layers such as 1-4): "
                             "frozen blocks get no LoRA module")
    lr: float = _f(5e-4, "AdamW learning rate (peak, after warm-up)")
    warmup: float = _f(0.03, "warm-up as a fraction of the steps (inverse-sqrt decay after it)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    steps: int = _f(0, "optimizer steps; 0 = one pass over the task data (alignment-only: over the pairs)")
    micro_batch: int = _f(8, "examples (and sentence pairs) per micro-batch, all processes together")
    accumulation: int = _f(16, "task micro-batches per optimizer step; as many alignment micro-batches alternate")
    align_weight: float = _f(1.0, "weight of the alignment loss against the task loss")
    temperature: float = _f(0.1, "InfoNCE temperature tau")
    symmetric: bool = _f(False, "also the target -> source direction (the reference: source -> target only)")
    detach: str = _f("none", "stop gradients into one side of the pairs: none | src | tgt")
    max_length: int = _f(0, "task examples: longest prompt + answer in tokens (0 = the model's context)")
    align_max_length: int = _f(128, "parallel sentences: tokens per window (longer ones split into windows at "
                                    "word boundaries and counted; capped at the model's positions)")
    drop_long: bool = _f(False, "drop (and count) task examples longer than --max-length instead of refusing")
    limit_train: int = _f(0, "use only the first N task examples per file (0 = all)")
    limit_parallel: int = _f(0, "use only the first N sentence pairs (0 = all)")
    seed: int = _f(42, "seed of data order, LoRA initialisation and dropout")
    dtype: str = _f("float32", "dtype of the frozen base weights: float32 | bfloat16 | float16 (LoRA stays float32)")
    mixed_precision: str = _f("no", "no | fp16 | bf16 autocast (via accelerate)")
    gradient_checkpointing: bool = _f(False, "recompute block activations in the backward pass (less memory)")
    max_grad_norm: float = _f(0.0, "clip the gradient norm (0 = no clipping, as the reference)")
    checkpoint_every: int = _f(0, "save a resumable checkpoint every N steps (0 = never)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep under OUT/checkpoints")
    retain_checkpoints: bool = _f(False, "keep OUT/checkpoints once the run has finished (by default they are "
                                         "deleted when the final adapter is written: they only serve --resume)")

    def validate(self) -> MidalignConfig:
        """Raise ``ValueError`` naming the first bad field; return self."""
        from .tasks import TASKS

        choices = {"task": (*TASKS, "none"), "detach": DETACH, "dtype": DTYPES,
                   "mixed_precision": ("no", "fp16", "bf16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if self.task != "none" and not self.train:
            raise ValueError(f"--task {self.task} needs --train data (CoNLL-U files or LOCALE:SPLIT)")
        if self.task == "none" and self.train:
            raise ValueError("--task none trains the alignment adapter alone: it takes no --train data")
        if self.task == "none" and not self.parallel:
            raise ValueError("--task none trains the alignment adapter alone: it needs --parallel data")
        if self.parallel and len(self.parallel) not in (1, 2):
            raise ValueError(f"--parallel takes one TSV or two files (source, target), got {len(self.parallel)}")
        for name in ("lora_r", "micro_batch", "accumulation", "align_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("steps", "max_length", "checkpoint_every", "limit_train", "limit_parallel", "weight_decay",
                     "max_grad_norm", "align_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), not {self.warmup}")
        if self.temperature <= 0 or self.lr <= 0 or self.lora_alpha <= 0:
            raise ValueError("temperature, lr and lora_alpha must be > 0")
        if self.parallel and self.micro_batch < 2:
            raise ValueError("micro_batch must be >= 2 with an alignment loss: InfoNCE needs in-batch negatives")
        return self
