"""The device as deployed: ``tenantcard device init`` and ``tenantcard device serve`` as real processes, driven
over TCP by the host-side client stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantcard.cli.device import device as device_cli
from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import StatusError
from tenantcard.client.isd import IsdSession
from tenantcard.client.processors import base_chain, open_scp03
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.provision import gp_test_keys
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID, Cla, Ins
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.support.transports import ServeProcess, run_cli

SELECT_ISD = CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, ISD_AID, le=256).to_bytes()
GET_STATUS_ISD = CommandApdu(Cla.GP, Ins.GET_STATUS, 0x80, 0x02, bytes.fromhex("4F00"), le=256)


def init_device(folder: Path, containers: int = 3, *extra: str) -> Path:
    store = folder / "device.db"
    result = run_cli("device", "init", "--store", str(store), "--containers", str(containers), "--dev-keys", *extra)
    assert result.returncode == 0, result.stderr
    return store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One development device served by a real ``tenantcard device serve`` for this module."""
    store = init_device(tmp_path_factory.mktemp("served"))
    with ServeProcess(store) as server:
        yield server


def sw_of(response: bytes) -> int:
    assert len(response) >= 2
    return int.from_bytes(response[-2:], "big")


def is_defined_status(sw: int) -> bool:
    """ISO 7816-4 §5.6: 9000, 61xx, or an error / warning word 62xx-6Fxx."""
    return sw == 0x9000 or 0x6100 <= sw <= 0x6FFF


# --- command line ---------------------------------------------------------------------------------------


def test_init_with_dev_keys_warns_loudly(tmp_path: Path) -> None:
    store = tmp_path / "dev.db"
    result = run_cli("device", "init", "--store", str(store), "--containers", "2", "--dev-keys")
    assert result.returncode == 0
    assert "WARNING" in result.stderr and "40 41 .. 4F" in result.stderr and "development" in result.stderr.lower()
    assert "created device" in result.stdout
    assert store.is_file() and Path(f"{store}.vault").is_file()
    info = run_cli("device", "info", "--store", str(store), "--json")
    assert info.returncode == 0, info.stderr
    document = json.loads(info.stdout)
    assert [c["state"] for c in document["containers"]] == ["AVAILABLE", "AVAILABLE"]
    assert document["serial"].startswith("DEV-") and len(bytes.fromhex(document["device_id"])) == 10


