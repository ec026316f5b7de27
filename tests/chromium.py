"""Debian's chromium under Selenium, through the system chromedriver (no driver download): where they
are, and a headless browser that logs its console and network. Shared by test_web_browser.py and
bench/web_ttft.py; it starts nothing by itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)


def new_browser(language: str = "en-US", width: int = 1280, height: int = 900):
    """A headless chromium whose UI language is `language`, recording console and performance logs."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    args = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"]
    for arg in [*args, f"--lang={language}"]:
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # chromium refuses to run as root with its sandbox
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)
