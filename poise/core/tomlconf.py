"""Reading TOML files with errors a person can act on: every problem names the file, the
field, what was expected and what was found, e.g.

    gateway.toml: field 'sensor[1].rate_hz': expected one of [10, 50, 100], found 37

One reader for firmware profiles, gateway configs, prescriptions and any other TOML poise
loads. Pure apart from reading the file.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from poise.core.ids import ID_PATTERN, ID_RE, id_problem, is_id

_MISSING: Any = object()


class ConfigError(ValueError):
    """A file that cannot be used; the message names file, field, expected and found."""


def load_toml(path: Path | str, error: type[ConfigError] = ConfigError) -> TomlReader:
    """Parse ``path``; a missing file or bad TOML raises ``error`` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None
    return parse_toml(text, path.name, error)


def parse_toml(text: str, name: str, error: type[ConfigError] = ConfigError) -> TomlReader:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{name}: not valid TOML: {exc}") from None
    return TomlReader(name, doc, "", error)


class TomlReader:
    """Typed access to one table; ``where`` is the dotted path of the table in the file."""

    def __init__(
        self,
        name: str,
        table: dict[str, Any],
        where: str = "",
        error: type[ConfigError] = ConfigError,
    ) -> None:
        self.name, self.table, self.where, self.error = name, table, where, error

    def path_of(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, found: Any) -> ConfigError:
        """The error for ``key`` (raise it): ``found`` is shown with repr unless a str."""
        shown = found if isinstance(found, _Said) else repr(found)
        return self.error(
            f"{self.name}: field '{self.path_of(key)}': expected {expected}, found {shown}"
        )

    def has(self, key: str) -> bool:
        return key in self.table

    def keys(self) -> list[str]:
        return list(self.table)

    def get(
        self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = _MISSING
    ) -> Any:
        if key not in self.table:
            if default is _MISSING:
                raise self.fail(key, expected, _Said("nothing (missing)"))
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.fail(key, expected, value)
        return value

    def text(self, key: str, expected: str = "a text", default: Any = _MISSING) -> Any:
        return self.get(key, str, expected, default)

    def integer(
        self,
        key: str,
        expected: str = "a whole number",
        default: Any = _MISSING,
        lo: int | None = None,
        hi: int | None = None,
    ) -> Any:
        value = self.get(key, int, expected, default)
        if value is not None and value is not default and not _within(value, lo, hi):
            raise self.fail(key, expected, value)
        return value

    def number(
        self,
        key: str,
        expected: str = "a number",
        default: Any = _MISSING,
        lo: float | None = None,
        hi: float | None = None,
    ) -> Any:
        """An int or float (returned as float), finite, within [lo, hi] when given."""
        value = self.get(key, (int, float), expected, default)
        if value is None or value is default:
            return value
        if not math.isfinite(value) or not _within(value, lo, hi):
            raise self.fail(key, expected, value)
        return float(value)

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, bool, "true or false", default)

    def choice(
        self, key: str, options: list[str] | tuple[str, ...], default: Any = _MISSING
    ) -> Any:
        expected = f"one of {list(options)}"
        value = self.get(key, str, expected, default)
        if value is not default and value is not None and value not in options:
            raise self.fail(key, expected, value)
        return value

    def ident(self, key: str, default: Any = _MISSING, check: Any = None) -> Any:
        """A pseudonymous id. ``check(value)`` may refuse more (raising ValueError)."""
        expected = f"a pseudonymous id {ID_PATTERN} (never a name)"
        value = self.get(key, str, expected, default)
        if value is default or value is None:
            return value
        if not is_id(value):
            if isinstance(value, str) and ID_RE.fullmatch(value):
                # the right characters, but it looks like a name or a date
                problem = id_problem(self.path_of(key), value)
                raise self.error(f"{self.name}: field '{self.path_of(key)}': {problem}")
            raise self.fail(key, expected, value)
        if check is not None:
            try:
                check(value)
            except ValueError as exc:
                raise self.error(f"{self.name}: field '{self.path_of(key)}': {exc}") from None
        return value

    def hex(self, key: str, default: Any = _MISSING) -> bytes:
        text = self.get(key, str, "a hex string such as 'ffaa0309 00'", default)
        if text is None or text is default:
            return b"" if text is None else text
        try:
            return bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            raise self.fail(key, "a hex string", text) from None

    def sub(self, key: str, default: Any = _MISSING) -> TomlReader:
        """A sub-table; a missing one is an empty table when ``default`` is given."""
        value = self.get(key, dict, "a table", {} if default is not _MISSING else _MISSING)
        return TomlReader(self.name, value, self.path_of(key), self.error)

    def subs(self, key: str, required: bool = False) -> list[TomlReader]:
        """An array of tables (``[[key]]``); missing is empty unless ``required``."""
        items = self.get(key, list, "an array of tables", _MISSING if required else [])
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}]", "a table", item)
            out.append(TomlReader(self.name, item, f"{self.path_of(key)}[{i}]", self.error))
        return out

    def unknown(self, allowed: set[str] | frozenset[str]) -> None:
        """Refuse keys this table does not know (a typo would otherwise pass silently)."""
        extra = sorted(set(self.table) - set(allowed))
        if extra:
            raise self.fail(
                extra[0], f"one of the fields {sorted(allowed)}", _Said(f"'{extra[0]}'")
            )


class _Said(str):
    """A 'found' text shown as is, not repr'd."""


def _within(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)
