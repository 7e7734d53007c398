"""Merge arithmetic: the merged LoRA delta equals the documented combination of the deltas."""

from __future__ import annotations

import math

import pytest
import torch
from _midalign import lora_delta, tiny_lm

from core.adapters import peft_quiet
from core.manifest import base_weight_hash, write_manifest
from realign.midalign.lora import add_lora, lora_modules
from realign.midalign.merge import MERGED, merge_adapters, merge_manifest, save_merged


def _peft_model(*args, **kwargs):
    """PEFT's loader as the toolkit calls it (without PEFT's read of a deprecated property)."""
    from peft import PeftModel

    with peft_quiet():
        return PeftModel.from_pretrained(*args, **kwargs)


def make_adapter(path, family="llama", seed=0, r=8, alpha=16.0, targets="paper", freeze="none", base=None):
    """A LoRA adapter with random A AND B (a fresh B is zero), saved with our manifest."""
    model, tok = (base if base is not None else tiny_lm(family))
    h = base_weight_hash(model)
    torch.manual_seed(seed)
    model, _, _ = add_lora(model, r=r, alpha=alpha, targets=targets, freeze=freeze)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.2)
    model.save_pretrained(path)
    write_manifest(path, {"kind": "midalign", "base_model": {"name": "tiny", "weight_hash": h}})
    return path


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("combination", ["cat", "svd"])
def test_exact_merges_are_the_weighted_sum(tmp_path, family, combination):
    a = make_adapter(tmp_path / "task", family, seed=1)
    b = make_adapter(tmp_path / "align", family, seed=2, r=4, alpha=4.0)  # other rank, other scaling
    w = (1.0, 0.5)
    base, _ = tiny_lm(family)

    ref = _peft_model(tiny_lm(family)[0], str(a), adapter_name="a0")
    ref.load_adapter(str(b), adapter_name="a1")
    mods = lora_modules(ref, "a0")
    want = {m: w[0] * lora_delta(ref, m, "a0") + w[1] * lora_delta(ref, m, "a1") for m in mods}
    assert all(float(d.abs().max()) > 1e-3 for d in want.values())
    merged = merge_adapters(base, [a, b], w, combination=combination)
    assert list(merged.peft_config) == [MERGED]
    assert merged.peft_config[MERGED].r == 12
    tol = 1e-6 if combination == "cat" else 1e-4
    for m in mods:
        torch.testing.assert_close(lora_delta(merged, m, MERGED), want[m], atol=tol, rtol=0)


def test_linear_is_not_the_weighted_sum_but_its_documented_product(tmp_path):
    a = make_adapter(tmp_path / "task", seed=1)
    b = make_adapter(tmp_path / "align", seed=2)
    w = (1.0, -0.5)

    ref = _peft_model(tiny_lm()[0], str(a), adapter_name="a0")
    ref.load_adapter(str(b), adapter_name="a1")
    merged = merge_adapters(tiny_lm()[0], [a, b], w, combination="linear")
    m = lora_modules(ref, "a0")[0]
    base_mods = dict(ref.get_base_model().named_modules())
    mod = base_mods[m]
    s = mod.scaling["a0"]  # 16 / 8, same for both
    c = [math.sqrt(abs(wi * s)) for wi in w]
    sign = [1 if wi >= 0 else -1 for wi in w]
    A = sum(sg * ci * mod.lora_A[n].weight for sg, ci, n in zip(sign, c, ("a0", "a1")))
    B = sum(ci * mod.lora_B[n].weight for ci, n in zip(c, ("a0", "a1")))
    got = lora_delta(merged, m, MERGED)
    torch.testing.assert_close(got, (B @ A).detach(), atol=1e-5, rtol=0)  # merged scaling is 1
    weighted = w[0] * lora_delta(ref, m, "a0") + w[1] * lora_delta(ref, m, "a1")
    assert float((got - weighted).abs().max()) > 1e-2  # the cross terms are real


def test_merged_adapter_round_trips_and_changes_outputs_as_the_sum(tmp_path):
    """Saved merged folder -> reloaded by PEFT -> same logits as base weights + both deltas."""

    a = make_adapter(tmp_path / "task", seed=1)
    b = make_adapter(tmp_path / "align", seed=2)
    base, tok = tiny_lm()
    merged = merge_adapters(base, [a, b], (1.0, 1.0))
    out = save_merged(merged, tmp_path / "merged", merge_manifest([a, b], (1.0, 1.0), "cat", None), tok)
    assert (out / "adapter_model.safetensors").is_file() and not (out / MERGED).exists()
    ids = tok(["the cat sleeps"], return_tensors="pt")["input_ids"]
    ref = _peft_model(tiny_lm()[0], str(a), adapter_name="a0")
    ref.load_adapter(str(b), adapter_name="a1")
    plain = tiny_lm()[0]
    with torch.no_grad():
        sd = dict(plain.named_parameters())
        for m in lora_modules(ref, "a0"):
            sd[m + ".weight"] += lora_delta(ref, m, "a0") + lora_delta(ref, m, "a1")
        want = plain(input_ids=ids).logits
        got = _peft_model(tiny_lm()[0], str(out)).eval()(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_different_targets_are_refused(tmp_path):
    a = make_adapter(tmp_path / "task", seed=1)
    b = make_adapter(tmp_path / "align", seed=2, freeze="front")  # LoRA on the upper blocks only
    with pytest.raises(ValueError, match="target different modules"):
        merge_adapters(tiny_lm()[0], [a, b], (1.0, 1.0))


def test_adapter_of_another_base_is_refused(tmp_path):
    a = make_adapter(tmp_path / "task", seed=1)
    other = tiny_lm()
    with torch.no_grad():
        next(other[0].parameters()).add_(1.0)
    b = make_adapter(tmp_path / "align", seed=2, base=other)
    with pytest.raises(ValueError, match="belongs to another base"):
        merge_adapters(tiny_lm()[0], [a, b], (1.0, 1.0))


def test_save_merged_never_overwrites_a_finished_folder(tmp_path):
    a = make_adapter(tmp_path / "task", seed=1)
    b = make_adapter(tmp_path / "align", seed=2)
    merged = merge_adapters(tiny_lm()[0], [a, b], (1.0, 1.0))
    with pytest.raises(ValueError, match="already holds"):
        save_merged(merged, a, {"kind": "x"})
    assert (a / "adapter_model.safetensors").is_file()
