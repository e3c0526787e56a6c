"""The scan page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, at phone
size (360 x 740), served by uvicorn on a loopback port. Screenshots go to tests/artifacts/ (ignored by git).

The read side is filled through the sink from the workers' own fold (see tests/integration/test_scan_web.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, world) — the scan router over a SQLite read side, served by uvicorn in a thread."""
    import uvicorn
    from fastapi import FastAPI

    from consumers.store import Store
    from consumers.web.app import scan_router
    from ocop_trace.config import Settings
    from qr.serials import StampSigner
    from tests.integration.test_scan_web import NOW, TODAY, build_world

    d = tmp_path_factory.mktemp("scan-browser")
    settings = Settings(_env_file=None, data_dir=d, database_url=f"sqlite:///{d / 'ocop.sqlite3'}",
                        bootstrap="127.0.0.1:9", scan_rate_per_minute=10_000)
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    world = build_world(store, StampSigner.from_settings(settings), settings.stamp_active_key)
    app = FastAPI()
    app.include_router(scan_router(settings, store, None, today=lambda: TODAY, now=lambda: NOW))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-scan", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, 0.05, "uvicorn started")
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(15)
        store.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/setup.sh does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def phone(browser):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="vi-VN", user_agent="Mozilla/5.0 (Linux; Android 14) OCOP-e2e")
    page = ctx.new_page()
    yield page
    ctx.close()


CONTRAST_JS = """
(el) => {
  const parse = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const s = getComputedStyle(el);
  let bgEl = el, bg = s.backgroundColor;
  while (bgEl && (bg === 'rgba(0, 0, 0, 0)' || bg === 'transparent')) {
    bgEl = bgEl.parentElement; bg = bgEl ? getComputedStyle(bgEl).backgroundColor : 'rgb(255, 255, 255)';
  }
  const a = lum(parse(s.color)), b = lum(parse(bg));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""


def check_page(page, *, title: str) -> None:
    """What every scan page must be: Vietnamese, one h1 with the verdict, readable at 360 px, accessible."""
    assert page.locator("html").get_attribute("lang") == "vi"
    h1 = page.locator("h1")
    assert h1.count() == 1 and title in h1.inner_text()
    assert page.locator("h2").count() >= 2
    # nothing wider than the phone
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # every image has alt text
    assert page.locator("img:not([alt])").count() == 0 and page.locator("img[alt='']").count() == 0
    # the verdict text and the section headings keep a contrast ratio >= 4.5 (WCAG AA)
    for sel in ("section.verdict h1", "section.verdict p", "section.verdict .advice", "h2", "footer p", ".langsw"):
        for i in range(page.locator(sel).count()):
            ratio = page.locator(sel).nth(i).evaluate(CONTRAST_JS)
            assert ratio >= 4.5, (sel, i, ratio)
    # no script, nothing fetched from elsewhere
    assert page.locator("script").count() == 0


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"scan-{name}-360.png"
    page.screenshot(path=str(path), full_page=True)
    top = ARTIFACTS / f"scan-{name}-360-top.png"
    page.screenshot(path=str(top), full_page=False)
    assert path.stat().st_size > 10_000
    return path


def test_genuine_stamp_on_a_phone(served, phone):
    base, world = served
    requests: list[str] = []
    phone.on("request", lambda r: requests.append(r.url))
    t0 = time.monotonic()
    resp = phone.goto(base + world.path("genuine"))
    assert resp.status == 200
    check_page(phone, title="Chính hãng")
    body = phone.locator("body").inner_text()
    for text in ("Chè Tân Cương Hảo Đạt", "4 sao OCOP", "Hợp tác xã chè Hảo Đạt", "Đồi chè Hảo Đạt",
                 "Hành trình sản phẩm", "Thu hoạch", "Điểm bán", "đã được quét 2 lần trước đây"):
        assert text in body, text
    assert phone.locator(".stars").get_attribute("aria-label") == "4 sao OCOP"
    assert all(u.startswith(base) or u.startswith("data:") for u in requests), requests
    shot(phone, "genuine")
    # the English toggle
    phone.click("a.langsw")
    assert phone.locator("html").get_attribute("lang") == "en"
    assert "Genuine" in phone.locator("h1").inner_text()
    shot(phone, "genuine-en")
    assert time.monotonic() - t0 < 60


def test_recalled_stamp_on_a_phone(served, phone):
    base, world = served
    resp = phone.goto(base + world.path("recalled"))
    assert resp.status == 200
    check_page(phone, title="Sản phẩm bị thu hồi")
    banner = phone.locator("section.verdict").inner_text()
    assert "Ngừng sử dụng, liên hệ điểm bán hoặc nhà sản xuất" in banner
    assert "Phát hiện dư lượng thuốc bảo vệ thực vật" in banner
    assert "TC-H2" in banner
    shot(phone, "recalled")


@pytest.mark.parametrize("name, title", [("suspicious", "Nghi vấn tem sao chép"), ("forged", "Hàng giả"),
                                         ("expired", "Hết hạn sử dụng"), ("not_issued", "Không xác định")])
def test_other_verdicts_on_a_phone(served, phone, name, title):
    base, world = served
    phone.goto(base + world.path(name))
    check_page(phone, title=title)
    shot(phone, name)


def test_bad_link_page_on_a_phone(served, phone):
    base, _ = served
    resp = phone.goto(base + "/01/08938505974195/10/TC-P1/21/1A")
    assert resp.status == 400
    assert phone.locator("html").get_attribute("lang") == "vi"
    assert "Mã QR không hợp lệ" in phone.locator("h1").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "error")
