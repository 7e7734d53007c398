"""Running text through parallel data: what changes, what it costs (both measured in one run).

1. Pieces: share of PUD sentences whose pieces differ between the running text (CoNLL-U
   forms + ``SpaceAfter=No``, what every parallel path reads now) and the words joined by
   single spaces (what realignment, align-eval, the similarity aligner and the translation
   probe read before), for e5-small's Unigram and SmolLM2's byte-level BPE.
2. Effect: sentence retrieval (align-eval's sentence task: mean of word vectors, cosine,
   accuracy@1 both directions averaged) with the real e5-small, PUD en<->zh, en<->th and
   en<->fr (control), words joined by spaces against running text.
3. Cost: ``core.encoding.encode_texts`` (offsets, pieces -> words, window planning) against
   the bare tokenizer call + right padding (the old ``core.sentences.encode_texts``), and
   against SmolLM2-135M's forward to its middle layer on the same alignment micro-batch.

Reads ../shared/data/ud (never copied); needs the prepared e5-small and smollm2-135m.

    python bench/bench_running_text.py --pairs 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import write_section  # noqa: E402

LANGS = ("zh", "th", "fr", "ko", "hi", "ar")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ud", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"))
    ap.add_argument("--pairs", type=int, default=300, help="sentence pairs for the retrieval effect")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    from analysis.alignment import sentence_means, sentence_retrieval
    from core.encoding import encode_texts, surface_text
    from core.features import WordFeatureExtractor
    from core.models import load, load_tokenizer
    from core.parallel import read_parallel
    from core.sentences import sentence_states

    torch.set_num_threads(2)
    ud = Path(args.ud)
    if not (ud / "en_pud-ud-test.conllu").is_file():
        raise SystemExit(f"{ud}: shared UD data absent")
    pairs = {lang: read_parallel(ud / "en_pud-ud-test.conllu", ud / f"{lang}_pud-ud-test.conllu") for lang in LANGS}

    # 1. pieces
    toks = {"e5-small": load_tokenizer("e5-small"), "smollm2-135m": load_tokenizer("smollm2-135m")}
    piece_rows = []
    for lang in ("en", *LANGS):
        sides = [p.src for p in pairs["zh"]] if lang == "en" else [p.tgt for p in pairs[lang]]
        run = [surface_text(s)[0] for s in sides]
        joined = [" ".join(s.words) for s in sides]
        row = [lang, str(len(sides))]
        for tok in toks.values():
            a, b = tok(run)["input_ids"], tok(joined)["input_ids"]
            diff = np.mean([x != y for x, y in zip(a, b)])
            row.append(f"{diff:.1%} ({np.mean([len(x) for x in a]):.1f} vs {np.mean([len(y) for y in b]):.1f})")
        piece_rows.append(row)

    # 2. effect on sentence retrieval, e5-small
    model, tok = load("e5-small")
    ex = WordFeatureExtractor(model, tok, layers="0,6,12", pooling="first", batch_size=32, progress=False)
    N = args.pairs

    def vectors(sides):
        wf = ex.extract(sides)
        return {lay: sentence_means(wf.features[lay], wf.offsets, wf.valid) for lay in ex.layers}

    en = [p.src for p in pairs["zh"][:N]]
    en_v = {"joined": vectors([s.words for s in en]), "running": vectors(en)}
    eff_rows = []
    t0 = time.perf_counter()
    for lang in ("zh", "th", "fr"):
        tg = [p.tgt for p in pairs[lang][:N]]
        assert [p.id for p in pairs[lang][:N]] == [p.id for p in pairs["zh"][:N]]
        tv = {"joined": vectors([s.words for s in tg]), "running": vectors(tg)}
        for lay in ex.layers:
            acc = {k: np.mean([r["value"] for r in sentence_retrieval(en_v[k][lay], tv[k][lay])]) for k in tv}
            eff_rows.append(f"| en-{lang} | {lay} | {acc['joined']:.3f} | {acc['running']:.3f} | "
                            f"{acc['running'] - acc['joined']:+.3f} |")
    effect_s = time.perf_counter() - t0

    # 3. cost of the one encoding, SmolLM2 alignment micro-batch of 8 pairs (16 rows)
    lm, ltok = load("smollm2-135m", task="causal-lm")
    lm.eval()
    texts = [p.src for p in pairs["zh"][:8]] + [p.tgt for p in pairs["zh"][:8]]
    plain_texts = [surface_text(s)[0] for s in texts]
    K = 15
    pad = ltok.pad_token_id if ltok.pad_token_id is not None else ltok.eos_token_id

    def old_path():  # the removed core.sentences.encode_texts: tokenizer call, truncation, right padding
        rows = [ids[:128] for ids in ltok(plain_texts, add_special_tokens=True)["input_ids"]]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    def new_path():
        return encode_texts(ltok, texts, 128)

    batch = new_path()
    old_ids, _ = old_path()
    same = bool(torch.equal(old_ids, batch.input_ids))

    def forward():
        with torch.no_grad():
            sentence_states(lm, batch, [K])

    fns = {"old": old_path, "new": new_path, "forward": forward}
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}

    body = "\n".join([
        "## Running text through parallel data (core.parallel -> pairs JSONL -> every consumer)",
        "",
        "Before: parallel CoNLL-U sides were word lists, so realignment, align-eval, the similarity aligner and the "
        "translation probe read the words joined by single spaces; now every side is read as its running text "
        "(forms + `SpaceAfter=No`). Share of PUD sentences whose pieces change (mean pieces per sentence, running "
        "text vs joined by spaces), all 1,000 sentences:",
        "",
        "| lang | sentences | e5-small (Unigram) | smollm2-135m (byte-level BPE) |",
        "|---|---:|---:|---:|",
        *[f"| {' | '.join(r)} |" for r in piece_rows],
        "",
        f"Effect on align-eval's sentence retrieval with the real e5-small (first {N} PUD pairs, `first` pooling, "
        "mean of word vectors, accuracy@1 averaged over both directions; chance "
        f"{1 / N:.3f}), same run ({effect_s:.0f} s):",
        "",
        "| pair | layer | words joined by spaces (before) | running text (now) | change |",
        "|---|---:|---:|---:|---:|",
        *eff_rows,
        "",
        "Cost of the one sentence-level encoding (`core.encoding.encode_texts`: offsets, pieces -> words, window "
        "planning) for an alignment micro-batch of 8 PUD en-zh pairs (16 rows, SmolLM2-135M tokenizer), median of "
        f"{args.repeats} interleaved repeats: {med['new'] * 1e3:.1f} ms, **{med['new'] / med['old']:.2f}x** the bare "
        f"tokenizer call + right padding of the removed `core.sentences.encode_texts` ({med['old'] * 1e3:.1f} ms; "
        f"same input ids: {same}), and **{med['new'] / med['forward']:.1%}** of SmolLM2-135M's no-grad forward to "
        f"layer {K} on that batch ({med['forward'] * 1e3:.0f} ms; a training step adds the backward, so the share "
        "is smaller there).",
    ])
    print(body)
    if not args.no_write:
        write_section("running-text", body)


if __name__ == "__main__":
    main()
