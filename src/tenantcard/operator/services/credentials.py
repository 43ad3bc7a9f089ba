"""Bearer credentials of providers, holders and identity providers, the staff credential, and the per-source failure limit.

A credential reads ``tc<kind>_<key id>.<secret>``: the key id finds the row, the 256-bit secret is checked
against ``HMAC-SHA256(pepper, secret)`` in constant time. The pepper is derived from a random seed kept
wrapped by the custody, so a database dump alone cannot test guesses. A credential is shown once, when issued.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select

from tenantcard.operator.db.models import Credential, CredentialKind, IdentityProvider, Provider, Secret
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.custody import credential_hash, derive_pepper
from tenantcard.operator.services.errors import NotFound, RateLimited, Unauthenticated

_PREFIX = {CredentialKind.PROVIDER: "tcp", CredentialKind.HOLDER: "tch", CredentialKind.IDP: "tci"}
_PEPPER_NAME = "credential-pepper"
_MAX_TOKEN = 200

Subject = TypeVar("Subject", Provider, IdentityProvider)


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin", "provider", "holder" or "idp"
    subject_id: str

    @property
    def actor(self) -> str:
        return "admin" if self.kind == "admin" else f"{self.kind}:{self.subject_id}"


class Credentials:
    def __init__(self, env: Env) -> None:
        self._env = env
        self._pepper: bytes | None = None
        self._lock = threading.Lock()

    def _get_pepper(self) -> bytes:
        with self._lock:
            if self._pepper is None:
                env = self._env
                with env.db.transaction() as s:
                    row = s.get(Secret, _PEPPER_NAME)
                    if row is None:
                        row = Secret(
                            name=_PEPPER_NAME,
                            wrapped=env.custody.wrap(f"secret:{_PEPPER_NAME}", env.random(32)),
                            public="",
                            created_at=env.now(),
                        )
                        s.add(row)
                    seed = env.custody.unwrap(f"secret:{_PEPPER_NAME}", row.wrapped)
                self._pepper = derive_pepper(seed)
            return self._pepper

    def issue(self, kind: CredentialKind, subject_id: str) -> str:
        """A new credential for ``subject_id``; the only time its secret exists outside the caller."""
        env = self._env
        key_id = env.random(8).hex()
        secret = base64.urlsafe_b64encode(env.random(32)).rstrip(b"=").decode()
        with env.db.transaction() as s:
            s.add(
                Credential(
                    key_id=key_id,
                    kind=kind.value,
                    subject_id=subject_id,
                    key_hash=credential_hash(self._get_pepper(), secret),
                    created_at=env.now(),
                )
            )
        return f"{_PREFIX[kind]}_{key_id}.{secret}"

    def revoke_all(self, subject_id: str) -> None:
        env = self._env
        with env.db.transaction() as s:
            for cred in s.execute(select(Credential).where(Credential.subject_id == subject_id)).scalars():
                if cred.revoked_at is None:
                    cred.revoked_at = env.now()

    def rotate(self, kind: CredentialKind, model: type[Subject], subject_id: str, missing: str) -> tuple[Subject, str]:
        """Replace every credential of the ``model`` row ``subject_id`` by a new one (shown once), audited by
        staff as ``<kind>.credential_rotated``; NotFound(``missing``) when there is no such row."""
        env = self._env
        with env.db.transaction() as s:
            subject = s.get(model, subject_id)
            if subject is None:
                raise NotFound(missing)
            env.audit.append(s, "admin", f"{kind.value}.credential_rotated", subject_id)
        self.revoke_all(subject_id)
        return subject, self.issue(kind, subject_id)

    def authenticate(self, token: str) -> Principal:
        """The principal a provider, holder or identity-provider credential names; Unauthenticated otherwise."""
        bad = Unauthenticated("invalid credential")
        if len(token) > _MAX_TOKEN or "_" not in token or "." not in token:
            raise bad
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition(".")
        kinds = {v: k for k, v in _PREFIX.items()}
        if prefix not in kinds or not key_id or not secret:
            raise bad
        with self._env.db.transaction() as s:
            cred = s.get(Credential, key_id)
        expected = cred.key_hash if cred is not None else bytes(32)
        ok = hmac.compare_digest(credential_hash(self._get_pepper(), secret), expected)
        if cred is None or not ok or cred.revoked_at is not None or cred.kind != kinds[prefix].value:
            raise bad
        return Principal(cred.kind, cred.subject_id)


class FailureLimiter:
    """At most ``limit`` credential failures per source within ``window`` seconds; then 429 until the oldest
    failure leaves the window. In memory, per process."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, source: str, now: float) -> deque[float]:
        q = self._failures.setdefault(source, deque())
        while q and q[0] <= now - self._window:
            q.popleft()
        return q

    def check(self, source: str) -> None:
        now = self._clock()
        with self._lock:
            q = self._prune(source, now)
            if len(q) >= self._limit:
                raise RateLimited(
                    "too many credential failures from this source", retry_after=q[0] + self._window - now
                )
            if not q:
                self._failures.pop(source, None)

    def failure(self, source: str) -> None:
        now = self._clock()
        with self._lock:
            self._prune(source, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a flood of sources
                self._failures = {k: v for k, v in self._failures.items() if v}
