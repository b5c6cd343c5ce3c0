from pathlib import Path

import pytest

from edgelens.errors import ConfigError
from edgelens.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("EDGELENS_"):
            monkeypatch.delenv(key)


def test_defaults_run_the_demo_locally():
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.model_path == Path("data/models")
    assert str(settings.redis_url) == "redis://127.0.0.1:6379/0"
    assert settings.mqtt_url.host == "127.0.0.1" and settings.mqtt_url.port == 1883
    assert settings.featurizer.providers == ["tensorrt", "cuda", "cpu"]


def test_environment_overrides_file(tmp_path: Path, monkeypatch):
    config = tmp_path / "edgelens.toml"
    config.write_text('data_dir = "/srv/a"\n[featurizer]\nthreads = 4\nprecision = "int8"\n')
    monkeypatch.setenv("EDGELENS_DATA_DIR", "/srv/b")
    monkeypatch.setenv("EDGELENS_REDIS_URL", "redis://cache:6390/2")
    settings = load_settings(config)
    assert settings.data_dir == Path("/srv/b")
    assert settings.featurizer.threads == 4 and settings.featurizer.precision == "int8"
    assert settings.redis_url.port == 6390 and settings.redis_url.path == "/2"


def test_unknown_keys_and_bad_values_are_readable_errors(tmp_path: Path):
    config = tmp_path / "edgelens.toml"
    config.write_text(
        'data_dri = "x"\nmqtt_url = "http://broker"\n[featurizer]\nthreads = 0\n'
        "[search]\nverify_candidates = 0\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    text = str(info.value)
    assert "4 invalid setting(s)" in text and "search.verify_candidates" in text
    assert "data_dri: Extra inputs are not permitted" in text
    assert "mqtt_url" in text and "featurizer.threads" in text


def test_missing_or_broken_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(broken)


def test_the_settings_file_in_the_readme_loads_and_says_the_defaults(tmp_path: Path):
    """The README's example is a real settings file: it loads, and every value it shows is
    the default (so it cannot drift from the code unnoticed)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    config = tmp_path / "edgelens.toml"
    config.write_text(readme.split("```toml\n", 1)[1].split("```", 1)[0])
    assert load_settings(config) == load_settings()
