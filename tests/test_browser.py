"""End to end in a real browser: `streamlit run` on a free localhost port, driven by Playwright on
Debian's Chromium. Upload a CSV, train a tiny model, reach the Attention page and see the heatmap.

Screenshots of every page go to test-artifacts/ (git-ignored) so a person can look at them.
Skipped where /usr/bin/chromium is missing, unless CI is set (then it fails: CI must run it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing in CI; run `bash scripts/setup.sh --browser`")
        pytest.skip("/usr/bin/chromium not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def server(tmp_path):
    """A streamlit server on a free port with its own runs folder, preset to a tiny model."""
    runs = tmp_path / "runs"
    runs.mkdir()
    sys.path.insert(0, str(ROOT))
    from app.components import state

    os.environ["T4R_RUNS_DIR"] = str(runs)
    try:
        app = state.AppState()
        cfg = state.default_config().with_overrides({
            "model.d_model": 16, "model.n_heads": 2, "train.max_steps": 6, "train.batch_size": 64,
            "train.log_every": 1,
        })
        app.set_experiment(cfg)
        app.preset = None
        app.save()
    finally:
        os.environ.pop("T4R_RUNS_DIR", None)
    port = _free_port()
    env = {**os.environ, "T4R_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/Home.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc)
        yield url, runs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.copy(tmp_path / "streamlit.log", ARTIFACTS / "streamlit.log") if ARTIFACTS.exists() else None


def _settle(page) -> None:
    """Wait until Streamlit has finished the current script run (no running indicator, no spinner)."""
    js = """() => { const app = document.querySelector('[data-testid="stApp"]');
                    return app && app.getAttribute('data-test-script-state') === 'notRunning'
                        && !document.querySelector('[data-testid="stSpinner"]'); }"""
    for _ in range(2):  # twice: a rerun can start right after the first one ends
        page.wait_for_timeout(400)
        page.wait_for_function(js, timeout=120_000)


def _shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the window to fit it first."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); "
        "return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": 1500, "height": int(min(max(height, 1000), 7000))})
    page.wait_for_timeout(600)  # Plotly redraws at the new size
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1500, "height": 1000})


def _small_csv(path: Path) -> Path:
    """The first ~600 sessions of the shop sample, under a name with spaces and odd characters."""
    lines = (ROOT / "sample_data" / "shop_sessions.csv").read_text().splitlines()
    path.write_text("\n".join(lines[:3000]) + "\n")
    return path


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"


def test_upload_train_attention(browser_page, server, tmp_path):
    try:
        _journey(browser_page, server, tmp_path)
    except Exception:
        _shot(browser_page, "zz_failure")  # what the page showed when it failed
        raise


def _journey(page, server, tmp_path) -> None:
    url, runs = server
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "zz_failure.png").unlink(missing_ok=True)  # from an earlier failed run
    csv = _small_csv(tmp_path / "my clicks (v2).csv")

    # A deep link as the very first request still gets the app's navigation and sidebar
    page.goto(f"{url}/data")
    _settle(page)
    page.get_by_text("CURRENT DATA").wait_for()
    assert page.get_by_text("Masking explorer").count() >= 1
    page.goto(url)
    _settle(page)
    page.get_by_text("t4r-studio").first.wait_for()
    _shot(page, "01_home")

    # Data: upload a CSV
    page.goto(f"{url}/data")
    _settle(page)
    page.get_by_text("Upload a file").click()
    _settle(page)
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(bytes(range(256)) * 40)  # binary: refused with a message, nothing saved
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(bad))
    page.locator('[data-testid="stAlertContentError"]').first.wait_for()
    _no_exception(page)
    assert not (runs / "data").exists() or not list((runs / "data").iterdir())
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(csv))
    page.get_by_text("Using: Upload: my_clicks_v2__").wait_for(timeout=60_000)
    _settle(page)
    page.locator(".js-plotly-plot").first.wait_for()
    _no_exception(page)
    _shot(page, "02_data_uploaded")
    saved = list((runs / "data").iterdir())
    assert len(saved) == 1 and saved[0].parent == runs / "data" and saved[0].name.startswith("my_clicks_v2__")

    # An item catalogue whose names carry markup: shown as text, never run
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    items = tmp_path / "items.csv"
    lines = (ROOT / "sample_data" / "shop_items.csv").read_text().splitlines()
    items.write_text("\n".join([lines[0]] + [f'{ln.split(",")[0]},"<img src=x onerror=alert(1)>{ln.split(",")[1]}",'
                                              + ",".join(ln.split(",")[2:]) for ln in lines[1:]]) + "\n")
    page.get_by_text("Optional: a held-out test file, an item catalogue").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').nth(2).set_input_files(str(items))
    _settle(page)
    _no_exception(page)
    assert len(list((runs / "data").glob("*_items.csv"))) == 1

    page.goto(f"{url}/model")
    _settle(page)
    page.get_by_text("Trainable parameters").wait_for()
    _shot(page, "03_model")

    # Train a tiny model
    page.goto(f"{url}/train")
    _settle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("finished after").wait_for(timeout=240_000)
    _settle(page)
    _no_exception(page)
    _shot(page, "04_train_done")
    state = json.loads((runs / ".app_state.json").read_text())
    assert state["last_run"] and (runs / state["last_run"] / "model.safetensors").exists()

    # Attention: the heatmap of the default test session
    page.goto(f"{url}/attention")
    _settle(page)
    page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
    _no_exception(page)
    assert page.get_by_text("Top recommendations").count() >= 1
    ticks = page.locator(".js-plotly-plot .xtick text").evaluate_all("els => els.map(e => e.textContent)")
    assert ticks and all("\u2039img" in t for t in ticks), ticks  # names from the catalogue, markup defused
    assert page.locator(".js-plotly-plot img").count() == 0 and not dialogs
    _shot(page, "05_attention")

    # The other pages render without an exception (screenshots for a human check)
    for i, name in enumerate(["evaluate", "recommend", "embeddings", "masking"], start=6):
        page.goto(f"{url}/{name}")
        _settle(page)
        page.locator(".js-plotly-plot, [data-testid='stDataFrame']").first.wait_for(timeout=120_000)
        _settle(page)
        _no_exception(page)
        _shot(page, f"{i:02d}_{name}")

    # A browser refresh keeps the data choice and the last run
    page.goto(f"{url}/attention")
    page.reload()
    _settle(page)
    page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(timeout=60_000)
    assert page.get_by_text("my_clicks_v2__").count() >= 1
