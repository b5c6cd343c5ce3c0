"""Hypothesis strategies for feature messages: garbage, valid ones, and valid ones broken.

Shared by the fuzz tests and the long fuzz run (``python -m benchmarks.fuzz_messages``).
"""

from __future__ import annotations

import json
import struct
import time

import numpy as np
from hypothesis import strategies as st

from edgelens.wire.features import MAX_MESSAGE_BYTES, MAX_SEQ, FeatureMessage, WireDtype, encode
from edgelens.wire.names import features_topic, status_topic

DEVICES = ("cam-1", "cam-2", "shelf.3")


@st.composite
def valid_payloads(draw: st.DrawFn, model_ids: tuple[str, ...], dim: int) -> bytes:
    # A seeded vector: Hypothesis drawing 1280 floats one by one would be slow and no wiser.
    seed, scale = draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([0.0, 1e-6, 1.0, 1e4]))
    vector = (np.random.default_rng(seed).standard_normal(dim) * scale).astype(np.float32)
    message = FeatureMessage(
        device_id=draw(st.sampled_from(DEVICES)),
        seq=draw(st.integers(0, MAX_SEQ - 1)),
        captured_at=time.time() + draw(st.floats(-1e6, 1e3)),
        model_id=draw(st.sampled_from(model_ids) | st.text(min_size=1, max_size=80)),
        embedding=vector,
        focus_embedding=vector[::-1].copy() if draw(st.booleans()) else None,  # version 2
    )
    return encode(message, draw(st.sampled_from(list(WireDtype))))


@st.composite
def broken(draw: st.DrawFn, payload: bytes) -> bytes:
    """One or more corruptions of a valid message."""
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "header", "nan", "splice"]))
        if kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif kind == "header" and len(data) >= 24:
            field = draw(st.sampled_from([(2, "B"), (3, "B"), (4, "<H"), (6, "<d")]))
            offset, fmt = field
            size = struct.calcsize(fmt)
            data[offset : offset + size] = draw(st.binary(min_size=size, max_size=size))
        elif kind == "nan" and len(data) > 8:
            at = draw(st.integers(0, len(data) - 2))
            data[at : at + 2] = draw(st.sampled_from([b"\x00\x7e", b"\x00\x7c", b"\xff\xff"]))
        elif kind == "splice" and data:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=300))
    return bytes(data)


def payloads(model_ids: tuple[str, ...], dim: int) -> st.SearchStrategy[bytes]:
    valid = valid_payloads(model_ids, dim)
    return st.one_of(
        st.binary(max_size=3000),
        valid,
        valid.flatmap(broken),
        st.integers(MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 20_000).map(  # oversized
            lambda size: b"EL\x01\x01" + bytes(size)
        ),
    )


def topics() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([features_topic(d) for d in DEVICES]),
        st.sampled_from([status_topic(d) for d in DEVICES]),
        st.text(max_size=60),
    )


# What a device's retained status carries (edgelens.device.publisher, DeviceLoop.health).
STATUS_KEYS = (
    "state", "device_id", "model_id", "provider", "wire_dtype", "ts", "fps", "featurize_ms",
    "preprocess_ms", "decode_ms", "publish_ms", "focus_ms", "captured", "dropped",
    "published", "suppressed", "views_sent", "unsent",
)  # fmt: skip
_HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 2**63, time.time() + 1e9, "online", "offline"]),
    st.text(max_size=40),
    st.text(min_size=1000, max_size=5000),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


@st.composite
def status_payloads(draw: st.DrawFn) -> bytes:
    """A device's status as a hostile or broken device sends it: the real keys with any
    values (NaN, 1e308, huge strings, wrong types), unknown keys, other JSON, not JSON."""
    kind = draw(st.sampled_from(["object", "object", "object", "json", "bytes", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(_HOSTILE_VALUES)).encode()
    status: dict[str, object] = {"state": "online", "ts": time.time(), "fps": 14.5}
    for key in draw(st.lists(st.sampled_from(STATUS_KEYS), max_size=8)):
        status[key] = draw(_HOSTILE_VALUES)
    if draw(st.booleans()):
        status[draw(st.text(max_size=20))] = draw(_HOSTILE_VALUES)
    data = json.dumps(status).encode()  # NaN and Infinity as JSON's extensions
    return data * 200 if kind == "huge" else data


@st.composite
def view_jpegs(draw: st.DrawFn, bases: tuple[bytes, ...]) -> bytes:
    """A focus view as a hostile device sends it: a real view (``bases``) broken by bit
    flips, truncation, splices, a frame header claiming a huge or odd frame, another
    image format's bytes, or garbage."""
    kind = draw(st.sampled_from(["real", "broken", "claims", "other", "garbage"]))
    data = bytearray(draw(st.sampled_from(bases)))
    if kind == "garbage":
        return draw(st.binary(max_size=2000))
    if kind == "other":
        magic = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]))
        return magic + bytes(data[2:])
    if kind == "claims":
        sof = data.find(b"\xff\xc0")
        if sof >= 0:
            height, width = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
            data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
            data[sof + 9] = draw(st.sampled_from([0, 1, 3, 4, 255]))
        return bytes(data)
    if kind == "broken":
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(data) - 1))
            if draw(st.booleans()):
                data[at] ^= 1 << draw(st.integers(0, 7))
            else:
                data[at:at] = draw(st.binary(max_size=50))
        if draw(st.booleans()):
            del data[draw(st.integers(2, len(data))) :]
    return bytes(data)
