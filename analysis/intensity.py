"""Session intensity from one accelerometer: ENMO and MAD per 5 s epoch, zones, active time,
acceleration load, the peak 1-minute ENMO; heart-rate zones and TRIMP from a strap.

- ENMO, the Euclidean norm minus one (van Hees et al. 2013, PLoS ONE 8:e61691):
  max(|a|/g - 1, 0) per sample, in mg (1 mg = g/1000), averaged over the epoch.
- MAD, the mean amplitude deviation (Vähä-Ypyä et al. 2015, Clin Physiol Funct Imaging
  35:64): mean |r - mean(r)| of the resultant r = |a| over the epoch, in mg.
- Zones from the epoch's ENMO with the cut-points of Hildebrand et al. 2014 (Med Sci Sports
  Exerc 46:1816) and 2017 (Scand J Med Sci Sports 27:1814): hip/trunk sedentary < 47.4 mg
  <= light < 69.1 mg <= moderate < 258.7 mg <= vigorous; wrist 44.8 / 100.6 / 428.8 mg.
  The thigh has no published ENMO cut-points of its own: it uses the hip/trunk ones (see
  docs/metrics.md, limits).
- Load: the sum over epochs of minutes x zone weight (light 1, moderate 2, vigorous 3).
- Heart rate: time in %HRR zones (ACSM: light 30-39 %, moderate 40-59 %, vigorous 60-89 %,
  near-maximal 90 % and above) and Edwards' TRIMP (Edwards 1993: minutes in the 50-60, 60-70,
  70-80, 80-90 and 90-100 % HRmax zones weighted 1 to 5).

Epochs are fixed on the time axis: epoch k covers [k * epoch_s, (k + 1) * epoch_s) of the
sample times (s since the Unix epoch live, since the recording's zero offline), so a stream
cut into any chunks, or replayed after a restart, gives the same epochs. Pure: arrays in,
results out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from analysis.contract import Chunk, Record, pack, unpack
from poise.core.channels import G

Array = npt.NDArray[np.float64]
ALGORITHM_VERSION = "intensity-1.0"
ZONES = ("sedentary", "light", "moderate", "vigorous")
ZONE_WEIGHTS = {"sedentary": 0, "light": 1, "moderate": 2, "vigorous": 3}
# placement -> ENMO cut-points (mg): lower bounds of light, moderate, vigorous
ENMO_CUTPOINTS_MG: dict[str, tuple[float, float, float]] = {
    "lumbar": (47.4, 69.1, 258.7),  # Hildebrand 2014/2017, ActiGraph hip
    "thigh": (47.4, 69.1, 258.7),  # no thigh-specific values published: hip values
    "wrist": (44.8, 100.6, 428.8),  # Hildebrand 2014/2017, non-dominant wrist
}
# MAD (mg) at 3 and 6 MET (Vähä-Ypyä et al. 2015, hip): reported beside the ENMO zones
MAD_MODERATE_MG = 91.0
MAD_VIGOROUS_MG = 414.0
HRR_ZONES = ("below", "light", "moderate", "vigorous", "near_max")
HRR_LOWER_PCT = (30.0, 40.0, 60.0, 90.0)  # lower bounds of light .. near_max (ACSM)
EDWARDS_LOWER_PCT = (50.0, 60.0, 70.0, 80.0, 90.0)  # %HRmax, weights 1..5


@dataclass(frozen=True)
class IntensityParams:
    placement: str = "lumbar"  # lumbar, thigh or wrist: which cut-points apply
    epoch_s: float = 5.0
    peak_window_s: float = 60.0  # the peak ENMO is the highest mean over this many seconds

    def __post_init__(self) -> None:
        if self.placement not in ENMO_CUTPOINTS_MG:
            raise ValueError(
                f"placement must be one of {sorted(ENMO_CUTPOINTS_MG)}, found {self.placement!r}"
            )
        if not self.epoch_s > 0:
            raise ValueError(f"epoch_s must be above 0, found {self.epoch_s!r}")

    @property
    def cutpoints_mg(self) -> tuple[float, float, float]:
        return ENMO_CUTPOINTS_MG[self.placement]


def enmo_mg(acc: Array) -> Array:
    """Per-sample ENMO (mg) of acceleration in m/s² (any frame: only the norm counts)."""
    r = np.linalg.norm(acc, axis=1) / G
    out: Array = np.maximum(r - 1.0, 0.0) * 1000.0
    return out


def zone_index(enmo: float, params: IntensityParams) -> int:
    """0 sedentary, 1 light, 2 moderate, 3 vigorous."""
    return int(sum(enmo >= c for c in params.cutpoints_mg))


@dataclass(frozen=True)
class Epoch:
    index: int  # epoch k covers [k * epoch_s, (k + 1) * epoch_s)
    t_last_s: float  # time of its last sample
    n_samples: int
    duration_s: float  # samples x sample period, at most epoch_s
    enmo_mg: float
    mad_mg: float
    zone: str

    @property
    def zone_index(self) -> int:
        return ZONES.index(self.zone)


def _epoch(
    index: int, t_last_s: float, r_mg: Array, period_s: float, params: IntensityParams
) -> Epoch:
    enmo = float(np.mean(np.maximum(r_mg - 1000.0, 0.0)))
    mad = float(np.mean(np.abs(r_mg - r_mg.mean())))
    return Epoch(
        index=index,
        t_last_s=t_last_s,
        n_samples=len(r_mg),
        duration_s=min(params.epoch_s, len(r_mg) * period_s),
        enmo_mg=enmo,
        mad_mg=mad,
        zone=ZONES[zone_index(enmo, params)],
    )


class LiveIntensity:
    """Epochs of one accelerometer, fed in chunks (role ``segment``); the live score of the
    ``intensity_live`` measurement. ``period_s`` is the sample period (from the frames or the
    file), used for each epoch's duration."""

    roles: ClassVar[tuple[str, ...]] = ("segment",)

    def __init__(self, period_s: float, params: IntensityParams | None = None) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be above 0, found {period_s!r}")
        self.params = params or IntensityParams()
        self.period_s = period_s
        self._index: int | None = None  # the open epoch
        self._r: list[float] = []  # its resultants, mg
        self._t_last = 0.0
        self.epochs: list[Epoch] = []  # every epoch closed so far (for the session summary)

    def feed(self, time_s: Array, acc: Array) -> list[Epoch]:
        """Feed samples; returns the epochs they closed."""
        out: list[Epoch] = []
        if len(time_s) == 0:
            return out
        r = np.linalg.norm(acc, axis=1) / G * 1000.0
        idx = np.floor(np.asarray(time_s, dtype=np.float64) / self.params.epoch_s).astype(np.int64)
        # split the chunk where the epoch index changes
        cuts = np.flatnonzero(np.diff(idx)) + 1
        for lo, hi in zip(
            np.concatenate([[0], cuts]), np.concatenate([cuts, [len(idx)]]), strict=True
        ):
            k = int(idx[lo])
            if self._index is not None and k != self._index:
                if k < self._index:  # a sample from a closed epoch: late, skip it
                    continue
                out.append(self._close())
            self._index = k
            self._r.extend(r[lo:hi].tolist())
            self._t_last = float(time_s[hi - 1])
        return out

    def _close(self) -> Epoch:
        assert self._index is not None
        ep = _epoch(self._index, self._t_last, np.asarray(self._r), self.period_s, self.params)
        self.epochs.append(ep)
        self._index, self._r = None, []
        return ep

    def flush(self) -> list[Epoch]:
        return [self._close()] if self._index is not None and self._r else []

    # --- the analysis contract (analysis.contract.LiveScore) ---
    def update(self, chunk: Chunk) -> list[Record]:
        c = chunk["segment"]
        return [self.record(e) for e in self.feed(c.time_s, c.acc)]

    def finish(self) -> list[Record]:
        return [self.record(e) for e in self.flush()]

    def record(self, e: Epoch) -> Record:
        return Record(
            "intensity_live",
            e.t_last_s,
            {
                "enmo_mg": e.enmo_mg,
                "mad_mg": e.mad_mg,
                "zone": e.zone,
                "zone_index": e.zone_index,
            },
            ALGORITHM_VERSION,
            tags={"placement": self.params.placement},
        )

    def get_state(self) -> dict[str, Any]:
        return {
            "period_s": self.period_s,
            "index": self._index,
            "r": pack(np.asarray(self._r)),
            "t_last": self._t_last,
            "epochs": [asdict(e) for e in self.epochs],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        s = unpack(state)
        self.period_s = float(s["period_s"])
        self._index = None if s["index"] is None else int(s["index"])
        self._r = [float(x) for x in np.asarray(s["r"]).ravel()]
        self._t_last = float(s["t_last"])
        self.epochs = [Epoch(**e) for e in s["epochs"]]


def epochs(time_s: Array, acc: Array, params: IntensityParams | None = None) -> list[Epoch]:
    """Batch form: every epoch of a recording (the same as streaming it in any chunks)."""
    if len(time_s) < 2:
        raise ValueError(f"{len(time_s)} samples are too few for intensity epochs")
    period = float(np.median(np.diff(time_s)))
    if not period > 0:
        raise ValueError("sample times do not increase")
    live = LiveIntensity(period, params)
    live.feed(time_s, acc)
    live.flush()
    return live.epochs


# --- heart rate ---


@dataclass(frozen=True)
class HeartRateParams:
    rest_bpm: float
    max_bpm: float
    max_gap_s: float = 5.0  # a sample counts for the time to the next one, at most this

    def __post_init__(self) -> None:
        if not 20 <= self.rest_bpm < self.max_bpm <= 250:
            raise ValueError(
                f"heart rates must satisfy 20 <= rest < max <= 250 bpm, found rest "
                f"{self.rest_bpm!r}, max {self.max_bpm!r}"
            )


def _sample_durations(time_s: Array, max_gap_s: float) -> Array:
    if len(time_s) == 1:
        return np.array([min(1.0, max_gap_s)])
    dt = np.diff(time_s)
    last = float(np.median(dt))
    out: Array = np.minimum(np.concatenate([dt, [last]]), max_gap_s)
    return out


def heart_rate_summary(time_s: Array, hr_bpm: Array, params: HeartRateParams) -> dict[str, Any]:
    """Time in %HRR zones (ACSM) and Edwards' TRIMP. Each sample counts for the time to the
    next (at most ``max_gap_s``; the last one for the median interval)."""
    ok = np.isfinite(hr_bpm) & (hr_bpm > 0)
    t, hr = np.asarray(time_s)[ok], np.asarray(hr_bpm)[ok]
    if not len(t):
        return {"hr_mean_bpm": None, "hrr_zones_s": dict.fromkeys(HRR_ZONES, 0.0), "trimp": None}
    dur = _sample_durations(t, params.max_gap_s)
    hrr_pct = 100.0 * (hr - params.rest_bpm) / (params.max_bpm - params.rest_bpm)
    z = np.searchsorted(np.asarray(HRR_LOWER_PCT), hrr_pct, side="right")
    zones = {name: float(dur[z == i].sum()) for i, name in enumerate(HRR_ZONES)}
    pct_max = 100.0 * hr / params.max_bpm
    w = np.searchsorted(np.asarray(EDWARDS_LOWER_PCT), pct_max, side="right")  # 0..5
    trimp = float(np.sum(dur / 60.0 * w))
    return {
        "hr_mean_bpm": float(np.sum(hr * dur) / dur.sum()),
        "hr_peak_bpm": float(hr.max()),
        "hrr_zones_s": zones,
        "trimp": trimp,
    }


# --- the session ---


def summarize(
    eps: list[Epoch],
    params: IntensityParams | None = None,
    heart_rate: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Duration, active time, time per zone, mean ENMO and MAD (sample-weighted), the peak
    mean ENMO over ``peak_window_s`` of consecutive epochs (None when the session is shorter),
    and the acceleration load. ``heart_rate``: the result of ``heart_rate_summary``."""
    p = params or IntensityParams()
    zones_s = dict.fromkeys(ZONES, 0.0)
    for e in eps:
        zones_s[e.zone] += e.duration_s
    n = sum(e.n_samples for e in eps)
    per_window = max(1, round(p.peak_window_s / p.epoch_s))
    peak: float | None = None
    by_index = {e.index: e for e in eps}
    for e in eps:
        window = [by_index.get(e.index + i) for i in range(per_window)]
        if all(w is not None for w in window):
            m = sum(w.enmo_mg * w.n_samples for w in window if w) / sum(
                w.n_samples for w in window if w
            )
            peak = m if peak is None else max(peak, m)
    out: dict[str, Any] = {
        "duration_s": sum(zones_s.values()),
        "active_s": zones_s["light"] + zones_s["moderate"] + zones_s["vigorous"],
        "zones_s": zones_s,
        "enmo_mean_mg": sum(e.enmo_mg * e.n_samples for e in eps) / n if n else None,
        "mad_mean_mg": sum(e.mad_mg * e.n_samples for e in eps) / n if n else None,
        "enmo_peak_1min_mg": peak,
        "load": sum(zones_s[z] / 60.0 * ZONE_WEIGHTS[z] for z in ZONES),
        "epochs": len(eps),
        "placement": p.placement,
        "epoch_s": p.epoch_s,
        "algorithm_version": ALGORITHM_VERSION,
    }
    if heart_rate is not None:
        out["heart_rate"] = dict(heart_rate)
        out["trimp"] = heart_rate.get("trimp")
    return out


def analyze(
    time_s: Array,
    acc: Array,
    params: IntensityParams | None = None,
    hr_bpm: Array | None = None,
    hr_params: HeartRateParams | None = None,
) -> dict[str, Any]:
    """The whole offline analysis of one recording (``poise analyze intensity``)."""
    p = params or IntensityParams()
    hr = None
    if hr_bpm is not None and hr_params is not None:
        hr = heart_rate_summary(time_s, hr_bpm, hr_params)
    return summarize(epochs(time_s, acc, p), p, hr)
