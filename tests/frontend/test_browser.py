"""The person's journey in headless Chromium: sign up, chat, tasks sync, complete, sign out."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import (
    PASSWORD,
    REPO,
    SESSION_SECRET,
    FakeBackend,
    Proc,
    Scripted,
    start_frontend,
    unique_name,
)

pytestmark = pytest.mark.browser
SHOTS = REPO / "test-output" / "frontend"


@pytest.fixture
def browser(chromium_path: str) -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="todo-web-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_window_size(1280, 800)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """Make the *viewport* (not the window) exactly width x height."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


TASK_STATE_JS = """
const want = arguments[0];
for (const li of document.querySelectorAll('#task-list li.task')) {
  const title = li.querySelector('.task-title');
  if (title && title.textContent.trim().toLowerCase() === want) {
    return {done: li.classList.contains('done'), checked: li.querySelector('.task-check').checked};
  }
}
return null;
"""


def task_state(driver: WebDriver, title: str) -> dict | None:
    """{'done', 'checked'} for the task row titled ``title``, or None (re-render safe)."""
    return driver.execute_script(TASK_STATE_JS, title)


def click_task_checkbox(driver: WebDriver, title: str) -> None:
    for _ in range(10):
        try:
            for item in driver.find_elements(By.CSS_SELECTOR, "#task-list li.task"):
                label = item.find_element(By.CSS_SELECTOR, ".task-title").text.strip().lower()
                if label == title:
                    item.find_element(By.CSS_SELECTOR, "input.task-check").click()
                    return
        except StaleElementReferenceException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no task row titled {title!r}")


