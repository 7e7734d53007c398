"""Results loaders: a run folder's (``alignfreeze demo``, a command's ``--out``) or an
experiment grid's tables and manifests, as tidy DataFrames, and its checkpoints under
display names a figure can use (``front-42``, never ``realigned``).

A grid (``alignfreeze experiment``) is laid out as ``OUT/results.csv``, ``OUT/table.csv``
and ``OUT/cells/<cell>/{realigned,finetuned}/manifest.json`` (the models stay only with
``keep_models: true``), next to each cell's own ``results.csv`` (strategy and seed)."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST_COLUMNS = ("name", "strategy", "seed", "kind", "path", "base_model", "base_hash", "model_type", "freeze",
                    "steps", "wall_time_s", "cell", "stage")
SKIP_DIRS = ("checkpoints",)


def read_table(paths):
    """One DataFrame from one CSV table or several (concatenated, columns united; a cell a
    table lacks is NaN). A missing, empty or non-CSV file is a one-line error naming it
    (:func:`analysis.plots.read_tables`)."""
    from analysis.plots import read_tables

    return read_tables(paths).drop(columns=["_source", "_row"])


def _folder(path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such folder (expected a run folder or an experiment grid's OUT)")
    return p


def load_tables(folder) -> dict:
    """``{name: DataFrame}`` of the tidy tables of a run folder: every CSV directly in it
    (``drift``, ``probe``, a grid's ``results``, ``table``...) and the numbers drawn by its
    figures (``figures/drift``...). A grid whose ``results.csv`` is not written yet gets
    ``results`` from its finished cells. Raises FileNotFoundError for a missing folder and
    ValueError for a folder without any table."""
    folder = _folder(folder)
    out = {f.stem: read_table(f) for f in sorted(folder.glob("*.csv"))}
    for f in sorted((folder / "figures").glob("*.csv")):
        out[f"figures/{f.stem}"] = read_table(f)
    if "results" not in out and (folder / "cells").is_dir():
        from .experiment import collect_results

        cells = collect_results(folder)
        if len(cells):
            out["results"] = cells
    if not out:
        raise ValueError(f"{folder}: no CSV table in it (nor in figures/ or cells/*/)")
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise ValueError(f"{path}: not a JSON manifest ({where})") from None


def _strategy_of_freeze(freeze) -> str | None:
    from .experiment import NAMED_STRATEGIES

    if freeze is None:
        return None
    names = {spec: name for name, spec in NAMED_STRATEGIES.items() if spec is not None}
    return names.get(str(freeze), str(freeze))


def _cell_row(manifest_dir: Path) -> dict:
    """Strategy and seed of a grid cell, from the cell's own results table."""
    res = manifest_dir.parent / "results.csv"
    if manifest_dir.parent.parent.name != "cells" or not res.is_file():
        return {}
    import pandas as pd

    first = pd.read_csv(res, nrows=1)
    return {k: first[k].iloc[0] for k in ("strategy", "seed") if k in first.columns and len(first)}


def _manifest_row(path: Path) -> dict:
    man = _read_json(path)
    d = path.parent
    cfg = man.get("config") or {}
    base = man.get("base_model") or {}
    kind = man.get("kind")
    strategy = None
    if kind == "realign":
        strategy = _strategy_of_freeze(cfg.get("freeze", "none"))
    elif kind == "finetune":
        parent = man.get("parent")
        if cfg.get("during_freeze"):
            strategy = f"during:{cfg['during_freeze']}"
        elif parent is None:
            strategy = "baseline"
        elif (Path(parent.get("path", "")) / "manifest.json").is_file():
            strategy = _manifest_row(Path(parent["path"]) / "manifest.json")["strategy"]
    cell = _cell_row(d)
    return {
        "strategy": cell.get("strategy", strategy),
        "seed": cell.get("seed", man.get("seed", cfg.get("seed"))),
        "kind": kind,
        "path": str(d),
        "base_model": base.get("name"),
        "base_hash": base.get("weight_hash"),
        "model_type": base.get("model_type"),
        "freeze": cfg.get("freeze"),
        "steps": man.get("steps"),
        "wall_time_s": man.get("wall_time_s"),
        "cell": d.parent.name if d.parent.parent.name == "cells" else None,
        "stage": d.name if d.parent.parent.name == "cells" else None,
    }


def _unique_names(rows: list[dict]) -> list[str]:
    """``strategy``; ``strategy-seed`` where strategies repeat; then the base model, the
    stage, and at last the folder, for the rows that still share a name."""
    def name(r, depth):
        parts = [str(r["strategy"] or r["kind"] or Path(r["path"]).name)]
        if depth >= 1 and r["seed"] is not None and r["seed"] == r["seed"]:  # not NaN
            parts[0] += f"-{r['seed']}"
        if depth >= 2 and r["base_model"]:
            parts.insert(0, Path(str(r["base_model"])).name)
        if depth >= 3 and r["stage"]:
            parts.append(f"({r['stage']})")
        if depth >= 4:
            parts = [r["path"]]
        return " ".join(parts)

    names = [name(r, 0) for r in rows]
    for depth in range(1, 5):  # only the rows that still share a name get longer ones
        dup = {n for n in names if names.count(n) > 1}
        if not dup:
            break
        names = [name(r, depth) if n in dup else n for r, n in zip(rows, names, strict=True)]
    return names


def load_manifests(folder):
    """One row per checkpoint manifest (``manifest.json``) under ``folder`` (resumable
    ``checkpoints/`` folders left out): ``name`` (a unique display name: the strategy,
    with the seed, base model and stage added only where needed to tell rows apart),
    ``strategy`` (baseline / full / front / back / a freeze spec; from the grid cell when
    there is one), ``seed``, ``kind`` (realign, finetune, midalign, ...), ``path``,
    ``base_model``, ``base_hash`` (weight hash of the model it started from), ``model_type``,
    ``freeze``, ``steps``, ``wall_time_s``, ``cell`` and ``stage`` (grids). Empty (with
    these columns) when there is none."""
    import pandas as pd

    folder = _folder(folder)
    found = sorted(p for p in folder.rglob("manifest.json")
                   if not any(part in SKIP_DIRS or part.startswith(".") for part in p.relative_to(folder).parts[:-1]))
    rows = [_manifest_row(p) for p in found]
    for kind in dict.fromkeys(r["kind"] for r in rows):  # names tell apart the checkpoints of one kind
        same = [r for r in rows if r["kind"] == kind]
        for r, n in zip(same, _unique_names(same), strict=True):
            r["name"] = n
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def checkpoints(folder, *, kind: str | None = "realign", strategies=None) -> dict[str, str]:
    """``{display name: folder}`` of the checkpoints under ``folder`` (manifests of ``kind``;
    None: every kind), in the protocol's order (baseline, full, front, back, then the
    rest), ready for ``af.drift(base, af.checkpoints("runs/grid"), ...)``. ``strategies``
    keeps only those. Raises ValueError when nothing matches, naming what is there."""
    from analysis.plot_names import protocol_rank

    man = load_manifests(folder)
    sel = man if kind is None else man[man["kind"] == kind]
    if strategies is not None:
        sel = sel[sel["strategy"].isin(list(strategies))]
    if sel.empty:
        have = ", ".join(f"{k}: {s}" for k, s in zip(man["kind"], man["strategy"], strict=True)) or "no manifest"
        raise ValueError(f"{folder}: no checkpoint of kind {kind!r}"
                         + (f" and strategy in {list(strategies)}" if strategies is not None else "")
                         + f" (found {have})")
    rows = sel.to_dict("records")
    names = _unique_names(rows)
    order = sorted(range(len(rows)), key=lambda i: (protocol_rank(str(rows[i]["strategy"])), i))
    return {names[i]: rows[i]["path"] for i in order}
