"""``edgelens web``: run reports a missing model as one line; add-admin makes an admin."""

from typer.testing import CliRunner

from edgelens.cli import web
from edgelens.settings import Settings
from edgelens.webapp.services.accounts import AccountStore, accounts_path


def test_web_run_without_a_model_is_one_error_line(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELENS_MODELS_DIR", str(tmp_path / "no-models"))
    result = CliRunner().invoke(web.app, ["run"], obj=Settings())
    assert result.exit_code == 1
    assert "no rgem fp32 model" in result.output
    assert "Traceback" not in result.output


def test_add_admin_stores_a_hash_and_refuses_short_passwords(settings):
    runner = CliRunner()
    short = runner.invoke(
        web.app, ["add-admin", "ops", "--password-stdin"], input="short\n", obj=settings
    )
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    made = runner.invoke(
        web.app, ["add-admin", "ops", "--password-stdin"], input="a long passphrase\n", obj=settings
    )
    assert made.exit_code == 0, made.output
    accounts = AccountStore(accounts_path(settings.data_dir))
    try:
        assert accounts.authenticate(username="ops", password="a long passphrase")
        assert not accounts.authenticate(username="ops", password="a long passphrase!")
        assert not accounts.authenticate(username="nobody", password="a long passphrase")
        stored = accounts._db.execute("SELECT password_hash FROM admins").fetchone()[0]
        assert stored.startswith("scrypt$") and "a long passphrase" not in stored
    finally:
        accounts.close()


def test_add_admin_reads_the_password_from_a_file(settings, tmp_path):
    secret = tmp_path / "ops.secret"
    secret.write_text("a long passphrase\nignored second line\n")
    made = CliRunner().invoke(
        web.app, ["add-admin", "ops", "--password-file", str(secret)], obj=settings
    )
    assert made.exit_code == 0, made.output
    accounts = AccountStore(accounts_path(settings.data_dir))
    try:
        assert accounts.authenticate(username="ops", password="a long passphrase")
    finally:
        accounts.close()
    missing = CliRunner().invoke(
        web.app, ["add-admin", "ops", "--password-file", str(tmp_path / "nope")], obj=settings
    )
    assert missing.exit_code == 1 and "cannot read the password file" in missing.output
