"""The issuer security domain: identity and recognition data, content management under SCP03, retry counters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509

from tenantcard.crypto.identity import IdentityError, verify_device_auth
from tenantcard.crypto.scp03 import StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import DeviceSpec
from tenantcard.wire.apdu import CommandApdu
from tenantcard.wire.gp import ISD_AID, LifeCycle, container_aid
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import parse_status_entries
from tenantcard.wire.tlv import Tlv, find, parse_all
from tests.unit.device.hostkit import Clock, Host, authorize, own

Hosts = Callable[..., Host]


def get_data(h: Host, tag: int) -> bytes:
    resp = h.send(CommandApdu(0x80, 0xCA, tag >> 8, tag & 0xFF, le=256))
    assert resp.sw == SW.OK
    return resp.data


def test_select_isd_answers_fci(host: Hosts) -> None:
    h = host()
    resp = h.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD_AID, le=256))
    assert resp.sw == SW.OK
    assert find(resp.data, 0x84).value == ISD_AID  # type: ignore[union-attr]


def test_get_data_follows_gp_templates(host: Hosts, spec: DeviceSpec) -> None:
    h = host()
    h.select_isd()
    card_data = Tlv.parse(get_data(h, 0x66))
    assert card_data.tag == 0x66
    inner = card_data.children()[0]
    assert inner.tag == 0x73
    scp = find(inner.value, 0x64)
    assert scp is not None and scp.children()[0].value.endswith(bytes([0x03, 0x70]))
    key_info = Tlv.parse(get_data(h, 0xE0))
    assert key_info.tag == 0xE0
    assert [c.value for c in key_info.children()] == [bytes([i, 0x30, 0x88, 0x10]) for i in (1, 2, 3)]
    assert Tlv.parse(get_data(h, 0xCF)).value == spec.device_id
    assert get_data(h, 0x42) == Tlv(0x42, spec.serial.encode()).to_bytes()
    assert h.send(CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256)).sw == SW.REFERENCED_DATA_NOT_FOUND


def test_certificate_chain_and_internal_authenticate(host: Hosts, spec: DeviceSpec) -> None:
    h = host()
    store = Tlv.parse(get_data(h, 0xBF21))
    chain = [x509.load_der_x509_certificate(t.to_bytes()) for t in parse_all(store.value)]
    assert chain == spec.certificate_chain
    assert spec.root is not None
    challenge = bytes(range(32))
    resp = h.send(CommandApdu(0x00, 0x88, 0x00, 0x00, challenge, le=256))
    assert resp.sw == SW.OK
    verify_device_auth(chain, spec.root, spec.device_id, challenge, resp.data)
    with pytest.raises(IdentityError):
        verify_device_auth(chain, spec.root, spec.device_id, bytes(32), resp.data)
    with pytest.raises(IdentityError):
        verify_device_auth(chain, spec.root, bytes(10), challenge, resp.data)


@pytest.mark.parametrize("length", [0, 15, 65, 200])
def test_internal_authenticate_refuses_bad_challenge_lengths(host: Hosts, length: int) -> None:
    h = host()
    data = bytes(length)
    assert h.send(CommandApdu(0x00, 0x88, 0x00, 0x00, data, le=256)).sw == SW.WRONG_LENGTH
    assert h.send(CommandApdu(0x00, 0x88, 0x01, 0x00, bytes(16), le=256)).sw == SW.INCORRECT_P1P2


@pytest.mark.parametrize(
    "cmd",
    [
        CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256),
        CommandApdu(0x80, 0xE6, 0x0C, 0x00, bytes(10)),
        CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(10)),
        CommandApdu(0x80, 0xF0, 0x40, 0x80, container_aid(0)),
        CommandApdu(0x80, 0xE4, 0x00, 0x00, b"\x4f\x06" + container_aid(0)),
        CommandApdu(0x80, 0xD8, 0x30, 0x81, bytes(20)),
    ],
)
def test_content_management_needs_the_operator_channel(host: Hosts, cmd: CommandApdu) -> None:
    h = host()
    h.select_isd()
    assert h.send(cmd).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_get_status_lists_containers_not_content(host: Hosts, clock: Clock, operator_keys: StaticKeys) -> None:
    _, prov = own(host, 1, clock, provider="provider-b")
    assert prov.put_object(b"secret-object-name", b"secret-value") == SW.OK
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    resp = op.get_status()
    assert resp.sw == SW.OK
    entries = parse_status_entries(resp.data)
    assert [e.aid for e in entries] == [container_aid(i) for i in range(3)]
    assert [e.lifecycle for e in entries] == [LifeCycle.SELECTABLE, LifeCycle.PERSONALIZED, LifeCycle.SELECTABLE]
    assert entries[1].provider_id == "provider-b"
    assert entries[1].used is not None and entries[1].used > 0
    assert b"secret" not in resp.data
    isd = parse_status_entries(op.get_status(0x80).data)
    assert [e.aid for e in isd] == [ISD_AID]
    assert op.get_status(0x20).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert op.send(CommandApdu(0x80, 0xF2, 0x40, 0x00, b"\x4f\x00", le=256)).sw == SW.INCORRECT_P1P2


def test_install_creates_containers_with_quota(host: Hosts, operator_keys: StaticKeys, device: Device) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    resp = op.install(container_aid(7), quota=4096, reserved=1024)
    assert resp.sw == SW.OK and resp.data == container_aid(7)
    assert op.install(container_aid(7), quota=4096).sw == SW.ALREADY_EXISTS
    auto = op.install(container_aid(0)[:4], quota=2048)
    assert auto.sw == SW.OK and auto.data == container_aid(3)
    assert op.install(container_aid(8), quota=10, reserved=20).sw == SW.INCORRECT_DATA
    assert op.install(container_aid(9), quota=1 << 30, reserved=1 << 30).sw == SW.NOT_ENOUGH_MEMORY
    assert op.install(b"\xa0\x00\x00\x00\x01\x02", quota=100).sw == SW.INCORRECT_DATA
    assert op.send(CommandApdu(0x80, 0xE6, 0x0C, 0x00, b"\x05\x00")).sw == SW.INCORRECT_DATA
    assert op.send(CommandApdu(0x80, 0xE6, 0x02, 0x00, b"\x00")).sw == SW.INCORRECT_P1P2
    assert device.container_indexes() == [0, 1, 2, 3, 7]
    row = device.store.container(7)
    assert row is not None and (row.quota, row.reserved) == (4096, 1024)


def test_authorization_needs_perso_target_and_valid_data(host: Hosts, operator_keys: StaticKeys, clock: Clock) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    assert op.send(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xa1\x00")).sw == SW.CONDITIONS_NOT_SATISFIED
    initial = StaticKeys.generate(1)
    assert op.place_authorization(operator_keys, 9, "p", initial, int(clock()) + 60) == SW.REFERENCED_DATA_NOT_FOUND
    assert op.place_authorization(operator_keys, 0, "p", initial, int(clock()) - 1) == SW.INCORRECT_DATA
    # Key data encrypted under another DEK fails its KCVs.
    wrong = StaticKeys.generate(0x30)
    assert op.place_authorization(wrong, 0, "p", initial, int(clock()) + 60) == SW.INCORRECT_DATA
    assert op.send(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xa1\x03\x80\x01")).sw == SW.INCORRECT_DATA


def test_set_status_locks_and_unlocks(host: Hosts, clock: Clock, operator_keys: StaticKeys) -> None:
    _, prov = own(host, 0, clock)
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    aid = container_aid(0)
    assert op.aid_command(0xF0, 0x40, 0x80, aid, tlv=False) == SW.OK
    assert op.aid_command(0xF0, 0x40, 0x80, aid, tlv=False) == SW.CONDITIONS_NOT_SATISFIED
    assert prov.get_object(b"x").sw == SW.SELECTED_FILE_INVALIDATED
    assert op.aid_command(0xF0, 0x40, 0x00, aid, tlv=False) == SW.OK
    assert op.aid_command(0xF0, 0x40, 0x00, aid, tlv=False) == SW.CONDITIONS_NOT_SATISFIED
    assert op.aid_command(0xF0, 0x40, 0x80, container_aid(1), tlv=False) == SW.CONDITIONS_NOT_SATISFIED
    assert op.aid_command(0xF0, 0x40, 0x80, container_aid(9), tlv=False) == SW.REFERENCED_DATA_NOT_FOUND
    assert op.aid_command(0xF0, 0x80, 0x80, aid, tlv=False) == SW.INCORRECT_P1P2


def test_put_key_rotates_operator_keys(host: Hosts, operator_keys: StaticKeys) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    new = StaticKeys.generate(0x31, 32)
    resp = op.put_key(operator_keys, new)
    assert resp.sw == SW.OK
    assert resp.data == bytes([0x31]) + b"".join(new.kcvs())
    # The session that rotated keeps working; the old keys open nothing any more.
    assert op.get_status().sw == SW.OK
    other = host()
    other.select_isd()
    assert other.authenticate(operator_keys) == SW.REFERENCED_DATA_NOT_FOUND
    assert other.authenticate(new.with_kvn(0)) == SW.OK
    key_info = Tlv.parse(get_data(other, 0xE0))
    assert key_info.children()[0].value == bytes([1, 0x31, 0x88, 0x20])
    assert op.put_key(new, operator_keys, replace=0x55).sw == SW.REFERENCED_DATA_NOT_FOUND


def test_rotation_drops_sessions_opened_with_old_keys(host: Hosts, operator_keys: StaticKeys) -> None:
    a, b = host(), host()
    for h in (a, b):
        h.select_isd()
        assert h.authenticate(operator_keys) == SW.OK
    assert a.put_key(operator_keys, StaticKeys.generate(0x32)).sw == SW.OK
    assert b.get_status().sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_failed_authentications_block_the_key_set(host: Hosts, operator_keys: StaticKeys, clock: Clock) -> None:
    wrong = StaticKeys.generate(0x30)
    h = host()
    h.select_isd()
    for _ in range(10):
        assert h.authenticate(wrong) == SW.VERIFY_FAILED
    assert h.authenticate(operator_keys) == SW.AUTH_METHOD_BLOCKED
    assert h.authenticate(wrong) == SW.AUTH_METHOD_BLOCKED
    clock.now += 1.5  # still inside the first cool-down (2 s)
    assert h.authenticate(operator_keys) == SW.AUTH_METHOD_BLOCKED


def test_an_attacker_cannot_lock_the_operator_out_for_good(
    host: Hosts, operator_keys: StaticKeys, clock: Clock
) -> None:
    """Invariant 4: failing handshakes from anyone only delay the operator; the cool-down doubles per block
    (rate-limiting guesses) and is capped, and the operator gets in once it has passed."""
    wrong = StaticKeys.generate(0x30)
    h = host()
    h.select_isd()
    cooldowns = []
    for _ in range(4):
        for _ in range(10):
            assert h.authenticate(wrong) == SW.VERIFY_FAILED
        started = clock.now
        while h.authenticate(operator_keys) == SW.AUTH_METHOD_BLOCKED:
            clock.now += 0.5
        cooldowns.append(clock.now - started)
        # Back in: every container stays revocable.
        assert h.authenticate(operator_keys) == SW.OK
        for _ in range(10):  # a success starts the counters over, so the next round blocks after 10 again
            assert h.authenticate(wrong) == SW.VERIFY_FAILED
        assert h.authenticate(operator_keys) == SW.AUTH_METHOD_BLOCKED
        clock.now += 301
        assert h.authenticate(operator_keys) == SW.OK
    assert cooldowns[0] >= 2.0
    for _ in range(40):  # many blocks in a row: the cool-down grows but never past its cap
        for _ in range(10):
            h.authenticate(wrong)
        clock.now += 300.5
    assert h.authenticate(operator_keys) == SW.OK


def test_a_container_key_set_stays_blocked_until_revoked(host: Hosts, clock: Clock, operator_keys: StaticKeys) -> None:
    provider, _ = own(host, 0, clock)
    wrong = StaticKeys.generate(provider.kvn)
    h = host()
    assert h.select_container(0) == SW.OK
    for _ in range(10):
        assert h.authenticate(wrong) == SW.VERIFY_FAILED
    clock.now += 10_000
    assert h.authenticate(provider) == SW.AUTH_METHOD_BLOCKED
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(0)) == SW.OK


def test_success_resets_the_retry_counter(host: Hosts, operator_keys: StaticKeys) -> None:
    wrong = StaticKeys.generate(0x30)
    h = host()
    h.select_isd()
    for _ in range(9):
        assert h.authenticate(wrong) == SW.VERIFY_FAILED
    assert h.authenticate(operator_keys) == SW.OK
    for _ in range(9):
        assert h.authenticate(wrong) == SW.VERIFY_FAILED
    assert h.authenticate(operator_keys) == SW.OK


def test_external_authenticate_without_initialize_update(host: Hosts) -> None:
    h = host()
    h.select_isd()
    assert h.send(CommandApdu(0x84, 0x82, 0x33, 0x00, bytes(16))).sw == SW.CONDITIONS_NOT_SATISFIED


def test_revoke_any_state(host: Hosts, clock: Clock, operator_keys: StaticKeys, device: Device) -> None:
    own(host, 0, clock)
    authorize(host, 1, StaticKeys.generate(1), int(clock()) + 60)
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    for i in (0, 1, 2):
        assert op.aid_command(0xE4, 0x00, 0x00, container_aid(i)) == SW.OK
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(5)) == SW.REFERENCED_DATA_NOT_FOUND
    assert op.aid_command(0xE4, 0x00, 0x00, container_aid(0), tlv=False) == SW.INCORRECT_DATA
    states = {e.lifecycle for e in parse_status_entries(op.get_status().data)}
    assert states == {LifeCycle.SELECTABLE}
    device.check()


def test_after_rotation_the_session_uses_the_new_dek(host: Hosts, operator_keys: StaticKeys, clock: Clock) -> None:
    op = host()
    op.select_isd()
    assert op.authenticate(operator_keys) == SW.OK
    new = StaticKeys.generate(0x31)
    assert op.put_key(operator_keys, new).sw == SW.OK
    initial = StaticKeys.generate(1)
    assert op.place_authorization(operator_keys, 0, "p", initial, int(clock()) + 60) == SW.INCORRECT_DATA
    assert op.place_authorization(new, 0, "p", initial, int(clock()) + 60) == SW.OK
