"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: NUL-separated JSON
on file descriptors 3 and 4, no library needed): open a page at a width as a phone or a desktop would, read
layout facts with JavaScript (DevTools evaluation is not subject to the page's Content-Security-Policy, the
page's own script still runs), and take a screenshot for a person to look at."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    return path


class Page:
    """One tab showing `url` at `width` x `height` CSS pixels (`mobile`: a phone's viewport and text sizing)."""

    def __init__(self, url: str, width: int, height: int, mobile: bool = False):
        self._profile = tempfile.mkdtemp(prefix="ckpt-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4
        self._proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=_dup_to(to_browser_r, from_browser_w), pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next = b"", 0
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                   mobile=mobile, session=True)
        self._call("Page.enable", session=True)
        self._call("Page.navigate", url=url, session=True)
        self._wait_loaded()

    def _send(self, method: str, params: dict, session: bool) -> int:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next

    def _read(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method: str, session: bool = False, **params) -> dict:
        wanted = self._send(method, params, session)
        while True:
            message = self._read()
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def _wait_loaded(self) -> None:
        while True:
            if self._read().get("method") == "Page.loadEventFired":
                return

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page."""
        result = self._call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path: str, full_page: bool = False, top: float = 0, height: float | None = None) -> str:
        """The viewport, the whole page (at most 8000 px), or `height` px of it from `top` (e.g. a table)."""
        params = {"format": "png", "captureBeyondViewport": full_page or height is not None}
        if full_page or height is not None:
            width, page_height = self.evaluate("[document.documentElement.scrollWidth, "
                                               "document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": top, "width": width,
                              "height": min(height or page_height, 8000, page_height - top), "scale": 1}
        data = self._call("Page.captureScreenshot", session=True, **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _dup_to(read_end: int, write_end: int):
    """In the child: its fd 3 reads our commands, its fd 4 writes its replies."""
    def setup():
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)
    return setup
