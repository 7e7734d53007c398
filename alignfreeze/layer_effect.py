"""The layer-effect study (``alignfreeze layer-effect``): for one realigned checkpoint (or
several seeds of one strategy), put each layer alone, each half, and all layers back to
their pretrained weights, measure every variant per language, and tabulate the effect of
each layer's realignment: ``measure(realigned) - measure(that layer reverted)``.

Reading a row: a positive effect says the realigned model is better with that layer's
realigned weights than with its pretrained ones, other layers being realigned: the change
of that layer helped, in the context of the others. See docs/revert.md for what the
experiment can and cannot show (layers interact; effects need not add up).

Cost control (the cheap path runs on CPUs): the features of every variant come from one
pass over each chunk of sentences in which the realigned model's block outputs are
recorded and each variant replays its blocks below its lowest reverted layer
(:mod:`core.replay`: those are identical); a variant whose layers never moved (the frozen
blocks of a front-frozen checkpoint) is not run at all (effect exactly 0). Fine-tuning
(``upos-finetune``) fine-tunes every variant: the path for GPUs.

Outputs (:func:`write_layer_effect`): ``measurements.csv`` (one row per checkpoint,
variant, language, measure and read-out layer), ``effects.csv`` (one row per variant,
language, measure and layer, with its interval), ``layer_effect.json`` (config, hashes,
costs) and the heatmap ``figures/layer_effect.{png,svg,pdf,csv}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import to_dict

from .layer_effect_checkpoint import study_checkpoint
from .layer_effect_config import MEASURES, LayerEffectConfig
from .layer_effect_inputs import StudyData, check_bases, checkpoints, model_name, read_inputs
from .layer_effect_measures import (
    REALIGNED,
    build_variants,
    paired_unit_interval,
    seed_interval,
)

MEASUREMENT_COLUMNS = ("model", "checkpoint", "seed", "variant", "reverted_layers", "lang", "measure", "layer",
                       "metric", "value", "n", "identical_weights", "file")
EFFECT_COLUMNS = ("model", "base", "variant", "reverted_layers", "lang", "measure", "layer", "metric", "realigned",
                  "reverted", "effect", "std", "ci_low", "ci_high", "interval", "n_seeds", "seeds", "n",
                  "identical_weights")
__all__ = ["MEASURES", "LayerEffectConfig", "LayerEffectResult", "effects_table", "run_layer_effect",
           "write_layer_effect", "summary_text"]


@dataclass
class LayerEffectResult:
    measurements: pd.DataFrame
    effects: pd.DataFrame
    meta: dict


# ----------------------------------------------------------------------------- the table
def effects_table(meas: pd.DataFrame, hits: dict, level: float = 0.95) -> pd.DataFrame:
    """One row per (model, variant, lang, measure, layer): ``effect = realigned - reverted``
    (mean over checkpoints), ``std`` over seeds (NaN for one), and the interval: Student-t
    over seeds when there are two or more (``interval = "seeds, t"``), else the paired
    unit-clustered normal interval over evaluation units (``"sentences, clustered SE"``,
    :func:`~alignfreeze.layer_effect_measures.paired_unit_interval`)."""
    keys = ["lang", "measure", "layer"]
    realigned = meas[meas["variant"] == REALIGNED].set_index(["checkpoint", *keys])
    out = []
    others = meas[meas["variant"] != REALIGNED]
    for (model, variant, lang, measure, layer), g in others.groupby(["model", "variant", *keys], sort=False):
        r = realigned.loc[[(c, lang, measure, layer) for c in g["checkpoint"]]]
        effects = r["value"].to_numpy() - g["value"].to_numpy()
        mean, sd, lo, hi = seed_interval(effects, level)
        how = f"seeds, t, {level:.0%}"
        if len(g) == 1:
            c = g["checkpoint"].iloc[0]
            mean, lo, hi = paired_unit_interval(hits[(c, REALIGNED, lang, measure, layer)],
                                                hits[(c, variant, lang, measure, layer)], level)
            how = f"sentences, clustered SE, {level:.0%}"
        out.append({"model": model, "variant": variant, "reverted_layers": g["reverted_layers"].iloc[0], "lang": lang,
                    "measure": measure, "layer": layer, "metric": g["metric"].iloc[0],
                    "realigned": float(r["value"].mean()), "reverted": float(g["value"].mean()), "effect": mean,
                    "std": sd, "ci_low": lo, "ci_high": hi, "interval": how, "n_seeds": len(g),
                    "seeds": ",".join(str(s) for s in g["seed"]), "n": float(g["n"].mean()),
                    "identical_weights": bool(g["identical_weights"].all())})
    return pd.DataFrame(out, columns=[c for c in EFFECT_COLUMNS if c != "base"])


def run_layer_effect(cfg: LayerEffectConfig, *, out: str | Path | None = None, progress: bool = True,
                     base_model=None, data: StudyData | None = None) -> LayerEffectResult:
    """Run the study (see the module doc); ``out`` is where ``upos-finetune`` puts its
    temporary checkpoints (``OUT/models``). ``base_model``: the base already loaded;
    ``data``: the inputs already read (:func:`~alignfreeze.layer_effect_inputs.read_inputs`).
    Every file and manifest is read before the base model loads."""
    from core.arch import num_layers
    from core.manifest import base_weight_hash
    from core.models import load_model

    cfg.validate()
    t0 = time.perf_counter()
    data = data if data is not None else read_inputs(cfg)
    ckpts = checkpoints(cfg)
    base = (base_model if base_model is not None else load_model(cfg.base)).to(cfg.device)
    base_hash = base_weight_hash(base)
    check_bases(ckpts, base_hash)
    variants = build_variants(cfg.revert, num_layers(base))
    name = model_name(cfg, ckpts)
    rows, hits, facts = [], {}, []
    for ck in ckpts:
        r, h, f = study_checkpoint(cfg, ck, base, data, variants, progress, Path(out or ".") / "models")
        rows += r
        hits.update(h)
        facts.append(f)
    meas = pd.DataFrame(rows)
    meas.insert(0, "model", name)
    meas = meas[list(MEASUREMENT_COLUMNS)]
    eff = effects_table(meas, hits, cfg.level)
    eff.insert(1, "base", cfg.base)
    meta = {"kind": "layer-effect", "config": to_dict(cfg), "base_model": {"name": cfg.base, "weight_hash": base_hash},
            "model": name, "checkpoints": facts,
            "variants": [{"name": v.name, "spec": v.spec, "layers": list(v.layers)} for v in variants],
            "measurements": len(meas), "effects": len(eff), "wall_time_s": round(time.perf_counter() - t0, 3)}
    return LayerEffectResult(meas, eff, meta)


def write_layer_effect(result: LayerEffectResult, out: str | Path, *, figure: bool = True) -> list[Path]:
    """``measurements.csv``, ``effects.csv``, ``layer_effect.json`` (atomically) and the heatmap."""
    from core.io import atomic_write_json, atomic_write_text, environment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(out / "measurements.csv", result.measurements.to_csv(index=False)),
             atomic_write_text(out / "effects.csv", result.effects.to_csv(index=False))]
    paths.append(atomic_write_json(out / "layer_effect.json", {**result.meta, "environment": environment()}))
    if figure:
        from analysis.plots import plot_from_tables

        paths += plot_from_tables("layer-effect", out / "effects.csv", out / "figures" / "layer_effect")
    return paths


def summary_text(eff: pd.DataFrame) -> str:
    """The plain reading: per measure, effects in percentage points with their interval, and
    the sum of the single-layer effects next to the total (all layers reverted)."""
    lines = []
    for (measure, layer), g in eff.groupby(["measure", "layer"], sort=False):
        lines.append(f"\n{measure} at layer {layer}: realigned minus reverted, percentage points "
                     f"[{g['interval'].iloc[0]} interval]")
        langs = list(dict.fromkeys(g["lang"]))
        lines.append("  " + "variant".ljust(22) + "".join(lang.rjust(22) for lang in langs))
        for variant, v in g.groupby("variant", sort=False):
            cells = []
            for lang in langs:
                row = v[v["lang"] == lang]
                if row.empty:
                    cells.append("".rjust(22))
                    continue
                r = row.iloc[0]
                ci = f" [{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]" if np.isfinite(r.ci_low) else " [n/a]"
                cells.append(f"{100 * r.effect:+.1f}{ci}".rjust(22))
            lines.append("  " + str(variant).ljust(22) + "".join(cells))
        single = g[g["variant"].str.match(r"^(emb|block \d+)$")]
        total = g[g["variant"] == "all (pretrained)"]
        if len(single) and len(total):
            s = single.groupby("lang")["effect"].sum()
            t = total.set_index("lang")["effect"]
            parts = [f"{lang} {100 * s[lang]:+.1f} vs {100 * t[lang]:+.1f}" for lang in langs if lang in s and lang in t]
            lines.append("  sum of the single-layer effects vs all layers reverted: " + "; ".join(parts))
    return "\n".join(lines)
