"""Holder consent: a request under a consent-requiring contract waits for its holder.

The provider receives an 8-digit one-time code with its request and shows it to the holder; the holder,
authenticated by their own credential, approves or refuses that request with the code. The code is stored
hashed, compared in constant time, works once, and too many wrong codes refuse the request.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from tenantcard.operator.db import repositories as repo
from tenantcard.operator.db.models import Authorization, AuthorizationStatus
from tenantcard.operator.services.core import Env
from tenantcard.operator.services.errors import Conflict, Forbidden, NotFound
from tenantcard.operator.services.placement import Outcome, Placement, consent_code_hash


class Consent:
    def __init__(self, env: Env, placement: Placement) -> None:
        self._env = env
        self._placement = placement

    def pending(self, holder_id: str) -> Sequence[Authorization]:
        with self._env.db.transaction() as s:
            ids = [d.id for d in repo.holder_devices(s, holder_id)]
            return repo.pending_consents(s, ids)

    def decide(self, holder_id: str, auth_id: str, code: str, approve: bool) -> Outcome:
        env = self._env
        actor = f"holder:{holder_id}"
        with env.db.transaction() as s:
            auth = repo.authorization(s, auth_id)
            device = repo.device(s, auth.device_id) if auth is not None else None
            if auth is None or device is None or device.holder_id != holder_id:
                raise NotFound("no such request")
            if auth.status != AuthorizationStatus.PENDING_CONSENT or auth.consent_code_hash is None:
                raise Conflict(f"the request is {auth.status}", code="not_pending")
            good = hmac.compare_digest(consent_code_hash(auth.id, code), auth.consent_code_hash)
            if not good:
                auth.consent_attempts += 1
                exhausted = auth.consent_attempts >= env.settings.consent_max_attempts
                if exhausted:
                    auth.status = AuthorizationStatus.REFUSED
                    auth.consent_code_hash = None
                    auth.error = "too_many_attempts"
                env.audit.append(s, actor, "consent.wrong_code", auth.id, {"refused": exhausted})
            else:
                auth.consent_code_hash = None
                auth.status = AuthorizationStatus.APPROVED if approve else AuthorizationStatus.REFUSED
                auth.updated_at = env.now()
                env.audit.append(s, actor, "consent.approved" if approve else "consent.refused", auth.id)
        if not good:
            raise Forbidden("wrong one-time code", code="wrong_code")
        return self._placement.progress(auth_id, None) if approve else self._placement.outcome(auth_id)
