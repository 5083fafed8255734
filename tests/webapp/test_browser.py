"""A coder's day in a real browser: sign in, work the queue, fix a claim, release it.

Chromium (Debian's) driven by Selenium against ``billable serve --auth smart`` with the
Synthea sample (tests/webapp/sample.py): two draft claims wait in the queue, one held by
a header diagnosis code (``code-not-billable``), one by a short new-patient visit
(``em-new-under-15``). The screenshots in docs/img/ are taken by this run.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.webapp.conftest import CODER, PASSWORD, ROOT, Served

pytestmark = pytest.mark.browser
IMG = ROOT / "docs" / "img"
WAIT_S = 30


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def _queue_patients(driver: Any) -> list[str]:
    return [a.text for a in driver.find_elements(_by("CSS_SELECTOR"), "table.queue a.open")]


def _kpi(driver: Any, name: str) -> str:
    return str(driver.find_element(_by("ID"), f"kpi-{name}").text)


def _shot(driver: Any, name: str, height: int = 768) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1366, height)
    driver.save_screenshot(str(IMG / f"{name}.png"))
    driver.set_window_size(1366, 768)


def _sign_in(driver: Any, served: Served) -> None:
    driver.get(f"{served.base}/app/")
    # Billable's own authorization server shows its login page (no login of the app's own).
    _wait(driver, lambda d: "/auth/authorize" in d.current_url)
    assert "Billable coder app" in driver.page_source
    driver.find_element(_by("ID"), "username").send_keys(CODER)
    driver.find_element(_by("ID"), "password").send_keys(PASSWORD)
    driver.find_element(_by("CSS_SELECTOR"), "button[type=submit]").click()
    _wait(driver, lambda d: d.current_url.rstrip("/").endswith("/app") or "/app/?" in d.current_url)
    _wait(driver, lambda d: d.find_element(_by("ID"), "signed-in-as"))


UNLABELLED = (
    "return Array.from(document.querySelectorAll("
    "'input:not([type=hidden]), select, textarea, button'))"
    ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
    " && !(e.textContent || '').trim()).map(e => e.outerHTML)"
)


def _unlabelled_controls(driver: Any) -> list[str]:
    """Form controls a screen reader could not name (WCAG 2.1 1.3.1 / 4.1.2)."""
    return list(driver.execute_script(UNLABELLED))


def _fill(driver: Any, element_id: str, text: str) -> None:
    field = driver.find_element(_by("ID"), element_id)
    field.clear()
    field.send_keys(text)


def test_a_coder_signs_in_fixes_a_code_releases_the_claim_and_sees_the_numbers_change(
    browser: Any, served: Served
) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver = browser
    _sign_in(driver, served)
    assert "coder1" in driver.find_element(_by("ID"), "signed-in-as").text
    patients = _queue_patients(driver)
    assert len(patients) == 2, patients
    # The count comes after the page (htmx), so that the page never waits for it.
    _wait(driver, lambda d: d.find_element(_by("ID"), "queue-count").text == "2 claims to review")
    marvin = next(p for p in patients if p.startswith("Marvin"))
    assert _unlabelled_controls(driver) == []
    _shot(driver, "queue")

    # The dashboard before: two claims in the queue.
    driver.get(f"{served.base}/app/dashboard")
    assert _kpi(driver, "open") == "2"
    before_clean = _kpi(driver, "clean")

    # Filter by edit (htmx re-renders the results as the select changes, and the URL
    # follows): only the header-code claim is held by code-not-billable.
    driver.get(f"{served.base}/app/")
    Select(driver.find_element(_by("ID"), "f-edit")).select_by_value("code-not-billable")
    _wait(driver, lambda d: "edit=code-not-billable" in d.current_url)
    _wait(driver, lambda d: _queue_patients(d) == [marvin])

    # Keyboard: j moves to the first claim, Enter opens it.
    body = driver.find_element(_by("TAG_NAME"), "body")
    body.send_keys("j")
    focused = driver.switch_to.active_element
    assert focused.text == marvin
    focused.send_keys(Keys.ENTER)
    _wait(driver, lambda d: "/app/claim/" in d.current_url)
    assert driver.find_element(_by("ID"), "claim-status").text == "draft"
    codes = [c.text for c in driver.find_elements(_by("CSS_SELECTOR"), "#diagnoses code.dx-code")]
    assert codes == ["E11"]
    assert "code-not-billable" in driver.find_element(_by("ID"), "edits").text
    # The trace: E11 was given by the EHR on the visit's Condition.
    assert "given by the EHR" in driver.find_element(_by("ID"), "diagnoses").text
    assert _unlabelled_controls(driver) == []

    # Override the code, with a reason: the claim is regenerated with it and held.
    Select(driver.find_element(_by("ID"), "d-action")).select_by_value("dx-code")
    _fill(driver, "d-target", "E11")
    _fill(driver, "d-value", "E11.9")
    _fill(driver, "d-reason", "A1c and note: type 2 diabetes without complications")
    driver.find_element(_by("CSS_SELECTOR"), "#decide-form button[type=submit]").click()
    _wait(driver, lambda d: "done=decided" in d.current_url)
    codes = [c.text for c in driver.find_elements(_by("CSS_SELECTOR"), "#diagnoses code.dx-code")]
    assert codes == ["E11.9"]
    assert "coder-hold" in driver.find_element(_by("ID"), "edits").text
    assert "dx-code E11 → E11.9" in driver.find_element(_by("ID"), "decisions").text
    _shot(driver, "claim", 1200)

    # Release: the claim goes active and on to adjudication, and leaves the queue.
    _fill(driver, "r-reason", "Specificity fixed from the documentation")
    driver.find_element(_by("CSS_SELECTOR"), "#release-form button[type=submit]").click()
    _wait(driver, lambda d: "done=released" in d.current_url)
    assert marvin not in _queue_patients(driver)
    assert len(_queue_patients(driver)) == 1

    driver.get(f"{served.base}/app/dashboard")
    assert _kpi(driver, "open") == "1"
    assert _kpi(driver, "clean") == before_clean, "a fixed claim was not a clean claim"
    charts = driver.find_elements(_by("CSS_SELECTOR"), "figure.chart svg[role=img]")
    assert len(charts) == 5
    _shot(driver, "dashboard", 1100)


def test_a_documentation_query_takes_the_claim_out_of_the_queue_until_answered(
    browser: Any, served: Served
) -> None:
    driver = browser
    driver.get(f"{served.base}/app/?edit=em-new-under-15")
    if "/auth/authorize" in driver.current_url:
        _sign_in(driver, served)
        driver.get(f"{served.base}/app/?edit=em-new-under-15")
    patients = _queue_patients(driver)
    assert len(patients) == 1
    driver.find_element(_by("CSS_SELECTOR"), "table.queue a.open").click()
    _wait(driver, lambda d: "/app/claim/" in d.current_url)
    _fill(driver, "q-question", "Please document the total time spent on the date of the visit.")
    driver.find_element(_by("CSS_SELECTOR"), "#query-form button[type=submit]").click()
    _wait(driver, lambda d: "done=queried" in d.current_url)
    assert patients[0] not in _queue_patients(driver)

    driver.get(f"{served.base}/app/queries")
    assert "total time spent" in driver.page_source
    answer = driver.find_element(_by("CSS_SELECTOR"), "article.query textarea")
    answer.send_keys("Total time 22 minutes, documented in the note.")
    driver.find_element(_by("CSS_SELECTOR"), "article.query button[type=submit]").click()
    _wait(driver, lambda d: "done=answered" in d.current_url)
    driver.get(f"{served.base}/app/")
    assert patients[0] in _queue_patients(driver)


def test_pages_keep_the_apis_security_the_session_cookie_is_httponly_and_no_cdn(
    browser: Any, served: Served
) -> None:
    import httpx

    driver = browser
    cookie = driver.get_cookie("billable_coder")
    assert cookie is not None and cookie["httpOnly"] is True
    page = httpx.get(f"{served.base}/app/", cookies={"billable_coder": cookie["value"]})
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in " ".join(
        line for line in page.text.splitlines() if "<script" in line or "stylesheet" in line
    ), "every asset is served by Billable"
    # Without a session the app sends the browser to sign in; the API still wants a token.
    assert httpx.get(f"{served.base}/app/").status_code == 303
    assert httpx.get(f"{served.base}/fhir/Task").status_code == 401
