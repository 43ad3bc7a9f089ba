"""Host-side APDU processing as a chain of small processors (the yubikit pattern).

A processor takes a ``CommandApdu`` and returns the ``ResponseApdu``. A usual chain, top to bottom::

    SecureMessagingProcessor      GP Amd D: wrap the whole command, unwrap the whole response
    ResponseChainingProcessor     ISO 7816-4 §5.3.4: 61xx -> GET RESPONSE, 6Cxx -> resend with Le = xx
    CommandChainingProcessor      ISO 7816-4 §5.1.1.1: split long data into a chain (short-length links only)
    TransmitProcessor             serialize, ``Connection.transmit``, parse

Secure messaging sits above both chainings, as in GP 2.3.1 §11.1.4: the C-MAC covers the whole command
and the R-MAC the whole response; chaining and GET RESPONSE travel outside secure messaging.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Protocol

from tenantcard.client.errors import ClientError, ResponseError, StatusError
from tenantcard.crypto.errors import SecureChannelError
from tenantcard.crypto.scp03.host import Scp03Host
from tenantcard.crypto.scp03.keys import RandomSource, StaticKeys
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import (
    CLA_CHAINING,
    CLA_SECURE_MESSAGING,
    MAX_SHORT_LC,
    MAX_SHORT_LE,
    CommandApdu,
    ResponseApdu,
)
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import Ins
from tenantcard.wire.sw import SW

MAX_RESPONSE = 1 << 20  # bytes gathered through GET RESPONSE before giving up
_SW1_MORE = 0x61
_SW1_WRONG_LE = 0x6C


class Processor(Protocol):
    def send(self, cmd: CommandApdu) -> ResponseApdu: ...


def check(resp: ResponseApdu, context: str = "") -> bytes:
    """The response data when the status word is 9000; else StatusError."""
    if resp.sw != SW.OK:
        raise StatusError(resp.sw, context)
    return resp.data


class TransmitProcessor:
    """The bottom of the chain: bytes over a ``Connection``.

    ``extended=False`` restricts the link to short length (ISO 7816-4 §5.1): Le above 256 is sent as 256
    (the rest comes through GET RESPONSE) and long data must have been split by a CommandChainingProcessor.
    """

    def __init__(self, connection: Connection, *, extended: bool = True) -> None:
        self.connection = connection
        self.extended = extended

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        if not self.extended:
            if cmd.le is not None and cmd.le > MAX_SHORT_LE:
                cmd = replace(cmd, le=MAX_SHORT_LE, extended=False)
            raw = cmd.to_bytes(extended=False)
        else:
            raw = cmd.to_bytes()
        answer = self.connection.transmit(raw)
        try:
            return ResponseApdu.parse(answer)
        except WireError as exc:
            raise ResponseError("response shorter than a status word") from exc


class CommandChainingProcessor:
    """Split data longer than ``max_data`` into an ISO 7816-4 §5.1.1.1 chain; stop at the first link the card
    does not answer 9000."""

    def __init__(self, delegate: Processor, max_data: int = MAX_SHORT_LC) -> None:
        if not 1 <= max_data <= MAX_SHORT_LC:
            raise ClientError("chain links carry 1 to 255 bytes")
        self.delegate = delegate
        self.max_data = max_data

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        links = list(cmd.chained(self.max_data))
        for link in links[:-1]:
            resp = self.delegate.send(replace(link, extended=False))
            if resp.sw != SW.OK:
                return resp
        last = links[-1]
        return self.delegate.send(replace(last, extended=last.extended and len(links) == 1))


class ResponseChainingProcessor:
    """Gather a long response: 61xx -> GET RESPONSE until 9000 or an error (ISO 7816-4 §5.3.4, §7.6.1);
    6Cxx -> send the same command again with Le = xx (plain commands only: a secure-messaging command must
    never be sent twice)."""

    def __init__(self, delegate: Processor, max_response: int = MAX_RESPONSE) -> None:
        self.delegate = delegate
        self.max_response = max_response

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        resp = self.delegate.send(cmd)
        if resp.sw1 == _SW1_WRONG_LE and not cmd.cla & CLA_SECURE_MESSAGING:
            resp = self.delegate.send(replace(cmd, le=resp.sw2 or MAX_SHORT_LE))
        if resp.sw1 != _SW1_MORE:
            return resp
        parts = [resp.data]
        total = len(resp.data)
        channel = cmd.cla & 0x03  # ISO 7816-4 §5.4.1: GET RESPONSE on the same logical channel
        while resp.sw1 == _SW1_MORE:
            resp = self.delegate.send(CommandApdu(channel, Ins.GET_RESPONSE, 0x00, 0x00, le=resp.sw2 or MAX_SHORT_LE))
            total += len(resp.data)
            if total > self.max_response:
                raise ResponseError("response longer than the client accepts")
            parts.append(resp.data)
        return ResponseApdu(b"".join(parts), resp.sw)


class SecureMessagingProcessor:
    """SCP03 secure messaging over ``delegate`` with an authenticated ``Scp03Host``.

    After any SecureChannelError the processor is closed: every further ``send`` raises it again.
    ``extended=False`` when the link below is short-length only: the C-MAC covers the Lc encoding that goes on
    the wire (Amd D §6.2.4), so Le is limited to 256 before wrapping, not after.
    """

    def __init__(self, delegate: Processor, host: Scp03Host, *, extended: bool = True) -> None:
        if not host.authenticated:
            raise SecureChannelError()
        self.delegate = delegate
        self.host: Scp03Host | None = host
        self.extended = extended

    @property
    def security_level(self) -> int:
        return self.host.security_level if self.host is not None else 0

    @property
    def open(self) -> bool:
        return self.host is not None

    def close(self) -> None:
        self.host = None

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        host = self.host
        if host is None:
            raise SecureChannelError()
        if not self.extended and cmd.le is not None and cmd.le > MAX_SHORT_LE:
            cmd = replace(cmd, le=MAX_SHORT_LE)
        try:
            return host.unwrap(self.delegate.send(host.wrap(cmd)))
        except SecureChannelError:
            self.host = None
            raise


def base_chain(connection: Connection, *, extended: bool = True) -> Processor:
    """TransmitProcessor (+ CommandChainingProcessor for short links) + ResponseChainingProcessor."""
    bottom: Processor = TransmitProcessor(connection, extended=extended)
    if not extended:
        bottom = CommandChainingProcessor(bottom)
    return ResponseChainingProcessor(bottom)


def open_scp03(
    processor: Processor,
    keys: StaticKeys,
    security_level: int = 0x33,
    *,
    s16: bool = False,
    host_challenge: bytes | None = None,
    random: RandomSource = os.urandom,
    extended: bool = True,
) -> SecureMessagingProcessor:
    """Mutual authentication with the selected security domain (Amd D §7.1, §7.2) through ``processor``;
    returns the secure-messaging processor stacked on it.

    A refused INITIALIZE UPDATE or EXTERNAL AUTHENTICATE raises StatusError (e.g. 6A88 no such key set,
    6983 key set blocked, 6982 authentication failed); a card that fails the card cryptogram raises
    SecureChannelError. ``extended``: whether the link below carries extended-length APDUs.
    """
    host = Scp03Host(keys, s16=s16, host_challenge=host_challenge, random=random)
    init = processor.send(host.initialize_update())
    check(init, "INITIALIZE UPDATE")
    ea = host.authenticate(init, security_level)
    check(processor.send(ea), "EXTERNAL AUTHENTICATE")
    return SecureMessagingProcessor(processor, host, extended=extended)


__all__ = [
    "CLA_CHAINING",
    "CommandChainingProcessor",
    "Processor",
    "ResponseChainingProcessor",
    "SecureMessagingProcessor",
    "TransmitProcessor",
    "base_chain",
    "check",
    "open_scp03",
]
