"""The alignment loss of middle-layer alignment, on layer K, with the blocks above K skipped.

Definition (arXiv 2502.14830; REFERENCE.md): both sides of a batch of B parallel pairs are
mean-pooled over their non-pad tokens at layer K (:mod:`core.sentences`, i.e.
:meth:`core.encoding.EncodedBatch.sentence_mean`; layer K = raw output of block K, before
any final norm), the B x B cosine-similarity matrix is divided by tau, and the loss is the
cross-entropy of picking each source sentence's translation
(:func:`realign.losses.sentence_infonce`); ``symmetric`` averages it with the target ->
source direction; ``detach`` stops the gradient into one side.

Source and target rows go through ONE forward pass (2B sentences, right-padded) that stops
after block K (:func:`core.layers.layer_states` with ``stop_early``): blocks K+1..L, the
final norm and the LM head never run for parallel inputs.

Long sentences (the one policy of :mod:`core.encoding`): a sentence with more pieces than
``max_length`` is split into windows at word boundaries, each window a row of its own; the
sentence is still ONE row of the B x B matrix, the mean over all its windows' non-pad
tokens, and the gradient reaches every window. The reference truncates at its maximum
length instead; windows and truncated words are counted in the parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.encoding import SentenceLike
from core.sentences import encode_sentences, sentence_states

from ..losses import sentence_infonce


def alignment_loss(model, tokenizer, src: Sequence[str | SentenceLike], tgt: Sequence[str | SentenceLike],
                   layer: int, *, temperature: float = 0.1, symmetric: bool = False, detach: str = "none",
                   max_length: int = 128) -> tuple[torch.Tensor, dict[str, float]]:
    """Sentence InfoNCE between ``src[i]`` and ``tgt[i]`` at ``layer``.

    Args:
        model: a (PEFT-wrapped) decoder of the architecture table; called unwrapped.
        src, tgt: B >= 2 sentences each (row i of both is a translation pair): running
            texts (str, kept verbatim) or :class:`core.encoding.Surface` objects of
            :func:`core.parallel.read_parallel` (words with their spacing).
        layer: K in 1..L.
        detach: ``none`` | ``src`` | ``tgt``: which side gets no gradient.
        max_length: tokens per window (capped at the model's positions); a longer
            sentence is split into windows (module doc).

    Returns:
        ``(loss, parts)`` with parts ``align`` (the loss), ``align_acc`` (share of source
        sentences whose nearest target in the batch is their translation), ``windows``
        (input rows, >= 2B), ``windowed`` (sentences split) and ``truncated_words``.
    """
    if len(src) != len(tgt) or len(src) < 2:
        raise ValueError(f"alignment needs B >= 2 pairs with both sides, got {len(src)} and {len(tgt)}")
    if detach not in ("none", "src", "tgt"):
        raise ValueError(f"detach={detach!r}: expected none, src or tgt")
    B = len(src)
    enc = encode_sentences(model, tokenizer, list(src) + list(tgt), max_length)
    sent = sentence_states(model, enc, [layer])[layer]  # (2B, D) float32, windows folded in
    s, t = sent[:B], sent[B:]
    if detach == "src":
        s = s.detach()
    loss = sentence_infonce(s, t, temperature, symmetric=symmetric, detach_target=detach == "tgt")
    with torch.no_grad():
        sim = torch.nn.functional.normalize(s, dim=-1) @ torch.nn.functional.normalize(t, dim=-1).T
        acc = float((sim.argmax(1) == torch.arange(B, device=sim.device)).float().mean())
    st = enc.stats
    return loss, {"align": float(loss.detach()), "align_acc": acc, "windows": float(st.windows),
                  "windowed": float(st.windowed), "truncated_words": float(st.truncated_words)}
