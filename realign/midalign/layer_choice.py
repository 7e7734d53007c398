"""``--layer auto``: choose the alignment layer K from a layer-scan table (a file on disk).

The paper fixes layer 16 of 32 for every model. Here K comes from data, by one rule:

    K = argmax over layers 1..L-1 of the mean sentence-retrieval accuracy (both directions,
        averaged over every language pair in the table); ties -> higher linear CKA, then the
        LOWER layer (fewer blocks for the parallel inputs to run).

Layer 0 is excluded (no block lies below it, so no LoRA module could move it) and so is
layer L (the last block's output feeds the LM head directly; aligning it leaves no block
for the task above K and saves no compute). The rule's name, the winner, the runner-up and
the margin, and every layer's figures are returned for the manifest.

The table is the tidy CSV of ``alignfreeze midalign scan`` (columns ``layer, metric,
direction, value``; metrics ``retrieval_mean`` and ``cka``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

RULE = ("argmax over layers 1..L-1 of mean sentence-retrieval accuracy@1 (both directions, mean over "
        "language pairs); ties: higher linear CKA, then lower layer")


@dataclass(frozen=True)
class LayerChoice:
    """The chosen layer and why (all of it goes into the manifest)."""

    layer: int
    rule: str
    how: str  # "auto" (from a scan) or "given"
    figures: dict = field(default_factory=dict)  # {layer: {"retrieval_mean": .., "cka": ..}}
    runner_up: int | None = None
    margin: float | None = None  # retrieval_mean(K) - retrieval_mean(runner-up)
    scan_file: dict | None = None  # {"path", "sha256"}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["figures"] = {str(k): v for k, v in self.figures.items()}
        return d


def layer_figures(rows) -> dict[int, dict[str, float]]:
    """``{layer: {"retrieval_mean": .., "cka": ..}}`` averaged over language pairs."""
    acc: dict[int, dict[str, list[float]]] = {}
    for r in rows:
        if r["metric"] in ("retrieval_mean", "cka"):
            acc.setdefault(int(r["layer"]), {}).setdefault(r["metric"], []).append(float(r["value"]))
    out = {}
    for lay, m in sorted(acc.items()):
        if "retrieval_mean" not in m:
            raise ValueError(f"scan table: layer {lay} has no retrieval_mean row")
        out[lay] = {k: sum(v) / len(v) for k, v in m.items()}
    return out


def choose_layer(rows, n_layers: int, *, scan_file: dict | None = None) -> LayerChoice:
    """Apply :data:`RULE` to scan rows of a model with ``n_layers`` blocks.

    Raises ValueError when the table has no candidate layer, or layers beyond the model
    (a scan of another model).
    """
    figs = layer_figures(rows)
    if not figs:
        raise ValueError("scan table has no retrieval_mean rows: is it the output of `alignfreeze midalign scan`?")
    beyond = [lay for lay in figs if not 0 <= lay <= n_layers]
    if beyond:
        raise ValueError(f"scan table has layers {beyond} but the model has layers 0..{n_layers}: "
                         "the scan was made on another model")
    cands = [lay for lay in figs if 1 <= lay <= n_layers - 1]
    if not cands:
        raise ValueError(f"scan table covers layers {sorted(figs)}: none of the candidates 1..{n_layers - 1}")
    key = {lay: (figs[lay]["retrieval_mean"], figs[lay].get("cka", 0.0), -lay) for lay in cands}
    ranked = sorted(cands, key=lambda lay: key[lay], reverse=True)
    best = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    margin = None if second is None else figs[best]["retrieval_mean"] - figs[second]["retrieval_mean"]
    return LayerChoice(best, RULE, "auto", figs, second, margin, scan_file)


def read_scan(path: str | Path) -> list[dict]:
    """Rows of a scan CSV (errors name the file)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such scan table")
    df = pd.read_csv(p)
    missing = [c for c in ("layer", "metric", "value") if c not in df.columns]
    if missing:
        raise ValueError(f"{p}: not a layer-scan table (lacks column(s) {missing}; has {list(df.columns)})")
    return df.to_dict("records")


def resolve_layer(spec: str | int, n_layers: int, *, scan: str | Path | None = None) -> LayerChoice:
    """``K`` as given (an int or ``middle``) or ``auto`` from the scan table ``scan``.

    Raises ValueError for a layer outside 1..L (layer 0 has nothing below it to adapt) and
    for ``auto`` without a scan table.
    """
    from core.io import file_sha256

    s = str(spec).strip().lower()
    if s == "auto":
        if scan is None:
            raise ValueError("--layer auto needs a layer-scan table (--scan FILE from `alignfreeze midalign scan`)")
        return choose_layer(read_scan(scan), n_layers, scan_file={"path": str(scan), "sha256": file_sha256(scan)})
    if s == "middle":
        k = n_layers // 2
    elif s.lstrip("-").isdigit():
        k = int(s)
    else:
        raise ValueError(f"--layer {spec!r}: expected an integer 1..{n_layers}, middle or auto")
    if not 1 <= k <= n_layers:
        raise ValueError(f"--layer {k} does not exist for alignment: this model has layers 0..{n_layers} "
                         f"and the alignment layer must be 1..{n_layers} (0 has no block below it)")
    return LayerChoice(k, "given on the command line" if s != "middle" else "middle = L // 2", "given")
