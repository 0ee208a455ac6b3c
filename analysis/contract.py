"""The analysis contract: what the worker (and ``poise analyze``, ``poise rescore``) drive.

Every metric is either a pure function of arrays, or a *live score*: a parameter object
whose parameters (a frozen dataclass, ``params``) are kept apart from its state, fed in
chunks. The protocol is the same for every live score:

- ``update(chunk) -> list[Record]``: feed the next samples, get the results they completed;
- ``finish() -> list[Record]``: the end of the trial or session, flush what is pending;
- ``get_state() -> dict`` / ``set_state(state)``: the whole state as plain, JSON-able data
  (see ``pack``/``unpack``), so a worker can checkpoint it and another process can resume it
  (as VQF's ``getState``/``setState`` do). Feeding a stream in any chunking, with the state
  handed over between chunks or through ``get_state``/``set_state``, gives the same records
  as one batch call: the tests check this for every score in the registry.

A chunk maps each *role* the score needs ("trunk", "proximal", "distal", "segment", "hr")
to an ``ImuChunk``. When a score has several roles, the worker hands them over on a common
time base (same timestamps, samples aligned); a score never aligns streams itself.

Results are ``Record``s: one measurement name (shared ARCHITECTURE "Derived data"; the
field tables live in ``poise.core.derived``), a time, fields whose names carry their units
(``rms_ap_m_s2``, ``angle_deg``, ``duration_s``), the ``algorithm_version`` and the quality
flags that apply. A new live score is one class and one row in ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
FieldValue = float | int | str | bool | None


@dataclass(frozen=True)
class ImuChunk:
    """Consecutive samples of one sensor: time in s, acc in m/s², gyr in rad/s, mag in µT,
    sensor frame. ``gyr``/``mag`` are None when the device has no such channel."""

    time_s: Array  # (n,)
    acc: Array  # (n, 3)
    gyr: Array | None = None  # (n, 3)
    mag: Array | None = None  # (n, 3)

    @property
    def n_samples(self) -> int:
        return int(self.time_s.shape[0])

    def slice(self, lo: int, hi: int) -> ImuChunk:
        return ImuChunk(
            self.time_s[lo:hi],
            self.acc[lo:hi],
            None if self.gyr is None else self.gyr[lo:hi],
            None if self.mag is None else self.mag[lo:hi],
        )


Chunk = Mapping[str, ImuChunk]


@dataclass(frozen=True)
class Record:
    """One result: a point of ``measurement`` at ``t_s`` (s since the Unix epoch, or since
    the recording's start offline)."""

    measurement: str
    t_s: float
    fields: dict[str, FieldValue]
    algorithm_version: str
    flags: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)  # e.g. {"joint": "knee"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "t_s": self.t_s,
            **self.fields,
            **self.tags,
            "algorithm_version": self.algorithm_version,
            "flags": list(self.flags),
        }


@runtime_checkable
class LiveScore(Protocol):
    """The streaming protocol every live metric follows (see the module docstring)."""

    roles: ClassVar[tuple[str, ...]]
    params: Any

    def update(self, chunk: Chunk) -> list[Record]: ...

    def finish(self) -> list[Record]: ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ScoreSpec:
    """A row of the registry: how the worker builds a score and what it feeds it.

    ``factory(params_overrides)`` builds a fresh score; ``roles`` are the segments it needs
    (the worker maps the patient's sensor placement onto them); ``measurement`` is where
    its records go; ``applies_to`` says for which exercises/tests it runs (prefixes of
    exercise ids such as ``"rom/"``; empty: always, e.g. intensity)."""

    name: str
    factory: Callable[[Mapping[str, Any]], LiveScore]
    roles: tuple[str, ...]
    measurement: str
    applies_to: tuple[str, ...] = ()
    needs_gyr: bool = True


REGISTRY: dict[str, ScoreSpec] = {}


def register(spec: ScoreSpec) -> ScoreSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"live score {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


# --- state as plain data ---


def pack(value: Any) -> Any:
    """A JSON-able copy of ``value``: numpy arrays become ``{"__nd__": [...], "dtype",
    "shape"}``, numpy scalars plain numbers, tuples lists, non-finite floats strings."""
    if isinstance(value, np.ndarray):
        return {
            "__nd__": value.ravel().tolist(),
            "dtype": str(value.dtype),
            "shape": list(value.shape),
        }
    if isinstance(value, np.generic):
        return pack(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {str(k): pack(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pack(v) for v in value]
    return value


def unpack(value: Any) -> Any:
    """The inverse of ``pack`` (tuples come back as lists)."""
    if isinstance(value, dict):
        if "__nd__" in value:
            return np.asarray(value["__nd__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__float__" in value:
            return float(value["__float__"])
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    return value
