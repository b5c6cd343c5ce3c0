"""The binary feature message a device publishes for each frame.

Layout (little endian), version 1 (one vector), 2 (two vectors) or 3 (vectors and the
focus view)::

    magic   2s   b"EL"
    version u8   1, 2 or 3
    dtype   u8   1 = float16, 2 = float32, 3 = int8 (symmetric, scale follows),
                 4 = int8 deflated (scale, then the codes as a raw deflate stream)
    dim     u16  vector length
    seq     u64  per-device frame counter, below 2^53 (exact in JSON)
    captured_at f64  capture time, seconds since the Unix epoch
    model_id    u8 length + UTF-8
    device_id   u8 length + UTF-8
    [views  u8   version 3 only: 1 or 2 vectors follow]
    then, once per vector:
    [scale  f32  int8 and int8 deflated: value = q * scale]
    [length u16  int8 deflated only: the stream's bytes]
    vector  dim * dtype size (int8 deflated: the stream, inflating to dim bytes)
    [jpeg   u32 length + bytes   version 3 only: the focus box as a JPEG]

Version 2 carries the frame's vector and then its focus box's
(:mod:`edgelens.featurizer.focus`), same model, dim and dtype. Version 3 adds the focus
box as a small JPEG, the focus view: in colour, the worker featurizes it (and its own
centred box), and it extracts keypoints from it to verify its best candidates
(:mod:`edgelens.search.verify`); a grey view (the first devices of version 3 sent one) is
only verified. Version 3 with one vector is what a device sends by default. A 1280-d
float16 vector travels in ~2.6 KB, int8 in ~1.3 KB, int8 deflated in ~0.7 KB (the
default: the pooled features are never negative and mostly small, so their codes take
about 3 bits of information each; deflate is lossless, so the worker decodes the same
vector as from int8), against ~13 KB for the comma-separated text the earlier systems
sent. Every malformed input raises :class:`WireFormatError` with
the reason; nothing else escapes ``decode``.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from edgelens.errors import WireFormatError
from edgelens.wire.names import valid_device_id

MAGIC = b"EL"
VERSION = 1  # the frame's vector
VERSION_FOCUS = 2  # the frame's vector, then its focus box's
VERSION_VERIFY = 3  # one or two vectors, then the focus view
MAX_DIM = 8192
MAX_JPEG_BYTES = 128 * 1024
# Capture times are seconds since 1970 from the device's clock, which may be wrong (a board
# without a real-time clock boots in 1970); any time in range is taken, nothing that would
# overflow the latencies computed from it (year 2242).
MAX_CAPTURED_AT = float(2**33)
# The wire has 64 bits for it, but a record's seq must stay exact in JSON and in the
# dashboard's JavaScript numbers; a frame counter never reaches this.
MAX_SEQ = 2**53
_HEADER = struct.Struct("<2sBBHQd")
_SCALE = struct.Struct("<f")
_DEFLATED = struct.Struct("<H")
# A raw deflate stream (no zlib header or checksum: the message is checked as a whole).
_DEFLATE_WBITS = -15
_LENGTH = struct.Struct("<I")
# The largest well-formed message: header, two 255-byte strings, the view count, two
# vectors of MAX_DIM floats with their scales, the largest focus view.
MAX_MESSAGE_BYTES = (
    _HEADER.size + 2 * 256 + 1 + 2 * (_SCALE.size + MAX_DIM * 4) + _LENGTH.size + MAX_JPEG_BYTES
)
# Deflate can only grow incompressible codes by a few bytes per 16 KB block.
_MAX_DEFLATED = MAX_DIM + 64


class WireDtype(IntEnum):
    FLOAT16 = 1
    FLOAT32 = 2
    INT8 = 3
    INT8_DEFLATE = 4

    @classmethod
    def parse(cls, name: str) -> WireDtype:
        try:
            return cls[name.upper()]
        except KeyError as exc:
            raise WireFormatError(f"unknown wire dtype {name!r}") from exc


_NUMPY = {WireDtype.FLOAT16: "<f2", WireDtype.FLOAT32: "<f4", WireDtype.INT8: "i1"}
_SCALED = (WireDtype.INT8, WireDtype.INT8_DEFLATE)


@dataclass(frozen=True)
class FeatureMessage:
    """One frame's vector as it travels; ``embedding`` is float32 once decoded.

    ``focus_embedding``, when present, is the vector of the frame's focus box: the worker
    scores each item by the better of the two. ``view_jpeg``, when present, is that box
    as a JPEG (the focus view), for the worker's focus vector and spatial verification;
    the wire checks only its size.
    """

    device_id: str
    seq: int
    captured_at: float
    model_id: str
    embedding: np.ndarray
    focus_embedding: np.ndarray | None = None
    view_jpeg: bytes | None = None

    def __post_init__(self) -> None:
        if self.view_jpeg is not None and not 0 < len(self.view_jpeg) <= MAX_JPEG_BYTES:
            raise WireFormatError(f"focus view of {len(self.view_jpeg)} bytes, 1..{MAX_JPEG_BYTES}")
        if self.embedding.ndim != 1 or not 0 < self.embedding.shape[0] <= MAX_DIM:
            raise WireFormatError(f"embedding must be 1-d, got shape {self.embedding.shape}")
        if self.focus_embedding is not None and self.focus_embedding.shape != self.embedding.shape:
            raise WireFormatError(
                f"focus embedding of shape {self.focus_embedding.shape}, "
                f"the frame's is {self.embedding.shape}"
            )
        if not valid_device_id(self.device_id):
            raise WireFormatError(f"invalid device id {self.device_id!r}")
        if not self.model_id or len(self.model_id.encode()) > 255:
            raise WireFormatError("model id must be 1-255 bytes")
        if not 0 <= self.seq < MAX_SEQ:
            raise WireFormatError(f"sequence number out of range: {self.seq}")
        if not 0 <= self.captured_at < MAX_CAPTURED_AT:  # NaN fails too
            raise WireFormatError(f"capture time {self.captured_at!r} s is not a time")

    @property
    def dim(self) -> int:
        return int(self.embedding.shape[0])

    @property
    def views(self) -> list[np.ndarray]:
        """The vectors to search with: the frame's, then its focus box's if sent."""
        if self.focus_embedding is None:
            return [self.embedding]
        return [self.embedding, self.focus_embedding]


def encode(message: FeatureMessage, dtype: WireDtype = WireDtype.FLOAT16) -> bytes:
    views = message.views
    if message.view_jpeg is not None:
        version = VERSION_VERIFY
    else:
        version = VERSION if len(views) == 1 else VERSION_FOCUS
    parts = [
        _HEADER.pack(MAGIC, version, dtype, message.dim, message.seq, message.captured_at),
        _short_string(message.model_id),
        _short_string(message.device_id),
    ]
    if version == VERSION_VERIFY:
        parts.append(bytes([len(views)]))
    parts += [_vector_bytes(view, dtype) for view in views]
    if message.view_jpeg is not None:
        parts += [_LENGTH.pack(len(message.view_jpeg)), message.view_jpeg]
    return b"".join(parts)


def _vector_bytes(embedding: np.ndarray, dtype: WireDtype) -> bytes:
    vector = np.asarray(embedding, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise WireFormatError("embedding holds NaN or Inf")
    if dtype not in _SCALED:
        return vector.astype(_NUMPY[dtype]).tobytes()
    scale = float(np.abs(vector).max()) / 127.0 or 1.0
    codes = np.clip(np.rint(vector / scale), -127, 127).astype(_NUMPY[WireDtype.INT8]).tobytes()
    if dtype is WireDtype.INT8:
        return _SCALE.pack(scale) + codes
    deflate = zlib.compressobj(9, zlib.DEFLATED, _DEFLATE_WBITS)
    stream = deflate.compress(codes) + deflate.flush()
    return _SCALE.pack(scale) + _DEFLATED.pack(len(stream)) + stream


def model_id_of(payload: bytes) -> str | None:
    """The model a message's vectors are of, read from its header alone (which index
    searches it); None where the header is malformed (``decode`` says why)."""
    try:
        _HEADER.unpack_from(payload, 0)
        return _read_short_string(payload, _HEADER.size, "model id")[0]
    except (struct.error, WireFormatError):
        return None


def decode(payload: bytes) -> FeatureMessage:
    """Parse and validate one message; raises WireFormatError for anything malformed."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireFormatError(f"message of {len(payload)} bytes, at most {MAX_MESSAGE_BYTES}")
    try:
        magic, version, dtype_code, dim, seq, captured_at = _HEADER.unpack_from(payload, 0)
    except struct.error as exc:
        raise WireFormatError(f"message too short ({len(payload)} bytes)") from exc
    if magic != MAGIC:
        raise WireFormatError("not an edgelens feature message (bad magic)")
    if version not in (VERSION, VERSION_FOCUS, VERSION_VERIFY):
        raise WireFormatError(f"unsupported wire format version {version}")
    try:
        dtype = WireDtype(dtype_code)
    except ValueError as exc:
        raise WireFormatError(f"unknown dtype code {dtype_code}") from exc
    if not 0 < dim <= MAX_DIM:
        raise WireFormatError(f"dimension {dim} out of range")
    offset = _HEADER.size
    model_id, offset = _read_short_string(payload, offset, "model id")
    device_id, offset = _read_short_string(payload, offset, "device id")
    count = version  # version 1: one vector, version 2: two
    if version == VERSION_VERIFY:
        if offset >= len(payload):
            raise WireFormatError("truncated before the view count")
        count, offset = payload[offset], offset + 1
        if count not in (1, 2):
            raise WireFormatError(f"{count} vectors announced, 1 or 2 allowed")
    views: list[np.ndarray | None] = [None, None]
    for n in range(count):
        views[n], offset = _read_vector(payload, offset, dtype, dim)
    jpeg = None
    if version == VERSION_VERIFY:
        jpeg, offset = _read_jpeg(payload, offset)
    if offset != len(payload):
        raise WireFormatError(f"{len(payload) - offset} bytes after the message's end")
    return FeatureMessage(device_id, seq, captured_at, model_id, *views, view_jpeg=jpeg)


