"""Local features for spatial verification: SIFT keypoints of a catalog photo or a query view.

A global vector cannot tell two poses of one object apart, nor find a box among other
things reliably; matching keypoints and fitting a homography can (the second stage of
instance retrieval, :mod:`edgelens.search.verify`). Catalog photos and queries go through
this one extractor, with textbook parameters fixed before measuring (:data:`MAX_KEYPOINTS`
keypoints, the image scaled to at most :data:`MAX_SIDE` px, its contrast equalised by tiles
first: :data:`EQUALISE_CLIP`), matched as RootSIFT
(:attr:`LocalFeatures.matching_descriptors_n128`). The device does not run it (SIFT costs
several times the network on a small CPU): the worker extracts the query's keypoints from
the focus view the device sends (:func:`edgelens.featurizer.focus.focus_view_jpeg`).

A query's keypoints are used at full precision and thrown away. A catalog photo's are
stored for every item, so compactly (:meth:`LocalFeatures.to_blobs`, at most
:data:`MAX_STORED_BYTES` a photo: a million photos in 16 GB): the
:data:`CATALOG_KEYPOINTS` largest (a camera sees an item smaller than its catalog photo, so
the photo's finest-scale keypoints are the ones a view matches least), positions as whole
pixels (uint16), RootSIFT descriptors as 16-byte codes of an optimised product quantiser
(:class:`Codebook`). The codebook ships with the package (``keypoint_codebook.npz``), made
once from generic photos by ``python -m tools.train_keypoint_codebook``. Matching decodes
the codes back into descriptors, so a query is compared with the catalog as before.
:func:`catalog_local_features` is what the catalog stores and gives back for a photo.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from edgelens.featurizer.focus import at_most_side

# Stored with catalog keypoints; a change re-extracts them.
METHOD_ID = "sift800-400to640-clahe-opq16-v4"
LEGACY_METHOD_ID = "sift1000-640-v1"  # float32 xy, uint8 SIFT
# Methods `edgelens catalog migrate-keypoints` re-makes in METHOD_ID, oldest first: the
# legacy rows, the compact ones extracted without enlarging small photos, then the ones
# extracted without equalising contrast.
EARLIER_METHOD_IDS = (LEGACY_METHOD_ID, "sift800-640-opq16-v2", "sift800-400to640-opq16-v3")
MAX_KEYPOINTS = 1000
# Longer side at most for extraction: catalog photos, and views from devices that sent them
# this large (a view now travels smaller and is extracted at the size it travels).
MAX_SIDE = 640
# A catalog photo smaller than this (shops' pack shots are often 200-400 px) is enlarged
# to it for extraction, as a camera that fills its view with the item sees it larger: at
# its own size SIFT finds too few keypoints to verify many camera views. Not to more:
# enlarging larger photos made clutter views verify more of the other catalog items in
# them (docs/decisions.md).
CATALOG_MIN_SIDE = 400
# Contrast-limited adaptive histogram equalisation (CLAHE) before SIFT, OpenCV's textbook
# settings: the grey image's contrast stretched tile by tile (8x8 tiles), each tile's
# histogram clipped at twice its mean so flat areas' noise is not blown up. SIFT's contrast
# threshold is absolute, so a dim or hazy view (a shelf's far end, an underexposed camera, a
# washed-out pack shot) otherwise gives it a few keypoints where a well-lit one gives
# hundreds (docs/decisions.md).
EQUALISE_CLIP = 2.0
EQUALISE_TILES = (8, 8)
DESCRIPTOR_SIZE = 128
CATALOG_KEYPOINTS = 800  # the largest of the MAX_KEYPOINTS a catalog photo keeps
SUBVECTORS = 16  # code bytes per keypoint
CENTROIDS = 256
XY_BYTES = 4  # two uint16 pixel coordinates
MAX_STORED_BYTES = CATALOG_KEYPOINTS * (SUBVECTORS + XY_BYTES)
CODEBOOK_FILE = "keypoint_codebook.npz"  # in this package


@dataclass(frozen=True)
class Codebook:
    """An optimised product quantiser (Ge et al., "Optimized Product Quantization", 2013)
    of RootSIFT: a descriptor is rotated (``rotation``, orthogonal, 128x128), cut into
    SUBVECTORS pieces and each piece replaced by the index of its nearest of CENTROIDS
    centroids (``centroids``, SUBVECTORS x CENTROIDS x 128/SUBVECTORS). The rotation spreads
    the variance evenly over the pieces, which plain product quantisation of SIFT's own
    cell-by-cell order does not."""

    rotation: np.ndarray
    centroids: np.ndarray

    def __post_init__(self) -> None:
        m, k, d = self.centroids.shape
        if self.rotation.shape != (DESCRIPTOR_SIZE, DESCRIPTOR_SIZE) or m * d != DESCRIPTOR_SIZE:
            raise ValueError(
                f"a codebook of rotation {self.rotation.shape} and centroids "
                f"{self.centroids.shape} does not code {DESCRIPTOR_SIZE}-d descriptors"
            )
        if k > 256:
            raise ValueError(f"{k} centroids do not fit a byte")

    def encode(self, rootsift_n128: np.ndarray) -> np.ndarray:
        """(n, SUBVECTORS) uint8 codes of RootSIFT descriptors."""
        m, _, d = self.centroids.shape
        rotated = rootsift_n128.astype(np.float32) @ self.rotation
        codes = np.empty((len(rotated), m), np.uint8)
        for i in range(m):
            piece, centroids = rotated[:, i * d : (i + 1) * d], self.centroids[i]
            # argmin of |piece - c|^2 over c, without the |piece|^2 every c shares
            squares = np.einsum("kd,kd->k", centroids, centroids)
            distances = squares[None, :] - 2 * piece @ centroids.T
            codes[:, i] = distances.argmin(axis=1)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, 128) descriptors the codes stand for: the centroids rotated back, negative
        components (RootSIFT has none) set to 0, scaled to unit length as RootSIFT is."""
        m = self.centroids.shape[0]
        pieces = self.centroids[np.arange(m)[None, :], codes.astype(np.intp)]
        decoded = np.maximum(pieces.reshape(len(codes), DESCRIPTOR_SIZE) @ self.rotation.T, 0)
        norms = np.linalg.norm(decoded, axis=1, keepdims=True)
        return (decoded / np.maximum(norms, 1e-7)).astype(np.float32)

    def save(self, path: Path) -> None:
        np.savez(path, rotation=self.rotation, centroids=self.centroids)

    @classmethod
    def load(cls, path: Path) -> Codebook:
        with np.load(path) as data:
            return cls(data["rotation"].astype(np.float32), data["centroids"].astype(np.float32))


