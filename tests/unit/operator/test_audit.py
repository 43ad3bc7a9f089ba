"""The audit log: hash chain, reading, and detection of an edited, removed or reordered entry."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from sqlalchemy import delete, select, update

from tenantcard.operator.db.models import AuditEntry, AuditHead
from tenantcard.operator.services.audit import GENESIS, entry_hash
from tenantcard.operator.services.facade import OperatorServices
from tenantcard.operator.settings import OperatorSettings


def _fill(services: OperatorServices, n: int = 5) -> None:
    env = services.env
    for i in range(n):
        with env.db.transaction() as s:
            env.audit.append(s, "admin", "test.action", f"subject-{i}", {"i": i, "note": "ünïcode"})


def test_chain_links_every_entry(services: OperatorServices) -> None:
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        records = env.audit.read(s, limit=100)
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[0].prev_hash == GENESIS
        for prev, cur in itertools.pairwise(records):
            assert cur.prev_hash == prev.hash
        r = records[2]
        assert r.hash == entry_hash(r.seq, r.at, r.actor, r.action, r.subject, json.dumps(r.details), r.prev_hash)
        assert env.audit.verify(s).ok
        assert env.audit.read(s, after=3, limit=1)[0].seq == 4
        assert [x.subject for x in env.audit.read(s, subject="subject-1")] == ["subject-1"]


def test_rolled_back_action_leaves_no_entry(services: OperatorServices) -> None:
    env = services.env
    with pytest.raises(RuntimeError), env.db.transaction() as s:
        env.audit.append(s, "admin", "test.action", "x")
        raise RuntimeError("the action failed")
    with env.db.transaction() as s:
        assert env.audit.read(s) == []
        assert env.audit.verify(s).ok


def test_edited_entry_is_found(services: OperatorServices) -> None:
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="provider:someone-else"))
    with env.db.transaction() as s:
        report = env.audit.verify(s)
    assert not report.ok and report.first_bad_seq == 3 and "altered" in report.problem


def test_edited_details_are_found(services: OperatorServices) -> None:
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(details='{"i": 99}'))
    with env.db.transaction() as s:
        assert env.audit.verify(s).first_bad_seq == 2


def test_removed_entry_is_found(services: OperatorServices) -> None:
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    with env.db.transaction() as s:
        report = env.audit.verify(s)
    assert not report.ok and report.first_bad_seq == 2 and "missing" in report.problem


def test_removed_last_entry_is_found(services: OperatorServices) -> None:
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
    with env.db.transaction() as s:
        report = env.audit.verify(s)
    assert not report.ok and "ends at 4" in report.problem


def test_recomputed_hash_is_found_by_the_next_link(services: OperatorServices) -> None:
    """An attacker who edits an entry and fixes its own hash still breaks the next entry's link."""
    _fill(services)
    env = services.env
    with env.db.transaction() as s:
        e = s.execute(select(AuditEntry).where(AuditEntry.seq == 2)).scalar_one()
        e.subject = "forged"
        e.hash = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash)
    with env.db.transaction() as s:
        assert env.audit.verify(s).first_bad_seq == 3


def test_verify_command_exits_non_zero_on_tampering(services: OperatorServices, settings: OperatorSettings) -> None:
    _fill(services, 3)
    env = services.env
    cmd = [sys.executable, "-m", "tenantcard.cli.main", "operator", "audit", "verify"]
    cmd += ["--db", settings.db_url, "--vault", settings.vault_uri]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 3 entries" in ok.stdout
    with env.db.transaction() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(action="test.other"))
        s.execute(update(AuditHead).values(seq=3))
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stderr and "first bad entry 1" in bad.stderr
