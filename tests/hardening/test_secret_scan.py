"""The secret scan of tests/support/secret_scan.py (invariant 7) catches what it is there to catch.

The scan itself runs over the whole suite at the end of every session; these tests prove that it would fail a
session with a leak: a planted key in a log record, in an exception message, in an HTTP response and in a
server's log file each fail an inner pytest session that loads the plugin, and the report names the places
but never the secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.secret_scan import (
    FINDINGS_ENV,
    LOG_DIR_ENV,
    Records,
    SecretRegistry,
    encodings,
    scan,
)

ROOT = Path(__file__).resolve().parents[2]
PLANTED = bytes.fromhex("5f3a9c2e71d04b8896e2a17c3d5b0f64")


def test_scan_finds_every_encoding_and_names_no_secret() -> None:
    registry = SecretRegistry()
    registry.add(PLANTED, "StaticKeys.enc", "test_a")
    needles = registry.needles()
    for name, text in encodings(PLANTED):
        records = Records()
        records.add("log record x", f"prefix {text} suffix")
        records.add("clean", "nothing to see " * 100)
        findings = scan(records.items(), needles)
        assert [(f.where, f.kind, f.origin) for f in findings] == [("log record x", "StaticKeys.enc", "test_a")], name
        assert text not in findings[0].line()


def test_short_and_low_entropy_values_are_not_searched() -> None:
    registry = SecretRegistry()
    registry.add(b"1234", "PIN", "t")  # too short to tell from other numbers
    registry.add(bytes(16), "StaticKeys.enc", "t")  # padding looks the same
    registry.add(bytes(range(0x40, 0x50)), "StaticKeys.enc", "t")  # the public GP test key
    assert len(registry) == 0 and registry.unsearchable == 3
    registry.add("864213", "PIN", "t")
    records = Records()
    records.add("numbers", "port 38642139 counter 1864213")
    records.add("token", "pin=864213;")
    assert [f.where for f in scan(records.items(), registry.needles())] == ["token"]


LEAKY_SESSION = """
import http.server
import logging
import os
import threading
from pathlib import Path

import httpx

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.wire.errors import WireError

KEYS = StaticKeys(bytes.fromhex("{enc}"), bytes.fromhex("{mac}"), bytes.fromhex("{dek}"), 0x31)


class Leaky(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("{{\\"key\\": \\"" + KEYS.mac.hex() + "\\"}}").encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_leaks():
    logging.getLogger("tenantcard.planted").debug("session key %s", KEYS.enc.hex())
    try:
        raise WireError("bad key " + KEYS.dek.hex().upper())
    except WireError:
        pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Leaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{{server.server_port}}/leaky").status_code == 200
    finally:
        server.shutdown()
    log = Path(os.environ["TENANTCARD_LOG_DIR"]) / "server.log"
    log.write_text("serve: loaded " + KEYS.dek.hex() + "\\n")
"""

CLEAN_SESSION = """
import logging

from tenantcard.crypto.scp03 import StaticKeys


def test_clean():
    keys = StaticKeys(bytes(range(1, 17)), bytes(range(17, 33)), bytes(range(33, 49)), 0x31)
    logging.getLogger("tenantcard.planted").info("opened a session with key set %02X", keys.kvn)
"""


def inner_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k not in (FINDINGS_ENV, LOG_DIR_ENV)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.secret_scan",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--rootdir={tmp_path}",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_planted_leaks_fail_the_session_and_are_named(tmp_path: Path) -> None:
    enc, mac, dek = (os.urandom(16) for _ in range(3))
    done = inner_pytest(tmp_path, LEAKY_SESSION.format(enc=enc.hex(), mac=mac.hex(), dek=dek.hex()))
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the test passed; the scan failed the session
    assert "1 passed" in out
    assert "LEAKS (invariant 7)" in out
    assert "StaticKeys.enc (hex, created in (collection)) found in log record tenantcard.planted" in out
    assert "StaticKeys.dek (HEX" in out and "exception message WireError" in out
    assert "StaticKeys.mac (hex" in out and "HTTP GET /leaky -> 200" in out
    assert "log file server.log" in out
    for value in (enc, mac, dek):
        assert value.hex() not in out.lower()


def test_clean_session_passes(tmp_path: Path) -> None:
    done = inner_pytest(tmp_path, CLEAN_SESSION)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "secret scan: 3 secrets" in out and "no leak" in out
