"""The middle-layer alignment loop: task LoRA + alignment loss on layer K, on HF Accelerate.

The same code trains a tiny random decoder on CPU in the tests and a 0.5B-8B model under
``accelerate launch -m alignfreeze.cli midalign train ...`` (bf16, gradient checkpointing,
several GPUs). Reading order:

1. load the decoder + tokenizer (an encoder is refused), resolve layer K (given, ``middle``
   or ``auto`` from a scan table: :mod:`.layer_choice`);
2. read the data: task examples (prompt policy of :mod:`.data`: never truncated; too long
   is an error, or dropped and counted with ``drop_long``) and parallel sentences
   (:func:`core.parallel.read_parallel`: words with their spacing, read as running text);
3. hash the base weights (before anything changes), then add LoRA to the blocks the freeze
   spec leaves trainable (:mod:`.lora`); only LoRA parameters train;
4. AdamW over the LoRA parameters, inverse-sqrt schedule with linear warm-up;
5. optionally restore the newest checkpoint (adapter, optimizer, schedule, RNG, step);
6. the loop: each optimizer step runs ``accumulation`` task micro-batches, each followed by
   one alignment micro-batch (the two losses alternate every micro-batch, as the paper);
   the parallel inputs run blocks 1..K only;
7. write ``OUT`` atomically: the PEFT adapter (``save_pretrained``) + tokenizer +
   ``manifest.json`` (base hash, K and why, LoRA targets, data hashes, seed, losses).

Several processes: every forward runs on the UNWRAPPED model (the alignment forward stops
at block K, which a DDP reducer cannot follow), and the LoRA gradients are averaged across
processes explicitly once per optimizer step. InfoNCE negatives are the pairs of a
process's share of the micro-batch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from core.arch import arch_of, num_layers
from core.config import to_dict
from core.encoding import PIECE_TO_WORD
from core.io import atomic_dir, atomic_write_json
from core.manifest import MANIFEST, base_weight_hash, write_manifest
from core.sentences import window_size

from ..train import (
    CHECKPOINTS,
    TRAINER_STATE,
    batch_indices,
    checkpoints_after_run,
    latest_checkpoint,
    report_checkpoints,
    tokenizer_fingerprint,
)
from . import data as D
from .config import MidalignConfig
from .layer_choice import LayerChoice, resolve_layer
from .lora import add_lora, lora_modules
from .loss import alignment_loss
from .tasks import PROMPT_FORMAT

SCAN_FILE = "scan.csv"
ENCODING_COUNTS = ("windows", "windowed", "truncated_words")
SENTENCE_POOLING = ("mean over each sentence's non-pad tokens across its windows, in float32 "
                    "(core.encoding.EncodedBatch.sentence_mean)")
RESUME_FREE = ("checkpoint_every", "keep_checkpoints", "retain_checkpoints")
DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def require_decoder(model, name: str = "model") -> None:
    """Raise ValueError unless ``model`` is a decoder of the architecture table."""
    spec = arch_of(model)
    if spec.kind != "decoder":
        raise ValueError(f"{name}: a {spec.family} model is an {spec.kind}; middle-layer alignment needs a "
                         "decoder (causal LM: gpt2, llama, qwen2, mistral)")


def _data_entries(config: MidalignConfig, parallel=None) -> list[dict]:
    """Task files (CoNLL-U, with their selection and the limit) and the parallel input as read
    (``parallel``: its :class:`core.inputs.Selected`); MASSIVE locales as datasets."""
    from core.inputs import select_treebanks

    entries: list[dict] = []
    for s in config.train:
        if config.task == "upos":
            entries += [e for sel in select_treebanks([s], limit=config.limit_train or None) for e in sel.entries()]
        else:
            entries.append({"dataset": s})
    if parallel is not None:
        entries += parallel.entries()
    return entries


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _save_checkpoint(accelerator, out: Path, state: dict, model, optimizer, scheduler, keep: int) -> Path:
    """adapter + optimizer + schedule + per-process RNG + our state; renamed into place when complete.

    Only the LoRA weights are saved (the base never changes), so a checkpoint of an 8B
    model is megabytes."""
    root = out / CHECKPOINTS
    name = f"step_{state['step']:08d}"
    tmp = root / f".{name}.tmp"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp / "adapter")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optim.pt")
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / TRAINER_STATE, state)
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        old = sorted(p for p in root.glob("step_*") if p != final)
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return root / name


def _load_checkpoint(ckpt: Path, model, optimizer, scheduler, rank: int) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(ckpt / "adapter" / "adapter_model.safetensors"))
    res = set_peft_model_state_dict(model, weights)
    if getattr(res, "unexpected_keys", None):
        raise ValueError(f"{ckpt}: adapter weights do not fit this model ({res.unexpected_keys[:3]}...)")
    st = torch.load(ckpt / "optim.pt", weights_only=True)
    optimizer.load_state_dict(st["optimizer"])
    scheduler.load_state_dict(st["scheduler"])
    rng = ckpt / f"rng_{rank}.pt"
    if not rng.is_file():
        raise ValueError(f"{ckpt}: no RNG state for process {rank}: resume with the same number of processes")
    _set_rng_state(torch.load(rng, weights_only=False))


def train(
    config: MidalignConfig,
    model=None,
    tokenizer=None,
    progress: bool = True,
    *,
    resume: bool = False,
    callback: Callable[[int, dict], None] | None = None,
    layer_choice: LayerChoice | None = None,
) -> Path:
    """Train a task LoRA with the alignment loss on layer K (or an alignment adapter alone).

    Args:
        config: the run (:class:`.config.MidalignConfig`).
        model, tokenizer: an already loaded causal LM and its tokenizer (tests); by default
            loaded from ``config.model``. A model passed in is wrapped by PEFT in place.
        progress: tqdm bar.
        resume: continue from the newest checkpoint in ``OUT/checkpoints`` (same adapter as
            an uninterrupted run on CPU); without it leftover checkpoints are an error.
        callback: ``callback(step, parts)`` after every optimizer step (tests raise from it
            to simulate a kill).
        layer_choice: K already resolved by the caller (the CLI after running a scan);
            default: :func:`.layer_choice.resolve_layer` of ``config.layer``/``config.scan``.

    Returns the output folder. Raises ValueError for bad input (see docs/midalign.md).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_inverse_sqrt_schedule

    from core.models import load_model, load_tokenizer

    config.validate()
    t_start = time.perf_counter()
    out = Path(config.out)
    if (out / MANIFEST).is_file():
        raise ValueError(f"{out}: already holds a finished run ({MANIFEST}); choose another --out")
    ckpt = latest_checkpoint(out) if resume else None
    if not resume and latest_checkpoint(out) is not None:
        raise ValueError(f"{out}: holds checkpoints of an unfinished run; pass --resume to continue it, "
                         "or remove the folder")
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    rank, world = accelerator.process_index, accelerator.num_processes

    # 1. model, tokenizer, layer K
    if model is None:
        model = load_model(config.model, task="causal-lm", dtype=DTYPE[config.dtype])
    if tokenizer is None:
        tokenizer = load_tokenizer(config.model)
    require_decoder(model, config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    L = num_layers(model)
    align = bool(config.parallel)
    if align and layer_choice is None:
        layer_choice = resolve_layer(config.layer, L, scan=config.scan or None)
    if layer_choice is not None and not 1 <= layer_choice.layer <= L:
        raise ValueError(f"layer {layer_choice.layer} does not exist: this model has layers 0..{L}")
    K = layer_choice.layer if align else None
    if config.micro_batch < world:
        raise ValueError(f"micro_batch {config.micro_batch} < {world} processes: every process needs an example")
    if align and config.micro_batch // world < 2:
        raise ValueError(f"micro_batch {config.micro_batch} over {world} processes leaves < 2 pairs per process: "
                         "InfoNCE needs in-batch negatives")

    # 2. data
    ctx = D.model_context(model)
    if config.max_length > ctx:
        raise ValueError(f"--max-length {config.max_length} exceeds the context of {config.model} ({ctx} tokens)")
    max_len = config.max_length or ctx
    align_window = window_size(model, tokenizer, config.align_max_length)  # tokens per window of a parallel sentence
    n_dropped = 0
    encoded: list[D.EncodedExample] = []
    if config.task != "none":
        examples = D.task_examples(config.task, config.train, limit=config.limit_train or None)
        encoded, n_dropped = D.encode_examples(tokenizer, config.task, examples, max_len, drop_long=config.drop_long)
    pairs: list = []
    parallel = None
    if align:
        from core.inputs import select_parallel

        src, tgt = D.parallel_sources(config.parallel)
        parallel = select_parallel(src, tgt, limit=config.limit_parallel or None)  # SRC@SELECTION (core.selection)
        pairs = parallel.items
        if len(pairs) < 2:
            raise ValueError(f"{', '.join(config.parallel)}: {len(pairs)} sentence pair(s); InfoNCE needs >= 2")
    n_main = len(encoded) if encoded else len(pairs)
    steps = config.steps or math.ceil(n_main / (config.micro_batch * config.accumulation))

    # 3. base hash BEFORE any change, then LoRA on the blocks the freeze spec leaves trainable
    base_hash = base_weight_hash(model)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(config.seed)  # LoRA initialisation
    model, targets, plan = add_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                                    targets=config.lora_targets, freeze=config.freeze)
    model.to(accelerator.device)
    lowest = min(i for i in range(1, L + 1) if i not in plan.frozen_layers)
    if align and lowest > K:
        raise ValueError(f"freeze spec {config.freeze!r} leaves LoRA modules only above layer {K}: the alignment "
                         "loss at K could move nothing; freeze less or align a higher layer")

    # 4. optimizer over LoRA parameters, inverse-sqrt schedule with linear warm-up
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warm = int(round(config.warmup * steps))
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=warm)

    tok_hash = tokenizer_fingerprint(tokenizer)
    data_files = _data_entries(config, parallel)
    identity = {"config": {k: v for k, v in to_dict(config).items() if k not in RESUME_FREE},
                "data_files": data_files, "base_weight_hash": base_hash, "tokenizer": tok_hash,
                "layer": K, "world": world}
    state = {"step": 0, "history": [], "times": {"task_s": 0.0, "align_s": 0.0, "task_n": 0, "align_n": 0},
             **identity}

    # 5. resume
    if ckpt is not None:
        saved = json.loads((ckpt / TRAINER_STATE).read_text())
        diff = [k for k in identity if saved.get(k) != identity[k]]
        if diff:
            raise ValueError(f"{ckpt}: cannot resume: {', '.join(diff)} differ from the checkpoint; resume with "
                             "the same model, tokenizer, data, layer, processes and config")
        _load_checkpoint(ckpt, model, optimizer, scheduler, rank)
        state = saved

    # 6. the loop
    runner = model  # never DDP-wrapped: see module doc
    runner.train()
    bar = tqdm(total=steps, initial=state["step"], desc="midalign", unit="step",
               disable=not (progress and accelerator.is_local_main_process))
    pad_id = tokenizer.pad_token_id
    for step in range(state["step"], steps):
        parts: dict[str, list[float]] = {}
        for m in range(config.accumulation):
            g = step * config.accumulation + m  # global micro-batch number: data order is a function of it
            if encoded:
                idx = batch_indices(g, config.micro_batch, len(encoded), config.seed)[rank::world]
                batch = {k: v.to(accelerator.device)
                         for k, v in D.collate_task([encoded[i] for i in idx], pad_id).items()}
                t0 = time.perf_counter()
                with accelerator.autocast():
                    loss = runner(**batch).loss
                (loss / config.accumulation).backward()
                state["times"]["task_s"] += time.perf_counter() - t0
                state["times"]["task_n"] += 1
                parts.setdefault("task", []).append(float(loss.detach()))
            if align:
                idx = batch_indices(g, config.micro_batch, len(pairs), config.seed + 1)[rank::world]
                t0 = time.perf_counter()
                with accelerator.autocast():
                    loss, p = alignment_loss(runner, tokenizer, [pairs[i].src for i in idx],
                                             [pairs[i].tgt for i in idx], K, temperature=config.temperature,
                                             symmetric=config.symmetric, detach=config.detach,
                                             max_length=align_window)
                (config.align_weight * loss / config.accumulation).backward()
                state["times"]["align_s"] += time.perf_counter() - t0
                state["times"]["align_n"] += 1
                for k, v in p.items():
                    parts.setdefault(k, []).append(v)
        if world > 1:  # explicit data-parallel averaging of the LoRA gradients
            for p_ in params:
                if p_.grad is None:
                    p_.grad = torch.zeros_like(p_)
                p_.grad = accelerator.reduce(p_.grad, reduction="mean")
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        enc_counts = state.setdefault("encoding", dict.fromkeys(ENCODING_COUNTS, 0))
        for key in ENCODING_COUNTS:  # counts, not losses
            enc_counts[key] += int(np.sum(parts.pop(key, [0])))
        summary = {k: float(np.mean(v)) for k, v in parts.items()}
        summary["lr"] = scheduler.get_last_lr()[0]
        state["step"] = step + 1
        state["history"] = (state["history"] + [summary])[-50:]
        bar.set_postfix({k: f"{v:.4f}" for k, v in summary.items() if k in ("task", "align")})
        bar.update(1)
        if config.checkpoint_every and state["step"] % config.checkpoint_every == 0 and state["step"] < steps:
            _save_checkpoint(accelerator, out, state, model, optimizer, scheduler, config.keep_checkpoints)
        if callback is not None:
            callback(state["step"], summary)
    bar.close()
    enc_counts = state.get("encoding", dict.fromkeys(ENCODING_COUNTS, 0))
    if accelerator.is_local_main_process and (enc_counts["windowed"] or enc_counts["truncated_words"]):
        print(f"alignfreeze: midalign: {enc_counts['windowed']} parallel sentence(s) longer than "
              f"{align_window} tokens split into windows at word boundaries ({enc_counts['windows']} "
              f"input rows in all), {enc_counts['truncated_words']} word(s) truncated to one window",
              file=sys.stderr)

    # 7. final output, atomically (main process only)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model.eval()
        last = state["history"][-10:]
        keys = sorted({k for h in last for k in h})
        final_losses = {k: float(np.mean([h[k] for h in last if k in h])) for k in keys}
        times = state["times"]
        manifest = {
            "kind": "midalign" if config.task != "none" else "midalign-alignment",
            "config": to_dict(config),
            "base_model": {"name": config.model, "weight_hash": base_hash, "model_type": model.config.model_type,
                           "n_layers": L},
            "task": config.task,
            "layer": None if layer_choice is None else layer_choice.to_dict(),
            "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                     "target_kinds": config.lora_targets, "target_modules": lora_modules(model),
                     "requested_targets": targets},
            "frozen_layers": list(plan.frozen_layers),
            "freeze_meaning": "frozen blocks carry no LoRA module; every base weight stays as loaded",
            "pooling": SENTENCE_POOLING,
            "piece_to_word": PIECE_TO_WORD,
            "prompt_format": None if config.task == "none" else PROMPT_FORMAT,
            "data_files": data_files,
            "n_task_examples": len(encoded),
            "n_dropped_long": n_dropped,
            "n_sentence_pairs": len(pairs),
            # parallel sentences longer than align_max_length are windowed, never truncated:
            # input rows, sentences split and words cut to one window, summed over the steps
            "parallel_encoding": {**enc_counts, "max_length": align_window},
            "seed": config.seed,
            "steps": steps,
            "warmup_steps": warm,
            "resumed_from": str(ckpt) if ckpt is not None else None,
            "tokenizer_fingerprint": tok_hash,
            "compute": {"blocks_run_for_parallel_inputs": K, "blocks": L,
                        "mean_task_microbatch_s": times["task_s"] / max(times["task_n"], 1),
                        "mean_align_microbatch_s": times["align_s"] / max(times["align_n"], 1)},
            "wall_time_s": time.perf_counter() - t_start,
            "final_losses": final_losses,
            "final_losses_window": len(last),
            "processes": world,
            "mixed_precision": config.mixed_precision,
        }
        manifest["checkpoints"] = checkpoints_after_run(out, config.retain_checkpoints)
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, manifest)
            # the scan the layer came from stays; the resumable checkpoints only with retain_checkpoints
            for keep in (CHECKPOINTS, SCAN_FILE) if config.retain_checkpoints else (SCAN_FILE,):
                if (out / keep).exists():
                    os.replace(out / keep, tmp / keep)
        report_checkpoints(out, manifest["checkpoints"], "midalign train")
    accelerator.wait_for_everyone()
    return out


__all__ = ["train", "require_decoder", "SCAN_FILE"]
