"""The Streamlit app: AppTest round trip, and a real browser against `convoforge app`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_http
from tests.test_catalog import SAMPLE

pytestmark = pytest.mark.slow
APP = ROOT / "src" / "convoforge" / "app" / "Recommender.py"
ENV = {"CONVOFORGE_MODEL": "scripted:tests.rec_fakes:recommender_reply", "CONVOFORGE_CATALOG": str(SAMPLE)}


def test_apptest_chat_round_trip(monkeypatch):
    from streamlit.testing.v1 import AppTest

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    at.chat_input[0].set_value("a scary horror film in a hotel").run()
    assert not at.exception
    text = [m.value for m in at.markdown]
    assert "**The Shining (1980)**" in text  # the card
    assert "ranker: A chilling haunted-hotel classic." in [c.value for c in at.caption]
    assert "1980 · horror, drama · excellent fit" in [c.value for c in at.caption]
    assert any("horror" in str(j.value) for j in at.json)  # the preferences panel
    at.sidebar.button[0].click().run()  # reset
    assert not at.chat_message


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (see README set-up 2)")
def test_browser_chat_shows_recommendation_cards(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extras)")
    port = free_port()
    env = dict(os.environ, **ENV, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convoforge",
            "--model",
            ENV["CONVOFORGE_MODEL"],
            "app",
            "--port",
            str(port),
            "--catalog",
            str(SAMPLE),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the finally below stops streamlit too
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(),
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            box.fill("a scary horror film in a hotel")
            box.press("Enter")
            page.get_by_text("A chilling haunted-hotel classic.").wait_for(timeout=120_000)
            assert page.get_by_text("The Shining (1980)").count() >= 1
            shot = Path(os.environ.get("CONVOFORGE_SCREENSHOTS", tmp_path)) / "app_chat.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert not left, f"the app left processes behind: {left}"


def test_datasets_page_shows_verdicts_and_plots(tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.test_persona_cli import scripted_personas

    out = tmp_path / "personas"
    scripted_personas(out, iterations=2, pairs=2)
    at = AppTest.from_file(str(APP.parent / "pages" / "1_Datasets.py"), default_timeout=60)
    at.run()
    at.text_input[0].set_value(str(out)).run()
    assert not at.exception
    assert any("User 1:" in m.value for m in at.markdown)
    assert len(at.get("arrow_line_chart")) + len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 1
    at.radio[0].set_value("rejected").run()
    assert not at.exception and at.dataframe
