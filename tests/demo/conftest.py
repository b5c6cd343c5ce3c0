"""One data dir for the demo tests: the first start builds the demo's catalog, the
others find it cached (as a user's second start does)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-data")
