"""Pairwise subjects (OIDC Core §8.1)."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from tenantcard.idp.oidc.pairwise import pairwise_subject

SECRET = bytes(range(32))
DEVICE = "00112233445566778899"


def test_stable_for_one_sector() -> None:
    assert pairwise_subject(SECRET, "bank.example", DEVICE) == pairwise_subject(SECRET, "bank.example", DEVICE)


def test_differs_across_sectors_devices_and_secrets() -> None:
    base = pairwise_subject(SECRET, "bank.example", DEVICE)
    assert base != pairwise_subject(SECRET, "mail.example", DEVICE)
    assert base != pairwise_subject(SECRET, "bank.example", "00112233445566778898")
    assert base != pairwise_subject(bytes(32), "bank.example", DEVICE)


def test_is_unpadded_base64url_of_a_sha256_mac() -> None:
    sub = pairwise_subject(SECRET, "bank.example", DEVICE)
    assert len(sub) == 43 and "=" not in sub
    assert len(base64.urlsafe_b64decode(sub + "=")) == 32


def test_separator_keeps_sector_and_device_apart() -> None:
    assert pairwise_subject(SECRET, "a.example1", "23") != pairwise_subject(SECRET, "a.example", "123")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_no_collisions_between_two_sectors(sector_a: str, sector_b: str) -> None:
    if sector_a != sector_b and "\x00" not in sector_a + sector_b:
        assert pairwise_subject(SECRET, sector_a, DEVICE) != pairwise_subject(SECRET, sector_b, DEVICE)
