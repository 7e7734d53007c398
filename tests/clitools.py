"""Running the INSTALLED ``alignfreeze`` console script (the one next to ``sys.executable``) on
tiny inputs, for tests/test_cli_installed.py, test_cli_errors.py and test_cli_interrupt.py.

``COMMANDS`` holds one case per runnable sub-command: its arguments on tiny inputs (a tiny
random model saved to a folder, the authored fixture treebanks, files written here) and a
check of what it wrote. The error and interrupt tests reuse the cases with one input
replaced. A sub-command added to the CLI without a case here fails
``test_every_subcommand_has_a_case``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

AF = Path(sys.executable).with_name("alignfreeze")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def installed() -> Path:
    if not AF.is_file():
        pytest.fail(f"no installed console script at {AF}: install the project (pip install -e .) into the "
                    "environment that runs the tests")
    return AF


def run(args, *, cwd=None, env=None, timeout: float = 600, script: Path | None = None) -> subprocess.CompletedProcess:
    """``alignfreeze ARGS`` as a user runs it; returns the finished process (text output)."""
    cmd = [str(script or installed()), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def start(args, *, cwd=None, env=None) -> subprocess.Popen:
    return subprocess.Popen([str(installed()), *map(str, args)], cwd=cwd, env=env or ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def torch_loaded(pid: int) -> bool:
    """The process has imported torch (its shared library is mapped): it is past starting up."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def interrupt(proc: subprocess.Popen, ready: Callable[[], bool], *, settle: float = 0.5,
              timeout: float = 300) -> tuple[int, str, str]:
    """Send SIGINT (Ctrl-C) once ``ready()`` holds (plus ``settle`` seconds of work); returns
    ``(returncode, stdout, stderr)``. Fails when the process ended before it could be interrupted."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"finished (rc {proc.returncode}) before it was interrupted; give it more work\n{err[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("never became ready to interrupt")
        time.sleep(0.05)
    time.sleep(settle)
    if proc.poll() is not None:
        out, err = proc.communicate()
        pytest.fail(f"finished (rc {proc.returncode}) before it was interrupted; give it more work\n{err[-2000:]}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def error_lines(err: str, prefix: str = "alignfreeze: error: ") -> list[str]:
    """The lines of stderr that are not progress output."""
    return [ln for ln in err.splitlines() if ln.strip() and not _progress(ln)]


def _progress(line: str) -> bool:
    return "it/s]" in line or "s/it]" in line or "sent/s]" in line or "%|" in line


def one_error(proc_or_err, prefix: str = "alignfreeze: error: ", *, alone: bool = False) -> str:
    """The error is one line, the last of stderr, starting with ``prefix``; no traceback, and
    no other error line (notes a command printed while it worked may come before it;
    ``alone``: nothing else at all)."""
    err = proc_or_err if isinstance(proc_or_err, str) else proc_or_err.stderr
    lines = error_lines(err)
    assert not alone or len(lines) == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert lines and lines[-1].startswith(prefix), err[-3000:]
    assert sum(ln.startswith("alignfreeze: error:") for ln in lines) == 1, err[-3000:]
    return lines[-1]


# ----------------------------------------------------------------------------- inputs

def _write_tiny_inputs(root: Path) -> dict[str, str]:
    from core import FIXTURES
    from core.parallel import read_parallel
    from core.tiny import tiny_model
    from realign.pairs import extract_pairs, write_pairs

    p = {k: str(FIXTURES / f"{k}_demo-ud-test.conllu") for k in ("en", "fr", "de")}
    p["dictionary"] = str(FIXTURES / "en-fr.txt")
    model, tok = tiny_model("bert")
    model.pooler = None  # like e5-small: loaded without a pooler, so no load report about unused weights
    model.save_pretrained(root / "tiny-bert")
    tok.save_pretrained(root / "tiny-bert")
    p["model"] = str(root / "tiny-bert")
    tagger, ttok = tiny_model("bert", task="token-classification", num_labels=17)
    tagger.save_pretrained(root / "tiny-tagger")
    ttok.save_pretrained(root / "tiny-tagger")
    p["tagger"] = str(root / "tiny-tagger")
    records, _ = extract_pairs(read_parallel(p["en"], p["fr"]), "dictionary", dictionary=p["dictionary"])
    p["pairs"] = str(write_pairs(root / "en-fr.jsonl", records))
    from realign.config import RealignConfig
    from realign.train import realign

    # a realigned checkpoint of tiny-bert (with its manifest) for revert and layer-effect
    p["realigned"] = str(realign(RealignConfig(model=p["model"], pairs=(p["pairs"],), out=str(root / "tiny-realigned"),
                                               steps=2, batch_size=4, lr=1e-2, seed=1), progress=False))
    (root / "gains.csv").write_text("lang,gain\nfr,1.5\nde,0.8\nfi,0.7\n")
    p["gains"] = str(root / "gains.csv")
    # a layer x layer CKA table of a 2-block model, numbers made up for the figure
    rows = ["model_a,model_b,layer_a,layer_b,cka,n_words"]
    for a in range(3):
        for b in range(3):
            rows.append(f"tiny,tiny,{a},{b},{1.0 if a == b else 0.9 - 0.1 * abs(a - b)},95")
    (root / "cka.csv").write_text("\n".join(rows) + "\n")
    p["table"] = str(root / "cka.csv")
    from _midalign import saved_lm

    p["lm"] = saved_lm(root)  # a tiny decoder (llama, 4 blocks, context 512) for midalign
    exp = {"name": "tiny", "out": "grid", "models": [{"name": "tiny", "path": p["model"]}],
           "strategies": ["baseline"], "seeds": [1], "source": [p["en"]], "targets": [p["fr"]],
           "finetune": {"steps": 1, "batch_size": 4}}
    (root / "exp.yaml").write_text(json.dumps(exp))  # JSON is YAML
    p["config"] = str(root / "exp.yaml")
    return p


def write_tiny_inputs(tmp_path_factory) -> dict[str, str]:
    """Paths of the tiny inputs every case runs on (for a session-scoped fixture)."""
    return _write_tiny_inputs(tmp_path_factory.mktemp("cli-inputs"))


# ----------------------------------------------------------------------------- cases

@dataclass
class Case:
    """One sub-command on tiny inputs: ``argv(p)`` with ``p`` the input paths plus ``out``
    (an output path in a fresh folder); ``check(out, proc)`` asserts what it did."""

    argv: Callable[[dict], list[str]]
    check: Callable[[Path, subprocess.CompletedProcess], None]
    inputs: tuple[str, ...] = ()  # keys of p that are files/folders the command reads
    out: str | None = "out.csv"  # name of --out in the case's folder (None: no --out)
    out_kind: str | None = "file"  # None: the command does not declare it (then no kind check)
    heavy: bool = True  # imports torch (interrupt tests wait for it)
    late: tuple[str, ...] = ()  # inputs the command's own code reads (after its heavy imports)
    first_output: str | None = None  # the first file --out stands for, when not --out itself
    needs: str | None = None  # "lang2vec" or a prepared model name: skipped where not installed

    @property
    def first_out(self) -> str | None:
        return self.first_output or self.out

    def skip_if_unavailable(self) -> None:
        if self.needs == "lang2vec":
            pytest.importorskip("lang2vec", reason="the 'typology' extra (lang2vec) is not installed")
        elif self.needs:
            from core.prepared import is_available

            if not is_available(self.needs):
                pytest.skip(f"{self.needs} is neither prepared nor installable here (requirements-models.txt)")


def _csv(out: Path):
    import pandas as pd

    return pd.read_csv(out)


def _check_stats(out, proc):
    st = json.loads(proc.stdout)
    assert [v["sentences"] for v in st.values()] == [12]


def _check_models_list(out, proc):
    names = {r["name"] for r in json.loads(proc.stdout)}
    assert {"e5-small", "smollm2-135m", "minilm-en"} <= names


def _check_prepare(out, proc):
    assert (Path(proc.stdout.strip()) / "config.json").is_file()


def _check_features(out, proc):
    index = json.loads((out / "index.json").read_text())
    assert index["stats"]["sentences"] == 12 and "12 sentences" in proc.stdout


def _check_pairs(out, proc):
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(ln)["links"] is not None for ln in lines)


def _check_manifest(kind):
    def check(out, proc):
        assert json.loads((out / "manifest.json").read_text())["kind"] == kind
    return check


def _check_evaluate(out, proc):
    df = _csv(out)
    assert set(df["lang"]) == {"fr"} and df["value"].between(0, 1).all()


def _check_experiment(out, proc):
    grid = Path(proc.args[2]).parent / "grid"
    assert (grid / "results.csv").is_file() and "1 ran" in proc.stdout


def _check_probe(out, proc):
    df = _csv(out)
    assert set(df["layer"]) == {0, 2} and out.with_suffix(".json").is_file()


def _check_drift(out, proc):
    df = _csv(out)
    cka = df[df["metric"] == "cka"]
    assert set(cka["layer"]) == {0, 1, 2} and (abs(cka["value"] - 1) < 1e-4).all()  # a model against itself


def _check_cka(out, proc):
    df = _csv(out)
    assert len(df) == 9 and (abs(df[df.layer_a == df.layer_b]["cka"] - 1) < 1e-5).all()


def _check_align(out, proc):
    df = _csv(out)
    assert {"en"} == set(df["src"]) and {"fr"} == set(df["tgt"]) and df["value"].between(0, 1).all()


def _check_rows(out, proc):
    assert len(_csv(out)) > 0


def _check_typology(out, proc):
    assert "syntactic" in proc.stdout and len(_csv(out)) == 3


def _check_plot(out, proc):
    assert all((out.parent / f"out.{ext}").stat().st_size > 0 for ext in ("png", "svg", "csv"))


def _check_demo(out, proc):
    assert (out / "drift.csv").is_file() and (out / "probe.csv").is_file()


def _check_report(out, proc):
    assert proc.stdout.startswith("demo report: ") and "report.html" in proc.stdout


COMMANDS: dict[str, Case] = {
    "data stats": Case(lambda p: ["data", "stats", p["en"], "--json"], _check_stats, ("en",), out=None,
                       heavy=False),
    "models list": Case(lambda p: ["models", "list", "--json"], _check_models_list, out=None, heavy=False),
    "models prepare": Case(lambda p: ["models", "prepare", "minilm-en", "--quiet"], _check_prepare, out=None,
                           needs="minilm-en"),
    "features": Case(lambda p: ["features", "--model", p["model"], "--treebank", p["en"], "--out", p["out"]],
                     _check_features, ("model", "en"), out="feats", out_kind="folder"),
    "pairs": Case(lambda p: ["pairs", "--src", p["en"], "--tgt", p["fr"], "--aligner", "dictionary",
                             "--dictionary", p["dictionary"], "--out", p["out"]],
                  _check_pairs, ("en", "fr", "dictionary"), out="pairs.jsonl"),
    "realign": Case(lambda p: ["realign", "--model", p["model"], "--pairs", p["pairs"], "--steps", "2",
                               "--batch-size", "4", "--out", p["out"], "--no-progress"],
                    _check_manifest("realign"), ("model", "pairs"), out="realigned", out_kind="folder"),
    "finetune": Case(lambda p: ["finetune", "--model", p["model"], "--train", p["en"], "--steps", "2",
                                "--batch-size", "4", "--out", p["out"], "--no-progress"],
                     _check_manifest("finetune"), ("model", "en"), out="tagger", out_kind="folder"),
    "evaluate": Case(lambda p: ["evaluate", p["tagger"], "--treebank", p["fr"], "--out", p["out"], "--no-progress"],
                     _check_evaluate, ("tagger", "fr")),
    "experiment": Case(lambda p: ["experiment", p["config"]], _check_experiment, ("config",), out=None),
    "probe": Case(lambda p: ["probe", "--model", p["model"], "--train", p["en"], "--eval", p["fr"], "--seeds", "1",
                             "--layers", "0,2", "--out", p["out"], "--no-progress"],
                  _check_probe, ("model", "en", "fr")),
    "drift": Case(lambda p: ["drift", "--base", p["model"], "--model", p["model"], "--treebank", p["en"],
                             "--ci-groups", "0", "--out", p["out"], "--no-progress"],
                  _check_drift, ("model", "en")),
    "cka": Case(lambda p: ["cka", "--model", p["model"], "--treebank", p["en"], "--out", p["out"], "--no-progress"],
                _check_cka, ("model", "en")),
    "align-eval": Case(lambda p: ["align-eval", "--model", p["model"], "--src", p["en"], "--tgt", p["fr"],
                                  "--out", p["out"], "--no-progress"],
                       _check_align, ("model", "en", "fr")),
    "attribution": Case(lambda p: ["attribution", "--model", p["tagger"], "--treebank", p["en"], "--steps", "2",
                                   "--max-sentences", "2", "--out", p["out"]],
                        _check_rows, ("tagger", "en")),
    "typology": Case(lambda p: ["typology", "--gains", p["gains"], "--reference", "en", "--features", "syntactic",
                                "--out", p["out"]],
                     _check_typology, ("gains",), heavy=False, needs="lang2vec"),
    "plot": Case(lambda p: ["plot", "cka", "--input", p["table"], "--out", p["out"]], _check_plot, ("table",),
                 out="out", heavy=False, first_output="out.png"),
    "demo": Case(lambda p: ["demo", "--quick", "--steps", "1", "--out", p["out"]], _check_demo, out="demo",
                 out_kind="folder"),
    # writes into the demo run it is given (no --out); p["run"]: see demo_run()
    "report": Case(lambda p: ["report", p["run"], "--no-progress"], _check_report, out=None, heavy=False),
}


def _check_revert(out, proc):
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "revert" and man["reverted_layers"] == [1] and man["checkpoint"]["base_check"] == "base_model"
    assert "layers [1] from" in proc.stdout


def _check_layer_effect(out, proc):
    df = _csv(out / "effects.csv")
    assert set(df["variant"]) == {"emb", "block 1", "block 2", "all (pretrained)"} and set(df["lang"]) == {"fr"}
    assert len(df) == 4 * 2 and ((df["ci_low"] <= df["effect"]) & (df["effect"] <= df["ci_high"])).all()
    assert (out / "figures" / "layer_effect.png").is_file() and "upos-probe at layer 2" in proc.stdout


COMMANDS.update({
    "revert": Case(lambda p: ["revert", "--model", p["realigned"], "--base", p["model"], "--layers", "front", "--out",
                              p["out"]], _check_revert, ("model",), out="reverted", out_kind="folder"),
    "layer-effect": Case(lambda p: ["layer-effect", "--model", p["realigned"], "--base", p["model"], "--train", p["en"],
                                    "--eval", p["fr"], "--out", p["out"], "--no-progress"],
                         _check_layer_effect, ("model", "en", "fr"), out="effects", out_kind="folder"),
})


def _check_scan(out, proc):
    df = _csv(out)
    assert set(df["layer"]) == {0, 1, 2, 3, 4} and "--layer auto would choose K" in proc.stdout


def _check_midalign_train(out, proc):
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "midalign" and man["layer"]["layer"] == 2 and (out / "adapter_config.json").is_file()


def _check_merge(out, proc):
    assert json.loads((out / "manifest.json").read_text())["combination"] == "cat"
    assert (out / "adapter_config.json").is_file()


def _check_midalign_eval(out, proc):
    df = _csv(out)
    assert set(df["lang"]) == {"en"} and set(df["adapter"]) == {"none"}


MIDALIGN_TRAIN = ["--micro-batch", "4", "--accumulation", "1", "--steps", "2", "--no-progress"]

COMMANDS.update({
    "midalign scan": Case(lambda p: ["midalign", "scan", "--model", p["lm"], "--src", p["en"], "--tgt", p["fr"],
                                     "--out", p["out"]], _check_scan, ("lm",), late=("en", "fr")),
    "midalign train": Case(lambda p: ["midalign", "train", "--model", p["lm"], "--train", p["en"], "--parallel",
                                      p["en"], p["fr"], "--layer", "2", *MIDALIGN_TRAIN, "--out", p["out"]],
                           _check_midalign_train, ("lm",), late=("en",), out="adapter", out_kind=None),
    "midalign merge": Case(lambda p: ["midalign", "merge", "--model", p["lm"], "--adapters", p["adapter"],
                                      p["adapter"], "--weights", "1", "0.5", "--out", p["out"]],
                           _check_merge, ("lm",), out="merged", out_kind=None),
    "midalign eval": Case(lambda p: ["midalign", "eval", "--model", p["lm"], "--task", "upos", "--data", p["en"],
                                     "--limit", "2", "--out", p["out"]],
                          _check_midalign_eval, ("lm",), late=("en",)),
})


def adapter(tiny_inputs: dict) -> str:
    """A LoRA adapter of the tiny decoder (trained in this process once), for ``midalign merge``."""
    out = Path(tiny_inputs["lm"]).parent / "adapter"
    if not (out / "manifest.json").is_file():
        import warnings

        from alignfreeze.cli import main

        with warnings.catch_warnings():  # transformers' own deprecation, reached through PEFT
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
            assert main(["midalign", "train", "--model", tiny_inputs["lm"], "--train", tiny_inputs["en"], "--parallel",
                         tiny_inputs["en"], tiny_inputs["fr"], "--layer", "2", *MIDALIGN_TRAIN, "--out", str(out)]) == 0
    return str(out)


def demo_run(tiny_inputs: dict) -> str:
    """A --quick demo run (made in this process once), for ``report``."""
    out = Path(tiny_inputs["model"]).parent / "demo-run"
    if not (out / "run.json").is_file():
        import contextlib
        import io

        from alignfreeze.cli import main

        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return str(out)


def leaf_commands() -> list[str]:
    """Every runnable sub-command of the parser, e.g. ``data stats``, ``drift``."""
    import argparse

    from alignfreeze.cli import build_parser

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*prefix, name])
                return
        yield " ".join(prefix)

    return list(walk(build_parser(), []))


def case_inputs(tiny_inputs: dict, folder: Path, case: Case, **override) -> dict:
    """The case's input paths, its ``out`` in ``folder``; the experiment YAML is copied
    into ``folder`` so that its relative ``out`` lands there."""
    p = {**tiny_inputs, **override}
    if case is COMMANDS.get("midalign merge") and "adapter" not in override:
        p["adapter"] = adapter(tiny_inputs)
    if case is COMMANDS.get("report") and "run" not in override:
        p["run"] = demo_run(tiny_inputs)
    if "config" in case.inputs and "config" not in override:
        p["config"] = str(folder / "exp.yaml")
        Path(p["config"]).write_text(Path(tiny_inputs["config"]).read_text())
    if case.out is not None and "out" not in override:
        p["out"] = str(folder / case.out)
    return p
