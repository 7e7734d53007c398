"""The analysis verbs of the facade (``import alignfreeze as af``): word features, drift,
CKA, cross-lingual retrieval and probes, each a thin orchestration of the functions the CLI
commands call, so that a verb's table is the command's CSV on the same inputs (same rows,
same columns, same numbers), as a pandas DataFrame.

Models: a name/folder, a loaded ``(model, tokenizer)`` pair, a list of them, or a dict
``{display name: model}`` (:mod:`alignfreeze.api_models`). Data: paths (files, globs, UD
folders, or the ``{lang: path}`` dict of :func:`alignfreeze.api_models.treebanks`).
Conventions (``core.layers``): layer 0 = embeddings, layer i = raw output of block i
(decoders: before the final norm); one sub-word pooling (``first`` by default).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .api_models import Named, files, named_models, one_model, specs

ALIGN_COLUMNS = ("model", "src", "tgt", "layer", "task", "candidates", "score", "centred", "direction", "metric",
                 "value", "n", "selection")


def _label(source: str) -> str:
    """The CLI's display name of a model given by name/folder (:func:`core.names.default_name`:
    the checkpoint manifest's name such as ``front-s42``, else the folder's)."""
    from core.names import default_name

    return default_name(source)


def _extractor(m: Named, layers, pooling: str, batch_size: int, progress: bool, max_length: int | None = None):
    from core.features import WordFeatureExtractor

    return WordFeatureExtractor(m.model, m.tokenizer, layers=layers, pooling=pooling, batch_size=batch_size,
                                max_length=max_length, progress=progress)


# ----------------------------------------------------------------------------- features
@dataclass
class Features:
    """Word vectors of treebanks at several layers.

    ``words``: one row per syntactic word (``file, lang, sent_id, sentence, word, form,
    upos, valid``; ``sentence`` numbers the sentences of all files from 0, ``word`` is the
    word's 0-based position in its sentence; ``valid`` is False for a word no piece reached,
    whose vector is meaningless). ``vectors[layer]``: ``(len(words), D)`` float32, row i =
    word i. ``stats``: windows, truncated words, shared pieces (``core.encoding``).
    """

    words: object  # pandas.DataFrame
    vectors: dict = field(repr=False)
    layers: tuple[int, ...] = ()
    pooling: str = "first"
    stats: dict = field(default_factory=dict)

    def __getitem__(self, layer: int):
        """``(N_words, D)`` vectors of ``layer``; KeyError naming the layers there are."""
        if layer not in self.vectors:
            raise KeyError(f"layer {layer} was not extracted (layers: {', '.join(map(str, self.layers))})")
        return self.vectors[layer]

    def sentence_vectors(self, layer: int):
        """``(N_sentences, D)``: each sentence's mean over its valid words
        (:func:`analysis.alignment.sentence_means`, the sentence vector of ``align_eval``)."""
        import numpy as np

        from analysis.alignment import sentence_means

        counts = self.words.groupby("sentence", sort=True).size().to_numpy()
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return sentence_means(self[layer], offsets, self.words["valid"].to_numpy(bool))


def features(model, treebanks, *, layers="all", pooling: str = "first", batch_size: int = 32,
             max_length: int | None = None, max_sentences: int | None = None, progress: bool = True) -> Features:
    """Word features of every sentence of ``treebanks`` at ``layers`` (as ``alignfreeze
    features``, kept in memory in float32 instead of written to shards).

    Args:
        model: one model (name/folder, loaded pair, or a one-entry dict).
        treebanks: CoNLL-U file(s), glob(s), UD folder(s), or a ``{lang: path}`` dict.
        layers: ``all``, ``last``, ``middle``, ``0,3-5``, an int or a list (0 = embeddings).
        pooling: sub-word -> word pooling (``first`` | ``mean`` | ``last`` | ``sum``).
        max_length: tokens per window (default the model's maximum; longer sentences are
            split into windows at word boundaries and counted).
        max_sentences: first N sentences of each file (None: all).

    Returns :class:`Features`. Memory: words x layers x D x 4 bytes (use the CLI's
    ``features`` command to stream a large corpus to disk). Raises FileNotFoundError /
    ValueError (malformed CoNLL-U names file and line; unknown layers).
    """
    import pandas as pd

    from core.conllu import treebank_lang
    from core.inputs import select_treebanks

    paths = files(treebanks)
    sents, rows = [], []
    for sel in select_treebanks(specs(treebanks), limit=max_sentences):  # FILE@SELECTION, docs/data.md
        f = sel.files[0]
        for s in sel.items:
            k = len(sents)
            sents.append(s)
            rows += [{"file": str(f), "lang": treebank_lang(f), "sent_id": s.sent_id, "sentence": k, "word": i,
                      "form": w.form, "upos": w.upos} for i, w in enumerate(s.words)]
    if not sents:
        raise ValueError(f"{', '.join(map(str, paths))}: no sentences")
    m = one_model(model, label=_label).load()
    wf = _extractor(m, layers, pooling, batch_size, progress, max_length).extract(sents)
    words = pd.DataFrame(rows)
    if len(words) != wf.n_words:
        raise RuntimeError(f"{len(words)} words read but {wf.n_words} word vectors extracted")
    words["valid"] = wf.valid
    return Features(words, dict(wf.features), tuple(wf.layers), wf.pooling, dict(wf.stats))


# -------------------------------------------------------------------------------- drift
def drift(base, models, treebanks, *, layers="all", pooling: str = "first", batch_size: int = 32,
          max_sentences: int | None = None, force: bool = False, progress: bool = True, **options):
    """Per-layer drift of each model against ``base``, per language (``alignfreeze drift``).

    For every layer and treebank, on the same words: linear CKA and debiased CKA between
    the base's and the model's word vectors (Kornblith et al. 2019, eq. 5, feature space;
    Song et al. 2012's unbiased HSIC), the mean cosine distance ``1 - cos(h, h')`` and the
    mean relative L2 change ``||h' - h|| / ||h||`` of each word, with confidence intervals
    over sentences (:func:`analysis.drift.drift_rows`; method and coverage in
    docs/analysis.md).

    Args:
        base: the pretrained model (name/folder or loaded pair; a one-entry dict names it).
        models: the checkpoints: one, a list, or ``{display name: model}``.
        treebanks: CoNLL-U file(s), glob(s), UD folder(s) or ``{lang: path}``; the language
            of each file is its name's prefix (``fr_pud-ud-test.conllu`` -> ``fr``).
        max_sentences: first N sentences of each treebank.
        force: compare a checkpoint whose manifest names another base (weight hash).
        options: interval settings of :func:`analysis.drift.drift_rows` (its defaults are
            the CLI's), e.g. ``seed`` and ``chunk_sentences``.

    Returns a DataFrame, one row per (model, lang, layer, metric): ``base, model, lang,
    layer, metric, value, ci_low, ci_high, n_words, n_sentences, model_path, treebank, selection``; metrics
    ``cka``, ``cka_debiased`` (indices in [0, 1], 1 = same geometry), ``cos_dist`` (0..2),
    ``rel_l2`` (a ratio). Raises ValueError for a checkpoint of another base (unless
    ``force``), models of different depths, an empty treebank.
    """
    import pandas as pd

    from analysis.drift import check_base, drift_rows
    from core.conllu import treebank_lang
    from core.inputs import select_treebanks

    files(treebanks)  # a missing file fails before any model loads
    selected = select_treebanks(specs(treebanks), limit=max_sentences)
    b = one_model(base, what="base", label=_label).load()
    base_ex = _extractor(b, layers, pooling, batch_size, progress)
    exs, paths = {}, {}
    for m in named_models(models, label=_label):
        m.load()
        note = check_base(b.model, m.source, force=force) if m.source else "a loaded model: base not checked"
        print(f"{m.source or m.name}: {note}", file=sys.stderr)
        exs[m.name], paths[m.name] = _extractor(m, layers, pooling, batch_size, progress), m.source or m.name
    rows = []
    for sel in selected:
        f, sents = sel.files[0], sel.items
        lang = treebank_lang(f)
        for r in drift_rows(base_ex, exs, sents, lang, **options):
            rows.append({"base": b.name, **r, "model_path": paths[r["model"]], "treebank": str(f),
                         "selection": sel.label})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- cka
def cka(models, treebanks, *, layers="all", pooling: str = "first", batch_size: int = 32, max_words: int = 10000,
        progress: bool = True):
    """Layer x layer linear CKA of one model (against itself) or two (``alignfreeze cka``).

    Linear CKA in feature space (Kornblith et al. 2019, eq. 5: ``||Y^T X||_F^2 /
    (||X^T X||_F ||Y^T Y||_F)`` on centred word vectors; :func:`analysis.cka.linear_cka`)
    on the words of the first sentences of ``treebanks`` up to ``max_words`` words that
    both models reach.

    Args:
        models: one model, or two (a list or ``{name A: model, name B: model}``).

    Returns a DataFrame, one row per layer pair: ``model_a, model_b, layer_a, layer_b, cka,
    n_words``. Raises ValueError for more than two models.
    """
    import pandas as pd

    from analysis.cka import word_features_cka
    from core.inputs import select_treebanks

    found = named_models(models, label=_label)
    if len(found) > 2:
        raise ValueError(f"cka: {len(found)} models given; expected A, or A and B")
    files(treebanks)
    selected = select_treebanks(specs(treebanks))
    sents, total = [], 0
    for s in (s for sel in selected for s in sel.items):
        if total + len(s) > max_words and sents:
            break
        sents.append(s)
        total += len(s)
    feats = [_extractor(m.load(), layers, pooling, batch_size, progress).extract(sents) for m in found]
    rows, n_words = word_features_cka(*feats)
    names = [m.name for m in found]
    data = "; ".join(sel.spec for sel in selected)
    return pd.DataFrame([{"model_a": names[0], "model_b": names[-1], **r, "n_words": n_words,
                          "n_sentences": len(sents), "data": data} for r in rows])


# ---------------------------------------------------------------------------- retrieval
def align_eval(models, *, src=None, tgt=None, pairs=None, layers="all", pooling: str = "first",
               batch_size: int = 32, csls_k: int = 10, max_words: int = 5000, limit: int = 1000,
               progress: bool = True, langs=None):
    """Per-layer cross-lingual retrieval (``alignfreeze align-eval``), for each model.

    Sentence retrieval on ``src``/``tgt`` (two CoNLL-U files joined on ``sent_id``, or
    line-aligned text): each sentence is the mean of its word vectors; accuracy@1 of finding
    its translation among all sentences of the other side, both directions. Word retrieval
    on the links of ``pairs`` (JSONL of ``alignfreeze pairs`` / :func:`word_pairs`): weak
    and strong candidates, cosine and CSLS (Conneau et al. 2018, k = ``csls_k``), with and
    without mean-centring (:func:`analysis.alignment.align_eval`).

    Args:
        models: one model, a list, or ``{display name: model}`` (rows concatenated).
        limit: sentence pairs used at most; ``max_words``: linked word pairs used at most.

    Returns a DataFrame: ``model, src, tgt, layer, task, candidates, score, centred,
    direction, metric, value, n, selection`` (value: accuracy@1 as a fraction; ``src``/``tgt``:
    language codes from the data, :func:`core.names.parallel_langs`, or ``langs=(SRC, TGT)``).
    Raises ValueError when neither sentences nor pairs are given, or only one side, or when
    the data names no language and ``langs`` is not given.
    """
    import pandas as pd

    from analysis.alignment import LinkedPair
    from analysis.alignment import align_eval as _align_eval
    from core.inputs import capped, select_pairs, select_parallel
    from core.names import parallel_langs
    from core.selection import parse_spec
    from core.wordpairs import side

    if (src is None) != (tgt is None):
        raise ValueError("align_eval: give both src and tgt (parallel sentences), or neither")
    if src is None and pairs is None:
        raise ValueError("align_eval: nothing to evaluate: give src/tgt (sentence retrieval) and/or pairs "
                         "(word retrieval)")
    # the same reading as the CLI: selections, --limit recorded, languages from the data
    sent = select_parallel(src, tgt, limit=limit) if src else None
    link = capped(select_pairs(pairs)[0], limit) if pairs else None
    if sent is not None:
        src_lang, tgt_lang = parallel_langs(parse_spec(src).path, parse_spec(tgt).path, given=langs)
    else:
        src_lang, tgt_lang = parallel_langs(link.files[0], records=link.items, given=langs)
    linked = None if link is None else [LinkedPair(r["id"], side(r, "src"), side(r, "tgt"),
                                                   [(i, j) for i, j in r["links"]]) for r in link.items]
    selection = {"sentence": sent.label if sent else None, "word": link.label if link else None}
    frames = []
    for m in named_models(models, label=_label):
        rows = _align_eval(_extractor(m.load(), layers, pooling, batch_size, progress),
                           sentence_pairs=sent.items if sent else None, linked_pairs=linked, csls_k=csls_k,
                           max_words=max_words)
        frames.append(pd.DataFrame([{"model": m.name, "src": src_lang, "tgt": tgt_lang, **r,
                                     "selection": selection[r["task"]]} for r in rows]))
    return pd.concat(frames, ignore_index=True)[list(ALIGN_COLUMNS)]


# ------------------------------------------------------------------------------- probes
def probe(models, *, train, eval=(), task: str = "upos", seeds: int = 3, progress: bool = True, **config):
    """Linear probes at every layer (``alignfreeze probe``), for each model.

    ``upos``: a probe per layer trained on the words of ``train`` (a treebank) and scored on
    its held-out sentences (when ``train`` is also in ``eval``) and zero-shot on every
    ``eval`` treebank; ``control=True`` adds the control task of Hewitt & Liang (2019) and
    the selectivity. ``translation``: sentence-level translation matching between ``train``
    (the pivot CoNLL-U file) and each ``eval`` file joined on ``sent_id``. ``xnli``: needs
    the hub (skipped with a message otherwise). Every other option is a field of
    :class:`probing.run.ProbeConfig` (``layers``, ``pooling``, ``C``, ``holdout``,
    ``max_sentences``, ...).

    Args:
        models: one model, a list, or ``{display name: model}``; a name/folder is loaded by
            the probe run exactly as the CLI loads it.
        train: the training treebank (one file); ``eval``: treebanks (paths, globs, or a
            ``{lang: path}`` dict).
        seeds: probes per (model, layer): seeds ``seed .. seed + seeds - 1``.

    Returns a DataFrame: ``model, lang, task, layer, seed, metric, value, split,
    train_lang, n, file`` (accuracy as a fraction; ``split``: train / heldout / eval);
    ``df.attrs["metadata"]``: ``{display name: the run's metadata}`` (what the CLI writes
    to the JSON next to the CSV). Raises ValueError for settings that cannot run.
    """
    import pandas as pd

    from core.config import from_dict
    from probing.run import ProbeConfig, run_probe

    if isinstance(eval, dict):
        eval = list(eval.values())
    eval = (eval,) if isinstance(eval, str | Path) else eval
    frames, meta = [], {}
    for m in named_models(models):
        # a loaded pair has no path: a name that cannot be a folder, so no manifest is read for it
        source = m.source or f"<loaded model {m.name}>"
        cfg = from_dict(ProbeConfig, {**config, "model": source, "task": task, "train": str(train),
                                      "eval": tuple(str(e) for e in eval), "seeds": seeds, "model_name": m.name})
        df, meta[m.name] = run_probe(cfg, model=m.model, tokenizer=m.tokenizer, progress=progress)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["metadata"] = meta
    return out
