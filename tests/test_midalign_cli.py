"""`alignfreeze midalign ...` end to end on a tiny decoder saved as a folder, and the analysis
commands reading an adapter folder as a model."""

from __future__ import annotations

import json

import pandas as pd
import torch
from _midalign import DE, EN, FR, saved_lm

from alignfreeze.cli import main
from core.manifest import read_manifest

TRAIN = ["--micro-batch", "4", "--accumulation", "1", "--steps", "2", "--no-progress"]


def test_scan_train_merge_eval_and_drift(tmp_path, capsys):
    base = saved_lm(tmp_path)
    scan = tmp_path / "scan.csv"
    assert main(["midalign", "scan", "--model", base, "--src", str(EN), "--tgt", str(DE), "--out", str(scan)]) == 0
    df = pd.read_csv(scan)
    assert set(df["layer"]) == {0, 1, 2, 3, 4} and {"src", "tgt"} <= set(df.columns)
    assert "--layer auto would choose K" in capsys.readouterr().out

    task = tmp_path / "task"
    assert main(["midalign", "train", "--model", base, "--train", str(EN), "--parallel", str(EN), str(FR),
                 "--layer", "auto", "--out", str(task), *TRAIN]) == 0
    man = read_manifest(task)
    assert man["layer"]["how"] == "auto" and (task / "scan.csv").is_file()
    assert man["layer"]["scan_file"]["path"].endswith("scan.csv")

    align = tmp_path / "align"
    assert main(["midalign", "train", "--model", base, "--task", "none", "--parallel", str(EN), str(DE),
                 "--layer", "2", "--out", str(align), *TRAIN]) == 0
    merged = tmp_path / "merged"
    assert main(["midalign", "merge", "--model", base, "--adapters", str(task), str(align), "--weights", "1", "0.5",
                 "--out", str(merged)]) == 0
    mm = read_manifest(merged)
    assert mm["combination"] == "cat" and mm["weights"] == [1.0, 0.5] and mm["meaning"].startswith("exact")
    assert json.loads((merged / "adapter_config.json").read_text())["r"] == 16

    full = tmp_path / "full"
    assert main(["midalign", "merge", "--model", base, "--adapters", str(task), str(align), "--weights", "1", "0.5",
                 "--full-model", "--out", str(full)]) == 0
    assert (full / "config.json").is_file() and not (full / "adapter_config.json").exists()
    from core.models import load_model

    a, b = load_model(full), load_model(merged)  # plain folder vs adapter folder merged on load
    for (n, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(x, y, atol=1e-6), n

    ev = tmp_path / "eval.csv"
    assert main(["midalign", "eval", "--model", base, "--adapter", "none", str(task), str(merged), "--task", "upos",
                 "--data", str(EN), str(DE), "--limit", "3", "--out", str(ev)]) == 0
    e = pd.read_csv(ev)
    assert set(e["lang"]) == {"en", "de"} and e["adapter"].nunique() == 3

    drift = tmp_path / "drift.csv"
    assert main(["drift", "--base", base, "--model", str(merged), "--treebank", str(EN), "--ci-groups", "0",
                 "--no-progress", "--out", str(drift)]) == 0
    d = pd.read_csv(drift)
    cka = d[(d["metric"] == "cka")].set_index("layer")["value"]
    assert cka.loc[0] == 1.0 or abs(cka.loc[0] - 1.0) < 1e-6  # LoRA never touches the embeddings
    assert cka.min() < 1.0  # ...but the adapted blocks moved


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    base = saved_lm(tmp_path)
    from core.tiny import tiny_model

    m, t = tiny_model("bert")
    m.save_pretrained(tmp_path / "bert")
    t.save_pretrained(tmp_path / "bert")
    assert main(["midalign", "scan", "--model", str(tmp_path / "bert"), "--src", str(EN), "--tgt", str(DE),
                 "--out", str(tmp_path / "s.csv")]) == 2
    assert "is an encoder; `alignfreeze midalign` needs a decoder" in capsys.readouterr().err
    out = tmp_path / "o"
    assert main(["midalign", "train", "--model", base, "--train", str(EN), "--parallel", str(EN), str(DE),
                 "--layer", "7", "--out", str(out), *TRAIN]) == 2
    assert "layers 0..4" in capsys.readouterr().err and not out.exists()
    a = tmp_path / "a"
    assert main(["midalign", "train", "--model", base, "--train", str(EN), "--layer", "2", "--freeze", "front",
                 "--out", str(a), *TRAIN]) == 0
    b = tmp_path / "b"
    assert main(["midalign", "train", "--model", base, "--train", str(EN), "--layer", "2", "--out", str(b), *TRAIN]) == 0
    before = (a / "adapter_model.safetensors").read_bytes()
    m = tmp_path / "m"
    assert main(["midalign", "merge", "--model", base, "--adapters", str(a), str(b), "--out", str(m)]) == 2
    assert "target different modules" in capsys.readouterr().err and not m.exists()
    assert main(["midalign", "merge", "--model", base, "--adapters", str(a), str(b), "--out", str(a), "--overwrite"]) == 2
    assert f"is also an input of this command (--adapters {a})" in capsys.readouterr().err
    assert (a / "adapter_model.safetensors").read_bytes() == before
