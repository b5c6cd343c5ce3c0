"""``edgelens web run`` reports a missing model as one line, before serving anything."""

from typer.testing import CliRunner

from edgelens.cli import web
from edgelens.settings import Settings


def test_web_run_without_a_model_is_one_error_line(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELENS_MODELS_DIR", str(tmp_path / "no-models"))
    # The group has one command, so typer runs it directly; `edgelens web run` in main.py.
    result = CliRunner().invoke(web.app, [], obj=Settings())
    assert result.exit_code == 1
    assert "no rgem fp32 model" in result.output
    assert "Traceback" not in result.output
