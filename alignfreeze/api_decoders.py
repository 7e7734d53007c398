"""Middle-layer alignment of decoders, from a notebook: the layer scan (``alignfreeze midalign
scan``) and the choice of the alignment layer K (``--layer auto``). See docs/midalign.md."""

from __future__ import annotations

from .api_models import named_models

SCAN_COLUMNS = ("model", "src", "tgt", "layer", "metric", "direction", "value", "n", "selection")


def layer_scan(models, *, src, tgt=None, layers="all", limit: int = 1000, batch_size: int = 16,
               max_length: int = 256, langs=None):
    """Where are translations closest? Per layer of each decoder (``alignfreeze midalign scan``).

    Each sentence of the parallel set ``src``/``tgt`` (two CoNLL-U files joined on
    ``sent_id``, line-aligned text, or one TSV with both sides and ``tgt=None``) is the mean
    of its token states at the layer over its non-pad tokens (:mod:`core.sentences`: the
    vector the alignment loss pulls together). Per layer (0 = embeddings .. L, before the
    final norm): ``retrieval_acc`` (accuracy@1 of finding the translation among all N
    sentences, directions ``src->tgt`` and ``tgt->src``; chance 1/N), their mean
    ``retrieval_mean`` and linear ``cka`` between the two N x D sentence matrices
    (:func:`analysis.layer_scan.layer_scan`).

    Args:
        models: one decoder, a list, or ``{display name: model}`` (rows concatenated); a
            name/folder is named as the CLI does (:func:`core.names.default_name`).
        tgt: the target side, or several (a list, or a ``{lang: path}`` dict): one scan per
            language pair, rows concatenated (:func:`choose_layer` averages over them).
        limit: sentence pairs used at most; ``max_length``: tokens per window (a longer
            sentence is split into windows at word boundaries and counted).

    Returns a DataFrame: ``model, src, tgt, layer, metric, direction, value, n, selection``
    (values as fractions; ``src``/``tgt``: language codes from the file names,
    :func:`core.names.parallel_langs`, or ``langs=(SRC, TGT)`` for one target).
    Raises ValueError for an encoder, fewer than 2 pairs, misaligned parallel input.
    """
    import pandas as pd

    from analysis.layer_scan import layer_scan as _scan
    from core.inputs import select_parallel
    from core.names import default_name, parallel_langs
    from core.selection import parse_spec
    from realign.midalign.train import require_decoder

    targets = list(tgt.values()) if isinstance(tgt, dict) else (list(tgt) if isinstance(tgt, list | tuple) else [tgt])
    data = []
    for t in targets:  # read as the CLI reads them: selections, languages from the data
        sel = select_parallel(src, t, limit=limit)
        pair = parallel_langs(parse_spec(src).path, parse_spec(t).path if t else None, given=langs)
        data.append((sel, pair))
    frames = []
    for m in named_models(models, label=default_name):
        m.load()
        require_decoder(m.model, m.name)
        for sel, (src_lang, tgt_lang) in data:
            pairs = sel.items
            rows, _info = _scan(m.model, m.tokenizer, [p.src for p in pairs], [p.tgt for p in pairs], layers=layers,
                                batch_size=batch_size, max_length=max_length)
            frames.append(pd.DataFrame([{"model": m.name, "src": src_lang, "tgt": tgt_lang, **r,
                                         "selection": sel.label} for r in rows]))
    return pd.concat(frames, ignore_index=True)[list(SCAN_COLUMNS)]


def choose_layer(scan, *, model=None, n_layers: int | None = None):
    """The alignment layer K that ``--layer auto`` would choose from a scan table.

    Rule (:data:`realign.midalign.layer_choice.RULE`): K = argmax over layers 1..L-1 of the
    mean sentence-retrieval accuracy (both directions, averaged over the table's language
    pairs); ties -> higher linear CKA, then the lower layer. Layer 0 has no block below it
    and layer L feeds the head directly, so neither is a candidate.

    Args:
        scan: a :func:`layer_scan` table (of one model), or the path of a scan CSV.
        model: the decoder (name/folder or loaded pair) whose depth L the rule needs; or
            give ``n_layers`` = L (number of blocks). One of the two is required: the
            table alone cannot tell whether its highest layer is L.

    Returns a :class:`realign.midalign.layer_choice.LayerChoice`: ``layer`` (K),
    ``runner_up``, ``margin`` (retrieval_mean(K) - retrieval_mean(runner-up)), per-layer
    ``figures`` and the ``rule``. Raises ValueError for a table of several models, layers
    beyond the model, or no candidate layer.
    """
    from pathlib import Path

    import pandas as pd

    from realign.midalign.layer_choice import choose_layer as _choose
    from realign.midalign.layer_choice import read_scan

    rows = read_scan(scan) if isinstance(scan, str | Path) else pd.DataFrame(scan).to_dict("records")
    names = {r.get("model") for r in rows if "model" in r}
    if len(names) > 1:
        raise ValueError(f"choose_layer: the scan table holds {len(names)} models ({', '.join(map(str, names))}); "
                         "give one model's rows")
    if n_layers is None:
        if model is None:
            raise ValueError("choose_layer: give model= (the decoder) or n_layers= (its number of blocks L)")
        from core.arch import num_layers

        n_layers = num_layers(named_models(model)[0].load().model)
    return _choose(rows, int(n_layers))
