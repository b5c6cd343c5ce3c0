"""The server's deployment files and the example catalog: what docs/deploy.md and the
README tell a shop to use must load and name commands that exist."""

import configparser
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgelens.catalog.sources import collect_sources
from edgelens.cli.main import app
from edgelens.settings import Settings

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_each_service_runs_an_edgelens_command_that_exists(unit: Path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(unit)
    service = parser["Service"]
    assert service["EnvironmentFile"].startswith("/etc/edgelens/")
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/edgelens")
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_the_server_settings_load_as_production(monkeypatch):
    for key in ("EDGELENS_DATA_DIR", "EDGELENS_MODE", "EDGELENS_WEB__HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EDGELENS_CONFIG", str(REPO / "deploy" / "edgelens.toml"))
    settings = Settings()
    assert settings.mode == "production" and str(settings.data_dir) == "/var/lib/edgelens"
    assert settings.web.public_dashboard is False and settings.web.secure_cookies is True


def test_the_example_catalog_names_several_photos_of_an_item():
    sources = {s.item_id: s for s in collect_sources([REPO / "examples" / "catalog.csv"])}
    assert set(sources) == {"oat-vanilla", "oat-natural", "rye-bread"}
    assert [p.name for p in sources["oat-vanilla"].images] == ["front.jpg", "back.jpg", "shelf.jpg"]
    assert sources["rye-bread"].available is False and sources["oat-natural"].price == 2.29
