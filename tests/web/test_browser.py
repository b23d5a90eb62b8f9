"""The regulators' web page in headless Chromium (Debian's ``chromium``), against the real
app serving a small analysed province: sign in, filter anomalies, open a station, act on a
case, switch language, trace, recall, the inspection list, roles and error messages.

Screenshots are taken on every run, into a temporary folder; with
``FUELTRACE_SCREENSHOTS=docs/screenshots`` they refresh the docs' pictures instead (so a
test run does not change the checkout). Without Chromium the tests FAIL (never skip): CI
installs it with ``sh scripts/system-packages.sh``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.web.served import Site, serve

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("FUELTRACE_SCREENSHOTS")
                   or tempfile.mkdtemp(prefix="fueltrace-screens-"))  # fmt: skip
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1440, "height": 900}
WAIT_MS = 10_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if not found:
        pytest.fail("Chromium is not installed, so the web page cannot be tested: run "
                    "`sh scripts/system-packages.sh` (Debian's `chromium` package). This test "
                    "fails rather than skips.", pytrace=False)  # fmt: skip
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = serve(tmp_path_factory.mktemp("web"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package `playwright` is missing: install the dev extras "
                    "(`pip install -e '.[dev]'`); no browser download is needed, Debian's "
                    "Chromium is used", pytrace=False)  # fmt: skip
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)  # fmt: skip
        yield launched
        launched.close()


class Page:
    """A browser tab on the site, with what went wrong in it recorded."""

    def __init__(self, browser: Any, site: Site, token: str | None, lang: str | None) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        script = ""
        if token:
            script += f"sessionStorage.setItem('fueltrace.token', {token!r});"
        if lang:
            script += f"localStorage.setItem('fueltrace.lang', {lang!r});"
        if script:
            self.context.add_init_script(script)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.site = site
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A refused request is logged by Chromium itself; the tests that cause one check
        # what the page shows instead.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def open(self, route: str) -> Any:
        """Go to ``route`` (a hash) and wait until the page has drawn it."""
        self.page.goto(f"{self.site.url}/{route}")
        self.page.wait_for_function(
            "document.getElementById('main').dataset.rendered === location.hash")
        return self.page

    def missing_labels(self) -> list[str]:
        return list(self.page.evaluate("[...window.__ftMissingLabels]"))

    def duplicate_ids(self) -> list[str]:
        return list(self.page.evaluate("""() => {
            const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
            return ids.filter((id, i) => ids.indexOf(id) !== i);
        }"""))

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Any]:
    """Make a tab: ``tab(token=…, lang=…)``; each is checked for page errors and labels
    missing from i18n.js when the test ends."""
    made: list[Page] = []

    def make(token: str | None = None, lang: str | None = "en") -> Page:
        made.append(Page(browser, site, token, lang))
        return made[-1]

    yield make
    for page in made:
        missing, duplicates = page.missing_labels(), page.duplicate_ids()
        page.context.close()
        assert page.errors == [], page.errors
        assert missing == [], f"labels missing from fueltrace/api/web/{{i18n,labels}}.js: {missing}"
        assert duplicates == [], f"element ids used twice: {duplicates}"


def _ids(page: Any, selector: str, attribute: str) -> list[str]:
    return [row.get_attribute(attribute) for row in page.locator(selector).all()]


def _download(page: Any, button: str) -> str:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def _csv(site: Site, path: str) -> str:
    request = urllib.request.Request(f"{site.url}/api/v1{path}",
                                     headers={"Authorization": f"Bearer {site.token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.read().decode("utf-8"))


def test_sign_in_filter_anomalies_and_switch_language(tab: Any, site: Site) -> None:
    t = tab(lang=None)
    page = t.open("")
    # Chinese by default; the token field says what it is in both languages.
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_role("heading", name="登录").is_visible()
    page.get_by_role("button", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_label("Access token").fill("ft_0000_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    assert "not valid" in alert.inner_text()  # the API's own message
    page.get_by_label("Access token").fill(site.token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("table.anomalies").wait_for()
    assert page.locator(".who-label").inner_text() == site.label
    everything = site.api("/anomalies?limit=50")
    assert _ids(page, "table.anomalies tbody tr", "data-anomaly-id") == [
        a["anomaly_id"] for a in everything["items"]]
    assert {"critical", "high", "medium", "low"} <= {a["severity"] for a in everything["items"]}
    t.shoot("anomalies")

    page.get_by_label("Severity").select_option("critical")
    page.get_by_label("City").select_option("Benxi")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_url("**severity=critical**")
    expected = site.api("/anomalies?severity=critical&city=Benxi&limit=50")
    assert expected["total"] >= 2
    page.wait_for_function(f"document.querySelectorAll('table.anomalies tbody tr').length == "
                           f"{expected['total']}")  # fmt: skip
    assert _ids(page, "table.anomalies tbody tr", "data-anomaly-id") == [
        a["anomaly_id"] for a in expected["items"]]
    # A date range in Beijing days: nothing before the data started.
    page.get_by_label("To date (inclusive)").fill("2020-01-01")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.get_by_text("Nothing matches.").wait_for()

    page.get_by_role("button", name="中文").click()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    menu = page.get_by_role("navigation", name="主菜单")
    assert menu.get_by_role("link", name="异常").is_visible()
    assert page.get_by_label("严重程度").input_value() == "critical"
    page.get_by_role("button", name="清除条件").click()
    page.locator("table.anomalies").wait_for()
    table = page.locator("table.anomalies")
    assert table.get_by_text("库存不平衡(日账面与实测库存)").first.is_visible()


def test_station_page_shows_registry_licences_tanks_and_charts(tab: Any, site: Site) -> None:
    t = tab(site.token)
    page = t.open("#/anomalies?city=Benxi&rule=inventory_imbalance")
    finding = site.api("/anomalies?city=Benxi&rule=inventory_imbalance")["items"][0]
    row = page.locator("table.anomalies tbody tr").first
    row.get_by_role("link", name=finding["station_id"]).click()
    station = site.api(f"/stations/{finding['station_id']}")
    page.get_by_role("heading", level=1, name=station["name"]).wait_for()
    page.locator("svg.tank-chart").first.wait_for()
    registry = page.locator("section", has=page.get_by_role("heading", name="Registry"))
    assert station["operator"] in registry.inner_text()
    assert page.locator("table.licences tbody tr").count() == len(station["licences"])
    assert _ids(page, "[data-tank-id] >> xpath=self::tr", "data-tank-id") == [
        k["tank_id"] for k in station["tanks"]]
    charts = page.locator("svg.tank-chart")
    assert charts.count() == len(station["tanks"])
    # The tank of the finding: its failing day is a red bar, its points those of the API.
    tank = finding["subject"]
    recon = site.api(f"/stations/{station['station_id']}/tanks/{tank}/reconciliation")
    chart = page.locator(f"svg.tank-chart[data-tank='{tank}']")
    assert chart.locator("rect.variance.fail").count() == sum(
        d["result"] == "fail" for d in recon["days"])
    assert finding["evidence"]["day"] in _ids(page, f"svg.tank-chart[data-tank='{tank}'] "
                                                    "rect.variance.fail", "data-date")  # fmt: skip
    assert chart.locator("circle.dot.measured").count() == sum(
        d["closing_20_l"] is not None for d in recon["days"])
    assert chart.locator("rect.dot.book").count() == sum(
        d["book_20_l"] is not None for d in recon["days"])
    t.shoot("station")

    # A licence that lapsed is highlighted as expired.
    lapsed = site.api("/anomalies?rule=unlicensed_sales")["items"][0]
    t.open(f"#/stations/{lapsed['station_id']}")
    row = page.locator("table.licences tr[data-standing='expired']")
    assert row.count() == 1
    assert "expired" in row.inner_text()


def test_acting_on_a_case_is_shown_and_recorded(tab: Any, site: Site) -> None:
    t = tab(site.token)
    finding = site.api("/anomalies?rule=totalizer_gap")["items"][0]
    page = t.open("#/anomalies?rule=totalizer_gap")
    page.get_by_role("link", name="Pump totalizer gap").first.click()
    page.locator("table.evidence").wait_for()
    gap = page.locator("table.evidence tr[data-field='gap_l'] td").first.inner_text()
    digits = "".join(c for c in gap if c.isdigit())
    assert gap.endswith(" L") and digits.startswith(str(int(abs(finding["evidence"]["gap_l"]))))
    case_id = finding["case"]["case_id"]
    head = page.locator(f".case-head[data-case-id='{case_id}']")
    assert head.get_attribute("data-state") == "open"

    page.get_by_label("Acknowledge").check()
    page.get_by_label("Reason (kept in the audit trail)").fill("Seen; calling the station")
    page.get_by_role("button", name="Submit").click()
    page.locator(".case-head[data-state='acknowledged']").wait_for()
    page.get_by_role("button", name="Assign to me").click()
    page.get_by_label("Why (kept in the audit trail)").fill("The inspector on duty")
    page.get_by_role("button", name="Assign", exact=True).click()
    page.get_by_text("Saved: assignee changed").wait_for()
    page.get_by_label("Close").check()
    page.get_by_label("false alarm").check()
    page.get_by_label("Reason (kept in the audit trail)").fill("Pump head replaced on site; "
                                                              "the technician's log explains it")
    page.get_by_role("button", name="Submit").click()
    page.locator(".case-head[data-state='closed']").wait_for()
    page.get_by_label("Note", exact=True).fill("Technician's log filed with the case")
    page.get_by_role("button", name="Add note").click()
    page.locator("table.audit tbody tr").nth(4).wait_for()

    case = site.api(f"/cases/{case_id}")
    assert (case["state"], case["resolution"], case["assignee"]) == ("closed", "false_alarm",
                                                                     site.label)
    actions = ["opened", "acknowledged", "assigned", "closed", "note"]
    assert [e["action"] for e in case["events"]] == actions
    assert all(site.label in e["actor"] for e in case["events"][1:])
    shown = page.locator("table.audit tbody tr").all()
    assert [r.locator("[data-action]").get_attribute("data-action") for r in shown] == actions
    assert all(site.label in r.inner_text() for r in shown[1:])
    assert "false alarm" in shown[3].inner_text()
    # A closed case offers no transition any more, only notes.
    assert page.get_by_role("button", name="Submit").count() == 0
    assert page.get_by_text("The case is closed; notes can still be added.").is_visible()
    t.shoot("case")


def test_trace_recall_and_inspection(tab: Any, site: Site) -> None:
    t = tab(site.token)
    batch_id = site.api("/anomalies?rule=delivery_mismatch")["items"][0]["evidence"]["batch_id"]
    recall = site.api(f"/recalls/{batch_id}")
    sale = recall["sales"][0]
    traced = site.api(f"/trace/sales/{sale['station_id']}/{sale['txn_id']}")
    page = t.open("#/trace")
    page.get_by_label("Station id").fill(sale["station_id"])
    page.get_by_label("Transaction id").fill(sale["txn_id"])
    page.get_by_role("button", name="Show", exact=True).first.click()
    page.locator("table.sale-batches").wait_for()
    assert _ids(page, "table.sale-batches tbody tr", "data-batch-id") == [
        b["batch_id"] for b in traced["batches"]]
    page.locator("table.sale-batches").get_by_role("link", name=batch_id).click()
    page.locator("table.batch-tanks").wait_for()
    assert _ids(page, "table.dispatches tbody tr", "data-dispatch-id") == [
        d["dispatch_id"] for d in recall["dispatches"]]
    assert page.locator("table.batch-tanks tbody tr").count() == len(recall["tanks"])
    t.shoot("trace")

    page.get_by_role("link", name="Recall report").click()
    page.locator("table.recall-sales").wait_for()
    assert page.locator("table.seal tbody tr").count() == len(recall["tanks_to_seal"])
    assert page.locator("table.recall-sales tbody tr").count() == min(len(recall["sales"]), 200)
    per_tank = _csv(site, f"/recalls/{batch_id}?format=csv")
    assert _download(page, "Download CSV (per tank)") == per_tank

    year = (datetime.now(UTC) + timedelta(hours=8)).year  # Beijing's
    listed = site.api(f"/inspections/{year}")
    page = t.open("#/inspection")
    page.locator("table.inspection-list").wait_for()
    assert listed["stations_failing"] >= 3
    assert _ids(page, "table.inspection-list tbody tr", "data-station-id") == [
        s["station_id"] for s in listed["stations"]]
    assert page.get_by_text(f"{listed['stations_inspected']} stations inspected").is_visible()
    t.shoot("inspection")
    assert _download(page, "Download CSV") == _csv(site, f"/inspections/{year}?format=csv")


def test_roles_scopes_and_errors_are_shown(tab: Any, site: Site) -> None:
    # A station's token reads nothing: the page says so and offers no menu.
    page = tab(site.station_token).open("#/anomalies")
    assert "This page is for regulators" in page.locator(".notice").inner_text()
    assert page.get_by_role("navigation").count() == 0
    # A city regulator sees its city only, and another city's station as not found.
    t = tab(site.city_token)
    page = t.open("#/anomalies")
    page.locator("table.anomalies").wait_for()
    assert page.get_by_label("City").is_disabled()
    assert page.get_by_label("City").input_value() == site.city
    mine = site.api("/anomalies?limit=50", token=site.city_token)
    assert {a["city"] for a in mine["items"]} == {site.city}
    assert _ids(page, "table.anomalies tbody tr", "data-anomaly-id") == [
        a["anomaly_id"] for a in mine["items"]]
    page = t.open("#/stations/ST-210100-0001")
    assert "no station 'ST-210100-0001'" in page.get_by_role("alert").inner_text()
    # The service unavailable or unreachable: the API's message and request id, in words.
    page.route("**/api/v1/stations?**", lambda route: route.fulfill(status=503, json={
        "error": {"status": 503, "code": "query_timeout", "message": "the query ran longer "
                  "than 10 s and was stopped", "request_id": "abc123", "details": []}}))
    t.open("#/stations")
    alert = page.get_by_role("alert").inner_text()
    assert "took too long" in alert and "ran longer than 10 s" in alert and "abc123" in alert
    page.unroute("**/api/v1/stations?**")
    page.route("**/api/v1/cases?**", lambda route: route.abort())
    t.open("#/cases")
    assert "Cannot reach the server" in page.get_by_role("alert").inner_text()
    # No answer at all: the page gives up after 30 s and says so (the clock is fast-forwarded).
    t = tab(site.token)
    t.page.clock.install()
    t.page.route("**/api/v1/cases?**", lambda route: None)  # held, never answered
    with t.page.expect_request("**/api/v1/cases?**"):
        t.page.goto(f"{site.url}/#/cases")
    t.page.clock.fast_forward(31_000)
    assert "did not answer within 30 s" in t.page.get_by_role("alert").inner_text()


def test_the_api_docs_render_with_no_internet(browser: Any, site: Site) -> None:
    """/docs is Swagger UI from the installed swagger-ui-bundle: every request stays on the
    service (FastAPI's default loads it from a CDN, blank on a closed network)."""
    context = browser.new_context(viewport=VIEWPORT)
    outside: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_service)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=WAIT_MS)
        assert "fueltrace" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_selector(".opblock", timeout=WAIT_MS)
        assert page.locator(".opblock").count() > 20  # the operations, from /openapi.json
        assert outside == []
        page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
    finally:
        context.close()
