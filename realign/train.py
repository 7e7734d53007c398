"""The realignment training loop: explicit, top to bottom, on HF Accelerate.

The same code runs on CPU, one GPU, or several GPUs/nodes (``accelerate launch -m
alignfreeze.cli realign ...``; DDP/FSDP and bf16/fp16 come from the accelerate config or
``--mixed-precision``). Reading order:

1. read the word pairs, load model + tokenizer, check they belong together;
2. hash the base weights (before anything changes), resolve and apply the freeze plan;
3. Adam over the TRAINABLE parameters only (frozen ones never enter the optimizer), no
   scheduler (as the reference); ``embedding_update="touched"`` swaps in the exact
   touched-rows Adam for the word embeddings (:mod:`realign.optim`);
4. optionally restore the newest checkpoint (model, optimizer, RNG states, step, data
   order) from ``OUT/checkpoints``;
5. the loop: next batch in a seeded order, one forward for both sides, loss, backward, step;
6. write ``OUT`` atomically: ``save_pretrained`` (safetensors) + tokenizer + manifest.json;
   the resumable checkpoints of ``OUT/checkpoints`` are deleted then (they only serve
   ``--resume``), unless ``retain_checkpoints`` (then their place and size are printed).

Frozen prefix: frozen parameters have ``requires_grad=False``, so when the embeddings and
the lowest blocks are all frozen (``front+emb``, ``emb,1-3``) no autograd graph is built
for them at all: their activations are not kept and no backward runs through them. With
the paper's ``front`` (embeddings trainable) the backward must still cross the frozen
blocks to reach the embeddings, but computes no weight gradients there.
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
from tqdm.auto import tqdm

from core.arch import num_layers, parse_layers
from core.config import to_dict
from core.encoding import PIECE_TO_WORD
from core.inputs import entries, select_pairs, selected_items
from core.io import atomic_dir, atomic_write_json
from core.layers import LAYER_DEFINITION
from core.manifest import MANIFEST, base_weight_hash, write_manifest
from core.names import name_from_manifest

from .config import RealignConfig
from .freeze import apply_freeze, trainable_parameters
from .losses import realignment_loss
from .optim import build_adam

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
# fields that may change between a run and its resumption (they do not change the result)
RESUME_FREE = ("checkpoint_every", "keep_checkpoints", "retain_checkpoints", "name")


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary (token -> id), to tell whether two tokenizers are the same."""
    import hashlib

    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


