"""Name → spec registries whose lookups suggest the closest name on a typo.

One registration idiom for every registry of the package (heads, backbones, feature kinds, view sets,
datasets, losses): a module-level call `register_<thing>(Spec(name=..., ...))` right after the code the
spec points to. Specs are frozen dataclasses that carry their own `name` (and a one-line `description`
where users choose among them), so the command line can list the choices from the registry.

Example:
    >>> KINDS = Registry("feature kind")
    >>> KINDS.register(FeatureKind(name="gmp", ...))
    >>> KINDS.get("gpm")      # UnknownNameError: unknown feature kind 'gpm'. Did you mean 'gmp'? ...
"""
from __future__ import annotations

import difflib
from typing import Dict, Generic, Iterator, List, TypeVar

from features.core.errors import IAAError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """" Did you mean 'x'?" for the closest of `choices`, or "" when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


class UnknownNameError(IAAError, KeyError):
    """Raised for a name that is not registered; its message lists the choices."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps the names users type (backbones, datasets, feature kinds, heads, ...) to specs.

    Args:
        what: what the registry holds, for messages ("head", "backbone").
    """

    def __init__(self, what: str):
        self.what = what
        self._items: Dict[str, T] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, spec: T) -> T:
        """Adds `spec` under `spec.name`; a name registered twice is a programming error."""
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.what} spec needs a non-empty `name`; received {spec!r}")
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = spec
        return spec

    def alias(self, old: str, name: str) -> None:
        """Makes `old` (a name users typed before a rename) find the spec registered as `name`; aliases are
        accepted everywhere a name is, and listed in `help()`, not in `names()`."""
        if name not in self._items:
            raise ValueError(f"{self.what} alias {old!r} points to {name!r}, which is not registered")
        if old in self._items or old in self._aliases:
            raise ValueError(f"{self.what} {old!r} is registered twice")
        self._aliases[old] = name

    def get(self, name: str) -> T:
        """The spec registered as `name` (or aliased to it); unknown names raise `UnknownNameError` with a
        suggestion."""
        name = self._aliases.get(name, name)
        if name in self._items:
            return self._items[name]
        raise UnknownNameError(
            f"unknown {self.what} {name!r}.{did_you_mean(name, [*self._items, *self._aliases])} "
            f"Choices: {', '.join(sorted(self._items))}."
        )

    def names(self) -> List[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def help(self) -> str:
        """'a, b, c': the choices for a command-line help text (an alias as 'old (= new)')."""
        return ", ".join(self.names() + [f"{old} (= {new})" for old, new in sorted(self._aliases.items())])

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[n] for n in self.names())

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._aliases

    def __len__(self) -> int:
        return len(self._items)
