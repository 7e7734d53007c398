"""The layer-effect study on tiny REAL realignments: one row per (variant, language,
measure) with its point inside its interval, the toolkit's own probe and retrieval numbers,
exact zeros for layers that never moved, intervals over real seeds only; the CLI."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from alignfreeze.cli import main
from alignfreeze.layer_effect import LayerEffectConfig, run_layer_effect
from alignfreeze.layer_effect_measures import (
    Hits,
    LayerProbes,
    build_variants,
    paired_unit_interval,
    retrieval_hits,
    seed_interval,
    variant_features,
)

LANGS = ("en", "fr", "de")


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A tiny 4-block BERT and its realignments: full (seeds 7, 8) and front-frozen (seed 7)."""
    from core import FIXTURES
    from core.parallel import read_parallel
    from core.tiny import tiny_model
    from realign.config import RealignConfig
    from realign.pairs import extract_pairs, write_pairs
    from realign.train import realign

    root = tmp_path_factory.mktemp("effect")
    model, tok = tiny_model("bert", layers=4)
    model.pooler = None
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    pairs = []
    for lang in ("fr", "de"):
        pp = read_parallel(FIXTURES / "en_demo-ud-test.conllu", FIXTURES / f"{lang}_demo-ud-test.conllu")
        records, _ = extract_pairs(pp, "dictionary", dictionary=FIXTURES / f"en-{lang}.txt")
        pairs.append(str(write_pairs(root / f"en-{lang}.jsonl", records)))
    out = {"root": root, "base": str(root / "base"), "pairs": tuple(pairs), "model": model, "tok": tok,
           "files": {lang: str(FIXTURES / f"{lang}_demo-ud-test.conllu") for lang in LANGS}}
    for label, spec, seed in (("full-7", "none", 7), ("full-8", "none", 8), ("front-7", "front", 7)):
        cfg = RealignConfig(model=str(root / "base"), pairs=tuple(pairs), out=str(root / label), freeze=spec, steps=3,
                            batch_size=4, lr=1e-2, seed=seed)
        out[label] = str(realign(cfg, copy.deepcopy(model), tok, progress=False))
    return out


def _cfg(grid, models, **kw):
    f = grid["files"]
    base = dict(model=tuple(models), base=grid["base"], train=f["en"], eval=tuple(f[lang] for lang in LANGS),
                measures=("upos-probe", "sentence-retrieval", "word-retrieval"), pairs=grid["pairs"],
                chunk_sentences=5, batch_size=4)
    base.update(kw)
    return LayerEffectConfig(**base)


@pytest.fixture(scope="module")
def one(grid):
    # one sentence per batch, here and in the peers below: the padding of a batch changes the
    # last bits of a float, enough to flip a near-tie of a tiny model
    return run_layer_effect(_cfg(grid, [grid["full-7"]], batch_size=1), progress=False)


def test_one_row_per_variant_language_measure_with_the_point_inside(one):
    eff = one.effects
    variants = ["emb", "block 1", "block 2", "block 3", "block 4", "lower half (1-2)", "upper half (3-4)",
                "all (pretrained)"]
    expected = {(v, lang, m) for v in variants for lang, m in
                [("en", "upos-probe"), ("fr", "upos-probe"), ("de", "upos-probe")]
                + [(lang, m) for lang in ("fr", "de") for m in ("sentence-retrieval", "word-retrieval")]}
    got = list(zip(eff["variant"], eff["lang"], eff["measure"], strict=True))
    assert len(got) == len(set(got)) and set(got) == expected
    assert (eff["layer"] == 4).all() and (eff["n_seeds"] == 1).all() and eff["std"].isna().all()
    assert (eff["interval"] == "sentences, clustered SE, 95%").all()
    assert np.allclose(eff["effect"], eff["realigned"] - eff["reverted"])
    assert (eff["ci_low"] <= eff["effect"]).all() and (eff["effect"] <= eff["ci_high"]).all()
    assert (eff["ci_high"] > eff["ci_low"]).any()  # not all degenerate
    assert eff["effect"].abs().max() > 0  # the realignment did something somewhere


