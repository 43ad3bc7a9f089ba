"""ISO 7816-4 §5.1 command and response APDUs: cases 1-4, short and extended length, chaining helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tenantcard.wire.errors import WireError
from tenantcard.wire.sw import SW

MAX_SHORT_LC = 255
MAX_SHORT_LE = 256
MAX_EXTENDED_LC = 65535
MAX_EXTENDED_LE = 65536

CLA_CHAINING = 0x10  # ISO 7816-4 §5.1.1: "command is not the last of a chain"
CLA_SECURE_MESSAGING = 0x04  # GP 2.3.1 §11.1.4: b3 set = secure messaging (proprietary class)


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU. ``le`` is None when absent, else the maximum number of response bytes (1..65536).

    ``extended`` records that the command was (or is to be) encoded with extended length even where short
    length would do; it does not take part in equality. Secure messaging needs it: the C-MAC covers the Lc
    field as sent (GP Amd D §6.2.4).
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not (0 <= self.cla <= 0xFF and 0 <= self.ins <= 0xFF and 0 <= self.p1 <= 0xFF and 0 <= self.p2 <= 0xFF):
            for name in ("cla", "ins", "p1", "p2"):
                if not 0 <= getattr(self, name) <= 0xFF:
                    raise WireError(f"{name} out of range")
        if len(self.data) > MAX_EXTENDED_LC:
            raise WireError("command data longer than 65535 bytes")
        if self.le is not None and not 1 <= self.le <= MAX_EXTENDED_LE:
            raise WireError("Le out of range")

    @property
    def header(self) -> bytes:
        return bytes([self.cla, self.ins, self.p1, self.p2])

    @property
    def case(self) -> int:
        """ISO 7816-3 §12.1.2 case number (1: no data no Le, 2: Le, 3: data, 4: data and Le)."""
        return (3 if self.data else 1) + (1 if self.le is not None else 0)

    @property
    def is_chained(self) -> bool:
        return bool(self.cla & CLA_CHAINING)

    @property
    def needs_extended(self) -> bool:
        return len(self.data) > MAX_SHORT_LC or (self.le is not None and self.le > MAX_SHORT_LE)

    def to_bytes(self, extended: bool | None = None) -> bytes:
        """Serialize; extended length is used when needed or asked for (ISO 7816-4 §5.1)."""
        ext = (self.extended or self.needs_extended) if extended is None else extended
        if not ext and self.needs_extended:
            raise WireError("APDU needs extended length")
        out = bytearray(self.header)
        if ext:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = 0 if self.le == MAX_EXTENDED_LE else self.le
                out += (b"" if self.data else b"\x00") + le.to_bytes(2, "big")
        else:
            if self.data:
                out += bytes([len(self.data)]) + self.data
            if self.le is not None:
                out.append(0 if self.le == MAX_SHORT_LE else self.le)
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Parse any of the seven encodings of ISO 7816-3 §12.1; anything else raises WireError."""
        n = len(raw)
        if n < 4:
            raise WireError("APDU shorter than its header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:  # case 1
            return cls(cla, ins, p1, p2)
        if len(body) == 1:  # case 2 short
            return cls(cla, ins, p1, p2, le=body[0] or MAX_SHORT_LE)
        if body[0] != 0:  # short case 3 or 4
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, data=bytes(body[1:]))
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, data=bytes(body[1 : 1 + lc]), le=body[-1] or MAX_SHORT_LE)
            raise WireError("Lc does not match the command length")
        # body[0] == 0 and at least 2 bytes: extended length
        if len(body) == 3:  # case 2 extended
            le = int.from_bytes(body[1:3], "big")
            return cls(cla, ins, p1, p2, le=le or MAX_EXTENDED_LE, extended=True)
        if len(body) < 3:
            raise WireError("truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise WireError("extended Lc of zero")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[3:]), extended=True)
        if len(body) == 5 + lc:
            le = int.from_bytes(body[-2:], "big")
            return cls(cla, ins, p1, p2, data=bytes(body[3 : 3 + lc]), le=le or MAX_EXTENDED_LE, extended=True)
        raise WireError("extended Lc does not match the command length")

    def chained(self, max_data: int = MAX_SHORT_LC) -> Iterator[CommandApdu]:
        """Split into an ISO 7816-4 §5.1.1.1 command chain (CLA b5 set on all but the last)."""
        if len(self.data) <= max_data:
            yield self
            return
        chunks = [self.data[i : i + max_data] for i in range(0, len(self.data), max_data)]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            yield CommandApdu(
                self.cla if last else self.cla | CLA_CHAINING,
                self.ins,
                self.p1,
                self.p2,
                chunk,
                self.le if last else None,
            )


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data and the two status bytes."""

    data: bytes
    sw: SW

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise WireError("response shorter than its status word")
        return cls(bytes(raw[:-2]), SW(int.from_bytes(raw[-2:], "big")))

    @classmethod
    def of(cls, sw: SW | int, data: bytes = b"") -> ResponseApdu:
        return cls(data, sw if type(sw) is SW else SW(sw))

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes()

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    @property
    def sw1(self) -> int:
        return self.sw.sw1

    @property
    def sw2(self) -> int:
        return self.sw.sw2
