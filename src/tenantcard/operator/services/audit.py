"""Append-only, hash-chained audit log.

Entry ``n`` stores ``prev_hash`` (the hash of entry ``n-1``; 64 zeros for the first) and
``hash = SHA-256(canonical JSON of {seq, at, actor, action, subject, details, prev_hash})``. The single
``audit_head`` row holds the last sequence number and hash; appends lock it, so entries are gap-free and
ordered even with several operator processes. Verification recomputes every hash, checks every link and
that the sequence has no gap and ends at the head: an edited, removed or reordered entry is found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenantcard.operator.db.models import AuditEntry, AuditHead

GENESIS = "0" * 64
_PAGE = 1000


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(seq: int, at: int, actor: str, action: str, subject: str, details: str, prev_hash: str) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": json.loads(details),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        entry.seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        json.loads(entry.details),
        entry.prev_hash,
        entry.hash,
    )


class AuditLog:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def append(
        self, session: Session, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None
    ) -> AuditRecord:
        """Add an entry in ``session``'s transaction (it commits or rolls back with the action it records)."""
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        seq = head.seq + 1
        at = int(self._clock())
        text = canonical_json(dict(details or {})).decode()
        digest = entry_hash(seq, at, actor, action, subject, text, head.hash)
        entry = AuditEntry(
            seq=seq, at=at, actor=actor, action=action, subject=subject, details=text, prev_hash=head.hash, hash=digest
        )
        session.add(entry)
        head.seq = seq
        head.hash = digest
        session.flush()
        return _record(entry)

    def read(
        self,
        session: Session,
        *,
        after: int = 0,
        limit: int = 100,
        subject: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        query = select(AuditEntry).where(AuditEntry.seq > after)
        if subject is not None:
            query = query.where(AuditEntry.subject == subject)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        rows = session.execute(query.order_by(AuditEntry.seq).limit(limit)).scalars()
        return [_record(r) for r in rows]

    def _all(self, session: Session) -> Iterator[AuditEntry]:
        after = 0
        while True:
            page = list(
                session.execute(
                    select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(_PAGE)
                ).scalars()
            )
            if not page:
                return
            yield from page
            after = page[-1].seq

    def verify(self, session: Session) -> VerifyReport:
        head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
        expected_prev = GENESIS
        expected_seq = 1
        count = 0
        for entry in self._all(session):
            if entry.seq != expected_seq:
                return VerifyReport(False, count, expected_seq, f"entry {expected_seq} is missing")
            if entry.prev_hash != expected_prev:
                return VerifyReport(False, count, entry.seq, f"entry {entry.seq} does not link to its predecessor")
            try:
                digest = entry_hash(
                    entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.details, entry.prev_hash
                )
            except ValueError:
                return VerifyReport(False, count, entry.seq, f"entry {entry.seq} has unreadable details")
            if digest != entry.hash:
                return VerifyReport(False, count, entry.seq, f"entry {entry.seq} was altered")
            expected_prev = entry.hash
            expected_seq += 1
            count += 1
        if head.seq != count or head.hash != expected_prev:
            return VerifyReport(False, count, count + 1, f"the log ends at {count} but its head says {head.seq}")
        return VerifyReport(True, count)
