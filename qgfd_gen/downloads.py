"""Downloads that fail fast and plainly offline: one message naming the missing file and where it goes."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any, Callable, Optional

from .errors import DataUnavailableError

DOWNLOAD_TIMEOUT_SECONDS = 20


def download_or_explain(download: Optional[Callable[[], Any]], message: str) -> Any:
    """Run a download with a short socket timeout and return what it returns; turn any network failure
    (or no download at all, when `download` is None) into one DataUnavailableError carrying `message`."""
    if download is None:
        raise DataUnavailableError(f"{message}\n(not downloading)")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        return download()
    except Exception as error:  # urllib, socket, HTTP errors all mean the same thing here
        raise DataUnavailableError(f"{message}\n(download failed: {type(error).__name__}: {error})") from None
    finally:
        socket.setdefaulttimeout(previous)


def fetch_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url) as response:
        return response.read()
