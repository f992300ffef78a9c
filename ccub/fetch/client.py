"""One polite, bounded HTTP GET of an image: per-host limits, redirects, retries, streaming caps."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import random
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from PIL import Image

from ccub.config import Fetch

CHUNK = 64 * 1024
# Decoded formats kept, with the suffix they are stored under.
SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
          "MPO": ".jpg", "HEIF": ".heic", "AVIF": ".avif"}


class Stopped(Exception):
    """The run was interrupted; the download stopped and left nothing behind."""


class Failure(Exception):
    def __init__(self, cause: str, message: str, status: int | None = None, retry: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.cause, self.status, self.retry, self.retry_after = cause, status, retry, retry_after


@dataclass
class Download:
    """A verified image under its final name, with its provenance."""

    path: Path
    final_url: str
    status: int
    content_type: str
    bytes: int
    sha256: str
    format: str
    retrieved_at: str


@dataclass
class HostLimiter:
    """At most `concurrency` requests in flight per host, and request starts spaced 1/rate apart."""

    concurrency: int
    rate: float
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def acquire(self, host: str, stop: threading.Event) -> None:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.concurrency))
        while not slot.acquire(timeout=0.2):
            if stop.is_set():
                raise Stopped
        if self.rate > 0:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next[host])
                self._next[host] = start + 1.0 / self.rate
            if stop.wait(start - now):
                slot.release()
                raise Stopped

    def release(self, host: str) -> None:
        self._slots[host].release()


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP-date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(settings: Fetch, attempt: int, retry_after: float | None) -> float:
    """Delay before attempt `attempt + 1`: exponential with jitter, or the server's Retry-After (capped)."""
    if retry_after is not None:
        return min(retry_after, settings.retry_after_max)
    delay = settings.backoff_base * 2 ** (attempt - 1)
    return min(delay * (1 + random.random()), settings.backoff_max)


class Client:
    def __init__(self, settings: Fetch, user_agent: str, stop: threading.Event):
        self.settings, self.user_agent, self.stop = settings, user_agent, stop
        self.limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_rate)
        self.max_bytes = int(settings.max_mb * 1024 * 1024)

    def fetch(self, url: str, folder: Path, stem: str) -> tuple[Download | None, Failure | None, int]:
        """(download, None, attempts) or (None, failure, attempts); retries what is worth retrying."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._follow(url, folder, stem), None, attempts
            except Failure as failure:
                if not failure.retry or attempts > self.settings.retries:
                    return None, failure, attempts
                if self.stop.wait(backoff(self.settings, attempts, failure.retry_after)):
                    raise Stopped from None

    def _follow(self, url: str, folder: Path, stem: str) -> Download:
        seen = {url}
        current = url
        for _ in range(self.settings.max_redirects + 1):
            location = self._get(current, folder, stem)
            if isinstance(location, Download):
                return location
            target = urljoin(current, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise Failure("redirect_scheme", f"redirected to a non-http(s) address {target[:200]}")
            if target in seen:
                raise Failure("redirect_loop", f"redirect loop: {current} -> {target}")
            seen.add(target)
            current = target
        raise Failure("too_many_redirects", f"more than {self.settings.max_redirects} redirects (last {current})")

    def _get(self, url: str, folder: Path, stem: str) -> Download | str:
        """A Download, or the Location of a redirect."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise Failure("bad_url", f"not an http(s) URL: {url[:200]}")
        try:
            port = parts.port
        except ValueError as exc:
            raise Failure("bad_url", f"bad port in {url[:200]}") from exc
        self.limiter.acquire(host, self.stop)
        try:
            return self._request(url, parts, host, port, folder, stem)
        finally:
            self.limiter.release(host)

    def _request(self, url, parts, host, port, folder: Path, stem: str) -> Download | str:
        s = self.settings
        if parts.scheme.lower() == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=s.connect_timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=s.connect_timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise Failure("timeout", f"no connection within {s.connect_timeout:g} s", retry=True) from exc
            conn.sock.settimeout(s.read_timeout)
            conn.request("GET", path, headers={"User-Agent": self.user_agent, "Accept": "image/*",
                                               "Accept-Encoding": "identity"})
            response = conn.getresponse()
            status = response.status
            if 300 <= status < 400 and status != 304:
                location = response.getheader("Location")
                if not location:
                    raise Failure("http_error", f"HTTP {status} redirect without a Location", status)
                return location
            if status == 429 or status >= 500:
                after = retry_after_seconds(response.getheader("Retry-After"))
                cause = "rate_limited" if status == 429 else "server_error"
                raise Failure(cause, f"HTTP {status} {response.reason}", status, retry=True, retry_after=after)
            if status != 200:
                cause = "not_found" if status in (404, 410) else "http_error"
                hint = " (set [fetch] contact in ccub.toml)" if status == 403 and "contact:" not in self.user_agent \
                    else ""
                raise Failure(cause, f"HTTP {status} {response.reason}{hint}", status)
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise Failure("not_image", f"served as {content_type or 'no content type'}, not image/*", status)
            length = response.getheader("Content-Length")
            declared = int(length) if length and length.strip().isdigit() else None
            if declared is not None and declared > self.max_bytes:
                raise Failure("too_large", f"Content-Length {declared} bytes is over the "
                              f"{s.max_mb:g} MB cap ([fetch] max_mb)", status)
            return self._stream(response, url, status, content_type, declared, folder, stem)
        except TimeoutError as exc:
            raise Failure("timeout", f"no data within {s.read_timeout:g} s", retry=True) from exc
        except http.client.IncompleteRead as exc:
            raise Failure("truncated", f"connection closed after {len(exc.partial)} bytes", retry=True) from exc
        except ssl.SSLError as exc:
            raise Failure("tls", f"TLS error: {exc.reason or exc}") from exc
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise Failure("connection", f"{type(exc).__name__}: {exc}", retry=True) from exc
        finally:
            conn.close()

    def _stream(self, response, url, status, content_type, declared, folder: Path, stem: str) -> Download:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stem}.{os.getpid()}.{threading.get_ident()}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as fh:
                while chunk := response.read(CHUNK):
                    if self.stop.is_set():
                        raise Stopped
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise Failure("too_large", f"over the {self.settings.max_mb:g} MB cap after "
                                      f"{size} bytes ([fetch] max_mb)", status)
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if declared is not None and size != declared:
                raise Failure("truncated", f"{size} of {declared} bytes arrived", status, retry=True)
            fmt = _verify(tmp, status)
            final = folder / f"{stem}{SUFFIX.get(fmt, '.' + fmt.lower())}"
            os.replace(tmp, final)
            return Download(final, url, status, content_type, size, digest.hexdigest(), fmt,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        finally:
            if tmp.exists():
                tmp.unlink()


def _verify(path: Path, status: int) -> str:
    """The decoded format; Failure when Pillow cannot open, verify and fully decode the file."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt = im.format or "unknown"
                im.verify()
            with Image.open(path) as im:
                im.load()  # verify() does not see a cut-off JPEG; decoding does
    except Exception as exc:  # Pillow raises many types for bad data
        raise Failure("bad_image", f"not a decodable image ({type(exc).__name__}: {str(exc)[:200]})",
                      status) from exc
    return fmt
