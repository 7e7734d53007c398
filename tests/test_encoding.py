"""Words -> model inputs (core.encoding) with the REAL tokenizers of the prepared models:
XLM-R Unigram (e5-small), byte-level BPE (smollm2-135m), WordPiece (minilm-en), on
sentences written for this test in nine scripts.

For every tokenizer and sentence: the pieces fed to the model are those of tokenising the
running text (written out literally here, not rebuilt by the code under test); every
word's ``first`` piece carries some of the word's own characters (checked per family
against the piece's text, independently of offsets); no piece that carries characters is
left out of every word.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import torch

from core import prepared
from core.conllu import Sentence, Word
from core.encoding import (
    EncodingStats,
    collate,
    encode_texts,
    encode_windows,
    encode_words,
    pad_id_of,
    running_text,
    unknown_words,
)
from core.pooling import pool_subwords

TOKENIZERS = ("e5-small", "smollm2-135m", "minilm-en")

# (script, running text as written, words, space_after)
SENTENCES = [
    ("latin", "Die amerikanische Politik bleibt unberechenbar.",
     ["Die", "amerikanische", "Politik", "bleibt", "unberechenbar", "."], [1, 1, 1, 1, 0, 1]),
    ("cyrillic", "Мы читали старую книгу вечером.",
     ["Мы", "читали", "старую", "книгу", "вечером", "."], [1, 1, 1, 1, 0, 1]),
    ("greek", "Η γάτα κοιμάται στην καρέκλα.",
     ["Η", "γάτα", "κοιμάται", "στην", "καρέκλα", "."], [1, 1, 1, 1, 0, 1]),
    ("arabic", "القطة تنام على الكرسي.",
     ["القطة", "تنام", "على", "الكرسي", "."], [1, 1, 1, 0, 1]),
    ("hebrew", "החתול ישן על הכיסא.",
     ["החתול", "ישן", "על", "הכיסא", "."], [1, 1, 1, 0, 1]),
    ("devanagari", "बिल्ली कुर्सी पर सो रही है।",
     ["बिल्ली", "कुर्सी", "पर", "सो", "रही", "है", "।"], [1, 1, 1, 1, 1, 0, 1]),
    ("thai", "แมวนอนบนเก้าอี้ตัวใหม่",
     ["แมว", "นอน", "บน", "เก้าอี้", "ตัว", "ใหม่"], [0, 0, 0, 0, 0, 1]),
    ("cjk", "北京是中国的首都。",
     ["北京", "是", "中国", "的", "首都", "。"], [0, 0, 0, 0, 0, 1]),
    ("korean", "고양이가 의자 위에서 잔다.",
     ["고양이가", "의자", "위에서", "잔다", "."], [1, 1, 1, 0, 1]),
]


def _sentence(words, space_after) -> Sentence:
    ws = [Word(i + 1, w, w, "X", 0, "dep") for i, w in enumerate(words)]
    return Sentence("s", "", ws, list(words), list(range(len(words))), space_after=[bool(x) for x in space_after])


@pytest.fixture(scope="module")
def real_tokenizer():
    from core.models import load_tokenizer

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            if not prepared.is_prepared(name):
                pytest.skip(f"{name} is not prepared here ({prepared.INSTALL_HINT})")
            cache[name] = load_tokenizer(name, offline=True)
        return cache[name]

    return get


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted (written from its definition:
    printable Latin-1 bytes stand for themselves, the others are shifted above 255)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


BYTES = _byte_level_table()


def _fold(s: str) -> str:
    """minilm's normalisation: lower case, accents stripped."""
    return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if unicodedata.category(c) != "Mn")


def _overlap(a, b) -> bool:
    """Do two non-empty strings (or bytes) share a contiguous part, as a piece and a word
    do when the piece lies in the word, holds it, or straddles its edge?"""
    if not a or not b:
        return False
    return a in b or b in a or any(a[-k:] == b[:k] or a[:k] == b[-k:] for k in range(1, min(len(a), len(b)) + 1))


