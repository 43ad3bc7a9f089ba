"""What the ISD and container sessions share: one selected application on one connection, the processor chain
to it, and the SCP03 channel (GP Amd D) its owner opens with its key set; PUT KEY replacing that key set."""

from __future__ import annotations

import hmac

from tenantcard.client.errors import SessionError
from tenantcard.client.processors import Processor, SecureMessagingProcessor, base_chain, check, open_scp03
from tenantcard.crypto.scp03 import PutKeyCommand, StaticKeys
from tenantcard.transport.base import Connection
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.gp import Cla, Ins


def check_put_key_response(data: bytes, new: StaticKeys) -> None:
    """GP 2.3.1 §11.8.3.1: KVN || KCV(ENC) || KCV(MAC) || KCV(DEK) must match the keys sent."""
    expected = bytes([new.kvn]) + b"".join(new.kcvs())
    if not hmac.compare_digest(data, expected):
        raise SessionError("PUT KEY answer does not confirm the new keys (KCV mismatch)")


class ChannelSession:
    """Application ``aid`` on one connection; ``owner`` names whose key set opens its channel (in messages)."""

    owner = "owner"

    def __init__(self, connection: Connection, aid: bytes, *, extended: bool = True) -> None:
        self.aid = aid
        self._base: Processor = base_chain(connection, extended=extended)
        self._extended = extended
        self._sm: SecureMessagingProcessor | None = None
        self._keys: StaticKeys | None = None

    @property
    def authenticated(self) -> bool:
        return self._sm is not None and self._sm.open

    def transmit(self, cmd: CommandApdu) -> ResponseApdu:
        """Send one command, through the secure channel when one is open; the status word is not checked."""
        return (self._sm if self._sm is not None else self._base).send(cmd)

    def _call(self, cmd: CommandApdu, context: str) -> bytes:
        return check(self.transmit(cmd), context)

    def _owner_keys(self) -> StaticKeys:
        """The key set of the open channel; SessionError when none is open."""
        if not self.authenticated or self._keys is None:
            raise SessionError(f"open the {self.owner} channel first (authenticate)")
        return self._keys

    def _select(self, context: str) -> bytes:
        """SELECT the application (its FCI); drops any channel, on the card too."""
        self._sm = None
        self._keys = None
        return check(self._base.send(CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, self.aid, le=256)), context)

    def authenticate(self, keys: StaticKeys, level: int = 0x33) -> None:
        """Open SCP03 with ``keys`` (INITIALIZE UPDATE + EXTERNAL AUTHENTICATE) at security ``level``."""
        self._sm = None
        self._sm = open_scp03(self._base, keys, level, extended=self._extended)
        self._keys = keys

    def _put_key(self, current: StaticKeys, new: StaticKeys) -> None:
        """PUT KEY replacing ``current`` by ``new`` in the open channel, which stays open under ``new``."""
        put = PutKeyCommand.for_keys(new, current.dek, replace_kvn=current.kvn)
        answer = self._call(CommandApdu(Cla.GP, Ins.PUT_KEY, put.p1, put.p2, put.to_data(), le=256), "PUT KEY")
        check_put_key_response(answer, new)
        self._keys = new
