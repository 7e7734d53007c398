"""The plain-language reading of a demo's tables: sentences generated from the numbers.

Each function takes tidy tables and returns sentences; it says only what the numbers and
their intervals support:

- :func:`drift_reading`: per arm, which layers moved most (1 - CKA against the pretrained
  model), in how many languages that layer is first and in how many its interval is clear
  of the next layer's, which layers did not move at all, lower half against upper half;
- :func:`probe_reading`: per arm, where the zero-shot probes lost or gained accuracy
  against the baseline on the same words (a paired interval over sentences that excludes
  0), and how many (language, layer) cells cannot be told apart (the interval includes 0);
- :func:`retrieval_reading`: per arm, sentence retrieval at its best layer and, per
  language, whether the change against the baseline at that layer is outside both Wilson
  intervals (or the intervals overlap, so nothing can be concluded); the intervals treat the
  queries as independent trials, which words of one sentence are not: read them as a lower
  bound of the uncertainty;
- :func:`comparison_reading`: front and back against full on the same words (the paper's
  question: does freezing rescue what full realignment lost?).

Accuracies and changes are written in percent / percentage points with one decimal.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def wilson_interval(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` independent trials
    (Wilson 1927, J. Am. Stat. Assoc. 22:209): ``(centre -+ half) / (1 + z^2/n)`` with
    ``centre = p + z^2/(2n)``, ``half = z sqrt(p(1-p)/n + z^2/(4n^2))``. NaN for ``n = 0``."""
    if n <= 0 or not np.isfinite(p):
        return float("nan"), float("nan")
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / den), min(1.0, (centre + half) / den)


def pts(x: float) -> str:
    """A change in percentage points: ``+1.2``, ``-0.4``."""
    return f"{100 * x:+.1f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _layers(layers) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    layers = sorted(int(x) for x in layers)
    runs, start = [], None
    for i, x in enumerate(layers):
        if start is None:
            start = x
        if i + 1 == len(layers) or layers[i + 1] != x + 1:
            runs.append(f"{start}" if start == x else f"{start}-{x}")
            start = None
    return ", ".join(runs)


def _span(layers) -> str:
    """``layer 3`` or ``layers 0-2, 5``."""
    layers = list(layers)
    return f"layer{'s' if len(layers) > 1 else ''} {_layers(layers)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- drift
