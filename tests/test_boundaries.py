"""Each part has its room: the featurizer runtime pulls in no export, web or cloud stack."""

import subprocess
import sys

FORBIDDEN = ("torch", "fastapi", "redis", "uvicorn", "onnx", "skimage")


def test_featurizer_imports_no_heavy_or_foreign_stack():
    code = (
        "import sys, edgelens.featurizer.runtime, edgelens.featurizer.preprocess\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
