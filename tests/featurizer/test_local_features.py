"""Local features: extraction in the image's own pixels, and the catalog's compact form."""

import cv2
import numpy as np
import pytest

from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.featurizer.local_features import (
    CATALOG_KEYPOINTS,
    MAX_KEYPOINTS,
    MAX_STORED_BYTES,
    SUBVECTORS,
    Codebook,
    LocalFeatures,
    catalog_local_features,
    codebook,
    extract_local_features,
    keep_largest,
    legacy_from_blobs,
    legacy_to_blobs,
    sift_keypoints,
)
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_views
from edgelens.search.verify import MIN_INLIERS, count_inliers, ratio_matches
from edgelens.settings import VIEW_BYTES


@pytest.fixture(scope="module")
def busy() -> np.ndarray:
    """A photo with texture everywhere: SIFT finds its full budget."""
    return cv2.resize(load_photo("astronaut"), None, fx=2, fy=2)


def test_keypoints_are_in_the_pixels_of_the_image_given(chelsea):
    large = cv2.resize(chelsea, None, fx=3, fy=3)  # extracted at <= 640 px, mapped back
    features = extract_local_features(large)
    assert 100 < len(features) <= MAX_KEYPOINTS
    assert features.xy_n2[:, 0].max() > 640 and features.xy_n2[:, 0].max() < large.shape[1]
    assert features.xy_n2[:, 1].max() < large.shape[0]


def test_a_smaller_budget_keeps_fewer_keypoints_in_the_same_pixels(chelsea):
    large = cv2.resize(chelsea, None, fx=3, fy=3)
    small = extract_local_features(large, max_keypoints=200, max_side=320)
    # SIFT keeps keypoints tied at the cut-off strength, so "200" may come out a few more.
    assert 100 < len(small) <= 210 and len(extract_local_features(large)) > 400
    assert small.xy_n2[:, 0].max() > 640  # still mapped back to the image's own pixels


def test_positions_and_descriptors_must_pair_up():
    with pytest.raises(ValueError, match="pair up"):
        LocalFeatures(np.zeros((3, 2), np.float32), np.zeros((2, 128), np.float32))
    with pytest.raises(ValueError, match="pair up"):
        LocalFeatures(
            np.zeros((3, 2), np.float32),
            np.zeros((3, 128), np.float32),
            np.zeros((2, SUBVECTORS), np.uint8),
        )


def test_descriptors_are_matched_as_rootsift(chelsea):
    """Unit length, and the dot product of two is the Hellinger kernel (Bhattacharyya
    coefficient) of the two SIFT histograms, L1-normalised: what Euclidean distance between
    them then compares."""
    features = extract_local_features(chelsea)
    root = features.matching_descriptors_n128
    assert root.shape == features.descriptors_n128.shape and root.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(root, axis=1), 1.0, rtol=1e-5)
    histograms = features.descriptors_n128 / features.descriptors_n128.sum(axis=1, keepdims=True)
    hellinger = np.sqrt(histograms[0] * histograms[1]).sum()
    assert root[0] @ root[1] == pytest.approx(hellinger, rel=1e-5)
    assert features.matching_descriptors_n128 is root  # computed once per object


def test_a_busy_photo_is_stored_in_at_most_16_kb(busy):
    stored = catalog_local_features(busy)
    xy, codes = stored.to_blobs()
    assert len(stored) == CATALOG_KEYPOINTS
    assert len(xy) + len(codes) <= MAX_STORED_BYTES <= 16384
    old_xy, old_descriptors = legacy_to_blobs(extract_local_features(busy))
    assert len(old_xy) + len(old_descriptors) > 6 * MAX_STORED_BYTES  # what it replaces


def test_the_stored_form_round_trips_exactly(busy):
    """What the catalog gives back is what it stores, and storing it again stores the same
    bytes: ingest and evaluation see the same keypoints."""
    stored = catalog_local_features(busy)
    blobs = stored.to_blobs()
    back = LocalFeatures.from_blobs(*blobs)
    assert back.to_blobs() == blobs
    np.testing.assert_array_equal(back.xy_n2, stored.xy_n2)
    np.testing.assert_array_equal(back.descriptors_n128, stored.descriptors_n128)
    np.testing.assert_array_equal(back.matching_descriptors_n128, stored.matching_descriptors_n128)
    np.testing.assert_array_equal(back.xy_n2, np.rint(back.xy_n2))  # whole pixels
    assert back.xy_n2[:, 0].max() > 640  # in the photo's own pixels, not the extraction's