def _read_jpeg(payload: bytes, offset: int) -> tuple[bytes, int]:
    if len(payload) < offset + _LENGTH.size:
        raise WireFormatError("truncated before the focus view's length")
    (length,) = _LENGTH.unpack_from(payload, offset)
    offset += _LENGTH.size
    if len(payload) - offset < length:  # its size bounds are FeatureMessage's check
        raise WireFormatError(
            f"focus view needs {length} bytes, message carries {len(payload) - offset}"
        )
    return payload[offset : offset + length], offset + length


def _read_vector(payload: bytes, offset: int, dtype: WireDtype, dim: int) -> tuple[np.ndarray, int]:
    scale = 1.0
    if dtype in _SCALED:
        if len(payload) < offset + _SCALE.size:
            raise WireFormatError("truncated int8 scale")
        (scale,) = _SCALE.unpack_from(payload, offset)
        offset += _SCALE.size
        if not (math.isfinite(scale) and scale > 0):
            raise WireFormatError(f"invalid int8 scale {scale}")
    if dtype is WireDtype.INT8_DEFLATE:
        codes, end = _inflated(payload, offset, dim)
        return _scaled(np.frombuffer(codes, dtype=_NUMPY[WireDtype.INT8]), scale), end
    size = dim * np.dtype(_NUMPY[dtype]).itemsize
    if len(payload) - offset < size:
        raise WireFormatError(
            f"vector needs {size} bytes for dim {dim}, message carries {len(payload) - offset}"
        )
    raw = np.frombuffer(payload, dtype=_NUMPY[dtype], count=dim, offset=offset)
    return _scaled(raw, scale), offset + size


