"""A small typed InfluxQL query class for Grafana panels (the SDK has no InfluxDB query type).

``Select`` knows the derived-data tables of ``poise.core.derived``: a query that names a
measurement, field or tag the worker does not write fails when the dashboards are generated,
not in a clinic's Grafana. It renders raw InfluxQL with Grafana's macros (``$timeFilter``,
``$__interval``) and template variables (``/^$patient$/``); ``Target`` is the panel target
Grafana's InfluxDB data source stores for a raw InfluxQL query.

Only what InfluxDB 1.x, 2.x (v1 API) and 3.x all answer is used: SELECT with aggregates,
subqueries, GROUP BY time and tags, SHOW TAG VALUES. No INTEGRAL, SLIMIT, SELECT INTO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from poise.core.derived import MEASUREMENTS
from poise.core.influx import DERIVED_RP

DATASOURCE_UID = "poise-influxdb"
DATASOURCE = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

Aggregate = Literal["mean", "median", "max", "min", "last", "first", "count", "sum", "spread"]
ResultFormat = Literal["time_series", "table"]
_NUMERIC_ONLY = {"mean", "median", "sum", "spread"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_ +()./-]*$")  # a column's label: words, no quotes


def _quote(ident: str) -> str:
    if not _IDENT.match(ident):
        raise ValueError(f"not a plain identifier: {ident!r}")
    return f'"{ident}"'


@dataclass(frozen=True)
class _Column:
    name: str
    fn: Aggregate | None
    alias: str
    plus: tuple[str, int] | None = None  # (other field, +1 or -1): fn(name) ± fn(other)

    def render(self) -> str:
        expr = self._one(self.name)
        if self.plus:
            expr += f" {'+' if self.plus[1] > 0 else '-'} {self._one(self.plus[0])}"
        if not _ALIAS.match(self.alias):
            raise ValueError(f"alias {self.alias!r}: letters, digits, spaces and +-()./ only")
        return f'{expr} AS "{self.alias}"'

    def _one(self, name: str) -> str:
        return f"{self.fn}({_quote(name)})" if self.fn else _quote(name)


@dataclass
class Select:
    """``SELECT columns FROM "derived"."measurement" WHERE $timeFilter AND ... GROUP BY ...``.

    ``Select.over(inner)`` selects from a subquery; its fields are the inner aliases and its
    tags the inner GROUP BY tags.
    """

    measurement: str
    rp: str = DERIVED_RP
    _inner: Select | None = None
    _columns: list[_Column] = field(default_factory=list)
    _where: list[str] = field(default_factory=list)
    _time_filter: bool = True
    _group_time: str | None = None
    _fill: str | None = None
    _group_tags: list[str] = field(default_factory=list)
    _desc: bool = False
    _limit: int | None = None

    def __post_init__(self) -> None:
        if self._inner is None and self.measurement not in MEASUREMENTS:
            raise ValueError(f"unknown measurement {self.measurement!r} (see poise.core.derived)")

    @classmethod
    def over(cls, inner: Select) -> Select:
        return cls(measurement=inner.measurement, rp=inner.rp, _inner=inner, _time_filter=False)

    # --- what the query may name -------------------------------------------------------
    def _fields(self) -> dict[str, str]:
        """Field name -> kind."""
        if self._inner is not None:
            kinds = self._inner._fields()
            return {c.alias: _result_kind(c, kinds) for c in self._inner._columns}
        return {f.name: f.kind for f in MEASUREMENTS[self.measurement].fields}

    def _tags(self) -> tuple[str, ...]:
        if self._inner is not None:
            return tuple(self._inner._group_tags)
        return MEASUREMENTS[self.measurement].all_tags

    def _check_tag(self, tag: str) -> None:
        if tag not in self._tags():
            raise ValueError(f"{self.measurement} has no tag {tag!r} here")

    # --- building ----------------------------------------------------------------------
    def field(self, name: str, fn: Aggregate | None = None, alias: str | None = None) -> Self:
        kinds = self._fields()
        if name not in kinds:
            raise ValueError(f"{self.measurement} has no field {name!r} here")
        if fn in _NUMERIC_ONLY and kinds[name] not in ("float", "int"):
            raise ValueError(f"{fn}() of {kinds[name]} field {name!r}")
        self._columns.append(_Column(name, fn, alias or name))
        return self

    def field_sum(self, name: str, other: str, sign: int, fn: Aggregate, alias: str) -> Self:
        """``fn(name) + fn(other)`` (sign 1) or ``fn(name) - fn(other)`` (sign -1)."""
        kinds = self._fields()
        for n in (name, other):
            if kinds.get(n) not in ("float", "int"):
                raise ValueError(f"{self.measurement} has no numeric field {n!r} here")
        self._columns.append(_Column(name, fn, alias, (other, sign)))
        return self

    def where_var(self, tag: str, variable: str) -> Self:
        """The tag matches the template variable (one value, several, or All)."""
        self._check_tag(tag)
        self._where.append(f"{_quote(tag)} =~ /^${variable}$/")
        return self

    def where_tag(self, tag: str, value: str) -> Self:
        self._check_tag(tag)
        if not _IDENT.match(value.replace("-", "_").replace("/", "_")):
            raise ValueError(f"tag value {value!r} is not a plain id")
        self._where.append(f"{_quote(tag)} = '{value}'")
        return self

    def where_field(
        self, name: str, op: Literal["=", "<", ">", "<=", ">="], value: float | bool | str
    ) -> Self:
        kinds = self._fields()
        if name not in kinds:
            raise ValueError(f"{self.measurement} has no field {name!r} here")
        if isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, str):
            if not _IDENT.match(value):
                raise ValueError(f"field value {value!r} is not a plain word")
            literal = f"'{value}'"
        else:
            literal = repr(value)
        self._where.append(f"{_quote(name)} {op} {literal}")
        return self

    def no_time_filter(self) -> Self:
        self._time_filter = False
        return self

    def group_by_time(self, interval: str = "$__interval", fill: str | None = "none") -> Self:
        self._group_time = interval
        self._fill = fill
        return self

    def group_by(self, *tags: str) -> Self:
        for tag in tags:
            self._check_tag(tag)
            self._group_tags.append(tag)
        return self

    def newest_first(self) -> Self:
        self._desc = True
        return self

    def limit(self, n: int) -> Self:
        self._limit = n
        return self

    # --- output ------------------------------------------------------------------------
    def render(self) -> str:
        if not self._columns:
            raise ValueError(f"query on {self.measurement} selects no field")
        source = (
            f"({self._inner.render()})"
            if self._inner is not None
            else f"{_quote(self.rp)}.{_quote(self.measurement)}"
        )
        q = f"SELECT {', '.join(c.render() for c in self._columns)} FROM {source}"
        where = (["$timeFilter"] if self._time_filter else []) + self._where
        if where:
            q += " WHERE " + " AND ".join(where)
        groups = ([f"time({self._group_time})"] if self._group_time else []) + [
            _quote(t) for t in self._group_tags
        ]
        if groups:
            q += " GROUP BY " + ", ".join(groups)
            if self._group_time and self._fill:
                q += f" fill({self._fill})"
        if self._desc:
            q += " ORDER BY time DESC"
        if self._limit is not None:
            q += f" LIMIT {self._limit}"
        return q

    def target(
        self, ref_id: str = "A", fmt: ResultFormat = "time_series", alias: str | None = None
    ) -> TargetBuilder:
        return TargetBuilder(Target(ref_id, self.render(), fmt, alias))


def _result_kind(column: _Column, kinds: dict[str, str]) -> str:
    if column.fn == "count":
        return "int"
    if column.fn in _NUMERIC_ONLY:
        return "float"
    return kinds[column.name]


def tag_values(measurement: str, tag: str, where_var: tuple[str, str] | None = None) -> str:
    """The variable query listing a tag's values (``where_var`` = (tag, variable) narrows it)."""
    if measurement not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {measurement!r}")
    tags = MEASUREMENTS[measurement].all_tags
    for t in (tag, *(where_var[:1] if where_var else ())):
        if t not in tags:
            raise ValueError(f"{measurement} has no tag {t!r}")
    q = f"SHOW TAG VALUES FROM {_quote(DERIVED_RP)}.{_quote(measurement)} WITH KEY = {_quote(tag)}"
    if where_var:
        q += f" WHERE {_quote(where_var[0])} =~ /^${where_var[1]}$/"
    return q


@dataclass
class Target(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB data source saves it."""

    ref_id: str
    query: str
    result_format: ResultFormat
    alias: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class TargetBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, target: Target) -> None:
        self._target = target

    def build(self) -> Target:
        return self._target
