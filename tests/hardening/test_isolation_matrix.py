"""The isolation matrix: every actor x every state of a container x every command class, against the real
device through the client sessions, in-process and over the TCP endpoint.

Invariants held (DESIGN.md): 1 (after PUT KEY no operator or initial key opens the container), 2 (provider B
never reaches provider A's container), 3 (an authorization works once, for its provider, not after
revocation), 4 (revocation works without the provider's key).

``EXPECTED`` is written out by hand from DESIGN.md and docs/protocol.md, not derived from the device: each
cell is ``Y`` (the command succeeds), ``-`` (refused), or, for the object listing, the objects listed
(``p`` provider-only, ``h`` holder-only, ``u`` public). Every cell runs on a fresh copy of the state's store.
When the results equal the table, the test writes docs/isolation-matrix.md; any difference fails it.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantcard.client.container import ContainerSession
from tenantcard.client.errors import ClientError
from tenantcard.client.isd import IsdSession, install_for_personalization_data
from tenantcard.client.otp import OtpClient
from tenantcard.client.pki import PkiClient
from tenantcard.client.processors import base_chain
from tenantcard.crypto.errors import CryptoError
from tenantcard.crypto.scp03 import PutKeyCommand, StaticKeys
from tenantcard.device import Device, create_device_store, dev_spec
from tenantcard.device.provision import gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.functions import CalculateRequest, OathIns, PkiIns
from tenantcard.wire.gp import Cla, GetStatusP1, Ins, InstallP1, LifeCycle, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access, Authorization, DataObject, object_name_query, parse_object_list
from tenantcard.wire.tlv import Tlv
from tests.support.transports import CardConnector, InProcessTransport, TcpTransport

DOC = Path(__file__).resolve().parents[2] / "docs" / "isolation-matrix.md"

ACTORS = ("operator", "provider A", "provider B", "holder", "anyone")
STATES = ("AVAILABLE", "AUTHORIZED", "OWNED", "LOCKED", "REVOKED")
COMMANDS = (
    "select",
    "open secure channel",
    "PUT KEY",
    "store object",
    "read provider object",
    "read holder object",
    "read public object",
    "delete object",
    "list objects",
    "container GET STATUS",
    "OTP (holder rule)",
    "sign (holder or provider rule)",
    "ISD GET STATUS",
    "lock",
    "unlock",
    "revoke",
    "place authorization",
)

# Columns: operator (ISD keys), provider A (A's keys: the initial keys while AUTHORIZED, its own after), provider
# B (the keys of B's own container on the same device), holder (A's container PIN), anyone (nothing).
_NEVER_OWNED = {
    "select": "Y Y Y Y Y",  # SELECT routes by AID for anyone; it reveals only that the AID exists
    "open secure channel": "- - - - -",  # no key set in an AVAILABLE container
    "PUT KEY": "- - - - -",
    "store object": "- - - - -",
    "read provider object": "- - - - -",
    "read holder object": "- - - - -",
    "read public object": "- - - - -",
    "delete object": "- - - - -",
    "list objects": "- - - - -",
    "container GET STATUS": "- - - - -",
    "OTP (holder rule)": "- - - - -",
    "sign (holder or provider rule)": "- - - - -",
    "ISD GET STATUS": "Y - - - -",  # only the operator's channel lists containers
    "lock": "- - - - -",  # only OWNED locks
    "unlock": "- - - - -",
    "revoke": "Y - - - -",  # DELETE of an AVAILABLE container is an idempotent wipe
    "place authorization": "Y - - - -",
}
EXPECTED: dict[str, dict[str, str]] = {
    "AVAILABLE": dict(_NEVER_OWNED),
    "AUTHORIZED": {
        **_NEVER_OWNED,
        "open secure channel": "- Y - - -",  # invariant 3: the initial keys, for provider A only
        "PUT KEY": "- Y - - -",  # taking ownership is the only command an AUTHORIZED container accepts
        "place authorization": "Y - - - -",  # the operator may replace an authorization not yet taken up
    },
    "OWNED": {
        "select": "Y Y Y Y Y",
        "open secure channel": "- Y - - -",  # invariant 1: not the operator's keys; invariant 2: not B's
        "PUT KEY": "- Y - - -",
        "store object": "- Y - - -",
        "read provider object": "- Y - - -",
        "read holder object": "- - - Y -",
        "read public object": "Y Y Y Y Y",
        "delete object": "- Y - - -",
        "list objects": "u pu u hu u",  # names the caller may read, never values
        "container GET STATUS": "Y Y Y Y Y",  # lifecycle, quota, use and PIN tries: no content
        "OTP (holder rule)": "- - - Y -",
        "sign (holder or provider rule)": "- Y - Y -",
        "ISD GET STATUS": "Y - - - -",
        "lock": "Y - - - -",
        "unlock": "- - - - -",
        "revoke": "Y - - - -",  # invariant 4: without the provider's key
        "place authorization": "- - - - -",  # an owned container is not available
    },
    "LOCKED": {
        **{command: "- - - - -" for command in COMMANDS},
        "select": "Y Y Y Y Y",  # GP 2.3.1 §11.1.1: a LOCKED application answers SELECT and nothing else
        "ISD GET STATUS": "Y - - - -",
        "unlock": "Y - - - -",
        "revoke": "Y - - - -",
    },
    "REVOKED": dict(_NEVER_OWNED),  # invariant 3/4: A's keys, PIN and content are gone
}

OPERATOR = gp_test_keys()
INITIAL_A = StaticKeys(bytes([0xA1]) * 16, bytes([0xA2]) * 16, bytes([0xA3]) * 16, 0x01)
KEYS_A = StaticKeys(bytes([0xA4]) * 16, bytes([0xA5]) * 16, bytes([0xA6]) * 16, 0x31)
INITIAL_B = StaticKeys(bytes([0xB1]) * 16, bytes([0xB2]) * 16, bytes([0xB3]) * 16, 0x01)
KEYS_B = StaticKeys(bytes([0xB4]) * 16, bytes([0xB5]) * 16, bytes([0xB6]) * 16, 0x31)
NEW_KEYS = StaticKeys(bytes([0xC1]) * 16, bytes([0xC2]) * 16, bytes([0xC3]) * 16, 0x32)
PIN_A = b"246810"
A, B = 0, 1
AID_A = container_aid(A)
OBJECTS = {b"prov": Access.PROVIDER, b"hold": Access.HOLDER, b"pub": Access.PUBLIC}
LETTER = {Access.PROVIDER: "p", Access.HOLDER: "h", Access.PUBLIC: "u"}
EXPIRES = int(time.time()) + 30 * 86400


def copy_store(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        s = Path(str(src) + suffix)
        if s.exists():
            shutil.copyfile(s, Path(str(dst) + suffix))


@dataclass(frozen=True)
class Templates:
    vault: FileKeyVault
    stores: dict[str, Path]


def _isd(device: Device) -> IsdSession:
    from tenantcard.transport.base import LocalConnection

    isd = IsdSession(LocalConnection(device.connect()))
    isd.select()
    isd.authenticate(OPERATOR)
    return isd


def _own(device: Device, index: int, initial: StaticKeys, keys: StaticKeys) -> ContainerSession:
    from tenantcard.transport.base import LocalConnection

    session = ContainerSession(LocalConnection(device.connect()), container_aid(index))
    session.select()
    session.take_ownership(initial, keys)
    return session


def _derive(vault: FileKeyVault, src: Path, dst: Path, step: Callable[[Device], None]) -> Path:
    copy_store(src, dst)
    device = Device.open(dst, vault)
    try:
        step(device)
    finally:
        device.close()
    return dst


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    """One store per state of A's container (index 0); B owns container 1 in every one of them."""
    root = tmp_path_factory.mktemp("matrix-templates")
    vault = FileKeyVault(root / "vault.key")
    available = root / "available.db"
    create_device_store(available, dev_spec(2), vault)

    def b_owns(device: Device) -> None:
        _isd(device).place_authorization(container_aid(B), "provider-b", INITIAL_B, EXPIRES)
        b = _own(device, B, INITIAL_B, KEYS_B)
        b.put_object(b"b-secret", b"only for B", Access.PROVIDER)

    def authorize_a(device: Device) -> None:
        _isd(device).place_authorization(AID_A, "provider-a", INITIAL_A, EXPIRES)

    def a_owns(device: Device) -> None:
        a = _own(device, A, INITIAL_A, KEYS_A)
        for name, access in OBJECTS.items():
            a.put_object(name, b"value of " + name, access)
        a.set_pin(PIN_A, retries=5)
        OtpClient(a).load_seed("otp", b"12345678901234567890", access=Access.HOLDER)
        PkiClient(a).generate_key(1, "p256", access=Access.HOLDER_OR_PROVIDER)

    stores = {"AVAILABLE": _derive(vault, available, root / "base.db", b_owns)}
    stores["AUTHORIZED"] = _derive(vault, stores["AVAILABLE"], root / "authorized.db", authorize_a)
    stores["OWNED"] = _derive(vault, stores["AUTHORIZED"], root / "owned.db", a_owns)
    stores["LOCKED"] = _derive(vault, stores["OWNED"], root / "locked.db", lambda d: _isd(d).lock(AID_A))
    stores["REVOKED"] = _derive(vault, stores["OWNED"], root / "revoked.db", lambda d: _isd(d).revoke(AID_A))
    return Templates(vault, stores)


