"""Reuse of finished steps: only with the same key and untouched outputs; an interrupted step
is never taken for finished."""

from __future__ import annotations

import pytest

from alignfreeze.pipeline_steps import StepCache, digest


def _cache(tmp_path, said):
    return StepCache(tmp_path, say=lambda step, msg: said.append(f"[{step}] {msg}"))


def test_reuse_only_with_the_same_key_and_outputs(tmp_path):
    said, runs = [], []
    out = tmp_path / "a.csv"

    def compute(text="x,y\n1,2\n"):
        runs.append(text)
        out.write_text(text)

    key = {"code": "git:1", "config": {"steps": 3, "lr": 0.1}, "data": {"f": "abc"}}
    c = _cache(tmp_path, said)
    assert c.run("s", key, [out], compute) is False and runs == ["x,y\n1,2\n"]
    assert c.run("s", dict(key), [out], compute) is True and len(runs) == 1
    assert said[-1].startswith("[s] reused: inputs unchanged (key " + digest(key)[:10])
    assert [e["status"] for e in c.log] == ["ran", "reused"]

    changed = {**key, "config": {"steps": 4, "lr": 0.1}, "data": {"f": "abd"}}
    assert c.run("s", changed, [out], compute) is False and len(runs) == 2
    assert said[-1] == "[s] runs again: inputs changed (config.steps, data.f)"

    out.write_text("x,y\n1,3\n")  # edited by hand
    assert c.run("s", changed, [out], compute) is False
    assert said[-1] == "[s] runs again: output a.csv was changed or removed since the step finished"
    out.unlink()
    assert c.run("s", changed, [out], compute) is False
    assert said[-1] == f"[s] runs again: output {out} is missing"


def test_a_folder_output_with_a_file_the_step_did_not_write(tmp_path):
    said = []
    folder = tmp_path / "ckpt"

    def compute():
        folder.mkdir(exist_ok=True)
        (folder / "model.bin").write_bytes(b"\0" * 10)

    c = _cache(tmp_path, said)
    c.run("r", {"k": 1}, [folder], compute)
    (folder / "stray.txt").write_text("?")
    assert c.run("r", {"k": 1}, [folder], compute) is False
    assert said[-1] == "[r] runs again: output ckpt/stray.txt was not written by the step"


def test_an_interrupted_step_leaves_no_record(tmp_path):
    said = []
    out = tmp_path / "t.csv"
    c = _cache(tmp_path, said)
    c.run("s", {"k": 1}, [out], lambda: out.write_text("1"))

    def crash():
        out.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.run("s", {"k": 2}, [out], crash)
    assert not c.record_path("s").exists()
    n = len(said)
    assert c.run("s", {"k": 2}, [out], lambda: out.write_text("2")) is False
    assert len(said) == n and out.read_text() == "2"  # "not run yet": no record, nothing to explain


def test_a_step_that_writes_nothing_is_an_error(tmp_path):
    c = _cache(tmp_path, [])
    with pytest.raises(RuntimeError, match="finished without writing"):
        c.run("s", {"k": 1}, [tmp_path / "never.csv"], lambda: None)
    assert not c.record_path("s").exists()
