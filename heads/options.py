"""Options a head family declares for its heads or its loss, declared once on the spec that uses them.

A head (`HeadSpec.options`: an architecture choice such as the triplet head's `embedding_dim`) or a loss
(`LossSpec.options`: the rank margin, the triplet margins) lists `HeadOption`s. From those declarations
alone come the `iaa train` / `iaa ablate` flags and their help (`--rank-margin`), the validation of the
values, and what reaches the builder or the loss: a run carries every option in one mapping
(`TrainConfig.options`), and each head takes the ones it declares. Options a head does not declare are
accepted and ignored with a note (one set of flags serves an ablation over many heads).
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Tuple

from features.core.errors import UsageError
from features.core.registry import Registry

TYPES = {"float": float, "int": int, "str": str}


@dataclass(frozen=True)
class HeadOption:
    """One option of a head family.

    Attributes:
        name: the key in `TrainConfig.options` and the run config; the flag is `--<name with dashes>`.
        type: "float", "int" or "str".
        help: one line for the flag's help (what it is, and the default when `default` is None).
        default: the value when a run does not give one (None: the family decides, e.g. per dataset).
        choices: the allowed values of a "str" option.
        minimum: the smallest allowed value of a number.
        below: numbers must be smaller than this (an open bound).
    """

    name: str
    type: str
    help: str
    default: Any = None
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    below: Optional[float] = None

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"option type is one of {', '.join(TYPES)}. Received: {self.type!r}")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """The value converted to the option's type and checked.

        Raises:
            UsageError: a value of the wrong type, outside the bounds or not among the choices.
        """
        try:
            parsed = TYPES[self.type](value)
        except (TypeError, ValueError):
            raise UsageError(f"{self.name} takes a {self.type}; received {value!r}") from None
        if self.type == "int" and parsed != value and not isinstance(value, str):
            raise UsageError(f"{self.name} takes a whole number; received {value!r}")
        if self.choices and parsed not in self.choices:
            raise UsageError(f"{self.name} must be one of {', '.join(self.choices)}; received {value!r}")
        if self.minimum is not None and not parsed >= self.minimum:
            raise UsageError(f"{self.name} must be >= {self.minimum:g}; received {value!r}")
        if self.below is not None and not parsed < self.below:
            raise UsageError(f"{self.name} must be below {self.below:g}; received {value!r}")
        return parsed


OPTIONS: Registry[HeadOption] = Registry("head option")


def declare_options(*options: HeadOption) -> Tuple[HeadOption, ...]:
    """Registers options for a spec's `options` field; one name declared by two families must be identical."""
    for option in options:
        if option.name in OPTIONS:
            if OPTIONS.get(option.name) != option:
                raise ValueError(f"option {option.name!r} is declared twice, differently")
            continue
        OPTIONS.register(option)
    return tuple(options)


def check_options(given: Mapping[str, Any]) -> Mapping[str, Any]:
    """The given options (None values dropped) checked against every declared option; read-only.

    Raises:
        UnknownNameError: a name no head family declares (with "did you mean").
        UsageError: a value its option refuses.
    """
    checked = {name: OPTIONS.get(name).parse(value) for name, value in given.items() if value is not None}
    return types.MappingProxyType(checked)


def options_for(declared: Iterable[HeadOption], given: Mapping[str, Any]) -> Tuple[dict, list]:
    """(values of the `declared` options: given, else their default (None left out); names given but not
    declared, which this head ignores)."""
    declared = tuple(declared)
    names = {o.name for o in declared}
    values = {o.name: given.get(o.name, o.default) for o in declared}
    return {k: v for k, v in values.items() if v is not None}, sorted(set(given) - names)


def add_option_flags(parser, users: Mapping[str, Iterable[str]]) -> None:
    """One flag per declared option, its help naming the heads that use it (`users`: option → heads)."""
    for option in OPTIONS:
        heads = ", ".join(sorted(users.get(option.name, ()))) or "no registered head"
        default = "" if option.default is None else f" (default {option.default})"
        parser.add_argument(option.flag, dest=f"option_{option.name}", type=TYPES[option.type],
                            choices=option.choices or None, metavar=None if option.choices else option.type.upper(),
                            help=f"{heads}: {option.help}{default}")


def given_options(args) -> dict:
    """The options set on the command line (`add_option_flags`), by name."""
    prefix = "option_"
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}
