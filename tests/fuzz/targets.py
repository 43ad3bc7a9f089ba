"""Fuzz targets: plain functions of one input (``bytes``), used by the atheris harnesses (tests/fuzz/run.py,
coverage-guided) and by pytest (regression replay of saved inputs, tests/fuzz/test_fuzz.py).

Each target raises ``FuzzFinding`` (or lets any unexpected exception escape) when an input breaks
DESIGN.md invariant 5: "No malformed APDU, TLV or HTTP body crashes a process or corrupts stored state;
each gets a defined error."

``parsers``: the wire layer (CommandApdu / ResponseApdu / BER-TLV), PUT KEY key data and tenantcard's own
formats; the only errors allowed are the defined ones (WireError, CryptoError, FramingError, OtpError).

``device``: the whole card OS on a sealed store copied from a template before each input. The input picks a
session (ISD or container, with or without a secure channel opened by the harness with the real keys, or a
container-scoped session), then a sequence of commands; under a secure channel each command that parses is
wrapped by the host side of ``tenantcard.crypto.scp03`` so that it reaches the deep handlers (ISD content
management, container objects, functions). Checked on every answer: ``Card.execute`` returns, the answer ends
with a status word, no unexpected failure (6F00, or an ERROR logged by the device); after the input the store
reopens cleanly and passes its integrity check.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tenantcard.client.container import ContainerSession
from tenantcard.client.isd import IsdSession
from tenantcard.client.otp import OtpClient
from tenantcard.client.piv import PivProvisioner
from tenantcard.client.pki import PkiClient
from tenantcard.crypto.errors import CryptoError, SecureChannelError
from tenantcard.crypto.ocra import OcraSuite
from tenantcard.crypto.otp import OtpError
from tenantcard.crypto.scp03 import PutKeyCommand, Scp03Host, StaticKeys
from tenantcard.device.os import Device
from tenantcard.device.provision import create_device_store, dev_spec, gp_test_keys
from tenantcard.keyvault import FileKeyVault
from tenantcard.transport.base import LocalConnection
from tenantcard.transport.framing import FrameDecoder, FramingError, decode_message
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.functions import (
    CalculateRequest,
    CredentialEntry,
    GenerateKeyRequest,
    KeyEntry,
    OathCredential,
    OathIns,
    PkiIns,
    name_data,
    parse_name_data,
)
from tenantcard.wire.gp import ISD_AID, Cla, GetStatusP1, Ins, InstallP1, container_aid
from tenantcard.wire.piv import PIV_AID, KeyRef
from tenantcard.wire.programs import LoadFile, Manifest, ProgramInfo, SignedManifest
from tenantcard.wire.sw import SW
from tenantcard.wire.tenant import (
    Access,
    Authorization,
    ContainerStatus,
    DataObject,
    object_name_query,
    parse_object_list,
    parse_object_name_query,
    parse_status_entries,
)
from tenantcard.wire.tlv import Tlv, find, parse_all

__all__ = ["TARGETS", "DeviceTarget", "FuzzFinding", "device_seeds", "parse_target", "parser_seeds"]


class FuzzFinding(AssertionError):
    """An input broke an invariant (the message names which, never a secret)."""


# --------------------------------------------------------------------------------------------- parsers

# The defined errors of the layers under test: anything else escaping a parser is a finding.
DEFINED_ERRORS: tuple[type[BaseException], ...] = (WireError, CryptoError, FramingError, OtpError)

FIXED_DEK = bytes(range(0x40, 0x50))


def _parse_command(data: bytes) -> None:
    cmd = CommandApdu.parse(data)
    again = CommandApdu.parse(cmd.to_bytes())  # a parsed command serializes to something that parses back
    if again != cmd:
        raise FuzzFinding("CommandApdu does not round-trip")


def _parse_response(data: bytes) -> None:
    resp = ResponseApdu.parse(data)
    if ResponseApdu.parse(resp.to_bytes()) != resp:
        raise FuzzFinding("ResponseApdu does not round-trip")


def _parse_tlv(data: bytes) -> None:
    tlvs = parse_all(data)
    for tlv in tlvs:
        if Tlv.parse(tlv.to_bytes()) != tlv:
            raise FuzzFinding("Tlv does not round-trip")
        if tlv.constructed:
            tlv.children()
    find(data, 0x4F)


def _parse_put_key(data: bytes) -> None:
    if len(data) < 2:
        raise WireError("short")
    put = PutKeyCommand.parse(data[0], data[1], data[2:])
    put.decrypt(FIXED_DEK)


def _parse_tenant(data: bytes) -> None:
    for parse in (
        Authorization.parse,
        DataObject.parse,
        ContainerStatus.parse,
        parse_status_entries,
        parse_object_list,
        parse_object_name_query,
    ):
        with contextlib.suppress(*DEFINED_ERRORS):
            parse(data)


def _parse_functions(data: bytes) -> None:
    for parse in (
        OathCredential.parse,
        CredentialEntry.parse_list,
        CalculateRequest.parse,
        GenerateKeyRequest.parse,
        KeyEntry.parse_list,
        parse_name_data,
        Manifest.parse,
        SignedManifest.parse,
        LoadFile.parse,
        ProgramInfo.parse_list,
    ):
        with contextlib.suppress(*DEFINED_ERRORS):
            parse(data)
    with contextlib.suppress(*DEFINED_ERRORS):
        OcraSuite.parse(data.decode("ascii", "replace"))


def _parse_frames(data: bytes) -> None:
    decoder = FrameDecoder()
    for payload in decoder.feed(data):
        decode_message(payload)


PARSERS: tuple[Callable[[bytes], None], ...] = (
    _parse_command,
    _parse_response,
    _parse_tlv,
    _parse_put_key,
    _parse_tenant,
    _parse_functions,
    _parse_frames,
)


def parse_target(data: bytes) -> None:
    """First byte: which parser; the rest: its input."""
    if not data:
        return
    parser = PARSERS[data[0] % len(PARSERS)]
    with contextlib.suppress(*DEFINED_ERRORS):
        parser(data[1:])


def parser_seeds() -> list[bytes]:
    keys = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x31)
    put = PutKeyCommand.for_keys(keys, FIXED_DEK, replace_kvn=0x30)
    short_put = PutKeyCommand.for_keys(keys, FIXED_DEK, long_form=False)
    return [
        bytes([0]) + CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256).to_bytes(),
        bytes([0]) + CommandApdu(0x84, 0xE2, 0x90, 0x00, b"\x01" * 300, le=65536).to_bytes(),
        bytes([1]) + b"\x01\x02\x90\x00",
        bytes([2]) + Tlv.of(0xE3, Tlv(0x4F, container_aid(1)), Tlv(0x9F70, b"\x0f")).to_bytes(),
        bytes([3]) + bytes([put.p1, put.p2]) + put.to_data(),
        bytes([3]) + bytes([short_put.p1, short_put.p2]) + short_put.to_data(),
        bytes([4]) + Authorization("provider-a", 1_900_000_000, put.to_data()).to_bytes(),
        bytes([4]) + DataObject(b"name", Access.HOLDER, b"value").to_bytes(),
        bytes([5]) + CalculateRequest(b"otp", time=59).to_bytes(),
        bytes([5]) + b"OCRA-1:HOTP-SHA1-6:QN08",
        bytes([6]) + b"\x00\x05\x00\xa4\x04\x00\x00" + b"\x00\x01\x04",
    ]


# --------------------------------------------------------------------------------------------- device

OPERATOR_KEYS = gp_test_keys()
INITIAL_KEYS = StaticKeys(bytes([0x11]) * 16, bytes([0x22]) * 16, bytes([0x33]) * 16, 0x01)
PROVIDER_KEYS = StaticKeys(bytes([0x44]) * 16, bytes([0x55]) * 16, bytes([0x66]) * 16, 0x31)
HOLDER_PIN = b"1234"
PIV_PIN, PIV_PUK = "123456", "12345678"
AVAILABLE, AUTHORIZED, OWNED, LOCKED = 0, 1, 2, 3
LEVELS = (0x33, 0x13, 0x03, 0x11, 0x01, 0x00)
MAX_COMMANDS = 8
FIXED_TIME = 1_800_000_000.0
UNEXPECTED = (SW.UNKNOWN,)


class DeterministicRandom:
    """SHA-256 in counter mode: every input runs on the same card challenges and nonces (a crash replays)."""

    def __init__(self, seed: bytes = b"tenantcard-fuzz") -> None:
        self._seed = seed
        self._n = 0

    def reset(self) -> None:
        self._n = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self._n += 1
            out += hashlib.sha256(self._seed + self._n.to_bytes(8, "big")).digest()
        return out[:n]


class _ErrorLog(logging.Handler):
    """Records every ERROR the device logs: the card OS logs exactly its unexpected failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Session:
    """One host-side card session on ``Card.execute``: GET RESPONSE, optional SCP03 wrapping, checks."""

    def __init__(self, execute: Callable[[bytes], bytes]) -> None:
        self._execute = execute
        self.scp: Scp03Host | None = None

    def raw(self, apdu: bytes) -> bytes:
        answer = self._execute(apdu)
        if not isinstance(answer, bytes) or len(answer) < 2:
            raise FuzzFinding("an answer without a status word")
        sw = int.from_bytes(answer[-2:], "big")
        if sw in UNEXPECTED:
            raise FuzzFinding(f"unexpected failure: SW {sw:04X}")
        return answer

    def send(self, cmd: CommandApdu) -> ResponseApdu:
        resp = ResponseApdu.parse(self.raw(cmd.to_bytes()))
        data = resp.data
        while resp.sw1 == 0x61:
            resp = ResponseApdu.parse(self.raw(bytes([0x00, 0xC0, 0x00, 0x00, resp.sw2])))
            data += resp.data
        return ResponseApdu(data, resp.sw)

    def open(self, keys: StaticKeys, level: int) -> bool:
        scp = Scp03Host(keys, host_challenge=bytes(8))
        init = self.send(scp.initialize_update())
        if init.sw != SW.OK:
            return False
        ext = scp.authenticate(init, level)
        if self.send(ext).sw != SW.OK:
            return False
        self.scp = scp
        return True

    def command(self, apdu: bytes) -> None:
        """Send one fuzzed command: wrapped under the channel when it parses, else raw."""
        scp = self.scp
        if scp is not None:
            try:
                wrapped = scp.wrap(CommandApdu.parse(apdu))
            except (WireError, CryptoError):
                wrapped = None
            if wrapped is not None:
                resp = self.send(wrapped)
                try:
                    scp.unwrap(resp)
                except SecureChannelError:
                    self.scp = None  # the card dropped the channel (its answer to a refused command)
                return
        self.send_raw(apdu)

    def send_raw(self, apdu: bytes) -> None:
        answer = self.raw(apdu)
        while answer[-2] == 0x61:
            answer = self.raw(bytes([0x00, 0xC0, 0x00, 0x00, answer[-1]]))


