"""Links that open and close with the contact plan, on the node's clock.

For every configured neighbour (one with a URL) that the plan gives this node contacts to, one task follows the
neighbour's contact windows (``dtn.routing.plan_router.ContactWindow``, DTN time):

* at a window's start it opens the link (TCPCLv4: a session is brought up; UDP and in-memory links: a link paced
  at the contact's rate, scaled by the clock rate, since the CL paces in real time) and keeps it open during the
  window, reopening it with a short backoff when it drops;
* when the link cannot be opened the host is told the contact is being missed (``contact_missed``: CGR routes
  the bundles that waited for it onto later contacts) and the task tries again while the window lasts;
* at the window's end it closes the link it opened (TCPCLv4: SESS_TERM, then the connection ends) and tells the
  host the contact is over (``contact_over``).

Waits are computed from the clock (``ScaledClock`` runs ``rate`` times faster than the loop) and are cut short
whenever the plan is replaced or the link drops. The module does not decide routes: the host wires it to the
router and the agent (see ``dtn.node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from dtn.clock import Clock
from dtn.convergence.base import Link
from dtn.errors import DtnError
from dtn.routing.plan_router import ContactWindow

log = logging.getLogger("dtn.contacts")

#: First and largest pause (real seconds) between attempts to open the link of a contact that is on.
RETRY_MIN_S = 0.05
RETRY_MAX_S = 5.0
#: How long closing a link at the end of its contact may take (real seconds).
CLOSE_TIMEOUT_S = 10.0


class ContactHost(Protocol):
    """What the schedule needs from the node."""

    clock: Clock

    async def open_link(self, node_id: str, url: str, rate_bytes_per_s: float | None) -> Link:
        """Open (and register) a link to ``node_id`` at ``url``; raise OSError/TimeoutError/DtnError."""
        ...

    def contact_missed(self, node_id: str, detail: str) -> None: ...

    def contact_over(self, node_id: str) -> None: ...


def clock_rate(clock: Clock) -> float:
    rate = getattr(clock, "rate", 1.0)
    return float(rate) if isinstance(rate, int | float) and rate > 0 else 1.0


def window_at(windows: list[ContactWindow], dtn_ms: int) -> ContactWindow | None:
    for w in windows:
        if w.start_ms <= dtn_ms < w.end_ms:
            return w
    return None


def next_window(windows: list[ContactWindow], dtn_ms: int) -> ContactWindow | None:
    starts = [w for w in windows if w.start_ms > dtn_ms]
    return min(starts, key=lambda w: w.start_ms) if starts else None


@dataclass(eq=False)
class _Planned:
    node_id: str
    url: str
    windows: list[ContactWindow]
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    link: Link | None = None
    window: ContactWindow | None = None
    task: asyncio.Task[None] | None = None


class ContactSchedule:
    """One task per planned neighbour; ``update`` replaces the windows, ``close`` stops everything."""

    def __init__(self, host: ContactHost) -> None:
        self.host = host
        self._planned: dict[str, _Planned] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def neighbours(self) -> set[str]:
        return set(self._planned)

    def windows(self, node_id: str) -> list[ContactWindow]:
        planned = self._planned.get(node_id)
        return list(planned.windows) if planned is not None else []

    def link_of(self, node_id: str) -> Link | None:
        planned = self._planned.get(node_id)
        return planned.link if planned is not None else None

    def update(self, entries: dict[str, tuple[str, list[ContactWindow]]]) -> None:
        """Follow ``entries`` (node ID -> (url, windows)) from now on: new neighbours get a task, neighbours no
        longer listed lose theirs (and the link it opened), the others see their new windows at once."""
        for node_id in list(self._planned):
            if node_id not in entries:
                planned = self._planned.pop(node_id)
                if planned.task is not None:
                    planned.task.cancel()
                self._close_later(planned)
        for node_id, (url, windows) in entries.items():
            known = self._planned.get(node_id)
            if known is not None and known.url == url:
                known.windows = list(windows)
                known.changed.set()
                continue
            if known is not None:
                if known.task is not None:
                    known.task.cancel()
                self._close_later(known)
            planned = _Planned(node_id, url, list(windows))
            self._planned[node_id] = planned
            planned.task = asyncio.create_task(self._follow(planned), name=f"dtn-contacts {node_id}")

    def link_gone(self, link: Link) -> None:
        """A link went down: the task that opened it reopens it if its contact is still on."""
        for planned in self._planned.values():
            if planned.link is link:
                planned.changed.set()

    async def close(self) -> None:
        tasks = [p.task for p in self._planned.values() if p.task is not None]
        self._planned.clear()
        for task in tasks:
            task.cancel()
        for task in [*tasks, *self._closing]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the per-neighbour task --------------------------------------------------------------------------------

    def _close_later(self, planned: _Planned) -> None:
        link, planned.link = planned.link, None
        if link is None:
            return
        task = asyncio.create_task(self._close_link(link), name=f"dtn-contacts close {planned.node_id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_link(link: Link) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await link.close()
        except (TimeoutError, OSError, DtnError) as exc:
            log.info("closing link %s at the end of its contact: %s", link.link_id, exc)

    async def _wait(self, planned: _Planned, until_ms: int | None) -> None:
        """Until DTN time ``until_ms`` (None: forever) or until something changes."""
        timeout = None
        if until_ms is not None:
            timeout = max(0.0, (until_ms - self.host.clock.dtn_ms()) / 1000 / clock_rate(self.host.clock))
        try:
            async with asyncio.timeout(timeout):
                await planned.changed.wait()
        except TimeoutError:
            return

    async def _end_contact(self, planned: _Planned) -> None:
        link, planned.link = planned.link, None
        window, planned.window = planned.window, None
        if link is not None:
            log.info("contact with %s over: closing %s", planned.node_id, link.link_id)
            await self._close_link(link)
        if window is not None:
            self.host.contact_over(planned.node_id)

    async def _follow(self, planned: _Planned) -> None:
        retry_s = RETRY_MIN_S
        clock = self.host.clock
        while True:
            planned.changed.clear()
            now_ms = clock.dtn_ms()
            current = window_at(planned.windows, now_ms)
            if current is None:
                if planned.window is not None or planned.link is not None:
                    await self._end_contact(planned)
                    continue
                upcoming = next_window(planned.windows, now_ms)
                await self._wait(planned, upcoming.start_ms if upcoming is not None else None)
                continue
            if planned.window is not None and planned.window != current:
                if planned.link is not None and planned.link.is_up:
                    self._set_rate(planned.link, current.rate_bytes_per_s * clock_rate(clock))  # keep the link
                else:
                    self.host.contact_over(planned.node_id)
            elif planned.window is None:
                retry_s = RETRY_MIN_S
                self.host.contact_over(planned.node_id)  # a new contact: whatever was missed before is past
            planned.window = current
            if planned.link is not None and planned.link.is_up:
                await self._wait(planned, current.end_ms)
                continue
            planned.link = None
            rate = current.rate_bytes_per_s * clock_rate(clock)
            try:
                planned.link = await self.host.open_link(planned.node_id, planned.url, rate)
            except (OSError, TimeoutError, DtnError) as exc:
                log.info("contact with %s: cannot open %s: %s", planned.node_id, planned.url, exc)
                self.host.contact_missed(planned.node_id, str(exc))
                pause_ms = clock.dtn_ms() + round(retry_s * 1000 * clock_rate(clock))
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                await self._wait(planned, min(current.end_ms, pause_ms))
                continue
            retry_s = RETRY_MIN_S
            log.info("contact with %s on until DTN %d ms: %s", planned.node_id, current.end_ms,
                     planned.link.link_id)

    @staticmethod
    def _set_rate(link: Link, rate_bytes_per_s: float) -> None:
        """A paced link (UDP) moving on to a contact at another rate paces at the new one."""
        set_rate = getattr(link, "set_rate", None)
        if callable(set_rate) and link.limits.rate_bytes_per_s is not None:
            set_rate(rate_bytes_per_s)
