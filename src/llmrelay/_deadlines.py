"""``Deadlines``: one timeout of a fixed length for many tasks of one event loop, without a timer each.

``asyncio.timeout(d)`` costs, per use, two coroutines (its ``__aenter__`` / ``__aexit__``), a
``TimerHandle`` (with a copy of the context) pushed on the loop's heap, and that handle's cancellation,
which leaves it in the heap until the loop sweeps it out. A transport arms the same timeout
(``Timeouts.first_byte``) around every request: at 64 requests in flight that bookkeeping was 5-9% of a
small request's whole cost (``bench/``).

Every deadline armed here has the same length, so they fall due in the order they were armed: a FIFO
queue holds them, and one loop timer, set for the oldest, stands for all of them. Arming appends an
entry, disarming marks it dead (dead entries at the head are dropped at once, the rest when the queue
holds more dead than live ones), and when the timer fires it cancels the tasks whose deadline has
passed, drops the dead, and sets itself for the next live entry. A live deadline never fires late: every
entry behind the timer's falls due no earlier. Nor early: the timer, set for a dead entry's time, finds
nothing due and is set again.

Expiry is what ``asyncio.timeout`` does: the task is cancelled, and the code that armed the deadline turns
that ``CancelledError`` into its own timeout error when ``expired(entry)`` says it was this deadline's
(``Task.uncancel`` brings the task's cancel count back to what it was when armed). A cancellation that
came from elsewhere stays a cancellation.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Deadline", "Deadlines"]

_COMPACT_AT = 64
"""Dead entries that may wait inside the queue before it is rebuilt (when they outnumber the live)."""


class Deadline:
    """One armed deadline: the task to cancel at ``at`` (loop time) and what the task's cancel count was
    when armed. ``live`` until disarmed or fired; ``fired`` once it cancelled the task."""

    __slots__ = ("at", "cancelling", "fired", "live", "task")

    def __init__(self, at: float, task: asyncio.Task[object], cancelling: int) -> None:
        self.at = at
        self.task = task
        self.cancelling = cancelling
        self.live = True
        self.fired = False


class Deadlines:
    """Deadlines ``duration`` seconds after arming, on ``loop`` (see the module docstring). Used only from
    the loop's own thread."""

    __slots__ = ("_dead", "_entries", "_handle", "_loop", "duration", "shared")

    def __init__(self, loop: asyncio.AbstractEventLoop, duration: float, *, shared: bool = True) -> None:
        self._loop = loop
        self.duration = duration
        self.shared = shared
        """Kept for further deadlines: its timer stays set when it empties (the next deadline usually comes
        at once, and a cancelled timer costs more than one that fires). ``False``: a queue for one wait,
        whose timer is cancelled as soon as it empties."""
        self._entries: deque[Deadline] = deque()
        self._dead = 0
        """Dead entries still in ``_entries`` (not at its head)."""
        self._handle: asyncio.TimerHandle | None = None
        """The timer, set for the head entry's time (or for an earlier, dead one's), while any is queued."""

    def __len__(self) -> int:
        """Entries queued, live or dead (for tests: the queue stays bounded)."""
        return len(self._entries)

    def arm(self, task: asyncio.Task[object]) -> Deadline:
        """Cancel ``task`` ``duration`` seconds from now unless ``disarm`` comes first."""
        entry = Deadline(self._loop.time() + self.duration, task, task.cancelling())
        self._entries.append(entry)
        if self._handle is None:
            self._handle = self._loop.call_at(entry.at, self._fire)
        return entry

    def disarm(self, entry: Deadline) -> None:
        """The guarded wait is over (whatever its outcome): ``entry`` will not fire, and if it fired without
        ``expired`` having been asked (the wait ended some other way in the deadline's turn of the loop),
        its cancellation is taken back, as ``asyncio.timeout`` does. Idempotent."""
        if not entry.live:
            if entry.fired:
                entry.fired = False
                entry.task.uncancel()
            return
        entry.live = False
        entries = self._entries
        if entries[0] is entry:
            entries.popleft()
            while entries and not entries[0].live:  # the dead behind it: they were counted
                entries.popleft()
                self._dead -= 1
            if not entries and not self.shared and self._handle is not None:
                self._handle.cancel()
                self._handle = None
            return  # a shared queue's timer stays set (see ``shared``)
        self._dead += 1
        if self._dead > _COMPACT_AT and self._dead * 2 > len(entries):
            self._entries = deque([e for e in entries if e.live])
            self._dead = 0

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        entries = self._entries
        while entries:
            head = entries[0]
            if not head.live:
                entries.popleft()
                self._dead -= 1
                continue
            if head.at > now:
                break
            entries.popleft()
            head.live = False
            head.fired = True
            head.task.cancel()
        if entries:
            self._handle = self._loop.call_at(entries[0].at, self._fire)


def expired(entry: Deadline) -> bool:
    """When ``CancelledError`` reaches the code that armed ``entry`` (before it disarms it): whether that
    cancellation was this deadline's own, so that the code raises its timeout error instead. Like
    ``asyncio.timeout``'s exit, it takes back the cancellation the deadline made."""
    if not entry.fired:
        return False
    entry.fired = False
    return entry.task.uncancel() <= entry.cancelling