def split_commands(data: bytes) -> Iterator[bytes]:
    """The commands of an input: each a 2-byte big-endian length and that many bytes (cut at the end)."""
    pos = 0
    count = 0
    while pos + 2 <= len(data) and count < MAX_COMMANDS:
        n = int.from_bytes(data[pos : pos + 2], "big")
        chunk = data[pos + 2 : pos + 2 + n]
        pos += 2 + n
        count += 1
        yield chunk


def encode_input(mode: int, level_index: int, commands: list[CommandApdu | bytes]) -> bytes:
    out = bytes([mode, level_index])
    for cmd in commands:
        raw = cmd.to_bytes() if isinstance(cmd, CommandApdu) else cmd
        out += len(raw).to_bytes(2, "big") + raw
    return out


class DeviceTarget:
    """The card OS under fuzzing. ``workdir`` holds the template store, its vault and the working copy."""

    MODES = ("isd-raw", "isd-operator", "owned-provider", "authorized-initial", "owned-holder", "scoped-raw")

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.vault = FileKeyVault(self.workdir / "vault.key")
        self.template = self.workdir / "template.db"
        self.store = self.workdir / "work.db"
        self.random = DeterministicRandom()
        self.errors = _ErrorLog()
        logging.getLogger("tenantcard").addHandler(self.errors)
        if not self.template.exists():
            self._make_template()

    def _open(self) -> Device:
        self.random.reset()
        return Device.open(self.store, self.vault, random=self.random, clock=lambda: FIXED_TIME)

    def _make_template(self) -> None:
        """Four containers: AVAILABLE, AUTHORIZED (initial keys), OWNED (objects, PIN, OTP seed, a P-256
        key), LOCKED (owned by the same provider keys)."""
        spec = dev_spec(4, device_id=bytes.fromhex("F0F1F2F3F4F5F6F7F8F9"))
        create_device_store(self.template, spec, self.vault)
        device = Device.open(self.template, self.vault)
        try:
            isd = IsdSession(LocalConnection(device.connect()))
            isd.select()
            isd.authenticate(OPERATOR_KEYS)
            expires = int(FIXED_TIME) + 10 * 365 * 86400
            for index in (AUTHORIZED, OWNED, LOCKED):
                isd.place_authorization(container_aid(index), f"provider-{index}", INITIAL_KEYS, expires)
            for index in (OWNED, LOCKED):
                prov = ContainerSession(LocalConnection(device.connect()), container_aid(index))
                prov.select()
                prov.take_ownership(INITIAL_KEYS, PROVIDER_KEYS)
                prov.put_object(b"provider", b"provider value", Access.PROVIDER)
                prov.put_object(b"holder", b"holder value", Access.HOLDER)
                prov.put_object(b"public", b"public value", Access.PUBLIC)
                prov.set_pin(HOLDER_PIN, retries=15)
                OtpClient(prov).load_seed("otp", b"12345678901234567890")
                PkiClient(prov).generate_key(1, "p256")
                piv = PivProvisioner(prov)
                piv.setup(PIV_PIN, PIV_PUK)
                piv.generate_key(KeyRef.SIGNATURE)
            isd.lock(container_aid(LOCKED))
        finally:
            device.close()

    def __call__(self, data: bytes) -> None:
        if len(data) < 2:
            return
        mode = data[0] % len(self.MODES)
        level = LEVELS[data[1] % len(LEVELS)]
        shutil.copyfile(self.template, self.store)
        self.errors.records.clear()
        device = self._open()
        try:
            self._run(device, self.MODES[mode], level, data[2:])
        finally:
            device.close()
        if self.errors.records:
            raise FuzzFinding(f"the device logged an unexpected failure: {self.errors.records[0].getMessage()}")
        # Invariant 5: whatever the input did, the store reopens and every sealed record opens.
        device = self._open()
        try:
            device.check()
            if device.container_indexes() != [AVAILABLE, AUTHORIZED, OWNED, LOCKED] and not self._may_delete(data):
                raise FuzzFinding("containers lost")
        finally:
            device.close()

    @staticmethod
    def _may_delete(data: bytes) -> bool:
        # Only the operator's channel may remove or add containers (DELETE / INSTALL through the ISD).
        return data[0] % len(DeviceTarget.MODES) == 1

    def _run(self, device: Device, mode: str, level: int, rest: bytes) -> None:
        scoped = mode == "scoped-raw"
        card = device.connect(container=OWNED if scoped else None)
        card.power_on()
        session = _Session(card.execute)
        if mode in ("owned-provider", "authorized-initial", "owned-holder"):
            index = AUTHORIZED if mode == "authorized-initial" else OWNED
            session.send(CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, container_aid(index), le=256))
        if mode == "isd-operator" and not session.open(OPERATOR_KEYS, level):
            raise FuzzFinding("the operator channel does not open on the template")
        if mode == "owned-provider" and not session.open(PROVIDER_KEYS, level):
            raise FuzzFinding("the provider channel does not open on the template")
        if mode == "authorized-initial" and not session.open(INITIAL_KEYS, level):
            raise FuzzFinding("the initial keys do not open the authorized container")
        if mode == "owned-holder":
            session.send(CommandApdu(0x00, Ins.VERIFY, 0x00, 0x80, HOLDER_PIN))
        for apdu in split_commands(rest):
            session.command(apdu)
        card.power_off()