def test_the_catalog_keeps_the_largest_keypoints_positions_to_a_pixel(busy):
    full, sizes = sift_keypoints(busy, MAX_KEYPOINTS, 640)
    kept = keep_largest(full, sizes)
    assert len(full) >= MAX_KEYPOINTS and len(kept) == CATALOG_KEYPOINTS
    kept_xy = {tuple(xy) for xy in kept.xy_n2.tolist()}
    chosen = np.array([tuple(xy) in kept_xy for xy in full.xy_n2.tolist()])
    assert sizes[chosen].min() >= sizes[~chosen].max()  # none dropped is larger
    stored = catalog_local_features(busy)
    assert np.abs(stored.xy_n2 - kept.xy_n2).max() <= 0.5


def test_decoded_descriptors_stay_near_their_keypoints(busy):
    """Each decoded descriptor is RootSIFT-like (unit length, no negative component) and
    nearer its own keypoint's descriptor than any other keypoint's, nearly always."""
    full, sizes = sift_keypoints(busy, MAX_KEYPOINTS, 640)
    kept = keep_largest(full, sizes)
    stored = catalog_local_features(busy)
    original, decoded = kept.matching_descriptors_n128, stored.matching_descriptors_n128
    assert decoded.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, rtol=1e-4)
    error = ((original - decoded) ** 2).sum(axis=1)
    assert error.mean() < 0.06
    distances = ((original[:, None, :] - decoded[None, :, :]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == np.arange(len(original))).mean() > 0.9


def test_a_camera_view_verifies_against_the_stored_form_and_a_stranger_does_not():
    stored = {name: catalog_local_features(load_photo(name)) for name in ("coffee", "rocket")}
    view = extract_local_features(camera_views(load_photo("coffee"), 1, seed=11)[0])
    assert count_inliers(view, stored["coffee"]) >= 2 * MIN_INLIERS
    assert count_inliers(view, stored["rocket"]) < MIN_INLIERS


@pytest.mark.parametrize("name", ["chelsea", "text"])
def test_a_dim_view_still_verifies_because_contrast_is_equalised(name):
    """A dim shelf: the item in the middle of the frame at a quarter of its contrast, sent
    as devices send their focus view. SIFT's threshold is absolute, so without equalising
    the view gives too few keypoints to verify; equalised it verifies its own photo, and
    still not a stranger."""
    photo = load_photo(name)
    h, w = photo.shape[:2]
    frame = cv2.copyMakeBorder(photo, h // 3, h // 3, w // 3, w // 3, cv2.BORDER_CONSTANT, value=90)
    dim = np.clip(frame.astype(np.float32) * 0.25 + 15, 0, 255).astype(np.uint8)
    view = decode_focus_view(focus_view_jpeg(dim, VIEW_BYTES))
    stored = catalog_local_features(photo)
    stranger = catalog_local_features(load_photo("coffee"))

    assert count_inliers(extract_local_features(view), stored) >= 2 * MIN_INLIERS
    assert count_inliers(extract_local_features(view), stranger) < MIN_INLIERS
    as_shot = extract_local_features(view, equalise=False)
    assert count_inliers(as_shot, catalog_local_features(photo, equalise=False)) < MIN_INLIERS


def test_a_flat_photo_stores_nothing():
    stored = catalog_local_features(np.full((240, 320, 3), 128, np.uint8))
    assert len(stored) == 0 and stored.to_blobs() == (b"", b"")
    assert len(LocalFeatures.from_blobs(b"", b"")) == 0
    query = extract_local_features(load_photo("coffee"))
    assert [len(i) for i in ratio_matches(query, stored)] == [0, 0]


def test_blobs_that_do_not_pair_up_are_refused():
    with pytest.raises(ValueError, match="positions"):
        LocalFeatures.from_blobs(b"\0" * 8, b"\0" * SUBVECTORS)


def test_the_old_stored_form_still_reads(chelsea):
    features = extract_local_features(chelsea)
    back = legacy_from_blobs(*legacy_to_blobs(features))
    np.testing.assert_array_equal(back.xy_n2, features.xy_n2)
    np.testing.assert_array_equal(back.descriptors_n128, features.descriptors_n128)


def test_the_shipped_codebook_codes_16_bytes_with_an_orthogonal_rotation(tmp_path):
    book = codebook()
    assert book.centroids.shape == (SUBVECTORS, 256, 128 // SUBVECTORS)
    np.testing.assert_allclose(book.rotation @ book.rotation.T, np.eye(128), atol=1e-4)
    book.save(tmp_path / "copy.npz")
    again = Codebook.load(tmp_path / "copy.npz")
    np.testing.assert_array_equal(again.centroids, book.centroids)
    with pytest.raises(ValueError, match="does not code"):
        Codebook(book.rotation[:64], book.centroids)