# ------------------------------------------------------------------------------------------ the actors


def actor_keys(actor: str, state: str) -> StaticKeys | None:
    if actor == "operator":
        return OPERATOR
    if actor == "provider A":
        return INITIAL_A if state == "AUTHORIZED" else KEYS_A
    if actor == "provider B":
        return KEYS_B
    return None


def _ok(resp: ResponseApdu) -> bool:
    return resp.sw == SW.OK


class ContainerAttempt:
    """An actor on A's container: SELECT, then its keys (SCP03 at level 33) or the holder PIN, as it has."""

    def __init__(self, conn: Connection, actor: str, state: str) -> None:
        self.session = ContainerSession(conn, AID_A)
        self.keys = actor_keys(actor, state)
        try:
            self.session.select()
            self.selected = True
        except ClientError:
            self.selected = False
        self.authenticated = False
        if self.keys is not None:
            try:
                self.session.authenticate(self.keys)
                self.authenticated = True
            except (ClientError, CryptoError):
                self.authenticated = False
        if actor == "holder":
            with suppress(ClientError):
                self.session.verify_pin(PIN_A)

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        """Through the secure channel when one is open; a channel the card dropped counts as a refusal."""
        try:
            return self.session.transmit(cmd)
        except CryptoError:
            return ResponseApdu.of(SW.SECURITY_STATUS_NOT_SATISFIED)

    def run(self, command: str) -> str:
        if command == "select":
            return "Y" if self.selected else "-"
        if command == "open secure channel":
            return "Y" if self.authenticated else "-"
        if command == "list objects":
            resp = self.send(CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, le=256))
            if not _ok(resp):
                return "-"
            listed = parse_object_list(resp.data)
            assert all(o.value == b"" for o in listed), "a listing never carries values"
            return "".join(sorted(LETTER[Access(o.access)] for o in listed if o.name in OBJECTS)) or "0"
        return "Y" if self._attempt(command) else "-"

    def _attempt(self, command: str) -> bool:
        if command == "PUT KEY":
            dek = self.keys.dek if self.keys is not None else bytes(16)
            kvn = self.keys.kvn if self.keys is not None else 0
            put = PutKeyCommand.for_keys(NEW_KEYS, dek, replace_kvn=kvn)
            resp = self.send(CommandApdu(Cla.GP, Ins.PUT_KEY, put.p1, put.p2, put.to_data(), le=256))
            return _ok(resp) and resp.data == bytes([NEW_KEYS.kvn]) + b"".join(NEW_KEYS.kcvs())
        if command == "store object":
            obj = DataObject(b"new", Access.PROVIDER, b"planted")
            return _ok(self.send(CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, obj.to_bytes())))
        if command.startswith("read "):
            name = {"provider": b"prov", "holder": b"hold", "public": b"pub"}[command.split()[1]]
            query = object_name_query(name)
            resp = self.send(CommandApdu(Cla.GP, Ins.GET_DATA_ODD, 0x00, 0x00, query, le=256))
            return _ok(resp) and resp.data == b"value of " + name
        if command == "delete object":
            return _ok(self.send(CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, object_name_query(b"pub"), le=256)))
        if command == "container GET STATUS":
            return _ok(self.send(CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.ISD, 0x02, le=256)))
        if command == "OTP (holder rule)":
            data = CalculateRequest(b"otp").to_bytes()
            return _ok(self.send(CommandApdu(Cla.GP, OathIns.OTP_CALCULATE, 0, 0, data, le=256)))
        if command == "sign (holder or provider rule)":
            return _ok(self.send(CommandApdu(Cla.GP, PkiIns.SIGN, 0, 1, b"to be signed", le=256)))
        raise AssertionError(f"unknown container command {command!r}")


