"""The decoder of a profile: the codec of its framing (``collector.codecs``), gateway side.

``Decoder(profile, strict=..., settings=...)`` returns that codec; feed it each notification
in order and the device's answers to configuration writes. Kept as the one name the
pipeline, the ``poise decode`` command and the benchmarks use.
"""

from __future__ import annotations

from collector.codecs import Codec, DecodeError, DecoderStats, Sample, codec_for
from collector.codecs.base import MAX_BUFFER_BYTES

__all__ = ["MAX_BUFFER_BYTES", "Codec", "DecodeError", "Decoder", "DecoderStats", "Sample"]

Decoder = codec_for