def device_seeds() -> list[bytes]:
    """Inputs that reach each handler with well-formed commands (libFuzzer mutates from these)."""
    new_keys = StaticKeys(bytes([0x77]) * 16, bytes([0x88]) * 16, bytes([0x99]) * 16, 0x32)
    put = PutKeyCommand.for_keys(new_keys, PROVIDER_KEYS.dek, replace_kvn=PROVIDER_KEYS.kvn)
    put_initial = PutKeyCommand.for_keys(new_keys, INITIAL_KEYS.dek, replace_kvn=INITIAL_KEYS.kvn)
    auth_put = PutKeyCommand.for_keys(INITIAL_KEYS, OPERATOR_KEYS.dek)
    auth = Authorization("provider-x", int(FIXED_TIME) + 3600, auth_put.to_data()).to_bytes()
    gs = CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, b"\x4f\x00", le=256)
    c0 = container_aid(AVAILABLE)
    install = (
        b"\x00\x00"
        + bytes([len(c0)])
        + c0
        + b"\x01\x00\x10\xc9\x00\xef\x0c\xc8\x04\x00\x00\x40\x00\xd8\x04\x00\x00\x00\x00\x00"
    )
    owned_cmds: list[CommandApdu | bytes] = [
        CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, DataObject(b"new", Access.HOLDER, b"v" * 40).to_bytes()),
        CommandApdu(Cla.GP, Ins.GET_DATA_ODD, 0x00, 0x00, object_name_query(b"provider"), le=256),
        CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, object_name_query(b"public"), le=256),
        CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.APPLICATIONS, 0x02, le=256),
        CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.ISD, 0x02, le=256),
        CommandApdu(Cla.GP, OathIns.OTP_CALCULATE, 0, 0, CalculateRequest(b"otp").to_bytes()),
        CommandApdu(Cla.GP, OathIns.OTP_LIST, 0, 0),
        CommandApdu(Cla.GP, OathIns.OTP_DELETE, 0, 0, name_data(b"otp")),
        CommandApdu(Cla.GP, PkiIns.SIGN, 0, 1, b"message", le=256),
        CommandApdu(Cla.GP, PkiIns.LIST, 0, 0, le=256),
        CommandApdu(Cla.GP, PkiIns.GENERATE, 0, 2, GenerateKeyRequest.parse(b"\x82\x01\x01").to_bytes(), le=256),
        CommandApdu(0x00, Ins.CHANGE_REFERENCE_DATA, 0x01, 0x80, b"\x03" + b"9999"),
        CommandApdu(0x00, Ins.RESET_RETRY_COUNTER, 0x02, 0x80, b"5555"),
        CommandApdu(Cla.GP, Ins.PUT_KEY, put.p1, put.p2, put.to_data(), le=256),
    ]
    isd_cmds: list[CommandApdu | bytes] = [
        gs,
        CommandApdu(Cla.GP, Ins.GET_STATUS, GetStatusP1.ISD, 0x00, b"\x4f\x00", le=256),
        CommandApdu(Cla.GP, Ins.INSTALL, InstallP1.FOR_PERSONALIZATION, 0x00, b"\x00\x00\x06" + c0 + b"\x00\x00\x00"),
        CommandApdu(Cla.GP, Ins.STORE_DATA, 0x90, 0x00, auth),
        CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x80, container_aid(OWNED)),
        CommandApdu(Cla.GP, Ins.SET_STATUS, 0x40, 0x00, container_aid(LOCKED)),
        CommandApdu(Cla.GP, Ins.DELETE, 0x00, 0x00, Tlv(0x4F, container_aid(OWNED)).to_bytes(), le=256),
        CommandApdu(Cla.GP, Ins.INSTALL, 0x0C, 0x00, install, le=256),
        CommandApdu(Cla.GP, Ins.GET_DATA, 0x00, 0x66, le=256),
        CommandApdu(Cla.GP, Ins.GET_DATA, 0x00, 0xE0, le=256),
        CommandApdu(Cla.GP, Ins.GET_DATA, 0xBF, 0x21, le=256),
    ]
    seeds = [
        encode_input(0, 0, [CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, ISD_AID, le=256), *isd_cmds[8:]]),
        encode_input(0, 0, [CommandApdu(0x00, Ins.INTERNAL_AUTHENTICATE, 0, 0, b"c" * 16, le=256)]),
        encode_input(0, 0, [b"\x80\x50\x00\x00\x08" + bytes(8) + b"\x00", b"\x84\x82\x33\x00\x10" + bytes(16)]),
        encode_input(3, 0, [CommandApdu(Cla.GP, Ins.PUT_KEY, put_initial.p1, put_initial.p2, put_initial.to_data())]),
        encode_input(3, 0, [owned_cmds[0]]),
        encode_input(4, 0, [owned_cmds[1], owned_cmds[5], owned_cmds[8], owned_cmds[3]]),
        encode_input(4, 0, [CommandApdu(0x00, Ins.CHANGE_REFERENCE_DATA, 0, 0x80, b"1234".ljust(32, b"\xff"))]),
        encode_input(5, 0, [CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, PIV_AID)]),
        encode_input(
            5,
            0,
            [
                CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, PIV_AID),
                CommandApdu(0x00, Ins.VERIFY, 0x00, 0x80, PIV_PIN.encode().ljust(8, b"\xff")),
                CommandApdu(0x00, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC10A"), le=256),
                CommandApdu(0x00, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C017E"), le=256),
                CommandApdu(0x00, 0x87, 0x11, 0x9C, bytes.fromhex("7C2482008120") + bytes(range(32)), le=256),
            ],
        ),
    ]
    for level_index in range(len(LEVELS)):
        seeds.append(encode_input(1, level_index, isd_cmds[:4]))
        seeds.append(encode_input(2, level_index, owned_cmds[:7]))
    seeds.append(encode_input(1, 0, isd_cmds[4:]))
    seeds.append(encode_input(2, 0, owned_cmds[7:]))
    return seeds


TARGETS: dict[str, Callable[[], tuple[Callable[[bytes], None], list[bytes]]]] = {}


def _parsers() -> tuple[Callable[[bytes], None], list[bytes]]:
    return parse_target, parser_seeds()


def _device() -> tuple[Callable[[bytes], None], list[bytes]]:
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="tenantcard-fuzz-"))
    return DeviceTarget(workdir), device_seeds()


TARGETS["parsers"] = _parsers
TARGETS["device"] = _device


def timed(target: Callable[[bytes], None], inputs: list[bytes]) -> float:
    """Seconds per input over ``inputs`` (for the benchmark's baseline)."""
    start = time.perf_counter()
    for data in inputs:
        target(data)
    return (time.perf_counter() - start) / max(1, len(inputs))
