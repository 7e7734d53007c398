"""The demo pipeline end to end on a tiny random model (seconds)."""

from __future__ import annotations

import pandas as pd

from alignfreeze.cli import main


def test_demo_quick_writes_tables_figures_and_checkpoints(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[realign] full (freeze none)" in out and "[realign] front (freeze front)" in out
    assert "manifest base hash matches" in out
    drift = pd.read_csv(tmp_path / "drift.csv")
    assert set(drift["model"]) == {"full", "front"}
    assert set(drift["lang"]) == {"en", "fr", "de"}
    assert set(drift["layer"]) == {0, 1, 2}
    cka = drift[drift["metric"] == "cka"]["value"]
    assert cka.between(0, 1).all() and (cka < 1).any()  # realignment moved something
    probe = pd.read_csv(tmp_path / "probe.csv")
    assert {"base", "full", "front"} <= set(probe["model"])
    assert {"fr", "de"} <= set(probe[probe["split"] == "eval"]["lang"])
    for name in ("drift", "forgetting"):
        for ext in ("png", "svg", "csv"):
            assert (tmp_path / "figures" / f"{name}.{ext}").stat().st_size > 0
    for label in ("full", "front"):
        assert (tmp_path / f"realign-{label}" / "manifest.json").is_file()


def test_demo_runs_twice_in_the_same_folder(tmp_path, capsys):
    assert main(["demo", "--quick", "--steps", "1", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "drift.csv").read_bytes()
    # the one output policy: an existing --out is refused, and left as it was
    assert main(["demo", "--quick", "--steps", "1", "--out", str(tmp_path)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "drift.csv").read_bytes() == before
    assert main(["demo", "--quick", "--steps", "1", "--out", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "drift.csv").is_file()
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.replaced-*"))  # the old one is gone once complete


def test_facade_names_resolve():
    import alignfreeze as af

    assert callable(af.run_demo) and callable(af.run_experiment) and callable(af.load_experiment)
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        af.nope  # noqa: B018
