"""Sub-word -> word pooling before and after core.encoding (issue 9.1), with e5-small.

(a) On every PUD file (and EWT) of ../shared/data/ud: the share of words (surface tokens, what
    is tokenised) whose pooled ``first`` piece is a bare word-start marker (a piece that
    carries no character), BEFORE (pre-split words through ``is_split_into_words=True``,
    first token of ``word_ids()``, the old ``encode_words``) and AFTER (running text with
    ``SpaceAfter=No``, pieces mapped to words by character overlap). Also the share of words
    that share a piece with a neighbour, after.
(b) Zero-shot UPOS probes per layer: a per-layer linear probe (``probing.MultiLayerLinearProbe``,
    what ``alignfreeze probe`` fits: C=1, torch L-BFGS, 100 iterations) trained on English
    (en_ewt dev) and evaluated on the PUD files of zh, th, ko, ar, hi, with e5-small's
    features tokenised the old way and the new way, ``first`` pooling, and ``mean`` as a
    reference. The old way is reproduced here: HF ``is_split_into_words`` + ``word_ids()``
    (layers are the same for an encoder: e5 is a BERT).

    python bench/bench_pooling.py --train-sentences 600 --eval-sentences 200
    (ALIGNFREEZE_SHARED_DATA=/path/to/shared/data when it is not ../shared/data)

Sentences are the first N of each file (a subsample on this 2-core machine; the shares of (a)
use whole files).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UD = Path(os.environ.get("ALIGNFREEZE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ud"
PROBE_LANGS = ("zh", "th", "ko", "ar", "hi")


# ----------------------------------------------------------------------------- the old way
def old_batch(tok, sentences, max_length: int):
    """The old ``encode_words``: pre-split surface words, ``word_ids()`` per token."""
    words = [list(s.tokens) for s in sentences]
    enc = tok(words, is_split_into_words=True, padding=True, truncation=True, max_length=max_length,
              return_tensors="pt")
    wi = torch.full(enc["input_ids"].shape, -1, dtype=torch.long)
    for r in range(len(words)):
        wi[r] = torch.tensor([-1 if w is None else w for w in enc.word_ids(r)])
    return enc["input_ids"], enc["attention_mask"], wi, [len(w) for w in words]


def old_first_pieces(tok, sentences) -> list[np.ndarray]:
    """Token id of the old ``first`` piece of every surface word."""
    out = []
    enc = tok([list(s.tokens) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    for r, s in enumerate(sentences):
        first = np.full(len(s.tokens), -1, dtype=np.int64)
        for t, w in zip(enc["input_ids"][r], enc.word_ids(r)):
            if w is not None and first[w] < 0:
                first[w] = t
        out.append(first)
    return out


# ----------------------------------------------------------------------------- (a) bare shares
def bare_shares(tok, files) -> list[dict]:
    from core.conllu import read_conllu
    from core.encoding import EncodingStats, bare_piece_mask, encode_windows

    rows = []
    for f in files:
        sents = list(read_conllu(f))
        n = sum(len(s.tokens) for s in sents)
        old = np.concatenate(old_first_pieces(tok, sents))
        old_bare = int(bare_piece_mask(tok, old[old >= 0]).sum())
        st = EncodingStats()
        new_bare = 0
        for w in encode_windows(tok, sents, 512, stats=st):
            order = np.lexsort((w.piece_token, w.piece_word))
            tok_pos, word = w.piece_token[order], w.piece_word[order]
            first = np.ones(len(word), dtype=bool)
            first[1:] = word[1:] != word[:-1]
            new_bare += int(bare_piece_mask(tok, w.input_ids[tok_pos[first]]).sum())
        rows.append({"file": f.name, "words": n, "old": old_bare / n, "new": new_bare / n,
                     "shared": st.shared_piece_words / n, "without": st.words_without_pieces / n,
                     "windowed": st.windowed})
    return rows


# ----------------------------------------------------------------------------- (b) probes
@torch.no_grad()
def features(model, tok, sentences, way: str, batch_size: int = 32) -> dict[str, dict[int, np.ndarray]]:
    """``{pooling: {layer: (N syntactic words, D)}}`` for ``first`` and ``mean``, one forward."""
    from core.encoding import collate, encode_windows, pad_id_of
    from core.layers import stacked_layer_states
    from core.pooling import pool_subwords

    per_tok = {"first": [], "mean": []}
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i].tokens))
    if way == "new":
        wins = encode_windows(tok, [sentences[i] for i in order], 512)
        assert all(w.start == 0 for w in wins), "no windows expected in this bench"
    for k in range(0, len(order), batch_size):
        part = [sentences[i] for i in order[k:k + batch_size]]
        if way == "old":
            ids, mask, wi, n = old_batch(tok, part, 512)
            H = stacked_layer_states(model, "all", input_ids=ids, attention_mask=mask)
            pooled = {m: pool_subwords(H, wi, n, m, flat=True)[0] for m in per_tok}
        else:
            b = collate(wins[k:k + batch_size], pad_id_of(tok))
            H = stacked_layer_states(model, "all", **b.inputs)
            pooled = {m: b.pool(H, m)[0] for m in per_tok}
        for m in per_tok:
            per_tok[m].append(pooled[m].numpy())
    out = {}
    # back to file order, then syntactic words (a multiword token's words share its vector)
    starts = np.cumsum([0] + [len(sentences[i].tokens) for i in order])
    pos = {i: starts[j] for j, i in enumerate(order)}
    gather = np.concatenate([pos[i] + np.asarray(s.word_to_token) for i, s in enumerate(sentences)])
    for m, parts in per_tok.items():
        X = np.concatenate(parts, axis=1)  # (layers, N tokens, D)
        out[m] = {lay: X[lay][gather] for lay in range(X.shape[0])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sentences", type=int, default=600, help="first N sentences of en_ewt dev")
    ap.add_argument("--eval-sentences", type=int, default=200, help="first N sentences of each PUD file")
    ap.add_argument("--skip-probes", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only (smoke runs): leave bench/RESULTS.md alone")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from core.conllu import read_conllu
    from core.models import load, load_tokenizer
    from probing.linear import MultiLayerLinearProbe

    tok = load_tokenizer("e5-small", offline=True)
    files = sorted(UD.glob("*_pud-ud-test.conllu")) + sorted(UD.glob("en_ewt-ud-dev.conllu"))
    if not files:
        sys.exit(f"{UD}: no shared UD data")
    t0 = time.perf_counter()
    shares = bare_shares(tok, files)
    t_shares = time.perf_counter() - t0
    for r in shares:
        print(f"{r['file']:28s} words {r['words']:6d}  bare first piece: old {r['old']:6.1%}  new {r['new']:5.1%}  "
              f"shared piece {r['shared']:5.1%}", flush=True)

    body = [
        "## Sub-word -> word pooling with XLM-R's Unigram tokenizer (e5-small): before / after core.encoding",
        "",
        "Before = pre-split words through `is_split_into_words=True`, first token of `word_ids()` (the old "
        "`encode_words`, reproduced in the script); after = running text (`SpaceAfter=No` glues words), a word "
        "owns the pieces overlapping its characters, `first` = its first piece that carries characters.",
        "",
        f"### (a) Words whose pooled `first` piece is a bare word-start marker ('▁': no character), whole files ({t_shares:.0f} s)",
        "",
        "| file | words (surface) | bare first piece, before | after | words sharing a piece with a neighbour, after |",
        "|---|---:|---:|---:|---:|",
    ]
    body += [f"| {r['file']} | {r['words']:,} | {r['old']:.1%} | {r['new']:.1%} | {r['shared']:.1%} |" for r in shares]
    body += ["", "Words that share a piece with a neighbour (last column) get the same `first` vector: the model "
             "read them as one piece of the running text. The old input spaced every word, so they had distinct "
             "vectors, but of a text the model never saw."]

    if not args.skip_probes:
        model, _ = load("e5-small", offline=True)
        ewt = list(read_conllu(UD / "en_ewt-ud-dev.conllu"))[: args.train_sentences]
        evals = {lang: list(read_conllu(UD / f"{lang}_pud-ud-test.conllu"))[: args.eval_sentences]
                 for lang in PROBE_LANGS}
        acc: dict = {}
        t1 = time.perf_counter()
        for way in ("old", "new"):
            Xtr = features(model, tok, ewt, way)
            ytr = np.asarray([u for s in ewt for u in s.upos])
            Xev = {lang: features(model, tok, s, way) for lang, s in evals.items()}
            for pooling in ("first", "mean"):
                probe = MultiLayerLinearProbe(1.0, backend="torch", solver="lbfgs", max_iter=100, random_state=0)
                probe.fit([Xtr[pooling][lay] for lay in range(13)], ytr)
                for lang, sents in evals.items():
                    y = np.asarray([u for s in sents for u in s.upos])
                    acc[(way, pooling, lang)] = probe.score([Xev[lang][pooling][lay] for lay in range(13)], y)
                    print(way, pooling, lang, np.round(acc[(way, pooling, lang)], 3), flush=True)
        t_probe = time.perf_counter() - t1
        n_tr = sum(len(s) for s in ewt)
        n_ev = {lang: sum(len(s) for s in sents) for lang, sents in evals.items()}
        body += [
            "",
            f"### (b) Zero-shot UPOS probe accuracy (%) per layer, trained on English ({t_probe:.0f} s)",
            "",
            f"Probe: `probing.MultiLayerLinearProbe` (C=1, torch L-BFGS, 100 iterations, standardised), one per "
            f"layer, trained on the first {len(ewt)} sentences of en_ewt dev ({n_tr:,} words), evaluated on the "
            f"first {args.eval_sentences} sentences of each PUD file ("
            + ", ".join(f"{lang} {n:,}" for lang, n in n_ev.items()) + " words): a subsample, to fit a few "
            "minutes on 2 shared cores. Layer 0 = embeddings, 12 = last block.",
            "",
            "| lang | pooling | tokenisation | " + " | ".join(f"L{i}" for i in range(13)) + " | best |",
            "|---|---|---|" + "---:|" * 14,
        ]
        for lang in PROBE_LANGS:
            for pooling in ("first", "mean"):
                for way in ("old", "new"):
                    a = 100 * np.asarray(acc[(way, pooling, lang)])
                    body.append(f"| {lang} | {pooling} | {'before' if way == 'old' else 'after'} | "
                                + " | ".join(f"{v:.1f}" for v in a) + f" | {a.max():.1f} |")
        gain = {lang: 100 * (np.asarray(acc[("new", "first", lang)]) - np.asarray(acc[("old", "first", lang)]))
                for lang in PROBE_LANGS}
        body += ["", "`first` pooling, after minus before (points), mean over layers / at the best layer after: "
                 + "; ".join(f"{lang} {g.mean():+.1f} / "
                             f"{100 * (max(acc[('new', 'first', lang)]) - max(acc[('old', 'first', lang)])):+.1f}"
                             for lang, g in gain.items()) + "."]

    if args.no_write:
        print("\n".join(body))
        return
    from _results import write_section

    write_section("pooling", "\n".join(body))


if __name__ == "__main__":
    main()
