"""The scenario as a list of steps: phase 0 (servers, manufacture, contracts), then the seed's three phases for
each of the three providers."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from tenantcard.scenario.runner import Step
from tenantcard.scenario.tenants import Mail, Tenant, pairwise_subjects
from tenantcard.scenario.trace import Expect, Phase
from tenantcard.scenario.world import World

OPERATOR, DEVICE, IDP, HOLDER = "operator", "device", "idp", "holder"
ACTORS_ORDER = (OPERATOR, DEVICE, HOLDER, IDP)


def build_plan(world: World, tenants: Sequence[Tenant]) -> list[Step]:
    P0, P1, P2, P3 = Phase.MANUFACTURE, Phase.INITIALIZATION, Phase.ACCESS, Phase.REVOCATION
    servers = (OPERATOR, DEVICE)
    steps = [
        Step(P0, OPERATOR, "start the operator", world.start_operator),
        Step(P0, OPERATOR, "manufacture the device", world.manufacture),
        Step(P0, DEVICE, "start the device", world.start_device, needs=(OPERATOR,)),
        Step(P0, DEVICE, "check in its address", world.check_in, needs=(OPERATOR,)),
        Step(P0, HOLDER, "enrol the holder", world.enrol_holder, needs=servers),
    ]
    for t in tenants:
        steps.append(Step(P0, t.key, "contract with the operator", t.contract, needs=(OPERATOR,)))
    for t in tenants:
        steps.append(Step(P0, t.key, "register at the identity provider", t.register_at_idp, needs=(OPERATOR,)))
    steps.append(Step(P0, IDP, "register at the operator", world.register_idp, needs=(OPERATOR,)))
    steps.append(Step(P0, IDP, "start the identity provider", world.start_idp, needs=(OPERATOR,)))

    for t in tenants:  # phase 1, seed Fig. 2
        steps += [
            Step(P1, t.key, "request a container", t.request_container, needs=servers),
            Step(P1, t.key, "take ownership (PUT KEY)", t.take_ownership, needs=servers),
            Step(P1, t.key, "replay the authorization", t.replay_authorization, Expect.FAILURE, needs=servers),
            Step(P1, t.key, f"personalize: {t.function}", t.personalize, needs=servers),
        ]

    with_idp = (*servers, IDP)
    for t in tenants:  # phase 2, seed Fig. 3
        steps += [
            Step(P2, t.key, "log the holder in (OIDC)", t.login, needs=with_idp),
            Step(P2, t.key, "open SCP03 at the token's address", t.open_channel, needs=with_idp),
        ]
        if isinstance(t, Mail):
            steps.append(Step(P2, t.key, "ask a code without the PIN", t.code_without_pin, Expect.FAILURE, with_idp))
        steps.append(Step(P2, t.key, f"use: {t.function}", t.use, needs=with_idp))
    for t, other in zip(tenants, [*tenants[1:], tenants[0]], strict=True):  # invariant 2, on the wire
        steps.append(
            Step(
                P2,
                t.key,
                f"open {other.display}'s container",
                functools.partial(t.others_keys_refused, other),
                Expect.FAILURE,
                needs=(*with_idp, other.key),
            )
        )

    steps.append(
        Step(
            P2,
            IDP,
            "pairwise subjects",
            functools.partial(pairwise_subjects, list(tenants)),
            needs=(*with_idp, *(t.key for t in tenants)),
        )
    )

    steps += [  # phase 3, seed Fig. 4
        Step(P3, HOLDER, "report the device lost", world.report_lost, needs=servers),
        Step(P3, OPERATOR, "revoke every container", world.wait_revocation, needs=(*servers, HOLDER)),
    ]
    for t in tenants:
        steps += [
            Step(P3, t.key, "log in again", t.login_after_loss, Expect.FAILURE, needs=(*with_idp, OPERATOR)),
            Step(P3, t.key, "open SCP03 again", t.channel_after_revocation, Expect.FAILURE, needs=servers),
            Step(P3, t.key, "look the container up", t.container_after_revocation, Expect.FAILURE, needs=servers),
        ]
    return steps