def check_vocabulary(model, tokenizer, model_name: str = "model") -> None:
    """The tokenizer must produce ids the model can embed, and give word ids (fast)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_name}: the tokenizer is not a fast tokenizer; character offsets are needed to map pieces to words")
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(
            f"{model_name}: the tokenizer has {len(tokenizer)} tokens but the model embeds only {rows}: "
            "tokenizer and model do not belong together"
        )


MAX_UNKNOWN_FRACTION = 0.5


def unknown_word_fraction(tokenizer, records, max_length: int, chunk: int = 512) -> float:
    """Share of LINKED words that the tokenizer turns into unknown tokens only.

    Aligning ``[UNK]`` with ``[UNK]`` teaches nothing: a pairs file in a script the
    vocabulary does not cover is a mismatch, reported before any training. Words are
    tokenised as in training (running text, windows: :mod:`core.encoding`).
    """
    from core.encoding import unknown_words
    from core.wordpairs import side

    if tokenizer.unk_token_id is None:  # byte-level vocabularies have no unknown token
        return 0.0
    total = unknown = 0
    for k in range(0, len(records), chunk):
        part = records[k : k + chunk]
        for which, col in (("src", 0), ("tgt", 1)):
            unk = unknown_words(tokenizer, [side(r, which) for r in part], max_length)
            for row, rec in enumerate(part):
                for link in rec["links"]:
                    total += 1
                    unknown += bool(unk[row][link[col]])
    return unknown / total if total else 0.0


def batch_indices(step: int, batch_size: int, n_records: int, seed: int) -> list[int]:
    """Record indices of ``step``: consecutive slices of a stream of seeded epoch permutations.

    A pure function of ``(step, seed)``, so a resumed run sees exactly the same batches.
    """
    start = step * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, pos = divmod(start + len(out), n_records)
        perm = epoch_order(epoch, n_records, seed)
        out.extend(perm[pos : pos + batch_size - len(out)].tolist())
    return out


def epoch_order(epoch: int, n_records: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_records)


def latest_checkpoint(out: str | Path) -> Path | None:
    """Newest complete checkpoint under ``OUT/checkpoints`` (incomplete ones are temp dirs)."""
    root = Path(out) / CHECKPOINTS
    done = sorted(p for p in root.glob("step_*") if (p / TRAINER_STATE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _trajectory_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RESUME_FREE}


def _save_checkpoint(accelerator, out: Path, state: dict, keep: int) -> Path:
    """model + optimizer + RNG states (accelerate) and our state, renamed into place when complete."""
    root = out / CHECKPOINTS
    name = f"step_{state['step']:08d}"
    tmp = root / f".{name}.tmp"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
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


def realign(
    config: RealignConfig,
    model=None,
    tokenizer=None,
    progress: bool = True,
    *,
    resume: bool = False,
    callback: Callable[[int, dict], None] | None = None,
) -> Path:
    """Realign ``config.model`` on ``config.pairs``; returns the output folder.

    Args:
        config: the run (see :class:`realign.config.RealignConfig`).
        model, tokenizer: an already loaded model/tokenizer (tests, notebooks); by default
            both are loaded from ``config.model`` (a base model, no task head). A model
            passed in is trained in place (and left in eval mode, all parameters
            trainable again).
        progress: tqdm bar with loss and pairs/s.
        resume: continue from the newest checkpoint in ``OUT/checkpoints``; the result is
            the same as an uninterrupted run (same weights on CPU). Without it, leftover
            checkpoints of an unfinished run are an error (never silently overwritten).
        callback: called as ``callback(step, parts)`` after every optimizer step (logging;
            tests raise from it to simulate a crash).

    Raises ``ValueError`` for finished output folders, mismatched tokenizers, freeze specs
    that leave nothing to train below the realigned layers, or resuming with a different
    config, data or tokenizer.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    from core.models import load_model, load_tokenizer

    config.validate()
    t_start = time.perf_counter()
    out = Path(config.out)
    if (out / MANIFEST).is_file():
        raise ValueError(f"{out}: already holds a finished realignment ({MANIFEST}); choose another --out")
    ckpt = latest_checkpoint(out) if resume else None
    if not resume and latest_checkpoint(out) is not None:
        raise ValueError(f"{out}: holds checkpoints of an unfinished run; pass --resume to continue it, "
                         "or remove the folder")

    # unused trainable parameters (e.g. a pooler the loss never reaches) must not stall DDP
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, kwargs_handlers=[ddp])
    set_seed(config.seed)  # python, numpy, torch (and CUDA): dropout masks are reproducible

    # 1. data, model, tokenizer
    selected = select_pairs(config.pairs)  # PAIRS.jsonl@SELECTION (core.selection)
    records = selected_items(selected)
    data_files = entries(selected)
    if model is None:
        model = load_model(config.model)
    if tokenizer is None:
        tokenizer = load_tokenizer(config.model)
    check_vocabulary(model, tokenizer, config.model)
    unk_fraction = unknown_word_fraction(tokenizer, records, config.max_length)
    if unk_fraction > MAX_UNKNOWN_FRACTION:
        raise ValueError(
            f"{', '.join(config.pairs)}: {unk_fraction:.0%} of the linked words are unknown tokens for the "
            f"tokenizer of {config.model}: the pairs' language or script is not covered by this vocabulary"
        )
    model_type = model.config.model_type

    # 2. base hash BEFORE any change, then freezing
    base_hash = base_weight_hash(model)
    plan = apply_freeze(model, config.freeze)
    L = num_layers(model)
    layers = parse_layers(config.layers, L)
    trainable_layers = sorted(set(range(L + 1)) - set(plan.frozen_layers))
    if not trainable_layers or min(trainable_layers) > max(layers):
        raise ValueError(
            f"freeze spec {config.freeze!r} freezes layers {list(plan.frozen_layers)}: nothing at or below the "
            f"realigned layer(s) {list(layers)} can learn; realign a higher layer or freeze less"
        )

    # 3. optimizer over trainable parameters only (Adam, no scheduler, as the reference)
    named = trainable_parameters(model)
    lr = config.resolved_lr(model_type)
    optimizer = build_adam(named, lr, config.betas, config.eps, config.embedding_update,
                           embedding=model.get_input_embeddings().weight)
    initial_state = {n: p.detach().clone() for n, p in named} if config.reg_weight > 0 else None
    model.train(config.dropout)  # dropout on during realignment, as the reference
    model, optimizer = accelerator.prepare(model, optimizer)

    steps = config.steps or math.ceil(len(records) / config.batch_size)
    tok_hash = tokenizer_fingerprint(tokenizer)
    identity = {"config": _trajectory_config(to_dict(config)), "data_files": data_files,
                "base_weight_hash": base_hash, "tokenizer": tok_hash}
    state = {"step": 0, "history": [], "pairs_seen": 0, **identity}

    # 4. resume: weights, Adam moments and RNG states via accelerate, step + data order from our state
    if ckpt is not None:
        saved = json.loads((ckpt / TRAINER_STATE).read_text())
        diff = [k for k in identity if saved.get(k) != identity[k]]
        if diff:
            detail = ""
            if "config" in diff:
                a, b = saved["config"], identity["config"]
                detail = " (config fields " + ", ".join(sorted(k for k in b if a.get(k) != b.get(k))) + ")"
            raise ValueError(f"{ckpt}: cannot resume: {', '.join(diff)} differ from the checkpoint{detail}; "
                             "resume with the same model, tokenizer, pairs files and config")
        accelerator.load_state(str(ckpt))
        state = saved
        order_now = epoch_order(state["epoch"], len(records), config.seed).tolist()
        if order_now != state["epoch_order"]:
            raise ValueError(f"{ckpt}: the data order differs from the checkpoint's; the pairs files changed")

    # 5. the loop
    rank, world = accelerator.process_index, accelerator.num_processes
    if config.batch_size < world:
        raise ValueError(f"batch_size {config.batch_size} < {world} processes: every process needs a pair per step")
    bar = tqdm(total=steps, initial=state["step"], desc="realign", unit="step",
               disable=not (progress and accelerator.is_local_main_process))
    t_loop, pairs_loop = time.perf_counter(), 0
    state.setdefault("encoding", {"windows": 0, "windowed": 0, "truncated_words": 0})
    for step in range(state["step"], steps):
        idx = batch_indices(step, config.batch_size, len(records), config.seed)
        batch = [records[i] for i in idx[rank::world]]  # each process its share of the global batch
        with accelerator.autocast():
            loss, parts = realignment_loss(model, tokenizer, batch, config, initial_state=initial_state)
        for key in ("windows", "windowed", "truncated_words"):  # counts, not losses
            state["encoding"][key] = state["encoding"].get(key, 0) + int(parts.pop(key))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # frees the grads between steps

        pairs_loop += len(idx)
        state["step"] = step + 1
        state["pairs_seen"] += len(idx)
        state["history"] = (state["history"] + [parts])[-50:]
        rate = pairs_loop / max(time.perf_counter() - t_loop, 1e-9)
        bar.set_postfix(loss=f"{parts['total']:.4f}", pairs_s=f"{rate:.1f}")
        bar.update(1)
        if config.checkpoint_every and state["step"] % config.checkpoint_every == 0 and state["step"] < steps:
            epoch = (state["step"] * config.batch_size) // len(records)
            state["epoch"] = epoch
            state["epoch_order"] = epoch_order(epoch, len(records), config.seed).tolist()
            _save_checkpoint(accelerator, out, state, config.keep_checkpoints)
        if callback is not None:
            callback(state["step"], parts)
    bar.close()
    enc = state["encoding"]
    if accelerator.is_local_main_process and (enc["windowed"] or enc["truncated_words"]):
        print(f"alignfreeze: realign: {enc['windowed']} sentence(s) longer than the window split at word "
              f"boundaries ({enc['windows']} input sequences in all), {enc['truncated_words']} word(s) truncated "
              "to one window", file=sys.stderr)

    # 6. final output, atomically (main process only)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.eval()
        for p in final.parameters():  # everything is unfrozen again for fine-tuning
            p.requires_grad_(True)
        last = state["history"][-10:]
        keys = sorted({k for h in last for k in h})
        final_losses = {k: float(np.mean([h[k] for h in last if k in h])) for k in keys}
        manifest = {
            "kind": "realign",
            "config": to_dict(config),
            "base_model": {"name": config.model, "weight_hash": base_hash, "model_type": model_type},
            "frozen_layers": list(plan.frozen_layers),
            "frozen_parameters": list(plan.frozen_parameter_names),
            "realigned_layers": list(layers),
            "pooling": config.pooling,
            "lr": lr,
            "data_files": data_files,
            "n_records": len(records),
            "seed": config.seed,
            "steps": steps,
            "pairs_seen": state["pairs_seen"],
            "resumed_from": str(ckpt) if ckpt is not None else None,
            "tokenizer_fingerprint": tok_hash,
            # the realigned weights (a fine-tuning that starts here records the same hash)
            "final_weight_hash": base_weight_hash(final),
            "unknown_linked_words": unk_fraction,
            "layer_definition": LAYER_DEFINITION,
            "piece_to_word": PIECE_TO_WORD,
            # sentences longer than max_length are windowed, never truncated: input sequences
            # and words cut to one window, summed over the steps of this process
            "encoding": state["encoding"],
            "wall_time_s": time.perf_counter() - t_start,
            "final_losses": final_losses,
            "final_losses_window": len(last),
            "processes": world,
            "mixed_precision": config.mixed_precision,
        }
        manifest["name"] = config.name or name_from_manifest(manifest)
        manifest["checkpoints"] = checkpoints_after_run(out, config.retain_checkpoints)
        with atomic_dir(out) as tmp:
            final.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            write_manifest(tmp, manifest)
            if config.retain_checkpoints and (out / CHECKPOINTS).is_dir():
                os.replace(out / CHECKPOINTS, tmp / CHECKPOINTS)
        # without --retain-checkpoints the old OUT (and its checkpoints) went with the rename
        report_checkpoints(out, manifest["checkpoints"], "realign")
    accelerator.wait_for_everyone()
    return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def checkpoints_after_run(out: Path, retain: bool) -> dict:
    """What happens to ``OUT/checkpoints`` once a run has finished (recorded in the manifest):
    kept only with ``retain`` (they serve ``--resume`` alone, and each holds the model, the
    optimizer's moments and RNG states), else deleted with the unfinished ``OUT``."""
    root = Path(out) / CHECKPOINTS
    found = sorted(p.name for p in root.glob("step_*")) if root.is_dir() else []
    return {"kept": bool(retain and found), "steps": found, "bytes": _size(root) if found else 0,
            "path": str(root) if retain and found else None}


def report_checkpoints(out: Path, info: dict, command: str) -> None:
    """One line on stderr: where the kept checkpoints are and how large, or what was deleted."""
    if not info["steps"]:
        return
    n, size = len(info["steps"]), _human(info["bytes"])
    if info["kept"]:
        print(f"alignfreeze: {command}: kept {n} resumable checkpoint(s) in {info['path']} ({size}); they are not "
              "needed to use the model: delete the folder when done", file=sys.stderr)
    else:
        print(f"alignfreeze: {command}: the run is finished: deleted its {n} resumable checkpoint(s) ({size}) "
              f"from {Path(out) / CHECKPOINTS} (--retain-checkpoints keeps them)", file=sys.stderr)

