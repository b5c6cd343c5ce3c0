"""One exception tree for the whole product.

Third-party errors (OpenCV, onnxruntime, SQLite, pydantic) are mapped to these
at the boundary with ``raise ... from exc`` so callers handle one family and the
original cause stays in the traceback.
"""

from __future__ import annotations


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

    @classmethod
    def of(cls, item_id: str) -> ItemNotFoundError:
        """The error for an id the catalog does not hold, in the one wording pages show."""
        return cls(f"no item “{item_id}” in the catalog")


class LastPhotoError(CatalogError):
    """An item keeps at least one photo: its last one is removed with the item."""


class UploadTooLargeError(CatalogError):
    """An uploaded file is larger than ``web.max_upload_bytes``."""


class RequestTooLargeError(EdgelensError):
    """A request's body passed ``web.max_upload_bytes`` while it was being read."""


class UploadRejectedError(CatalogError):
    """An upload is not a usable catalog image (corrupt, empty, or a bad item id)."""


class ImportsBusyError(CatalogError):
    """Too many imports are waiting: try again when one has finished."""


class ViewGoneError(CatalogError):
    """A frame's view is not (or no longer) kept: there is nothing to correct with."""


class SearchError(EdgelensError):
    """A query cannot be answered (wrong shape, wrong model, empty index)."""


class WireFormatError(EdgelensError):
    """A feature message that cannot be decoded or fails validation."""


class RejectedMessage(EdgelensError):
    """A message the worker refuses (malformed, another model's, out of sequence);
    ``reason`` is a short label its counter and reject log go by."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class SourceError(EdgelensError):
    """A frame source (camera, stream, file, folder) cannot be named, opened or read."""


class RedisUnavailableError(EdgelensError):
    """Redis cannot be reached; the caller reports it, keeps running and retries."""


class ServerError(EdgelensError):
    """A helper server (Redis, Mosquitto, the web app of a demo) cannot be found or started."""


class PinnedArchiveError(EdgelensError):
    """A pinned archive could not be downloaded, or is not the one pinned."""


class RealViewsUnavailableError(EdgelensError):
    """The real-view set's archives could not be downloaded, verified or read."""


class UnknownViewsUnavailableError(EdgelensError):
    """The unknown-set archives could not be downloaded, verified or read."""


class ProductFamiliesUnavailableError(EdgelensError):
    """The product-family archive could not be downloaded, verified or read."""


class AccessError(EdgelensError):
    """A web request that lacks the right to do what it asks."""


class NotSignedInError(AccessError):
    """The request needs a signed-in admin."""


class CsrfError(AccessError):
    """A state-changing request without the session's CSRF token."""


class NoRolloutError(EdgelensError):
    """No model rollout is under way (to finish)."""


class DeviceAuthError(AccessError):
    """A device's request (a model download) without a device's broker credentials."""


class TooManyStreamsError(EdgelensError):
    """A live view refused: its visitor, or the whole web process, has as many open as
    allowed. Answered 429; worth asking again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
