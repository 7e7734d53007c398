"""``alignfreeze drift | cka | align-eval | plot``: representation analysis and figures."""

from __future__ import annotations

import sys
from pathlib import Path

# kept in step with analysis.plots.KINDS (not imported here: parser building stays light)
KINDS = ("drift", "drift-lines", "probe", "forgetting", "cka", "typology", "attribution", "retrieval", "scan",
         "layer-effect")


def register(sub) -> None:
    """Add ``drift``, ``cka``, ``align-eval`` and ``plot`` to the parser."""
    p = sub.add_parser(
        "drift", help="per-layer drift of checkpoints against their base (CKA, cosine, L2) -> tidy CSV",
        description="For every layer and language (from the treebank file name): linear and debiased "
                    "CKA between the base and each checkpoint on the same words, mean cosine distance "
                    "and relative L2 change of each word vector, with jackknife CIs over sentences "
                    "(docs/analysis.md). "
                    "Streams chunks of sentences (memory bounded by one chunk and d x d statistics). "
                    "A checkpoint whose manifest names another base (weight hash) is refused unless --force.",
    )
    p.add_argument("--base", required=True, help="base (pretrained) model name or folder")
    p.add_argument("--model", required=True, nargs="+", help="checkpoint folder(s) to compare")
    p.add_argument("--treebank", required=True, nargs="+", help="CoNLL-U file(s), glob(s) or UD folder(s)")
    _common(p)
    p.add_argument("--ci-groups", type=int, default=10,
                   help="random groups of sentences for the CKA jackknife intervals (0: no intervals; else at least 5); "
                        "memory: this many float32 copies of the d x d statistics per layer and model")
    p.add_argument("--ci-level", type=float, default=0.95, help="coverage of the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sentence groups")
    p.add_argument("--chunk-sentences", type=int, default=512, help="sentences per streamed chunk")
    p.add_argument("--max-sentences", type=int, default=None, help="first N sentences per treebank")
    p.add_argument("--force", action="store_true", help="compare even when the manifest names another base")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_drift_cmd, preflight=check_drift)

    p = sub.add_parser("cka", help="layer x layer linear CKA of one model or two -> tidy CSV",
                       description="Linear CKA (feature space) between every layer of A and every layer of "
                                   "B (A itself when B is absent) on the words of the treebank(s).")
    p.add_argument("--model", required=True, action="append", help="model A; repeat for model B")
    p.add_argument("--treebank", required=True, nargs="+", help="CoNLL-U file(s)")
    _common(p)
    p.add_argument("--max-words", type=int, default=10000, help="use the words of the first sentences up to N")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_cka_cmd, preflight=check_cka)

    p = sub.add_parser("align-eval", help="per-layer word and sentence retrieval on parallel data -> tidy CSV",
                       description="Sentence retrieval (mean-pooled, accuracy@1 both directions) on --src/--tgt "
                                   "(two CoNLL-U files joined on sent_id, or line-aligned text); word retrieval "
                                   "(weak/strong, cosine/CSLS, with and without mean-centring) on the links of "
                                   "--pairs (JSONL from `alignfreeze pairs`).")
    p.add_argument("--model", required=True)
    p.add_argument("--src", default=None, help="source side of parallel sentences")
    p.add_argument("--tgt", default=None, help="target side of parallel sentences")
    p.add_argument("--pairs", default=None, help="pairs JSONL with word links")
    _common(p)
    p.add_argument("--csls-k", type=int, default=10, help="CSLS neighbourhood (0: cosine only)")
    p.add_argument("--max-words", type=int, default=5000, help="linked word pairs used at most")
    p.add_argument("--limit", type=int, default=1000, help="sentence pairs used at most")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_align_cmd, preflight=check_align)

    p = sub.add_parser("attribution", help="per-layer captum attribution of a tagger's predictions -> tidy CSV",
                       description="LayerIntegratedGradients of each sentence's predicted-tag logits to every "
                                   "layer's output; mean share of |attribution| per layer and language.")
    p.add_argument("--model", required=True, help="token-classification checkpoint")
    p.add_argument("--treebank", required=True, nargs="+", help="CoNLL-U file(s); language from the file name")
    p.add_argument("--layers", default="all")
    p.add_argument("--steps", type=int, default=16, help="integration steps")
    p.add_argument("--max-sentences", type=int, default=50, help="sentences per language")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_attribution_cmd, preflight=check_attribution)

    p = sub.add_parser("typology", help="per-language gains against URIEL distances (lang2vec) -> tidy CSV",
                       description="Reads a CSV with columns lang, gain; writes lang, gain, feature, distance "
                                   "(cosine distance of URIEL vectors to --reference) and prints Pearson and "
                                   "Spearman correlations per feature set.")
    p.add_argument("--gains", required=True, help="CSV with columns lang, gain")
    p.add_argument("--reference", required=True, help="training language (e.g. en)")
    p.add_argument("--features", nargs="+", default=["syntactic", "genetic", "geographic"])
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_typology_cmd, preflight=check_typology)

    p = sub.add_parser(
        "plot", help="figure from tidy table(s): PNG, SVG, PDF + the numbers drawn as CSV",
        description="KIND: drift (layer x model per language), drift-lines (drift by layer, one line per model "
                    "with its interval band, per language), probe (layer x language per model, mean ± std "
                    "over seeds), forgetting (change vs --baseline in percentage points, diverging map centred "
                    "at 0), cka (layer x layer per model pair), typology (gain vs URIEL distance, fit line, r, p), "
                    "attribution (layer x language), retrieval (align-eval accuracy by layer), scan (decoder "
                    "layer scan: retrieval directions and CKA by layer), layer-effect (effect of each layer's realignment by "
                    "language, from `alignfreeze layer-effect`: percentage points, diverging map centred at 0). Models are shown under the table's "
                    "display_name (else strategy, else model) in the protocol's order (pretrained/base, "
                    "baseline, full, front, back) or --order. Multi-panel heatmaps share one colour scale, "
                    "printed on the figure. Writes OUT.png, OUT.svg, OUT.pdf and OUT.csv.")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--input", required=True, nargs="+", help="tidy CSV table(s), concatenated")
    p.add_argument("--out", required=True, help="output stem (a .png/.svg/.pdf/.csv suffix is dropped)")
    p.add_argument("--metric", default=None, help="metric to show (default depends on KIND)")
    p.add_argument("--baseline", default=None,
                   help="forgetting: the model every other is compared with (default: the first in order)")
    p.add_argument("--order", nargs="+", default=None, metavar="NAME",
                   help="models (display names) in this order; the rest follow in the protocol's order")
    p.add_argument("--scale", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
                   help="colour limits shared by all panels (y limits of line figures); "
                        "diverging maps need -X X")
    p.add_argument("--where", action="append", default=None, metavar="COLUMN=VALUE",
                   help="keep only rows with this value (repeatable), e.g. --where seed=42 --where centred=True")
    p.add_argument("--title", default=None, help="figure title (default: made from the data)")
    p.add_argument("--size", nargs=2, type=float, default=None, metavar=("WIDTH", "HEIGHT"),
                   help="figure size in inches")
    p.add_argument("--mark-layer", type=int, default=None, metavar="K",
                   help="retrieval, scan: mark layer K (e.g. the alignment layer chosen from the scan)")
    p.set_defaults(func=run_plot_cmd, out_paths=plot_outputs)  # its tables are checked by analysis.plots


