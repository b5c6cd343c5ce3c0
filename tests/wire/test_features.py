"""The wire format: round trips per dtype, sizes, and one clear error for every malformation."""

import dataclasses
import struct
import zlib

import numpy as np
import pytest

from edgelens.errors import WireFormatError
from edgelens.wire.features import (
    MAX_JPEG_BYTES,
    MAX_MESSAGE_BYTES,
    FeatureMessage,
    WireDtype,
    decode,
    encode,
    restamp,
    with_view_jpeg,
)

_HEADER_SIZE = 24  # magic, version, dtype, dim, seq, capture time


def _message(dim: int = 1280, seed: int = 0) -> FeatureMessage:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return FeatureMessage(
        device_id="shelf-cam.01",
        seq=2**40 + 7,
        captured_at=1_790_000_000.123456,
        model_id="efficientnet-lite0-fp32-0123456789ab",
        embedding=vector / np.linalg.norm(vector),
    )


@pytest.mark.parametrize(
    ("dtype", "max_error"),
    [
        (WireDtype.FLOAT32, 0.0),
        (WireDtype.FLOAT16, 1e-3),
        (WireDtype.INT8, 5e-3),
        (WireDtype.INT8_DEFLATE, 5e-3),
    ],
)
def test_round_trip_keeps_every_field(dtype, max_error):
    original = _message()
    decoded = decode(encode(original, dtype))
    assert (decoded.device_id, decoded.seq, decoded.captured_at, decoded.model_id) == (
        original.device_id,
        original.seq,
        original.captured_at,
        original.model_id,
    )
    assert decoded.embedding.dtype == np.float32 and decoded.dim == 1280
    assert np.abs(decoded.embedding - original.embedding).max() <= max_error
    assert float(decoded.embedding @ original.embedding) > 0.999


@pytest.mark.parametrize("dtype", list(WireDtype))
def test_a_focus_vector_travels_beside_the_frame_vector(dtype):
    frame, focus = _message(seed=1), _message(seed=2)
    original = FeatureMessage(
        frame.device_id,
        frame.seq,
        frame.captured_at,
        frame.model_id,
        frame.embedding,
        focus_embedding=focus.embedding,
    )
    payload = encode(original, dtype)
    decoded = decode(payload)
    assert payload[2] == 2 and decode(encode(frame, dtype)).focus_embedding is None
    assert len(decoded.views) == 2
    for sent, received in zip(original.views, decoded.views, strict=True):
        assert float(sent @ received) > 0.999
    assert float(decoded.embedding @ decoded.focus_embedding) < 0.5  # not the same vector twice
    assert restamp(payload, seq=1, captured_at=2.0)[_HEADER_SIZE:] == payload[_HEADER_SIZE:]
    assert decode(restamp(payload, seq=1, captured_at=2.0)).focus_embedding is not None


def test_a_focus_vector_of_another_shape_is_refused():
    frame = _message(dim=8)
    with pytest.raises(WireFormatError, match="focus embedding"):
        FeatureMessage("cam", 1, 1.0, "m", frame.embedding, focus_embedding=np.ones(9, np.float32))


def test_messages_are_compact_against_text():
    message = _message()
    text = ",".join(f"{v:.8f}" for v in message.embedding).encode()
    sizes = {d: len(encode(message, d)) for d in WireDtype}
    assert sizes[WireDtype.FLOAT16] < 1280 * 2 + 100
    assert sizes[WireDtype.INT8] < 1280 + 100
    assert sizes[WireDtype.FLOAT16] * 4 < len(text)


def _pooled(dim: int = 1280) -> FeatureMessage:
    """A message whose vector looks pooled: never negative, mostly small."""
    vector = np.random.default_rng(5).normal(size=dim).astype(np.float32) ** 4
    return dataclasses.replace(_message(dim), embedding=vector / np.linalg.norm(vector))


def test_deflated_int8_decodes_exactly_as_int8_in_about_half_the_bytes():
    message = _pooled()
    deflated, plain = encode(message, WireDtype.INT8_DEFLATE), encode(message, WireDtype.INT8)
    assert np.array_equal(decode(deflated).embedding, decode(plain).embedding)
    assert len(deflated) < 0.6 * len(plain), (len(deflated), len(plain))


