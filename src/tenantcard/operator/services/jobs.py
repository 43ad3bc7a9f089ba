"""Resumable fleet jobs (contract end, device loss, fleet key rotation), kept in the database.

A job is a list of items, one per container (or device). The runner takes due items one at a time; an item is
marked done in the same transaction that records its effect, so a killed operator resumes with exactly the
items left. An unreachable device makes its item wait with exponential backoff
(``base * 2**attempts``, capped) until ``job_max_attempts``; then the item fails and the job reports it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import ItemStatus, Job, JobItem, JobKind, JobStatus
from tenantcard.operator.services.core import Env, new_id
from tenantcard.operator.services.errors import DeviceBusy, DeviceUnavailable, NotFound, OperatorError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    job_id: str
    kind: JobKind
    subject: str
    item_id: int
    device_id: str
    container_id: str | None


ItemHandler = Callable[[WorkItem], None]


class Jobs:
    def __init__(self, env: Env) -> None:
        self._env = env
        self.wakeup = threading.Event()

    def create(self, s: Session, kind: JobKind, subject: str, items: Sequence[tuple[str, str | None]]) -> Job:
        env = self._env
        now = env.now()
        job = Job(
            id=new_id("job", env.random),
            kind=kind.value,
            subject=subject,
            status=JobStatus.RUNNING if items else JobStatus.DONE,
            total=len(items),
            done=0,
            failed=0,
            created_at=now,
            updated_at=now,
        )
        s.add(job)
        s.flush()
        for device_id, container_id in items:
            s.add(JobItem(job_id=job.id, device_id=device_id, container_id=container_id, next_attempt_at=0.0))
        env.audit.append(
            s, "operator", "job.created", job.id, {"kind": kind.value, "subject": subject, "items": len(items)}
        )
        self.wakeup.set()
        return job

    def get(self, job_id: str) -> Job:
        with self._env.db.transaction() as s:
            job = repo.job(s, job_id)
        if job is None:
            raise NotFound("no such job")
        return job

    def recent(self) -> Sequence[Job]:
        with self._env.db.transaction() as s:
            return repo.jobs(s)

    def _due(self) -> list[WorkItem]:
        now = self._env.clock()
        with self._env.db.transaction() as s:
            rows = s.execute(
                select(JobItem, Job)
                .join(Job, Job.id == JobItem.job_id)
                .where(
                    Job.status == JobStatus.RUNNING,
                    JobItem.status == ItemStatus.PENDING,
                    JobItem.next_attempt_at <= now,
                )
                .order_by(Job.created_at, JobItem.id)
                .limit(50)
            ).all()
            return [
                WorkItem(job.id, JobKind(job.kind), job.subject, item.id, item.device_id, item.container_id)
                for item, job in rows
            ]

    def run_due(self, handler: ItemHandler, *, stop: threading.Event | None = None) -> int:
        """Process every item due now; returns how many were attempted."""
        env = self._env
        attempted = 0
        for work in self._due():
            if stop is not None and stop.is_set():
                break
            attempted += 1
            error: str | None = None
            try:
                handler(work)
            except (DeviceUnavailable, DeviceBusy) as exc:
                error = exc.code
            except OperatorError as exc:  # a permanent refusal: no point retrying
                error = "!" + exc.code
            except Exception:  # unexpected: counted as an attempt, retried with backoff, never lost
                log.exception("job item %s failed unexpectedly", work.item_id)
                error = "internal_error"
            self._finish(work, error)
            if env.settings.job_item_delay_seconds:
                time.sleep(env.settings.job_item_delay_seconds)
        return attempted

    def _finish(self, work: WorkItem, error: str | None) -> None:
        env = self._env
        settings = env.settings
        with env.db.transaction() as s:
            item = s.get(JobItem, work.item_id, with_for_update=True)  # two runners never count one item twice
            job = repo.job(s, work.job_id, for_update=True)
            if item is None or job is None or item.status != ItemStatus.PENDING:
                return
            item.attempts += 1
            if error is None:
                item.status = ItemStatus.DONE
                item.last_error = None
                job.done += 1
            elif error.startswith("!") or item.attempts >= settings.job_max_attempts:
                item.status = ItemStatus.FAILED
                item.last_error = error.lstrip("!")
                job.failed += 1
            else:
                delay = min(settings.job_retry_base_seconds * 2 ** (item.attempts - 1), settings.job_retry_max_seconds)
                item.next_attempt_at = env.clock() + delay
                item.last_error = error
            job.updated_at = env.now()
            if job.done + job.failed >= job.total:
                job.status = JobStatus.DONE if job.failed == 0 else JobStatus.FAILED
                env.audit.append(s, "operator", "job.finished", job.id, {"done": job.done, "failed": job.failed})


class JobRunner:
    """Background thread: runs due job items and the periodic expiry sweep until stopped."""

    def __init__(self, env: Env, jobs: Jobs, handler: ItemHandler, sweep: Callable[[], int]) -> None:
        self._env = env
        self._jobs = jobs
        self._handler = handler
        self._sweep = sweep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="operator-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._jobs.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        settings = self._env.settings
        next_sweep = 0.0
        while not self._stop.is_set():
            try:
                self._jobs.run_due(self._handler, stop=self._stop)
                if time.monotonic() >= next_sweep:
                    self._sweep()
                    next_sweep = time.monotonic() + settings.sweep_seconds
            except Exception:  # keep the runner alive; the item stays pending and is retried
                log.exception("job runner iteration failed")
            self._jobs.wakeup.wait(settings.job_poll_seconds)
            self._jobs.wakeup.clear()