def drift_reading(drift: pd.DataFrame, arms=None) -> list[str]:
    """Sentences about where each arm moved (``drift`` = tidy rows of :func:`analysis.drift.drift_rows`:
    ``model, lang, layer, metric, value, ci_low, ci_high``)."""
    out = []
    cka = drift[drift["metric"] == "cka"]
    cos = drift[drift["metric"] == "cos_dist"]
    for arm in arms or list(dict.fromkeys(cka["model"])):
        m = cka[cka["model"] == arm]
        if m.empty:
            continue
        langs = list(dict.fromkeys(m["lang"]))
        moved = (1 - m.pivot_table(index="layer", columns="lang", values="value")).reindex(columns=langs)
        mean = moved.mean(axis=1)
        c = cos[cos["model"] == arm]
        still = sorted(int(lay) for lay, g in c.groupby("layer") if (g["value"] == 0).all()) if len(c) else []
        if float(mean.max()) < 1e-4:
            out.append(f"**{arm}**: no layer moved measurably (1 - CKA below 0.0001 in every layer and language).")
            continue
        top = moved.idxmax(axis=0)  # per language, the layer that moved most
        best = int(top.mode().iloc[0])
        first_in = int((top == best).sum())
        separated = 0
        for lang in langs:
            ranked = moved[lang].sort_values(ascending=False)
            if ranked.index[0] != best or len(ranked) < 2:
                continue
            row = m[(m["lang"] == lang)].set_index("layer")
            lo_hi_top = row.loc[best, ["ci_low", "ci_high"]].astype(float)
            second = row.loc[ranked.index[1], ["ci_low", "ci_high"]].astype(float)
            # CKA: lower = moved more; clear when the top layer's whole interval is below the next one's
            if np.isfinite(lo_hi_top).all() and np.isfinite(second).all() and lo_hi_top["ci_high"] < second["ci_low"]:
                separated += 1
        others = {lang: int(top[lang]) for lang in langs if int(top[lang]) != best}
        text = (f"**{arm}** moved layer {best} most (1 - CKA {mean[best]:.4f} on average over "
                f"{_plural(len(langs), 'language')}); it is the layer that moved most in {first_in} of {len(langs)}")
        if others:
            text += " (elsewhere: " + ", ".join(f"{lang} layer {lay}" for lang, lay in others.items()) + ")"
        if separated == first_in:
            text += f", and in all {first_in} its interval is clear of the next layer's."
        elif separated == 0:
            text += (", but its interval overlaps the next layer's everywhere: which of the top layers moved most "
                     "cannot be concluded.")
        else:
            text += (f"; its interval is clear of the next layer's in {separated} of them, elsewhere the top two "
                     "cannot be told apart.")
        # halves as the freeze specs cut them: the embeddings and blocks 1..L/2, blocks L/2+1..L
        layers = sorted(int(x) for x in mean.index)
        half = max(layers) // 2
        lower, upper = mean[[x for x in layers if x <= half]], mean[[x for x in layers if x > half]]
        if len(lower) and len(upper):
            where = "lower" if lower.mean() > upper.mean() else "upper"
            text += (f" The {where} layers moved more on average (1 - CKA {lower.mean():.4f} for "
                     f"{_span(lower.index)}, {upper.mean():.4f} for {_span(upper.index)}).")
        if still:
            text += f" {_span(still).capitalize()} did not change at all (every word vector identical)."
        out.append(text)
    return out


# ----------------------------------------------------------------------------- probes
def classify(change: pd.DataFrame) -> pd.Series:
    """``loss`` / ``gain`` where the interval of the change excludes 0, else ``unclear``."""
    return pd.Series(np.where(change["ci_high"] < 0, "loss", np.where(change["ci_low"] > 0, "gain", "unclear")),
                     index=change.index)


def _cell(r) -> str:
    return (f"{r['lang']} at layer {int(r['layer'])} ({pts(r['value'])} points, 95% interval "
            f"{pts(r['ci_low'])} to {pts(r['ci_high'])})")


def probe_reading(forgetting: pd.DataFrame, *, zero_shot_only: bool = True) -> list[str]:
    """Sentences about the change of probe accuracy of each arm against the baseline
    (``forgetting`` = :func:`alignfreeze.pipeline_measure.paired_change` rows)."""
    out = []
    f = forgetting[forgetting["lang"] != "en"] if zero_shot_only else forgetting
    for arm, g in f.groupby("model", sort=False):
        kind = classify(g)
        loss, gain = g[kind == "loss"], g[kind == "gain"]
        unclear = int((kind == "unclear").sum())
        base = str(g["baseline"].iloc[0])
        parts = []
        if len(loss):
            worst = loss.loc[loss["value"].idxmin()]
            parts.append(f"lost accuracy against {base} in {_plural(len(loss), 'cell')} "
                         f"({', '.join(sorted(set(loss['lang'])))}), most in {_cell(worst)}")
        if len(gain):
            top = gain.loc[gain["value"].idxmax()]
            parts.append(f"gained in {_plural(len(gain), 'cell')} ({', '.join(sorted(set(gain['lang'])))}), "
                         f"most in {_cell(top)}")
        head = f"**{arm}** " + ("; ".join(parts) if parts else f"changed no probe accuracy measurably against {base}")
        out.append(f"{head}. In {unclear} of {len(g)} (language, layer) cells the interval of the change "
                   "includes 0: nothing can be concluded there.")
    return out


