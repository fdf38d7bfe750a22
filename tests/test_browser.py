"""Real browser: the served app in headless Chromium, every page, no error boxes, plotly charts drawn.

Screenshots go to docs/screenshots/<page>.png when GMLP_LENS_SCREENSHOTS=1, else to a temporary folder.
Runs against the demo zoo in checkpoints/ when it is built, else against the tiny test root.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import zoo_is_present
from server_helpers import CHROMIUM, CHROMIUM_ARGS, PAGE_PATHS, REPO, streamlit_server, wait_idle

from dashboard.lecture import STEPS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]

# Pages whose first view draws at least one plotly chart (the others draw charts after a click).
CHART_PAGES = {"inference", "spatial", "interventions", "scaling", "training", "attention_matters"}


@pytest.fixture(scope="module")
def served(lens_root: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = REPO / "checkpoints" if zoo_is_present() else lens_root
    with streamlit_server(root, tmp_path_factory.mktemp("server") / "streamlit.log") as (url, _pid):
        yield url


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _shots_dir(tmp_path: Path) -> Path:
    if os.environ.get("GMLP_LENS_SCREENSHOTS") == "1":
        out = REPO / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path


# Text that collides or is cut off in the page's charts, from the DOM's bounding boxes (a list of problems).
LAYOUT_CHECK = (REPO / "tests" / "layout_checks.js").read_text()
SCREENS = {"projector": (1024, 768), "wide": (1920, 1080)}


@pytest.mark.parametrize("screen", list(SCREENS))
@pytest.mark.parametrize("page_name", list(PAGE_PATHS))
def test_page_renders_in_chromium(served: str, browser, page_name: str, screen: str, tmp_path: Path) -> None:  # noqa: ANN001
    """Every page at projector size and on a wide screen: no error box, its charts drawn, and no two titles or
    tick labels overlapping, none cut off by its chart's edge, no chart over another (README's shots: wide)."""
    width, height = SCREENS[screen]
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    try:
        page.goto(f"{served}/{PAGE_PATHS[page_name]}", wait_until="domcontentloaded")
        wait_idle(page, timeout_ms=180_000)  # W versus attention computes its maps on the first visit
        if page_name == "attributions":
            # heavy work waits behind a button: press it (the button may be drawn after the title)
            button = page.get_by_role("button", name="Explain").first
            button.wait_for(timeout=60_000)
            button.click()
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=180_000)
            wait_idle(page, timeout_ms=180_000)
        assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
            '[data-testid="stException"]'
        ).first.inner_text()
        assert page.locator("h1").count() >= 1
        if page_name in CHART_PAGES | {"w_vs_attention", "attributions"}:
            page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=60_000)
            assert page.locator(".js-plotly-plot").count() >= 1
        # Streamlit scrolls inside its main block, so a full-page shot is the viewport: grow it to the content
        content = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": width, "height": min(max(height, int(content) + 40), 12000)})
        wait_idle(page)
        shot = f"{page_name}.png" if screen == "wide" else f"{page_name}-{width}.png"
        page.screenshot(path=str((_shots_dir(tmp_path) if screen == "wide" else tmp_path) / shot), full_page=True)
        assert not console_errors, console_errors
        problems = page.evaluate(LAYOUT_CHECK)
        assert not problems, "\n".join(problems[:20])
    finally:
        context.close()


@pytest.mark.timeout(900)
def test_lecture_walk_in_chromium(served: str, browser, tmp_path: Path) -> None:  # noqa: ANN001
    """Lecture mode from ``?lecture=1`` to the last step with Next, at projector size: each step opens its
    page (URL path and ``?step=``), shows its title in the step bar, and no error box appears anywhere."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, device_scale_factor=1)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    bar = page.locator(".st-key-lecture-bar")
    shot = next(i for i, s in enumerate(STEPS) if s.page == "spatial")  # README's picture: W as a band
    try:
        page.goto(f"{served}/?lecture=1", wait_until="domcontentloaded")
        for index, step in enumerate(STEPS):
            if index:
                page.locator(".st-key-lecture-next button").click()
            bar.get_by_text(f"Step {index + 1} of {len(STEPS)}: {step.title}").wait_for(timeout=120_000)
            wait_idle(page, timeout_ms=120_000)
            url = urlparse(page.url)
            assert url.path.strip("/") == PAGE_PATHS[step.page], (index, page.url)
            assert parse_qs(url.query)["step"] == [str(index + 1)] and parse_qs(url.query)["lecture"] == ["1"]
            assert page.locator("h1").first.is_visible()
            assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
                '[data-testid="stException"]'
            ).first.inner_text()
            # (the tiny test root's Overview lists its deliberately broken checkpoints as errors)
            errors = [
                t
                for t in page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
                if "(broken)" not in t and "(refused)" not in t
            ]
            assert not errors, (index, errors)
            problems = page.evaluate(LAYOUT_CHECK)
            assert not problems, (index, problems[:20])
            if index == shot:  # projector width, tall enough to show the step bar above the band in W
                page.set_viewport_size({"width": 1024, "height": 1280})
                wait_idle(page)
                page.screenshot(path=str(_shots_dir(tmp_path) / "lecture.png"))
                page.set_viewport_size({"width": 1024, "height": 768})
        assert page.locator(".st-key-lecture-next button").is_disabled()
        assert not console_errors, console_errors
    finally:
        context.close()


