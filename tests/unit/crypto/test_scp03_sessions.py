"""SCP03 host <-> card: handshakes, every failure mode raising the one opaque error, and round trips."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.crypto.errors import CryptoError, SecureChannelError
from tenantcard.crypto.scp03 import Scp03Card, Scp03Host, StaticKeys
from tenantcard.crypto.scp03 import channel as channel_module
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import ISD_AID
from tenantcard.wire.sw import SW, ApduError

LEVELS = (0x00, 0x01, 0x03, 0x11, 0x13, 0x33)
DIV = bytes(range(10))


def counting_random(seed: int = 0) -> Callable[[int], bytes]:
    """Deterministic 'randomness' for exact tests."""
    counter = itertools.count(seed)
    return lambda n: bytes((next(counter) * 37 + i) & 0xFF for i in range(n))


def keys(length: int = 16, kvn: int = 0x30, seed: int = 1) -> StaticKeys:
    return StaticKeys.generate(kvn, length, random=counting_random(seed))


def wire(cmd: CommandApdu) -> CommandApdu:
    """What the card sees: the command after serialization."""
    return CommandApdu.parse(cmd.to_bytes())


def open_session(
    level: int, *, length: int = 16, s16: bool = False, pseudo_random: bool = True, counter: int = 1
) -> tuple[Scp03Host, Scp03Card]:
    k = keys(length)
    host = Scp03Host(k, s16=s16, random=counting_random(100))
    card = Scp03Card(
        key_diversification_data=DIV, sd_aid=ISD_AID, s16=s16, pseudo_random=pseudo_random, random=counting_random(200)
    )
    data = card.initialize_update(wire(host.initialize_update()), k, counter)
    card.external_authenticate(wire(host.authenticate(ResponseApdu(data, SW.OK), level)))
    assert card.authenticated and host.authenticated
    return host, card


SAMPLE = CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\x5f\x01\x02\x03", le=256)


# -- handshake ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s16", [False, True], ids=["S8", "S16"])
@pytest.mark.parametrize("pseudo_random", [True, False], ids=["pseudo-random", "random"])
def test_handshake_reports_mode(s16: bool, pseudo_random: bool) -> None:
    host, card = open_session(0x33, s16=s16, pseudo_random=pseudo_random, counter=7)
    assert host.scp_i == card.i_parameter == (0x60 | (0x10 if pseudo_random else 0) | (0x01 if s16 else 0))
    assert host.sequence_counter == (7 if pseudo_random else None)
    assert host.key_diversification_data == DIV
    assert len(host.card_challenge) == (16 if s16 else 8)
    assert card.security_level == host.security_level == 0x33
    assert card.kvn == host.kvn == 0x30


def test_pseudo_random_challenge_follows_counter() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    cmd = Scp03Host(k, host_challenge=bytes(8)).initialize_update()
    first = card.initialize_update(cmd, k, 1)
    again = card.initialize_update(cmd, k, 1)
    second = card.initialize_update(cmd, k, 2)
    assert first == again  # same counter, same challenge: why the caller must never reuse a counter value
    assert first[13:21] != second[13:21]
    assert second[-3:] == b"\x00\x00\x02"


def test_exhausted_or_zero_counter_is_refused() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    cmd = Scp03Host(k).initialize_update()
    for value in (0, 0x1000000):
        with pytest.raises(ApduError) as err:
            card.initialize_update(cmd, k, value)
        assert err.value.sw == SW.REFERENCE_DATA_NOT_USABLE


@pytest.mark.parametrize(
    ("mutate", "sw"),
    [
        (lambda c: CommandApdu(0x80, c.ins, 0x31, c.p2, c.data, c.le), SW.INCORRECT_P1P2),
        (lambda c: CommandApdu(0x80, c.ins, c.p1, 0x01, c.data, c.le), SW.INCORRECT_P1P2),
        (lambda c: CommandApdu(0x80, c.ins, c.p1, c.p2, c.data[:7], c.le), SW.WRONG_LENGTH),
        (lambda c: CommandApdu(0x84, c.ins, c.p1, c.p2, c.data, c.le), SW.CLA_NOT_SUPPORTED),
    ],
    ids=["other-kvn", "p2", "short-challenge", "cla"],
)
def test_malformed_initialize_update_gets_status_word(mutate: Callable[[CommandApdu], CommandApdu], sw: SW) -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    with pytest.raises(ApduError) as err:
        card.initialize_update(mutate(Scp03Host(k).initialize_update()), k, 1)
    assert err.value.sw == sw


@pytest.mark.parametrize(("div", "aid"), [(bytes(9), ISD_AID), (bytes(11), ISD_AID), (DIV, bytes(4)), (DIV, bytes(17))])
def test_card_parameters_are_checked(div: bytes, aid: bytes) -> None:
    with pytest.raises(CryptoError):
        Scp03Card(key_diversification_data=div, sd_aid=aid)


def test_injected_challenge_must_fit_the_mode() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID, s16=True)
    with pytest.raises(CryptoError):
        card.initialize_update(Scp03Host(k, s16=True).initialize_update(), k, 1, card_challenge=bytes(8))


def test_host_challenge_must_fit_the_mode() -> None:
    with pytest.raises(CryptoError):
        Scp03Host(keys(), s16=True, host_challenge=bytes(8))
    with pytest.raises(CryptoError):
        Scp03Host(keys()).wrap(SAMPLE)
    with pytest.raises(CryptoError):
        Scp03Host(keys()).unwrap(ResponseApdu(b"", SW.OK))


def test_host_checks_the_initialize_update_response_shape() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    good = card.initialize_update(Scp03Host(k, host_challenge=bytes(8)).initialize_update(), k, 1)
    bad_answers = [
        ResponseApdu(good, SW.NOT_FOUND),  # refused
        ResponseApdu(good[:-1], SW.OK),  # truncated
        ResponseApdu(good[:11] + b"\x02" + good[12:], SW.OK),  # SCP02
        ResponseApdu(good[:10] + b"\x31" + good[11:], SW.OK),  # other KVN
        ResponseApdu(good[:12] + b"\x71" + good[13:], SW.OK),  # S16 announced to an S8 host
        ResponseApdu(good[:12] + b"\x60" + good[13:], SW.OK),  # random challenge, yet a counter follows
    ]
    for answer in bad_answers:
        with pytest.raises(SecureChannelError):
            Scp03Host(k, host_challenge=bytes(8)).authenticate(answer, 0x33)
    no_rmac = ResponseApdu(good[:12] + b"\x10" + good[13:], SW.OK)
    with pytest.raises(CryptoError) as err:  # a usage error, not a channel failure
        Scp03Host(k, host_challenge=bytes(8)).authenticate(no_rmac, 0x33)
    assert type(err.value) is CryptoError
    host = Scp03Host(k, host_challenge=bytes(8))
    host.authenticate(ResponseApdu(good, SW.OK), 0x01)
    with pytest.raises(SecureChannelError):  # one handshake per host object
        host.authenticate(ResponseApdu(good, SW.OK), 0x01)


def test_initialize_update_with_kvn_zero_takes_the_cards_choice() -> None:
    k = keys(kvn=0x31)
    host = Scp03Host(k.with_kvn(0))
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    data = card.initialize_update(host.initialize_update(), k, 1)
    card.external_authenticate(host.authenticate(ResponseApdu(data, SW.OK), 0x01))
    assert host.kvn == 0x31


# -- every failure is the same SecureChannelError -------------------------------------------------------------


def test_wrong_key_on_the_host_fails_the_card_cryptogram() -> None:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(keys(seed=99))
    data = card.initialize_update(host.initialize_update(), keys(), 1)
    with pytest.raises(SecureChannelError):
        host.authenticate(ResponseApdu(data, SW.OK), 0x33)
    assert not host.authenticated


def test_wrong_key_on_the_card_fails_external_authenticate() -> None:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    # A host that believes the card cryptogram (e.g. replayed response) but holds other keys.
    liar = Scp03Host(keys(seed=99), host_challenge=bytes(8))
    honest = Scp03Host(keys(), host_challenge=bytes(8))
    data = card.initialize_update(honest.initialize_update(), keys(), 1)
    fake = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    fake_data = fake.initialize_update(liar.initialize_update(), keys(seed=99), 1)
    # Splice: the card's real challenge is not what the liar derived from, so its MAC/cryptogram cannot match.
    ea = liar.authenticate(ResponseApdu(fake_data, SW.OK), 0x33)
    assert data != fake_data
    with pytest.raises(SecureChannelError):
        card.external_authenticate(ea)
    assert not card.authenticated


def test_flipped_cryptogram_bit_in_initialize_update_response() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(k)
    data = bytearray(card.initialize_update(host.initialize_update(), k, 1))
    data[21] ^= 0x01
    with pytest.raises(SecureChannelError):
        host.authenticate(ResponseApdu(bytes(data), SW.OK), 0x01)


@pytest.mark.parametrize("position", [-1, -8, 0])
def test_flipped_bit_in_external_authenticate(position: int) -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(k)
    data = card.initialize_update(host.initialize_update(), k, 1)
    ea = host.authenticate(ResponseApdu(data, SW.OK), 0x33)
    body = bytearray(ea.data)
    body[position] ^= 0x80
    with pytest.raises(SecureChannelError):
        card.external_authenticate(CommandApdu(ea.cla, ea.ins, ea.p1, ea.p2, bytes(body)))
    assert not card.authenticated


@pytest.mark.parametrize("level", [level for level in LEVELS if level])
def test_flipped_mac_bit_in_command(level: int) -> None:
    host, card = open_session(level)
    cmd = host.wrap(SAMPLE)
    data = bytearray(cmd.data)
    data[-1] ^= 0x01
    with pytest.raises(SecureChannelError):
        card.unwrap(wire(CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, bytes(data), cmd.le)))
    assert not card.authenticated
    with pytest.raises(SecureChannelError):  # the session is gone: even a good command fails now
        card.unwrap(wire(host.wrap(SAMPLE)))


@pytest.mark.parametrize("field", ["cla", "ins", "p1", "p2"])
def test_header_is_covered_by_the_mac(field: str) -> None:
    host, card = open_session(0x01)
    cmd = host.wrap(SAMPLE)
    values = {"cla": cmd.cla, "ins": cmd.ins, "p1": cmd.p1, "p2": cmd.p2}
    values[field] ^= 0x01 if field != "cla" else 0x40
    with pytest.raises(SecureChannelError):
        card.unwrap(CommandApdu(values["cla"], values["ins"], values["p1"], values["p2"], cmd.data, cmd.le))


@pytest.mark.parametrize("level", [0x11, 0x13, 0x33])
def test_flipped_bit_in_response(level: int) -> None:
    host, card = open_session(level)
    card.unwrap(wire(host.wrap(SAMPLE)))
    resp = card.wrap(ResponseApdu(b"payload", SW.OK))
    for i in range(len(resp.data)):
        data = bytearray(resp.data)
        data[i] ^= 0x04
        probe, probe_card = open_session(level)
        probe_card.unwrap(wire(probe.wrap(SAMPLE)))
        with pytest.raises(SecureChannelError):
            probe.unwrap(ResponseApdu(bytes(data), resp.sw))
    with pytest.raises(SecureChannelError):  # the status word is MACed too
        host.unwrap(ResponseApdu(resp.data, SW(0x6310)))


def test_bad_padding_in_command(monkeypatch: pytest.MonkeyPatch) -> None:
    host, card = open_session(0x03)
    # A host that forgets ISO 9797-1 method 2 padding on a whole block: correctly MACed, wrongly padded.
    monkeypatch.setattr(channel_module, "pad", lambda data: data)
    cmd = host.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(16)))
    monkeypatch.undo()
    with pytest.raises(SecureChannelError):
        card.unwrap(wire(cmd))
    assert not card.authenticated


def test_bad_padding_in_response(monkeypatch: pytest.MonkeyPatch) -> None:
    host, card = open_session(0x33)
    card.unwrap(wire(host.wrap(SAMPLE)))
    monkeypatch.setattr(channel_module, "pad", lambda data: data)
    resp = card.wrap(ResponseApdu(bytes(32), SW.OK))
    monkeypatch.undo()
    with pytest.raises(SecureChannelError):
        host.unwrap(resp)


def test_encrypted_data_not_whole_blocks() -> None:
    host, card = open_session(0x03)
    cmd = host.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, b"abc"))
    truncated = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data[1:])
    with pytest.raises(SecureChannelError):
        card.unwrap(truncated)


def test_replayed_command() -> None:
    host, card = open_session(0x01)
    first = wire(host.wrap(SAMPLE))
    card.unwrap(first)
    with pytest.raises(SecureChannelError):
        card.unwrap(first)
    assert not card.authenticated


def test_dropped_command_breaks_the_chain() -> None:
    host, card = open_session(0x33)
    host.wrap(SAMPLE)  # lost on the way
    with pytest.raises(SecureChannelError):
        card.unwrap(wire(host.wrap(SAMPLE)))


def test_replayed_session_handshake() -> None:
    k = keys()
    host = Scp03Host(k, host_challenge=bytes(8))
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    data = card.initialize_update(host.initialize_update(), k, 1)
    ea = host.authenticate(ResponseApdu(data, SW.OK), 0x33)
    card.external_authenticate(ea)
    # Next session: the counter moved on, so the recorded EXTERNAL AUTHENTICATE no longer fits.
    card.initialize_update(Scp03Host(k, host_challenge=bytes(8)).initialize_update(), k, 2)
    with pytest.raises(SecureChannelError):
        card.external_authenticate(ea)


@pytest.mark.parametrize("level", [0x02, 0x10, 0x31, 0x23, 0xFF])
def test_invalid_level_in_external_authenticate(level: int) -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(k)
    card.initialize_update(host.initialize_update(), k, 1)
    cmd = CommandApdu(0x84, 0x82, level, 0x00, bytes(16))
    with pytest.raises(SecureChannelError):
        card.external_authenticate(cmd)


def test_host_refuses_an_invalid_level() -> None:
    k = keys()
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    host = Scp03Host(k)
    data = card.initialize_update(host.initialize_update(), k, 1)
    with pytest.raises(CryptoError):
        host.authenticate(ResponseApdu(data, SW.OK), 0x31)


def test_command_without_secure_messaging_at_level_01() -> None:
    _, card = open_session(0x01)
    with pytest.raises(SecureChannelError):
        card.unwrap(SAMPLE)
    assert not card.authenticated


def test_command_macced_but_not_encrypted_at_level_03() -> None:
    host, card = open_session(0x03)
    lower, _ = open_session(0x01)  # same keys, same challenges: a level-01 host of the very same session
    cmd = lower.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(16)))
    with pytest.raises(SecureChannelError):
        card.unwrap(wire(cmd))
    del host


def test_secure_messaging_at_level_00_is_refused() -> None:
    host, card = open_session(0x00)
    assert host.wrap(SAMPLE) == SAMPLE
    assert card.unwrap(SAMPLE) == SAMPLE
    with pytest.raises(SecureChannelError):
        card.unwrap(CommandApdu(0x84, 0xE2, 0x90, 0x00, bytes(8)))


def test_external_authenticate_without_initialize_update() -> None:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    with pytest.raises(SecureChannelError):
        card.external_authenticate(CommandApdu(0x84, 0x82, 0x33, 0x00, bytes(16)))


def test_second_external_authenticate_is_refused() -> None:
    k = keys()
    host = Scp03Host(k)
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    data = card.initialize_update(host.initialize_update(), k, 1)
    ea = host.authenticate(ResponseApdu(data, SW.OK), 0x33)
    card.external_authenticate(ea)
    with pytest.raises(SecureChannelError):
        card.external_authenticate(ea)
    assert not card.authenticated


def test_unwrap_without_session() -> None:
    card = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    with pytest.raises(SecureChannelError):
        card.unwrap(SAMPLE)
    with pytest.raises(SecureChannelError):
        _ = card.dek


def test_failures_are_indistinguishable() -> None:
    messages = set()
    for corrupt in range(3):
        host, card = open_session(0x33)
        cmd = host.wrap(CommandApdu(0x80, 0xE2, 0x90, 0x00, bytes(20)))
        data = bytearray(cmd.data)
        data[[0, -1, 17][corrupt]] ^= 1
        with pytest.raises(SecureChannelError) as err:
            card.unwrap(CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, bytes(data)))
        messages.add(str(err.value))
    assert len(messages) == 1


def test_error_status_words_go_out_bare() -> None:
    host, card = open_session(0x33)
    card.unwrap(wire(host.wrap(SAMPLE)))
    resp = card.wrap(ResponseApdu(b"ignored", SW.NOT_FOUND))
    assert resp == ResponseApdu(b"", SW.NOT_FOUND)  # Amd D §6.2.5: no R-MAC, no data on an error
    assert host.unwrap(resp) == resp
    card.unwrap(wire(host.wrap(SAMPLE)))  # the session goes on
    warning = card.wrap(ResponseApdu(b"", SW(0x6310)))
    assert len(warning.data) == 8  # warnings 62xx/63xx are MACed
    assert host.unwrap(warning) == ResponseApdu(b"", SW(0x6310))


def test_error_status_word_with_data_is_rejected_by_the_host() -> None:
    host, card = open_session(0x11)
    card.unwrap(wire(host.wrap(SAMPLE)))
    with pytest.raises(SecureChannelError):
        host.unwrap(ResponseApdu(bytes(8), SW.NOT_FOUND))


def test_reprs_carry_no_key_bytes() -> None:
    k = StaticKeys(b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32, 0x30)
    host, card = open_session(0x33, length=32)
    for text in (repr(k), str(k), repr(host), repr(card)):
        for key in (k.enc, k.mac, k.dek):
            assert key.hex() not in text.lower()
            assert repr(key) not in text
    assert "aes256" in repr(k)


# -- round trips ----------------------------------------------------------------------------------------------

commands = st.builds(
    CommandApdu,
    cla=st.sampled_from([0x00, 0x80, 0x81]),
    ins=st.integers(0, 255).filter(lambda i: i not in (0x50, 0x82)),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=300),
    le=st.none() | st.integers(1, 65536),
)
responses = st.builds(
    ResponseApdu,
    data=st.binary(max_size=300),
    sw=st.sampled_from([SW.OK, SW(0x6310), SW(0x6282), SW.NOT_FOUND, SW.SECURITY_STATUS_NOT_SATISFIED]),
)


@given(
    level=st.sampled_from(LEVELS),
    s16=st.booleans(),
    length=st.sampled_from([16, 24, 32]),
    exchanges=st.lists(st.tuples(commands, responses), min_size=1, max_size=4),
)
def test_round_trip(level: int, s16: bool, length: int, exchanges: list[tuple[CommandApdu, ResponseApdu]]) -> None:
    host, card = open_session(level, s16=s16, length=length)
    for plain_cmd, plain_resp in exchanges:
        sent = host.wrap(plain_cmd)
        received = card.unwrap(wire(sent))
        assert received == plain_cmd
        if level:
            assert sent.cla & 0x04
        mac_len = 16 if s16 else 8
        if level & 0x02 and plain_cmd.data:
            assert len(sent.data) == 16 * (len(plain_cmd.data) // 16 + 1) + mac_len
        elif level:
            assert sent.data == plain_cmd.data + sent.data[len(plain_cmd.data) :]
            assert len(sent.data) == len(plain_cmd.data) + mac_len
        resp = card.wrap(plain_resp)
        back = host.unwrap(ResponseApdu.parse(resp.to_bytes()))
        error = plain_resp.sw not in (SW.OK, SW(0x6310), SW(0x6282))
        assert back == (ResponseApdu(b"", plain_resp.sw) if error and level & 0x10 else plain_resp)
        if level & 0x20 and plain_resp.data and not error:
            assert len(resp.data) == 16 * (len(plain_resp.data) // 16 + 1) + mac_len


@given(
    level=st.sampled_from(LEVELS),
    garbage=st.builds(
        CommandApdu,
        cla=st.integers(0, 255),
        ins=st.integers(0, 255),
        p1=st.integers(0, 255),
        p2=st.integers(0, 255),
        data=st.binary(max_size=80),
        le=st.none() | st.integers(1, 256),
    ),
)
def test_garbage_on_the_card_raises_only_defined_errors(level: int, garbage: CommandApdu) -> None:
    k = keys()
    fresh = Scp03Card(key_diversification_data=DIV, sd_aid=ISD_AID)
    with pytest.raises(SecureChannelError):  # no INITIALIZE UPDATE before
        fresh.external_authenticate(garbage)
    well_formed = garbage.cla & 0xFC == 0x80 and garbage.ins == 0x50 and garbage.p1 in (0, k.kvn) and garbage.p2 == 0
    well_formed = well_formed and len(garbage.data) == 8
    if well_formed:
        assert len(fresh.initialize_update(garbage, k, 1)) == 32
    else:
        with pytest.raises(ApduError):
            fresh.initialize_update(garbage, k, 1)
    _, card = open_session(level)
    try:
        plain = card.unwrap(garbage)
    except SecureChannelError:
        assert not card.authenticated  # every failure closes the session
    else:
        assert level == 0 and plain == garbage  # only level 00 passes plain commands
