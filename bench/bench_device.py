"""Per-command latency of the device in-process (``CardSession.execute``), each against a floor card measured in
the same run, in interleaved rounds.

The floor card (``_FloorCard``) does the least a card must do to give the same answer to the same command:
parse the APDU, run the same SCP03 code (``Scp03Card``: INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, unwrap and
wrap), execute the same SQLite statement on a copy of the device's store (same file system, WAL,
``synchronous=FULL``, a fresh connection of its own) and open or seal the record with AES-GCM. It has no
lock, no routing, no lifecycle or access checks, no key-set versions, no caches. Both cards are driven by the
same host code (``ContainerSession`` / ``IsdSession`` over ``LocalConnection``, or raw ``execute``), so the
host's SCP03 work is in both figures alike; the ratio is what the device adds to the floor.

* ``device.select_container``: SELECT of a container AID. Floor: point read of the container's row, FCI.
* ``device.piv_get_discovery``: PIV GET DATA of the discovery object in a container-scoped session (the
  ``pcsc.apdu_latency`` workload). Floor: point read of the container's lifecycle state, constant answer.
* ``device.get_data_33``: GET DATA of a 64-byte data object at security level 33. Floor: unwrap, point read
  of the sealed object row, AES-GCM open, wrap.
* ``device.store_data_33``: STORE DATA of the same object at level 33 (a durable write: one fsync). Floor:
  unwrap, AES-GCM seal, ``BEGIN IMMEDIATE; INSERT OR REPLACE; COMMIT``, wrap.
* ``device.isd_handshake``: INITIALIZE UPDATE + EXTERNAL AUTHENTICATE to the ISD (the sequence counter is
  made durable before the answer, GP Amd D §6.2.2.1). Floor: the same ``Scp03Card`` handshake and a durable
  ``UPDATE`` of the counter.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import Figure, compared
from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.piv import PivProvisioner
from tenantcard.crypto.scp03 import Scp03Card, StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import Card, LocalConnection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID, Ins, container_aid
from tenantcard.wire.piv import PIV_AID, discovery_object
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tenantcard.wire.tlv import Tlv

INDEX = 0
AID = container_aid(INDEX)
NAME = b"bench-object"
VALUE = bytes(range(64))
GET_DISCOVERY = bytes.fromhex("00CB3FFF035C017E00")
SELECT_CONTAINER = CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, AID, le=256).to_bytes()
FLOOR_OBJECT_ID = b"floor-object-id!"  # 16 bytes, as the device's HMAC-derived ids
ATR = bytes.fromhex("3B80800101")


def _fci(aid: bytes) -> bytes:
    return Tlv.of(0x6F, Tlv(0x84, aid), Tlv.of(0xA5, Tlv(0x9F65, b"\xff"))).to_bytes()


class _FloorCard:
    """The floor: the same parsing, SCP03 code, SQLite statements and AES-GCM as the device, nothing else."""

    def __init__(self, db: Path, device_id: bytes, aid: bytes, keys: StaticKeys, owner: int) -> None:
        self._conn = sqlite3.connect(str(db), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._aid = aid
        self._fci = _fci(aid)
        self._keys = keys
        self._owner = owner
        self._scp = Scp03Card(key_diversification_data=device_id, sd_aid=aid)
        self._counter = 0
        self._aead = AESGCM(bytes(32))
        self._discovery = discovery_object()

    def power_on(self) -> bytes:
        self._scp.reset()
        return ATR

    def reset(self) -> bytes:
        return self.power_on()

    def power_off(self) -> None:
        self._scp.reset()

    def close(self) -> None:
        self._conn.close()

    def _state(self) -> int:
        return int(self._conn.execute("SELECT state FROM containers WHERE idx = ?", (INDEX,)).fetchone()[0])

    def execute(self, apdu: bytes) -> bytes:
        cmd = CommandApdu.parse(apdu)
        ins = cmd.ins
        if ins == Ins.SELECT and not cmd.cla & 0x04:
            self._scp.reset()
            self._state()
            return self._fci + b"\x90\x00"
        if ins == Ins.GET_DATA_ODD and cmd.cla == 0x00:  # PIV GET DATA (discovery)
            self._state()
            return self._discovery + b"\x90\x00"
        if ins == Ins.INITIALIZE_UPDATE:
            self._counter += 1
            data = self._scp.initialize_update(cmd, self._keys, self._counter)
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("UPDATE keysets SET counter = ? WHERE owner = ?", (self._counter, self._owner))
            self._conn.execute("COMMIT")
            return data + b"\x90\x00"
        if ins == Ins.EXTERNAL_AUTHENTICATE:
            self._scp.external_authenticate(cmd)
            return b"\x90\x00"
        plain = self._scp.unwrap(cmd)
        if plain.ins == Ins.GET_DATA_ODD:
            row = self._conn.execute(
                "SELECT sealed FROM objects WHERE idx = ? AND id = ?", (INDEX, FLOOR_OBJECT_ID)
            ).fetchone()
            blob = bytes(row[0])
            value = self._aead.decrypt(blob[:12], blob[12:], FLOOR_OBJECT_ID)
            return self._scp.wrap(ResponseApdu(value, SW.OK)).to_bytes()
        if plain.ins == Ins.STORE_DATA:
            nonce = os.urandom(12)
            sealed = nonce + self._aead.encrypt(nonce, plain.data, FLOOR_OBJECT_ID)
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT OR REPLACE INTO objects (idx, id, kind_id, sealed, size) VALUES (?, ?, ?, ?, ?)",
                (INDEX, FLOOR_OBJECT_ID, bytes(16), sealed, len(plain.data)),
            )
            self._conn.execute("COMMIT")
            return self._scp.wrap(ResponseApdu(b"", SW.OK)).to_bytes()
        return SW.INS_NOT_SUPPORTED.to_bytes()


class _Rig:
    """A device with container 0 owned (PIV set up, one public data object) and floor cards on a copy of its
    store."""

    def __init__(self, directory: Path) -> None:
        store = directory / "device.db"
        vault = FileKeyVault(f"{store}.vault")
        create_device_store(store, dev_spec(2), vault)
        self.device = Device.open(store, vault)
        self.own = StaticKeys.generate(0x30, 16)
        initial = StaticKeys.generate(0x01, 16)
        isd = IsdSession(LocalConnection(self.device.connect()))
        isd.select()
        isd.authenticate(gp_test_keys())
        isd.place_authorization(AID, "bench", initial, int(time.time()) + 3600)
        session = ContainerSession(LocalConnection(self.device.connect()), AID)
        session.select()
        session.take_ownership(initial, self.own)
        PivProvisioner(session).setup("314159", "27182818")
        session.put_object(NAME, VALUE, Access.PUBLIC)
        # The floor's copy: the same schema, rows and pages, in a file of its own on the same file system.
        floor_db = directory / "floor.db"
        src, dst = sqlite3.connect(str(store)), sqlite3.connect(str(floor_db))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        conn = sqlite3.connect(str(floor_db), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        aead = AESGCM(bytes(32))
        record = aead.encrypt(bytes(12), bytes([Access.PUBLIC]) + VALUE, FLOOR_OBJECT_ID)
        conn.execute(
            "INSERT OR REPLACE INTO objects (idx, id, kind_id, sealed, size) VALUES (?, ?, ?, ?, ?)",
            (INDEX, FLOOR_OBJECT_ID, bytes(16), bytes(12) + record, len(VALUE)),
        )
        conn.close()
        device_id = self.device.device_id
        self.floor_container = _FloorCard(floor_db, device_id, AID, self.own, INDEX)
        self.floor_isd = _FloorCard(floor_db, device_id, ISD_AID, gp_test_keys(), -1)
        self.floor_plain = _FloorCard(floor_db, device_id, AID, self.own, INDEX)

    def close(self) -> None:
        for card in (self.floor_container, self.floor_isd, self.floor_plain):
            card.close()
        self.device.close()

    def container_session(self, card: Card) -> ContainerSession:
        session = ContainerSession(LocalConnection(card), AID)
        session.select()
        session.authenticate(self.own, 0x33)
        return session

    def isd_session(self, card: Card) -> IsdSession:
        session = IsdSession(LocalConnection(card))
        session.select()
        return session


def _expect(answer: bytes, what: str) -> bytes:
    if answer[-2:] != b"\x90\x00":
        raise RuntimeError(f"{what} answered {answer[-2:].hex()}")
    return answer


def run(quick: bool) -> list[Figure]:
    fast_rounds, fast_number = (7, 300) if quick else (15, 1000)
    slow_rounds, slow_number = (7, 20) if quick else (15, 60)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TENANTCARD_BENCH_DIR")) as tmp:
        rig = _Rig(Path(tmp))
        try:
            # SELECT of a container, on a session of the whole device.
            card = rig.device.connect()
            card.power_on()
            floor: _FloorCard = rig.floor_plain
            _expect(card.execute(SELECT_CONTAINER), "SELECT")
            _expect(floor.execute(SELECT_CONTAINER), "floor SELECT")
            figures.append(
                compared(
                    "device.select_container",
                    lambda: card.execute(SELECT_CONTAINER),
                    lambda: floor.execute(SELECT_CONTAINER),
                    "SELECT of a container AID, in-process; floor: APDU parse + point read of the container's "
                    "row in a copy of the store + FCI",
                    "ratio <= 1.5",
                    repeat=fast_rounds,
                    number=fast_number,
                )
            )

            # PIV GET DATA discovery in a container-scoped session (the pcsc.apdu_latency workload).
            piv = rig.device.connect(container=INDEX)
            piv.power_on()
            _expect(piv.execute(CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, PIV_AID, le=256).to_bytes()), "PIV SELECT")
            assert piv.execute(GET_DISCOVERY) == floor.execute(GET_DISCOVERY)
            figures.append(
                compared(
                    "device.piv_get_discovery",
                    lambda: piv.execute(GET_DISCOVERY),
                    lambda: floor.execute(GET_DISCOVERY),
                    "PIV GET DATA discovery in a container-scoped session, in-process; floor: APDU parse + "
                    "point read of the container's lifecycle state + the constant answer",
                    "ratio <= 1.5",
                    repeat=fast_rounds,
                    number=fast_number,
                )
            )

            # GET DATA / STORE DATA of a data object at level 33, through the same host stack.
            dev_session = rig.container_session(rig.device.connect())
            floor_session = rig.container_session(rig.floor_container)
            assert dev_session.get_object(NAME) == VALUE
            assert floor_session.get_object(NAME) == bytes([Access.PUBLIC]) + VALUE
            figures.append(
                compared(
                    "device.get_data_33",
                    lambda: dev_session.get_object(NAME),
                    lambda: floor_session.get_object(NAME),
                    "GET DATA of a 64-byte object at SCP03 level 33 (host wrap/unwrap included in both); floor: "
                    "the same Scp03Card unwrap/wrap + point read of the sealed row + AES-GCM open",
                    "ratio <= 1.5",
                    repeat=fast_rounds,
                    number=fast_number // 3,
                )
            )
            figures.append(
                compared(
                    "device.store_data_33",
                    lambda: dev_session.put_object(NAME, VALUE, Access.PUBLIC),
                    lambda: floor_session.put_object(NAME, VALUE, Access.PUBLIC),
                    "STORE DATA of a 64-byte object at level 33, durable before 9000 (WAL, synchronous=FULL); "
                    "floor: the same unwrap/wrap + AES-GCM seal + one INSERT OR REPLACE committed with fsync",
                    "ratio <= 1.2",
                    repeat=slow_rounds,
                    number=slow_number,
                )
            )

            # ISD handshake: the sequence counter is durable before the INITIALIZE UPDATE answer.
            isd = rig.isd_session(rig.device.connect())
            floor_isd = rig.isd_session(rig.floor_isd)
            figures.append(
                compared(
                    "device.isd_handshake",
                    lambda: isd.authenticate(gp_test_keys()),
                    lambda: floor_isd.authenticate(gp_test_keys()),
                    "INITIALIZE UPDATE + EXTERNAL AUTHENTICATE to the ISD (counter fsynced before the answer, "
                    "GP Amd D §6.2.2.1); floor: the same Scp03Card handshake + one durable UPDATE of the counter",
                    "ratio <= 1.2",
                    repeat=slow_rounds,
                    number=slow_number,
                )
            )
        finally:
            rig.close()
    return figures


if __name__ == "__main__":
    for figure in run(quick=True):
        print(figure.to_json())
