"""`ccub fetch` against manifests and servers written by strangers; each test is named for the attack."""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from helpers import photo, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import BmpImagePlugin, GifImagePlugin, ImageFile, TiffImagePlugin
from typer.testing import CliRunner

from ccub.cli import app
from ccub.config import Limits, load_config
from ccub.fetch import ManifestError, client, read_manifest, run_fetch
from ccub.fetch.run import REPORT, STATE, FetchError
from ccub.vocab import Vocabulary
from tests.test_fetch import JPEG, Server, fast_config, metadata, report, row, write_manifest

VOCAB = Vocabulary(load_config(cwd=Path("/nonexistent")))
# Stands in for a public address: the address policy is patched to pass it, nothing else.
STAND_IN = "127.0.0.2"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cfg():
    return fast_config(allow_private=False)


def stand_in(context: ssl.SSLContext | None = None, port: int = 0) -> Server:
    """A server on the stand-in for a public address."""
    try:
        return Server(STAND_IN, context, port)
    except OSError:
        pytest.skip(f"{STAND_IN} is not a loopback address on this system (Linux routes all of 127.0.0.0/8)")


def manifest_in(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_manifest(folder / name, rows)


def redirect(location: str):
    return lambda h, n: Server.send(h, 302, b"", "text/plain", {"Location": location})


class Dns:
    """socket.getaddrinfo for `*.example` names: each name answers its addresses in turn (the last one
    from then on); `asked` lists the names looked up. Other names are resolved as usual."""

    def __init__(self, monkeypatch, answers: dict[str, list[str]]):
        self.answers, self.asked, real = answers, [], socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if not str(host).endswith(".example"):
                return real(host, port, *args, **kwargs)
            self.asked.append(host)
            queue = self.answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        refusal = client.address_refusal
        monkeypatch.setattr(client, "address_refusal", lambda a: None if a == STAND_IN else refusal(a))


# --- 1. addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
    ("100.64.0.1", "non-global"), ("0.0.0.0", "unspecified"), ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"), ("ff02::1", "multicast"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"), ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a00:1", "private"), ("::127.0.0.1", "reserved"), ("2001:db8::1", "private"),
    ("not-an-address", "unreadable"),
    ("8.8.8.8", None), ("93.184.216.34", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None), ("2002:808:808::", None),
])
def test_address_policy_refuses_every_non_public_address(address, kind):
    assert client.address_refusal(address) == kind


