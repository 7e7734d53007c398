"""The ``alignfreeze`` command line. Each sub-command lives in ``alignfreeze/commands/``
and registers itself with :func:`register`; :func:`main` is callable in-process
(``main(["data", "stats", "x.conllu"])``) and returns the exit code.

What every command gets from here (one place, so a new command module gets it too):

- a parser that imports neither torch nor transformers (``register`` functions import only
  light modules; the heavy ones are imported by the command when it runs), so ``--help``
  and argument errors answer at once;
- the checks of :mod:`alignfreeze.preflight` before the work: inputs (the command's
  ``preflight``), outputs (``--out`` refused when it exists unless ``--overwrite``, or when it
  cannot be written), and ``--offline`` on every command that takes a model;
- errors as one line, ``alignfreeze: error: ...``, exit status 2 (``--traceback`` shows the
  traceback); Ctrl-C as one line saying what was saved and the command that resumes, exit
  status 130; a closed pipe (``| head``) ends quietly;
- progress for logs: when stderr is not a terminal, one line per progress update (at most
  every ``TQDM_MININTERVAL`` seconds, default 10) and no third-party progress bars.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import signal
import sys
import threading

from alignfreeze.interrupts import SIGINT_SEEN

# one module per area, so that parallel work on the CLI never touches the same file; each
# module's register() must stay light (no torch/transformers at import: tests check it)
COMMAND_MODULES = ("data", "features", "models", "realign", "finetune", "probe", "analysis", "demo", "midalign",
                   "revert", "report")
# argument names that take a model: these commands get --offline
MODEL_DESTS = ("model", "base")
# exceptions that are bad input (a message), not bugs (a traceback); the names are matched
# anywhere in the exception's MRO, for libraries not imported here
INPUT_ERRORS = (ValueError, OSError, KeyError, ImportError, RuntimeError)
INPUT_ERROR_NAMES = {"YAMLError", "SafetensorError"}
EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PIPE = 2, 130, 141


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _leaves(parser: argparse.ArgumentParser):
    """Every runnable (sub-)sub-parser."""
    for _, p in _subparsers(parser):
        if any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            yield from _leaves(p)
        else:
            yield p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignfreeze",
        description="Realign multilingual models with freezing, and see what happens inside them.",
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"alignfreeze.commands.{name}").register(sub)
    for p in _leaves(parser):
        dests = {a.dest for a in p._actions}
        opts = {o for a in p._actions for o in a.option_strings}
        if "out" in dests and "--overwrite" not in opts:
            p.add_argument("--overwrite", action="store_true",
                           help="replace an existing --out (refused otherwise); the old output is replaced only "
                                "when the new one is complete")
        if dests & set(MODEL_DESTS) and "--offline" not in opts:
            p.add_argument("--offline", action="store_true",
                           help="never contact the HuggingFace hub (models from local folders or the HF cache); "
                                "same as HF_HUB_OFFLINE=1")
    return parser


def _drop_script_dir() -> None:
    """Run as an installed console script, ``sys.path[0]`` is the scripts folder (e.g.
    ``.venv/bin``), where other packages' scripts live: lang2vec installs ``bin/lang2vec.py``,
    which then shadows the ``lang2vec`` package. Nothing importable belongs there: drop it."""
    script = sys.argv[0] if sys.argv else ""
    if not sys.path or script.endswith(".py") or not os.path.isfile(script):
        return  # python -m / -c / a .py file: sys.path[0] is what the user asked for
    here = os.path.dirname(os.path.realpath(sys.argv[0]))
    first = os.path.realpath(sys.path[0] or os.getcwd())
    if first == here:
        del sys.path[0]


class _LineProgress:
    """stderr for a log file: a progress bar's ``\\r``-redrawn status becomes one line per
    update (a redraw that changes only the timings, as on closing, is not repeated);
    everything else passes through unchanged."""

    def __init__(self, stream):
        self._stream = stream
        self._after_status = False
        self._last = None  # the last status line up to its timings: a redraw of it is not repeated

    def write(self, s: str) -> int:
        if not s:
            return 0
        if "\r" in s:
            text = s.split("\r")[-1].rstrip() or s.replace("\r", "").rstrip()
            key = text.split(" [", 1)[0]
            if text and key != self._last:
                self._stream.write(text + "\n")
                self._after_status, self._last = True, key
            return len(s)
        if s == "\n" and self._after_status:  # the bar's own closing newline: already ended
            self._after_status = False
            return len(s)
        self._after_status, self._last = False, None
        return self._stream.write(s)

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _set_environment(args) -> dict[str, str | None]:
    """Environment for the run; returns the previous values (restored after an in-process run)."""
    wanted: dict[str, str] = {}
    if getattr(args, "offline", False):
        wanted.update(dict.fromkeys(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"), "1"))
    if not sys.stderr.isatty():
        # read by huggingface_hub/transformers/datasets/tqdm when imported or created (after this point)
        for var, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                           ("TQDM_MININTERVAL", "10")):
            wanted.setdefault(var, os.environ.get(var, value))  # the user's own setting wins
    previous = {var: os.environ.get(var) for var in wanted}
    os.environ.update(wanted)
    return previous


def _restore_environment(previous: dict[str, str | None]) -> None:
    for var, value in previous.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def error_message(e: BaseException) -> str | None:
    """The one line shown for bad input, or ``None`` for what is a bug (traceback)."""
    names = {c.__name__ for c in type(e).__mro__}
    if not isinstance(e, INPUT_ERRORS) and not names & INPUT_ERROR_NAMES:
        return None
    if isinstance(e, OSError) and e.filename is not None and isinstance(e.strerror, str):
        msg = f"{e.filename}: {e.strerror}"  # a raw OS error: say which path and why, not the errno
        if isinstance(e, IsADirectoryError):
            msg += " (expected a file)"
        elif isinstance(e, NotADirectoryError):
            msg += " (a part of the path is a file, expected a folder)"
    elif isinstance(e, KeyError) and e.args:
        msg = str(e.args[0])
    elif isinstance(e, UnicodeDecodeError):
        msg = f"a file is not UTF-8 text ({e.reason} at byte {e.start}): expected UTF-8 text"
    else:
        msg = str(e) or type(e).__name__
    return " ".join(line.strip() for line in msg.splitlines() if line.strip())


def _interrupted(args, argv: list[str], before: dict | None) -> str:
    """What was saved and the exact command that resumes (commands may say more through
    ``set_defaults(on_interrupt=callable(args, command) -> str)``). A Ctrl-C that lands after
    the command's outputs were put in place (``before``: :func:`_identities` of the outputs
    when the work began) says they are complete instead of "nothing was written"."""
    command = shlex.join(["alignfreeze", *argv])
    hook = getattr(args, "on_interrupt", None)
    if hook is not None:
        return hook(args, command)
    from alignfreeze.preflight import out_paths

    outs = out_paths(args)
    if not outs:
        return f"nothing was written; rerun: {command}"
    now = _identities(outs)
    done = before is not None and all(now[o] is not None and now[o] != before.get(o) for o in outs)
    if done:
        return (f"the work was done before the interrupt: {', '.join(map(str, outs))} "
                f"{'is' if len(outs) == 1 else 'are'} complete; rerun: {command}")
    return (f"nothing was written to {', '.join(map(str, outs))} (outputs are written only when complete); "
            f"rerun: {command}")


def _identities(paths) -> dict:
    """(device, inode) of each path, ``None`` where there is none. Writers rename a complete
    file or folder into place and an interrupted run removes or puts back what it replaced,
    so an output whose identity changed during the run is new and complete."""
    ids = {}
    for p in paths:
        try:
            st = p.stat()
            ids[p] = (st.st_dev, st.st_ino)
        except OSError:
            ids[p] = None
    return ids




def _on_sigint(signum, frame) -> None:
    """Ctrl-C raises KeyboardInterrupt, except inside a finalizer (``__del__``, weakref
    callbacks), where Python would print "Exception ignored" and run on as if nothing had
    happened (measured: a Ctrl-C lost in a ``regex`` object's ``__del__``, and the command
    finished minutes later): there the signal is sent again a moment later. Any error after
    a Ctrl-C counts as the interruption (a C extension whose import was interrupted raises
    ``ImportError: initialization failed``, measured)."""
    SIGINT_SEEN.set()
    f = frame
    while f is not None:
        if f.f_code.co_name == "__del__" or f.f_code.co_filename.endswith("weakref.py"):
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        f = f.f_back
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigint_handler():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    SIGINT_SEEN.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    program = argv is None
    if program:
        _drop_script_dir()
        argv = sys.argv[1:]
    with _sigint_handler():
        code = _main([str(a) for a in argv])
    if program and code == EXIT_INTERRUPTED:
        # skip the interpreter's shutdown: what an interrupted import or thread left half-made
        # can crash in its finalizers (measured: "Fatal Python error" after the line above)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    stderr, args, environment, before = sys.stderr, None, {}, None
    try:
        args = build_parser().parse_args(argv)
        environment = _set_environment(args)
        if not sys.stderr.isatty():
            sys.stderr = _LineProgress(sys.stderr)
        from alignfreeze.preflight import check_outputs, need_model, out_paths, set_aside

        for dest in MODEL_DESTS:  # every command: a model that is not there fails now
            value = getattr(args, dest, None)
            for name in value if isinstance(value, list | tuple) else [value]:
                need_model(name, named=getattr(args, "named_models", False))  # NAME=PATH where taken
        preflight = getattr(args, "preflight", None)
        if preflight is not None:
            preflight(args)
        replaced = check_outputs(args)
        before = _identities(out_paths(args))
        with set_aside(p for p in replaced if p.is_dir()):  # files are replaced atomically by their writer
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return code
    except KeyboardInterrupt:
        what = _interrupted(args, argv, before) if args is not None else "nothing was done"
        print(f"alignfreeze: interrupted: {what}", file=stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (`| head`) is gone: stop quietly (CPython drops what stays buffered, so
        # the final flush at exit does not fail again)
        return EXIT_PIPE
    except Exception as e:
        if SIGINT_SEEN.is_set() or isinstance(e.__context__, KeyboardInterrupt):
            what = _interrupted(args, argv, before) if args is not None else "nothing was done"
            print(f"alignfreeze: interrupted: {what}", file=stderr, flush=True)
            return EXIT_INTERRUPTED
        msg = error_message(e)
        if msg is None or (args is not None and args.traceback):
            raise
        print(f"alignfreeze: error: {msg}", file=stderr, flush=True)
        return EXIT_INPUT
    finally:
        sys.stderr = stderr
        _restore_environment(environment)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