def test_init_with_random_keys_writes_them_once_0600(tmp_path: Path) -> None:
    store, keys = tmp_path / "prod.db", tmp_path / "isd.keys"
    result = run_cli(
        "device", "init", "--store", str(store), "--containers", "1", "--keys-out", str(keys), "--quota", "8192"
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    document = json.loads(keys.read_text())
    for name in ("enc", "mac", "dek"):
        key = document[name]
        assert len(bytes.fromhex(key)) == 16
        assert key not in result.stdout and key not in result.stderr
        assert key.lower() != bytes(range(0x40, 0x50)).hex()
    assert "WARNING" not in result.stderr
    assert (
        json.loads(run_cli("device", "info", "--store", str(store), "--json").stdout)["containers"][0]["quota"] == 8192
    )
    # written once: a second init never overwrites the key file, and leaves no store behind
    again = run_cli("device", "init", "--store", str(tmp_path / "b.db"), "--containers", "1", "--keys-out", str(keys))
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert not (tmp_path / "b.db").exists()
    assert json.loads(keys.read_text()) == document


def invoke(*args: str) -> Result:
    """The ``device`` command group in this process (for argument checks that need no real process)."""
    return CliRunner().invoke(device_cli, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--containers", "2"], "--keys-out PATH"),
        (["--containers", "0", "--dev-keys"], "--containers"),
        (["--containers", "2", "--dev-keys", "--keys-out", "k"], "--keys-out is for random"),
        (["--containers", "2", "--dev-keys", "--vault", "nonsense"], "vault URI"),
        (["--containers", "2", "--dev-keys", "--vault", "pkcs11:module=/nonexistent.so"], "lacks"),
        (["--containers", "2", "--dev-keys", "--quota", "-5"], "--quota"),
    ],
)
def test_init_rejects_bad_input_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    store = tmp_path / "x.db"
    result = invoke("init", "--store", str(store), *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not store.exists()


def test_init_never_overwrites(tmp_path: Path) -> None:
    store = tmp_path / "device.db"
    assert invoke("init", "--store", str(store), "--containers", "1", "--dev-keys").exit_code == 0
    before = store.read_bytes()
    result = invoke("init", "--store", str(store), "--containers", "1", "--dev-keys")
    assert result.exit_code == 1 and "exists already" in result.stderr
    assert store.read_bytes() == before


def test_help_texts_explain_every_command() -> None:
    for command in ([], ["init"], ["serve"], ["info"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0
        assert len(result.stdout.splitlines()) > 5
    assert "--dev-keys" in invoke("init", "--help").stdout
    assert "--listen" in invoke("serve", "--help").stdout
    assert "device" in run_cli("--help").stdout  # registered with the tenantcard command


def test_serve_errors_are_one_line(tmp_path: Path) -> None:
    store = init_device(tmp_path)
    missing = run_cli("device", "serve", "--store", str(tmp_path / "nope.db"), "--listen", "127.0.0.1:0")
    assert missing.returncode == 1 and missing.stderr.strip() == f"Error: no device store at {tmp_path / 'nope.db'}"
    bad_listen = run_cli("device", "serve", "--store", str(store), "--listen", "localhost")
    assert bad_listen.returncode == 1 and "bad address" in bad_listen.stderr
    other_vault = tmp_path / "other.vault"
    other_vault.write_bytes(os.urandom(32))
    other_vault.chmod(0o600)
    wrong = run_cli(
        "device", "serve", "--store", str(store), "--listen", "127.0.0.1:0", "--vault", f"file:{other_vault}"
    )
    assert wrong.returncode == 1 and "key vault does not open this store" in wrong.stderr
    no_vault = run_cli("device", "serve", "--store", str(store), "--listen", "127.0.0.1:0", "--vault", "file:/no/such")
    assert no_vault.returncode == 1 and "no key vault" in no_vault.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        in_use = run_cli("device", "serve", "--store", str(store), "--listen", f"127.0.0.1:{port}")
    assert in_use.returncode == 1 and "address already in use" in in_use.stderr.lower()
    for result in (missing, bad_listen, wrong, no_vault, in_use):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_address_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    store = init_device(tmp_path)
    server = ServeProcess(store).start()
    assert server.host == "127.0.0.1" and server.port > 0
    with server.connect() as conn:
        assert sw_of(conn.transmit(SELECT_ISD)) == SW.OK
        assert server.stop(sig=sig) == 0  # with a connection still open
    log = server.log_path.read_text()
    assert "Traceback" not in log and "stopped" in log


def test_info_shows_states_and_no_secrets(tmp_path: Path) -> None:
    store, keys = tmp_path / "prod.db", tmp_path / "isd.keys"
    assert invoke("init", "--store", str(store), "--containers", "2", "--keys-out", str(keys)).exit_code == 0
    result = invoke("info", "--store", str(store))
    assert result.exit_code == 0
    assert "F07463000000" in result.stdout and "F07463000001" in result.stdout
    assert result.stdout.count("AVAILABLE") == 2
    document = json.loads(keys.read_text())
    assert document["serial"] in result.stdout
    for name in ("enc", "mac", "dek"):
        assert document[name] not in result.stdout.lower()
    missing_vault = invoke("info", "--store", str(store), "--vault", f"file:{tmp_path / 'none'}")
    assert missing_vault.exit_code == 1 and "no key vault" in missing_vault.stderr


# --- bad input over TCP ---------------------------------------------------------------------------------


apdu_like = st.one_of(
    st.binary(max_size=300).filter(lambda b: len(b) != 1),  # 1 byte would be a vpcd control message
    st.builds(
        lambda cla, ins, p1, p2, body: bytes([cla, ins, p1, p2]) + body,
        st.sampled_from([0x00, 0x80, 0x84, 0x04, 0x0C, 0x10, 0x90, 0xFF]) | st.integers(0, 255),
        st.sampled_from([int(i) for i in Ins]) | st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=40),
    ),
)


@settings(max_examples=300)
@given(garbage=st.lists(apdu_like, min_size=1, max_size=4))
def test_malformed_apdus_each_get_a_status_word(served: ServeProcess, garbage: list[bytes]) -> None:
    with served.connect() as conn:
        conn.transmit(SELECT_ISD)
        for apdu in garbage:
            assert is_defined_status(sw_of(conn.transmit(apdu)))
        conn.reset()  # drops whatever the garbage began (a command chain, a selection) ...
        assert sw_of(conn.transmit(SELECT_ISD)) == SW.OK  # ... and the connection still works


def test_server_keeps_serving_after_garbage(served: ServeProcess) -> None:
    # raw garbage that breaks the framing itself: each kills only its own connection
    for junk in (b"\xff\xff" + os.urandom(64), b"\x00", os.urandom(512), b"\x00\x01\x07"):
        with socket.create_connection((served.host, served.port), timeout=5) as sock:
            sock.sendall(junk)
    with served.connect() as conn:
        assert sw_of(conn.transmit(SELECT_ISD)) == SW.OK
    assert served.proc is not None and served.proc.poll() is None


# --- isolation between connections ---------------------------------------------------------------------


def test_secure_channel_of_one_connection_never_serves_another(served: ServeProcess) -> None:
    keys = gp_test_keys()
    with served.connect() as conn_a, served.connect() as conn_b:
        chain_a = base_chain(conn_a)
        assert ResponseApdu.parse(conn_a.transmit(SELECT_ISD)).sw == SW.OK
        sm = open_scp03(chain_a, keys, 0x33)
        assert sm.send(GET_STATUS_ISD).sw == SW.OK  # the channel works on its own connection
        assert sw_of(conn_b.transmit(SELECT_ISD)) == SW.OK
        assert sm.host is not None
        wrapped = sm.host.wrap(GET_STATUS_ISD).to_bytes()
        # B has no channel: A's wrapped command is refused there ...
        refused = sw_of(conn_b.transmit(wrapped))
        assert refused != SW.OK and is_defined_status(refused)
        # ... and B's attempt did not disturb A: the very same bytes still pass on A
        answer = ResponseApdu.parse(conn_a.transmit(wrapped))
        assert answer.sw == SW.OK or answer.sw1 == 0x61
        # a replay of them on A is refused (the MAC chain moved on)
        assert sw_of(conn_a.transmit(wrapped)) != SW.OK


# --- the whole lifecycle --------------------------------------------------------------------------------


def operator_session(server: ServeProcess, conn: Connection) -> IsdSession:
    isd = IsdSession(conn)
    isd.select()
    isd.authenticate(gp_test_keys())
    return isd


def states(server: ServeProcess) -> dict[bytes, tuple[str, str | None]]:
    with server.connect() as conn:
        isd = operator_session(server, conn)
        return {c.aid: (c.lifecycle.name, c.provider_id) for c in isd.list_containers() if not c.is_isd}


def opens_with(server: ServeProcess, aid: bytes, keys: StaticKeys) -> bool:
    """Whether ``keys`` open an SCP03 channel to the container, on a fresh connection."""
    with server.connect() as conn:
        session = ContainerSession(conn, aid)
        session.select()
        try:
            session.authenticate(keys)
        except (StatusError, SecureChannelError):
            return False
        return True


def test_whole_lifecycle_over_tcp(tmp_path: Path) -> None:
    store = init_device(tmp_path, containers=1)
    operator_keys = gp_test_keys()
    with ServeProcess(store, extra=("--log-level", "debug")) as server:
        # the operator creates a container and places the authorization of communication for provider A
        initial_a = StaticKeys.generate(0x01)
        with server.connect() as conn:
            isd = operator_session(server, conn)
            aid = isd.create_container(None, quota=16384)
            isd.place_authorization(aid, "provider-a", initial_a, expires_at=int(time.time()) + 3600)
        assert states(server)[aid] == ("AUTHORIZED", "provider-a")

        # provider A takes ownership with PUT KEY, then loads objects; in AUTHORIZED only PUT KEY is accepted
        keys_a = StaticKeys.generate(0x31)
        with server.connect() as conn:
            provider = ContainerSession(conn, aid)
            provider.select()
            provider.authenticate(initial_a)
            refused = provider.transmit(CommandApdu(Cla.GP, Ins.GET_STATUS, 0x80, 0x02, le=256))
            assert refused.sw == SW.CONDITIONS_NOT_SATISFIED
            provider.take_ownership(initial_a, keys_a)
            provider.put_object(b"secret", b"provider A's data", Access.PROVIDER)
            provider.put_object(b"hello", b"public greeting", Access.PUBLIC)
            assert provider.get_object(b"secret") == b"provider A's data"
        assert states(server)[aid] == ("PERSONALIZED", "provider-a")

        # invariant 1: neither the operator's nor the initial keys open the owned container
        assert not opens_with(server, aid, initial_a)
        assert not opens_with(server, aid, operator_keys.with_kvn(initial_a.kvn))
        assert not opens_with(server, aid, operator_keys)
        # the provider's own keys do, on a new connection (content persisted), and the public object is public
        with server.connect() as conn:
            provider = ContainerSession(conn, aid)
            provider.select()
            assert provider.get_object(b"hello") == b"public greeting"
            with pytest.raises(StatusError):
                provider.get_object(b"secret")
            provider.authenticate(keys_a)
            assert provider.get_object(b"secret") == b"provider A's data"

        # lock: the container answers nothing but SELECT; unlock: back to work
        with server.connect() as conn:
            operator_session(server, conn).lock(aid)
        assert states(server)[aid][0] == "LOCKED"
        assert not opens_with(server, aid, keys_a)
        with server.connect() as conn:
            operator_session(server, conn).unlock(aid)
        assert states(server)[aid][0] == "PERSONALIZED"
        assert opens_with(server, aid, keys_a)

        # revoke without the provider's key: content destroyed, container AVAILABLE again
        with server.connect() as conn:
            operator_session(server, conn).revoke(aid)
        assert states(server)[aid] == ("SELECTABLE", None)
        assert not opens_with(server, aid, keys_a)
        assert not opens_with(server, aid, initial_a)

        # reuse: a new authorization for provider B, who finds nothing of A's
        initial_b, keys_b = StaticKeys.generate(0x01), StaticKeys.generate(0x32)
        with server.connect() as conn:
            operator_session(server, conn).place_authorization(aid, "provider-b", initial_b, int(time.time()) + 3600)
        assert not opens_with(server, aid, initial_a)  # A's old authorization never comes back
        with server.connect() as conn:
            provider = ContainerSession(conn, aid)
            provider.select()
            provider.take_ownership(initial_b, keys_b)
            assert provider.list_objects() == []
            with pytest.raises(StatusError):
                provider.get_object(b"hello")
            provider.put_object(b"b", b"provider B's data")
        assert states(server)[aid] == ("PERSONALIZED", "provider-b")
        assert not opens_with(server, aid, keys_a)
        assert not opens_with(server, aid, initial_b)
        assert server.stop() == 0
    # invariant 7: no key and no object content in the device's log
    log = server.log_path.read_text()
    assert "connection from" in log
    for keys in (initial_a, keys_a, initial_b, keys_b):
        for key in (keys.enc, keys.mac, keys.dek):
            assert key.hex() not in log.lower()
    assert "provider A's data" not in log and b"provider A's data".hex() not in log.lower()
    # the store as left by the server opens cleanly and shows the final state
    info = json.loads(run_cli("device", "info", "--store", str(store), "--json").stdout)
    by_aid = {bytes.fromhex(c["aid"]): c for c in info["containers"]}
    assert by_aid[aid]["state"] == "OWNED" and by_aid[aid]["provider"] == "provider-b"


def test_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    store = tmp_path / "missing-dir" / "device.db"
    vault = tmp_path / "fresh.vault"
    keys = tmp_path / "isd.keys"
    result = invoke(
        "init", "--store", str(store), "--containers", "1", "--vault", f"file:{vault}", "--keys-out", str(keys)
    )
    assert result.exit_code == 1 and "Error:" in result.stderr
    assert not store.exists() and not vault.exists() and not keys.exists()
