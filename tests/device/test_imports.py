"""The device installs with the [device] extras alone: it never imports the cloud or web stacks."""

import subprocess
import sys

FORBIDDEN = ("redis", "fastapi", "uvicorn", "starlette", "torch", "onnx", "skimage", "sqlite3")


def test_device_imports_no_cloud_web_or_export_stack():
    code = (
        "import sys, edgelens.device.loop, edgelens.cli.device\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
