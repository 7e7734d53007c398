"""Every shared UD file read by our reader agrees with an independent count (skips when absent)."""

from __future__ import annotations

import re

from core.conllu import read_conllu, treebank_stats


def _independent_count(path):
    """Count with plain string handling: blocks = sentences; integer IDs = words."""
    sentences = words = 0
    upos: dict[str, int] = {}
    in_sent = False
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            sentences += in_sent
            in_sent = False
            continue
        if line.startswith("#"):
            continue
        in_sent = True
        cols = line.split("\t")
        if re.fullmatch(r"\d+", cols[0]):
            words += 1
            upos[cols[3]] = upos.get(cols[3], 0) + 1
    return sentences + in_sent, words, upos


def test_every_shared_treebank_counts(ud_dir):
    files = sorted(ud_dir.glob("*.conllu"))
    assert files
    for f in files:
        st = treebank_stats(f)
        n_sent, n_words, upos = _independent_count(f)
        assert (st.sentences, st.words) == (n_sent, n_words), f
        assert st.upos == dict(sorted(upos.items())), f


def test_pud_is_parallel_with_mwt(ud_dir):
    fr = list(read_conllu(ud_dir / "fr_pud-ud-test.conllu"))
    en = list(read_conllu(ud_dir / "en_pud-ud-test.conllu"))
    assert len(fr) == len(en) == 1000
    assert [s.sent_id for s in fr] == [s.sent_id for s in en]
    assert sum(len(s.tokens) < len(s.words) for s in fr) > 100  # du, au, ...