def _scaled(raw: np.ndarray, scale: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are refused below
        vector = raw.astype(np.float32) * np.float32(scale)
    if not np.all(np.isfinite(vector)):
        raise WireFormatError("vector holds NaN or Inf")
    return vector


def _inflated(payload: bytes, offset: int, dim: int) -> tuple[bytes, int]:
    """The ``dim`` codes of a deflated vector, and the offset after its stream in
    ``payload``; never more than ``dim`` bytes are inflated (a stream that would give more,
    less, or does not end there is refused)."""
    if len(payload) < offset + _DEFLATED.size:
        raise WireFormatError("truncated before the deflated vector's length")
    (length,) = _DEFLATED.unpack_from(payload, offset)
    offset += _DEFLATED.size
    if length > _MAX_DEFLATED:
        raise WireFormatError(
            f"deflated vector of {length} bytes: at most {_MAX_DEFLATED} for any dimension"
        )
    if len(payload) - offset < length:
        raise WireFormatError(
            f"deflated vector of {length} bytes, message carries {len(payload) - offset}"
        )
    inflate = zlib.decompressobj(_DEFLATE_WBITS)
    try:
        codes = inflate.decompress(payload[offset : offset + length], dim)
    except zlib.error as exc:
        raise WireFormatError(f"deflated vector is corrupt: {exc}") from exc
    if len(codes) != dim or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise WireFormatError(f"deflated vector does not inflate to exactly {dim} codes")
    return codes, offset + length


def restamp(payload: bytes, *, seq: int, captured_at: float) -> bytes:
    """The same encoded vector under a new sequence number and capture time, without
    re-encoding: load generators replay a fixed set of vectors as fresh frames."""
    magic, version, dtype, dim, _, _ = _HEADER.unpack_from(payload, 0)
    return _HEADER.pack(magic, version, dtype, dim, seq, captured_at) + payload[_HEADER.size :]


def with_view_jpeg(payload: bytes, jpeg: bytes) -> bytes:
    """The same version-1 message (one vector) as version 3 carrying ``jpeg`` as its focus
    view, without re-encoding the vector: load generators send views with fixed vectors."""
    magic, version, dtype, dim, seq, captured_at = _HEADER.unpack_from(payload, 0)
    if version != VERSION:
        raise WireFormatError(f"only a version-{VERSION} message takes a view, not {version}")
    _, offset = _read_short_string(payload, _HEADER.size, "model id")
    _, offset = _read_short_string(payload, offset, "device id")
    return b"".join(
        [
            _HEADER.pack(magic, VERSION_VERIFY, dtype, dim, seq, captured_at),
            payload[_HEADER.size : offset],
            bytes([1]),
            payload[offset:],
            _LENGTH.pack(len(jpeg)),
            jpeg,
        ]
    )


def _short_string(text: str) -> bytes:
    data = text.encode()
    if len(data) > 255:
        raise WireFormatError(f"string too long for the wire: {text[:40]!r}…")
    return bytes([len(data)]) + data


def _read_short_string(payload: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset >= len(payload):
        raise WireFormatError(f"truncated before the {what}")
    length = payload[offset]
    end = offset + 1 + length
    if end > len(payload):
        raise WireFormatError(f"truncated {what}")
    try:
        return payload[offset + 1 : end].decode(), end
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"{what} is not UTF-8") from exc
