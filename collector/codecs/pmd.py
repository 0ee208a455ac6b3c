"""``polar-pmd`` framing: Polar Measurement Data (polar-ble-sdk, BlePMDClient; the "Polar
Measurement Data Specification for 3rd Party").

A data frame is: measurement type (u8), the device's timestamp of its LAST sample (u64, ns
since 2000-01-01), frame type (u8; bit 7 = delta compressed), payload. Raw frames hold
signed integers of 1, 2 or 3 bytes per channel (frame type 0, 1, 2), in the profile's
``raw_unit``. Compressed frames hold a reference sample (int16 per channel) and blocks
``[bits u8][count u8][count x channels deltas of 'bits' bits, LSB first]``; raw x FACTOR is
in the profile's ``compressed_unit``.

FACTOR differs per measurement type (acc and gyro are scaled differently) and the device
says it in its answer to the start write on the control point (an indication):
``F0 02 <type> <status> <more> [settings]``, where the settings hold FACTOR as setting type
5, count 1, float32. Until that answer (or a ``--set <group>_factor=...``) a compressed
frame cannot be scaled, and is refused rather than decoded into wrong numbers.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from collector.codecs.base import Codec, DecodeError, Rows, Sample
from collector.profiles import DEVICE_VALUE, POLAR_EPOCH_NS, Profile

RESPONSE = 0xF0
OP_START = 0x02
SETTING_FACTOR = 5
SETTING_SIZES = {0: 2, 1: 2, 2: 2, 3: 4, 4: 1, 5: 4}  # PMD setting type -> bytes per value
STATUS = {0: "success", 1: "invalid op code", 2: "invalid measurement type", 3: "not supported",
          4: "invalid length", 5: "invalid parameter", 6: "already in state",
          7: "invalid resolution", 8: "invalid sample rate", 9: "invalid range",
          10: "invalid MTU", 11: "invalid number of channels", 12: "invalid state",
          13: "device in charger"}  # fmt: skip
CHANNELS = 3
RAW_WIDTH = {0: 1, 1: 2, 2: 3}  # raw frame type -> bytes per value


def _sign_extend(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def parse_answer(data: bytes) -> tuple[int, int, dict[int, list[int]]]:
    """(measurement type, status, settings) of a control-point answer to a start write."""
    if len(data) < 4 or data[0] != RESPONSE:
        raise DecodeError("not a PMD control-point answer", 0)
    op, mtype, status = data[1], data[2], data[3]
    if op != OP_START:
        raise DecodeError(f"answer to op code {op}, not to a start", 1)
    settings: dict[int, list[int]] = {}
    pos = 5
    while status == 0 and pos + 2 <= len(data):
        stype, count = data[pos], data[pos + 1]
        size = SETTING_SIZES.get(stype)
        if size is None:
            raise DecodeError(f"unknown setting type {stype}", pos)
        pos += 2
        if pos + count * size > len(data):
            raise DecodeError("setting values cut short", pos)
        settings[stype] = [
            int.from_bytes(data[pos + i * size : pos + (i + 1) * size], "little")
            for i in range(count)
        ]
        pos += count * size
    return mtype, status, settings


def start_answer(mtype: int, factor: float | None) -> bytes:
    """The answer a device gives to a successful start of ``mtype`` (for profile data)."""
    out = bytes([RESPONSE, OP_START, mtype, 0, 0])
    if factor is not None:
        out += bytes([SETTING_FACTOR, 1]) + struct.pack("<f", factor)
    return out


def _raw(payload: bytes, width: int) -> list[tuple[int, ...]]:
    step = CHANNELS * width
    if len(payload) % step:
        raise DecodeError(
            f"raw payload of {len(payload)} bytes is not whole {step}-byte samples", len(payload)
        )
    return [
        tuple(
            _sign_extend(
                int.from_bytes(payload[pos + c * width : pos + (c + 1) * width], "little"),
                8 * width,
            )
            for c in range(CHANNELS)
        )
        for pos in range(0, len(payload), step)
    ]


def _delta(payload: bytes, ref_width: int = 2) -> list[tuple[int, ...]]:
    need = CHANNELS * ref_width
    if len(payload) < need:
        raise DecodeError("compressed frame cut short in its reference sample", len(payload))
    ref = [
        _sign_extend(
            int.from_bytes(payload[c * ref_width : (c + 1) * ref_width], "little"), 8 * ref_width
        )
        for c in range(CHANNELS)
    ]
    out = [tuple(ref)]
    pos = need
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise DecodeError("delta block header cut short", pos)
        bits, count = payload[pos], payload[pos + 1]
        if not 1 <= bits <= 32:
            raise DecodeError(f"delta width {bits} bits", pos)
        pos += 2
        nbytes = (bits * CHANNELS * count + 7) // 8
        if pos + nbytes > len(payload):
            raise DecodeError(f"delta block of {count} samples x {bits} bits cut short", pos)
        stream = int.from_bytes(payload[pos : pos + nbytes], "little")
        mask = (1 << bits) - 1
        bit = 0
        for _ in range(count):
            prev = out[-1]
            deltas = []
            for _c in range(CHANNELS):
                deltas.append(_sign_extend((stream >> bit) & mask, bits))
                bit += bits
            out.append(tuple(p + d for p, d in zip(prev, deltas, strict=True)))
        pos += nbytes
    return out


def _delta_encode(raw: np.ndarray) -> bytes:
    """The inverse of ``_delta``: a reference sample, then one block of all the deltas."""
    ref = raw[0]
    out = b"".join(int(v).to_bytes(2, "little", signed=True) for v in ref)
    if len(raw) == 1:
        return out
    deltas = np.diff(raw, axis=0)
    peak = int(np.max(np.abs(deltas)))
    bits = max(2, peak.bit_length() + 1)
    mask = (1 << bits) - 1
    stream, bit = 0, 0
    for d in deltas.reshape(-1):
        stream |= (int(d) & mask) << bit
        bit += bits
    return out + bytes([bits, len(deltas)]) + stream.to_bytes((bit + 7) // 8, "little")


class PmdCodec(Codec):
    def __init__(
        self, profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(profile, strict=strict, settings=settings)
        assert profile.pmd is not None
        self.spec = profile.pmd
        self._last_ns: dict[int, int] = {}  # last sample time per measurement type
        self._channels = {
            g: tuple(f"{g}_{a}" for a in "xyz") for g in dict.fromkeys(self.spec.types.values())
        }
        # FACTOR per group: from --set, replaced by what the device answers
        self.factors: dict[str, float] = {}
        for group, name in self.spec.factor_settings.items():
            if self.settings[name] != DEVICE_VALUE:
                self.factors[group] = float(self.settings[name])

    # --- the device's answers ---
    def answer(self, data: bytes) -> None:
        super().answer(data)
        try:
            mtype, status, settings = parse_answer(bytes(data))
        except DecodeError as exc:
            self._fail(exc.reason, exc.offset)
            return
        group = self.spec.types.get(mtype)
        if status != 0:
            self.stats.refused += 1
            self.last_refusal = (
                f"the device refused to start measurement type {mtype} ({group or '?'}): "
                f"{STATUS.get(status, f'status {status}')}"
            )
            return
        if group is not None and settings.get(SETTING_FACTOR):
            bits = settings[SETTING_FACTOR][0]
            factor = struct.unpack("<f", bits.to_bytes(4, "little"))[0]
            if math.isfinite(factor) and factor > 0:
                self.factors[group] = factor
            else:
                self._fail(f"FACTOR {factor} for {group} is not a positive number", 7)

    # --- data frames ---
    def feed(self, data: bytes) -> list[Sample]:
        spec = self.spec
        if len(data) < 10:
            self._fail("PMD frame shorter than its 10-byte header", len(data))
            return []
        mtype = data[0]
        if mtype not in spec.types:
            self._fail(f"measurement type {mtype} not in this profile", 0)
            return []
        group = spec.types[mtype]
        (t_last,) = struct.unpack_from("<Q", data, 1)
        frame_type = data[9]
        payload = data[10:]
        compressed = bool(frame_type & 0x80)
        width = RAW_WIDTH.get(frame_type & 0x7F)
        units = spec.compressed_to_si if compressed else spec.raw_to_si
        factor = self.factors.get(group) if compressed else 1.0
        if group not in units:
            kind = "compressed" if compressed else "raw"
            self._fail(f"no unit for {kind} {group} frames in this profile", 9)
            return []
        if factor is None:
            self._fail(
                f"compressed {group} frame before the device said its FACTOR (its answer to "
                f"the start write; --set {group}_factor=... for captured frames)",
                9,
            )
            return []
        if not compressed and width is None:
            self._fail(f"unknown raw frame type {frame_type}", 9)
            return []
        try:
            raw = _delta(payload) if compressed else _raw(payload, width or 2)
        except DecodeError as exc:
            self._fail(exc.reason, exc.offset + 10)
            return []
        to_si = factor * units[group]
        n = len(raw)
        if n == 0:
            return []
        t_last_ns = POLAR_EPOCH_NS + t_last
        prev = self._last_ns.get(mtype)
        nominal = 1e9 / self.profile.default_rate_hz
        period = nominal
        if prev is not None and t_last_ns > prev:
            # spread the samples back to the previous frame's last one, as Polar's SDK does,
            # unless a frame went missing or came out of order in between
            measured = (t_last_ns - prev) / n
            if 0.8 * nominal <= measured <= 1.25 * nominal:
                period = measured
        if prev is None or t_last_ns > prev:
            self._last_ns[mtype] = t_last_ns
        chans = self._channels[group]
        self.stats.records += 1
        self.stats.samples += n
        # integer arithmetic: ns since 1970 exceed float64's exact integers
        return [
            Sample(
                chans,
                tuple(v * to_si for v in sample),
                {},
                t_last_ns - round((n - 1 - i) * period),
            )
            for i, sample in enumerate(raw)
        ]

    # --- the device's side ---
    def encode(
        self, rows: Rows, first_index: int, rate_hz: float, mtu: int
    ) -> list[tuple[bytes, int]]:
        """One frame per measurement type per batch that fits the MTU, in the frame types the
        device sends (``device_frames``). Samples are counted on the first type's frames."""
        spec = self.spec
        room = mtu - 3
        out: list[tuple[bytes, int]] = []
        first_group = next(iter(self._channels))
        for mtype, group in spec.types.items():
            if f"{group}_x" not in self.profile.channels:
                continue
            cols = [self.profile.channels.index(c) for c in self._channels[group]]
            frame_type = spec.device_frames.get(group, 0x01)
            compressed = bool(frame_type & 0x80)
            if compressed:
                factor = self.factors.get(group)
                if factor is None:
                    raise ValueError(f"a compressed {group} frame needs the device's FACTOR")
                to_raw = 1.0 / (factor * spec.compressed_to_si[group])
                # worst case: 18-bit deltas (a difference of int16 values, signed)
                per = max(1, 1 + (room - 18) * 8 // (18 * CHANNELS))
                lim = 32767
            else:
                width = RAW_WIDTH[frame_type & 0x7F]
                to_raw = 1.0 / spec.raw_to_si[group]
                per = max(1, (room - 10) // (width * CHANNELS))
                lim = (1 << (8 * width - 1)) - 1
            values = np.clip(np.round(rows[:, cols] * to_raw), -lim - 1, lim).astype(np.int64)
            for pos in range(0, len(values), per):
                chunk = values[pos : pos + per]
                last = first_index + pos + len(chunk) - 1
                t_last = round(last * 1e9 / rate_hz) + 10**9  # device clock, ns since 2000
                if compressed:
                    body = _delta_encode(chunk)
                else:
                    body = b"".join(
                        int(v).to_bytes(width, "little", signed=True) for v in chunk.reshape(-1)
                    )
                head = bytes([mtype]) + t_last.to_bytes(8, "little") + bytes([frame_type])
                out.append((head + body, len(chunk) if group == first_group else 0))
        return out
