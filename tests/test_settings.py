import json
import os
from pathlib import Path

import pytest

from edgelens.errors import ConfigError
from edgelens.settings import load_settings, production_problems, redact_urls, require_secrets


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


def test_a_config_file_is_read_for_that_call_only(tmp_path: Path, monkeypatch):
    """The file named by --config leaves the process environment as it was: the next
    settings built without it (another part, a test) are the defaults again."""
    monkeypatch.delenv("EDGELENS_CONFIG", raising=False)
    config = tmp_path / "edgelens.toml"
    config.write_text("[search]\ntop_k = 9\n")
    assert load_settings(config).search.top_k == 9
    assert "EDGELENS_CONFIG" not in os.environ
    assert load_settings().search.top_k == 5


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


def test_a_bad_setting_is_shown_back_without_its_password_and_in_words(monkeypatch):
    monkeypatch.setenv("EDGELENS_REDIS_URL", "http://:LeakMe1@cache:6379/0")
    monkeypatch.setenv("EDGELENS_MQTT_URL", "mqtt://cam:Secret9@broker:99999")
    monkeypatch.setenv("EDGELENS_DEVICE__MODEL_SERVER_URL", "https://cam:Pw12@web")
    monkeypatch.setenv("EDGELENS_CATALOG__URL", "mysql://shop:Pw34@db/catalog")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "4 invalid setting(s)" in text
    for password in ("LeakMe1", "Secret9", "Pw12", "Pw34"):
        assert password not in text
    assert "'http://:***@cache:6379/0'" in text, "the mistyped URL is still shown"
    assert "without a user or password" in text and "^https?" not in text, "words, no regex"
    assert "mysql:// is not a catalog" in text and "Value error" not in text


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


def test_production_keeps_the_dashboard_private_unless_made_public():
    assert load_settings().web.public_dashboard, "the demo's dashboard is open"
    assert not load_settings(mode="production").web.public_dashboard
    assert load_settings(mode="production", web={"public_dashboard": True}).web.public_dashboard


def test_production_problems_name_the_setting_that_fixes_each():
    demo = load_settings(
        redis_url="redis://10.0.0.5:6379/0",
        mqtt_url="mqtt://broker:1883",
        catalog={"url": "postgresql://edgelens:pw@db.shop:5432/catalog"},
        device={"model_server_url": "http://dashboard.shop"},
    )
    problems = " | ".join(production_problems(demo))
    for fix in (
        "device.model_server_url: plain HTTP to dashboard.shop",
        "catalog.url: PostgreSQL at db.shop without TLS",
        "mqtt_url needs a user and password",
        "mqtt_url: plain MQTT to broker: use mqtts://",
        "redis_url needs a password",
        "redis_url: plain Redis to 10.0.0.5: use rediss://",
        "web.secret_key",
        "web.secure_cookies",
        "web.public_dashboard",
    ):
        assert fix in problems
    ready = load_settings(
        mode="production",
        redis_url="rediss://:pw@10.0.0.5:6379/0",
        mqtt_url="mqtts://worker:pw@broker:8883",
        web={"secret_key": "k" * 40, "secure_cookies": True},
        catalog={"url": "postgresql://edgelens:pw@db.shop:5432/catalog?sslmode=verify-full"},
        device={"model_server_url": "https://dashboard.shop"},
    )
    assert production_problems(ready) == []
    require_secrets(ready, mqtt=True, redis=True, web=True)
    loopback = load_settings(mode="production", redis_url="redis://:pw@127.0.0.1:6379/0")
    assert production_problems(loopback, mqtt=False, web=False) == [], "plain on loopback"
    with pytest.raises(ConfigError, match=r"web\.secure_cookies"):
        require_secrets(ready.model_copy(update={"web": demo.web}), web=True)


def test_passwords_in_urls_are_never_shown():
    settings = load_settings(
        redis_url="redis://:red-secret@10.0.0.5:6379/0", mqtt_url="mqtts://cam:mq-secret@b:8883"
    )
    shown = json.dumps(settings.redacted())
    assert "red-secret" not in shown and "mq-secret" not in shown
    assert "redis://:***@10.0.0.5:6379/0" in shown and "mqtts://cam:***@b:8883" in shown
    assert (
        redact_urls("lost redis://u:p%40ss@h:1/0: refused") == "lost redis://u:***@h:1/0: refused"
    )


def test_the_milvus_lite_file_lives_in_the_data_dir_unless_named(tmp_path: Path):
    assert load_settings(data_dir=tmp_path).milvus_uri == str(tmp_path / "milvus.db")
    named = load_settings(data_dir=tmp_path, search={"milvus_uri": "http://vectors:19530"})
    assert named.milvus_uri == "http://vectors:19530"


def test_a_device_view_budget_is_at_most_what_the_wire_carries():
    from pydantic import ValidationError

    from edgelens.settings import VIEW_BYTES, DeviceSettings
    from edgelens.wire.features import MAX_JPEG_BYTES

    assert DeviceSettings().view_bytes == VIEW_BYTES <= MAX_JPEG_BYTES
    assert DeviceSettings(view_bytes=MAX_JPEG_BYTES).view_bytes == MAX_JPEG_BYTES
    with pytest.raises(ValidationError, match="view_bytes"):
        DeviceSettings(view_bytes=MAX_JPEG_BYTES + 1)