def _carries_characters_of(name: str, piece: str, word: str) -> bool:
    """Does the piece hold (part of) the word's own text? Decided from the piece's text."""
    if name == "smollm2-135m":  # bytes of the piece, leading space dropped, vs the word's UTF-8
        return _overlap(bytes(BYTES[c] for c in piece).lstrip(b" "), word.encode("utf-8"))
    if name == "e5-small":  # SentencePiece: the piece without its word-start marker
        return _overlap(piece.lstrip("\u2581"), unicodedata.normalize("NFKC", word))
    return piece == "[UNK]" or _overlap(piece.removeprefix("##"), _fold(word))  # WordPiece


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("script, text, words, space_after", SENTENCES, ids=[s[0] for s in SENTENCES])
def test_pieces_are_those_of_the_running_text_and_first_pieces_carry_the_word(real_tokenizer, name, script, text,
                                                                                words, space_after):
    tok = real_tokenizer(name)
    sent = _sentence(words, space_after)
    assert running_text(words, space_after)[0] == text
    batch = encode_words(tok, [sent])
    fed = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    assert fed == tok(text)["input_ids"]  # what the model sees = the running text's pieces
    pieces = tok.convert_ids_to_tokens(fed)

    # first and last piece of every word, through the one pooling function: hidden = position
    T = batch.input_ids.shape[1]
    pos = torch.arange(T, dtype=torch.float32).reshape(1, T, 1)
    first, counts = pool_subwords(pos, batch.pieces, method="first")
    last, _ = pool_subwords(pos, batch.pieces, method="last")
    assert (counts > 0).all(), "a word without pieces"
    for w, word in enumerate(words):
        p = pieces[int(first[w])]
        assert _carries_characters_of(name, p, word), (script, word, p, pieces)
        assert _carries_characters_of(name, pieces[int(last[w])], word), (script, word, pieces)
        assert int(first[w]) <= int(last[w])

    # every piece that carries characters belongs to some word; the others are markers only
    owned = set(batch.pieces.token.tolist())
    specials = set(tok.all_special_ids)
    for t, p in enumerate(pieces):
        if fed[t] in specials or t in owned:
            continue
        assert tok.convert_tokens_to_string([p]).strip() == "", (script, p, pieces)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_counts_of_bare_markers_and_shared_pieces(real_tokenizer, name):
    tok = real_tokenizer(name)
    st = EncodingStats()
    cjk = next(s for s in SENTENCES if s[0] == "cjk")
    thai = next(s for s in SENTENCES if s[0] == "thai")
    wins = encode_windows(tok, [_sentence(cjk[2], cjk[3]), _sentence(thai[2], thai[3])], stats=st)
    assert st.sentences == 2 and st.windows == 2 and st.windowed == 0 and st.words_without_pieces == 0
    if name == "e5-small":
        # '▁' (bare) opens both texts; '是中国' is one piece of two words
        assert tok.convert_ids_to_tokens(int(wins[0].input_ids[1])) == "\u2581"
        assert st.bare_marker_pieces >= 2
        shared = [w for w in wins[0].piece_word[np.isin(wins[0].piece_token,
                  [t for t in wins[0].piece_token if (wins[0].piece_token == t).sum() > 1])]]
        assert sorted(set(shared)) == [1, 2] and st.shared_piece_words >= 2
    if name == "minilm-en":  # the Thai run is ONE [UNK], owned by all six words
        assert (wins[1].input_ids == tok.unk_token_id).sum() == 1
        assert len(wins[1].piece_word) == 6 and st.shared_piece_words >= 6
        assert unknown_words(tok, [_sentence(thai[2], thai[3])])[0].all()
    if name == "smollm2-135m":  # several byte pieces per character, no unknown token
        assert len(wins[0].piece_token) > len(cjk[1])
        assert not unknown_words(tok, [_sentence(cjk[2], cjk[3])])[0].any()


@pytest.mark.parametrize("name", TOKENIZERS)
def test_plain_word_lists_join_with_single_spaces_and_strings_are_refused(real_tokenizer, name):
    tok = real_tokenizer(name)
    batch = encode_words(tok, [["The", "cat", "sat", "on", "the", "mat"]])
    assert batch.input_ids[0][batch.attention_mask[0].bool()].tolist() == tok("The cat sat on the mat")["input_ids"]
    with pytest.raises(TypeError, match="list of words"):
        encode_words(tok, ["The cat sat"])
    # sentence-level inputs: a str is kept verbatim (double space included)
    b = encode_texts(tok, ["The  cat sat.", ["The", "cat"]])
    assert b.input_ids[0][b.attention_mask[0].bool()].tolist() == tok("The  cat sat.")["input_ids"]
    assert b.n_words == [3, 2]