def plot_outputs(args) -> list[Path]:
    """What ``plot`` writes for ``--out`` (the stem; a figure suffix is dropped)."""
    stem = Path(args.out)
    stem = stem.with_suffix("") if stem.suffix.lower() in (".png", ".svg", ".csv", ".pdf") else stem
    return [stem.parent / f"{stem.name}.{ext}" for ext in ("png", "svg", "pdf", "csv")]


# ------------------------------------------------------------------ checks before the work

TREEBANK = "a CoNLL-U treebank"


def _csv_out(args) -> None:
    from alignfreeze.preflight import InputError

    if Path(args.out).suffix.lower() != ".csv":
        raise InputError(f"{args.out}: output must be a .csv file")


def check_drift(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks

    _csv_out(args)
    if args.ci_groups < 0 or 0 < args.ci_groups < 5:  # analysis.drift.MIN_GROUPS (not imported here)
        raise InputError(f"--ci-groups {args.ci_groups}: expected 0 (no intervals) or at least 5 "
                         "(the CKA interval's group U-statistic needs 4 groups left when one is deleted)")
    if not 0 < args.ci_level < 1:
        raise InputError(f"--ci-level {args.ci_level}: expected a coverage in (0, 1), e.g. 0.95")
    for m in [args.base, *args.model]:
        need_model(m)
    need_treebanks(args.treebank, TREEBANK)


def check_cka(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks

    _csv_out(args)
    if len(args.model) > 2:
        raise InputError(f"--model given {len(args.model)} times: expected A, or A and B")
    for m in args.model:
        need_model(m)
    need_treebanks(args.treebank, TREEBANK)


def check_align(args) -> None:
    from alignfreeze.preflight import InputError, need_file, need_model

    _csv_out(args)
    if (args.src is None) != (args.tgt is None):
        raise InputError("give both --src and --tgt (parallel sentences), or neither")
    if args.src is None and args.pairs is None:
        raise InputError("nothing to evaluate: give --src/--tgt (sentence retrieval) and/or --pairs (word retrieval)")
    for f in (args.src, args.tgt):
        if f is not None:
            need_file(f, "parallel sentences: CoNLL-U (joined on sent_id) or line-aligned text")
    if args.pairs is not None:
        need_file(args.pairs, "word pairs as JSONL (from `alignfreeze pairs`)")
    need_model(args.model)


def check_attribution(args) -> None:
    from alignfreeze.preflight import need_model, need_treebanks

    _csv_out(args)
    need_model(args.model)
    need_treebanks(args.treebank, TREEBANK)


def check_typology(args) -> None:
    from alignfreeze.preflight import need_file

    _csv_out(args)
    need_file(args.gains, "a CSV table with columns lang, gain")


def _common(p) -> None:
    p.add_argument("--layers", default="all", help="layers: all, last, middle, emb, N, A-B, comma lists")
    p.add_argument("--pooling", default="first", choices=("first", "mean", "last", "sum"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _extractor(model, tok, args):
    from core.features import WordFeatureExtractor

    return WordFeatureExtractor(model, tok, layers=args.layers, pooling=args.pooling,
                                batch_size=args.batch_size, progress=args.progress)


def _treebanks(specs) -> list:
    from core.conllu import find_treebanks

    files = []
    for s in specs:
        files.extend(find_treebanks(s))
    return files


def _write(df, out) -> None:
    from core.io import atomic_write_text

    if Path(out).suffix.lower() != ".csv":
        raise ValueError(f"{out}: output must be a .csv file")
    atomic_write_text(out, df.to_csv(index=False))


def run_drift_cmd(args) -> int:
    import itertools

    import pandas as pd

    from analysis.drift import check_base, drift_rows, model_label
    from core.conllu import read_conllu, treebank_lang
    from core.models import load

    files = _treebanks(args.treebank)
    base, tok = load(args.base)
    base_ex = _extractor(base, tok, args)
    exs = {}
    for m in args.model:
        model, mtok = load(m)
        note = check_base(base, m, force=args.force)
        print(f"{m}: {note}", file=sys.stderr)
        label = model_label(m)
        if label in exs:
            label = m
        exs[label] = _extractor(model, mtok, args)
    rows = []
    for f in files:
        lang = treebank_lang(f)
        sents = list(itertools.islice(read_conllu(f), args.max_sentences))
        if not sents:
            raise ValueError(f"{f}: no sentences")
        for r in drift_rows(base_ex, exs, sents, lang, ci_groups=args.ci_groups, level=args.ci_level,
                            seed=args.seed, chunk_sentences=args.chunk_sentences):
            rows.append({"base": model_label(args.base), **r, "treebank": str(f)})
    df = pd.DataFrame(rows)
    _write(df, args.out)
    print(f"{args.out}: {len(df)} rows ({len(exs)} model(s), {len(files)} treebank(s), layers {list(base_ex.layers)})")
    return 0


def run_cka_cmd(args) -> int:
    from core.conllu import read_sentences

    files = _treebanks(args.treebank)
    sents, total = [], 0
    for s in read_sentences(files):  # read first: a malformed file fails before the heavy imports
        if total + len(s) > args.max_words and sents:
            break
        sents.append(s)
        total += len(s)
    import pandas as pd

    from analysis.cka import layer_cka_matrix
    from analysis.drift import model_label
    from core.models import load

    feats = []
    for m in args.model:
        model, tok = load(m)
        wf = _extractor(model, tok, args).extract(sents)
        feats.append(wf)
    valid = feats[0].valid.copy()
    for wf in feats[1:]:
        valid &= wf.valid
    fa = {lay: x[valid] for lay, x in feats[0].features.items()}
    fb = {lay: x[valid] for lay, x in feats[1].features.items()} if len(feats) == 2 else None
    rows = layer_cka_matrix(fa, fb)
    names = [model_label(m) for m in args.model]
    df = pd.DataFrame([{"model_a": names[0], "model_b": names[-1], **r, "n_words": int(valid.sum())}
                       for r in rows])
    _write(df, args.out)
    print(f"{args.out}: {len(df)} layer pairs on {int(valid.sum())} words")
    return 0


def run_align_cmd(args) -> int:
    from analysis.alignment import align_eval, read_pairs_jsonl
    from core.conllu import treebank_lang
    from core.parallel import read_parallel

    # read first: a malformed file fails before the heavy imports
    sent_pairs = read_parallel(args.src, args.tgt, limit=args.limit) if args.src else None
    linked = read_pairs_jsonl(args.pairs)[: args.limit] if args.pairs else None
    import pandas as pd

    from analysis.drift import model_label
    from core.models import load

    model, tok = load(args.model)
    rows = align_eval(_extractor(model, tok, args), sentence_pairs=sent_pairs, linked_pairs=linked,
                      csls_k=args.csls_k, max_words=args.max_words)
    src = treebank_lang(args.src) if args.src else "src"
    tgt = treebank_lang(args.tgt) if args.tgt else "tgt"
    df = pd.DataFrame([{"model": model_label(args.model), "src": src, "tgt": tgt, **r} for r in rows])
    cols = ["model", "src", "tgt", "layer", "task", "candidates", "score", "centred", "direction", "metric",
            "value", "n"]
    _write(df[cols], args.out)
    print(f"{args.out}: {len(df)} rows")
    return 0


def run_plot_cmd(args) -> int:
    from analysis.plots import plot_from_tables

    where = {}
    for w in args.where or []:
        col, eq, val = w.partition("=")
        if not eq or not col:
            raise ValueError(f"--where {w}: expected COLUMN=VALUE")
        where[col] = val
    notes: list[str] = []
    paths = plot_from_tables(args.kind, args.input, args.out, metric=args.metric, baseline=args.baseline,
                             order=args.order, scale=args.scale, title=args.title, size=args.size, where=where,
                             mark=args.mark_layer, notes=notes)
    for n in notes:
        print(f"alignfreeze: note: {n}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def run_attribution_cmd(args) -> int:
    import itertools

    from core.conllu import read_conllu, treebank_lang

    by_lang: dict = {}
    for f in _treebanks(args.treebank):  # read first: a malformed file fails before the heavy imports
        by_lang.setdefault(treebank_lang(f), []).extend(itertools.islice(read_conllu(f), args.max_sentences))
    from analysis.attribution import layer_attribution
    from core.models import load

    model, tok = load(args.model, task="token-classification")
    df = layer_attribution(model, tok, by_lang, layers=args.layers, n_steps=args.steps,
                           max_sentences=args.max_sentences)
    _write(df, args.out)
    print(f"{args.out}: {len(df)} rows ({len(by_lang)} language(s))")
    return 0


def run_typology_cmd(args) -> int:
    import pandas as pd

    from analysis.typology import correlate, gain_vs_distance

    gains = pd.read_csv(args.gains)
    missing = [c for c in ("lang", "gain") if c not in gains.columns]
    if missing:
        raise ValueError(f"{args.gains}:1: the header has no column(s) {', '.join(missing)}; expected a CSV table "
                         f"with columns lang, gain (found {', '.join(map(str, gains.columns))})")
    table = gain_vs_distance(gains, args.reference, args.features)
    _write(table, args.out)
    print(correlate(table).to_string(index=False))
    return 0
