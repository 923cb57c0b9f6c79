"""Exceptions raised for bad user input (forcing files, namelists, parameter tables).

Every message names the offending file, the 1-based line and the field, so that a user
can go straight to the problem, for example::

    forcing.dat, line 57, field 'pressure': value 'abc' is not a number
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["InputError", "ConfigError"]


class InputError(ValueError):
    """Invalid content in an input file.

    Attributes
    ----------
    path : str
        The file the problem was found in (as given by the caller).
    line : int or None
        1-based line number, or None when the problem is not tied to one line.
    field : str or None
        Name of the field / key / column concerned.
    value : object or None
        The offending value as read (usually the literal text), if there is one.
    reason : str
        What is wrong, phrased to follow ``value '...'`` when a value is given
        (e.g. ``"is not a number"``), otherwise a full clause.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | os.PathLike[str] | None,
        line: int | None = None,
        field: str | None = None,
        value: Any = None,
    ) -> None:
        self.path = str(path) if path is not None else "<unknown file>"
        self.line = line
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path
        where += f", line {self.line}" if self.line is not None else ", line -"
        where += f", field '{self.field}'" if self.field is not None else ", field -"
        if self.value is not None:
            return f"{where}: value '{self.value}' {self.reason}"
        return f"{where}: {self.reason}"

    def __reduce__(self):  # keep the keyword-only constructor picklable
        return (
            _rebuild,
            (type(self), self.reason, self.path, self.line, self.field, self.value),
        )


class ConfigError(InputError):
    """Invalid configuration (missing table file, impossible option combination, ...)."""


def _rebuild(cls, reason, path, line, field, value):
    return cls(reason, path=path, line=line, field=field, value=value)
