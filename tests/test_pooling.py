"""The single pooling function against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from core.pooling import WordPieces, pool_subwords

# one sentence: [CLS] w0a w0b w1 w2a w2b w2c [SEP] [PAD]; hidden value = position (1-d) and 10*position
H = torch.tensor([[[p, 10.0 * p] for p in range(9)]])
WI = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, -1, -1]])


@pytest.mark.parametrize(
    "method, expected",
    [
        ("first", [1, 3, 4]),
        ("last", [2, 3, 6]),
        ("mean", [1.5, 3, 5]),
        ("sum", [3, 3, 15]),
    ],
)
def test_pooling_hand_computed(method, expected):
    out, counts = pool_subwords(H, WI, n_words=4, method=method)
    assert out.shape == (1, 4, 2)
    assert out[0, :3, 0].tolist() == pytest.approx(expected)
    assert out[0, :3, 1].tolist() == pytest.approx([10 * e for e in expected])
    assert out[0, 3].tolist() == [0, 0]  # empty slot stays zero
    assert counts.tolist() == [[2, 1, 3, 0]]


def test_specials_and_padding_never_leak():
    h = H.clone()
    h[0, 0] = 1e6  # CLS
    h[0, 7:] = -1e6  # SEP and padding
    for method in ("first", "mean", "last", "sum"):
        out, _ = pool_subwords(h, WI, 3, method)
        assert out.abs().max() <= 150  # only word tokens (values <= 60) enter


def test_leading_dims_and_batch_rows():
    hid = torch.randn(3, 2, 5, 4)  # layers, B, T, D
    wi = torch.tensor([[-1, 0, 1, 1, -1], [-1, 0, 0, 0, -1]])
    out, counts = pool_subwords(hid, wi, 2, "mean")
    assert out.shape == (3, 2, 2, 4)
    torch.testing.assert_close(out[:, 0, 1], hid[:, 0, 2:4].mean(1))
    torch.testing.assert_close(out[:, 1, 0], hid[:, 1, 1:4].mean(1))
    assert counts.tolist() == [[1, 2], [3, 0]]


def test_gradients_flow_to_used_tokens_only():
    h = H.clone().requires_grad_(True)
    out, _ = pool_subwords(h, WI, 3, "first")
    out.sum().backward()
    assert h.grad[0, :, 0].tolist() == [0, 1, 0, 1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("method, expected", [("first", [0, 1]), ("last", [0, 2]), ("mean", [0, 1.5])])
def test_a_word_at_the_first_position(method, expected):
    """Decoder tokenizers (SmolLM2, Llama) put no special token first: the first word's only
    piece is position 0 of row 0, which a reduction's initial value must not beat (a 'last'
    initialised at +1 instead of -1 took position 1's vector; a mutant showed no test had it)."""
    wi = torch.tensor([[0, 1, 1, -1]])
    h = torch.tensor([[[0.0], [1.0], [2.0], [3.0]]])
    out, counts = pool_subwords(h, wi, 2, method)
    assert out[0, :, 0].tolist() == pytest.approx(expected)
    assert counts.tolist() == [[1, 2]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        pool_subwords(H, WI, 3, "max")
    with pytest.raises(ValueError, match=r"hidden must be \(\.\.\., R, T, D\), got \(9, 2\)"):
        pool_subwords(H[0], WI, 3)
    with pytest.raises(ValueError, match="disagree"):
        pool_subwords(H, WI[:, :5], 3)
    with pytest.raises(ValueError, match="word index 2 >= n_words 2"):
        pool_subwords(H, WI, 2)


@pytest.mark.parametrize("method", ["first", "mean", "last", "sum"])
def test_flat_layout_equals_padded_layout(method):
    hid = torch.randn(2, 3, 7, 4)
    wi = torch.tensor([[-1, 0, 0, 1, 2, -1, -1], [-1, 0, 1, 1, 1, 2, 3], [-1, 0, -1, -1, -1, -1, -1]])
    n = [3, 4, 1]
    padded, pc = pool_subwords(hid, wi, 4, method)
    flat, fc = pool_subwords(hid, wi, n, method, flat=True)
    rows = torch.cat([padded[:, r, : n[r]] for r in range(3)], dim=1)
    torch.testing.assert_close(flat, rows)
    assert fc.tolist() == [2, 1, 1, 1, 3, 1, 1, 1]
    # a word with no token (row 0 claims 4 words) stays zero with count 0
    flat4, c4 = pool_subwords(hid, wi, [4, 4, 1], method, flat=True)
    assert c4[3] == 0 and not flat4[:, 3].any()


# (token, word) pairs: one row [<s> ▁ w0 w1+w2 w2b </s>]; token 1 is a bare marker (no pair),
# token 3 is shared by words 1 and 2; word 3 has no piece
PAIRS = WordPieces(token=torch.tensor([2, 3, 3, 4]), word=torch.tensor([0, 1, 2, 2]), n_words=4)
HP = torch.tensor([[[p, 10.0 * p] for p in range(6)]])


@pytest.mark.parametrize(
    "method, expected",
    [("first", [2, 3, 3]), ("last", [2, 3, 4]), ("mean", [2, 3, 3.5]), ("sum", [2, 3, 7])],
)
def test_pairs_shared_piece_belongs_to_both_words_bare_marker_to_none(method, expected):
    out, counts = pool_subwords(HP, PAIRS, method=method)
    assert out.shape == (4, 2) and counts.tolist() == [1, 1, 2, 0]
    assert out[:3, 0].tolist() == pytest.approx(expected)
    assert out[:3, 1].tolist() == pytest.approx([10 * e for e in expected])
    assert out[3].tolist() == [0, 0]  # the word without a piece stays zero


def test_pairs_order_does_not_matter_and_word_index_form_agrees():
    perm = torch.tensor([3, 1, 0, 2])
    shuffled = WordPieces(PAIRS.token[perm], PAIRS.word[perm], 4)
    for method in ("first", "last", "mean"):
        torch.testing.assert_close(pool_subwords(HP, shuffled, method=method)[0],
                                   pool_subwords(HP, PAIRS, method=method)[0])
    # without shared pieces the pairs form and the per-token word index give the same words
    wi = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, -1, -1]])
    pairs = WordPieces.from_word_index(wi, 3, flat=False)
    for method in ("first", "last", "mean", "sum"):
        torch.testing.assert_close(pool_subwords(H, pairs, method=method)[0], pool_subwords(H, wi, 3, method)[0][0])


def test_pairs_out_of_range_are_refused():
    with pytest.raises(ValueError, match="outside the batch"):
        pool_subwords(HP, WordPieces(torch.tensor([6]), torch.tensor([0]), 1))
    with pytest.raises(ValueError, match="outside the batch"):
        pool_subwords(HP, WordPieces(torch.tensor([1]), torch.tensor([2]), 2))
    with pytest.raises(ValueError, match="disagrees"):
        pool_subwords(HP, PAIRS, 3)
