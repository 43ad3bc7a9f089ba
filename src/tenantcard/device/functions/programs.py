"""Programs: provider-signed WebAssembly modules that a container runs in a sandbox (INS 0x10-0x1F).

docs/protocol.md ("Programs") lists the commands and their status words; docs/programs.md is the authoring
guide. The provider installs a program-signing public key under its secure channel, then LOADs a load file
(signed manifest + module) in GP 2.3.1 §11.6 style blocks; the device verifies the signature, the module's
hash, the limits against the container's quota and the module against the program interface before storing
anything. INVOKE hands command data to the program and answers what it answers; a trap answers a
``ProgramSW`` and leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from tenantcard.device.functions.base import Access, FunctionContext
from tenantcard.device.programs.hostapi import (
    KEY_KIND,
    ProgramTrap,
    check_key,
    data_kind,
    encode_key,
    public_key,
)
from tenantcard.device.programs.manifest import SIGNING_KEY_KIND, SIGNING_KEY_NAME, ManifestRejected, SigningKey
from tenantcard.device.programs.sandbox import Limits, ProgramInstance, Sandbox, default_sandbox
from tenantcard.device.programs.validate import ModuleRejected
from tenantcard.wire.apdu import CommandApdu, ResponseApdu
from tenantcard.wire.errors import WireError
from tenantcard.wire.gp import SecurityLevel, container_aid
from tenantcard.wire.programs import (
    HOST_API_VERSION,
    MAX_KEY_ID,
    MAX_PROGRAM_ID,
    MIN_KEY_ID,
    MIN_PROGRAM_ID,
    LoadFile,
    LoadP1,
    Manifest,
    ProgramInfo,
    ProgramIns,
    ProgramKeyType,
    SignedManifest,
    SigningAlgorithm,
)
from tenantcard.wire.sw import SW, ApduError

log = logging.getLogger(__name__)

MANIFEST_KIND = "programs.manifest"
MODULE_KIND = "programs.module"
SESSION_LOAD = "programs.load"
SESSION_INSTANCES = "programs.instances"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # SEC 2 §2.4.2 n


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """Caps the device puts on any program, whatever its manifest asks."""

    max_load_bytes: int = 1 << 20
    max_memory_bytes: int = 16 << 20
    max_fuel: int = 500_000_000
    max_deadline_ms: int = 2_000


@dataclass(slots=True)
class _Load:
    data: bytearray
    next_block: int


@dataclass(slots=True)
class _Cached:
    digest: bytes  # SHA-256 of the stored signed manifest the instance was made for
    manifest: Manifest
    instance: ProgramInstance


class ProgramsFunction:
    """The ``ContainerFunction`` for sandboxed programs."""

    name = "programs"

    def __init__(self, sandbox: Sandbox | None = None, limits: DeviceLimits | None = None) -> None:
        self._sandbox = sandbox
        self.limits = limits or DeviceLimits()

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = default_sandbox()
        return self._sandbox

    def handles(self, ins: int) -> bool:
        return 0x10 <= ins <= 0x1F

    def destroy(self, ctx: FunctionContext) -> None:
        ctx.session.pop(SESSION_LOAD, None)
        ctx.session.pop(SESSION_INSTANCES, None)

    def process(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        handlers: dict[int, Callable[[FunctionContext, CommandApdu], ResponseApdu]] = {
            ProgramIns.PUT_SIGNING_KEY: self._put_signing_key,
            ProgramIns.LOAD: self._load,
            ProgramIns.LIST: self._list,
            ProgramIns.DELETE: self._delete,
            ProgramIns.PUT_KEY: self._put_key,
            ProgramIns.GENERATE_KEY: self._generate_key,
            ProgramIns.GET_PUBLIC_KEY: self._get_public_key,
            ProgramIns.DELETE_KEY: self._delete_key,
            ProgramIns.INVOKE: self._invoke,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            raise ApduError(SW.INS_NOT_SUPPORTED)
        return handler(ctx, command)

    # -- provider administration ------------------------------------------------------------------------

    @staticmethod
    def _require_provider(ctx: FunctionContext) -> None:
        if not ctx.rights.provider:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "provider channel required")

    def _put_signing_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        self._require_provider(ctx)
        if command.p2 != 0:
            raise ApduError(SW.INCORRECT_P1P2)
        try:
            key = SigningKey(SigningAlgorithm(command.p1), command.data)
        except ValueError:
            raise ApduError(SW.INCORRECT_DATA, "not a program-signing public key") from None
        ctx.store.put(SIGNING_KEY_KIND, SIGNING_KEY_NAME, key.to_bytes())
        return ResponseApdu.of(SW.OK)

    def _load(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        """GP 2.3.1 §11.6: blocks numbered from 00 in P2, P1 b8 set on the last one."""
        self._require_provider(ctx)
        if command.p1 not in (LoadP1.MORE_BLOCKS, LoadP1.LAST_BLOCK):
            raise ApduError(SW.INCORRECT_P1P2)
        if command.p2 == 0:
            ctx.session[SESSION_LOAD] = _Load(bytearray(), 0)
        state = ctx.session.get(SESSION_LOAD)
        if not isinstance(state, _Load) or state.next_block != command.p2:
            ctx.session.pop(SESSION_LOAD, None)
            raise ApduError(SW.INCORRECT_P1P2, "LOAD block out of sequence")
        if len(state.data) + len(command.data) > self.limits.max_load_bytes:
            ctx.session.pop(SESSION_LOAD, None)
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "load file too large")
        state.data += command.data
        state.next_block += 1  # at most 256 blocks: larger load files use extended-length blocks
        if command.p1 == LoadP1.MORE_BLOCKS:
            return ResponseApdu.of(SW.OK)
        ctx.session.pop(SESSION_LOAD, None)
        self._install(ctx, bytes(state.data))
        return ResponseApdu.of(SW.OK)

    def _install(self, ctx: FunctionContext, raw: bytes) -> None:
        try:
            load = LoadFile.parse(raw)
        except WireError as exc:
            raise ApduError(SW.INCORRECT_DATA, f"malformed load file: {exc}") from None
        record = ctx.store.get(SIGNING_KEY_KIND, SIGNING_KEY_NAME)
        if record is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no program-signing key installed")
        try:
            manifest = SigningKey.parse(record).verify(load.signed)
        except ManifestRejected as exc:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, str(exc)) from None
        if manifest.container_aid != container_aid(ctx.container_index):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "manifest names another container")
        if len(load.module) != manifest.module_size or hashlib.sha256(load.module).digest() != manifest.module_sha256:
            raise ApduError(SW.INCORRECT_DATA, "module does not match the manifest")
        if manifest.host_api != HOST_API_VERSION:
            raise ApduError(SW.FUNCTION_NOT_SUPPORTED, "unsupported host API version")
        if manifest.fuel > self.limits.max_fuel or manifest.deadline_ms > self.limits.max_deadline_ms:
            raise ApduError(SW.INCORRECT_DATA, "fuel or deadline above the device's limits")
        if manifest.memory_bytes > min(self.limits.max_memory_bytes, ctx.store.quota_bytes()):
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "requested memory exceeds the container's quota")
        name = bytes([manifest.program_id])
        old = self._manifest(ctx, manifest.program_id)
        if old is not None and manifest.version <= old.version:
            raise ApduError(SW.ALREADY_EXISTS, "an equal or newer version is installed")
        signed = load.signed.to_bytes()
        old_size = sum(len(v or b"") for v in (ctx.store.get(MANIFEST_KIND, name), ctx.store.get(MODULE_KIND, name)))
        if ctx.store.used_bytes() - old_size + len(signed) + len(load.module) > ctx.store.quota_bytes():
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "program does not fit the container's quota")
        try:
            self.sandbox.compile(load.module, manifest.memory_bytes)
        except ModuleRejected as exc:
            log.info("program %d refused: %s", manifest.program_id, exc)
            raise ApduError(SW.FUNCTION_NOT_SUPPORTED, f"module refused: {exc}") from None
        ctx.store.put(MODULE_KIND, name, load.module)
        ctx.store.put(MANIFEST_KIND, name, signed)
        self._drop_instance(ctx, manifest.program_id)
        log.info("program %d version %d installed", manifest.program_id, manifest.version)

    def _manifest(self, ctx: FunctionContext, program_id: int) -> Manifest | None:
        raw = ctx.store.get(MANIFEST_KIND, bytes([program_id]))
        if raw is None:
            return None
        return SignedManifest.parse(raw).manifest

    def _list(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        if not ctx.rights.allows(Access.HOLDER_OR_PROVIDER):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        out = bytearray()
        for name in sorted(ctx.store.names(MANIFEST_KIND)):
            manifest = self._manifest(ctx, name[0])
            if manifest is not None:
                count = len(ctx.store.names(data_kind(manifest.program_id)))
                out += ProgramInfo(manifest, count).to_bytes()
        return ResponseApdu.of(SW.OK, bytes(out))

    def _delete(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        self._require_provider(ctx)
        program_id = self._program_id(command.p1)
        name = bytes([program_id])
        if not ctx.store.delete(MANIFEST_KIND, name):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        ctx.store.delete(MODULE_KIND, name)
        kind = data_kind(program_id)
        for obj in ctx.store.names(kind):
            ctx.store.delete(kind, obj)
        self._drop_instance(ctx, program_id)
        return ResponseApdu.of(SW.OK)

    @staticmethod
    def _program_id(p1: int) -> int:
        if not MIN_PROGRAM_ID <= p1 <= MAX_PROGRAM_ID:
            raise ApduError(SW.INCORRECT_P1P2)
        return p1

    @staticmethod
    def _key_id(p1: int) -> bytes:
        if not MIN_KEY_ID <= p1 <= MAX_KEY_ID:
            raise ApduError(SW.INCORRECT_P1P2)
        return bytes([p1])

    @staticmethod
    def _key_type(p2: int) -> ProgramKeyType:
        try:
            key_type = ProgramKeyType(p2)
        except ValueError:
            raise ApduError(SW.INCORRECT_P1P2) from None
        return key_type

    def _put_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        self._require_provider(ctx)
        if not ctx.rights.security_level & SecurityLevel.C_DECRYPTION:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "key import needs C-DECRYPTION")
        name = self._key_id(command.p1)
        key_type = self._key_type(command.p2)
        try:
            check_key(key_type, command.data)
        except ValueError:
            raise ApduError(SW.INCORRECT_DATA, "not a key of that type") from None
        ctx.store.put(KEY_KIND, name, encode_key(key_type, command.data))
        return ResponseApdu.of(SW.OK)

    def _generate_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        self._require_provider(ctx)
        name = self._key_id(command.p1)
        key_type = self._key_type(command.p2)
        if key_type == ProgramKeyType.ED25519:
            secret = ctx.random(32)
        elif key_type == ProgramKeyType.ECDSA_P256:
            # FIPS 186-5 A.2.1: candidate mod (n-1) + 1 from 64 extra bits
            scalar = int.from_bytes(ctx.random(40), "big") % (P256_ORDER - 1) + 1
            secret = scalar.to_bytes(32, "big")
            ec.derive_private_key(scalar, ec.SECP256R1())
        else:
            raise ApduError(SW.INCORRECT_P1P2, "only signing keys are generated")
        ctx.store.put(KEY_KIND, name, encode_key(key_type, secret))
        return ResponseApdu.of(SW.OK, public_key(key_type, secret))

    def _get_public_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        raw = ctx.store.get(KEY_KIND, self._key_id(command.p1))
        if not raw:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        key_type = ProgramKeyType(raw[0])
        if key_type == ProgramKeyType.HMAC_SHA256:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "an HMAC key has no public part")
        return ResponseApdu.of(SW.OK, bytes([key_type]) + public_key(key_type, raw[1:]))

    def _delete_key(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        self._require_provider(ctx)
        if not ctx.store.delete(KEY_KIND, self._key_id(command.p1)):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return ResponseApdu.of(SW.OK)

    # -- running ----------------------------------------------------------------------------------------

    def _instances(self, ctx: FunctionContext) -> dict[int, _Cached]:
        cache = ctx.session.get(SESSION_INSTANCES)
        if not isinstance(cache, dict):
            cache = {}
            ctx.session[SESSION_INSTANCES] = cache
        return cache

    def _drop_instance(self, ctx: FunctionContext, program_id: int) -> None:
        self._instances(ctx).pop(program_id, None)

    def _invoke(self, ctx: FunctionContext, command: CommandApdu) -> ResponseApdu:
        program_id = self._program_id(command.p1)
        name = bytes([program_id])
        signed = ctx.store.get(MANIFEST_KIND, name)
        if signed is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such program")
        digest = hashlib.sha256(signed).digest()
        cache = self._instances(ctx)
        cached = cache.get(program_id)
        if cached is not None and (cached.digest != digest or cached.instance.broken):
            cached = None
        manifest = cached.manifest if cached is not None else SignedManifest.parse(signed).manifest
        if not ctx.rights.allows(Access(manifest.access)):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        try:
            if cached is None:
                cache.pop(program_id, None)
                module_bytes = ctx.store.get(MODULE_KIND, name)
                if module_bytes is None:
                    raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "program module missing")
                try:
                    module = self.sandbox.compile(module_bytes, manifest.memory_bytes)
                except ModuleRejected:
                    raise ApduError(SW.FUNCTION_NOT_SUPPORTED, "stored module no longer accepted") from None
                limits = Limits(manifest.memory_bytes, manifest.fuel, manifest.deadline_ms)
                cached = _Cached(digest, manifest, self.sandbox.instantiate(module, limits))
                cache[program_id] = cached
            result = cached.instance.call(
                ctx.store, data_kind(program_id), ctx.rights, ctx.random, command.p2, command.data
            )
        except ProgramTrap as trap:
            cache.pop(program_id, None)
            log.info("program %d call ended: %s", program_id, trap.sw.name)
            raise ApduError(trap.sw) from None
        return ResponseApdu(result.data, SW(result.sw))