def _deflated(stream: bytes, dim: int = 8) -> bytes:
    """A one-vector message of ``dim`` whose deflated vector is ``stream``."""
    message = _pooled(dim)
    strings = 2 + len(message.model_id.encode()) + len(message.device_id.encode())
    fixed = struct.calcsize("<2sBBHQd")  # magic, version, dtype, dim, seq, capture time
    head = encode(message, WireDtype.INT8_DEFLATE)[: fixed + strings + 4]  # to the scale
    return head + struct.pack("<H", len(stream)) + stream


def _deflate(codes: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(codes) + deflate.flush()


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (_deflate(bytes(1_000_000)), "exactly 8 codes"),  # a bomb: 1 MB of zeros in 1 KB
        (_deflate(bytes(4)), "exactly 8 codes"),
        (_deflate(bytes(8)) + b"tail", "exactly 8 codes"),
        (_deflate(bytes(8))[:-1], "exactly 8 codes"),
        (b"\xff" * 12, "corrupt"),
    ],
)
def test_a_hostile_deflated_vector_is_refused_without_inflating_it(stream, reason):
    assert decode(_deflated(_deflate(bytes(8)))).dim == 8, "the splice itself is well formed"
    with pytest.raises(WireFormatError, match=reason):
        decode(_deflated(stream))
    too_long = _deflated(stream)[:-1]  # the length says more than the message carries
    with pytest.raises(WireFormatError, match="message carries"):
        decode(too_long)
    huge = _deflated(bytes(9000))  # longer than any dimension's codes can deflate to
    with pytest.raises(WireFormatError, match="at most"):
        decode(huge)


def test_default_dtype_is_float16():
    payload = encode(_message())
    assert payload[3] == WireDtype.FLOAT16


GOOD = encode(_message(dim=8), WireDtype.FLOAT32)
JPEG = b"\xff\xd8 a grey view \xff\xd9"
VERIFY = encode(dataclasses.replace(_message(dim=8), view_jpeg=JPEG), WireDtype.FLOAT32)
_VERIFY_VECTORS_END = len(VERIFY) - 4 - len(JPEG)  # the view's u32 length comes next


@pytest.mark.parametrize("focus", [False, True])
def test_a_focus_view_travels_after_the_vectors(focus):
    frame, box = _message(seed=1), _message(seed=2)
    original = dataclasses.replace(
        frame, focus_embedding=box.embedding if focus else None, view_jpeg=JPEG
    )
    payload = encode(original)
    decoded = decode(payload)
    assert payload[2] == 3 and decoded.view_jpeg == JPEG
    assert len(decoded.views) == (2 if focus else 1)
    assert float(decoded.views[-1] @ original.views[-1]) > 0.999
    assert decode(restamp(payload, seq=5, captured_at=3.0)).view_jpeg == JPEG


def test_a_focus_view_too_large_is_refused():
    too_large = b"\xff" * (MAX_JPEG_BYTES + 1)
    with pytest.raises(WireFormatError, match="focus view"):
        dataclasses.replace(_message(dim=8), view_jpeg=too_large)
    payload = encode(dataclasses.replace(_message(dim=8), view_jpeg=b"\xff" * MAX_JPEG_BYTES))
    assert len(payload) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "too short"),
        (GOOD[:10], "too short"),
        (b"XX" + GOOD[2:], "bad magic"),
        (GOOD[:2] + b"\x09" + GOOD[3:], "version 9"),
        (GOOD[:3] + b"\x07" + GOOD[4:], "dtype code 7"),
        (GOOD[:4] + struct.pack("<H", 0) + GOOD[6:], "dimension 0"),
        (GOOD[:4] + struct.pack("<H", 9) + GOOD[6:], "needs 36 bytes"),
        (GOOD[:-1], "needs 32 bytes"),
        (GOOD + b"\x00", "1 bytes after the message's end"),
        (GOOD[:2] + b"\x02" + GOOD[3:], "needs 32 bytes"),  # says two vectors, has one
        (GOOD[:24], "truncated"),
        (
            VERIFY[: _VERIFY_VECTORS_END - 33] + b"\x03" + VERIFY[_VERIFY_VECTORS_END - 32 :],
            "3 vectors",
        ),
        (VERIFY[:_VERIFY_VECTORS_END], "before the focus view's length"),
        (VERIFY[:-1], "focus view needs"),
        (VERIFY[:_VERIFY_VECTORS_END] + struct.pack("<I", 0), "focus view of 0 bytes"),
        (VERIFY + b"\x00", "1 bytes after the message's end"),
    ],
)
def test_malformed_messages_raise_one_error_type(payload, reason):
    with pytest.raises(WireFormatError, match=reason):
        decode(payload)