def _toolkit_numbers(grid, model: str) -> dict:
    """``alignfreeze probe`` and ``align-eval`` numbers of ``model`` on the study's data,
    keyed by (lang, measure), one sentence per batch as the study runs in ``one``."""
    from types import SimpleNamespace

    from analysis.alignment import align_eval, read_pairs_jsonl
    from core.conllu import read_conllu
    from core.features import WordFeatureExtractor
    from core.models import load
    from core.parallel import read_parallel
    from probing.run import ProbeConfig, run_probe

    f = grid["files"]
    out = {}
    df, _ = run_probe(ProbeConfig(model=model, train=f["en"], eval=tuple(f.values()), layers="4", seeds=1,
                                  batch_size=1),
                      progress=False)
    for lang, v in df[df["split"] != "train"].set_index("lang")["value"].items():
        out[(lang, "upos-probe")] = v
    m, tok = load(model)
    ex = WordFeatureExtractor(m, tok, layers="4", batch_size=1, progress=False)
    en = list(read_conllu(f["en"]))
    for lang, pairs in zip(("fr", "de"), grid["pairs"], strict=True):
        # the sentences themselves (running text with SpaceAfter), as the study reads them
        tgt = {s.sent_id: s for s in read_conllu(f[lang])}
        sentence_pairs = [SimpleNamespace(src=s, tgt=tgt[s.sent_id]) for s in en]
        assert [p.id for p in read_parallel(f["en"], f[lang])] == [s.sent_id for s in en]
        r = pd.DataFrame(align_eval(ex, sentence_pairs=sentence_pairs, linked_pairs=read_pairs_jsonl(pairs),
                                    csls_k=0))
        out[(lang, "sentence-retrieval")] = r[r["task"] == "sentence"]["value"].mean()
        out[(lang, "word-retrieval")] = r[(r["task"] == "word") & (r["candidates"] == "strong")
                                          & ~r["centred"].astype(bool)]["value"].mean()
    return out


def test_the_measures_are_the_toolkits_own(grid, one):
    """The realigned model's numbers equal `alignfreeze probe` and `align-eval` on the same data."""
    meas = one.measurements
    got = meas[meas["variant"] == "realigned"].set_index(["lang", "measure"])["value"]
    want = _toolkit_numbers(grid, grid["full-7"])
    assert set(want) == set(got.index) and len(want) == 3 + 2 * 2
    for key, v in want.items():
        assert got[key] == pytest.approx(v, abs=1e-12), key


def test_the_pretrained_variant_is_the_base_model(grid, one):
    """Every measure of the variant with all layers reverted (its pivot too) is the base model's."""
    meas = one.measurements
    allr = meas[meas["variant"] == "all (pretrained)"].set_index(["lang", "measure"])["value"]
    realigned = meas[meas["variant"] == "realigned"].set_index(["lang", "measure"])["value"]
    want = _toolkit_numbers(grid, grid["base"])
    assert set(want) == set(allr.index)
    for key, v in want.items():
        assert allr[key] == pytest.approx(v, abs=1e-12), key
    assert any(allr[k] != realigned[k] for k in want if k[1] != "upos-probe")  # the check can see a pivot


def test_layers_that_never_moved_have_an_exact_zero_and_are_not_run(grid):
    res = run_layer_effect(_cfg(grid, [grid["front-7"]], measures=("upos-probe", "sentence-retrieval")),
                           progress=False)
    eff = res.effects
    frozen = eff[eff["variant"].isin(["block 1", "block 2", "lower half (1-2)"])]
    assert frozen["identical_weights"].all() and len(frozen) == 3 * 5
    assert (frozen["effect"] == 0).all() and (frozen["ci_low"] == 0).all() and (frozen["ci_high"] == 0).all()
    moved = eff[~eff["variant"].isin(["block 1", "block 2", "lower half (1-2)"])]
    assert not moved["identical_weights"].any() and moved["effect"].abs().max() > 0
    facts = res.meta["checkpoints"][0]
    assert facts["unchanged_layers"] == [1, 2]
    assert set(facts["identical_variants"]) == {"block 1", "block 2", "lower half (1-2)"}
    # 8 variants, 3 never run; the others replay the blocks below them
    assert facts["block_passes"] == {"computed": 4 + 4 + 2 + 1 + 2 + 4, "plain": 4 * 9}


