"""Plain dataclass configs: ``to_dict``/``from_dict`` and an argparse CLI generated from them.

Fields are str/int/float/bool/tuple with a one-line doc in ``metadata["help"]``, so a run
can be repeated from its saved config alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def option(default, help: str):
    """A dataclass field with a default and its one-line doc (shown by the generated CLI)."""
    return dataclasses.field(default=default, metadata={"help": help})


def to_dict(cfg) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v)
            for f in dataclasses.fields(cfg)}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict; unknown keys are an error naming them."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; expected some of {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        if _is_tuple(hints[k]) and isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def _is_tuple(tp) -> bool:
    return typing.get_origin(tp) is tuple


def _base_type(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def add_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = _base_type(hints[f.name])
        opt = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        doc = f.metadata.get("help", "")
        helptext = f"{doc} (default: {default})" if default is not None else doc
        if tp is bool:
            parser.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=default, help=helptext)
        elif _is_tuple(tp):
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
            parser.add_argument(opt, dest=f.name, nargs="+", type=inner, default=default, help=helptext)
        else:
            parser.add_argument(opt, dest=f.name, type=tp if tp in (int, float, str) else str,
                                default=default, required=default is None and f.default is dataclasses.MISSING,
                                help=helptext)


def from_args(cls: type[T], args: argparse.Namespace, **overrides) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in vars(args).items() if k in names}
    data.update(overrides)
    return from_dict(cls, data)