class IsdAttempt:
    """An actor on the ISD: SELECT, SCP03 with its keys (only the operator's open it), then the command through
    the client's verbs when the channel is open, else the same GP command sent bare."""

    def __init__(self, conn: Connection, actor: str, state: str) -> None:
        self.isd = IsdSession(conn)
        self.bare = base_chain(conn)
        self.isd.select()
        keys = actor_keys(actor, state)
        if keys is not None:
            with suppress(ClientError, CryptoError):
                self.isd.authenticate(keys)

    def run(self, command: str) -> str:
        try:
            done = self._verb(command) if self.isd.authenticated else _ok(self.bare.send(self._bare(command)))
        except (ClientError, CryptoError):
            done = False
        return "Y" if done else "-"

    def _verb(self, command: str) -> bool:
        if command == "ISD GET STATUS":
            entries = {c.aid: c for c in self.isd.list_containers()}
            return AID_A in entries and entries[container_aid(B)].provider_id == "provider-b"
        if command == "lock":
            self.isd.lock(AID_A)
        elif command == "unlock":
            self.isd.unlock(AID_A)
        elif command == "revoke":
            self.isd.revoke(AID_A)
        elif command == "place authorization":
            self.isd.place_authorization(AID_A, "provider-c", NEW_KEYS, EXPIRES)
        else:
            raise AssertionError(f"unknown ISD command {command!r}")
        # The command did what it says: A's container is now in the state it leads to.
        after = {c.aid: c for c in self.isd.list_containers()}[AID_A]
        assert after.lifecycle == AFTER[command], (command, after.lifecycle)
        if command == "place authorization":
            assert after.provider_id == "provider-c"
        return True

    @staticmethod
    def _bare(command: str) -> CommandApdu:
        if command == "ISD GET STATUS":
            return CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, b"\x4f\x00", le=256)
        if command == "lock":
            return CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x80, AID_A)
        if command == "unlock":
            return CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x00, AID_A)
        if command == "revoke":
            return CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, Tlv(0x4F, AID_A).to_bytes(), le=256)
        # The second half of a placement: STORE DATA of an authorization (the bare INSTALL is refused first).
        key_data = PutKeyCommand.for_keys(NEW_KEYS, bytes(16)).to_data()
        return CommandApdu(
            Cla.GP, Ins.STORE_DATA, 0x90, 0x00, Authorization("provider-c", EXPIRES, key_data).to_bytes()
        )


