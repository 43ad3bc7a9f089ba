"""The manifest's wire format and its signature: one canonical signed form, both signing algorithms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantcard.device.programs.manifest import ManifestRejected, SigningKey
from tenantcard.provider.programs import (
    algorithm_of,
    generate_signing_key,
    load_signing_key,
    make_manifest,
    public_key_bytes,
    save_signing_key,
    sign_manifest,
)
from tenantcard.wire.errors import WireError
from tenantcard.wire.programs import (
    MANIFEST_SIGNING_DOMAIN,
    LoadFile,
    Manifest,
    ProgramInfo,
    SignedManifest,
    SigningAlgorithm,
    valid_program_sw,
)

AID = bytes.fromhex("F07463000001")


def manifest(**fields: object) -> Manifest:
    base: dict[str, object] = {"container_aid": AID, "program_id": 3, "version": 7, "name": "ctr"}
    return make_manifest(b"\x00asm\x01\x00\x00\x00", **{**base, **fields})  # type: ignore[arg-type]


@given(
    program_id=st.integers(1, 254),
    version=st.integers(0, 0xFFFFFFFF),
    fuel=st.integers(1, 2**64 - 1),
    access=st.integers(0, 3),
    name=st.text(max_size=8),
)
def test_roundtrip(program_id: int, version: int, fuel: int, access: int, name: str) -> None:
    m = manifest(program_id=program_id, version=version, fuel=fuel, access=access, name=name)
    assert Manifest.parse(m.to_bytes()) == m
    signed = SignedManifest(m, b"\x01" * 64)
    assert SignedManifest.parse(signed.to_bytes()) == signed
    assert LoadFile.parse(LoadFile(signed, b"mod").to_bytes()) == LoadFile(signed, b"mod")
    assert m.signing_input().startswith(MANIFEST_SIGNING_DOMAIN)


def test_only_the_canonical_encoding_parses() -> None:
    body = manifest().to_bytes()
    with pytest.raises(WireError):
        Manifest.parse(body + b"\x8a\x00")  # a repeated field
    reordered = body[3:] + body[:3]  # the format field moved to the end
    with pytest.raises(WireError, match="canonical"):
        Manifest.parse(reordered)
    padded = body.replace(b"\x81\x01\x03", b"\x81\x02\x00\x03")  # program id in two bytes
    with pytest.raises(WireError):
        Manifest.parse(padded)
    for bad in (b"", b"\x80\x01\x02", b"\xe1\x00", b"\x80"):
        with pytest.raises(WireError):
            Manifest.parse(bad)
    with pytest.raises(WireError):
        manifest(program_id=0)
    with pytest.raises(WireError):
        manifest(name="x" * 33)


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
def test_signature_verifies_only_with_the_right_key_and_body(algorithm: SigningAlgorithm) -> None:
    key = generate_signing_key(algorithm)
    assert algorithm_of(key) == algorithm
    trusted = SigningKey(algorithm, public_key_bytes(key))
    assert SigningKey.parse(trusted.to_bytes()) == trusted
    signed = sign_manifest(key, manifest())
    assert trusted.verify(signed) == signed.manifest
    with pytest.raises(ManifestRejected):
        trusted.verify(SignedManifest(manifest(version=8), signed.signature))
    other = SigningKey(algorithm, public_key_bytes(generate_signing_key(algorithm)))
    with pytest.raises(ManifestRejected):
        other.verify(signed)


def test_bad_public_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        SigningKey(SigningAlgorithm.ED25519, b"\x00" * 31)
    with pytest.raises(ValueError):
        SigningKey(SigningAlgorithm.ECDSA_P256_SHA256, b"\x04" + b"\x00" * 64)  # not on the curve


def test_key_files(tmp_path) -> None:
    key = generate_signing_key(SigningAlgorithm.ECDSA_P256_SHA256)
    save_signing_key(key, tmp_path / "k.pem", b"pw")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert public_key_bytes(load_signing_key(tmp_path / "k.pem", b"pw")) == public_key_bytes(key)
    assert b"PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()


def test_program_list_and_status_words() -> None:
    entries = [ProgramInfo(manifest(), 2), ProgramInfo(manifest(program_id=9), 0)]
    assert ProgramInfo.parse_list(b"".join(e.to_bytes() for e in entries)) == entries
    with pytest.raises(WireError):
        ProgramInfo.parse_list(b"\xe3\x00")
    assert valid_program_sw(0x9000) and valid_program_sw(0x63C2) and valid_program_sw(0x6F00)
    assert not any(valid_program_sw(sw) for sw in (0x6100, 0x6C10, 0x6F01, 0x6F0F, 0x0000, 0xA000, 0x5000))