def test_bytelevel_words_get_their_leading_space_form(real_tokenizer):
    """Case 02: SmolLM2 sees the running text's pieces, 'Ġcat' for the second word."""
    tok = real_tokenizer("smollm2-135m")
    batch = encode_words(tok, [["The", "cat", "sat", "on", "the", "mat"]])
    assert tok.convert_ids_to_tokens(batch.input_ids[0].tolist()) == ["The", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġmat"]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_long_sentences_become_windows_at_word_boundaries(real_tokenizer, name):
    tok = real_tokenizer(name)
    words = "Die amerikanische Politik bleibt unberechenbar und die Wähler warten".split() * 6
    # 19 to 35 pieces in every tokenizer (WordPiece makes one [UNK] of a word over 100 characters)
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherungsanstaltsverwaltung"
    st = EncodingStats()
    wins = encode_windows(tok, [words, ["kurz", long_word, "kurz"]], max_length=16, stats=st)
    assert all(len(w.input_ids) <= 16 for w in wins)
    for s, n in ((0, len(words)), (1, 3)):
        mine = [w for w in wins if w.sentence == s]
        assert mine[0].start == 0 and mine[-1].end == n
        assert all(a.end == b.start for a, b in zip(mine, mine[1:]))  # every word exactly once
        for w in mine:  # every word of a window reaches a piece
            assert set(w.piece_word.tolist()) == set(range(w.start, w.end))
    assert st.windowed == 2 and st.truncated_words == 1 and st.windows == len(wins)
    trunc = next(w for w in wins if w.truncated)
    assert trunc.end - trunc.start == 1 and trunc.start == 1  # the long word alone, in its own window
    # a window is encoded as its own running text, with its own specials
    for w in wins[:3]:
        text = " ".join(words[w.start:w.end]) if w.sentence == 0 else None
        if text is not None:
            assert w.input_ids.tolist() == tok(text)["input_ids"]


def test_windows_collate_back_to_sentence_words_and_sentence_means(real_tokenizer):
    tok = real_tokenizer("e5-small")
    words = ["eins", "zwei", "drei", "vier", "fünf", "sechs"] * 5
    wins = encode_windows(tok, [words, ["kurz"]], max_length=12)
    batch = collate(wins, pad_id_of(tok), by_sentence=True)
    assert batch.n_words == [len(words), 1] and batch.input_ids.shape[0] == len(wins) > 2
    R, T = batch.input_ids.shape
    h = torch.randn(2, R, T, 3)
    vec, counts = batch.pool(h, "mean")
    assert vec.shape == (2, len(words) + 1, 3) and (counts > 0).all()
    # word 13 of sentence 0 = the mean of its pieces in the window that holds it
    win_row, w = next((r, w) for r, w in enumerate(wins) if w.start <= 13 < w.end)
    toks = w.piece_token[w.piece_word == 13]
    torch.testing.assert_close(vec[:, 13], h[:, win_row, toks].mean(1))
    # sentence mean over all non-pad tokens of all its windows
    rows = [r for r, w in enumerate(wins) if w.sentence == 0]
    m = batch.attention_mask[rows].bool()
    ref = torch.cat([h[:, r][:, m[k]] for k, r in enumerate(rows)], dim=1).mean(1)
    torch.testing.assert_close(batch.sentence_mean(h)[:, 0], ref)


# ----------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def real_model():
    from core.models import load

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            if not prepared.is_prepared(name):
                pytest.skip(f"{name} is not prepared here ({prepared.INSTALL_HINT})")
            cache[name] = load(name, offline=True)
        return cache[name]

    return get


@pytest.mark.slow
def test_case01_unrelated_words_at_the_same_position_differ_at_layer_0(real_model):
    """Case 01: with XLM-R's Unigram, 'amerikanische' and '北京' both start with a bare '▁';
    their layer-0 `first` vectors must be their own pieces', not the marker's."""
    from core.features import WordFeatureExtractor

    model, tok = real_model("e5-small")
    wf = WordFeatureExtractor(model, tok, layers="0,6", pooling="first", progress=False).extract(
        [["amerikanische", "Politik"], ["北京", "天气"]])
    for layer in (0, 6):
        a, b = wf.features[layer][0], wf.features[layer][2]
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert cos < 0.9, (layer, cos)


@pytest.mark.slow
def test_case02_bytelevel_layer0_of_cat_is_the_embedding_of_Gcat(real_model):
    from core.features import WordFeatureExtractor

    model, tok = real_model("smollm2-135m")
    wf = WordFeatureExtractor(model, tok, layers="0", pooling="first", progress=False).extract(
        [["The", "cat", "sat", "on", "the", "mat"]])
    E = model.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_allclose(wf.features[0][1], E[tok.convert_tokens_to_ids("Ġcat")], atol=1e-6)
    assert not np.allclose(wf.features[0][1], E[tok.convert_tokens_to_ids("cat")], atol=1e-3)
