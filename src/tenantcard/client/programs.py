"""Host side of the programs function of a container (docs/protocol.md "Programs"): one verb per command.

Works over any session object with ``transmit(CommandApdu) -> ResponseApdu`` (a ``ContainerSession``).
Administration needs the provider's secure channel (``put_key`` at level 03 or higher: the secret travels
encrypted); ``invoke`` needs what the program's manifest says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tenantcard.client.errors import ResponseError, StatusError
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import Cla
from tenantcard.wire.programs import (
    LoadFile,
    LoadP1,
    ProgramInfo,
    ProgramIns,
    ProgramKeyType,
    ProgramSW,
    SigningAlgorithm,
)
from tenantcard.wire.sw import SW

MAX_BLOCKS = 256
SHORT_BLOCK = 224  # fits a short APDU after SCP03 padding and C-MAC (GP Amd D §6.2.4)
MAX_BLOCK = 60_000  # extended-length blocks (ISO 7816-4 §5.1) for load files past 256 short blocks

LOAD_REASONS: dict[int, str] = {
    SW.SECURITY_STATUS_NOT_SATISFIED: "the manifest's signature does not verify with the container's program-signing"
    " key (or the provider channel is not open)",
    SW.CONDITIONS_NOT_SATISFIED: "no program-signing key is installed in the container",
    SW.INCORRECT_DATA: "the load file is malformed, the module does not match the manifest's hash and size, or the"
    " fuel/deadline exceed the device's limits",
    SW.FUNCTION_NOT_SUPPORTED: "the module was refused: imports, exports or features outside the program interface",
    SW.NOT_ENOUGH_MEMORY: "the program does not fit the container's quota",
    SW.REFERENCED_DATA_NOT_FOUND: "the manifest names another container",
    SW.ALREADY_EXISTS: "this program is installed with an equal or newer version",
    SW.INCORRECT_P1P2: "LOAD blocks out of sequence",
}

REASONS: dict[int, str] = {
    SW.SECURITY_STATUS_NOT_SATISFIED: "access denied (open the provider channel, at level 03 to import a key)",
    SW.REFERENCED_DATA_NOT_FOUND: "no such program or key",
    SW.CONDITIONS_NOT_SATISFIED: "not possible in this state",
    SW.INCORRECT_DATA: "the container refused the data",
    SW.INCORRECT_P1P2: "bad parameters",
    SW.INS_NOT_SUPPORTED: "the container does not offer programs",
    SW.NOT_ENOUGH_MEMORY: "the container's memory quota is exceeded",
}

TRAP_REASONS: dict[int, str] = {
    ProgramSW.OUT_OF_FUEL: "the program ran out of fuel (instruction budget)",
    ProgramSW.DEADLINE: "the program ran past its wall-clock deadline",
    ProgramSW.MEMORY_LIMIT: "the program ran out of memory",
    ProgramSW.STACK_OVERFLOW: "the program overflowed its stack",
    ProgramSW.HOST_POINTER: "the program passed a pointer outside its memory to a host function",
    ProgramSW.MEMORY_OUT_OF_BOUNDS: "the program accessed memory outside its linear memory",
    ProgramSW.TRAP: "the program trapped",
    ProgramSW.BAD_STATUS: "the program answered an invalid status word",
}


class ProgramChannel(Protocol):
    def transmit(self, cmd: CommandApdu) -> ResponseApdu: ...


class ProgramError(StatusError):
    """The programs function refused a command; the message says why in words."""

    def __init__(self, sw: SW | int, operation: str, reasons: dict[int, str] | None = None) -> None:
        reason = (reasons or REASONS).get(int(sw)) or TRAP_REASONS.get(int(sw), "refused")
        super().__init__(sw, f"{operation}: {reason}")


def trap_reason(sw: int) -> str | None:
    """Words for a status word the sandbox answered, None for any other."""
    return TRAP_REASONS.get(sw)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    sw: SW
    data: bytes

    @property
    def trapped(self) -> bool:
        return int(self.sw) in TRAP_REASONS


class ProgramsClient:
    def __init__(self, channel: ProgramChannel, *, extended: bool = True) -> None:
        self._channel = channel
        self._extended = extended

    def _call(self, cmd: CommandApdu, operation: str, reasons: dict[int, str] | None = None) -> bytes:
        try:
            resp = self._channel.transmit(cmd)
        except StatusError as exc:
            raise ProgramError(exc.sw, operation, reasons) from None
        if resp.sw != SW.OK:
            raise ProgramError(resp.sw, operation, reasons)
        return resp.data

    def put_signing_key(self, algorithm: SigningAlgorithm, public_key: bytes) -> None:
        cmd = CommandApdu(Cla.GP_SM, ProgramIns.PUT_SIGNING_KEY, algorithm, 0, public_key)
        self._call(cmd, "install program-signing key")

    def install(self, load_file: LoadFile) -> None:
        """LOAD the load file in blocks (GP 2.3.1 §11.6); installs or upgrades the program it carries."""
        raw = load_file.to_bytes()
        size = SHORT_BLOCK
        if len(raw) > SHORT_BLOCK * MAX_BLOCKS:
            if not self._extended:
                raise ProgramError(SW.NOT_ENOUGH_MEMORY, "load program", {SW.NOT_ENOUGH_MEMORY: "load file too large"})
            size = min(MAX_BLOCK, -(-len(raw) // MAX_BLOCKS))
        blocks = [raw[i : i + size] for i in range(0, len(raw), size)]
        if len(blocks) > MAX_BLOCKS:
            raise ProgramError(SW.NOT_ENOUGH_MEMORY, "load program", {SW.NOT_ENOUGH_MEMORY: "load file too large"})
        for number, block in enumerate(blocks):
            last = number == len(blocks) - 1
            p1 = LoadP1.LAST_BLOCK if last else LoadP1.MORE_BLOCKS
            self._call(CommandApdu(Cla.GP_SM, ProgramIns.LOAD, p1, number, block), "load program", LOAD_REASONS)

    def list(self) -> list[ProgramInfo]:
        data = self._call(CommandApdu(Cla.GP_SM, ProgramIns.LIST, 0, 0, le=65536), "list programs")
        try:
            return ProgramInfo.parse_list(data)
        except WireError as exc:
            raise ResponseError("malformed program list") from exc

    def delete(self, program_id: int) -> None:
        self._call(CommandApdu(Cla.GP_SM, ProgramIns.DELETE, program_id, 0), "delete program")

    def put_key(self, key_id: int, key_type: ProgramKeyType, secret: bytes) -> None:
        self._call(CommandApdu(Cla.GP_SM, ProgramIns.PUT_KEY, key_id, key_type, secret), "import program key")

    def generate_key(self, key_id: int, key_type: ProgramKeyType) -> bytes:
        """Generate a signing key on the device; returns its public key."""
        cmd = CommandApdu(Cla.GP_SM, ProgramIns.GENERATE_KEY, key_id, key_type, le=256)
        return self._call(cmd, "generate program key")

    def public_key(self, key_id: int) -> tuple[ProgramKeyType, bytes]:
        data = self._call(CommandApdu(Cla.GP, ProgramIns.GET_PUBLIC_KEY, key_id, 0, le=256), "read public key")
        if len(data) < 2 or data[0] not in (ProgramKeyType.ED25519, ProgramKeyType.ECDSA_P256):
            raise ResponseError("malformed public key")
        return ProgramKeyType(data[0]), data[1:]

    def delete_key(self, key_id: int) -> None:
        self._call(CommandApdu(Cla.GP_SM, ProgramIns.DELETE_KEY, key_id, 0), "delete program key")

    def invoke(self, program_id: int, data: bytes = b"", p2: int = 0, *, cla: int = Cla.GP_SM) -> InvokeResult:
        """Hand ``data`` to the program; its answer whatever the status word (the program defines them)."""
        cmd = CommandApdu(cla, ProgramIns.INVOKE, program_id, p2, data, le=256 if len(data) <= 255 else 65536)
        try:
            resp = self._channel.transmit(cmd)
        except StatusError as exc:
            return InvokeResult(exc.sw, b"")
        return InvokeResult(resp.sw, resp.data)
