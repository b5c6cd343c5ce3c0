"""Each part has its room: a device install (the [device] extra) runs without the cloud,
web and export stacks, and the featurizer imports none of them."""

import subprocess
import sys

import pytest

CLOUD_WEB_EXPORT = (
    "torch",
    "sqlalchemy",
    "psycopg",
    "fastapi",
    "redis",
    "uvicorn",
    "sse_starlette",
    "faiss",
    "threadpoolctl",
    "skimage",
    "onnx",
    "jinja2",
)

# Makes the listed packages unimportable, as on a device that installed only [device].
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {CLOUD_WEB_EXPORT!r}:
            raise ModuleNotFoundError(f"{{name}} is not installed on a device")
sys.meta_path.insert(0, Block())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "modules",
    [
        ("edgelens.featurizer.runtime", "edgelens.featurizer.preprocess"),
        ("edgelens.device.loop", "edgelens.cli.device"),
    ],
)
def test_device_side_modules_load_nothing_of_the_other_parts(modules):
    """Not even the catalog's sqlite3 or the server stacks are loaded by the device loop."""
    code = (
        f"import sys, {', '.join(modules)}\n"
        f"print(','.join(m for m in {(*CLOUD_WEB_EXPORT, 'sqlite3')!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_cli_and_the_device_loop_work_without_cloud_web_and_export_packages():
    code = (
        "from typer.testing import CliRunner\n"
        "from edgelens.cli.main import app\n"
        "import edgelens.device.loop\n"
        "result = CliRunner().invoke(app, ['device', 'run', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ok')\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_the_blocker_really_blocks():
    out = _python("import redis")
    assert out.returncode != 0 and "not installed on a device" in out.stderr