def test_a_single_click_paints_a_cell_of_the_drawing_grid(served: str, browser) -> None:  # noqa: ANN001
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        page.goto(f"{served}/inference?models=vision-gmlp", wait_until="domcontentloaded")
        wait_idle(page, timeout_ms=120_000)
        # Only a vision model is picked, so the page opens on the image tab (no click needed).
        tab = page.get_by_role("tab", name="Classify an image (vision)")
        assert tab.get_attribute("aria-selected") == "true"
        page.get_by_text("Draw a digit", exact=True).click()
        wait_idle(page)
        page.get_by_text("The grid is blank").wait_for(timeout=30_000)  # what a blank grid's answer means
        grid = page.locator(".js-plotly-plot").first
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .point').length >= 64")
        box = grid.locator(".point").nth(3 * 8 + 3).bounding_box()  # row 3, column 3
        assert box is not None
        # A plain mouse click where the user clicks (plotly's drag layer lies over the markers).
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function("() => !document.body.innerText.includes('The grid is blank')", timeout=60_000)
        wait_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.context.close()


def test_the_image_tab_reads_at_projector_width(served: str, browser) -> None:  # noqa: ANN001
    """The image tab (hidden behind the text tab in the page test) with a digit and a canvas model: nothing cut
    off or overlapping at 1024 x 768, both previews and every model's panel drawn."""
    page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
    try:
        page.goto(f"{served}/inference?models=vision-gmlp,canvas-gmlp", wait_until="domcontentloaded")
        wait_idle(page, timeout_ms=120_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.get_by_text("What the canvas models see").wait_for(timeout=30_000)
        page.get_by_text("What the digit models see").wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4")  # 2 previews, 2 bars
        problems = page.evaluate(LAYOUT_CHECK)
        assert not problems, problems[:20]
    finally:
        page.context.close()


# Where cell (i, j) of the first linked chart is on the page, and the row/column bars drawn on every linked chart.
CELL_CENTRE = """([i, j]) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find((g) => g._fullLayout.meta?.link);
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  return {x: box.left + fl.xaxis._offset + fl.xaxis.l2p(j), y: box.top + fl.yaxis._offset + fl.yaxis.l2p(i)};
}"""
LINK_BARS = """(i) => [...document.querySelectorAll('.js-plotly-plot')].filter((g) => g._fullLayout.meta?.link).map((gd) => {
  const ya = gd._fullLayout.yaxis, host = gd.querySelector('.svg-container');
  const bars = [...host.querySelectorAll('.lens-link')];
  const rowTop = ya._offset + Math.min(ya.l2p(i - 0.5), ya.l2p(i + 0.5));
  return {title: gd._fullLayout.title.text, bars: bars.length,
          row: bars.some((b) => Math.abs(parseFloat(b.style.top) - rowTop) < 1.5)};
})"""


def test_hovering_a_cell_outlines_its_row_and_column_on_every_map(served: str, browser) -> None:  # noqa: ANN001
    page = browser.new_context(viewport={"width": 1600, "height": 1200}).new_page()
    try:
        page.goto(f"{served}/{PAGE_PATHS['w_vs_attention']}", wait_until="domcontentloaded")
        wait_idle(page)  # the demo models' maps are drawn with no button to press
        page.wait_for_selector(".js-plotly-plot svg.main-svg", timeout=180_000)
        wait_idle(page, timeout_ms=180_000)
        page.wait_for_timeout(800)  # the linker attaches to charts drawn after it (it polls twice a second)
        centre = page.evaluate(CELL_CENTRE, [3, 5])
        page.mouse.move(centre["x"], centre["y"])
        page.wait_for_function("() => document.querySelectorAll('.lens-link').length > 0", timeout=10_000)
        charts = page.evaluate(LINK_BARS, 3)
        assert len(charts) >= 6, charts  # heads, tiny attention, W, gate, effective mixing, influence
        assert all(c["bars"] >= 1 and c["row"] for c in charts), charts  # row 3 outlined on every map
        assert sum(c["bars"] == 2 for c in charts) >= len(charts) - 1  # and column 5 (the gate's are channels)
        page.mouse.move(5, 5)  # off the chart: the outlines go
        page.wait_for_function("() => document.querySelectorAll('.lens-link').length === 0", timeout=10_000)
    finally:
        page.context.close()
