"""The projection: deterministic, orthonormal, inner products kept, versioned by model."""

import numpy as np
import pytest

from edgelens.errors import SearchError
from edgelens.search.projection import Projection
from edgelens.testing.vectors import DIM, clustered


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered(2000, np.random.default_rng(0))


def test_fit_is_deterministic_and_versioned_with_the_model(vectors):
    first = Projection.fit(vectors, model_id="model-a", reduced_dim=16, max_samples=500)
    again = Projection.fit(vectors, model_id="model-a", reduced_dim=16, max_samples=500)
    np.testing.assert_array_equal(first.basis, again.basis)
    assert first.version == again.version and first.version.startswith("model-a/ip16-")
    other_model = Projection.fit(vectors, model_id="model-b", reduced_dim=16, max_samples=500)
    assert other_model.version != first.version
    other_sample = Projection.fit(
        vectors, model_id="model-a", reduced_dim=16, seed=1, max_samples=500
    )
    assert other_sample.version != first.version


def test_basis_is_orthonormal_and_keeps_inner_products(vectors):
    projection = Projection.fit(vectors, model_id="m", reduced_dim=40)
    np.testing.assert_allclose(projection.basis @ projection.basis.T, np.eye(40), atol=1e-5)
    assert projection.explained > 0.99  # the vectors live near a 40-d subspace
    reduced = projection.reduce(vectors[:100])
    assert reduced.shape == (100, 40) and reduced.dtype == np.float32
    np.testing.assert_allclose(reduced @ reduced.T, vectors[:100] @ vectors[:100].T, atol=0.03)
    assert projection.reduce(vectors[0]).shape == (40,)


def test_bad_shapes_are_refused(vectors):
    with pytest.raises(SearchError):
        Projection.fit(vectors, model_id="m", reduced_dim=DIM + 1)
    with pytest.raises(SearchError):
        Projection.fit(vectors[:0], model_id="m", reduced_dim=4)
    projection = Projection.fit(vectors, model_id="m", reduced_dim=4)
    with pytest.raises(SearchError):
        projection.reduce(vectors[:, :10])