@functools.cache
def codebook() -> Codebook:
    """The codebook the catalog's keypoints are coded with (loaded once)."""
    with resources.as_file(resources.files(__package__).joinpath(CODEBOOK_FILE)) as path:
        return Codebook.load(path)


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints in the image's own pixels (``xy_n2``) and their SIFT descriptors.

    Decoded from the stored form (:meth:`from_blobs`), ``descriptors_n128`` are the squares
    of the decoded RootSIFT (a SIFT histogram up to its scale, which RootSIFT removes), and
    ``codes`` the codes they came from: storing them again stores the same codes (coding a
    decoded descriptor afresh could pick a neighbouring centroid).
    """

    xy_n2: np.ndarray  # (n, 2) float32
    descriptors_n128: np.ndarray  # (n, 128) float32
    codes: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n, 16) uint8

    def __post_init__(self) -> None:
        n = self.xy_n2.shape[0]
        if self.xy_n2.shape != (n, 2) or self.descriptors_n128.shape != (n, DESCRIPTOR_SIZE):
            raise ValueError(
                f"keypoints {self.xy_n2.shape} and descriptors {self.descriptors_n128.shape} "
                "do not pair up"
            )
        if self.codes is not None and self.codes.shape != (n, SUBVECTORS):
            raise ValueError(f"codes {self.codes.shape} do not pair up with {n} keypoints")

    def __len__(self) -> int:
        return int(self.xy_n2.shape[0])

    @cached_property
    def matching_descriptors_n128(self) -> np.ndarray:
        """RootSIFT (Arandjelovic & Zisserman, "Three things everyone should know to improve
        object retrieval", 2012): each descriptor L1-normalised, then square-rooted, so that
        Euclidean distance between them compares SIFT histograms by the Hellinger kernel,
        which a few large bins sway less. Computed once per object (no re-extraction,
        nothing more stored). Chosen over plain SIFT by measurement (docs/decisions.md)."""
        total = self.descriptors_n128.sum(axis=1, keepdims=True)
        return np.sqrt(self.descriptors_n128 / np.maximum(total, 1e-7)).astype(np.float32)

    def to_blobs(self) -> tuple[bytes, bytes]:
        """The stored form, XY_BYTES + SUBVECTORS bytes a keypoint: positions rounded to
        whole pixels (uint16, little-endian), descriptors as the codebook's codes."""
        xy = np.clip(np.rint(self.xy_n2), 0, np.iinfo(np.uint16).max).astype("<u2")
        codes = self.codes
        if codes is None:
            codes = codebook().encode(self.matching_descriptors_n128)
        return xy.tobytes(), np.ascontiguousarray(codes, np.uint8).tobytes()

    @classmethod
    def from_blobs(cls, xy: bytes, codes: bytes) -> LocalFeatures:
        """Keypoints back from :meth:`to_blobs`, descriptors decoded."""
        xy_n2 = np.frombuffer(xy, "<u2").reshape(-1, 2)
        codes_nm = np.frombuffer(codes, np.uint8).reshape(-1, SUBVECTORS)
        if len(codes_nm) != len(xy_n2):
            raise ValueError(f"{len(xy_n2)} positions but {len(codes_nm)} codes")
        root = codebook().decode(codes_nm)
        return cls(xy_n2.astype(np.float32), root * root, codes_nm)


def legacy_from_blobs(xy: bytes, descriptors: bytes) -> LocalFeatures:
    """Keypoints stored by :data:`LEGACY_METHOD_ID`: float32 positions, uint8 SIFT."""
    xy_n2 = np.frombuffer(xy, "<f4").reshape(-1, 2)
    raw = np.frombuffer(descriptors, np.uint8).reshape(-1, DESCRIPTOR_SIZE)
    return LocalFeatures(xy_n2.astype(np.float32), raw.astype(np.float32))


def legacy_to_blobs(features: LocalFeatures) -> tuple[bytes, bytes]:
    """What :data:`LEGACY_METHOD_ID` stored (for measuring it, and for migration tests)."""
    descriptors = np.clip(np.rint(features.descriptors_n128), 0, 255).astype(np.uint8)
    return features.xy_n2.astype("<f4").tobytes(), descriptors.tobytes()


def extract_local_features(
    image: np.ndarray,
    *,
    max_keypoints: int = MAX_KEYPOINTS,
    max_side: int = MAX_SIDE,
    equalise: bool = True,
) -> LocalFeatures:
    """Keypoints of a BGR or grey image, scaled down to at most ``max_side`` for extraction.
    The product uses the defaults for a query view; the arguments are for measuring what
    other budgets cost and give (``python -m benchmarks.verify``)."""
    features, _ = sift_keypoints(image, max_keypoints, max_side, equalise=equalise)
    return features


def catalog_local_features(image: np.ndarray, *, equalise: bool = True) -> LocalFeatures:
    """The keypoints the catalog stores for a photo (:data:`METHOD_ID`), as it gives them
    back: the CATALOG_KEYPOINTS largest of the photo's SIFT keypoints (in SIFT's order),
    coded and decoded; a photo smaller than :data:`CATALOG_MIN_SIDE` is extracted enlarged
    to it (positions stay the photo's pixels). Ingest stores exactly this, and evaluation
    verifies against it (``equalise`` is for measuring the method before)."""
    features, sizes = sift_keypoints(
        image, MAX_KEYPOINTS, MAX_SIDE, min_side=CATALOG_MIN_SIDE, equalise=equalise
    )
    return LocalFeatures.from_blobs(*keep_largest(features, sizes).to_blobs())


def keep_largest(
    features: LocalFeatures, sizes: np.ndarray, count: int = CATALOG_KEYPOINTS
) -> LocalFeatures:
    """The ``count`` keypoints of largest SIFT size (ties: the earlier), in their order."""
    if len(features) <= count:
        return features
    kept = np.sort(np.argsort(-sizes, kind="stable")[:count])
    return LocalFeatures(features.xy_n2[kept], features.descriptors_n128[kept])


def sift_keypoints(
    image: np.ndarray,
    max_keypoints: int,
    max_side: int,
    *,
    min_side: int = 0,
    equalise: bool = True,
) -> tuple[LocalFeatures, np.ndarray]:
    """SIFT keypoints in the image's own pixels, and their sizes (in extraction pixels),
    extracted with the longer side at most ``max_side`` and, enlarged, at least
    ``min_side``, contrast equalised (:data:`EQUALISE_CLIP`) at that size unless
    ``equalise`` is false: what :func:`extract_local_features` and
    :func:`catalog_local_features` start from."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    gray, scale = at_most_side(gray, max_side)
    if 0 < max(gray.shape) < min_side:
        scale = min_side / max(gray.shape)
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    if equalise and gray.size:
        gray = cv2.createCLAHE(EQUALISE_CLIP, EQUALISE_TILES).apply(gray)
    # A detector per call (cheap to make): the web app may import two uploads at once.
    found, descriptors = cv2.SIFT_create(nfeatures=max_keypoints).detectAndCompute(gray, None)
    if descriptors is None:  # a flat image has no keypoints
        empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
        return empty, np.zeros(0, np.float32)
    xy = np.array([k.pt for k in found], np.float32).reshape(-1, 2) / scale
    sizes = np.array([k.size for k in found], np.float32)
    return LocalFeatures(xy, descriptors.astype(np.float32)), sizes