AFTER = {
    "lock": LifeCycle.LOCKED,
    "unlock": LifeCycle.PERSONALIZED,
    "revoke": LifeCycle.SELECTABLE,
    "place authorization": LifeCycle.AUTHORIZED,
}
ISD_COMMANDS = frozenset({"ISD GET STATUS", "lock", "unlock", "revoke", "place authorization"})


def outcome(connect: Callable[[], Connection], actor: str, state: str, command: str) -> str:
    with closing(connect()) as conn:
        if command in ISD_COMMANDS:
            if command == "place authorization" and actor != "operator":
                # The bare INSTALL [for personalization] must be refused too.
                bare = base_chain(conn)
                install = install_for_personalization_data(AID_A)
                sw = bare.send(CommandApdu(Cla.GP, Ins.INSTALL, InstallP1.FOR_PERSONALIZATION, 0, install)).sw
                assert sw != SW.OK, "INSTALL [for personalization] accepted without the operator's channel"
            return IsdAttempt(conn, actor, state).run(command)
        return ContainerAttempt(conn, actor, state).run(command)


def run_matrix(templates: Templates, workdir: Path, transport: str) -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    n = 0
    for state in STATES:
        results[state] = {}
        for command in COMMANDS:
            cells = []
            for actor in ACTORS:
                n += 1
                store = workdir / f"cell-{n}.db"
                copy_store(templates.stores[state], store)
                device = Device.open(store, templates.vault)
                connector = CardConnector(TcpTransport() if transport == "tcp" else InProcessTransport())
                try:
                    cells.append(outcome(functools.partial(connector, device), actor, state, command))
                finally:
                    connector.close()
                    device.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(str(store) + suffix).unlink(missing_ok=True)
            results[state][command] = " ".join(cells)
    return results


