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
    p.add_argument("--base", required=True, help="base (pretrained) model name or folder (NAME=FOLDER names it)")
    p.add_argument("--model", required=True, nargs="+", help=MODELS_HELP)
    p.add_argument("--name", nargs="+", default=None, help="display names of the --model checkpoints, in order")
    p.add_argument("--treebank", required=True, nargs="+", help=TREEBANKS_HELP)
    _common(p)
    p.add_argument("--ci-groups", type=int, default=10,
                   help="random groups of sentences for the CKA jackknife intervals (0: no intervals; else at least 5); "
                        "memory: this many float32 copies of the d x d statistics per layer and model")
    p.add_argument("--ci-level", type=float, default=0.95, help="coverage of the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sentence groups")
    p.add_argument("--chunk-sentences", type=int, default=512, help="sentences per streamed chunk")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="at most the first N sentences per treebank (after its selection; recorded)")
    p.add_argument("--force", action="store_true", help="compare even when the manifest names another base")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_drift_cmd, preflight=check_drift, named_models=True)

    p = sub.add_parser("cka", help="layer x layer linear CKA of one model or two -> tidy CSV",
                       description="Linear CKA (feature space) between every layer of A and every layer of "
                                   "B (A itself when B is absent) on the words of the treebank(s).")
    p.add_argument("--model", required=True, action="append",
                   help="model A; repeat for model B (NAME=FOLDER names it; default: its manifest's name)")
    p.add_argument("--treebank", required=True, nargs="+", help=TREEBANKS_HELP)
    _common(p)
    p.add_argument("--max-words", type=int, default=10000, help="use the words of the first sentences up to N")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_cka_cmd, preflight=check_cka, named_models=True)

    p = sub.add_parser("align-eval", help="per-layer word and sentence retrieval on parallel data -> tidy CSV",
                       description="Sentence retrieval (mean-pooled, accuracy@1 both directions) on --src/--tgt "
                                   "(two CoNLL-U files joined on sent_id, or line-aligned text); word retrieval "
                                   "(weak/strong, cosine/CSLS, with and without mean-centring) on the links of "
                                   "--pairs (JSONL from `alignfreeze pairs`).")
    p.add_argument("--model", required=True, help="model (NAME=FOLDER names it; default: its manifest's name)")
    p.add_argument("--src", default=None, help="source side of parallel sentences (a selection of the pairs may "
                                               "follow: en.conllu@501:1000, docs/data.md)")
    p.add_argument("--tgt", default=None, help="target side of parallel sentences")
    p.add_argument("--pairs", default=None, help="pairs JSONL with word links (optionally with a selection)")
    p.add_argument("--langs", nargs=2, default=None, metavar=("SRC", "TGT"),
                   help="language codes of the src/tgt columns (default: from the data: file names, records)")
    _common(p)
    p.add_argument("--csls-k", type=int, default=10, help="CSLS neighbourhood (0: cosine only)")
    p.add_argument("--max-words", type=int, default=5000,
                   help="linked word pairs used at most (only the sentences holding them are encoded)")
    p.add_argument("--limit", type=int, default=1000, help="sentence pairs used at most (after the selection)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_align_cmd, preflight=check_align, named_models=True)

    p = sub.add_parser("attribution", help="per-layer captum attribution of a tagger's predictions -> tidy CSV",
                       description="LayerIntegratedGradients of each sentence's predicted-tag logits to every "
                                   "layer's output; mean share of |attribution| per layer and language.")
    p.add_argument("--model", required=True, help="token-classification checkpoint (NAME=FOLDER names it)")
    p.add_argument("--treebank", required=True, nargs="+",
                   help="CoNLL-U file(s), each with an optional selection; language from the file name")
    p.add_argument("--layers", default="all")
    p.add_argument("--steps", type=int, default=16, help="integration steps")
    p.add_argument("--max-sentences", type=int, default=50, help="sentences per language")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_attribution_cmd, preflight=check_attribution, named_models=True)

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
MODELS_HELP = ("checkpoint folder(s) to compare; NAME=FOLDER names one in the table (default: its manifest's "
               "name, e.g. front-s42, else the folder's)")
