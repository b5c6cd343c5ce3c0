"""Headless Chromium for the browser tests and the live-path benchmark (Debian's packages)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIGN_IN_WAIT_S = 20


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


def sign_in(driver, base_url: str, *, username: str, password: str, then: str = "") -> None:
    """Sign in through the login form (to ``then``, a path, afterwards) and wait until
    the page says who is signed in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/login" + (f"?next={then}" if then else ""))
    form = driver.find_element(By.ID, "login-form")
    form.find_element(By.NAME, "username").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, SIGN_IN_WAIT_S).until(lambda d: d.find_elements(By.ID, "signed-in"))
