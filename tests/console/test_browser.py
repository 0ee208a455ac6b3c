"""The console in a real browser (Debian's chromium through Playwright) against the real
local stack: ``poise console`` as a process, Mosquitto started by the project.

Until ``poise worker`` is part of the project, the live points of this test come from the
test itself (tests/console/feed.py publishes them in the worker's MQTT message format), so
the counters must show exactly what was sent. Screenshots of every page are kept under
build/test-artifacts/console/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from poise.core.clinical import EXERCISES
from tests.conftest import wait_until
from tests.console.feed import Feeder
from tests.console.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    SITE,
    add_user,
    console_process,
    shot,
)

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is missing: make browser"
    ),
]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def wait_js(page, expression: str, timeout_s: float = 10) -> None:
    """Poll a page expression (page.evaluate is not bound by the page's CSP, which forbids
    the eval that wait_for_function needs)."""
    wait_until(lambda: bool(page.evaluate(expression)), timeout_s, expression)


def open_editor(page) -> None:
    if not page.locator("#rx-toml").is_visible():
        page.get_by_text("Edit the prescription (TOML)").click()


def add_patient(page, url: str, pid: str) -> None:
    page.goto(f"{url}/patients")
    page.get_by_label("Patient id").fill(pid)
    page.get_by_label("Age band").select_option("70-74")
    page.get_by_label("Sex (for the norms)").select_option("female")
    for i, (suffix, segment, side) in enumerate(
        (
            ("lowerback", "lower_back", "none"),
            ("thigh", "thigh", "right"),
            ("shank", "shank", "right"),
        )
    ):
        page.locator(f"#sensor_{i}").fill(f"{pid}-{suffix}")
        page.locator(f"#segment_{i}").select_option(segment)
        page.locator(f"#side_{i}").select_option(side)
    page.get_by_role("button", name="Add patient").click()
    page.wait_for_url(f"**/patients/{pid}")


def test_a_live_session_in_the_browser(stack, tmp_path: Path, browser) -> None:
    info = stack.info()
    data = tmp_path / "console"
    data.mkdir()
    add_user(data, "anna", "therapist")
    add_user(data, "root", "admin")
    feeder = Feeder(stack, SITE, "p001")
    with console_process(data, info.mqtt_host, info.mqtt_port, influx_url=info.influx_url) as url:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # no login: the sign-in page; a wrong password is refused
        page.goto(f"{url}/patients")
        assert "/login" in page.url
        shot(page, "login")
        sign_in(page, url, "anna", "not the password")
        assert "Wrong user name or password" in page.get_by_role("alert").inner_text()
        shot(page, "login-refused")
        # by keyboard only: the name field has the focus, Tab to the password, Enter sends
        page.goto(f"{url}/login")
        # autofocus is applied after load; wait for it rather than type into nothing
        wait_js(page, "document.activeElement && document.activeElement.id === 'name'")
        page.keyboard.type("anna")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        try:
            page.wait_for_url(f"{url}/")
        except playwright.TimeoutError as exc:
            shot(page, "login-by-keyboard-failed")
            page_text = page.content()[:2000]
            raise AssertionError(f"keyboard sign-in stayed at {page.url}: {page_text}") from exc
        shot(page, "room-empty")

        # a patient with the simulator's sensor ids, and a prescription saved from the form
        add_patient(page, url, "p001")
        page.goto(f"{url}/patients")
        shot(page, "patients")
        page.goto(f"{url}/patients/p001")
        page.get_by_text("Edit the prescription (TOML)").click() if not page.locator(
            "#rx-toml"
        ).is_visible() else None
        page.get_by_role("button", name="Save the prescription").click()
        page.wait_for_url("**/patients/p001#prescription")
        assert "knee flexion" in page.locator("#prescription table").inner_text()
        shot(page, "patient")

        # bad form values: a prescription past its own limits
        open_editor(page)
        page.locator("#rx-toml").fill(
            page.locator("#rx-toml").input_value().replace("max_rom_deg = 110", "max_rom_deg = 30")
        )
        page.get_by_role("button", name="Save the prescription").click()
        assert "max_rom_deg" in page.get_by_role("alert").inner_text()
        shot(page, "patient-refused-prescription")

        # start a session: the console publishes session_start (the worker's input)
        page.goto(f"{url}/patients/p001")
        page.get_by_role("button", name="Start a session").click()
        page.wait_for_url(re.compile(r".*/sessions/s-[0-9a-f]+$"))
        sid = page.url.rsplit("/", 1)[1]
        wait_until(
            lambda: any(e["type"] == "session_start" for e in feeder.events),
            10,
            "session_start on MQTT",
        )
        start = next(e for e in feeder.events if e["type"] == "session_start")
        assert start["session"] == sid
        assert [p["sensor"] for p in start["placement"]] == [
            "p001-lowerback",
            "p001-thigh",
            "p001-shank",
        ]
        for sensor, placement, battery in (
            ("p001-lowerback", "lower_back", 81),
            ("p001-thigh", "thigh", 64),
            ("p001-shank", "shank", 12),
        ):
            feeder.status(sensor, placement, battery)

        # a balance trial: the sway trace fills, the RMS shows
        page.get_by_label(re.compile("^Exercise")).select_option("quiet_stance")
        page.get_by_role("button", name="Start the trial").click()
        wait_until(
            lambda: any(e["type"] == "trial_start" for e in feeder.events),
            10,
            "trial_start on MQTT",
        )
        trial = next(e for e in feeder.events if e["type"] == "trial_start")
        assert trial["exercise"] == "quiet_stance"
        assert trial["condition"] == {"eyes": "open", "surface": "firm"}
        feeder.trial("sway", sid, trial["trial"], "quiet_stance")
        wait_js(page, "window.poiseLive && window.poiseLive.points() > 40", 20)
        wait_js(page, "document.getElementById('sway-rms').textContent.includes('0.061')")
        assert "light" in page.locator("#zone").inner_text().lower()
        assert "battery 12 %" in page.locator("#sensors").inner_text()
        time.sleep(1.0)
        shot(page, "live-sway")
        page.get_by_role("button", name="Stop the trial").click()
        feeder.stop()
        wait_until(
            lambda: any(e["type"] == "trial_stop" for e in feeder.events), 10, "trial_stop on MQTT"
        )

        # a knee-flexion trial: the angle trace, target and limit lines, the repetition counter
        page.get_by_label(re.compile("^Exercise")).select_option("rom/knee_flexion")
        page.get_by_role("button", name="Start the trial").click()
        wait_until(
            lambda: sum(e["type"] == "trial_start" for e in feeder.events) == 2,
            10,
            "second trial_start",
        )
        knee = [e for e in feeder.events if e["type"] == "trial_start"][-1]
        assert knee["side"] == "right"
        feeder.trial("rom", sid, knee["trial"], "rom/knee_flexion")
        wait_js(page, "Number(document.getElementById('reps').textContent) >= 4", 30)
        assert page.locator("#marks li.ok").count() >= 2
        assert page.locator("#marks li.no").count() >= 1
        feeder.alert(sid, knee["trial"], "rom_past_limit", 118.0, 110.0, "deg")
        wait_js(page, "document.getElementById('alerts').textContent.includes('rom past limit')")
        shot(page, "live-knee")
        # on a tablet held upright: one column, every control at least 48 px high
        page.set_viewport_size({"width": 768, "height": 1024})
        shot(page, "live-knee-tablet")
        for control in page.locator(
            "main button, main select, main input:not([type=hidden]):not([type=checkbox])"
        ).all():
            box = control.bounding_box()
            assert box is not None
            assert box["height"] >= 47.5, control.evaluate("el => el.outerHTML")
        page.set_viewport_size({"width": 1280, "height": 900})

        # the room, in another tab: the patient, sensors, reps and the open alert first
        room = ctx.new_page()
        room.goto(f"{url}/")
        wait_js(
            room,
            "document.querySelector('.tile .reps') && Number(document.querySelector('.tile .reps').textContent) >= 4",
        )
        tile = room.locator(".tile").first
        assert "p001" in tile.inner_text()
        assert "3/3" in tile.locator(".sensors").inner_text()
        assert "alerting" in (tile.get_attribute("class") or "")
        shot(room, "room")
        room.close()

        # refusals on the live page: pain 11, a missing CSRF token
        page.get_by_role("button", name="Stop the trial").click()
        feeder.stop()
        page.get_by_label(re.compile("^Pain now")).fill("11")
        page.locator("#pain").evaluate("el => el.removeAttribute('max')")
        page.get_by_role("button", name="End the session").click()
        assert "pain: expected a whole number from 0 to 10" in page.locator("#refusal").inner_text()
        shot(page, "live-refused-pain")
        page.locator("form[action$='/stop'] input[name=csrf]").evaluate("el => el.remove()")
        page.get_by_label(re.compile("^Pain now")).fill("3")
        page.get_by_role("button", name="End the session").click()
        assert "security token (CSRF)" in page.get_by_role("alert").inner_text()
        shot(page, "refused-csrf")

        # end the session with pain and fatigue: it is in the patient's history
        page.goto(f"{url}/sessions/{sid}")
        page.get_by_label(re.compile("^Pain now")).fill("3")
        page.get_by_label(re.compile("^Fatigue")).fill("12")
        page.get_by_role("button", name="End the session").click()
        page.wait_for_url("**/patients/p001#history")
        hist = page.locator(f"li.session[data-session='{sid}']").inner_text()
        assert "pain 3/10" in hist
        assert "fatigue 12 (Borg)" in hist
        assert EXERCISES["rom/knee_flexion"][1] in hist
        shot(page, "patient-history")
        wait_until(
            lambda: any(e["type"] == "session_stop" for e in feeder.events), 10, "session_stop"
        )
        stop = next(e for e in feeder.events if e["type"] == "session_stop")
        assert (stop["pain_0_10"], stop["fatigue_borg"]) == (3, 12)

        # the patient's progress report, made by poise.report from the derived data
        page.get_by_role("link", name="Progress report").click()
        page.wait_for_load_state()
        shot(page, "report")
        assert "p001" in page.content()

        # another role's page
        page.goto(f"{url}/admin/audit")
        assert "for admin accounts" in page.get_by_role("alert").inner_text()
        shot(page, "refused-role")
        ctx.close()

        # the admin's pages: staff and the audit trail
        actx = browser.new_context(viewport={"width": 1280, "height": 900})
        admin = actx.new_page()
        sign_in(admin, url, "root")
        admin.goto(f"{url}/admin/users")
        assert "anna" in admin.locator("table").inner_text()
        shot(admin, "admin-users")
        admin.goto(f"{url}/admin/audit")
        audit = admin.locator("table").inner_text()
        for action in (
            "login_failed",
            "session_start",
            "trial_start",
            "refused_csrf",
            "refused_role",
        ):
            assert action in audit
        shot(admin, "admin-audit")
        actx.close()
        assert not [e for e in errors if "Content Security Policy" in e], errors
    feeder.close()
