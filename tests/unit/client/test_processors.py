"""Client processors against a small card built in this file on the real card-side SCP03 code.

The card (``MiniCard``) does what a card OS does around secure messaging: ISO command chaining reassembly,
61xx/GET RESPONSE for long answers, 6Cxx for a wrong Le, INITIALIZE UPDATE / EXTERNAL AUTHENTICATE, and
unwrap/wrap of every command at the session's level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.client.errors import ClientError, ResponseError, StatusError
from tenantcard.client.processors import (
    CommandChainingProcessor,
    ResponseChainingProcessor,
    SecureMessagingProcessor,
    TransmitProcessor,
    base_chain,
    check,
    open_scp03,
)
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03 import Scp03Card, StaticKeys
from tenantcard.transport.base import LocalConnection
from tenantcard.wire.apdu import CLA_CHAINING, CLA_SECURE_MESSAGING, CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import ISD_AID
from tenantcard.wire.sw import SW, ApduError

INS_ECHO = 0xE0  # answers the command data
INS_PATTERN = 0xE2  # answers P1P2 bytes of a counting pattern
INS_FIXED = 0xE6  # answers 4 bytes, only when Le is exactly 4 (else 6C04)
INS_FAIL = 0xE8  # answers 6A82
KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x30)


@dataclass
class MiniCard:
    """Card side of one connection; records every APDU it receives."""

    keys: StaticKeys = KEYS
    s16: bool = False
    received: list[bytes] = field(default_factory=list)
    counter: int = 0
    scp: Scp03Card = field(init=False)
    _chain: list[CommandApdu] = field(default_factory=list)
    _pending: bytes = b""
    _pending_sw: SW = SW.OK

    def __post_init__(self) -> None:
        self.scp = Scp03Card(key_diversification_data=bytes(10), sd_aid=ISD_AID, s16=self.s16)

    def power_on(self) -> bytes:
        return bytes.fromhex("3B80800101")

    def reset(self) -> bytes:
        self.scp.reset()
        return self.power_on()

    def power_off(self) -> None:
        self.scp.reset()

    def execute(self, apdu: bytes) -> bytes:
        self.received.append(apdu)
        try:
            cmd = CommandApdu.parse(apdu)
        except WireError:
            return SW.WRONG_LENGTH.to_bytes()
        if cmd.ins == 0xC0 and cmd.cla & 0xFC == 0:
            return self._get_response(cmd).to_bytes()
        self._pending = b""
        if cmd.is_chained:
            self._chain.append(cmd)
            return SW.OK.to_bytes()
        if self._chain:
            links = [*self._chain, cmd]
            self._chain = []
            if any((c.ins, c.p1, c.p2) != (cmd.ins, cmd.p1, cmd.p2) for c in links):
                return SW.LAST_COMMAND_EXPECTED.to_bytes()
            data = b"".join(c.data for c in links)
            cmd = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data, cmd.le, extended=len(data) > 255)
        resp = self._process(cmd)
        return self._send(resp, cmd).to_bytes()

    def _process(self, cmd: CommandApdu) -> ResponseApdu:
        try:
            if cmd.ins == 0x50:
                self.counter += 1  # persisted before the answer leaves, as Scp03Card documents
                return ResponseApdu(self.scp.initialize_update(cmd, self.keys, self.counter), SW.OK)
            if cmd.ins == 0x82:
                self.scp.external_authenticate(cmd)
                return ResponseApdu(b"", SW.OK)
            if self.scp.authenticated:
                cmd = self.scp.unwrap(cmd)
            elif cmd.cla & CLA_SECURE_MESSAGING:
                return ResponseApdu(b"", SW.SECURITY_STATUS_NOT_SATISFIED)
            return self.scp.wrap(self._dispatch(cmd))
        except SecureChannelError:
            return ResponseApdu(b"", SW.SECURITY_STATUS_NOT_SATISFIED)
        except ApduError as err:
            return ResponseApdu(b"", err.sw)

    def _dispatch(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.ins == INS_ECHO:
            return ResponseApdu(cmd.data, SW.OK)
        if cmd.ins == INS_PATTERN:
            n = cmd.p1 << 8 | cmd.p2
            return ResponseApdu(bytes(i & 0xFF for i in range(n)), SW.OK)
        if cmd.ins == INS_FIXED:
            if cmd.le != 4:
                return ResponseApdu(b"", SW(0x6C04))
            return ResponseApdu(b"\x01\x02\x03\x04", SW.OK)
        if cmd.ins == INS_FAIL:
            return ResponseApdu(b"", SW.NOT_FOUND)
        return ResponseApdu(b"", SW.INS_NOT_SUPPORTED)

    def _send(self, resp: ResponseApdu, cmd: CommandApdu) -> ResponseApdu:
        limit = cmd.le if cmd.extended and cmd.le else 256
        if len(resp.data) <= limit:
            return resp
        self._pending, self._pending_sw = resp.data[limit:], resp.sw
        return ResponseApdu(resp.data[:limit], SW.bytes_remaining(len(self._pending)))

    def _get_response(self, cmd: CommandApdu) -> ResponseApdu:
        if not self._pending:
            return ResponseApdu(b"", SW.CONDITIONS_NOT_SATISFIED)
        n = cmd.le or 256
        chunk, self._pending = self._pending[:n], self._pending[n:]
        if self._pending:
            return ResponseApdu(chunk, SW.bytes_remaining(len(self._pending)))
        return ResponseApdu(chunk, self._pending_sw)


class Tamper:
    """A connection that flips one bit of the n-th response (counting from 0)."""

    def __init__(self, inner: LocalConnection, at: int) -> None:
        self.inner, self.at, self.count = inner, at, 0

    def transmit(self, apdu: bytes) -> bytes:
        answer = bytearray(self.inner.transmit(apdu))
        if self.count == self.at and len(answer) > 2:
            answer[0] ^= 0x01
        self.count += 1
        return bytes(answer)

    def close(self) -> None:
        self.inner.close()


def connect(card: MiniCard) -> LocalConnection:
    return LocalConnection(card)


# -- plain processors ------------------------------------------------------------------------------------------


def test_transmit_short_and_extended() -> None:
    card = MiniCard()
    ext = TransmitProcessor(connect(card))
    resp = ext.send(CommandApdu(0x80, INS_ECHO, 0, 0, bytes(300), le=65536))
    assert resp == ResponseApdu(bytes(300), SW.OK)
    assert len(card.received) == 1 and card.received[0][4] == 0  # one extended APDU

    short = TransmitProcessor(connect(card), extended=False)
    with pytest.raises(WireError):
        short.send(CommandApdu(0x80, INS_ECHO, 0, 0, bytes(300)))
    assert short.send(CommandApdu(0x80, INS_PATTERN, 0x01, 0x00, le=1000)).sw == SW.OK  # Le sent as 256


def test_get_response_gathers_long_answers() -> None:
    card = MiniCard()
    chain = ResponseChainingProcessor(TransmitProcessor(connect(card), extended=False))
    resp = chain.send(CommandApdu(0x80, INS_PATTERN, 0x03, 0xE8, le=256))
    assert resp.sw == SW.OK
    assert resp.data == bytes(i & 0xFF for i in range(1000))
    assert [a[1] for a in card.received] == [INS_PATTERN, 0xC0, 0xC0, 0xC0]


def test_without_response_chaining_61xx_shows() -> None:
    card = MiniCard()
    resp = TransmitProcessor(connect(card), extended=False).send(CommandApdu(0x80, INS_PATTERN, 0x01, 0x10, le=256))
    assert resp.sw == 0x6110 and len(resp.data) == 256


def test_response_chaining_bound() -> None:
    card = MiniCard()
    chain = ResponseChainingProcessor(TransmitProcessor(connect(card), extended=False), max_response=600)
    with pytest.raises(ResponseError):
        chain.send(CommandApdu(0x80, INS_PATTERN, 0x03, 0xE8, le=256))


def test_wrong_le_is_resent() -> None:
    card = MiniCard()
    chain = ResponseChainingProcessor(TransmitProcessor(connect(card)))
    assert chain.send(CommandApdu(0x80, INS_FIXED, 0, 0, le=256)) == ResponseApdu(b"\x01\x02\x03\x04", SW.OK)
    assert len(card.received) == 2 and card.received[1][-1] == 4


@pytest.mark.parametrize("size", [0, 1, 255, 256, 700, 1000])
def test_command_chaining(size: int) -> None:
    card = MiniCard()
    chain = base_chain(connect(card), extended=False)
    data = bytes(i * 7 & 0xFF for i in range(size))
    assert chain.send(CommandApdu(0x80, INS_ECHO, 0, 0, data, le=256)) == ResponseApdu(data, SW.OK)
    assert all(len(a) <= 5 + 255 + 1 for a in card.received)
    links = [a for a in card.received if a[1] == INS_ECHO]
    assert len(links) == max(1, -(-size // 255))
    assert all(a[0] & CLA_CHAINING for a in links[:-1]) and not links[-1][0] & CLA_CHAINING


def test_command_chaining_stops_at_the_first_error() -> None:
    sent: list[CommandApdu] = []

    class Refuser:
        def send(self, cmd: CommandApdu) -> ResponseApdu:
            sent.append(cmd)
            return ResponseApdu(b"", SW.CHAINING_NOT_SUPPORTED)

    resp = CommandChainingProcessor(Refuser(), max_data=100).send(CommandApdu(0x80, INS_ECHO, 0, 0, bytes(350)))
    assert resp.sw == SW.CHAINING_NOT_SUPPORTED and len(sent) == 1
    with pytest.raises(ClientError):
        CommandChainingProcessor(Refuser(), max_data=256)


def test_check_and_status_error() -> None:
    assert check(ResponseApdu(b"ok", SW.OK)) == b"ok"
    with pytest.raises(StatusError) as err:
        check(ResponseApdu(b"secret", SW.NOT_FOUND), "GET DATA")
    assert err.value.sw == SW.NOT_FOUND
    assert str(err.value) == "GET DATA: card answered 6A82 (NOT_FOUND)"


def test_truncated_response_is_a_response_error() -> None:
    class Broken:
        def transmit(self, apdu: bytes) -> bytes:
            return b"\x90"

        def close(self) -> None:
            return None

    with pytest.raises(ResponseError):
        TransmitProcessor(Broken()).send(CommandApdu(0, INS_ECHO, 0, 0))


# -- secure messaging ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "short"])
@pytest.mark.parametrize("s16", [False, True], ids=["S8", "S16"])
@pytest.mark.parametrize("level", [0x01, 0x03, 0x11, 0x13, 0x33])
def test_secure_messaging_over_chaining(level: int, s16: bool, extended: bool) -> None:
    card = MiniCard(s16=s16)
    base = base_chain(connect(card), extended=extended)
    sm = open_scp03(base, KEYS, level, s16=s16, extended=extended)
    assert sm.open and sm.security_level == level
    data = bytes(i * 3 & 0xFF for i in range(600))
    for _ in range(2):
        assert sm.send(CommandApdu(0x80, INS_ECHO, 0, 0, data, le=65536)) == ResponseApdu(data, SW.OK)
    big = sm.send(CommandApdu(0x80, INS_PATTERN, 0x04, 0x00, le=65536))
    assert big == ResponseApdu(bytes(i & 0xFF for i in range(1024)), SW.OK)
    assert sm.send(CommandApdu(0x80, INS_FAIL, 0, 0)) == ResponseApdu(b"", SW.NOT_FOUND)
    wrapped = [a for a in card.received if a[1] == INS_ECHO]
    assert all(a[0] & CLA_SECURE_MESSAGING for a in wrapped)
    if level & 0x02:
        assert all(data[:64] not in a for a in wrapped)
    if not extended:
        assert all(len(a) <= 261 for a in card.received)


@given(data=st.binary(max_size=800), level=st.sampled_from([0x01, 0x03, 0x11, 0x13, 0x33]), extended=st.booleans())
def test_secure_messaging_round_trip(data: bytes, level: int, extended: bool) -> None:
    card = MiniCard()
    sm = open_scp03(base_chain(connect(card), extended=extended), KEYS, level, extended=extended)
    assert sm.send(CommandApdu(0x80, INS_ECHO, 0, 0, data, le=65536)) == ResponseApdu(data, SW.OK)


def test_tampered_response_closes_the_channel() -> None:
    card = MiniCard()
    conn = Tamper(connect(card), at=2)  # 0: INITIALIZE UPDATE, 1: EXTERNAL AUTHENTICATE, 2: first command
    sm = open_scp03(base_chain(conn), KEYS, 0x33)
    with pytest.raises(SecureChannelError):
        sm.send(CommandApdu(0x80, INS_ECHO, 0, 0, b"hello"))
    assert not sm.open
    with pytest.raises(SecureChannelError):
        sm.send(CommandApdu(0x80, INS_ECHO, 0, 0, b"hello"))


def test_card_drops_the_session_on_a_bad_mac() -> None:
    card = MiniCard()
    sm = open_scp03(base_chain(connect(card)), KEYS, 0x01)
    assert sm.host is not None
    sm.host.wrap(CommandApdu(0x80, INS_ECHO, 0, 0))  # the host's chain moves on, the card's does not
    assert sm.send(CommandApdu(0x80, INS_ECHO, 0, 0, b"x")).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert not card.scp.authenticated


def test_wrong_keys_fail_the_card_cryptogram() -> None:
    card = MiniCard()
    other = StaticKeys(bytes(16), bytes(16), bytes(16), 0x30)
    with pytest.raises(SecureChannelError):
        open_scp03(base_chain(connect(card)), other, 0x33)


def test_unknown_key_version_is_a_status_error() -> None:
    card = MiniCard()
    with pytest.raises(StatusError) as err:
        open_scp03(base_chain(connect(card)), KEYS.with_kvn(0x31), 0x33)
    assert err.value.sw == SW.INCORRECT_P1P2


def test_secure_messaging_processor_needs_an_open_session() -> None:
    from tenantcard.crypto.scp03 import Scp03Host

    with pytest.raises(SecureChannelError):
        SecureMessagingProcessor(base_chain(connect(MiniCard())), Scp03Host(KEYS))
    sm = open_scp03(base_chain(connect(MiniCard())), KEYS, 0x33)
    sm.close()
    with pytest.raises(SecureChannelError):
        sm.send(CommandApdu(0x80, INS_ECHO, 0, 0))


def test_sequence_counter_moves_per_session() -> None:
    card = MiniCard()
    first = open_scp03(base_chain(connect(card)), KEYS, 0x01)
    second = open_scp03(base_chain(connect(card)), KEYS, 0x01)
    assert first.host is not None and second.host is not None
    assert (first.host.sequence_counter, second.host.sequence_counter) == (1, 2)
    assert first.host.card_challenge != second.host.card_challenge
