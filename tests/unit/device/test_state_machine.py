"""A hypothesis state machine over the device's command set: operator, provider and holder commands, valid
and garbage APDUs on several in-process connections, and reopening the store between steps.

After every step: each answer was a defined status word (never 6F00 "unexpected failure" nor 6581 "memory
failure"), the containers' lifecycle states match the model, and the store passes its integrity check; after
reopening, the device serves on (invariants 5 and 6)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.device.store import ContainerState
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.gp import ISD_AID, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import Access
from tests.unit.device.hostkit import Host

CONTAINERS = 3
SPEC = dev_spec(CONTAINERS, device_id=bytes(range(10, 20)))
UNDEFINED = {SW.UNKNOWN, SW.MEMORY_FAILURE}
INS = [0x20, 0x24, 0x2C, 0x50, 0x82, 0x88, 0xA4, 0xC0, 0xCA, 0xCB, 0xD8, 0xE2, 0xE4, 0xE6, 0xF0, 0xF2, 0x00, 0x77]
CLA = [0x00, 0x04, 0x10, 0x80, 0x84, 0x90, 0x94, 0x01, 0xFF]


def defined(answer: bytes) -> SW:
    assert len(answer) >= 2
    sw = SW(int.from_bytes(answer[-2:], "big"))
    assert sw not in UNDEFINED, f"undefined answer {sw.value:04X}"
    assert sw.sw1 in (0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x90)
    return sw


class DeviceMachine(RuleBasedStateMachine):
    @initialize()
    def create(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tc-sm-"))
        self.vault = FileKeyVault(self.dir / "vault.key")
        create_device_store(self.dir / "device.db", SPEC, self.vault)
        self.device = Device.open(self.dir / "device.db", self.vault, functions=[])
        self.hosts: list[Host] = []
        self.states = dict.fromkeys(range(CONTAINERS), ContainerState.AVAILABLE)
        self.initial: dict[int, StaticKeys] = {}
        self.owner_keys: dict[int, StaticKeys] = {}
        self.objects: dict[int, dict[bytes, bytes]] = {i: {} for i in range(CONTAINERS)}

    def teardown(self) -> None:
        self.device.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------------ helpers

    def _host(self) -> Host:
        return Host(LocalConnection(self.device.connect()))

    def _operator(self) -> Host:
        op = self._host()
        assert op.select_isd() == SW.OK
        assert op.authenticate(gp_test_keys()) == SW.OK
        return op

    def _provider(self, index: int) -> Host:
        h = self._host()
        assert h.select_container(index) == SW.OK
        assert h.authenticate(self.owner_keys[index]) == SW.OK
        return h

    # ------------------------------------------------------------------------ raw traffic

    @rule()
    def open_connection(self) -> None:
        if len(self.hosts) < 4:
            self.hosts.append(self._host())

    @precondition(lambda self: bool(self.hosts))
    @rule(n=st.integers(0, 3), data=st.binary(max_size=300))
    def garbage(self, n: int, data: bytes) -> None:
        defined(self.hosts[n % len(self.hosts)].raw(data))

    @precondition(lambda self: bool(self.hosts))
    @rule(
        n=st.integers(0, 3),
        cla=st.sampled_from(CLA),
        ins=st.sampled_from(INS),
        p1=st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x0C, 0x20, 0x40, 0x80, 0x90, 0xBF]),
        p2=st.sampled_from([0x00, 0x02, 0x0C, 0x21, 0x66, 0x80, 0x81, 0xE0, 0xCF]),
        data=st.binary(max_size=80),
        le=st.sampled_from([None, 0, 16]),
    )
    def structured(self, n: int, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> None:
        apdu = bytes([cla, ins, p1, p2])
        if data:
            apdu += bytes([len(data)]) + data
        if le is not None:
            apdu += bytes([le])
        defined(self.hosts[n % len(self.hosts)].raw(apdu))

    @precondition(lambda self: bool(self.hosts))
    @rule(n=st.integers(0, 3), aid=st.sampled_from([ISD_AID, *(container_aid(i) for i in range(4)), b"\xa0" * 5]))
    def select(self, n: int, aid: bytes) -> None:
        defined(self.hosts[n % len(self.hosts)].raw(bytes([0, 0xA4, 4, 0, len(aid)]) + aid))

    # ------------------------------------------------------------------------ lifecycle

    @rule(index=st.integers(0, CONTAINERS - 1), expired=st.booleans())
    def place_authorization(self, index: int, expired: bool) -> None:
        initial = StaticKeys.generate(0x01)
        expires = int(time.time()) + (-10 if expired else 3600)
        sw = self._operator().place_authorization(gp_test_keys(), index, "p", initial, expires)
        if expired:
            assert sw == SW.INCORRECT_DATA
        elif self.states[index] in (ContainerState.AVAILABLE, ContainerState.AUTHORIZED):
            assert sw == SW.OK
            self.states[index] = ContainerState.AUTHORIZED
            self.initial[index] = initial
        else:
            assert sw == SW.CONDITIONS_NOT_SATISFIED

    @rule(index=st.integers(0, CONTAINERS - 1))
    def take_ownership(self, index: int) -> None:
        h = self._host()
        h.select_container(index)
        initial = self.initial.get(index, StaticKeys.generate(0x01))
        auth = h.authenticate(initial)
        if self.states[index] != ContainerState.AUTHORIZED:
            assert auth != SW.OK
            return
        assert auth == SW.OK
        new = StaticKeys.generate(0x31)
        assert h.put_key(initial, new).sw == SW.OK
        self.states[index] = ContainerState.OWNED
        self.owner_keys[index] = new
        del self.initial[index]

    @rule(index=st.integers(0, CONTAINERS - 1), lock=st.booleans())
    def set_status(self, index: int, lock: bool) -> None:
        sw = self._operator().aid_command(0xF0, 0x40, 0x80 if lock else 0x00, container_aid(index), tlv=False)
        before = self.states[index]
        if lock and before == ContainerState.OWNED:
            assert sw == SW.OK
            self.states[index] = ContainerState.LOCKED
        elif not lock and before == ContainerState.LOCKED:
            assert sw == SW.OK
            self.states[index] = ContainerState.OWNED
        else:
            assert sw == SW.CONDITIONS_NOT_SATISFIED

    @rule(index=st.integers(0, CONTAINERS - 1))
    def revoke(self, index: int) -> None:
        assert self._operator().aid_command(0xE4, 0x00, 0x00, container_aid(index)) == SW.OK
        self.states[index] = ContainerState.AVAILABLE
        self.initial.pop(index, None)
        self.owner_keys.pop(index, None)
        self.objects[index] = {}

    @rule(
        index=st.integers(0, CONTAINERS - 1),
        name=st.binary(min_size=1, max_size=8),
        value=st.binary(max_size=600),
        access=st.sampled_from(list(Access)),
    )
    def put_object(self, index: int, name: bytes, value: bytes, access: Access) -> None:
        if self.states[index] != ContainerState.OWNED:
            return
        sw = self._provider(index).put_object(name, value, access)
        assert sw in (SW.OK, SW.NOT_ENOUGH_MEMORY)
        if sw == SW.OK:
            self.objects[index][name] = value

    @rule(index=st.integers(0, CONTAINERS - 1), name=st.binary(min_size=1, max_size=8))
    def get_object(self, index: int, name: bytes) -> None:
        if self.states[index] != ContainerState.OWNED:
            return
        resp = self._provider(index).get_object(name)
        expected = self.objects[index].get(name)
        if expected is None:
            assert resp.sw == SW.REFERENCED_DATA_NOT_FOUND
        elif resp.sw == SW.OK:
            assert resp.data == expected
        else:
            assert resp.sw == SW.SECURITY_STATUS_NOT_SATISFIED  # HOLDER-only objects

    @rule()
    def reopen(self) -> None:
        self.device.close()
        self.hosts = []
        self.device = Device.open(self.dir / "device.db", self.vault, functions=[])

    # ------------------------------------------------------------------------ invariants

    @invariant()
    def states_match_and_store_is_sound(self) -> None:
        if not hasattr(self, "device"):
            return
        rows = {row.index: row.state for row in self.device.store.containers()}
        assert rows == self.states
        self.device.check()


TestDeviceMachine = DeviceMachine.TestCase
TestDeviceMachine.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
