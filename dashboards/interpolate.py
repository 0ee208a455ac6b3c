"""What Grafana does to a raw InfluxQL query before it sends it, so the queries can be run on a
real InfluxDB without a Grafana (tests, ``poise dashboards check``).

Follows Grafana's InfluxDB data source (``public/app/plugins/datasource/influxdb``):

- ``$timeFilter`` becomes ``time >= {from}ms and time <= {to}ms``;
- ``$__interval`` is the time range over the panel's data points, rounded to a "nice"
  interval the way Grafana's ``rangeutil.roundInterval`` rounds it;
- a variable inside a regex (``/^$patient$/``) becomes its value with the regex
  metacharacters escaped, several values (multi or All) become ``(a|b)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# rangeutil.roundInterval: (upper bound ms, interval ms), first match wins
_ROUND_MS: tuple[tuple[float, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
MIN_INTERVAL_MS = 100  # the data source's "min time interval" (provisioning: timeInterval)
_REGEX_META = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def round_interval_ms(raw_ms: float) -> int:
    for bound, interval in _ROUND_MS:
        if raw_ms < bound:
            return interval
    return 31_536_000_000  # a year


def interval_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def panel_interval_ms(
    from_ms: int, to_ms: int, max_data_points: int = 1000, min_interval_ms: int = MIN_INTERVAL_MS
) -> int:
    return max(round_interval_ms((to_ms - from_ms) / max_data_points), min_interval_ms)


def regex_value(values: Sequence[str]) -> str:
    escaped = [_REGEX_META.sub(lambda m: "\\" + m.group(0), v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    query: str,
    *,
    from_ms: int,
    to_ms: int,
    variables: Mapping[str, Sequence[str]],
    max_data_points: int = 1000,
) -> str:
    """The query as Grafana sends it for the time range and the variables' current values."""
    interval_ms = panel_interval_ms(from_ms, to_ms, max_data_points)
    q = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    q = q.replace("$__interval_ms", str(interval_ms)).replace(
        "$__interval", interval_text(interval_ms)
    )

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(f"query uses ${name}, which the dashboard does not define")
        return regex_value(variables[name])

    return _VAR.sub(sub, q)


def relative_ms(text: str) -> int:
    """``now-5m`` or ``30s`` -> milliseconds (5 m, 30 s)."""
    m = re.fullmatch(r"(?:now-)?(\d+)([smhdw])", text)
    if not m:
        raise ValueError(f"not a relative time: {text!r}")
    size = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    return int(m.group(1)) * size[m.group(2)]
