"""Headless Chromium (Debian's) driven over the DevTools protocol, for the tests that use the UI as a
person does: open a page, wait for text, type into a field, click, take a screenshot.

Only what those tests need, over one websocket (the `websockets` package, a Prefect dependency):
no Playwright, whose own browser download is out of reach here.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars", "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is missing: `apt-get install -y chromium` (.ci/run installs it)")
    return found


class Browser:
    """One headless Chromium with one tab, driven over the DevTools protocol.

    Args:
        profile: the browser's user-data directory (a fresh one: no saved logins).
    """

    def __init__(self, profile: Path):
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"  # chromium writes its DevTools port there
        port_file.unlink(missing_ok=True)
        self.socket = None
        self.process = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("headless chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            (page,) = [t for t in json.load(response) if t["type"] == "page"]
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self._id = 0

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events in between are skipped)."""
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """What the page shows, as text."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, condition: str, timeout: float = 60) -> None:
        """Wait until the JavaScript ``condition`` holds in the page; fail with the page's text if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return
            except RuntimeError:
                pass  # the page is between documents
            time.sleep(0.25)
        pytest.fail(f"the page never showed {condition}; it shows:\n{self.text()[:2000]}")

    def wait_for_text(self, *needles: str, timeout: float = 60) -> None:
        self.wait_for(" && ".join(f"document.body && document.body.innerText.includes({json.dumps(n)})" for n in needles), timeout)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the input of ``selector`` and type ``text`` over what it holds, as keystrokes would."""
        self.evaluate(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.call("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
