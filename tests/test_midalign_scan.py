"""Layer scan rows, the --layer auto rule, the scan plot, and LoRA targets from freeze specs."""

from __future__ import annotations

import numpy as np
import pytest
from _midalign import EN, FR, tiny_lm

from analysis.layer_scan import layer_scan, scan_rows
from core.arch import projection_paths
from core.conllu import read_conllu
from core.encoding import surface_text
from core.parallel import read_parallel
from realign.freeze import lora_target_modules
from realign.midalign.layer_choice import RULE, choose_layer, resolve_layer


def test_scan_rows_hand_made():
    s = np.eye(3)
    t_good = np.eye(3) * 2.0  # same directions: retrieval 1, CKA 1
    t_bad = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])  # rows 0 and 1 swapped
    rows = scan_rows({0: s, 1: s}, {0: t_bad, 1: t_good})
    get = {(r["layer"], r["metric"], r["direction"]): r["value"] for r in rows}
    assert get[(1, "retrieval_acc", "src->tgt")] == 1.0 and get[(1, "cka", "both")] == pytest.approx(1.0)
    assert get[(0, "retrieval_acc", "src->tgt")] == pytest.approx(1 / 3)
    assert get[(0, "retrieval_mean", "both")] == pytest.approx(1 / 3)
    assert all(r["n"] == 3 for r in rows)


def test_layer_rule_excludes_0_and_L_and_breaks_ties_by_cka_then_lower_layer():
    def rows(vals):
        return [{"layer": k, "metric": m, "value": v} for k, (r, c) in vals.items()
                for m, v in (("retrieval_mean", r), ("cka", c))]

    c = choose_layer(rows({0: (1, 1), 1: (.5, .1), 2: (.7, .2), 3: (.7, .3), 4: (.7, .3), 5: (1, 1)}), 5)
    assert c.layer == 3 and c.runner_up == 4 and c.margin == 0 and c.rule == RULE
    with pytest.raises(ValueError, match="another model"):
        choose_layer(rows({0: (1, 1), 9: (1, 1)}), 5)
    # two language pairs: averaged
    two = rows({1: (.9, 0), 2: (.1, 0), 3: (0, 0)}) + rows({1: (.0, 0), 2: (.9, 0), 3: (0, 0)})
    assert choose_layer(two, 4).layer == 2


def test_resolve_layer_errors():
    assert resolve_layer("middle", 30).layer == 15
    with pytest.raises(ValueError, match="layers 0..4"):
        resolve_layer("5", 4)
    with pytest.raises(ValueError, match="0 has no block below"):
        resolve_layer("0", 4)
    with pytest.raises(ValueError, match="needs a layer-scan table"):
        resolve_layer("auto", 4)


def test_scan_of_a_tiny_model_covers_every_layer_and_plots():
    model, tok = tiny_lm("qwen2")
    pairs = read_parallel(EN, FR)
    texts = {s.sent_id: s.text for s in read_conllu(FR)}
    assert all(surface_text(p.tgt)[0] == texts[p.id] for p in pairs)  # the CoNLL-U text, as written
    rows, info = layer_scan(model, tok, [p.src for p in pairs], [p.tgt for p in pairs], batch_size=5)
    assert sorted({r["layer"] for r in rows}) == [0, 1, 2, 3, 4]
    assert info["n_pairs"] == 12 and info["encoding"]["windowed"] == 0 and info["encoding"]["sentences"] == 24
    assert all(0 <= r["value"] <= 1 + 1e-9 for r in rows)


def test_scan_table_draws_with_the_plot_command(tmp_path):
    """The scan CSV is what `alignfreeze plot scan` reads (figures live in analysis.plots)."""
    import pandas as pd

    from alignfreeze.cli import main

    model, tok = tiny_lm("qwen2")
    pairs = read_parallel(EN, FR)
    rows, _ = layer_scan(model, tok, [p.src for p in pairs], [p.tgt for p in pairs], batch_size=12)
    csv = tmp_path / "scan.csv"
    pd.DataFrame([{"model": "tiny", "src": "en", "tgt": "fr", **r} for r in rows]).to_csv(csv, index=False)
    assert main(["plot", "scan", "--input", str(csv), "--out", str(tmp_path / "fig"), "--mark-layer", "2"]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 0


@pytest.mark.parametrize("family, n_per_block", [("llama", 7), ("qwen2", 7), ("gpt2", 4)])
def test_lora_targets_follow_the_freeze_spec(family, n_per_block):
    model, _ = tiny_lm(family)
    names, plan = lora_target_modules(model, "paper", "none")
    assert len(names) == 4 * n_per_block
    names, plan = lora_target_modules(model, "paper", "front")  # blocks 1-2 frozen -> LoRA on 3-4 only
    assert plan.frozen_layers == (1, 2) and len(names) == 2 * n_per_block
    assert set(names) == set(sum(projection_paths(model, ["q", "v", "o", "up", "down"]
                                                  + (["gate", "k"] if family != "gpt2" else []), [3, 4]).values(), []))
    names, _ = lora_target_modules(model, "q,v", "emb,4")
    assert len(names) == (3 if family == "gpt2" else 6)  # gpt2: q and v share c_attn
    with pytest.raises(ValueError, match="no block is left"):
        lora_target_modules(model, "paper", "1-4")


def test_gpt2_has_no_gate():
    model, _ = tiny_lm("gpt2")
    with pytest.raises(ValueError, match="gpt2 blocks have no gate"):
        lora_target_modules(model, "q,gate")
