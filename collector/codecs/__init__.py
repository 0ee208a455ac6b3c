"""Codecs as data: one module per framing (``stream``, ``packet``, ``jsonlines``, ``pmd``),
each holding both the decoder (gateway side) and the encoder (device side, used by the
virtual sensors), chosen from ``CODECS`` by the profile's ``framing``. See ``base``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.codecs import jsonlines, packet, pmd, stream
from collector.codecs.base import Codec, DecodeError, DecoderStats, Sample

if TYPE_CHECKING:
    from collector.profiles import Profile

__all__ = ["CODECS", "Codec", "DecodeError", "DecoderStats", "Sample", "codec_for"]

CODECS: dict[str, type[Codec]] = {
    "stream": stream.StreamCodec,
    "packet": packet.PacketCodec,
    "json-lines": jsonlines.JsonLinesCodec,
    "polar-pmd": pmd.PmdCodec,
}


def codec_for(
    profile: Profile, *, strict: bool = False, settings: dict[str, str] | None = None
) -> Codec:
    """The codec of ``profile``'s framing, with its settings (``--set``) checked."""
    return CODECS[profile.framing](profile, strict=strict, settings=settings)
