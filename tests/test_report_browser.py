"""The pipeline's HTML report as a reader sees it: Debian's Chromium, driven by Playwright, opens
the report of a real bench of a tiny run in a 1280x800 window. Every column of every table must
be on the page or reachable by scrolling its own box, and the page names what wrote it.

Skipped, with the reason, where Chromium or Playwright is missing; EDGECV_REQUIRE_BROWSER=1 (set
by .ci/run, which installs Chromium) makes that a failure.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright's own browser downloads are not used
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WINDOW = {"width": 1280, "height": 800}

# Each table header whose right edge is past the window's width, and whether a box that scrolls
# sideways (overflow-x auto/scroll, itself within the window) holds it: one that does not is cut.
CUT_HEADERS = """() => {
  const width = document.documentElement.clientWidth;
  const cut = [];
  for (const th of document.querySelectorAll("table th")) {
    const right = th.getBoundingClientRect().right;
    if (right <= width + 0.5) continue;
    let box = th.parentElement, reachable = false;
    for (; box && box !== document.body; box = box.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(box).overflowX)) {
        reachable = box.getBoundingClientRect().right <= width + 0.5;
        break;
      }
    }
    if (!reachable) cut.push(`${th.innerText.replace(/\\s+/g, " ")} (right edge ${right} px)`);
  }
  return cut;
}"""


def _unavailable(reason: str):
    if os.environ.get("EDGECV_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; EDGECV_REQUIRE_BROWSER=1 requires the browser test to run")
    pytest.skip(reason)


@pytest.fixture(scope="session")  # session-scoped like tiny_run: checked before it trains
def chromium() -> Path:
    """Debian's Chromium, and Playwright to drive it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    """A Chromium window of 1280x800 with an empty profile (a Playwright page factory)."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True,
                viewport=WINDOW)
        except Error as exc:
            _unavailable(f"{chromium} did not start: {str(exc).splitlines()[0]}")
        yield context
        context.close()


@pytest.fixture(scope="module")
def pipeline_report(tiny_run, tmp_path_factory):
    """What `edgecv pipeline` writes for the tiny run: a real bench on every target (the absent
    ones are rows with their reasons), the training and conversion sections."""
    import json

    from edgecv.benchmarks.suite import BenchSettings, discover, find_testset, run_benchmark
    from edgecv.results import Conversion
    from edgecv.run_report import write_run_report

    run = tmp_path_factory.mktemp("report") / "digits-seed_cnn"
    shutil.copytree(tiny_run, run)  # the shared run stays without bench files
    artifacts = discover([run])
    report = run_benchmark(artifacts, BenchSettings(threads=[1, 2], runs=5, min_time_s=0,
                                                    warmup=1, rounds=3),
                           find_testset(artifacts))
    conversion = Conversion.from_dict(json.loads((run / "export" / "conversion.json").read_text()))
    return run, write_run_report(run, report, conversion)


@pytest.mark.tf
@pytest.mark.slow
def test_every_table_column_can_be_read_in_a_1280_px_window(browser, pipeline_report):
    """Issue 31: the Results and Conversion tables were wider than the page, so the columns
    after "p50 CI ms" were cut off, and the page was titled "edgecv benchmark"."""
    from edgecv.benchmarks.report import TABLE_COLUMNS

    run, html_path = pipeline_report
    page = browser.new_page()
    page.goto(html_path.resolve().as_uri())
    title = f"edgecv pipeline: {run}"
    assert page.title() == title and page.inner_text("h1") == title
    headers = {heading: page.locator(f"h2:text-is('{heading}') ~ div.table-box").first
               .locator("th").all_inner_texts()
               for heading in ("Results", "Conversion and verification")}
    assert [" ".join(h.split()) for h in headers["Results"]] == list(TABLE_COLUMNS)
    assert "disagreements" in headers["Conversion and verification"]
    assert page.evaluate(CUT_HEADERS) == []
    # nothing sticks out of the page itself: no sideways scrolling of the whole document
    assert page.evaluate("document.documentElement.scrollWidth") <= WINDOW["width"]
    page.close()
