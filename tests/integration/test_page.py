"""The live operator page in headless Chromium (Debian's package, driven by Playwright, never a downloaded browser).

The page is served by the real `evmonitor api` command on a free port of a sandbox that the real
pipeline feeds; the test signs in through the form, watches the board, publishes a Faulted status
into Kafka and waits (with a deadline, without a reload) for that station's element to say so.
Screenshots land in the test's temporary folder; EVMON_TEST_UPDATE_DOCS=1 also refreshes the
README's docs/operator-page.png.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import sync_playwright

from evmonitor.api import queries
from evmonitor.config import REPO_ROOT
from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.stack.procs import free_port, wait_for
from tests.factories import encode, make_event, session_events

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
CITIES = ["Berlin", "Hamburg", "München", "Köln", "Leipzig", "Dresden"]
OPERATORS = ["VoltWay", "Stromer", "Ladefix"]


def as_messages(events: list[dict]) -> list[tuple[str, bytes, bytes]]:
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


def fleet(now: datetime) -> list[dict]:
    """Twelve stations in several states, a few sessions; one station's name is markup."""
    events = []
    statuses = ["Available", "Charging", "Available", "Charging", "Unavailable", "Available"]
    for i in range(12):
        sid = f"ST-{i + 1:03d}"
        name = '<script>alert("x")</script> Rathaus' if i == 4 else f"{CITIES[i % 6]} {['Markt', 'Bahnhof', 'Park'][i % 3]}"
        events.append(make_event("station_boot", at=now - timedelta(hours=1), station_id=sid, name=name,
                                 operator=OPERATORS[i % 3], city=CITIES[i % 6], connector_count=2))  # fmt: skip
        for connector in (1, 2):
            status = statuses[(i + connector) % 6]
            events.append(make_event("station_status", at=now - timedelta(minutes=5), station_id=sid,
                                     connector_id=connector, status=status, error_code="NoError"))  # fmt: skip
        if i % 2:
            events += session_events(start=now - timedelta(minutes=40 + i), readings=[3_000 * i, 6_000 * i],
                                     station_id=sid, meter_start_wh=100_000 * i)  # fmt: skip
    return events


def test_signed_in_operator_sees_a_station_turn_faulted_without_a_reload(pipeline, tmp_path):
    """Sign in through the form, see the board, publish Faulted into Kafka: the station's element says Faulted."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install` as root (apt-get install chromium)"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    pipeline.start_workers()
    pipeline.start_bridge()
    pipeline.wait_drained(pipeline.publish(as_messages(fleet(now))))
    pipeline.search().refresh()
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    with engine.begin() as conn:
        token = queries.create_token(conn, "browser-test", "read")[1]
    engine.dispose()
    port = free_port()
    pipeline.start("api", "api", "--listen", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: json.loads(urllib.request.urlopen(base + "/healthz", timeout=2).read())["database"], timeout_s=60,
             what="evmonitor api to answer /healthz", hint=f"Logs: {pipeline.logs}")  # fmt: skip

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(base + "/")
            assert page.url.endswith("/login")
            page.fill('input[name="token"]', "evm_not-a-token")
            page.click('button[type="submit"]')
            assert "not valid" in page.inner_text("form")
            page.fill('input[name="token"]', token)
            page.click('button[type="submit"]')
            page.wait_for_url(base + "/")
            cookie = next(c for c in page.context.cookies() if c["name"] == "evmon_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            cards = page.locator("[data-station-id]")
            assert cards.count() == 12
            target = page.locator('[data-station-id="ST-003"]')
            assert target.locator(".status").inner_text() != "Faulted"
            markup = page.locator('[data-station-id="ST-005"] a.name').inner_text()
            assert markup.startswith("<script>")  # shown as text, not run
            page.wait_for_function("document.querySelector('#live').textContent.startsWith('Live')", timeout=30_000)
            # the Components panel asks /api/v1/pipeline with the session cookie: what runs here is up, the rest down
            page.wait_for_selector('#components li[data-component="bridge"][data-health="up"]', timeout=30_000)
            assert page.locator('#components li[data-component="worker persist"]').get_attribute("data-health") == "up"
            assert page.locator('#components li[data-component="gateway"] .status').inner_text() == "down"
            page.screenshot(path=str(tmp_path / "board-before.png"), full_page=True)

            fault = make_event("station_status", at=datetime.now(timezone.utc), station_id="ST-003", connector_id=0,
                               status="Faulted", error_code="GroundFailure")  # fmt: skip
            sent_at = time.monotonic()
            pipeline.publish(as_messages([fault]))
            page.wait_for_function(
                """() => { const e = document.querySelector('[data-station-id="ST-003"]');
                           return e.dataset.status === 'Faulted' && e.querySelector('.status').textContent === 'Faulted'; }""",
                timeout=60_000,
            )  # a deadline, not a measurement: the time it took is printed below
            print(f"ST-003 showed Faulted {time.monotonic() - sent_at:.1f} s after it was published to Kafka")
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
            assert page.locator("#c-faulted").inner_text() == "1"
            shot = tmp_path / "board.png"
            page.screenshot(path=str(shot), full_page=True)
            readme_picture = REPO_ROOT / "docs" / "operator-page.png"
            if os.environ.get("EVMON_TEST_UPDATE_DOCS") or not readme_picture.exists():  # no diff on every run
                shutil.copy(shot, readme_picture)

            page.click('[data-station-id="ST-004"] a.name')
            page.wait_for_url(base + "/stations/ST-004")
            assert page.locator("svg[aria-label='energy delivered over time']").count() == 1
            page.screenshot(path=str(tmp_path / "station.png"), full_page=True)

            page.click("text=Sign out")
            page.wait_for_url(base + "/login")
            page.goto(base + "/")
            assert page.url.endswith("/login")
        finally:
            browser.close()
