"""A real headless browser for tests: Debian's chromium run once per call, offline.

* ``find_chromium()`` -> path of ``chromium``, ``chromium-browser`` or ``google-chrome``, or None
* ``screenshot(html_path, png_path, width=1200, height=2000)`` -> writes a PNG of the page
* ``dump_dom(html_path)`` -> the DOM after the page loaded, serialised as HTML

Every run gets a throwaway profile and a proxy that refuses connections (127.0.0.1:9, the discard
port), so a page that tries to fetch anything remote gets nothing; ``BrowserError`` carries
chromium's stderr when it fails or times out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 90  # seconds for one chromium run


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path, png_path, width: int = 1200, height: int = 2000) -> Path:
    """A width x height screenshot of the page (what fits in that window) as a PNG."""
    png_path = Path(png_path).resolve()
    png_path.unlink(missing_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={png_path}"], html_path)
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot to {png_path}")
    return png_path


def dump_dom(html_path) -> str:
    return _run(["--dump-dom"], html_path)


def _run(arguments: list[str], html_path) -> str:
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("chromium is not installed: apt-get install chromium")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="mailesc-chromium-") as profile:
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-dev-shm-usage", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                   f"--user-data-dir={profile}", *arguments, url]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                                  env=_environment(profile))
        except subprocess.TimeoutExpired as error:
            raise BrowserError(f"chromium did not finish within {TIMEOUT}s: {_text(error.stderr)}") from None
    if done.returncode != 0:
        raise BrowserError(f"chromium exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _environment(profile: str) -> dict:
    """A private HOME so chromium writes no caches or crash dumps outside the throwaway profile."""
    return {**os.environ, "HOME": profile, "XDG_CONFIG_HOME": profile, "XDG_CACHE_HOME": profile}


def _text(stream) -> str:
    if stream is None:
        return ""
    return (stream.decode(errors="replace") if isinstance(stream, bytes) else stream).strip()
