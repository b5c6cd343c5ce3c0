"""Local features: extraction in the image's own pixels, and storage."""

import cv2
import numpy as np
import pytest

from edgelens.featurizer.local_features import (
    MAX_KEYPOINTS,
    LocalFeatures,
    extract_local_features,
)


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


def test_storage_round_trip_is_exact(chelsea):
    features = extract_local_features(chelsea)
    back = LocalFeatures.from_blobs(*features.to_blobs())
    np.testing.assert_array_equal(back.xy_n2, features.xy_n2)
    np.testing.assert_array_equal(back.descriptors_n128, features.descriptors_n128)


def test_positions_and_descriptors_must_pair_up():
    with pytest.raises(ValueError, match="pair up"):
        LocalFeatures(np.zeros((3, 2), np.float32), np.zeros((2, 128), np.float32))


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
