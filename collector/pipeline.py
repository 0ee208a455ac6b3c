"""From notifications to wire frames: decoder -> clock model -> framer, per sensor.

The same path serves real BLE sensors and virtual ones, so a simulation exercises exactly
the code that handles a patient's data. Pure: arrival times are arguments.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import numpy as np

from collector.clock import ClockParams, DeviceClock, HostClock
from collector.decode import Decoder
from collector.profiles import Profile
from poise.core.wire import Frame


@dataclass(frozen=True)
class FramerParams:
    frame_s: float = 0.1  # one MQTT message per ~100 ms of samples
    reorder_s: float = 0.1  # device-timestamped samples wait this long for late ones


@dataclass
class PipelineStats:
    duplicates: int = 0  # device-timestamped samples seen twice (dropped)
    late: int = 0  # arrived after their frame was sent (dropped, counted lost)
    partial: int = 0  # samples without every channel of this pipeline (dropped)


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
        settings: dict[str, str] | None = None,
        channels: tuple[str, ...] | None = None,
    ) -> None:
        self.profile = profile
        self.sensor_id = sensor_id
        self.decoder = Decoder(profile, settings=settings)
        self.clock = HostClock(clock or ClockParams(nominal_rate_hz=rate_hz))
        self.device_clock = DeviceClock() if profile.device_timestamps else None
        fp = framer or FramerParams()
        self.frame_len = max(1, round(fp.frame_s * rate_hz))
        self.reorder_len = round(fp.reorder_s * rate_hz)
        self.period_ns = 1e9 / rate_hz
        # a pipeline may carry a subset of the profile's channels (e.g. a Verity Sense's acc)
        self.channels = channels or profile.channels
        self._slots_by_shape: dict[tuple[str, ...], list[int] | None] = {}
        self.stats = PipelineStats()
        self._dev: list[tuple[int, tuple[float, ...]]] = []  # device time, values; sorted
        self._last_dev_ns: int | None = None  # device time of the newest sample framed
        self.device_lost = 0
        self._gap_at: int | None = None  # buffer index of a gap being refined (host clock)
        self._lost_indexed = 0  # lost samples already skipped in the sample index
        self._values: list[tuple[float, ...]] = []
        self._times: list[int] = []
        self._seq = 0  # index of the next frame's first sample
        self.frames_out = 0
        self.last_values: tuple[float, ...] | None = None
        self._next_free_ns: int | None = None

    @property
    def samples_out(self) -> int:
        return self._seq

    @property
    def lost_samples(self) -> int:
        return self.device_lost if self.device_clock is not None else self.clock.lost_samples

    def _slots(self, shape: tuple[str, ...]) -> list[int] | None:
        """Where this pipeline's channels sit in samples of ``shape``; None: not all there."""
        slots = self._slots_by_shape.get(shape, ())
        if slots == ():
            have = {c: i for i, c in enumerate(shape)}
            slots = [have[c] for c in self.channels] if set(self.channels) <= set(have) else None
            self._slots_by_shape[shape] = slots
        return slots  # type: ignore[return-value]

    def answer(self, data: bytes) -> None:
        """The device's answer to a configuration write (e.g. Polar's FACTOR)."""
        self.decoder.answer(data)

    def feed(self, notification: bytes, arrival_ns: int) -> list[Frame]:
        decoded = self.decoder.feed(notification)
        samples = []
        last_shape: tuple[str, ...] | None = None
        slots: list[int] | None = None
        for s in decoded:
            if s.channels is not last_shape:  # codecs share one tuple per record kind
                last_shape, slots = s.channels, self._slots(s.channels)
            if slots is None:  # a sample of another stream of this device (Verity's gyro)
                self.stats.partial += 1
                continue
            samples.append((s, tuple(s.values[i] for i in slots)))
        if not samples:
            return []
        if self.device_clock is not None:
            return self._feed_device_timed(samples, arrival_ns)
        lost_before = self.clock.lost_samples
        refining_before = self.clock.refining_gap
        times = self.clock.stamp(len(samples), arrival_ns)
        if self.clock.lost_samples > lost_before and not refining_before and self._gap_at is None:
            self._gap_at = len(self._values)  # everything buffered so far precedes the gap
        self._values.extend(v for _s, v in samples)
        self._times.extend(times.tolist())
        self.last_values = samples[-1][1]
        frames: list[Frame] = []
        if self._gap_at is not None:
            if self.clock.refining_gap:
                return frames  # hold on until the gap's size is final
            # frames end at the gap, and the sample index skips what was lost
            pre, self._gap_at = self._gap_at, None
            while pre > 0:
                n = min(pre, self.frame_len)
                frames.append(self._take(n))
                pre -= n
            self._seq += self.clock.lost_samples - self._lost_indexed
            self._lost_indexed = self.clock.lost_samples
        while len(self._values) >= self.frame_len:
            frames.append(self._take(self.frame_len))
        return frames

    def _feed_device_timed(
        self, samples: list[tuple[Any, tuple[float, ...]]], arrival_ns: int
    ) -> list[Frame]:
        """Device timestamps order the samples: duplicates are dropped, samples that arrive
        out of order wait (reorder_s) for their place, gaps in device time are lost samples."""
        assert self.device_clock is not None
        newest = max(s.device_time_ns for s, _v in samples)
        self.device_clock.observe(newest, arrival_ns)
        known = {t for t, _ in self._dev}
        for s, vals in samples:
            t = s.device_time_ns
            if t in known or (self._last_dev_ns is not None and t == self._last_dev_ns):
                self.stats.duplicates += 1
                continue
            if self._last_dev_ns is not None and t < self._last_dev_ns:
                self.stats.late += 1
                continue
            bisect.insort(self._dev, (t, vals))
            known.add(t)
        self.last_values = samples[-1][1]
        frames = []
        while len(self._dev) >= self.frame_len + self.reorder_len:
            frames.append(self._take_device(self.frame_len))
        return frames

    def _take_device(self, n: int) -> Frame:
        assert self.device_clock is not None
        # a frame is evenly spaced: it ends before a gap in device time
        prev = self._last_dev_ns
        for i, (t, _v) in enumerate(self._dev[:n]):
            if prev is not None and t - prev > 1.5 * self.period_ns:
                if i == 0:  # the gap is before this frame: count it, skip its indices
                    lost = round((t - prev) / self.period_ns) - 1
                    self.device_lost += lost
                    self._seq += lost
                else:
                    n = i
                    break
            prev = t
        chunk, self._dev = self._dev[:n], self._dev[n:]
        self._last_dev_ns = chunk[-1][0]
        self._values = [v for _t, v in chunk]
        self._times = [self.device_clock.to_host(t) for t, _v in chunk]
        return self._take(len(chunk))

    def flush(self) -> list[Frame]:
        if self.device_clock is not None:
            return [self._take_device(len(self._dev))] if self._dev else []
        frames: list[Frame] = []
        self.clock.settle()
        if self._gap_at is not None:
            pre, self._gap_at = self._gap_at, None
            if pre:
                frames.append(self._take(pre))
            self._seq += self.clock.lost_samples - self._lost_indexed
            self._lost_indexed = self.clock.lost_samples
        if self._values:
            frames.append(self._take(len(self._values)))
        return frames

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
            channels=self.channels,
            data=np.asarray(values, dtype=np.float32),
        )
        self._seq += n
        self.frames_out += 1
        return frame
