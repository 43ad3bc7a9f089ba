"""How a container hands commands to its function plug-ins: INS routing, rights, the object store inside the
command's transaction (quota, rollback), per-connection scratch state, applets selected by AID in a
container-scoped session, and revocation that survives a failing plug-in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenantcard.device.functions.base import FunctionContext
from tenantcard.device.os import Device
from tenantcard.device.provision import ContainerSpec, DeviceSpec, create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import container_aid
from tenantcard.wire.sw import SW, ApduError
from tests.unit.device.hostkit import Clock, Host, own

Hosts = Callable[..., Host]
APPLET_AID = bytes.fromhex("A0000009990101")
INS_ADD = 0x70  # provider: append data to the "tally" object, answers the new length
INS_READ = 0x71  # anyone: the tally; also says whether the holder PIN is verified
INS_FAIL_AFTER_WRITE = 0x72  # writes, then refuses: the write must be rolled back
INS_SCRATCH = 0x73  # per-connection counter in ctx.session


class TallyFunction:
    name = "tally"
    aids = (APPLET_AID,)

    def __init__(self) -> None:
        self.destroyed: list[int] = []

    def handles(self, ins: int) -> bool:
        return ins in (INS_ADD, INS_READ, INS_FAIL_AFTER_WRITE, INS_SCRATCH)

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xA4:  # selected as an applet
            return ResponseApdu.of(SW.OK, b"tally applet")
        current = ctx.store.get("tally", b"t") or b""
        if command.ins == INS_ADD:
            if not ctx.rights.provider:
                raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
            ctx.store.put("tally", b"t", current + command.data)
            return ResponseApdu.of(SW.OK, len(current + command.data).to_bytes(4, "big"))
        if command.ins == INS_FAIL_AFTER_WRITE:
            ctx.store.put("tally", b"t", b"should not stay")
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
        if command.ins == INS_SCRATCH:
            count = int(ctx.session.get("count", 0)) + 1  # type: ignore[call-overload]
            ctx.session["count"] = count
            return ResponseApdu.of(SW.OK, bytes([count]))
        return ResponseApdu.of(SW.OK, bytes([ctx.rights.holder, ctx.container_index]) + current)

    def destroy(self, ctx: FunctionContext) -> None:
        self.destroyed.append(ctx.container_index)
        raise RuntimeError("a plug-in that fails to clean up")


@pytest.fixture
def tally() -> TallyFunction:
    return TallyFunction()


@pytest.fixture
def device(tmp_path: Path, tally: TallyFunction, clock: Clock) -> Iterator[Device]:
    spec: DeviceSpec = dev_spec([ContainerSpec(2000, 0), ContainerSpec(2000, 0)])
    vault = FileKeyVault(tmp_path / "v.key")
    create_device_store(tmp_path / "d.db", spec, vault)
    dev = Device.open(tmp_path / "d.db", vault, clock=clock, functions=[tally])
    yield dev
    dev.close()


def test_routing_rights_and_transactions(device: Device, host: Hosts, clock: Clock) -> None:
    _, prov = own(host, 1, clock)
    resp = prov.send(CommandApdu(0x80, INS_ADD, 0, 0, b"abc", le=256))
    assert resp.sw == SW.OK and resp.data == (3).to_bytes(4, "big")
    assert prov.send(CommandApdu(0x80, INS_FAIL_AFTER_WRITE, 0, 0)).sw == SW.CONDITIONS_NOT_SATISFIED
    anyone = host()
    anyone.select_container(1)
    assert anyone.send(CommandApdu(0x80, INS_ADD, 0, 0, b"x")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert anyone.send(CommandApdu(0x80, INS_READ, 0, 0, le=256)).data == b"\x00\x01abc"
    # Quota: the function's writes count; past it, 6A84 and nothing written.
    assert prov.send(CommandApdu(0x80, INS_ADD, 0, 0, bytes(255), le=256)).sw == SW.OK
    for _ in range(20):
        last = prov.send(CommandApdu(0x80, INS_ADD, 0, 0, bytes(255), le=256)).sw
        if last != SW.OK:
            break
    assert last == SW.NOT_ENOUGH_MEMORY
    assert device.store.objects(1).used_bytes() <= 2000
    # Functions never run in a container that is not owned, and LOCKED answers 6283.
    other = host()
    other.select_container(0)
    assert other.send(CommandApdu(0x80, INS_READ, 0, 0, le=256)).sw == SW.CONDITIONS_NOT_SATISFIED


def test_session_scratch_is_per_connection_and_selection(host: Hosts, clock: Clock) -> None:
    own(host, 0, clock)
    a, b = host(), host()
    for h in (a, b):
        h.select_container(0)
    assert a.send(CommandApdu(0x80, INS_SCRATCH, 0, 0, le=256)).data == b"\x01"
    assert a.send(CommandApdu(0x80, INS_SCRATCH, 0, 0, le=256)).data == b"\x02"
    assert b.send(CommandApdu(0x80, INS_SCRATCH, 0, 0, le=256)).data == b"\x01"
    a.select_container(0)
    assert a.send(CommandApdu(0x80, INS_SCRATCH, 0, 0, le=256)).data == b"\x01"


def test_applet_selected_by_aid_in_scoped_session(device: Device, host: Hosts, clock: Clock) -> None:
    unscoped = host()
    assert unscoped.select(APPLET_AID) == SW.NOT_FOUND
    scoped = Host(LocalConnection(device.connect(0)))
    resp = scoped.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, APPLET_AID, le=256))
    assert resp.sw == SW.NOT_FOUND  # container 0 is not owned yet
    own(host, 0, clock)
    resp = scoped.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, APPLET_AID, le=256))
    assert resp.sw == SW.OK and resp.data == b"tally applet"
    assert scoped.send(CommandApdu(0x00, INS_READ, 0, 0, le=256)).data == b"\x00\x00"
    op = host()
    op.select_isd()
    assert op.authenticate(gp_test_keys()) == SW.OK
    assert op.aid_command(0xF0, 0x40, 0x80, container_aid(0), tlv=False) == SW.OK
    assert scoped.send(CommandApdu(0x00, INS_READ, 0, 0, le=256)).sw == SW.SELECTED_FILE_INVALIDATED


def test_revocation_survives_a_failing_plugin(device: Device, host: Hosts, clock: Clock, tally: TallyFunction) -> None:
    _, prov = own(host, 1, clock)
    assert prov.send(CommandApdu(0x80, INS_ADD, 0, 0, b"abc", le=256)).sw == SW.OK
    op = host()
    op.select_isd()
    assert op.authenticate(gp_test_keys()) == SW.OK
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(1)) == SW.OK
    assert tally.destroyed == [1]
    assert device.store.container(1).used == 0  # type: ignore[union-attr]
    device.check()