def test_nan_vectors_are_refused_both_ways():
    message = _message(dim=8)
    bad = np.array(message.embedding)
    bad[3] = np.nan
    with pytest.raises(WireFormatError, match="NaN"):
        encode(FeatureMessage("cam", 1, 0.0, "m", bad), WireDtype.FLOAT32)
    payload = bytearray(encode(message, WireDtype.FLOAT32))
    payload[-4:] = struct.pack("<f", float("inf"))
    with pytest.raises(WireFormatError, match="NaN or Inf"):
        decode(bytes(payload))


def test_bad_int8_scale_and_bad_ids_are_refused():
    payload = bytearray(encode(_message(dim=8), WireDtype.INT8))
    scale_at = len(payload) - 8 - 4
    payload[scale_at : scale_at + 4] = struct.pack("<f", -1.0)
    with pytest.raises(WireFormatError, match="scale"):
        decode(bytes(payload))
    with pytest.raises(WireFormatError, match="device id"):
        FeatureMessage("edgelens/+/x", 1, 0.0, "m", np.ones(4, np.float32))
    with pytest.raises(WireFormatError, match="model id"):
        FeatureMessage("cam", 1, 0.0, "", np.ones(4, np.float32))


def test_restamp_changes_only_the_sequence_number_and_capture_time():
    message = FeatureMessage("cam-1", 3, 1000.0, "model-x", np.ones(8, dtype=np.float32))
    for dtype in WireDtype:
        fresh = decode(restamp(encode(message, dtype), seq=99, captured_at=2000.5))
        assert (fresh.seq, fresh.captured_at) == (99, 2000.5)
        assert (fresh.device_id, fresh.model_id) == ("cam-1", "model-x")
        np.testing.assert_allclose(fresh.embedding, message.embedding, atol=1e-2)


def test_a_view_added_to_an_encoded_message_decodes_as_if_sent_with_it():
    vector = np.random.default_rng(5).normal(size=64).astype(np.float32)
    message = FeatureMessage("cam-1", 7, 123.5, "model-a", vector / np.linalg.norm(vector))
    jpeg = b"\xff\xd8 a view \xff\xd9"
    added = with_view_jpeg(encode(message), jpeg)
    assert added == encode(dataclasses.replace(message, view_jpeg=jpeg))
    with pytest.raises(WireFormatError, match="takes a view"):
        with_view_jpeg(added, jpeg)


@pytest.mark.parametrize("captured_at", [1e308, float("inf"), float("nan"), -1.0, 2.0**33])
def test_a_capture_time_that_is_no_time_is_refused(captured_at):
    """Such a time would make the record's latency overflow to infinity (invalid JSON)."""
    with pytest.raises(WireFormatError, match="is not a time"):
        dataclasses.replace(_message(dim=8), captured_at=captured_at)
    payload = encode(_message(dim=8))
    with pytest.raises(WireFormatError, match="is not a time"):
        decode(restamp(payload, seq=1, captured_at=captured_at))


def test_a_device_clock_at_1970_still_answers():
    assert (
        decode(encode(dataclasses.replace(_message(dim=8), captured_at=12.5))).captured_at == 12.5
    )


def test_a_sequence_number_beyond_what_json_keeps_exact_is_refused():
    with pytest.raises(WireFormatError, match="sequence number out of range"):
        dataclasses.replace(_message(dim=8), seq=2**53)
    payload = encode(dataclasses.replace(_message(dim=8), seq=2**53 - 1))
    with pytest.raises(WireFormatError, match="sequence number out of range"):
        decode(restamp(payload, seq=2**64 - 1, captured_at=1.0))