def test_a_lower_read_out_layer_stops_the_passes_there(grid):
    """Read at layer 2: reverting block 3 or 4 changes nothing there (exact zeros, no pass)."""
    res = run_layer_effect(_cfg(grid, [grid["full-7"]], measures=("upos-probe",), readout="1-2",
                                revert=("each",)), progress=False)
    eff = res.effects
    assert set(eff["layer"]) == {1, 2}
    above = eff[eff["variant"].isin(["block 3", "block 4"]) | ((eff["variant"] == "block 2") & (eff["layer"] == 1))]
    assert len(above) == 2 * 2 * 3 + 3 and (above["effect"] == 0).all()
    assert res.meta["checkpoints"][0]["block_passes"] == {"computed": 2 + 2 + 2 + 1, "plain": 2 * 6}


def test_replayed_variant_features_are_those_of_the_reverted_checkpoint(grid, tmp_path):
    """The in-memory variants (swap + replay) equal `alignfreeze revert` checkpoints, reloaded."""
    from core.conllu import read_conllu
    from core.models import load
    from realign.revert import load_checkpoint, revert_checkpoint

    model = load_checkpoint(grid["full-7"])
    base = load_checkpoint(grid["base"])
    sents = list(read_conllu(grid["files"]["fr"]))
    variants = build_variants(["each", "back"], 4)
    fast = variant_features(model, base, grid["tok"], variants, sents, layers="all", pooling="first",
                            batch_size=4, chunk_sentences=5, reuse=True)
    plain = variant_features(model, base, grid["tok"], variants, sents, layers="all", pooling="first",
                             batch_size=4, chunk_sentences=5, reuse=False)
    for name, wf in plain.items():
        for lay in wf.layers:
            assert np.array_equal(wf.features[lay], fast[name].features[lay]), (name, lay)
    for v in (variants[3], variants[4], variants[-1]):  # block 3, block 4 (the layer read), upper half
        out = revert_checkpoint(grid["full-7"], grid["base"], tmp_path / v.spec, layers=v.spec)
        m, t = load(out)
        # the same chunks and batches (padding changes the last bits of a float)
        wf = variant_features(m, base, t, [], sents, layers="all", pooling="first", batch_size=4,
                              chunk_sentences=5)["realigned"]
        for lay in wf.layers:
            assert np.array_equal(wf.features[lay], fast[v.name].features[lay]), (v.name, lay)


def test_intervals_over_real_seeds(grid, one):
    two = run_layer_effect(_cfg(grid, [grid["full-7"], grid["full-8"]], measures=("upos-probe",)), progress=False)
    eff = two.effects
    assert (eff["n_seeds"] == 2).all() and (eff["seeds"] == "7,8").all()
    assert (eff["interval"] == "seeds, t, 95%").all() and eff["std"].notna().all()
    assert (eff["ci_low"] <= eff["effect"]).all() and (eff["effect"] <= eff["ci_high"]).all()
    m = two.measurements
    r = m[m["variant"] == "realigned"].set_index(["seed", "lang"])["value"]
    e1 = m[m["variant"] == "emb"].set_index(["seed", "lang"])["value"]
    per_seed = [r[(s, "fr")] - e1[(s, "fr")] for s in (7, 8)]
    row = eff[(eff["variant"] == "emb") & (eff["lang"] == "fr")].iloc[0]
    assert row["effect"] == pytest.approx(np.mean(per_seed))
    assert row["std"] == pytest.approx(np.std(per_seed, ddof=1))
    # Student's t with 1 degree of freedom on every row (rows whose seeds agree have a point interval)
    assert (eff["std"] > 0).any()
    assert np.allclose(eff["ci_high"] - eff["effect"], 12.706204736 * eff["std"] / math.sqrt(2), rtol=1e-6)
    assert np.allclose(eff["effect"] - eff["ci_low"], 12.706204736 * eff["std"] / math.sqrt(2), rtol=1e-6)
    # the first seed's numbers are the one-checkpoint study's
    one_r = one.measurements.query("variant == 'realigned' and measure == 'upos-probe'").set_index("lang")["value"]
    assert r[(7, "fr")] == pytest.approx(one_r["fr"])
    with pytest.raises(ValueError, match="different seeds of one strategy"):
        run_layer_effect(_cfg(grid, [grid["full-7"], grid["front-7"]]), progress=False)
    with pytest.raises(ValueError, match="different freeze strategies"):
        run_layer_effect(_cfg(grid, [grid["full-8"], grid["front-7"]]), progress=False)


