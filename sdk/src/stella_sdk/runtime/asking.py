"""Asking a queue group until one replica accepts: session claims and agent dispatch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from stella_contracts.claims import REASON_ENDED

RETRY_PAUSE_S = 0.1


@dataclass(frozen=True, slots=True)
class Answer:
    """A replica's reply to a claim, whatever the request was."""

    accepted: bool
    instance: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Asked:
    """Who accepted (``answer``), or why nobody did (``reasons``, each said once)."""

    answer: Answer | None
    reasons: list[str]
    nobody_listens: bool = False  # no subject asked had any subscriber at all


async def ask_until_accepted(
    nc: NATS,
    targets: Sequence[str],
    body: bytes,
    parse: Callable[[bytes], Answer],
    timeout: float,
    *,
    who: str = "replica",
    wait_for_replica: bool = True,
) -> Asked:
    """Ask each subject in turn (a queue group each) until a replica accepts.

    A refusal (draining, at capacity) lets the group pick again until ``timeout``; with no
    replica up yet, one starting within the deadline still gets the session
    (``wait_for_replica``; else the next subject is asked at once). A request that
    is not answered is *not* asked again: the replica may be taking the session slowly,
    and a second one would then serve it too. ``session ended`` stops at once.
    """
    reasons: list[str] = []
    unheard: set[str] = set()

    def note(reason: str) -> None:  # retries repeat themselves; say each reason once
        if reason not in reasons:
            reasons.append(reason)

    deadline = time.monotonic() + timeout
    for subject in targets:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await nc.request(subject, body, timeout=remaining)
            except NoRespondersError:
                note(f"no {who} is running on {subject}")
                unheard.add(subject)
                if not wait_for_replica:
                    break  # ask the next subject (a room's runner, then the agent's pool)
            except (TimeoutError, NatsTimeout):
                note(f"a {who} did not answer on {subject} within {remaining:.1f} s")
                return Asked(None, reasons)
            else:
                answer = parse(msg.data)
                if answer.accepted:
                    return Asked(answer, reasons)
                note(f"{answer.instance}: {answer.reason}")
                if answer.reason == REASON_ENDED:
                    return Asked(None, reasons)
            await asyncio.sleep(min(RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
    return Asked(None, reasons, nobody_listens=len(unheard) == len(targets))
