import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edgelens.errors import ModelError, ModelNotFoundError
from edgelens.featurizer.manifest import artefact_paths, load_manifest
from edgelens.featurizer.runtime import ConfiguredFeaturizer, Featurizer, load_featurizer
from edgelens.samples.photos import load_photo
from edgelens.settings import Settings

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = set(range(281, 286))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_real_imagenet_weights_call_chelsea_a_cat(featurizers, chelsea, precision):
    logits = featurizers[precision].classify([chelsea])[0]
    assert logits.shape == (1000,)
    assert int(np.argmax(logits)) in CAT_CLASSES
    # a real classifier is confident; random or zeroed weights are not
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert probs[list(CAT_CLASSES)].sum() > 0.5


def test_other_photos_are_not_cats(featurizer):
    images = [load_photo(name) for name in ("coffee", "rocket", "astronaut")]
    top = np.argmax(featurizer.classify(images), axis=1)
    assert not CAT_CLASSES & set(top.tolist())


def test_embeddings_are_unit_vectors_of_the_manifest_dim(featurizer, chelsea):
    vectors = featurizer.embed([chelsea, load_photo("coffee")])
    assert vectors.shape == (2, featurizer.dim) == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.9  # different photos, different vectors


def test_batching_does_not_change_vectors(models_dir, chelsea):
    images = [chelsea, load_photo("coffee"), load_photo("rocket")]
    batched = Featurizer.from_models_dir(models_dir, "fp32", providers=["cpu"], batch_size=2)
    one_by_one = np.concatenate([batched.embed([image]) for image in images])
    np.testing.assert_allclose(batched.embed(images), one_by_one, atol=1e-5)


def test_chosen_provider_is_logged(models_dir, caplog):
    with caplog.at_level(logging.INFO, logger="edgelens.featurizer.runtime"):
        featurizer = Featurizer.from_models_dir(models_dir, "fp32", providers=["cuda", "cpu"])
    assert featurizer.provider == "CPUExecutionProvider"
    assert "runs on CPUExecutionProvider" in caplog.text


def test_missing_model_says_how_to_export(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="edgelens model export"):
        Featurizer.from_models_dir(tmp_path, "fp32")


def test_derived_models_agree_with_fp32_and_a_drifting_one_is_refused(models_dir):
    from dataclasses import replace

    from edgelens.featurizer.manifest import load_manifest, searchable_against

    fp32, fp16, int8 = (load_manifest(models_dir, p) for p in ("fp32", "fp16", "int8"))
    gap = load_manifest(models_dir, "fp32", "gap")
    assert fp16.embedding_space == int8.embedding_space == fp32.model_id
    assert int8.fp32_cosine >= 0.98 and fp16.fp32_cosine >= 0.99
    assert searchable_against(int8, fp32.model_id) == (True, "")
    ok, why = searchable_against(replace(int8, fp32_cosine=0.91), fp32.model_id)
    assert not ok and "0.910" in why and "index the catalog in int8" in why
    ok, why = searchable_against(gap, fp32.model_id)
    assert not ok and "another embedding space" in why


def test_a_manifest_is_loaded_only_with_its_own_file(models_dir, tmp_path: Path):
    """A worker serving a model by its manifest must not load another model's file that
    took the name (a rollout's new model), nor a damaged one."""
    shutil.copytree(models_dir, tmp_path / "models")
    settings = Settings(models_dir=tmp_path / "models", featurizer={"providers": ["cpu"]})
    manifest = load_manifest(settings.model_path, "fp32")
    assert load_featurizer(settings, manifest).model_id == manifest.model_id
    onnx, _ = artefact_paths(settings.model_path, "fp32")
    shutil.copyfile(artefact_paths(settings.model_path, "fp32", "gap")[0], onnx)
    with pytest.raises(ModelError, match="is not the file of model"):
        load_featurizer(settings, manifest)


def test_the_configured_featurizer_follows_a_newly_exported_model_once_it_is_whole(
    models_dir, tmp_path: Path, caplog
):
    """What the web app featurizes uploads with during a rollout: the new model's manifest
    under the configured name first (its file not there yet: the model loaded stays, said
    once), then its file."""
    models = tmp_path / "models"
    models.mkdir()
    for path in artefact_paths(models_dir, "fp32", "rgem"):
        shutil.copyfile(path, models / path.name)
    settings = Settings(
        models_dir=models, featurizer={"providers": ["cpu"]}, worker={"model_poll_s": 0.01}
    )
    old, new = (load_manifest(models_dir, "fp32", pooling) for pooling in ("rgem", "gap"))
    configured = ConfiguredFeaturizer(settings)
    assert configured.get().model_id == old.model_id
    new_onnx, new_json = artefact_paths(models_dir, "fp32", "gap")
    shutil.copyfile(new_json, artefact_paths(models, "fp32", "rgem")[1])
    for _ in range(3):
        time.sleep(0.02)
        assert configured.get().model_id == old.model_id, "its file is not there yet"
    assert len([r for r in caplog.records if "not loaded (yet)" in r.getMessage()]) == 1
    shutil.copyfile(new_onnx, models / new_onnx.name)
    time.sleep(0.02)
    assert configured.get().model_id == new.model_id