def test_interval_arithmetic():
    a = Hits(np.array([3.0, 2.0, 5.0, 1.0]), np.array([4.0, 2.0, 6.0, 3.0]))
    b = Hits(np.array([2.0, 2.0, 3.0, 1.0]), np.array([4.0, 2.0, 6.0, 3.0]))
    e, lo, hi = paired_unit_interval(a, b)
    d, n = a.hits - b.hits, a.n
    var = 4 / 3 * ((d - e * n) ** 2).sum() / n.sum() ** 2
    assert e == pytest.approx(3 / 15) and hi - e == pytest.approx(1.959963985 * math.sqrt(var))
    assert paired_unit_interval(a, a) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same units"):
        paired_unit_interval(a, Hits(b.hits, b.n + 1))
    mean, sd, lo, hi = seed_interval([0.1])
    assert mean == 0.1 and all(math.isnan(x) for x in (sd, lo, hi))
    rng = np.random.default_rng(0)
    Q, C = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    C[:12] = Q[:12] + 0.1 * rng.normal(size=(12, 8))
    from analysis.alignment import retrieval_accuracy

    idx = np.arange(30)
    assert retrieval_hits(Q, C).mean() == pytest.approx(retrieval_accuracy(Q, C, idx))
    both = np.concatenate([C, Q])
    assert retrieval_hits(Q, both, exclude=idx + 30).mean() == \
        pytest.approx(retrieval_accuracy(Q, both, idx, exclude=idx + 30))


def test_a_layers_probe_depends_on_that_layer_only():
    """The batched probe's one L-BFGS run couples the layers' fits; the study's must not: a
    layer's probe is the one-layer fit whatever the other read-out layers hold, and a layer
    whose features equal the realigned model's reuses its probe."""
    from probing.linear import MultiLayerLinearProbe

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 400)
    x1 = rng.normal(size=(400, 32)) + 0.3 * np.eye(6, 32)[y]
    x2 = rng.normal(size=(400, 32)) + 0.5 * np.eye(6, 32)[y]
    x2b = x2 + 0.3 * rng.normal(size=(400, 32))
    rows = np.arange(300)
    kw = dict(C=1.0, max_iter=100, random_state=0)
    a = LayerProbes([1, 2], {1: x1, 2: x2}, rows, y[rows], **kw)
    b = LayerProbes([1, 2], {1: x1.copy(), 2: x2b}, rows, y[rows], **kw)
    alone = MultiLayerLinearProbe(1.0, max_iter=100, random_state=0).fit([x1[rows]], y[rows])
    assert np.array_equal(a.probes[1].coef_, alone.coef_) and np.array_equal(b.probes[1].coef_, alone.coef_)
    joint = [MultiLayerLinearProbe(1.0, max_iter=100, random_state=0).fit([x1[rows], x[rows]], y[rows])
             for x in (x2, x2b)]
    assert not np.array_equal(joint[0].coef_[0], joint[1].coef_[0])  # what the batched fit would have done
    c = LayerProbes([1, 2], {1: x1.copy(), 2: x2b}, rows, y[rows], **kw, same_as=(a, {1: x1, 2: x2}))
    assert c.probes[1] is a.probes[1] and c.probes[2] is not a.probes[2]
    assert np.array_equal(c.predict({1: x1, 2: x2b}, rows)[1], b.predict({1: x1, 2: x2b}, rows)[1])


