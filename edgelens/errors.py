"""One exception tree for the whole product.

Third-party errors (OpenCV, onnxruntime, SQLite, pydantic) are mapped to these
at the boundary with ``raise ... from exc`` so callers handle one family and the
original cause stays in the traceback.
"""


class EdgelensError(Exception):
    """Base of every error edgelens raises on purpose."""


class ConfigError(EdgelensError):
    """The settings file or environment is invalid."""


class ModelError(EdgelensError):
    """A model artefact is missing, unreadable or inconsistent with its manifest."""


class ModelNotFoundError(ModelError):
    """No exported model exists for the requested precision."""


class ModelMismatchError(ModelError):
    """Vectors of one model were offered to an index or catalog of another."""


class ImageDecodeError(EdgelensError):
    """An image file or buffer is corrupt, empty or not an image."""


class CatalogError(EdgelensError):
    """The catalog database or an import source is invalid."""


class ItemNotFoundError(CatalogError):
    """No catalog item has the given id."""


class LastPhotoError(CatalogError):
    """An item keeps at least one photo: its last one is removed with the item."""


class SearchError(EdgelensError):
    """A query cannot be answered (wrong shape, wrong model, empty index)."""


class WireFormatError(EdgelensError):
    """A feature message that cannot be decoded or fails validation."""


class SourceError(EdgelensError):
    """A frame source (camera, stream, file, folder) cannot be named, opened or read."""


class RedisUnavailableError(EdgelensError):
    """Redis cannot be reached; the caller reports it, keeps running and retries."""


class AccessError(EdgelensError):
    """A web request that lacks the right to do what it asks."""


class NotSignedInError(AccessError):
    """The request needs a signed-in admin."""


class CsrfError(AccessError):
    """A state-changing request without the session's CSRF token."""


class TooManyStreamsError(EdgelensError):
    """A live view refused: its visitor, or the whole web process, has as many open as
    allowed. Answered 429; worth asking again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
