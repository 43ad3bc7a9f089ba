"""The two faces of a transport (DESIGN.md "Layering").

Host side: anything with ``transmit(apdu) -> response``. Card side: a ``Card`` that a ``CardSlot`` hands
to each new connection; each connection is its own card session (selected application, secure channel).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class TransportError(Exception):
    """The link to the card failed (closed, timed out, framing error); no status word was received."""


@runtime_checkable
class Connection(Protocol):
    """Host side: send one C-APDU, get the R-APDU (data + SW1 SW2)."""

    def transmit(self, apdu: bytes) -> bytes: ...

    def close(self) -> None: ...


class Card(Protocol):
    """Card side of one connection: one card session."""

    def power_on(self) -> bytes:
        """Cold start; returns the ATR."""
        ...

    def reset(self) -> bytes:
        """Warm reset: drops the session state; returns the ATR."""
        ...

    def power_off(self) -> None: ...

    def execute(self, apdu: bytes) -> bytes:
        """Process one C-APDU and return the R-APDU. Never raises for bad input: answers a status word."""
        ...


class CardSlot(Protocol):
    """Something that can hand out card sessions, e.g. a device: one per TCP or PC/SC connection."""

    def connect(self) -> Card: ...


class LocalConnection:
    """In-process host connection to a card session (the first of the three test transports)."""

    def __init__(self, card: Card) -> None:
        self._card = card
        self.atr = card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        return self._card.execute(apdu)

    def close(self) -> None:
        self._card.power_off()
