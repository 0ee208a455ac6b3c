"""From notifications to wire frames: decoder -> clock model -> framer, per sensor.

The same path serves real BLE sensors and virtual ones, so a simulation exercises exactly
the code that handles a patient's data. Pure: arrival times are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.clock import ClockParams, HostClock
from collector.decode import Decoder
from collector.profiles import Profile
from poise.core.wire import Frame


@dataclass(frozen=True)
class FramerParams:
    frame_s: float = 0.1  # one MQTT message per ~100 ms of samples


class SensorPipeline:
    """``feed(notification, arrival_ns)`` returns the frames completed by it; ``flush()`` the
    partial frame at the end of a session."""

    def __init__(
        self,
        profile: Profile,
        sensor_id: str,
        rate_hz: float,
        framer: FramerParams | None = None,
        clock: ClockParams | None = None,
    ) -> None:
        self.profile = profile
        self.sensor_id = sensor_id
        self.decoder = Decoder(profile)
        self.clock = HostClock(clock or ClockParams(nominal_rate_hz=rate_hz))
        self.frame_len = max(1, round((framer or FramerParams()).frame_s * rate_hz))
        self._values: list[tuple[float, ...]] = []
        self._times: list[int] = []
        self._seq = 0  # index of the next frame's first sample
        self.frames_out = 0
        self.last_values: tuple[float, ...] | None = None
        self._next_free_ns: int | None = None

    @property
    def samples_out(self) -> int:
        return self._seq

    def feed(self, notification: bytes, arrival_ns: int) -> list[Frame]:
        samples = self.decoder.feed(notification)
        if not samples:
            return []
        times = self.clock.stamp(len(samples), arrival_ns)
        self._values.extend(s.values for s in samples)
        self._times.extend(times.tolist())
        self.last_values = samples[-1].values
        frames = []
        while len(self._values) >= self.frame_len:
            frames.append(self._take(self.frame_len))
        return frames

    def flush(self) -> list[Frame]:
        return [self._take(len(self._values))] if self._values else []

    def _take(self, n: int) -> Frame:
        values, self._values = self._values[:n], self._values[n:]
        times, self._times = self._times[:n], self._times[n:]
        period = round((times[-1] - times[0]) / (n - 1)) if n > 1 else round(self.clock.period_ns)
        period = max(1, period)
        # Samples are keyed by timestamp in storage: frames must never overlap in time.
        t0 = times[0] if self._next_free_ns is None else max(times[0], self._next_free_ns)
        self._next_free_ns = t0 + (n - 1) * period + 1
        frame = Frame(
            sensor_id=self.sensor_id,
            first_sample_seq=self._seq,
            t0_ns=t0,
            period_ns=period,
            channels=self.profile.channels,
            data=np.asarray(values, dtype=np.float32),
        )
        self._seq += n
        self.frames_out += 1
        return frame
