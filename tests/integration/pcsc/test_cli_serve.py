"""``tenantcard device serve --pcsc``: the served device dials vpcd; only owned containers are cards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tenantcard.transport.pcsc_client import PcscConnection, card_present, wait_for_card, wait_for_removal
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID
from tenantcard.wire.sw import SW
from tests.integration.pcsc.vpcd import claim_ports, reader_name

pytestmark = pytest.mark.pcsc

CLI = [sys.executable, "-m", "tenantcard.cli.main", "device"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "device.db"
    subprocess.run(
        [*CLI, "init", "--store", str(path), "--containers", "2", "--dev-keys"], check=True, capture_output=True
    )
    return path


def test_serve_with_pcsc_shows_the_device_and_no_unowned_container(store: Path) -> None:
    with claim_ports(3) as ports:
        target = "127.0.0.1:" + ",".join(map(str, ports))
        proc = subprocess.Popen(
            [*CLI, "serve", "--store", str(store), "--listen", "127.0.0.1:0", "--pcsc", target],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("listening tcp://127.0.0.1:")
            assert proc.stdout.readline().strip() == "pcsc vpcd " + ", ".join(f"127.0.0.1:{p}" for p in ports)
            device = reader_name(ports[0])
            assert wait_for_card(device, 10.0)
            with PcscConnection(device) as conn:
                select = CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD_AID, 256).to_bytes()
                assert ResponseApdu.parse(conn.transmit(select)).sw == SW.OK
            assert not card_present(reader_name(ports[1])) and not card_present(reader_name(ports[2]))
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
        assert wait_for_removal(reader_name(ports[0]), 10.0)


@pytest.mark.parametrize("args", [["--pcsc", "127.0.0.1:notaport"], ["--pcsc", "1", "--pcsc-port", "2"]])
def test_bad_pcsc_options_are_one_line_errors(store: Path, args: list[str]) -> None:
    result = subprocess.run(
        [*CLI, "serve", "--store", str(store), "--listen", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert "pcsc" in result.stderr.lower() or "port" in result.stderr.lower()