def test_variants():
    names = [v.name for v in build_variants(["each", "front", "back", "all", "emb,1"], 4)]
    assert names == ["emb", "block 1", "block 2", "block 3", "block 4", "lower half (1-2)", "upper half (3-4)",
                     "all (pretrained)", "emb,1"]
    assert [v.name for v in build_variants(["1", "each"], 2)] == ["block 1", "emb", "block 2"]  # duplicates dropped
    assert [v.name for v in build_variants(["0", "2-2", "0-1"], 2)] == ["emb", "block 2", "0-1"]
    with pytest.raises(ValueError, match="reverts no layer"):
        build_variants(["none"], 4)
    with pytest.raises(ValueError, match="0..4"):
        build_variants(["9"], 4)


def test_the_command_writes_tables_and_figure(grid, tmp_path, capsys):
    f = grid["files"]
    out = tmp_path / "study"
    rc = main(["layer-effect", "--model", grid["full-7"], "--base", grid["base"], "--train", f["en"],
               "--eval", f["fr"], f["de"], "--revert", "2", "back", "--chunk-sentences", "6", "--out", str(out),
               "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    eff = pd.read_csv(out / "effects.csv")
    assert set(eff["variant"]) == {"block 2", "upper half (3-4)"} and set(eff["lang"]) == {"fr", "de"}
    assert set(eff["measure"]) == {"upos-probe", "sentence-retrieval"}
    for ext in ("png", "svg", "pdf", "csv"):
        assert (out / "figures" / f"layer_effect.{ext}").stat().st_size > 500
    assert "upos-probe at layer 4" in printed and "upper half (3-4)" in printed
    drawn = pd.read_csv(out / "figures" / "layer_effect.csv")
    assert (drawn["unit"] == "percentage points").all()
    j = drawn.merge(eff, on=["variant", "lang", "measure"], suffixes=("", "_table"))
    assert len(j) == len(eff) == len(drawn)
    assert j["value"].to_numpy() == pytest.approx(100 * j["effect"].to_numpy())
    rc = main(["layer-effect", "--model", grid["full-7"], "--base", grid["base"], "--train", f["en"], "--eval",
               f["fr"], "--measures", "word-retrieval", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "needs --pairs" in err


def test_finetune_path(grid, tmp_path):
    """Every variant fine-tuned and tagged zero-shot; never-moved layers are not fine-tuned twice."""
    from realign.evaluate import evaluate

    f = grid["files"]
    cfg = _cfg(grid, [grid["front-7"]], measures=("upos-finetune",), revert=("front", "back"),
               finetune_train=(f["en"],), finetune_steps=2, finetune_batch_size=4, keep_models=True)
    res = run_layer_effect(cfg, out=tmp_path, progress=False)
    eff = res.effects
    assert set(zip(eff["variant"], eff["lang"], strict=True)) == {(v, lang) for v in ("lower half (1-2)",
                                                                                      "upper half (3-4)")
                                                                  for lang in LANGS}
    assert (eff.loc[eff["variant"] == "lower half (1-2)", "effect"] == 0).all()
    kept = sorted(p.name for p in (tmp_path / "models" / "seed-7").iterdir())
    assert kept == ["realigned-pos", "upper-half-3-4-pos", "upper-half-3-4-reverted"]
    ev = evaluate(str(tmp_path / "models" / "seed-7" / "realigned-pos"), list(f.values()), progress=False)
    got = res.measurements.query("variant == 'realigned'").set_index("lang")["value"]
    for r in ev.itertuples():
        assert got[r.lang] == pytest.approx(r.value, abs=1e-12)
    assert (eff["ci_low"] <= eff["effect"]).all() and (eff["effect"] <= eff["ci_high"]).all()


def test_torch_threads_untouched():
    assert torch.get_num_threads() == 1  # conftest: the study must not change it
