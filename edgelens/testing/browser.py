"""Headless Chromium for the browser tests and the live-path benchmark (Debian's packages)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(user_data_dir: Path, *, extra_arguments: Iterable[str] = ()):
    """A Chrome WebDriver on Debian's chromium, quiet and sandbox-free (we run as root);
    ``extra_arguments`` go on its command line after ours (``--hide-scrollbars``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={user_data_dir}",
        *extra_arguments,
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
