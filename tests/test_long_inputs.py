"""One long-input policy on every path that tokenises (issue 10.1): a sentence of several
times the model's positions and a single word with more pieces than the positions, fed to
every library entry point and every command (in-process). No crash, the right counts
(windowed sentences, truncated words) and no word silently lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alignfreeze.cli import main
from core.conllu import read_conllu
from core.encoding import EncodingStats, encode_windows

POSITIONS = 64  # the tiny models' maximum
LONG_SENT = "the cat sleeps and the dog runs in the garden".split() * 15  # 150 words, ~270 pieces
LONG_WORD = ("gsod" * 25)[:98]  # one word of ~98 WordPiece pieces (under WordPiece's 100-character limit)
SENTENCES = [LONG_SENT, ["the", LONG_WORD, "cat"], ["the", "dog", "sleeps"]]
N_WORDS = sum(map(len, SENTENCES))


def _write_conllu(path, sentences=SENTENCES):
    lines = []
    for k, words in enumerate(sentences):
        lines += [f"# sent_id = s{k}", f"# text = {' '.join(words)}"]
        for i, w in enumerate(words, 1):
            lines.append(f"{i}\t{w}\t{w}\t{'DET' if w == 'the' else 'NOUN'}\t_\t_\t{0 if i == 1 else 1}\t"
                         f"{'root' if i == 1 else 'dep'}\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Saved tiny BERT (base and tagger), the treebank, a pairs file, the expected counts."""
    from core.tiny import tiny_model

    d = tmp_path_factory.mktemp("long")
    base, tok = tiny_model("bert")
    base.save_pretrained(d / "base")
    tok.save_pretrained(d / "base")
    tagger, _ = tiny_model("bert", task="token-classification")
    from core.conllu import UPOS_TAGS

    tagger.config.id2label = dict(enumerate(UPOS_TAGS))
    tagger.config.label2id = {v: k for k, v in tagger.config.id2label.items()}
    tagger.save_pretrained(d / "tagger")
    tok.save_pretrained(d / "tagger")
    tb = _write_conllu(d / "en_long-ud-test.conllu")
    # the other "language": every word + "s" (the similarity aligner drops identical strings)
    tb2 = _write_conllu(d / "fr_long-ud-test.conllu", [[w + "s" for w in s] for s in SENTENCES])
    pairs = d / "pairs.jsonl"
    recs = [{"id": f"s{k}", "src": s, "tgt": s, "links": [[0, 0], [len(s) - 1, len(s) - 1]]}
            for k, s in enumerate(SENTENCES)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    st = EncodingStats()
    wins = encode_windows(tok, SENTENCES, POSITIONS, stats=st)
    # the facts every path must report: independent of how the windows are cut
    assert len(tok(" ".join(LONG_SENT))["input_ids"]) > 4 * POSITIONS
    assert len(tok(LONG_WORD, add_special_tokens=False)["input_ids"]) > POSITIONS
    assert st.windowed == 2 and st.truncated_words == 1 and st.words_without_pieces == 0
    assert all(len(w.input_ids) <= POSITIONS for w in wins)
    return {"dir": d, "tok": tok, "base": base, "tagger": tagger, "tb": tb, "tb2": tb2, "pairs": pairs,
            "windows": st.windows}


def _check_report(err: str, setup):
    assert "2 sentence(s) longer than 64 positions split into windows" in err
    assert "1 word(s) truncated" in err


# ----------------------------------------------------------------------------- library


def test_library_features_drift_probe_align(setup, capsys):
    from analysis.alignment import align_eval
    from analysis.drift import drift_rows
    from core.features import WordFeatureExtractor
    from core.parallel import ParallelPair
    from probing.tasks import load_token_task

    ex = WordFeatureExtractor(setup["base"], setup["tok"], layers="all", progress=False)
    sents = list(read_conllu(setup["tb"]))
    wf = ex.extract(sents)
    assert wf.n_words == N_WORDS and wf.valid.all()
    assert wf.stats["windowed"] == 2 and wf.stats["truncated_words"] == 1 and wf.stats["windows"] == setup["windows"]
    _check_report(capsys.readouterr().err, setup)
    rows = drift_rows(ex, {"same": ex}, sents, "en", ci_groups=0)
    assert {r["n_words"] for r in rows} == {N_WORDS}
    td = load_token_task(ex, setup["tb"])
    assert len(td) == N_WORDS and td.lost == 0 and td.encoding["truncated_words"] == 1
    linked = [type("P", (), {"src": s, "tgt": s, "links": [(0, 0), (len(s) - 1, len(s) - 1)]})() for s in SENTENCES]
    out = align_eval(ex, sentence_pairs=[ParallelPair(f"s{k}", s, s) for k, s in enumerate(SENTENCES)],
                     linked_pairs=linked)
    assert {r["n"] for r in out if r["task"] == "word"} == {2 * len(SENTENCES)}
    assert {r["n"] for r in out if r["task"] == "sentence"} == {len(SENTENCES)}


def test_library_finetune_evaluate_attribution_realign(setup):
    from analysis.attribution import layer_attribution
    from realign.evaluate import predict_upos
    from realign.finetune import IGNORE, build_examples
    from realign.losses import realignment_loss

    sents = list(read_conllu(setup["tb"]))
    ex, stats = build_examples(sents, setup["tok"], POSITIONS)
    assert stats["windowed"] == 2 and stats["truncated_words"] == 1 and stats["windows"] == setup["windows"]
    assert stats["labelled_tokens"] == N_WORDS  # every word labelled once, the truncated one too
    assert all(len(e.input_ids) <= POSITIONS for e in ex) and all(len(e.labels) == len(e.input_ids) for e in ex)
    assert sum(sum(x != IGNORE for x in e.labels) for e in ex) == N_WORDS
    st = EncodingStats()
    pred = predict_upos(setup["tagger"], setup["tok"], sents, stats=st)
    assert [len(p) for p in pred] == list(map(len, SENTENCES)) and all(x is not None for p in pred for x in p)
    assert st.windowed == 2 and st.truncated_words == 1
    df = layer_attribution(setup["tagger"], setup["tok"], {"en": sents}, n_steps=2)
    assert (df["windows"] == setup["windows"]).all() and (df["truncated_words"] == 1).all()
    assert (df["n_sentences"] == 3).all()
    cfg = type("C", (), dict(layers="last", loss="word_infonce", temperature=0.1, negatives="strong",
                             candidates="all", pooling="first", max_length=96, reg_weight=0.0))()
    recs = [{"id": f"s{k}", "src": s, "tgt": s, "links": [[0, 0], [len(s) - 1, len(s) - 1]]}
            for k, s in enumerate(SENTENCES)]
    with torch.no_grad():
        loss, parts = realignment_loss(setup["base"], setup["tok"], recs, cfg)
    assert torch.isfinite(loss) and parts["links"] == 2 * len(recs)  # no link lost to a cut
    assert parts["windows"] == 2 * setup["windows"] and parts["truncated_words"] == 2


# ----------------------------------------------------------------------------- commands


def _run(argv, capsys):
    rc = main([*argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out, err


def test_cli_features_drift_cka(setup, capsys):
    d, tb = setup["dir"], str(setup["tb"])
    out, err = _run(["features", "--model", str(d / "base"), "--treebank", tb, "--layers", "all",
                     "--out", str(d / "feats")], capsys)
    index = json.loads((d / "feats" / "index.json").read_text())
    assert index["stats"]["windowed"] == 2 and index["stats"]["truncated_words"] == 1
    assert index["stats"]["lost_words"] == 0 and index["stats"]["words"] == N_WORDS
    assert "2 sentence(s) windowed" in out and "1 word(s) truncated" in out
    _, err = _run(["drift", "--base", str(d / "base"), "--model", str(d / "base"), "--treebank", tb,
                   "--ci-groups", "0", "--no-progress", "--out", str(d / "drift.csv")], capsys)
    _check_report(err, setup)
    assert set(pd.read_csv(d / "drift.csv")["n_words"]) == {N_WORDS}
    _, err = _run(["cka", "--model", str(d / "base"), "--treebank", tb, "--no-progress", "--out",
                   str(d / "cka.csv")], capsys)
    _check_report(err, setup)
    assert set(pd.read_csv(d / "cka.csv")["n_words"]) == {N_WORDS}


def test_cli_probe_align_eval_attribution(setup, capsys):
    d, tb = setup["dir"], str(setup["tb"])
    _, err = _run(["probe", "--model", str(d / "base"), "--task", "upos", "--train", tb, "--eval", str(setup["tb2"]),
                   "--seeds", "1", "--layers", "last", "--no-progress", "--out", str(d / "probe.csv")], capsys)
    _check_report(err, setup)
    meta = json.loads((d / "probe.json").read_text())
    assert meta["data"][tb]["words"] == N_WORDS and meta["data"][tb]["lost_words"] == 0
    assert meta["data"][tb]["encoding"]["truncated_words"] == 1 and meta["encoding"]["windowed"] == 4
    _, err = _run(["align-eval", "--model", str(d / "base"), "--src", tb, "--tgt", str(setup["tb2"]),
                   "--pairs", str(setup["pairs"]), "--layers", "last", "--no-progress",
                   "--out", str(d / "align.csv")], capsys)
    _check_report(err, setup)
    df = pd.read_csv(d / "align.csv")
    assert set(df[df.task == "word"]["n"]) == {2 * len(SENTENCES)} and set(df[df.task == "sentence"]["n"]) == {3}
    _, err = _run(["attribution", "--model", str(d / "tagger"), "--treebank", tb, "--steps", "2",
                   "--out", str(d / "attr.csv")], capsys)
    _check_report(err, setup)
    df = pd.read_csv(d / "attr.csv")
    assert (df["windows"] == setup["windows"]).all() and (df["n_sentences"] == 3).all()
    assert np.isclose(df["share"].sum(), 1.0)


def test_cli_finetune_evaluate_realign_pairs(setup, capsys):
    d, tb = setup["dir"], str(setup["tb"])
    _, err = _run(["finetune", "--model", str(d / "base"), "--train", tb, "--out", str(d / "ft"), "--steps", "1",
                   "--batch-size", "4", "--no-progress"], capsys)
    _check_report(err, setup)
    m = json.loads((d / "ft" / "manifest.json").read_text())
    assert m["data"]["windowed"] == 2 and m["data"]["truncated_words"] == 1
    assert m["data"]["labelled_tokens"] == N_WORDS
    out, err = _run(["evaluate", str(d / "ft"), "--treebank", tb, "--no-progress", "--out", str(d / "ev.csv")],
                    capsys)
    _check_report(err, setup)
    assert pd.read_csv(d / "ev.csv")["n_words"].tolist() == [N_WORDS]
    _, err = _run(["realign", "--model", str(d / "base"), "--pairs", str(setup["pairs"]), "--out", str(d / "ra"),
                   "--steps", "1", "--batch-size", "3", "--no-progress"], capsys)
    m = json.loads((d / "ra" / "manifest.json").read_text())
    assert m["encoding"]["windows"] == 2 * setup["windows"] and m["encoding"]["truncated_words"] == 2
    assert m["encoding"]["windowed"] == 4 and "4 sentence(s) longer than the window" in err
    _, err = _run(["pairs", "--src", tb, "--tgt", str(setup["tb2"]), "--aligner", "similarity", "--model",
                   str(d / "base"), "--layer", "1", "--out", str(d / "sim.jsonl")], capsys)
    _check_report(err, setup)
    assert len((d / "sim.jsonl").read_text().splitlines()) == 3


def test_decoder_paths_window_long_sentences(setup, tmp_path, capsys):
    """The decoder commands (issue 10.1's "coming decoder commands"): the layer scan and the
    middle-layer alignment loss, in the library and through `midalign scan` / `midalign train`."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _midalign import saved_lm, tiny_lm

    from analysis.layer_scan import layer_scan
    from core.parallel import read_parallel
    from realign.midalign.loss import alignment_loss

    model, tok = tiny_lm("llama")
    st = EncodingStats()
    encode_windows(tok, SENTENCES, POSITIONS, stats=st)  # the decoder tokenizer's own facts
    assert len(tok(" ".join(LONG_SENT))["input_ids"]) > 3 * POSITIONS
    assert len(tok(LONG_WORD, add_special_tokens=False)["input_ids"]) > POSITIONS
    assert (st.windowed, st.truncated_words) == (2, 1)
    pairs = read_parallel(setup["tb"], setup["tb2"])
    both = EncodingStats()
    encode_windows(tok, [p.src for p in pairs] + [p.tgt for p in pairs], POSITIONS, stats=both)
    rows, info = layer_scan(model, tok, [p.src for p in pairs], [p.tgt for p in pairs], layers="0,2")
    assert info["max_length"] == POSITIONS  # --max-length 256 capped at the tokenizer's 64
    assert info["encoding"]["windowed"] == 4 and info["encoding"]["truncated_words"] == 2
    assert {r["n"] for r in rows} == {3}
    with torch.no_grad():
        loss, parts = alignment_loss(model, tok, [p.src for p in pairs], [p.tgt for p in pairs], 2, max_length=1000)
    assert torch.isfinite(loss) and parts["windowed"] == 4 and parts["truncated_words"] == 2
    assert parts["windows"] == both.windows > 6

    lm = saved_lm(tmp_path, "llama")
    out, err = _run(["midalign", "scan", "--model", lm, "--src", str(setup["tb"]), "--tgt", str(setup["tb2"]),
                     "--layers", "0,2", "--out", str(tmp_path / "scan.csv")], capsys)
    assert "4 sentence(s) longer than 64 tokens split into windows, 2 word(s) truncated" in out
    assert "4 sentence(s) longer than 64 positions split into windows" in err
    _, err = _run(["midalign", "train", "--model", lm, "--task", "none", "--parallel", str(setup["tb"]),
                   str(setup["tb2"]), "--layer", "2", "--steps", "1", "--micro-batch", "3", "--accumulation", "1",
                   "--no-progress", "--out", str(tmp_path / "align")], capsys)
    m = json.loads((tmp_path / "align" / "manifest.json").read_text())
    assert m["parallel_encoding"] == {"windows": both.windows, "windowed": 4, "truncated_words": 2,
                                      "max_length": POSITIONS}
    assert "4 parallel sentence(s) longer than 64 tokens split into windows" in err
