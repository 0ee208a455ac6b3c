"""Every query a dashboard sends, read from its JSON: variables first (in order, each one
may use those before it), then each panel's targets and the annotations. Used by the tests and
by ``poise dashboards check`` to run them on a real InfluxDB without a Grafana."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboards.interpolate import interpolate, relative_ms

_ALIAS = re.compile(r'AS "([^"]+)"')


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    query: str
    window_ms: int  # the time range the panel queries (dashboard range or the panel's own)
    result_format: str

    @property
    def columns(self) -> list[str]:
        """The aliases of the outermost SELECT: the columns the panel shows."""
        outer = self.query.split(" FROM ", 1)[0]
        return _ALIAS.findall(outer)

    @property
    def group_tags(self) -> list[str]:
        """The tags of the outermost GROUP BY: one series per value combination."""
        tail = self.query.rsplit(")", 1)[-1] if self.query.count("(SELECT") else self.query
        m = re.search(r"GROUP BY (.*?)(?: fill\(.*| ORDER BY.*| LIMIT.*)?$", tail)
        if not m:
            return []
        return re.findall(r'"([^"]+)"', m.group(1))


def dashboard_window_ms(doc: Mapping[str, Any]) -> int:
    return relative_ms(str(doc["time"]["from"]))


def variables(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("templating", {}).get("list", []))


def panel_queries(doc: Mapping[str, Any]) -> Iterator[PanelQuery]:
    window = dashboard_window_ms(doc)
    for panel in doc.get("panels", []):
        own = panel.get("timeFrom")
        for t in panel.get("targets", []):
            yield PanelQuery(
                panel["title"],
                t["refId"],
                t["query"],
                relative_ms(own) if own else window,
                t.get("resultFormat", "time_series"),
            )
    for a in doc.get("annotations", {}).get("list", []):
        target = a.get("target") or {}
        if "query" in target:
            yield PanelQuery(f"annotation {a['name']}", "Anno", target["query"], window, "table")


def resolve_variables(
    doc: Mapping[str, Any],
    run: Callable[[str], list[str]],
    *,
    now_ms: int,
    choose: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Run each variable's query in order, as Grafana does on load. Returns (options per
    variable, the value(s) chosen): ``choose`` picks, else the first option (All for a
    multi-value variable)."""
    options: dict[str, list[str]] = {}
    chosen: dict[str, list[str]] = {}
    window = dashboard_window_ms(doc)
    for v in variables(doc):
        q = interpolate(v["query"], from_ms=now_ms - window, to_ms=now_ms, variables=chosen)
        values = run(q)
        options[v["name"]] = values
        if choose and v["name"] in choose:
            chosen[v["name"]] = list(choose[v["name"]])
        elif v.get("includeAll"):
            chosen[v["name"]] = values
        else:
            chosen[v["name"]] = values[:1]
        if not chosen[v["name"]]:
            chosen[v["name"]] = ["__none__"]  # Grafana sends the empty value; nothing matches
    return options, chosen
