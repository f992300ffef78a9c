"""`ccub fetch` against a real HTTP server on 127.0.0.1 (nothing else is contacted)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import photo
from typer.testing import CliRunner

from ccub.cli import app
from ccub.config import Config, load_config
from ccub.fetch import read_manifest, run_fetch
from ccub.fetch.client import retry_after_seconds
from ccub.fetch.run import METADATA, REPORT, STATE
from ccub.pipeline import Options, validate
from ccub.vocab import Vocabulary

COLUMNS = ["country_code", "category_code", "url", "caption", "created_at", "licence", "author"]


def _image_bytes(fmt: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(seed, (600, 520)).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


JPEG = _image_bytes("JPEG", 1)
PNG = _image_bytes("PNG", 2)


class Server:
    """Routes by path; counts requests per path; some routes fail a set number of times first.

    `routes` adds handlers by path (`handler(request, n)`, n: the path's request count); `hosts`
    records the Host header of each request. With a `context`, the server speaks HTTPS.
    """

    def __init__(self, host: str = "127.0.0.1", context: ssl.SSLContext | None = None, port: int = 0):
        self.hits: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}
        self.hosts: list[str] = []
        self.routes: dict[str, Callable] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                """Keep the test output clean: no access log."""

            def do_GET(self):
                with owner.lock:
                    n = owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                    owner.times.setdefault(self.path, []).append(time.monotonic())
                    owner.hosts.append(self.headers.get("Host", ""))
                owner.handle(self, n)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"{'https' if context else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    @staticmethod
    def send(h, status, body=b"", ctype="image/jpeg", headers=None, length=None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(OSError):  # the client may hang up first
            h.wfile.write(body)

    def handle(self, h, n):
        path = h.path.split("?")[0]
        index = path.rsplit("-", 1)[-1]
        seed = int(index) if index.isdigit() else 0
        if path in self.routes:
            self.routes[path](h, n)
        elif path.startswith("/jpg"):
            self.send(h, 200, _image_bytes("JPEG", seed) if seed else JPEG)
        elif path.startswith("/png"):
            self.send(h, 200, PNG, "image/png")
        elif path == "/missing":
            self.send(h, 404, b"gone", "text/plain")
        elif path == "/flaky":
            self.send(h, 500, b"oops", "text/plain") if n == 1 else self.send(h, 200, JPEG)
        elif path == "/busy":
            if n == 1:
                self.send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
            else:
                self.send(h, 200, PNG, "image/png")
        elif path == "/slow":
            time.sleep(1.2)
            self.send(h, 200, JPEG)
        elif path.startswith("/hop"):
            step = int(path[4:] or 0)
            if step < 3:
                self.send(h, 302, b"", "text/plain", {"Location": f"/hop{step + 1}"})
            else:
                self.send(h, 200, JPEG)
        elif path in ("/loop-a", "/loop-b"):
            self.send(h, 301, b"", "text/plain", {"Location": "/loop-b" if path == "/loop-a" else "/loop-a"})
        elif path == "/ftp":
            self.send(h, 302, b"", "text/plain", {"Location": "ftp://example.invalid/x.jpg"})
        elif path == "/html":
            self.send(h, 200, b"<html><body>Sign in</body></html>", "text/html; charset=utf-8")
        elif path == "/fake":
            self.send(h, 200, b"<html><body>not really a jpeg</body></html>", "image/jpeg")
        elif path == "/huge":
            self.send(h, 200, JPEG + b"\0" * 1_200_000, length=None)
        elif path == "/huge-chunked":  # no Content-Length: the cap is enforced while streaming
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Connection", "close")
            h.end_headers()
            with contextlib.suppress(OSError):  # the client hangs up once the cap is passed
                for _ in range(160):
                    h.wfile.write(b"\xff" * 8192)
            h.close_connection = True
        elif path == "/short":
            self.send(h, 200, JPEG[: len(JPEG) // 2], length=len(JPEG))
            h.close_connection = True
        elif path == "/cut":
            self.send(h, 200, JPEG[: len(JPEG) // 2])
        else:
            self.send(h, 404, b"", "text/plain")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def fast_config(allow_private: bool = True) -> Config:
    """Settings that keep the tests fast; `allow_private` because the test servers are on loopback."""
    c = load_config(cwd=Path("/nonexistent"))
    f = c.fetch
    f.per_host_rate, f.per_host_concurrency, f.workers = 0, 4, 4
    f.read_timeout, f.connect_timeout = 0.5, 0.5
    f.retries, f.backoff_base, f.backoff_max = 1, 0.05, 0.1
    f.max_mb = 1.0  # bigger than the test images, smaller than /huge
    f.contact = "steward@example.org"
    f.allow_private = allow_private
    return c


@pytest.fixture
def cfg():
    return fast_config()


def write_manifest(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t" if path.suffix == ".tsv" else ",",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(url: str, category="FOOD", country="KOR", caption="A bowl of spicy tteokbokki at a Seoul market stall"):
    return {"country_code": country, "category_code": category, "url": url, "caption": caption,
            "created_at": "2023-05-01", "licence": "CC-BY-4.0", "author": "Kim Min-ji"}


def report(out: Path) -> dict[str, dict]:
    with (out / REPORT).open(encoding="utf-8") as fh:
        return {r["url"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}


def metadata(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / METADATA).read_text("utf-8").splitlines()]


def no_partials(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))]


def test_outcomes_by_cause(tmp_path, server, cfg):
    paths = ["jpg", "png", "missing", "flaky", "busy", "slow", "hop0", "loop-a", "ftp", "html", "fake",
             "huge", "huge-chunked", "short", "cut"]
    rows = [row(f"{server.base}/{p}") for p in paths]
    rows.append(row(f"{server.base}/jpg"))  # duplicate
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    before = manifest.read_bytes()
    out = tmp_path / "out"
    start = time.monotonic()
    result = run_fetch(manifest, out, cfg)
    elapsed = time.monotonic() - start
    rep = report(out)
    causes = {name: (r["outcome"], r["cause"]) for name, r in rep.items() if name != "jpg"}
    assert causes == {
        "png": ("ok", ""), "missing": ("failed", "not_found"), "flaky": ("ok", ""), "busy": ("ok", ""),
        "slow": ("failed", "timeout"), "hop0": ("ok", ""), "loop-a": ("failed", "redirect_loop"),
        "ftp": ("failed", "redirect_scheme"), "html": ("failed", "not_image"), "fake": ("failed", "bad_image"),
        "huge": ("failed", "too_large"), "huge-chunked": ("failed", "too_large"),
        "short": ("failed", "truncated"), "cut": ("failed", "bad_image"),
    }
    with (out / REPORT).open(encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert [(r["outcome"], r["cause"]) for r in lines if r["url"].endswith("/jpg")] == [
        ("ok", ""), ("skipped", "duplicate_url")]
    assert server.hits["/jpg"] == 1  # the duplicate is fetched once
    assert server.hits["/missing"] == 1  # 404: no retry
    assert server.hits["/flaky"] == 2 and rep["flaky"]["attempts"] == "2"
    assert server.hits["/slow"] == 2  # a timeout is retried (retries = 1)
    busy = server.times["/busy"]
    assert len(busy) == 2 and busy[1] - busy[0] >= 0.95  # Retry-After: 1 honoured
    assert rep["hop0"]["final_url"].endswith("/hop3")
    assert set(result.failures) == {"not_found", "timeout", "redirect_loop", "redirect_scheme", "not_image",
                                    "bad_image", "too_large", "truncated"}
    meta = metadata(out)
    assert len(meta) == 5 == result.records
    first = meta[0]
    assert first["file_name"].startswith("images/FOOD_") and first["file_name"].endswith(".jpg")
    assert (first["culture"], first["category"], first["license"], first["creator"]) == (
        "korea", "FOOD", "CC-BY-4.0", "Kim Min-ji")
    assert first["http_status"] == 200 and first["content_type"] == "image/jpeg"
    assert first["bytes"] == len(JPEG) == (out / first["file_name"]).stat().st_size
    assert first["source_url"] == f"{server.base}/jpg" and first["retrieved_at"].endswith("Z")
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(m["file_name"][7:] for m in meta)
    assert no_partials(out) and manifest.read_bytes() == before
    assert elapsed < 10


def test_resume_after_interrupt(tmp_path, server, cfg):
    cfg.fetch.workers = cfg.fetch.per_host_concurrency = 1
    rows = [row(f"{server.base}/jpg-{i}", category="ARCH" if i % 2 else "FOOD") for i in range(1, 7)]
    rows.append(row(f"{server.base}/missing"))
    manifest = write_manifest(tmp_path / "manifest.tsv", rows)
    out = tmp_path / "out"
    seen = []

    def interrupt(outcome, done, total):
        seen.append(outcome)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_fetch(manifest, out, cfg, interrupt)
    assert no_partials(out)
    meta = metadata(out)
    files = sorted(p.name for p in (out / "images").iterdir())
    assert 3 <= len(meta) < 6 and files == sorted(m["file_name"][7:] for m in meta)
    state = json.loads((out / STATE).read_text())["downloads"]
    assert {e["source_url"] for e in state.values()} == {m["source_url"] for m in meta}
    hits_before = dict(server.hits)
    result = run_fetch(manifest, out, cfg)
    rep = report(out)
    for m in meta:  # verified downloads are not fetched again
        name = m["source_url"].rsplit("/", 1)[-1]
        assert server.hits[f"/{name}"] == hits_before[f"/{name}"]
        assert (rep[name]["outcome"], rep[name]["cause"]) == ("skipped", "already_downloaded")
    assert server.hits["/missing"] == hits_before.get("/missing", 0) + 1  # failures are retried
    assert result.counts["ok"] + result.counts["skipped"] == 6
    assert len(metadata(out)) == 6 and no_partials(out)
    # A file changed on disk no longer matches its sha256: it is fetched again.
    victim = out / metadata(out)[0]["file_name"]
    victim.write_bytes(b"corrupt")
    run_fetch(manifest, out, cfg)
    assert victim.read_bytes() != b"corrupt" and len(metadata(out)) == 6


def test_manifest_only_reports_lines_and_fields_without_network(tmp_path, server):
    rows = [row(f"{server.base}/jpg"), row(f"{server.base}/jpg"), row(f"{server.base}/png", country="XXX"),
            row(f"{server.base}/png-2", category="NOPE"), row(f"{server.base}/png-3", caption=" "),
            row("file:///etc/passwd")]
    manifest = write_manifest(tmp_path / "bad.csv", rows)
    result = CliRunner().invoke(app, ["fetch", str(manifest), "--manifest-only"], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    text = result.output
    assert "line 3, url: duplicate URL (first on line 2)" in text
    assert "line 4, country_code: unknown country code 'XXX'" in text
    assert "line 5, category_code: unknown category code 'NOPE'" in text
    assert "line 6, caption: empty caption" in text
    assert "line 7, url: not an http(s) URL" in text
    assert server.total == 0
    missing = write_manifest(tmp_path / "cols.csv", [{"url": "http://x/1"}], columns=["url", "caption"])
    result = CliRunner().invoke(app, ["fetch", str(missing), "--manifest-only"], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "line 1" in result.output and "country_code, category_code" in result.output
    good = write_manifest(tmp_path / "good.csv", [row(f"{server.base}/jpg")])
    assert CliRunner().invoke(app, ["fetch", str(good), "--manifest-only"]).exit_code == 0
    assert server.total == 0


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_manifest_formats(tmp_path, suffix):
    rows = [row("https://example.org/a.jpg"), row("https://example.org/b.jpg", category="ARCH", country="IND")]
    rows[1]["contributor"] = "k-017"
    manifest = write_manifest(tmp_path / f"m{suffix}", rows, columns=[*COLUMNS, "contributor"])
    parsed, problems = read_manifest(manifest, Vocabulary(load_config(cwd=Path("/nonexistent"))))
    assert not problems
    assert [(r.line, r.culture, r.category) for r in parsed] == [(2, "korea", "FOOD"), (3, "india", "ARCH")] \
        if suffix != ".jsonl" else [(1, "korea", "FOOD"), (2, "india", "ARCH")]
    assert parsed[1].extra["license"] == "CC-BY-4.0" and parsed[1].extra["creator"] == "Kim Min-ji"
    assert parsed[1].extra["contributor"] == "k-017"


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_cli_fetch_then_validate(tmp_path, server, cfg):
    toml = tmp_path / "ccub.toml"
    toml.write_text("[fetch]\nper_host_rate = 0\nread_timeout = 2\nretries = 0\n", encoding="utf-8")
    rows = [row(f"{server.base}/jpg-{i}", category=c, caption=f"Traditional Korean scene number {i} in Jeonju")
            for i, c in enumerate(["FOOD", "ARCH", "CLOTH"], start=1)]
    for r in rows:
        r["consent"] = "yes" if r["category_code"] == "CLOTH" else "n/a"  # carried through to metadata.jsonl
    manifest = write_manifest(tmp_path / "manifest.csv", rows, columns=[*COLUMNS, "consent"])
    out = tmp_path / "submissions" / "ccub-kor"
    result = CliRunner().invoke(app, ["fetch", str(manifest), "--out", str(out), "--config", str(toml),
                                      "--allow-private"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "fetch outcomes" in result.output and "contact" in result.output  # no contact configured: a note
    outcome = validate(Options(root=out, out=tmp_path / "data"), load_config(toml))
    statuses = {o.record.category: (o.status, o.record.culture) for o in outcome.outcomes}
    found = [(i.finding.check, i.finding.message) for i in outcome.issues]
    assert statuses == {"FOOD": ("accepted", "korea"), "ARCH": ("accepted", "korea"),
                        "CLOTH": ("accepted", "korea")}, found
    assert all(o.record.extra.get("sha256") for o in outcome.outcomes)


def test_per_host_rate_and_concurrency(tmp_path, server, cfg):
    cfg.fetch.per_host_rate, cfg.fetch.per_host_concurrency = 10, 2  # request starts >= 0.1 s apart
    rows = [row(f"{server.base}/jpg-{i}") for i in range(1, 5)]
    run_fetch(write_manifest(tmp_path / "m.csv", rows), tmp_path / "out", cfg)
    starts = sorted(t for path, times in server.times.items() for t in times)
    assert len(starts) == 4 and all(b - a >= 0.08 for a, b in zip(starts, starts[1:], strict=False))


def test_withdrawn_contributors_and_images_are_not_fetched(tmp_path, server, cfg):
    import hashlib

    from ccub.steward import Steward, Withdrawal

    steward = Steward.load(tmp_path / "data", cfg.limits)
    steward.add_withdrawal(Withdrawal(kind="contributor", value="c-7", at="2026-12-01T10:00:00+00:00"))
    steward.add_withdrawal(Withdrawal(kind="image", value=hashlib.sha256(PNG).hexdigest(),
                                      at="2026-12-01T10:05:00+00:00"))
    columns = [*COLUMNS, "contributor"]
    rows = [row(f"{server.base}/jpg") | {"contributor": "c-7"}, row(f"{server.base}/png") | {"contributor": "c-8"},
            row(f"{server.base}/hop0") | {"contributor": "c-8"}]
    manifest = write_manifest(tmp_path / "manifest.csv", rows, columns)
    out = tmp_path / "out"
    run_fetch(manifest, out, cfg, steward=Steward.load(tmp_path / "data", cfg.limits))
    causes = {name: (r["outcome"], r["cause"]) for name, r in report(out).items()}
    assert causes == {"jpg": ("skipped", "withdrawn"), "png": ("skipped", "withdrawn"), "hop0": ("ok", "")}
    assert server.hits.get("/jpg", 0) == 0  # a withdrawn contributor's rows are never requested
    assert len(metadata(out)) == 1
    assert not [p for p in out.rglob("*") if p.is_file() and p.read_bytes() == PNG]  # the download is gone


# --- workbooks and Parquet (the spreadsheets extra) ---------------------------------------

SHEET_COLUMNS = ["country_code", "category_code", "url", "caption", "created_at"]


def ccub_workbook(path: Path, base: str) -> Path:
    """A workbook shaped like the CCUB release: a sheet per country, one without country_code (its
    name gives the culture), a hostile sheet, an empty sheet and a sheet without a header."""
    import datetime

    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    korea = book.active
    korea.title = "Korea"
    korea.append(SHEET_COLUMNS)
    korea.append(["KOR", "FOOD", f"{base}/jpg-1", "A bowl of spicy tteokbokki at a Seoul market stall", "2023-05-01"])
    korea.append(["KOR", "ARCH", f"{base}/jpg-2", "The south gate of Seoul lit up at dusk", "2023-05-02"])
    nigeria = book.create_sheet("Nigeria")
    nigeria.append(SHEET_COLUMNS)
    nigeria.append(["NGA", "FOOD", f"{base}/jpg-3", "A pot of smoky party jollof rice in Lagos", "2023-06-01"])
    india = book.create_sheet("IND")  # no country_code column: the sheet's name is the culture
    india.append(SHEET_COLUMNS[1:])
    india.append(["ARCH", f"{base}/jpg-4", "A carved stone temple tower in Tamil Nadu", "2023-07-01"])
    hostile = book.create_sheet("Hostile")
    hostile.append(SHEET_COLUMNS)
    hostile.append(["KOR", "CLOTH", f"{base}/png-5", "A woman in a silk hanbok at Gyeongbokgung palace",
                    datetime.datetime(2023, 8, 1)])  # a date cell: "2023-08-01"
    hostile.append(["KOR", "FOOD", f'=HYPERLINK("{base}/jpg-6", "click")', "A formula, never evaluated",
                    "2023-08-02"])
    hostile.append(["KOR", "FOOD", f"{base}/jpg-7", "x" * 5000, "2023-08-03"])  # over max_field_chars
    hostile.append(["KOR", "FOOD", f"{base}/jpg-8", 12345, 45])  # numbers become text
    book.create_sheet("Empty")
    book.create_sheet("Notes").append(["This workbook lists the CCUB images"])
    book.save(path)
    return path


def sheet_config() -> Config:
    cfg = fast_config()
    cfg.limits.max_field_chars = 1000
    return cfg


def test_workbook_manifest_fetch_then_validate(tmp_path, server):
    cfg = sheet_config()
    manifest = ccub_workbook(tmp_path / "ccub.xlsx", server.base)
    rows, problems = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    text = [str(p) for p in problems]
    assert [(r.sheet, r.line, r.culture) for r in rows if not r.problems] == [
        ("Korea", 2, "korea"), ("Korea", 3, "korea"), ("Nigeria", 2, "nigeria"), ("IND", 2, "india"),
        ("Hostile", 2, "korea"), ("Hostile", 5, "korea")]
    assert any(t.startswith("sheet 'Hostile', row 3, url: empty URL") for t in text), text
    assert any(t.startswith("sheet 'Hostile', row 4, caption: a cell of 5,000 characters in column 'caption'")
               for t in text), text
    assert any(t.startswith("sheet 'Notes', row 1, -: no recognisable header row") for t in text), text
    assert not any("Empty" in t for t in text)  # an empty sheet holds nothing to lose
    by_line = {(r.sheet, r.line): r for r in rows}
    assert by_line[("Hostile", 5)].caption == "12345" and by_line[("Hostile", 5)].extra["created_at"] == "45"

    out = tmp_path / "out"
    result = run_fetch(manifest, out, cfg)
    assert server.hits.get("/jpg-6", 0) == 0  # the formula's address is never requested
    with (out / REPORT).open(encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert [(r["sheet"], r["line"], r["outcome"]) for r in lines] == [
        ("Korea", "2", "ok"), ("Korea", "3", "ok"), ("Nigeria", "2", "ok"), ("IND", "2", "ok"),
        ("Hostile", "2", "ok"), ("Hostile", "3", "failed"), ("Hostile", "4", "failed"), ("Hostile", "5", "ok")]
    assert result.counts["ok"] == 6
    meta = {(m["manifest_sheet"], m["manifest_line"]): m for m in metadata(out)}
    assert meta[("Hostile", 2)]["created_at"] == "2023-08-01"  # the date cell, ISO 8601
    assert meta[("IND", 2)]["culture"] == "india"
    outcome = validate(Options(root=out, out=tmp_path / "data"), load_config(cwd=Path("/nonexistent")))
    cultures = sorted(o.record.culture for o in outcome.outcomes)
    assert cultures == ["india", "korea", "korea", "korea", "korea", "nigeria"]

    cli = CliRunner().invoke(app, ["fetch", str(manifest), "--manifest-only"], env={"COLUMNS": "300"})
    assert cli.exit_code == 1 and f"{manifest}:sheet 'Hostile', row 3, url: empty URL" in cli.output


def test_parquet_manifest(tmp_path, server):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime

    table = pa.table({
        "country_code": ["NGA", "NGA", "KOR"],
        "category_code": ["FOOD", "CLOTH", "FOOD"],
        "url": [f"{server.base}/jpg-11", f"{server.base}/jpg-12", None],
        "caption": ["A pot of smoky party jollof rice in Lagos", "A woman in aso oke at a wedding in Ibadan",
                    "No address"],
        "created_at": [datetime.date(2023, 5, 1), None, datetime.date(2023, 5, 3)],
        "tags": [["food"], [], ["x"]],  # nested: not text, a problem on each row that has it
    })
    manifest = tmp_path / "ccub.parquet"
    pq.write_table(table, manifest)
    cfg = sheet_config()
    rows, problems = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    assert [str(p).split(":")[0] for p in problems] == ["row 1, tags", "row 2, tags", "row 3, tags"]
    pq.write_table(table.drop(["tags"]), manifest)
    rows, problems = read_manifest(manifest, Vocabulary(cfg), cfg.limits)
    assert [str(p) for p in problems] == ["row 3, url: empty URL (fix: give the image's http(s) address)"]
    assert rows[0].extra["created_at"] == "2023-05-01" and "created_at" not in rows[1].extra
    out = tmp_path / "out"
    assert run_fetch(manifest, out, cfg).counts["ok"] == 2
    outcome = validate(Options(root=out, out=tmp_path / "data"), load_config(cwd=Path("/nonexistent")))
    assert sorted((o.record.culture, o.record.category) for o in outcome.outcomes) == [
        ("nigeria", "CLOTH"), ("nigeria", "FOOD")]


def test_workbook_zip_bomb_is_refused_unread(tmp_path, server):
    import zipfile

    from ccub.fetch import ManifestError

    plain = ccub_workbook(tmp_path / "plain.xlsx", server.base)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":  # padding inside the sheet XML compresses ~1000:1
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * 3_000_000)
            dst.writestr(info.filename, data)
    assert bomb.stat().st_size < 100_000
    cfg = sheet_config()
    cfg.limits.max_unpacked_mb = 2
    with pytest.raises(ManifestError, match=r"unpacks to 3,\d{3},\d{3} bytes, over limits.max_unpacked_mb.*zip bomb"):
        read_manifest(bomb, Vocabulary(cfg), cfg.limits)
    assert read_manifest(plain, Vocabulary(cfg), cfg.limits)[0]  # the same workbook unpadded is read
    toml = tmp_path / "ccub.toml"
    toml.write_text("[limits]\nmax_unpacked_mb = 2\n", encoding="utf-8")
    cli = CliRunner().invoke(app, ["fetch", str(bomb), "--config", str(toml)], env={"COLUMNS": "300"})
    assert cli.exit_code == 2 and "max_unpacked_mb" in cli.output and server.total == 0


@pytest.mark.parametrize(("suffix", "module"), [(".xlsx", "openpyxl"), (".xlsx", "defusedxml"),
                                                (".parquet", "pyarrow.parquet")])
def test_missing_spreadsheets_extra_names_it(tmp_path, monkeypatch, suffix, module):
    import sys

    from ccub.fetch import ManifestError

    manifest = tmp_path / f"m{suffix}"
    if suffix == ".xlsx":
        ccub_workbook(manifest, "https://example.org")
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        pa = pytest.importorskip("pyarrow")
        pq.write_table(pa.table({"url": ["https://example.org/a.jpg"]}), manifest)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    cfg = sheet_config()
    with pytest.raises(ManifestError, match=r"needs (openpyxl|pyarrow|defusedxml).*pip install 'ccub\[spreadsheets\]'"):
        read_manifest(manifest, Vocabulary(cfg), cfg.limits)


def test_a_workbook_whose_xml_declares_entities_is_refused(tmp_path):
    """A billion-laughs sheet: openpyxl parses through defusedxml, which refuses entity declarations."""
    import zipfile

    from ccub.fetch import ManifestError

    plain = ccub_workbook(tmp_path / "plain.xlsx", "https://example.org")
    bomb = tmp_path / "laughs.xlsx"
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                        for i in range(1, 9))
              + "]>")
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = laughs.encode() + (data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data)
            target.writestr(info, data)
    cfg = sheet_config()
    with pytest.raises(ManifestError, match="cannot be read as an .xlsx workbook"):
        read_manifest(bomb, Vocabulary(cfg), cfg.limits)