@pytest.mark.parametrize("host,listen,allow", [
    ("127.0.0.1", "127.0.0.1", False), ("localhost", "127.0.0.1", False), ("2130706433", "127.0.0.1", False),
    ("[::1]", "::1", False), ("127.0.0.1", "127.0.0.1", True),  # the last: allowed, so it does connect
])
def test_loopback_url_in_a_manifest_is_not_connected_to(tmp_path, guard, cfg, host, listen, allow):
    cfg.fetch.allow_private, cfg.fetch.retries, cfg.fetch.read_timeout = allow, 0, 0.2
    with socket.socket(socket.AF_INET6 if ":" in listen else socket.AF_INET) as listener:
        listener.bind((listen, 0))
        listener.listen()
        listener.setblocking(False)
        manifest = manifest_in(tmp_path / "in", [row(f"http://{host}:{listener.getsockname()[1]}/photo.jpg")])
        guard.watch(manifest.parent)
        (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
        if allow:
            listener.accept()[0].close()  # the control: a connection would be seen
            assert outcome.cause == "timeout"
            return
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert (outcome.outcome, outcome.cause) == ("failed", "blocked_address")
    assert re.search(r"(127\.0\.0\.1|::1)(, which)? is a loopback address", outcome.message)
    assert "--allow-private" in outcome.message and "[fetch] allow_private = true" in outcome.message


def test_loopback_url_through_the_cli_names_the_fix(tmp_path, guard, server):
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/jpg")])
    guard.watch(manifest.parent)
    toml = tmp_path / "ccub.toml"
    toml.write_text("[fetch]\nper_host_rate = 0\n", encoding="utf-8")
    args = ["fetch", str(manifest), "--out", str(tmp_path / "out"), "--config", str(toml)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "blocked_address" in result.output and "--allow-private" in result.output
    assert server.total == 0
    assert CliRunner().invoke(app, [*args, "--allow-private"]).exit_code == 0 and server.hits == {"/jpg": 1}


def test_redirect_from_a_public_host_to_loopback_is_refused(tmp_path, guard, cfg, monkeypatch):
    inside, outside = Server(), stand_in()
    outside.routes["/photo.jpg"] = redirect(f"{inside.base}/jpg")
    dns = Dns(monkeypatch, {"images.example": [STAND_IN]})
    try:
        manifest = manifest_in(tmp_path / "in", [row(f"http://images.example:{outside.port}/photo.jpg")])
        guard.watch(manifest.parent)
        (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    finally:
        inside.close()
        outside.close()
    assert (outcome.outcome, outcome.cause) == ("failed", "blocked_address")
    assert outcome.message.startswith("127.0.0.1 is a loopback address")
    assert outside.hits == {"/photo.jpg": 1} and inside.total == 0
    assert outside.hosts == [f"images.example:{outside.port}"] and dns.asked == ["images.example"]


def test_dns_rebinding_gets_no_second_lookup(tmp_path, guard, cfg, monkeypatch):
    # The first answer is public; any later one would point inside, at the same port. One
    # attempt with patient timeouts: a retry on a busy machine would rightly look again.
    cfg.fetch.read_timeout = cfg.fetch.connect_timeout = 30
    cfg.fetch.retries = 0
    inside = Server()
    outside = stand_in(port=inside.port)
    dns = Dns(monkeypatch, {"images.example": [STAND_IN, "127.0.0.1"]})
    try:
        manifest = manifest_in(tmp_path / "in", [row(f"http://images.example:{outside.port}/jpg")])
        guard.watch(manifest.parent)
        (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    finally:
        inside.close()
        outside.close()
    assert outcome.outcome == "ok" and outside.hits == {"/jpg": 1} and inside.total == 0
    assert dns.asked == ["images.example"] and outside.hosts == [f"images.example:{outside.port}"]


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key (PEM files)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_to_the_pinned_address_still_checks_the_certificate_for_the_host_name(tmp_path, guard, cfg,
                                                                                      monkeypatch):
    cert, key = _certificate(tmp_path, "images.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []
    context.sni_callback = lambda _sock, name, _context: names.append(name)
    trusting = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda: trusting(cafile=str(cert)))
    Dns(monkeypatch, {"images.example": [STAND_IN], "other.example": [STAND_IN]})
    outside = stand_in(context)
    try:
        manifest = manifest_in(tmp_path / "in", [row(f"https://images.example:{outside.port}/jpg-1"),
                                                 row(f"https://other.example:{outside.port}/jpg-2")])
        guard.watch(manifest.parent)
        good, wrong = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    finally:
        outside.close()
    assert good.outcome == "ok" and (wrong.outcome, wrong.cause) == ("failed", "tls")
    assert "images.example" in names and "other.example" in names  # SNI: the host name, not the address
    assert outside.hits == {"/jpg-1": 1}


def test_non_ascii_urls_and_host_names_do_not_stop_the_run(tmp_path, guard, server, cfg):
    cfg.fetch.allow_private = True
    server.routes["/%C3%A9t%C3%A9%20photo.jpg"] = lambda h, n: Server.send(h, 200, JPEG)
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/été photo.jpg"), row("http://a..b.example/x.jpg"),
                                             row(f"{server.base}/jpg?q=été")])
    guard.watch(manifest.parent)
    outcomes = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    assert [(o.outcome, o.cause) for o in outcomes] == [("ok", ""), ("failed", "bad_url"), ("ok", "")]
    assert set(server.hits) == {"/%C3%A9t%C3%A9%20photo.jpg", "/jpg?q=%C3%A9t%C3%A9"}


# --- 2. deadlines -------------------------------------------------------------------------------------


def drip(head: bytes, every: float, count: int = 200):
    """A handler that writes `head`, then one byte every `every` seconds until the client hangs up."""
    def handler(h, n):
        with contextlib.suppress(OSError):
            h.wfile.write(head)
            for _ in range(count):
                time.sleep(every)
                h.wfile.write(b"x")
        h.close_connection = True
    return handler


def test_server_dripping_the_body_is_cut_off_by_the_minimum_rate(tmp_path, guard, server, cfg):
    server.routes["/drip.jpg"] = drip(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n",
                                      0.1)
    f = cfg.fetch
    f.allow_private, f.read_timeout, f.min_bytes_per_second, f.rate_grace = True, 2, 1000, 0.5
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/drip.jpg")])
    guard.watch(manifest.parent)
    start = time.monotonic()
    (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    elapsed = time.monotonic() - start
    assert (outcome.cause, outcome.attempts) == ("too_slow", 1) and "min_bytes_per_second" in outcome.message
    assert 0.5 <= elapsed < 3  # the drip would take 20 s


def test_server_dripping_the_headers_is_cut_off_by_the_total_deadline(tmp_path, guard, server, cfg):
    server.routes["/drip.jpg"] = drip(b"HTTP/1.1 200 OK\r\nX-Slow: ", 0.1)
    f = cfg.fetch
    f.allow_private, f.read_timeout, f.min_bytes_per_second, f.total_timeout, f.retries = True, 2, 0, 1, 3
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/drip.jpg")])
    guard.watch(manifest.parent)
    start = time.monotonic()
    (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    elapsed = time.monotonic() - start
    assert outcome.cause == "deadline" and "total_timeout" in outcome.message
    assert 1 <= elapsed < 3 and server.hits == {"/drip.jpg": 1}


def test_retries_against_a_failing_server_stop_at_the_total_deadline(tmp_path, guard, server, cfg):
    server.routes["/down.jpg"] = lambda h, n: Server.send(h, 503, b"down", "text/plain")
    f = cfg.fetch
    f.allow_private, f.retries, f.backoff_base, f.backoff_max, f.total_timeout = True, 100, 0.3, 0.3, 1
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/down.jpg")])
    guard.watch(manifest.parent)
    start = time.monotonic()
    (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    assert time.monotonic() - start < 2
    assert outcome.cause == "server_error" and "total_timeout" in outcome.message
    assert 2 <= outcome.attempts <= 4 and server.hits["/down.jpg"] == outcome.attempts


# --- 3. provenance ------------------------------------------------------------------------------------


def test_credentials_and_tokens_in_urls_are_never_published(tmp_path, guard, server):
    base = server.base.replace("http://", "http://user:pw@")
    server.routes["/signed"] = redirect("/jpg-2?sig=SECRET2#frag")
    manifest = manifest_in(tmp_path / "in", [
        row(f"{base}/jpg-1?token=SECRET1#frag"), row(f"{base}/signed?token=SECRET3"),
        row(f"{base}/missing?token=SECRET4"), row("ftp://user:pw@example.org/x.jpg?token=SECRET5")])
    guard.watch(manifest.parent)
    toml = tmp_path / "ccub.toml"
    toml.write_text("[fetch]\nper_host_rate = 0\nretries = 0\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["fetch", str(manifest), "--out", str(out), "--config", str(toml),
                                      "--allow-private"], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert server.hits["/jpg-1?token=SECRET1"] == 1  # the token was used to download, and only for that
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {STATE, REPORT, "metadata.jsonl"}
    for text in [result.output, *(p.read_bytes().decode("utf-8", "replace") for p in files)]:
        assert "SECRET" not in text and "user:" not in text and "pw@" not in text and "#frag" not in text
    meta = {m["manifest_line"]: m for m in metadata(out)}
    assert meta[2]["source_url"] == meta[2]["final_url"] == f"{server.base}/jpg-1"
    assert (meta[3]["source_url"], meta[3]["final_url"]) == (f"{server.base}/signed", f"{server.base}/jpg-2")


# --- 4. what a killed run leaves ----------------------------------------------------------------------


def test_images_orphaned_by_a_kill_are_adopted_or_removed(tmp_path, guard, server, cfg):
    cfg.fetch.allow_private = True
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/jpg-{i}") for i in range(1, 7)])
    decoy = manifest.parent / "FOOD_0123456789abcdef.jpg"  # a name fetch could give, beside the manifest
    decoy.write_bytes(JPEG)
    guard.watch(manifest.parent)
    out = tmp_path / "out"
    images = out / "images"
    run_fetch(manifest, out, cfg)
    # Killed after six renames but before the state checkpoint: the state knows two of the files.
    state = json.loads((out / STATE).read_text("utf-8"))
    known = dict(list(state["downloads"].items())[:2])
    state["downloads"] = known
    (out / STATE).write_text(json.dumps(state), encoding="utf-8")
    orphans = sorted(set(images.iterdir()) - {out / e["file_name"] for e in known.values()})
    orphans[0].write_bytes(b"cut off mid-write")  # does not decode: removed and fetched again
    (images / ".FOOD_0123456789abcdef.123.456.part").write_bytes(b"partial")
    (images / "ARCH_0123456789abcdef.jpg").write_bytes(JPEG)  # fetch's kind of name, no row: removed
    (images / "notes.txt").write_text("the steward's", encoding="utf-8")  # not fetch's: left alone
    hits = dict(server.hits)
    result = run_fetch(manifest, out, cfg)
    causes = sorted((o.outcome, o.cause) for o in result.outcomes)
    assert causes == [("ok", "")] + [("skipped", "adopted")] * 3 + [("skipped", "already_downloaded")] * 2
    assert server.total == sum(hits.values()) + 1
    names = {p.name for p in images.iterdir()}
    assert names == {m["file_name"][len("images/"):] for m in metadata(out)} | {"notes.txt"}
    adopted = [m for m in metadata(out) if m["final_url"] is None]
    assert len(adopted) == 3 and all(m["sha256"] and m["source_url"].startswith(server.base) for m in adopted)


def test_images_folder_linked_to_the_manifest_folder_is_not_tidied(tmp_path, guard, server, cfg):
    cfg.fetch.allow_private = True
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/jpg-1")])
    (manifest.parent / "FOOD_0123456789abcdef.jpg").write_bytes(b"not an image")
    (manifest.parent / ".FOOD_0123456789abcdef.1.2.part").write_bytes(b"partial")
    guard.watch(manifest.parent)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "images").symlink_to(manifest.parent)
    with pytest.raises(FetchError, match="symlink"):
        run_fetch(manifest, tmp_path / "out", cfg)
    assert server.total == 0


# --- 5. decoders --------------------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with one tiny IDAT: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_gif_bmp_tiff_are_refused_without_being_decoded(tmp_path, guard, server, cfg, monkeypatch, fmt):
    cfg.fetch.allow_private = True
    buffer = io.BytesIO()
    photo(3, (64, 48)).save(buffer, fmt)
    server.routes["/picture"] = lambda h, n: Server.send(h, 200, buffer.getvalue(), f"image/{fmt.lower()}")
    opened: list[str] = []
    for plugin in (GifImagePlugin.GifImageFile, BmpImagePlugin.BmpImageFile, TiffImagePlugin.TiffImageFile):
        monkeypatch.setattr(plugin, "_open", lambda self, name=plugin.__name__: opened.append(name))
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/picture")])
    guard.watch(manifest.parent)
    out = tmp_path / "out"
    (outcome,) = run_fetch(manifest, out, cfg).outcomes
    assert (outcome.outcome, outcome.cause) == ("failed", "unsupported_format")
    assert f"a {fmt} file" in outcome.message and "JPEG, PNG and WebP" in outcome.message
    assert opened == [] and not list((out / "images").iterdir())


def test_png_declaring_9400x9400_pixels_is_refused_on_its_header(tmp_path, guard, server, cfg, monkeypatch):
    cfg.fetch.allow_private = True
    bomb = png_header_only(9400, 9400)
    server.routes["/bomb.png"] = lambda h, n: Server.send(h, 200, bomb, "image/png")
    decoded: list = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size))
    manifest = manifest_in(tmp_path / "in", [row(f"{server.base}/bomb.png")])
    guard.watch(manifest.parent)
    start = time.monotonic()
    (outcome,) = run_fetch(manifest, tmp_path / "out", cfg).outcomes
    assert time.monotonic() - start < 2
    assert outcome.cause == "too_many_pixels" and "9400x9400" in outcome.message
    assert "max_megapixels" in outcome.message and decoded == []
    # Memory, in a fresh interpreter: refusing it raises the peak by little (decoding needs 265 MB).
    (tmp_path / "bomb.png").write_bytes(bomb)
    probe = ("import resource, sys; from pathlib import Path; from ccub.fetch.client import Failure, verify_image\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "try:\n    verify_image(Path(sys.argv[1]), 50_000_000)\nexcept Failure as f:\n"
             "    print(f.cause, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    cause, grew_kb = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "bomb.png")], check=True,
                                    capture_output=True, text=True).stdout.split()
    assert cause == "too_many_pixels" and int(grew_kb) < 20_000


# --- 6. the manifest reader ---------------------------------------------------------------------------


def good(i: int, caption: str = "A bowl of spicy tteokbokki at a Seoul market stall") -> dict:
    return row(f"https://example.org/{i}.jpg", caption=caption)


def test_csv_cell_over_the_field_limit_is_a_problem_on_its_row(tmp_path, guard):
    limit = csv.field_size_limit()
    manifest = manifest_in(tmp_path / "in", [good(1), good(2, "x" * 200_000), good(3)])
    guard.watch(manifest.parent)
    rows, problems = read_manifest(manifest, VOCAB)
    assert [(p.line, p.field) for p in problems] == [(3, "-")]
    assert "a cell of 200,000 characters in column 'caption', over limits.max_field_chars (65,536)" \
        in problems[0].message
    assert [r.line for r in rows if not r.problems] == [2, 4] and csv.field_size_limit() == limit


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_fifty_megabyte_line_is_a_problem_on_its_row(tmp_path, guard, suffix):
    manifest = manifest_in(tmp_path / "in", [good(1), good(2, "BIG"), good(3)], f"manifest{suffix}")
    manifest.write_bytes(manifest.read_bytes().replace(b"BIG", b"x" * 50_000_000))  # the csv writer is slow
    guard.watch(manifest.parent)
    tracemalloc.start()
    try:
        rows, problems = read_manifest(manifest, VOCAB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line = 3 if suffix == ".csv" else 2
    assert [(p.line, p.field) for p in problems] == [(line, "-")]
    assert "1,048,576 bytes" in problems[0].message and "max_line_bytes" in problems[0].message
    assert [r.line for r in rows if not r.problems] == [line - 1, line + 1] and peak < 8_000_000


def test_json_nested_fifty_thousand_deep_is_a_problem_on_its_row(tmp_path, guard):
    deep = "[" * 50_000 + "]" * 50_000
    lines = [json.dumps(good(1)), json.dumps(good(2))[:-1] + f', "extra": {deep}}}', deep, json.dumps(good(4))]
    folder = tmp_path / "in"
    folder.mkdir()
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    guard.watch(folder)
    rows, problems = read_manifest(manifest, VOCAB)
    assert [(p.line, p.field) for p in problems] == [(2, "-"), (3, "-")]
    assert all("deeper than limits.max_json_depth (32)" in p.message for p in problems)
    assert [r.line for r in rows if not r.problems] == [1, 4]


@pytest.mark.parametrize("caption,kind", [(17, "number"), (2.5, "number"), (True, "boolean"), (None, "null"),
                                          ({"ko": "떡볶이"}, "object"), (["a", "b"], "array")])
def test_caption_of_another_json_type_is_a_problem_on_its_row(tmp_path, guard, caption, kind):
    manifest = manifest_in(tmp_path / "in", [good(1), good(2, caption), good(3)], "manifest.jsonl")
    guard.watch(manifest.parent)
    rows, problems = read_manifest(manifest, VOCAB)
    assert [(p.line, p.field, p.message) for p in problems] == [(2, "caption", f"a JSON {kind}, not text")]
    assert [r.line for r in rows if not r.problems] == [1, 3]


def test_manifest_over_max_metadata_mb_is_refused_unread(tmp_path, guard):
    manifest = manifest_in(tmp_path / "in", [good(i) for i in range(200)])
    guard.watch(manifest.parent)
    with pytest.raises(ManifestError, match=r"over the 0.01 MB cap \(\[limits\] max_metadata_mb\)"):
        read_manifest(manifest, VOCAB, Limits(max_metadata_mb=0.01))


def test_fifo_named_like_a_manifest_is_refused_without_waiting(tmp_path, guard):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "manifest.csv")
    guard.watch(folder)
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(folder / "manifest.csv", VOCAB)


def test_quoted_newlines_and_blank_lines_do_not_shift_line_numbers(tmp_path, guard):
    folder = tmp_path / "in"
    folder.mkdir()
    manifest = folder / "manifest.csv"
    manifest.write_text('url,caption,country_code,category_code\n\n'
                        'https://example.org/1.jpg,"A market\nstall in\nSeoul",KOR,FOOD\n'
                        '\n\n'
                        'https://example.org/2.jpg,"A bowl, ""hot""\r\nand red",XXX,FOOD\n'
                        'https://example.org/3.jpg,A temple,KOR,ARCH\n', encoding="utf-8")
    guard.watch(folder)
    rows, problems = read_manifest(manifest, VOCAB)
    assert [r.line for r in rows] == [3, 8, 10]
    assert [(p.line, p.field) for p in problems] == [(8, "country_code")]
    assert rows[0].caption == "A market\nstall in\nSeoul" and rows[1].caption == 'A bowl, "hot"\r\nand red'


def test_hostile_rows_fail_alone_and_the_other_rows_are_fetched(tmp_path, guard, server, cfg):
    cfg.fetch.allow_private = True
    rows = [row(f"{server.base}/jpg-1"), row(f"{server.base}/jpg-2", caption="x" * 200_000),
            row(f"{server.base}/jpg-3", caption="y" * 2_000_000), row(f"{server.base}/jpg-4")]
    manifest = manifest_in(tmp_path / "in", rows)
    guard.watch(manifest.parent)
    result = run_fetch(manifest, tmp_path / "out", cfg)
    assert [(o.line, o.outcome, o.cause) for o in result.outcomes] == [
        (2, "ok", ""), (3, "failed", "manifest"), (4, "failed", "manifest"), (5, "ok", "")]
    assert set(server.hits) == {"/jpg-1", "/jpg-4"}


# --- 7. the report in a spreadsheet -------------------------------------------------------------------


def test_formulas_in_urls_are_text_in_the_report_and_exact_in_metadata(tmp_path, guard, server, cfg):
    cfg.fetch.allow_private = True
    formula = "=1+1 is what a spreadsheet would compute"
    manifest = manifest_in(tmp_path / "in", [row('=HYPERLINK("http://evil.example")'), row("@SUM(A1:A9)"),
                                             row("-2+3"), row("+cmd|' /C calc'!A0"),
                                             row(f"{server.base}/jpg-1", caption=formula)])
    guard.watch(manifest.parent)
    out = tmp_path / "out"
    run_fetch(manifest, out, cfg)
    with (out / REPORT).open(encoding="utf-8", newline="") as fh:
        cells = [r["url"] for r in csv.DictReader(fh)]
    assert cells[:4] == ["'=HYPERLINK(\"http://evil.example\")", "'@SUM(A1:A9)", "'-2+3", "'+cmd|' /C calc'!A0"]
    assert [m["text"] for m in metadata(out)] == [formula]
    assert report(out)["jpg-1"]["outcome"] == "ok"


# --- 8. any manifest at all ---------------------------------------------------------------------------

LIMITS = Limits(max_line_bytes=2_000, max_field_chars=500, max_json_depth=8)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)
# One JSONL line: (kind, ...); kinds other than "good" and "blank" must be reported on their line.
JSONL_LINE = st.one_of(
    st.tuples(st.just("good"), TEXT.map(lambda t: "c" + t),
              st.dictionaries(TEXT.map(lambda k: "x_" + k), SCALAR | st.lists(SCALAR, max_size=3), max_size=3),
              st.booleans()),
    st.tuples(st.just("wrong_type"), JSON.filter(lambda v: not isinstance(v, str))),
    st.tuples(st.just("not_json"), TEXT.map(lambda t: "#" + t.replace("\n", " "))),
    st.tuples(st.just("not_object"), JSON.filter(lambda v: not isinstance(v, dict))),
    st.tuples(st.just("deep"), st.integers(9, 3_000)),
    st.tuples(st.just("not_finite"), st.sampled_from(["NaN", "-Infinity", "1e999", "9" * 5_000])),
    st.tuples(st.just("empty_object"), st.just("{}")),
    st.tuples(st.just("long"), st.integers(2_001, 6_000)),
    st.tuples(st.just("blank"), st.sampled_from(["", " ", "\t", "\r"])),
)


def _jsonl_line(i: int, spec: tuple) -> str:
    kind, value = spec[0], spec[1]
    base = {"url": f"https://example.org/{i}.jpg", "country_code": "KOR", "category_code": "FOOD"}
    if kind == "good":
        return json.dumps({**base, "caption": value, **spec[2]}, ensure_ascii=spec[3])
    if kind == "wrong_type":
        return json.dumps({**base, "caption": value})
    if kind == "not_object":
        return json.dumps(value)
    if kind == "deep":
        return "[" * value + "]" * value
    if kind == "long":
        return json.dumps({**base, "caption": "x" * value})
    if kind == "not_finite":
        return json.dumps({**base, "caption": "c"})[:-1] + f', "x_number": {value}}}'
    return value


def _row_lines(problems: list) -> set[int]:
    """Lines with a problem of their own (not the whole file's: no rows, missing columns)."""
    return {p.line for p in problems if not p.message.startswith(("missing column", "the manifest has no rows"))}


def _read_only(folder: Path, name: str, data: bytes):
    """read_manifest on `data` written to folder/name; the file must be left as it was."""
    path = folder / name
    path.write_bytes(data)
    before = snapshot(folder)
    try:
        return read_manifest(path, VOCAB, LIMITS)
    finally:
        assert snapshot(folder) == before


@settings(max_examples=80, deadline=None, database=None)
@given(st.lists(JSONL_LINE, max_size=12))
def test_any_jsonl_manifest_reads_with_every_bad_line_reported(specs):
    text = "".join(_jsonl_line(i, spec) + "\n" for i, spec in enumerate(specs, start=1))
    with tempfile.TemporaryDirectory() as folder:
        try:
            rows, problems = _read_only(Path(folder), "m.jsonl", text.encode("utf-8"))
        except ManifestError:
            return
    reported = _row_lines(problems)
    fine = {r.line: r for r in rows if not r.problems}
    columns_missing = any(p.message.startswith("missing column") for p in problems)  # no line has a URL
    for line, spec in enumerate(specs, start=1):
        if spec[0] == "good":
            assert line in fine and fine[line].caption == spec[1].strip() and line not in reported
        elif spec[0] == "blank" or (spec[0] == "empty_object" and columns_missing):
            assert line not in reported and line not in fine
        else:
            assert line in reported and line not in fine, (spec[0], problems)


# One CSV record: (kind, caption, extra cell); "good" and "bad_code" rows are read, the others are malformed.
CSV_RECORD = st.tuples(st.sampled_from(["good", "bad_code", "extra_cells", "long_cell", "long_line"]),
                       TEXT.map(lambda t: "c" + t), TEXT, st.integers(0, 2), st.booleans())


@settings(max_examples=80, deadline=None, database=None)
@given(st.lists(CSV_RECORD, max_size=10), st.permutations(["url", "caption", "country_code", "category_code"]),
       st.sampled_from([",", "\t"]))
def test_any_csv_manifest_reads_with_every_bad_row_reported_on_its_first_line(records, columns, delimiter):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)  # "\r\n" ends records: cells holding "\r" are quoted too
    writer.writerow([c.upper() if c == "url" else c for c in columns] + ["x_note"])
    first: list[int] = []
    for i, (kind, caption, note, blanks, crlf) in enumerate(records):
        buffer.write("\n" * blanks)
        first.append(buffer.getvalue().count("\n") + 1)
        if kind in ("long_cell", "long_line"):  # on one line, so the reader starts afresh on the next
            caption, note = ("x" * 600 if kind == "long_cell" else "x" * 2_500), note.replace("\n", " ").replace(
                "\r", " ")
        cells = {"url": f"https://example.org/{i}.jpg", "caption": caption, "category_code": "FOOD",
                 "country_code": "XXX" if kind == "bad_code" else "KOR"}
        writer.writerow([cells[c] for c in columns] + [note] + (["more"] if kind == "extra_cells" else []))
        if not crlf:
            buffer.seek(buffer.tell() - 2)
            buffer.write("\n")
            buffer.truncate()
    name = "m.csv" if delimiter == "," else "m.tsv"
    with tempfile.TemporaryDirectory() as folder:
        rows, problems = _read_only(Path(folder), name, buffer.getvalue().encode("utf-8"))
    reported = _row_lines(problems)
    fine = {r.line: r for r in rows if not r.problems}
    for line, (kind, caption, *_rest) in zip(first, records, strict=True):
        if kind == "good":
            assert line in fine and fine[line].caption == caption.strip() and line not in reported
        else:
            assert line in reported and line not in fine, (kind, problems)


@settings(max_examples=80, deadline=None, database=None)
@given(st.binary(max_size=400), st.sampled_from(["m.csv", "m.tsv", "m.jsonl"]))
def test_any_bytes_as_a_manifest_raise_nothing_but_manifest_error(data, name):
    with tempfile.TemporaryDirectory() as folder:
        try:
            rows, problems = _read_only(Path(folder), name, data)
        except ManifestError:
            return
    lines = data.count(b"\n") + 1
    assert all(1 <= r.line <= lines for r in rows) and all(1 <= p.line <= lines for p in problems)
    assert all(p in problems for r in rows for p in r.problems)