def render(results: dict[str, dict[str, str]]) -> str:
    lines = [
        "# Isolation matrix",
        "",
        "Generated by `tests/hardening/test_isolation_matrix.py` (do not edit by hand): every actor against every",
        "state of one container (provider A's, index 0) and every command class, on the real device through the",
        "client sessions, in-process and over the TCP endpoint. Each cell runs on a fresh copy of the state's",
        "sealed store. The test writes this file only when every result equals its hand-written expected table.",
        "",
        "Actors: **operator** holds the ISD key set; **provider A** the keys of this container (the one-time",
        "initial keys while AUTHORIZED, its own after PUT KEY; after revocation, its old keys); **provider B** the",
        "keys of its own container on the same device; **holder** this container's PIN; **anyone** nothing.",
        "Container commands are sent after SELECT and, when the actor has keys, SCP03 at level 33 with them",
        "(a holder verifies the PIN instead); ISD commands through the ISD with the actor's keys.",
        "",
        "`Y` = succeeds, `-` = refused with a status word. *list objects* shows which of the container's objects",
        "are listed (names, access rules and sizes, never values): `p` provider-only, `h` holder-only, `u` public.",
        "REVOKED = owned by A, then revoked by the operator (AVAILABLE again).",
        "",
        "Invariants held here (DESIGN.md): 1 (OWNED: the operator's keys and the spent initial keys open nothing),",
        "2 (provider B reaches nothing of A's beyond what is public), 3 (the initial keys work only for A while",
        "AUTHORIZED; A's keys do nothing after revocation), 4 (revoke succeeds in every state with the ISD keys",
        "alone).",
        "",
    ]
    for state in STATES:
        lines += [f"## {state}", "", "| command | " + " | ".join(ACTORS) + " |", "|---" * (len(ACTORS) + 1) + "|"]
        for command in COMMANDS:
            lines.append(f"| {command} | " + " | ".join(results[state][command].split(" ")) + " |")
        lines.append("")
    return "\n".join(lines)


def diff(results: dict[str, dict[str, str]]) -> list[str]:
    out = []
    for state in STATES:
        for command in COMMANDS:
            got, want = results[state][command].split(" "), EXPECTED[state][command].split(" ")
            for actor, g, w in zip(ACTORS, got, want, strict=True):
                if g != w:
                    out.append(f"{state} / {command} / {actor}: expected {w!r}, got {g!r}")
    return out


def test_expected_table_is_complete() -> None:
    for state in STATES:
        assert set(EXPECTED[state]) == set(COMMANDS), state
        for command, row in EXPECTED[state].items():
            assert len(row.split(" ")) == len(ACTORS), (state, command)


@pytest.fixture(params=["inprocess", "tcp"])
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


def test_isolation_matrix(templates: Templates, tmp_path: Path, transport: str) -> None:
    results = run_matrix(templates, tmp_path, transport)
    mismatches = diff(results)
    assert not mismatches, "\n".join(mismatches)
    text = render(results)
    if not DOC.exists() or DOC.read_text() != text:
        DOC.write_text(text)
