"""Joint training, checkpoints and resume, adapter folders as models, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from _midalign import DE, EN, saved_lm, tiny_lm
from safetensors.torch import load_file

from core.manifest import base_weight_hash, read_manifest
from realign.midalign.config import MidalignConfig
from realign.midalign.layer_choice import LayerChoice
from realign.midalign.train import train


def cfg(tmp_path, name="out", **kw):
    base = dict(model="tiny", out=str(tmp_path / name), task="upos", train=(str(EN),),
                parallel=(str(EN), str(DE)), layer="2", micro_batch=4, accumulation=2, steps=4, seed=3)
    base.update(kw)
    return MidalignConfig(**base)


class Kill(Exception):
    pass


def test_joint_training_writes_a_peft_adapter_and_manifest(tmp_path):
    model, tok = tiny_lm()
    h = base_weight_hash(model)
    out = train(cfg(tmp_path), model, tok, progress=False)
    man = read_manifest(out)
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert man["base_model"]["weight_hash"] == h
    assert man["layer"]["layer"] == 2 and man["layer"]["how"] == "given"
    assert {"task", "align", "align_acc"} <= set(man["final_losses"])
    assert [d["path"] for d in man["data_files"]] == [str(EN), str(EN), str(DE)]
    assert all(len(d["sha256"]) == 64 for d in man["data_files"])
    assert man["seed"] == 3 and man["compute"]["blocks_run_for_parallel_inputs"] == 2
    # only LoRA weights were saved, and training moved them (B starts at zero)
    w = load_file(out / "adapter_model.safetensors")
    assert w and all("lora_" in k for k in w)
    assert any(float(v.abs().sum()) > 0 for k, v in w.items() if "lora_B" in k)


def test_resume_after_a_kill_gives_the_same_adapter(tmp_path):
    full = train(cfg(tmp_path, "full", steps=5), *tiny_lm(), progress=False)

    def kill(step, _):
        if step == 3:
            raise Kill

    c = cfg(tmp_path, "killed", steps=5, checkpoint_every=2)
    with pytest.raises(Kill):
        train(c, *tiny_lm(), progress=False, callback=kill)
    assert not (tmp_path / "killed" / "manifest.json").exists()
    with pytest.raises(ValueError, match="--resume"):
        train(c, *tiny_lm(), progress=False)
    out = train(c, *tiny_lm(), progress=False, resume=True)
    assert read_manifest(out)["resumed_from"].endswith("step_00000002")
    # finished: the resumable checkpoints are deleted (the manifest says which), unless retained
    assert not (out / "checkpoints").exists() and read_manifest(out)["checkpoints"]["steps"] == ["step_00000002", "step_00000004"]
    a, b = load_file(full / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_with_another_config_is_refused(tmp_path):
    c = cfg(tmp_path, steps=4, checkpoint_every=2)
    with pytest.raises(Kill):
        train(c, *tiny_lm(), progress=False, callback=lambda s, _: (_ for _ in ()).throw(Kill) if s == 3 else None)
    with pytest.raises(ValueError, match="cannot resume"):
        train(cfg(tmp_path, steps=4, checkpoint_every=2, lr=1e-3), *tiny_lm(), progress=False, resume=True)


def test_alignment_only_adapter_and_layer_auto_from_a_scan(tmp_path):
    scan = tmp_path / "scan.csv"
    rows = ["layer,metric,direction,value"] + [f"{k},retrieval_mean,both,{v}" for k, v in
                                               [(0, 0.9), (1, 0.2), (2, 0.3), (3, 0.6), (4, 0.95)]]
    scan.write_text("\n".join(rows) + "\n")
    c = cfg(tmp_path, task="none", train=(), layer="auto", scan=str(scan), steps=2)
    out = train(c, *tiny_lm(), progress=False)
    man = read_manifest(out)
    assert man["kind"] == "midalign-alignment"
    assert man["layer"]["layer"] == 3 and man["layer"]["how"] == "auto"  # 0 and L=4 are not candidates
    assert man["layer"]["runner_up"] == 2 and man["layer"]["margin"] == pytest.approx(0.3)
    assert man["layer"]["scan_file"]["sha256"] and "figures" in man["layer"]


def test_freeze_front_puts_lora_on_the_upper_blocks_only(tmp_path):
    out = train(cfg(tmp_path, freeze="front", layer="3"), *tiny_lm(), progress=False)
    mods = read_manifest(out)["lora"]["target_modules"]
    assert mods and all(".layers.2." in m or ".layers.3." in m for m in mods)
    with pytest.raises(ValueError, match="only above layer 1"):
        train(cfg(tmp_path, "o2", freeze="front", layer="1"), *tiny_lm(), progress=False)


def test_base_weights_never_change(tmp_path):
    model, tok = tiny_lm()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(cfg(tmp_path), model, tok, progress=False)
    after = dict(model.named_parameters())  # the model passed in was wrapped in place by PEFT
    assert any(".base_layer." in n for n in after)
    for n, p in before.items():
        a = after.get(n, after.get(n.replace(".weight", ".base_layer.weight")))
        assert a is not None and torch.equal(p, a), n


def test_adapter_folder_loads_as_a_merged_model_and_checks_its_base(tmp_path):
    from core.models import load_model

    base_dir = saved_lm(tmp_path)
    out = train(cfg(tmp_path, model=base_dir), progress=False)
    base = load_model(base_dir)
    merged = load_model(out)  # task "base": the bare transformer with the deltas merged
    assert type(merged) is type(base)
    pairs = zip(base.named_parameters(), merged.named_parameters(), strict=True)
    diffs = [float((a - b).detach().abs().max()) for (_, a), (_, b) in pairs]
    assert max(diffs) > 0
    # another base (weights changed) is refused, naming the hashes
    man = json.loads((out / "manifest.json").read_text())
    man["base_model"]["weight_hash"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="belongs to another base"):
        load_model(out)


def test_bad_input(tmp_path):
    model, tok = tiny_lm()
    with pytest.raises(ValueError, match="layers 0..4"):
        train(cfg(tmp_path, layer="9"), model, tok, progress=False)
    with pytest.raises(ValueError, match="layers 0..4"):
        train(cfg(tmp_path), *tiny_lm(), progress=False, layer_choice=LayerChoice(7, "x", "given"))
    from core.tiny import tiny_model

    enc, etok = tiny_model("bert")
    with pytest.raises(ValueError, match="needs a decoder"):
        train(cfg(tmp_path), enc, etok, progress=False)
    with pytest.raises(ValueError, match=r"--max-length 1000 exceeds the context"):
        train(cfg(tmp_path, max_length=1000), *tiny_lm(), progress=False)
    with pytest.raises(ValueError, match=r"exceeds the context of 90.*--drop-long"):
        train(cfg(tmp_path, max_length=90), *tiny_lm(), progress=False)
    assert not (tmp_path / "out").exists()
    out = train(cfg(tmp_path, max_length=99, drop_long=True), *tiny_lm(), progress=False)
    man = read_manifest(out)
    assert man["n_dropped_long"] > 0 and man["n_task_examples"] + man["n_dropped_long"] == 12
    with pytest.raises(ValueError, match="already holds"):
        train(cfg(tmp_path), *tiny_lm(), progress=False)
    assert (out / "adapter_model.safetensors").is_file()


def test_gpu_settings_run_on_cpu_too(tmp_path):
    """bf16 base weights + bf16 autocast + gradient checkpointing: the settings of a real run."""
    from accelerate.state import AcceleratorState

    model, tok = tiny_lm()
    c = cfg(tmp_path, steps=1, dtype="bfloat16", mixed_precision="bf16", gradient_checkpointing=True)
    AcceleratorState._reset_state(True)  # accelerate keeps one precision per process: earlier tests used "no"
    try:
        out = train(c, model.to(torch.bfloat16), tok, progress=False)
    finally:
        AcceleratorState._reset_state(True)
    losses = read_manifest(out)["final_losses"]
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    w = load_file(out / "adapter_model.safetensors")
    assert all(v.dtype == torch.float32 for v in w.values())  # LoRA stays float32


def test_retained_checkpoints_and_selected_data_are_recorded(tmp_path):
    out = train(cfg(tmp_path, steps=3, checkpoint_every=2, retain_checkpoints=True, train=(f"{EN}@2:5",),
                    parallel=(f"{EN}@sent_ids=demo-01,demo-03,demo-04", str(DE))), *tiny_lm(), progress=False)
    man = read_manifest(out)
    assert (out / "checkpoints" / "step_00000002").is_dir() and man["checkpoints"]["kept"] is True
    task, src, tgt = man["data_files"]
    assert task["path"] == str(EN) and task["selection"] == "2:5" and task["sentences"] == 4
    assert src["selection"] == tgt["selection"] == "sent_ids=demo-01,demo-03,demo-04" and tgt["path"] == str(DE)
    assert man["n_task_examples"] == 4 and man["n_sentence_pairs"] == 3
