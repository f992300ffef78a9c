"""Driving the study survey in headless Chromium (Debian's /usr/bin/chromium + chromedriver).

`require_browser()` skips a test when no browser is available, or fails it when the environment
variable CCUB_BROWSER_TESTS=required (CI), so a missing browser cannot silently pass a build.
`chromium(download_dir)` yields a WebDriver whose downloads land in `download_dir`;
`complete_survey(...)` answers a whole survey through its real controls and returns the saved JSON.

Selenium is only imported inside the functions: collecting the tests must work without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30  # generous: a loaded CI machine can take seconds to render a page

# (item id, prompt, question id, slots in page order) -> slots best first
Ranker = Callable[[str, str, str, list[str]], list[str]]


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt install chromium chromium-driver)"
    return None


def require_browser() -> None:
    """Skip the calling test without a browser; fail it instead when CCUB_BROWSER_TESTS=required."""
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CCUB_BROWSER_TESTS") == "required":
        pytest.fail(f"browser tests are required but cannot run: {problem}")
    pytest.skip(problem)


@contextlib.contextmanager
def chromium(download_dir: Path) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, saving downloads into `download_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    download_dir = Path(download_dir).resolve()
    download_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ccub-chromium-") as profile:
        options = webdriver.ChromeOptions()
        # An explicit binary and driver keep selenium-manager from looking for them online.
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1366,900", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
        })
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                                   "downloadPath": str(download_dir)})
            yield driver
        finally:
            driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def wait_for_download(directory: Path, suffix: str, timeout: float = WAIT_S) -> Path:
    """The one finished download in `directory` whose name ends with `suffix`."""
    def finished(_: Any) -> Path | None:
        if any(p.name.endswith(".crdownload") for p in Path(directory).iterdir()):
            return None
        matches = sorted(Path(directory).glob(f"*{suffix}"))
        if len(matches) > 1:
            raise AssertionError(f"several downloads end with {suffix}: {[m.name for m in matches]}")
        return matches[0] if matches else None

    return wait_for(None, finished, timeout)


def page(driver: Any) -> tuple[str, str | None]:
    """(kind of the page shown: consent / item / end, the item id on an item page)."""
    main = driver.find_element("id", "page")
    return main.get_attribute("data-page"), main.get_attribute("data-item")


def message(driver: Any) -> str:
    return driver.find_element("id", "message").text


def click(driver: Any, element_id: str) -> None:
    driver.find_element("id", element_id).click()


def open_survey(driver: Any, html_path: Path) -> None:
    driver.get(Path(html_path).resolve().as_uri())
    wait_for(driver, lambda d: page(d)[0] is not None)


def consent(driver: Any, affiliation: tuple[str, str] | None = ("yes", "text")) -> None:
    """Tick consent, answer the affiliation question (None leaves it alone) and start."""
    box = driver.find_element("id", "consent")
    if not box.is_selected():
        box.click()
    if affiliation is not None:
        identifies, description = affiliation
        driver.find_element("css selector", f'input[name="identifies"][value="{identifies}"]').click()
        field = driver.find_element("id", "affiliation-description")
        field.clear()
        field.send_keys(description)
    click(driver, "start")
    wait_for(driver, lambda d: page(d)[0] == "item")


def slots(driver: Any) -> list[str]:
    """The image slots of the item shown, in page order."""
    return [b.get_attribute("data-slot") for b in driver.find_elements("css selector", "button.zoom[data-slot]")]


def set_rank(driver: Any, question: str, slot: str, rank: int | None) -> None:
    """Choose `rank` (None: unset) in the select of (question, slot), as a click on its option would."""
    # One click on the option: selenium's Select takes three times as many round trips.
    value = "" if rank is None else str(rank)
    driver.find_element("css selector", f'select[data-question="{question}"][data-slot="{slot}"] '
                                        f'option[value="{value}"]').click()


def rank_item(driver: Any, question: str, ranking: list[str]) -> None:
    """Give the slots of `ranking` ranks 1, 2, ... for `question` on the item page shown."""
    for rank, slot in enumerate(ranking, start=1):
        set_rank(driver, question, slot, rank)


def questions(driver: Any) -> list[str]:
    return [f.get_attribute("data-question") for f in driver.find_elements("css selector", "fieldset.question")]


def answer_item(driver: Any, rank: Ranker) -> str:
    """Rank every question of the item shown with `rank`; return the item id."""
    item = page(driver)[1]
    prompt = driver.find_element("id", "prompt").text
    shown = slots(driver)
    for question in questions(driver):
        rank_item(driver, question, rank(item, prompt, question, list(shown)))
    return item


def next_page(driver: Any) -> None:
    """Click Next and wait until the page changed."""
    before = page(driver)
    click(driver, "next")
    wait_for(driver, lambda d: page(d) != before)


def save(driver: Any, download_dir: Path, fmt: str) -> Path:
    click(driver, f"save-{fmt}")
    return wait_for_download(download_dir, f".{fmt}")


def complete_survey(driver: Any, html_path: Path, download_dir: Path, rank: Ranker,
                    affiliation: tuple[str, str] | None = ("yes", "text"), csv: bool = True) -> dict:
    """Open, consent, answer every item with `rank`, save JSON (and CSV); return the parsed JSON."""
    open_survey(driver, html_path)
    consent(driver, affiliation)
    while page(driver)[0] == "item":
        answer_item(driver, rank)
        next_page(driver)
    saved = json.loads(save(driver, download_dir, "json").read_text(encoding="utf-8"))
    if csv:
        save(driver, download_dir, "csv")
    return saved


def blocked_requests(driver) -> list[str]:
    """The CSP directives that blocked an image and a fetch the open page tried (to port 9 on this
    machine, discard, in case the policy were not applied: nothing leaves it)."""
    violated = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const seen = [];
        document.addEventListener("securitypolicyviolation", (e) => seen.push(e.effectiveDirective));
        const img = document.createElement("img");
        img.src = "http://127.0.0.1:9/x.png";
        document.body.append(img);
        fetch("http://127.0.0.1:9/x").catch(() => null).finally(() => setTimeout(() => done(seen), 100));
    """)
    return sorted(set(violated))