def test_journey(browser: WebDriver, frontend: Proc, backend: Proc) -> None:
    wait = WebDriverWait(browser, 30)
    name = unique_name("milk")
    viewport(browser, 1280, 800)
    browser.get(f"{frontend.url}/")
    assert browser.find_element(By.CSS_SELECTOR, "form[action='/login']")
    shot(browser, "signin-desktop")
    viewport(browser, 390, 844)
    shot(browser, "signin-phone")
    viewport(browser, 1280, 800)

    # Sign up through the tab.
    browser.find_element(By.LINK_TEXT, "Create account").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form[action='/signup']")))
    browser.find_element(By.ID, "username").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/signup'] button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "composer")))
    wait.until(ec.visibility_of_element_located((By.ID, "tasks-empty")))
    assert "No tasks yet" in browser.find_element(By.ID, "tasks-empty").text
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=agent-mode]").text.strip()
    shot(browser, "app-empty-desktop")

    # The page must not be reloaded by chatting: mark the window and check later.
    browser.execute_script("window.__noReload = true;")

    box = browser.find_element(By.ID, "message")
    box.send_keys("add a task to buy milk")
    box.send_keys(Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#messages .bubble.assistant")))
    reply = browser.find_element(By.CSS_SELECTOR, "#messages .bubble.assistant")
    assert reply.get_attribute("textContent").strip()
    chips = [c.get_attribute("textContent") for c in reply.find_elements(By.CSS_SELECTOR, ".chip")]
    assert any(c.startswith("add_task") for c in chips), chips
    wait.until(lambda d: task_state(d, "buy milk") is not None)
    assert browser.execute_script("return window.__noReload === true;")
    assert browser.find_element(By.ID, "send").is_enabled()

    # A second message so the screenshot shows a real conversation.
    box = browser.find_element(By.ID, "message")
    box.send_keys("add a task to call the plumber")
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .bubble.assistant")) >= 2)
    wait.until(lambda d: task_state(d, "call the plumber") is not None)

    # Complete "buy milk" via its checkbox; assert it persisted through the API.
    click_task_checkbox(browser, "buy milk")
    wait.until(lambda d: (task_state(d, "buy milk") or {}).get("done") is True)
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    session_cookie = next(c for c in browser.get_cookies() if c["name"] == "todo_session")
    assert session_cookie["httpOnly"] is True and session_cookie.get("sameSite") == "Lax"

    def milk_completed() -> bool:
        items = httpx.get(f"{frontend.url}/api/tasks", cookies=cookies).json()["items"]
        return any(t["title"].lower() == "buy milk" and t["completed"] for t in items)

    WebDriverWait(browser, 10).until(lambda _: milk_completed())
    assert not browser.execute_script("return document.cookie;")  # HttpOnly: invisible to JS
    shot(browser, "app-desktop")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    time.sleep(0.4)  # let colour transitions finish
    shot(browser, "app-desktop-dark")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    viewport(browser, 390, 844)
    browser.execute_script("window.scrollTo(0, 0);")
    shot(browser, "app-phone")
    browser.execute_script("document.querySelector('.tasks').scrollIntoView();")
    shot(browser, "app-phone-tasks")
    viewport(browser, 1280, 800)

    # Inline edit (Enter saves) and delete, both persisted through the API.
    def row_button(title: str, css: str) -> None:
        for _ in range(10):
            try:
                for item in browser.find_elements(By.CSS_SELECTOR, "#task-list li.task"):
                    label = item.find_element(By.CSS_SELECTOR, ".task-title").text.strip().lower()
                    if label == title:
                        item.find_element(By.CSS_SELECTOR, css).click()
                        return
            except StaleElementReferenceException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no task row titled {title!r}")

    def titles() -> list[str]:
        items = httpx.get(f"{frontend.url}/api/tasks", cookies=cookies).json()["items"]
        return sorted(t["title"].lower() for t in items)

    row_button("call the plumber", ".task-edit")
    editor = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".task-edit-input")))
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("call the electrician", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda _: "call the electrician" in titles())
    wait.until(lambda d: task_state(d, "call the electrician") is not None)
    row_button("call the electrician", ".task-delete")
    WebDriverWait(browser, 10).until(lambda _: titles() == ["buy milk"])
    wait.until(lambda d: task_state(d, "call the electrician") is None)

    # New chat clears the panel; the history menu reopens the conversation.
    browser.find_element(By.ID, "new-chat").click()
    wait.until(ec.visibility_of_element_located((By.ID, "welcome")))
    assert not browser.find_elements(By.CSS_SELECTOR, "#messages .bubble")
    browser.find_element(By.CSS_SELECTOR, "#conv-menu summary").click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#conv-list button.menu-item")))
    shot(browser, "history-menu-desktop")
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#conv-list button.menu-item").click() or True
    )
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .bubble.user")) >= 2)
    transcript = browser.find_element(By.ID, "messages").get_attribute("textContent")
    assert "call the plumber" in transcript.lower()
    shot(browser, "app-reopened-conversation-desktop")

    # Sign out: back to the sign-in page.
    browser.find_element(By.ID, "logout").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form[action='/login']")))
    assert "Sign in" in browser.title


def test_session_expiry_keeps_the_draft(browser: WebDriver, frontend: Proc) -> None:
    wait = WebDriverWait(browser, 30)
    name = unique_name("draft")
    browser.get(f"{frontend.url}/signup")
    browser.find_element(By.ID, "username").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/signup'] button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "composer")))
    box = browser.find_element(By.ID, "message")
    box.send_keys("add a task to water the plants")
    # Expire the session server-side: sign out from another "tab" sharing the cookie.
    value = browser.get_cookie("todo_session")["value"]
    header = {"Cookie": f"todo_session={value}"}
    csrf = httpx.get(f"{frontend.url}/api/session", headers=header).json()["csrf_token"]
    out = httpx.post(f"{frontend.url}/logout", headers=header, data={"csrf_token": csrf})
    assert out.status_code == 303
    fresh = out.cookies["todo_session"]
    browser.delete_all_cookies()
    browser.add_cookie({"name": "todo_session", "value": fresh, "path": "/"})
    browser.find_element(By.ID, "send").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form[action='/login']")))
    assert "session expired" in browser.page_source.lower()
    shot(browser, "session-expired-desktop")
    browser.find_element(By.ID, "username").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "composer")))
    wait.until(
        lambda d: (
            d.find_element(By.ID, "message").get_attribute("value")
            == "add a task to water the plants"
        )
    )