TREEBANKS_HELP = "CoNLL-U file(s), glob(s) or UD folder(s), each with an optional selection (fr.conllu@1:500)"


def _csv_out(args) -> None:
    from alignfreeze.preflight import InputError

    if Path(args.out).suffix.lower() != ".csv":
        raise InputError(f"{args.out}: output must be a .csv file")


def check_drift(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks
    from core.names import named_models

    _csv_out(args)
    if args.ci_groups < 0 or 0 < args.ci_groups < 5:  # analysis.drift.MIN_GROUPS (not imported here)
        raise InputError(f"--ci-groups {args.ci_groups}: expected 0 (no intervals) or at least 5 "
                         "(the CKA interval's group U-statistic needs 4 groups left when one is deleted)")
    if not 0 < args.ci_level < 1:
        raise InputError(f"--ci-level {args.ci_level}: expected a coverage in (0, 1), e.g. 0.95")
    for m in [args.base, *args.model]:
        need_model(m, named=True)
    named_models(args.model, args.name)  # two models under one name fail now
    need_treebanks(args.treebank, TREEBANK)


def check_cka(args) -> None:
    from alignfreeze.preflight import InputError, need_model, need_treebanks

    _csv_out(args)
    if len(args.model) > 2:
        raise InputError(f"--model given {len(args.model)} times: expected A, or A and B")
    for m in args.model:
        need_model(m, named=True)
    need_treebanks(args.treebank, TREEBANK)


def check_align(args) -> None:
    from alignfreeze.preflight import InputError, need_data, need_model

    _csv_out(args)
    if (args.src is None) != (args.tgt is None):
        raise InputError("give both --src and --tgt (parallel sentences), or neither")
    if args.src is None and args.pairs is None:
        raise InputError("nothing to evaluate: give --src/--tgt (sentence retrieval) and/or --pairs (word retrieval)")
    for f in (args.src, args.tgt):
        need_data(f, "parallel sentences: CoNLL-U (joined on sent_id) or line-aligned text")
    need_data(args.pairs, "word pairs as JSONL (from `alignfreeze pairs`)")
    need_model(args.model, named=True)


def check_attribution(args) -> None:
    from alignfreeze.preflight import need_model, need_treebanks

    _csv_out(args)
    need_model(args.model, named=True)
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

    import pandas as pd

    from analysis.drift import check_base, drift_rows
    from core.conllu import treebank_lang
    from core.inputs import select_treebanks
    from core.models import load
    from core.names import named_models

    selected = select_treebanks(args.treebank, limit=args.max_sentences)  # FILE@SELECTION, docs/data.md
    files = [sel.files[0] for sel in selected]
    (base_name, base_path), = named_models([args.base])
    models = named_models(args.model, args.name)  # display names: NAME=, --name, manifest, folder
    if len({n for n, _ in models}) < len(models):
        raise ValueError(f"--model: a checkpoint is given twice ({', '.join(args.model)}): give each once")
    base, tok = load(base_path)
    base_ex = _extractor(base, tok, args)
    exs, paths = {}, {}
    for label, m in models:
        model, mtok = load(m)
        note = check_base(base, m, force=args.force)
        print(f"{m} ({label}): {note}", file=sys.stderr)
        exs[label], paths[label] = _extractor(model, mtok, args), m
    rows = []
    for sel in selected:
        f, sents = sel.files[0], sel.items
        lang = treebank_lang(f)
        for r in drift_rows(base_ex, exs, sents, lang, ci_groups=args.ci_groups, level=args.ci_level,
                            seed=args.seed, chunk_sentences=args.chunk_sentences):
            rows.append({"base": base_name, **r, "model_path": paths[r["model"]], "treebank": str(f),
                         "selection": sel.label, "n_sentences": len(sents)})
    df = pd.DataFrame(rows)
    _write(df, args.out)
    print(f"{args.out}: {len(df)} rows ({len(exs)} model(s), {len(files)} treebank(s), layers {list(base_ex.layers)})")
    return 0


def run_cka_cmd(args) -> int:
    from core.inputs import select_treebanks
    from core.names import named_models

    selected = select_treebanks(args.treebank)  # read first: a malformed file fails before the heavy imports
    sents, total = [], 0
    for s in (s for sel in selected for s in sel.items):
        if total + len(s) > args.max_words and sents:
            break
        sents.append(s)
        total += len(s)
    models = named_models(args.model) if len(args.model) == 2 else [named_models(args.model)[0]]
    import pandas as pd

    from analysis.cka import word_features_cka
    from core.models import load

    feats = []
    for _, m in models:
        model, tok = load(m)
        wf = _extractor(model, tok, args).extract(sents)
        feats.append(wf)
    rows, n_words = word_features_cka(*feats)
    names = [name for name, _ in models]
    data = "; ".join(sel.spec for sel in selected)
    df = pd.DataFrame([{"model_a": names[0], "model_b": names[-1], **r, "n_words": n_words,
                        "n_sentences": len(sents), "data": data} for r in rows])
    _write(df, args.out)
    print(f"{args.out}: {len(df)} layer pairs on {n_words} words")
    return 0


def run_align_cmd(args) -> int:
    from analysis.alignment import LinkedPair
    from core.inputs import capped, select_pairs, select_parallel
    from core.names import named_models, parallel_langs
    from core.selection import parse_spec
    from core.wordpairs import side

    # read first: a malformed file or a bad selection fails before the heavy imports
    sent = select_parallel(args.src, args.tgt, limit=args.limit) if args.src else None
    link = select_pairs(args.pairs)[0] if args.pairs else None
    if link is not None:
        link = capped(link, args.limit)  # --limit caps the linked pairs too (recorded)
    (name, path), = named_models([args.model])
    # the src/tgt columns: language codes from the data (file names, the records), never 'src'/'tgt'
    if sent is not None:
        langs = parallel_langs(parse_spec(args.src).path, parse_spec(args.tgt).path, given=args.langs)
    else:
        langs = parallel_langs(link.files[0], records=link.items, given=args.langs)
    linked = None if link is None else [LinkedPair(r["id"], side(r, "src"), side(r, "tgt"),
                                                   [(i, j) for i, j in r["links"]]) for r in link.items]
    import pandas as pd

    from analysis.alignment import align_eval
    from core.models import load

    model, tok = load(path)
    rows = align_eval(_extractor(model, tok, args), sentence_pairs=sent.items if sent else None, linked_pairs=linked,
                      csls_k=args.csls_k, max_words=args.max_words)
    sel = {"sentence": sent.label if sent else None, "word": link.label if link else None}
    df = pd.DataFrame([{"model": name, "src": langs[0], "tgt": langs[1], **r, "selection": sel[r["task"]]}
                       for r in rows])
    cols = ["model", "src", "tgt", "layer", "task", "candidates", "score", "centred", "direction", "metric",
            "value", "n", "selection"]
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
    from core.conllu import treebank_lang
    from core.inputs import select_treebanks
    from core.names import named_models

    by_lang: dict = {}
    selections: dict = {}
    # read first: a malformed file or a bad selection fails before the heavy imports
    for sel in select_treebanks(args.treebank, limit=args.max_sentences):
        lang = treebank_lang(sel.files[0])
        by_lang.setdefault(lang, []).extend(sel.items)
        selections.setdefault(lang, []).append(sel.label)
    (name, path), = named_models([args.model])
    from analysis.attribution import layer_attribution
    from core.models import load

    model, tok = load(path, task="token-classification")
    df = layer_attribution(model, tok, by_lang, layers=args.layers, n_steps=args.steps,
                           max_sentences=args.max_sentences)
    df.insert(0, "model", name)
    df["selection"] = df["lang"].map(lambda lang: "; ".join(selections[lang]))
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
