"""One polite, bounded HTTP GET of an image: per-host limits, vetted addresses, redirects, retries,
a deadline and a minimum rate, streaming caps, and only the decoders ccub accepts."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import io
import ipaddress
import os
import random
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from ccub.config import Fetch
from ccub.imaging.decode import DecodeRefused, open_image

CHUNK = 64 * 1024
# Characters of a request path or query that are sent as they are (reserved ones, and "%" of escapes).
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Decoded formats kept (the ones `open_image` opens), with the suffix they are stored under.
SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
# First bytes of formats that are refused, only to name them in the failure; nothing else reads them.
MAGIC = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"8BPS", "PSD"),
         (b"%PDF", "PDF"), (b"%!PS", "PostScript"), (b"\x00\x00\x01\x00", "ICO"), (b"icns", "ICNS"),
         (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"<svg", "SVG"), (b"<?xml", "SVG/XML"))
ISO_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}
# Well-known NAT64 prefix (RFC 6052): on an IPv6-only network every IPv4 host is reached through it.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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


def public_url(url: str) -> str:
    """`url` as it may be published (metadata.jsonl, fetch_report.csv, messages): scheme://host[:port]/path.

    An allowlist, not a blocklist: user:password@, the query (signed URLs carry their token there) and
    the fragment are dropped, whatever new place a secret may hide in them.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unreadable URL may still hold a secret: publish nothing of it
        return ""
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def address_refusal(address: str) -> str | None:
    """Why a download may not connect to `address` by default ("loopback", "private", ...); None when public.

    Manifests come from strangers: a URL must not reach this machine, its network or a cloud
    metadata service. An IPv4 address carried in IPv6 (mapped, 6to4, NAT64) is judged as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unreadable"
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else ip)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"  # e.g. the carrier-grade NAT range 100.64.0.0/10


def resolve(host: str, port: int) -> list[tuple[int, tuple]]:
    """(family, socket address) for each address of `host`: the only name lookup a request makes."""
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _connect(addresses: list[tuple[int, tuple]], timeout: float) -> socket.socket:
    """A socket connected to the first of the vetted `addresses` that answers within `timeout` in all."""
    end = time.monotonic() + timeout
    error: OSError = TimeoutError("no address answered")
    for family, sockaddr in addresses:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(left)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class Deadline:
    """When one download must be finished: `seconds` after it starts, over all attempts and redirects."""

    def __init__(self, seconds: float):
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def extend(self, seconds: float) -> None:
        self.at += seconds

    def check(self) -> None:
        if self.left() <= 0:
            raise Failure("deadline", f"not finished within {self.seconds:g} s ([fetch] total_timeout)")


class Metered(io.RawIOBase):
    """A connected socket as http.client reads the response from it (via `makefile`).

    Every read waits at most read_timeout, and less where the download's deadline or the minimum
    rate would be missed first, so a server dripping a byte at a time cannot hold a worker.
    """

    def __init__(self, sock: socket.socket, settings: Fetch, deadline: Deadline):
        super().__init__()
        self.sock, self.settings, self.deadline = sock, settings, deadline
        self.start, self.received = time.monotonic(), 0
        # Like the file http.client would make, this keeps the socket open until the response is
        # closed, even after the connection object closes it; reads go to the socket itself.
        self._hold = sock.makefile("rb", buffering=0)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self)

    def close(self) -> None:
        self._hold.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            wait = self._wait()
            self.sock.settimeout(wait)
            try:
                n = self.sock.recv_into(buffer)
            except TimeoutError:
                if wait < self.settings.read_timeout:
                    continue  # the deadline or the rate fell due: _wait says which
                raise
            self.received += n
            return n

    def _wait(self) -> float:
        """Seconds the next read may wait; Failure once the deadline or the minimum rate is missed."""
        self.deadline.check()
        s = self.settings
        wait = min(s.read_timeout, self.deadline.left())
        if s.min_bytes_per_second > 0:
            # The mean rate since the request began drops below the minimum at this moment.
            due = self.start + max(s.rate_grace, self.received / s.min_bytes_per_second) - time.monotonic()
            if due <= 0:
                raise Failure("too_slow", f"{self.received} bytes in {time.monotonic() - self.start:.1f} s is "
                              f"below {s.min_bytes_per_second:g} bytes/s ([fetch] min_bytes_per_second)")
            wait = min(wait, due)
        return max(wait, 0.001)


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
    def __init__(self, settings: Fetch, user_agent: str, stop: threading.Event, max_pixels: int):
        self.settings, self.user_agent, self.stop, self.max_pixels = settings, user_agent, stop, max_pixels
        self.limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_rate)
        self.max_bytes = int(settings.max_mb * 1024 * 1024)

    def fetch(self, url: str, folder: Path, stem: str) -> tuple[Download | None, Failure | None, int]:
        """(download, None, attempts) or (None, failure, attempts); retries what is worth retrying
        while the download's deadline ([fetch] total_timeout) allows."""
        deadline = Deadline(self.settings.total_timeout)
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._follow(url, deadline, folder, stem), None, attempts
            except Failure as failure:
                if not failure.retry or attempts > self.settings.retries:
                    return None, failure, attempts
                delay = backoff(self.settings, attempts, failure.retry_after)
                if delay >= deadline.left():
                    return None, Failure(failure.cause, f"{failure}; not retried: the {deadline.seconds:g} s "
                                         "deadline ([fetch] total_timeout) would pass first", failure.status), attempts
                if self.stop.wait(delay):
                    raise Stopped from None

    def _follow(self, url: str, deadline: Deadline, folder: Path, stem: str) -> Download:
        seen = {url}
        current = url
        for _ in range(self.settings.max_redirects + 1):
            location = self._get(current, deadline, folder, stem)
            if isinstance(location, Download):
                return location
            try:
                target = urljoin(current, location)
                scheme = urlsplit(target).scheme.lower()
            except ValueError as exc:
                raise Failure("bad_url", f"redirected to an unreadable address {public_url(current)}") from exc
            if scheme not in ("http", "https"):
                raise Failure("redirect_scheme", f"redirected to a non-http(s) address {public_url(target)[:200]}")
            if target in seen:
                raise Failure("redirect_loop", f"redirect loop: {public_url(current)} -> {public_url(target)}")
            seen.add(target)
            current = target
        raise Failure("too_many_redirects", f"more than {self.settings.max_redirects} redirects "
                      f"(last {public_url(current)})")

    def _get(self, url: str, deadline: Deadline, folder: Path, stem: str) -> Download | str:
        """A Download, or the Location of a redirect."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        if scheme not in ("http", "https") or not host:
            raise Failure("bad_url", f"not an http(s) URL: {public_url(url)[:200]}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
            host = host if host.isascii() else host.encode("idna").decode("ascii")
        except ValueError as exc:  # a port out of range, a name IDNA cannot encode
            raise Failure("bad_url", f"bad host or port in {public_url(url)[:200]}") from exc
        addresses = self._vetted(host, port)
        queued = time.monotonic()
        self.limiter.acquire(host, self.stop)
        deadline.extend(time.monotonic() - queued)  # waiting for a host slot is politeness, not the server's time
        try:
            return self._request(url, parts, host, port, addresses, deadline, folder, stem)
        finally:
            self.limiter.release(host)

    def _vetted(self, host: str, port: int) -> list[tuple[int, tuple]]:
        """The addresses `host` resolves to (looked up once); Failure when one of them is not public,
        unless [fetch] allow_private."""
        try:
            addresses = resolve(host, port)
        except ValueError as exc:  # a NUL, an empty or over-long label in the name
            raise Failure("bad_url", f"not a valid host name: {host[:100]!r}") from exc
        except OSError as exc:
            raise Failure("connection", f"cannot resolve {host}: {exc}", retry=True) from exc
        if self.settings.allow_private:
            return addresses
        for _family, sockaddr in addresses:
            kind = address_refusal(sockaddr[0])
            if kind:
                where = sockaddr[0] if sockaddr[0] == host else f"{host} resolves to {sockaddr[0]}, which"
                raise Failure("blocked_address", f"{where} is a {kind} address, refused because manifests come "
                              "from strangers (fix: for an intranet mirror, pass --allow-private or set "
                              "[fetch] allow_private = true)")
        return addresses

    def _request(self, url, parts, host, port, addresses, deadline: Deadline, folder: Path,
                 stem: str) -> Download | str:
        s = self.settings
        deadline.check()
        timeout = min(s.connect_timeout, deadline.left())
        if parts.scheme.lower() == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        # Connect to the vetted addresses: letting http.client look the name up again would let a
        # second DNS answer (rebinding) point inside. The Host header, SNI and the certificate
        # check still use the host name.
        conn._create_connection = lambda _address, timeout, _source=None: _connect(addresses, timeout)
        conn.response_class = lambda sock, **kwargs: http.client.HTTPResponse(Metered(sock, s, deadline), **kwargs)
        # http.client sends only ASCII: other characters and spaces are percent-encoded, as browsers do.
        path = quote(parts.path or "/", safe=URL_SAFE) + (f"?{quote(parts.query, safe=URL_SAFE)}" if parts.query
                                                            else "")
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise Failure("timeout", f"no connection within {s.connect_timeout:g} s", retry=True) from exc
            conn.sock.settimeout(min(s.read_timeout, max(deadline.left(), 0.001)))
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
        except http.client.InvalidURL as exc:
            raise Failure("bad_url", f"not a valid request path: {public_url(url)[:200]}") from exc
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
            fmt = verify_image(tmp, self.max_pixels, status)
            final = folder / f"{stem}{SUFFIX[fmt]}"
            os.replace(tmp, final)
            return Download(final, url, status, content_type, size, digest.hexdigest(), fmt,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        finally:
            if tmp.exists():
                tmp.unlink()


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce, for a message; None when unknown."""
    if head[4:8] == b"ftyp":
        return ISO_BRANDS.get(head[8:12], "ISO media")
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def verify_image(path: Path, max_pixels: int, status: int | None = None) -> str:
    """The format of a complete JPEG, PNG or WebP file of at most `max_pixels`; Failure otherwise.

    Only `open_image` parses the bytes: no other Pillow plugin sees them, and the pixel cap is
    checked on the header, before anything is decoded.
    """
    try:
        with open_image(path, max_pixels) as im:
            fmt = im.format
            im.verify()
        with open_image(path, max_pixels) as im:
            im.load()  # verify() does not see a cut-off JPEG; decoding does
    except DecodeRefused as exc:
        raise _refused(path, exc, status) from exc
    except Exception as exc:  # Pillow raises many types for bad data
        raise Failure("bad_image", f"not a decodable image ({type(exc).__name__}: {str(exc)[:200]})",
                      status) from exc
    return fmt


def _refused(path: Path, exc: DecodeRefused, status: int | None) -> Failure:
    if exc.check == "file.too_many_pixels":
        return Failure("too_many_pixels", f"{exc} ([limits] max_megapixels; fix: link a smaller version)", status)
    with open(path, "rb") as fh:
        fmt = sniff(fh.read(16))
    if exc.check == "file.format" and fmt is not None:
        return Failure("unsupported_format", f"a {fmt} file; ccub accepts JPEG, PNG and WebP (fix: link or "
                       "convert to a JPEG, PNG or WebP version)", status)
    return Failure("bad_image", f"not a decodable image ({exc})", status)
