"""``alignfreeze features``: word features of treebanks or text at any layers, to disk."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("features", help="extract word-level representations to safetensors shards")
    p.add_argument("--model", required=True, help="prepared name, local folder or hub name")
    p.add_argument("--treebank", nargs="+", required=True,
                   help="CoNLL-U files, globs or UD folders, each with an optional selection (en.conllu@1:500)")
    p.add_argument("--layers", default="all", help="all | last | middle | 0,3-5 (0 = embeddings)")
    p.add_argument("--pooling", default="first", choices=("first", "mean", "last", "sum"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None, help="tokens per window (default: model max)")
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="storage dtype")
    p.add_argument("--chunk-sentences", type=int, default=1024, help="sentences per shard (bounds memory)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.set_defaults(func=run, preflight=check, out_kind="folder")


def check(args) -> None:
    from alignfreeze.preflight import need_model, need_treebanks

    need_model(args.model)
    need_treebanks(args.treebank)


def run(args) -> int:
    from core.conllu import read_sentences
    from core.inputs import entries, select_treebanks, selected_items, treebank_files

    found = treebank_files(args.treebank)
    files = [f for f, _ in found]
    if any(sel is not None for _, sel in found):  # read and selected first: a bad selection fails at once
        selected = select_treebanks(args.treebank)
        sentences, data_files = selected_items(selected), entries(selected)
    else:  # whole files are streamed (memory: one chunk)
        from core.io import file_sha256

        sentences = read_sentences(files)
        data_files = [{"path": str(f), "sha256": file_sha256(f), "selection": "all"} for f in files]
    from core.features import WordFeatureExtractor
    from core.models import load

    model, tok = load(args.model)
    ex = WordFeatureExtractor(model, tok, layers=args.layers, pooling=args.pooling,
                              batch_size=args.batch_size, max_length=args.max_length)
    out = ex.extract_to_disk(sentences, args.out, dtype=args.dtype, chunk_sentences=args.chunk_sentences,
                             meta={"model": args.model, "files": [str(f) for f in files], "data_files": data_files})
    st = out.index["stats"]
    print(f"{args.out}: {st['sentences']} sentences, {st['words']} words, layers {list(out.layers)}, "
          f"{len(out)} shard(s); {st['windowed']} sentence(s) windowed into {st['windows']} window(s) in all, "
          f"{st['truncated_words']} word(s) truncated, {st['lost_words']} word(s) without tokens")
    return 0