def comparison_reading(change: pd.DataFrame, layer: int) -> list[str]:
    """Front/back against full at one layer, per language (paired change rows whose
    ``baseline`` is the reference arm)."""
    out = []
    at = change[(change["layer"] == layer) & (change["lang"] != "en")]
    for arm, g in at.groupby("model", sort=False):
        kind = classify(g)
        ref = str(g["baseline"].iloc[0])
        better, worse = sorted(g.loc[kind == "gain", "lang"]), sorted(g.loc[kind == "loss", "lang"])
        unclear = sorted(g.loc[kind == "unclear", "lang"])
        bits = []
        if better:
            bits.append(f"above {ref} in {', '.join(better)}")
        if worse:
            bits.append(f"below {ref} in {', '.join(worse)}")
        text = f"At layer {layer}, **{arm}** is " + (" and ".join(bits) if bits else f"never distinguishable from {ref}")
        if unclear and bits:
            text += f"; in {', '.join(unclear)} the two cannot be told apart (the interval includes 0)"
        out.append(text + ".")
    return out


# ----------------------------------------------------------------------------- retrieval
RETRIEVAL_TEXT = {"sentence": "sentence retrieval (English to and from each language, mean of both directions)",
                  "word": "word retrieval (strong candidates, cosine, mean of both directions)"}


def retrieval_means(retrieval: pd.DataFrame, task: str = "sentence") -> pd.DataFrame:
    """Accuracy per (model, tgt, layer), mean of both directions, with ``n`` = the queries of
    ONE direction (the other direction asks about the same items, so it adds no independent
    trials); word retrieval in one setting: strong candidates, cosine, not centred."""
    s = retrieval[retrieval["task"] == task]
    if task == "word":
        s = s[(s["candidates"] == "strong") & (s["score"] == "cosine") & (s["centred"].astype(str) == "False")]
    return (s.groupby(["model", "tgt", "layer"], sort=False)
            .agg(value=("value", "mean"), n=("n", "max")).reset_index())


def retrieval_reading(retrieval: pd.DataFrame, baseline: str = "baseline", task: str = "sentence") -> list[str]:
    """Sentences about retrieval by layer (``task`` sentence or word): each arm's best layer
    and, per language, whether its change against the baseline there is outside both Wilson
    intervals."""
    if retrieval is None or retrieval.empty:
        return []
    s = retrieval_means(retrieval, task)
    if s.empty:
        return []
    mean = s.groupby(["model", "layer"], sort=False)["value"].mean()
    out = []
    base = s[s["model"] == baseline].set_index(["tgt", "layer"])
    for arm in dict.fromkeys(s["model"]):
        by_layer = mean[arm]
        best = int(by_layer.idxmax())
        text = (f"**{arm}**: {RETRIEVAL_TEXT[task]} is best at layer {best} ({pct(by_layer[best])} averaged over "
                "languages)")
        if arm != baseline and len(base):
            up, down, same = [], [], []
            for _, r in s[(s["model"] == arm) & (s["layer"] == best)].iterrows():
                if (r["tgt"], best) not in base.index:
                    continue
                b = base.loc[(r["tgt"], best)]
                lo_a, hi_a = wilson_interval(r["value"], int(r["n"]))
                lo_b, hi_b = wilson_interval(b["value"], int(b["n"]))
                (up if lo_a > hi_b else down if hi_a < lo_b else same).append(r["tgt"])
            bmean = mean[baseline][best] if best in mean[baseline].index else float("nan")
            text += f", against {pct(bmean)} for {baseline} at that layer"
            bits = []
            if up:
                bits.append(f"higher beyond the intervals in {', '.join(up)}")
            if down:
                bits.append(f"lower beyond the intervals in {', '.join(down)}")
            if same:
                bits.append(f"the 95% intervals overlap in {', '.join(same)}, so nothing can be concluded there")
            text += ": " + "; ".join(bits) if bits else ""
        out.append(text + ".")
    return out
