"""Registry rows of the live scores the worker drives that have no other home: sway (the
sliding-window measures of ``analysis.sway.LiveSway`` behind the contract's protocol) and
session intensity (``analysis.intensity.LiveIntensity``). Joint scores register themselves
in ``analysis.joint``.

Importing this module registers them in ``analysis.contract.REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from analysis import intensity, sway
from analysis.contract import REGISTRY, Chunk, Record, ScoreSpec, pack, register, unpack


@dataclass(frozen=True)
class LiveSwayParams:
    sway: sway.SwayParams = field(default_factory=sway.SwayParams)
    window_s: float = 10.0
    hop_s: float = 1.0
    fs_hz: float | None = None  # None: from the first chunk's timestamps


class LiveSwayScore:
    """``sway.LiveSway`` on the contract: role ``trunk``, records of ``sway_live`` (one per
    window, at the window's last sample), with its buffer as plain state."""

    roles: ClassVar[tuple[str, ...]] = ("trunk",)

    def __init__(self, params: LiveSwayParams | None = None) -> None:
        self.params = params or LiveSwayParams()
        self._live: sway.LiveSway | None = None
        if self.params.fs_hz is not None:
            self._make(self.params.fs_hz)

    def _make(self, fs_hz: float) -> sway.LiveSway:
        p = self.params
        self._live = sway.LiveSway(fs_hz, p.sway, p.window_s, p.hop_s)
        return self._live

    def update(self, chunk: Chunk) -> list[Record]:
        c = chunk["trunk"]
        if c.n_samples == 0:
            return []
        live = self._live
        if live is None:
            if c.n_samples < 2:
                raise ValueError("the first chunk needs two samples to tell the sample rate")
            live = self._make(1.0 / float(np.median(np.diff(c.time_s))))
        gyr = c.gyr if c.gyr is not None else np.zeros_like(c.acc)
        return [
            Record(
                "sway_live",
                t_s,
                {**metrics, "window_s": self.params.window_s},
                sway.ALGORITHM_VERSION,
            )
            for t_s, metrics in live.update(c.time_s, c.acc, gyr)
        ]

    def finish(self) -> list[Record]:
        return []  # a window is scored when it is complete; a partial one is not

    def get_state(self) -> dict[str, Any]:
        live = self._live
        if live is None:
            return {"fs_hz": None}
        state: dict[str, Any] = pack(
            {
                "fs_hz": live.fs_hz,
                "t": live._t,
                "acc": live._acc,
                "seen": live._seen,
                "next_end": live._next_end,
            }
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        s = unpack(state)
        if s["fs_hz"] is None:
            self._live = None
            return
        live = self._make(float(s["fs_hz"]))
        live._t = np.asarray(s["t"], dtype=np.float64)
        live._acc = np.asarray(s["acc"], dtype=np.float64).reshape(-1, 3)
        live._seen = int(s["seen"])
        live._next_end = int(s["next_end"])


def _sway(overrides: Mapping[str, Any]) -> LiveSwayScore:
    o = dict(overrides)
    sp = sway.SwayParams(ap_axis=o.pop("ap_axis", "-z"))
    return LiveSwayScore(LiveSwayParams(sway=sp, **o))


def _intensity(overrides: Mapping[str, Any]) -> intensity.LiveIntensity:
    o = dict(overrides)
    period_s = float(o.pop("period_s", 0.01))
    return intensity.LiveIntensity(period_s, intensity.IntensityParams(**o))


# analysis.sway registers its own row when it is imported; this one stands in only if not
SWAY = REGISTRY.get("sway") or register(
    ScoreSpec(
        "sway",
        _sway,
        LiveSwayScore.roles,
        "sway_live",
        applies_to=("quiet_stance", "steadi_4stage/"),
        needs_gyr=False,
    )
)
INTENSITY = register(
    ScoreSpec(
        "intensity",
        _intensity,
        intensity.LiveIntensity.roles,
        "intensity_live",
        applies_to=(),
        needs_gyr=False,
    )
)
