"""The dashboard end to end: headless Chromium (Playwright) against a real ``durafn start``.

The browser tests need Playwright and Debian's ``chromium`` (``/usr/bin/chromium``, or
``$DURAFN_CHROMIUM``); without them they skip with the reason, unless
``DURAFN_REQUIRE_BROWSER=1`` (CI), where a missing browser fails. The key and read-only tests
speak plain HTTP. The screenshots of docs/dashboard.md are taken here, at 1280x800; they replace
the ones in docs/images/ when DURAFN_UPDATE_SCREENSHOTS=1 (otherwise they go to a temporary
directory, so a test run leaves the checkout clean).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from harness import free_port, poll

import durafn as df
from durafn.dashboard.routes import STATIC, dashboard_routes

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
APP = HERE / "apps" / "dashboard_app.py"
IMAGES = HERE.parents[1] / "docs" / "images"
MGMT = "/runtime/webhooks/durabletask"
API = "/dashboard/api"
CHROMIUM = os.environ.get("DURAFN_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
UI_WAIT_MS = 20_000
DASH = "\N{EN DASH}"


# ------------------------------------------------------------------------------- harness


class Server:
    """``durafn start APP`` or ``durafn dashboard`` as a subprocess, stopped with SIGTERM."""

    def __init__(self, workdir: Path, store: str, *args: str, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        command = [sys.executable, "-m", "durafn", *args, "--store", store]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, "--host", host, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "DURAFN_KEYS_FILE": str(workdir / "keys.json"),
                },
            )
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        poll(self._answers, timeout=30, what=f"the server on port {self.port}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the server did not stop on SIGTERM:\n{self.output()}")
        assert code == 0, self.output()

    # -- the management API, to set the scene and to check what the UI did

    def start(self, name: str, body: Any = None, instance_id: str | None = None) -> str:
        path = f"{MGMT}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        response = self.http.post(path, json=body)
        assert response.status_code == 202, response.text
        started: str = response.json()["id"]
        return started

    def status(self, instance_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{MGMT}/instances/{instance_id}")
        return None if response.status_code == 404 else response.json()  # type: ignore[no-any-return]

    def wait_for(self, instance_id: str, *statuses: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            document = self.status(instance_id)
            return document if document and document["runtimeStatus"] in statuses else None

        found: dict[str, Any] = poll(reached, what=f"{instance_id} to be {statuses}")
        return found


def host_app(workdir: Path, store: str, *args: str, host: str = "127.0.0.1") -> Server:
    return Server(workdir, store, "start", str(APP), *args, host=host)


def require_browser() -> None:
    """Skip (or fail, when ``DURAFN_REQUIRE_BROWSER=1``) without Playwright and Chromium."""
    reason = None
    if importlib.util.find_spec("playwright") is None:
        reason = "Playwright is not installed (pip install -e '.[dev]')"
    elif not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DURAFN_CHROMIUM)"
    if reason is None:
        return
    if os.environ.get("DURAFN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a browser is required (DURAFN_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_WAIT_MS)

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(UI_WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    running = host_app(workdir, f"sqlite:///{workdir}/hub.db")
    yield running
    running.stop()


def expect_status(page: Page, status: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".detail-head [data-testid=status]")).to_have_text(
        status, timeout=UI_WAIT_MS
    )


def fill_dialog(page: Page, **fields: str) -> None:
    dialog = page.get_by_test_id("dialog")
    for name, value in fields.items():
        dialog.get_by_test_id(f"field-{name}").fill(value)
    dialog.get_by_test_id("dialog-confirm").click()
    dialog.wait_for(state="detached")


# ------------------------------------------------------------------------------- browser


def test_start_hello_cities_from_the_ui_and_follow_it(page: Page, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.base_url}/#/instances")
    page.get_by_test_id("start-orchestration").click()
    fill_dialog(page, name="hello_cities")
    page.wait_for_url(re.compile(r"#/instances/[0-9a-f]{32}$"))
    instance_id = page.url.rsplit("/", 1)[1]
    expect_status(page, "Completed")
    assert server.wait_for(instance_id, "Completed")["output"] == [
        "Hello Tokyo!",
        "Hello Seattle!",
        "Hello London!",
    ]
    expect(page.get_by_test_id("output")).to_contain_text("Hello London!")

    # The timeline: one lane per activity, each completed.
    lanes = page.get_by_test_id("timeline-lane")
    expect(lanes).to_have_count(3)
    expect(page.locator("[data-testid=timeline-bar][data-state=completed]")).to_have_count(3)

    # The history, filtered by event type and by name.
    history = page.get_by_test_id("history")
    expect(history.get_by_test_id("history-row")).to_have_count(8)
    history.get_by_test_id("history-type").select_option("TaskCompleted")
    expect(history.get_by_test_id("history-row")).to_have_count(3)
    history.get_by_test_id("history-type").select_option("")
    history.get_by_test_id("history-name").fill("say_hello")
    expect(history.get_by_test_id("history-row")).to_have_count(6)  # scheduled + completed
    expect(history.get_by_test_id("history-count")).to_have_text("6 of 16 events")

    # Back in the list, the new instance is there, Completed.
    page.goto(f"{server.base_url}/#/instances?name=hello_cities")
    row = page.locator(f"[data-testid=instance-row][data-id='{instance_id}']")
    expect(row.get_by_test_id("status")).to_have_text("Completed")


def test_find_a_waiting_approval_by_filter_and_approve_it(page: Page, server: Server) -> None:
    from playwright.sync_api import expect

    for n in range(1, 4):
        request = {"id": f"expense-{n}", "amount": 100 * n}
        server.start("approval_workflow", request, instance_id=f"expense-{n}")
    server.start("hello_cities", instance_id="expense-not-a-request")
    for n in range(1, 4):
        server.wait_for(f"expense-{n}", "Running")
    server.wait_for("expense-not-a-request", "Completed")

    page.goto(f"{server.base_url}/#/instances")
    page.get_by_test_id("filter-name").fill("approval_workflow")
    page.get_by_test_id("filter-prefix").fill("expense-")
    page.get_by_test_id("apply-filters").click()
    page.get_by_test_id("tab-Running").click()
    rows = page.get_by_test_id("instance-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("tab-Running")).to_contain_text("3")
    rows.filter(has_text="expense-2").get_by_role("link").click()

    expect(page.get_by_test_id("instance-id")).to_have_text("expense-2")
    expect_status(page, "Running")
    # It waits: an open timer (the three-day deadline) and nothing else running.
    expect(page.locator("[data-testid=timeline-bar][data-state=waiting]")).to_have_count(1)
    page.get_by_test_id("action-raise").click()
    fill_dialog(page, name="approval", data='{"approved": true, "by": "alice"}')
    expect_status(page, "Completed")
    expect(page.get_by_test_id("output")).to_contain_text('"status": "approved"')
    assert server.wait_for("expense-2", "Completed")["output"]["by"] == "alice"
    assert server.wait_for("expense-1", "Running")  # the others still wait


def test_terminate_from_the_ui(page: Page, server: Server) -> None:
    server.start("sleep_long", instance_id="nap-1")
    server.wait_for("nap-1", "Running")
    page.goto(f"{server.base_url}/#/instances/nap-1")
    expect_status(page, "Running")
    page.get_by_test_id("action-terminate").click()
    dialog = page.get_by_test_id("dialog")
    # Cancelling changes nothing.
    dialog.get_by_test_id("dialog-cancel").click()
    time.sleep(0.3)
    assert server.wait_for("nap-1", "Running")
    page.get_by_test_id("action-terminate").click()
    fill_dialog(page, reason="not needed any more")
    expect_status(page, "Terminated")
    assert server.wait_for("nap-1", "Terminated")["output"] == "not needed any more"


def test_bulk_purge_of_completed_instances_after_a_dry_run_count(
    page: Page, server: Server
) -> None:
    from playwright.sync_api import expect

    done = [server.start("hello_cities", instance_id=f"batch-{n}") for n in range(4)]
    server.start("sleep_long", instance_id="batch-sleeper")
    for instance_id in done:
        server.wait_for(instance_id, "Completed")
    server.wait_for("batch-sleeper", "Running")

    page.goto(f"{server.base_url}/#/instances?prefix=batch-&status=Completed")
    expect(page.get_by_test_id("instance-row")).to_have_count(4)
    page.get_by_test_id("bulk-purge").click()
    dialog = page.get_by_test_id("dialog")
    expect(dialog.get_by_test_id("bulk-count")).to_contain_text("4 finished instances")
    expect(dialog.get_by_test_id("dialog-confirm")).to_have_text("Purge 4")
    dialog.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("toast").last).to_contain_text("Purged 4 instances")
    expect(page.get_by_test_id("no-instances")).to_be_visible()
    assert all(server.status(instance_id) is None for instance_id in done)
    assert server.status("batch-sleeper") is not None  # unfinished: never purged
    assert server.status("expense-not-a-request") is not None  # outside the filter


def test_signal_an_entity_from_the_ui_and_see_its_state(page: Page, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.base_url}/#/entities")
    expect(page.get_by_test_id("no-entities")).to_be_visible()
    page.get_by_test_id("signal-entity").click()
    fill_dialog(page, name="counter", key="visits", operation="add", input="5")
    row = page.locator("[data-testid=entity-row][data-id='@counter@visits']")
    expect(row.get_by_test_id("entity-state")).to_have_text("5")
    row.get_by_test_id("entity-signal").click()
    fill_dialog(page, operation="add", input="37")
    expect(row.get_by_test_id("entity-state")).to_have_text("42")
    # The instance list is for orchestrations: entities are not in it.
    assert server.http.get(f"{API}/instances?prefix=@").json()["instances"] == []


def test_list_page_with_10000_instances(page: Page, tmp_path: Path) -> None:
    """Pages are read on the server: the list of 10,000 instances loads as fast as a small one.
    The times are printed, never asserted."""
    from playwright.sync_api import expect

    store = f"sqlite:///{tmp_path}/big.db"
    created = _create_many(store, 10_000)
    dashboard = Server(tmp_path, store, "dashboard")
    try:
        started = time.perf_counter()
        page.goto(f"{dashboard.base_url}/#/instances")
        expect(page.get_by_test_id("instance-row")).to_have_count(50)
        expect(page.get_by_test_id("tab-All")).to_contain_text("10,000")
        first_load = time.perf_counter() - started
        api_ms = page.locator("#view").get_attribute("data-load-ms")

        started = time.perf_counter()
        page.get_by_test_id("next-page").click()
        expect(page.get_by_test_id("pager-text")).to_have_text(f"51{DASH}100 of 10,000")
        next_page = time.perf_counter() - started

        started = time.perf_counter()
        page.goto(f"{dashboard.base_url}/#/instances?prefix=load-07")
        expect(page.get_by_test_id("pager-text")).to_have_text(f"1{DASH}50 of 1,000")
        filtered = time.perf_counter() - started
        api = dashboard.http.get(f"{API}/instances?top=50").elapsed.total_seconds()
        counts = dashboard.http.get(f"{API}/counts").elapsed.total_seconds()
    finally:
        dashboard.stop()
    print(
        f"\n10,000 instances (created in {created:.1f} s): list page loaded in "
        f"{first_load * 1000:.0f} ms (its two API calls {api_ms} ms), next page "
        f"{next_page * 1000:.0f} ms, prefix filter {filtered * 1000:.0f} ms; "
        f"one page of 50 {api * 1000:.0f} ms, counts per status {counts * 1000:.0f} ms"
    )


def _create_many(store: str, count: int) -> float:
    """``count`` instances through the client, due in a year (so they stay Pending)."""
    started = time.perf_counter()
    later = datetime.now(UTC) + timedelta(days=365)
    with df.Client(f"{store}?synchronous=normal") as client:
        for n in range(count):
            name = ("hello_cities", "approval_workflow", "fulfil_order")[n % 3]
            client.start_new(name, {"n": n}, instance_id=f"load-{n:05d}", start_at=later)
    return time.perf_counter() - started


def test_screenshots_for_the_docs(page: Page, tmp_path: Path) -> None:
    """The list, an instance with its timeline, and the entities view, at 1280x800."""
    from playwright.sync_api import expect

    images = IMAGES if os.environ.get("DURAFN_UPDATE_SCREENSHOTS") == "1" else tmp_path / "images"

    shots = host_app(tmp_path, f"sqlite:///{tmp_path}/shots.db")
    try:
        order = shots.start(
            "fulfil_order", {"id": "1001", "items": ["book", "lamp", "mug"]}, "order-1001"
        )
        for n, city in enumerate(("Lisbon", "Osaka")):
            shots.start("hello_cities", {"greeting": city}, instance_id=f"greet-{n}")
        shots.start("approval_workflow", {"id": "expense-41", "amount": 950}, "expense-41")
        shots.start("approval_workflow", {"id": "expense-42", "amount": 120}, "expense-42")
        shots.start("fail_now", "disk quota", instance_id="import-7")
        shots.start("sleep_long", instance_id="nightly-report")
        shots.start("sleep_long", instance_id="weekly-digest")
        shots.wait_for("expense-42", "Running")
        shots.http.post(f"{MGMT}/instances/expense-42/raiseEvent/approval", json=_APPROVED)
        shots.wait_for("weekly-digest", "Running")
        shots.http.post(f"{MGMT}/instances/weekly-digest/suspend?reason=holidays")
        shots.wait_for("nightly-report", "Running")
        shots.http.post(f"{MGMT}/instances/nightly-report/terminate?reason=replaced")
        status = shots.wait_for(order, "Running")
        poll(
            lambda: (shots.status(order) or status)["customStatus"]["step"] == "awaiting delivery",
            what="the order to wait for its delivery",
        )
        time.sleep(0.4)
        shots.http.post(f"{MGMT}/instances/{order}/raiseEvent/delivered", json=_DELIVERED)
        for instance_id in ("greet-0", "greet-1", "expense-42", "import-7", order):
            shots.wait_for(instance_id, "Completed", "Failed")
        shots.wait_for("weekly-digest", "Suspended")
        shots.wait_for("nightly-report", "Terminated")

        images.mkdir(parents=True, exist_ok=True)
        page.goto(f"{shots.base_url}/#/instances")
        expect(page.get_by_test_id("instance-row")).to_have_count(9)
        expect(page.get_by_test_id("tab-All")).to_contain_text("9")
        page.screenshot(path=images / "dashboard-instances.png")

        page.goto(f"{shots.base_url}/#/instances/{order}")
        expect_status(page, "Completed")
        expect(page.get_by_test_id("timeline-attempts")).to_have_text("3 attempts")
        expect(page.locator("[data-testid=timeline-lane][data-kind=entity]")).to_have_count(1)
        page.screenshot(path=images / "dashboard-instance.png")
        # Parent and child link to each other.
        page.get_by_test_id("child-link").click()
        expect(page.get_by_test_id("fact-name")).to_have_text("ship_parcel")
        page.get_by_test_id("parent-link").click()
        expect(page.get_by_test_id("instance-id")).to_have_text(order)
        # A failure shows its error, its cause and their stack traces.
        page.goto(f"{shots.base_url}/#/instances/import-7")
        expect(page.get_by_test_id("failure")).to_contain_text("RuntimeError: boom: disk quota")
        expect(page.get_by_test_id("stack-trace").last).to_contain_text("in explode")

        for name, key, operation, value in _SIGNALS:
            signal = {"name": name, "key": key, "operation": operation, "input": value}
            assert shots.http.post(f"{API}/entities/signal", json=signal).status_code == 202
        page.goto(f"{shots.base_url}/#/entities")
        expect(page.get_by_test_id("entity-row")).to_have_count(6)  # with the order's counter
        row = page.locator("[data-testid=entity-row][data-id='@cart@ana']")
        expect(row.get_by_test_id("entity-state")).to_contain_text("espresso beans")
        row.get_by_role("button").first.click()
        expect(page.get_by_test_id("entity-full-state")).to_contain_text("grinder")
        page.screenshot(path=images / "dashboard-entities.png")
    finally:
        shots.stop()


_APPROVED = {"approved": True, "by": "alice"}
_SIGNALS = [
    ("counter", "tokyo", "add", 12),
    ("counter", "lima", "add", 3),
    ("counter", "tokyo", "add", 30),
    ("counter", "oslo", "add", 7),
    ("cart", "ana", "add", "espresso beans"),
    ("cart", "ana", "add", "grinder"),
    ("cart", "ben", "add", "kettle"),
]
_DELIVERED = {"signed_by": "R. Tanaka"}


# ------------------------------------------------------------------------------- HTTP


def _every_route() -> list[tuple[str, str]]:
    """(method, path) of every dashboard route, with its parameters filled in, and every asset."""
    filled = {"{instance_id}": "some-id", "{name}": "hello_cities"}
    routes = []
    for route in dashboard_routes():
        path = getattr(route, "path")  # noqa: B009
        if "{name}" in path and path.startswith("/dashboard/static"):
            routes += [("GET", f"/dashboard/static/{p.name}") for p in sorted(STATIC.iterdir())]
            continue
        for placeholder, value in filled.items():
            path = path.replace(placeholder, value)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                routes.append((method, path))
    return routes


def test_off_loopback_every_dashboard_route_needs_a_key(workdir: Path) -> None:
    exposed = host_app(workdir, f"sqlite:///{workdir}/exposed.db", host="0.0.0.0")
    try:
        routes = _every_route()
        assert ("GET", "/") in routes and len(routes) > 20
        for method, path in routes:
            response = exposed.http.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
        keys = json.loads((workdir / "keys.json").read_text())
        # The function key is not enough; the management key opens the page and sets the cookie.
        assert exposed.http.get(f"/?code={keys['default']}").status_code == 401
        opened = exposed.http.get(f"/?code={keys['durabletask']}")
        assert opened.status_code == 200 and "durafn_dashboard_key" in opened.cookies
        assert exposed.http.get(f"{API}/info").status_code == 200  # the cookie carries the key
    finally:
        exposed.stop()


def test_the_key_form_opens_the_dashboard_off_loopback(page: Page, workdir: Path) -> None:
    from playwright.sync_api import expect

    exposed = host_app(workdir, f"sqlite:///{workdir}/exposed-ui.db", host="0.0.0.0")
    try:
        keys = json.loads((workdir / "keys.json").read_text())
        response = page.goto(exposed.base_url)
        assert response is not None and response.status == 401
        page.get_by_label("Management key").fill(keys["durabletask"])
        page.get_by_role("button", name="Open the dashboard").click()
        expect(page.get_by_test_id("tab-All")).to_contain_text("0")
        assert "code=" not in page.url  # the key is kept in the cookie, not in the address
        page.reload()
        expect(page.get_by_test_id("tab-All")).to_contain_text("0")
    finally:
        exposed.stop()


def test_read_only_shows_no_action_in_the_browser(
    page: Page, workdir: Path, server: Server
) -> None:
    from playwright.sync_api import expect

    server.start("sleep_long", instance_id="ro-ui")
    server.wait_for("ro-ui", "Running")
    viewer = Server(workdir, f"sqlite:///{workdir}/hub.db", "dashboard", "--read-only")
    try:
        page.goto(f"{viewer.base_url}/#/instances/ro-ui")
        expect_status(page, "Running")
        expect(page.get_by_text("read-only", exact=True)).to_be_visible()
        expect(page.get_by_test_id("start-orchestration")).to_be_hidden()
        expect(page.get_by_test_id("action-terminate")).to_have_count(0)
        page.goto(f"{viewer.base_url}/#/instances")
        expect(page.get_by_test_id("instance-row").first).to_be_visible()
        expect(page.get_by_test_id("bulk-purge")).to_have_count(0)
    finally:
        viewer.stop()


def test_read_only_refuses_every_action_with_403(workdir: Path, server: Server) -> None:
    server.start("sleep_long", instance_id="ro-sleeper")
    server.wait_for("ro-sleeper", "Running")
    store = f"sqlite:///{workdir}/hub.db"
    viewer = Server(workdir, store, "dashboard", "--read-only")
    try:
        actions = [(m, p) for m, p in _every_route() if m != "GET"]
        assert len(actions) == 9
        for method, path in actions:
            path = path.replace("some-id", "ro-sleeper")
            response = viewer.http.request(method, path, json={"name": "approval"})
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"] == "Forbidden"
        for method, path in _every_route():
            if method == "GET" and "some-id" not in path:
                assert viewer.http.get(path).status_code == 200, path
        assert viewer.http.get(f"{API}/info").json()["readOnly"] is True
    finally:
        viewer.stop()
    assert server.wait_for("ro-sleeper", "Running")