def test_backend_down_page(browser: WebDriver, frontend_backend_down: Proc) -> None:
    viewport(browser, 1280, 800)
    browser.get(f"{frontend_backend_down.url}/")
    banner = browser.find_element(By.CSS_SELECTOR, "[data-testid=backend-unreachable]")
    assert "unreachable" in banner.text.lower()
    assert browser.find_element(By.CSS_SELECTOR, "form[action='/login']")
    shot(browser, "backend-down-desktop")


def _json(value: object, status: int = 200, **headers: str) -> Scripted:
    return Scripted(status=status, body=json.dumps(value).encode(),
                    headers={"Content-Type": "application/json", **headers})


def test_limits_show_beside_the_action_and_older_messages_load(
        browser: WebDriver, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 19: a quota refusal (429 + Retry-After, 409) is shown where the person acted, with
    when to try again; a long conversation opens on its newest page and loads older on demand."""
    from todo_web.session import encode_session, make_signer

    fake = FakeBackend()
    limit = "You have reached the limit of 10000 tasks; delete some to add more."
    full = "This conversation has reached its limit of 1000 messages; start a new chat."
    newest = [{"id": 101 + n, "role": "user" if n % 2 == 0 else "assistant", "content": f"message {101 + n}",
               "created_at": "2026-01-01T00:00:00Z"} for n in range(100)]
    older = [{"id": 1, "role": "user", "content": "the very first message", "created_at": "2026-01-01T00:00:00Z"}]
    fake.replies.update({
        "GET /api/7/tasks": _json({"items": [], "total": 0}),
        "POST /api/7/tasks": _json({"detail": limit}, 429, **{"Retry-After": "30"}),
        "POST /api/7/chat": _json({"detail": full}, 409),
        "GET /api/7/conversations": _json([]),
        "GET /api/7/conversations/3/messages?limit=100": _json(newest),
        "GET /api/7/conversations/3/messages?limit=100&before=101": _json(older),
    })
    frontend = start_frontend(tmp_path_factory.mktemp("fe-browser-limits"), fake.url)
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{frontend.url}/healthz")
        data = {"token": "t", "user_id": "7", "username": "someone", "csrf": "c" * 32}
        browser.add_cookie({"name": "todo_session", "path": "/",
                            "value": encode_session(make_signer(SESSION_SECRET), data)})
        browser.get(f"{frontend.url}/")
        browser.execute_script("sessionStorage.setItem('todo.conversationId', '3')")
        browser.get(f"{frontend.url}/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=load-older]")))
        bubbles = browser.find_elements(By.CSS_SELECTOR, "#messages .bubble")
        # History does not pop in: shown at once (a popping bubble has no visible text yet).
        assert len(bubbles) == 100 and "message 101" in bubbles[0].text
        assert browser.execute_script(
            "return getComputedStyle(arguments[0]).animationName", bubbles[0]) == "none"
        browser.find_element(By.CSS_SELECTOR, "[data-testid=load-older]").click()
        wait.until(lambda d: "the very first message" in d.find_element(By.ID, "messages").text)
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=load-older]")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#messages .bubble")) == 101

        title = browser.find_element(By.ID, "new-title")
        title.send_keys("one too many")
        title.send_keys(Keys.ENTER)
        error = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=task-error]")))
        assert error.text == f"{limit} Try again in 30 seconds."

        box = browser.find_element(By.ID, "message")
        box.send_keys("add a task to overflow")
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: full in d.find_element(By.ID, "messages").text)
        shot(browser, "limits-desktop")
    finally:
        frontend.stop()
        fake.close()
