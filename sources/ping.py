"""PingSource: one scheduler for every PingSource of the sources service, each tick sent through the Emitter.

One timer loop over a heap of (next tick, source), not a task per source sleeping: a thousand schedules
firing every second cost one wake-up per second, one croniter step (~40 us) per distinct schedule and
zone (`_Cron`, shared), a heap push per source, one SQLite commit, and the sends.
Knative's mt-ping adapter sleeps a random 0-500 ms before each send to spread the load on a sink; Nerve
does not (ticks are sent at their second), which keeps `time` honest and the tests exact.

Each event: type `dev.knative.sources.ping`, source `/apis/v1/namespaces/<ns>/pingsources/<name>`,
`datacontenttype` = spec.contentType, the data's bytes, a fresh `id`, `Kn-Namespace` and the ceOverrides
from the Emitter, and `time` = the tick's scheduled instant (not the send's): a late tick says which
tick it is, and a consumer can tell one tick from another by it.

Restarts: the last fired tick of each source (by uid) is kept in `<state dir>/pingsource.db` (SQLite),
written when a round of ticks fires, before its sends start. After a restart:
- a tick already recorded is never fired again;
- ticks that fell due while nothing ran are fired once each, late (in order, sent at once), if they fell
  due no more than `SourcesSettings.ping_catch_up_s` (60 s) ago (like a CronJob's startingDeadlineSeconds); older ones
  are skipped with a log line;
- a tick recorded as fired whose send had not finished when the process died is lost (never doubled).

Contract config: control/reconcilers/resources/pingsource.py.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import logging
import math
import sqlite3
import time
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from croniter import croniter

from core.contract import Source
from core.events import Event
from core.hops import rfc3339
from sources.base import SourceContext, part_name
from sources.emit import Emitter

log = logging.getLogger("nerve.sources.ping")

EVENT_TYPE = "dev.knative.sources.ping"
STATE_FILE = "pingsource.db"
FORGET_AFTER_S = 10.0
SLOW_WRITE_S = 0.2


def system_zone() -> tzinfo:
    """The machine's zone, for a PingSource without spec.timezone (Knative: "the system time zone")."""
    try:
        with Path("/etc/localtime").open("rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone_of(name: str) -> tzinfo:
    return zoneinfo.ZoneInfo(name) if name else system_zone()


@dataclass(frozen=True, slots=True)
class Payload:
    """What each tick of one source carries; swapped in place by an update."""

    source: str
    data: bytes | None
    content_type: str

    @classmethod
    def of(cls, source: Source) -> Payload:
        config = source.config
        data: bytes | None = None
        if config.get("dataBase64"):
            data = base64.b64decode(str(config["dataBase64"]))
        elif config.get("data"):
            data = str(config["data"]).encode()
        return cls(str(config.get("source", "")), data, str(config.get("contentType") or ""))


def _timing(source: Source) -> tuple[str, str]:
    return str(source.config.get("schedule", "* * * * * 0")), str(source.config.get("timezone") or "")


class _Job:
    """One source in the scheduler: its schedule and what a tick sends."""

    def __init__(self, uid: str, name: str, emitter: Emitter, source: Source) -> None:
        self.uid, self.name, self.emitter = uid, name, emitter
        self.payload = Payload.of(source)
        self.timing = _timing(source)
        self.version = 0
        self.inflight = 0


class _Cron:
    """The ticks of one (schedule, zone), shared by every source that has it: a thousand sources on one
    schedule cost one croniter step per tick, not a thousand."""

    def __init__(self, cron: str, zone: str) -> None:
        self._cron, self._zone = cron, zone_of(zone)
        self._ticks: croniter | None = None
        self._at = self._next = math.nan

    def after(self, at: float) -> float:
        """The first tick strictly after `at`."""
        # Ticks are whole seconds, so the first one after `at` is the first one after its second, and
        # every source asking in the same round asks about the same second.
        at = float(math.floor(at))
        if at == self._at:
            return self._next
        if at == self._next and self._ticks is not None:
            following = float(self._ticks.get_next(float))  # the iterator stands on `at`: one step
        else:
            self._ticks = croniter(self._cron, datetime.fromtimestamp(at, self._zone))
            following = float(self._ticks.get_next(float))
        self._at, self._next = at, following
        return following


class TickState:
    """The last fired tick per source uid, in SQLite (one small table, written once per round)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ticks (uid TEXT PRIMARY KEY, tick REAL NOT NULL)")

    def load(self) -> dict[str, float]:
        return {str(uid): float(tick) for uid, tick in self._db.execute("SELECT uid, tick FROM ticks")}

    def write(self, fired: dict[str, float], forgotten: set[str]) -> None:
        with self._db:
            self._db.executemany("INSERT INTO ticks (uid, tick) VALUES (?, ?) "
                                 "ON CONFLICT(uid) DO UPDATE SET tick = excluded.tick", fired.items())
            self._db.executemany("DELETE FROM ticks WHERE uid = ?", ((uid,) for uid in forgotten))

    def close(self) -> None:
        self._db.close()


class Scheduler:
    """Fires the ticks of every registered source from one loop; sends run as tasks."""

    def __init__(self, state: TickState | None, *, catch_up_s: float, max_inflight: int,
                 drain_timeout_s: float) -> None:
        self._state = state
        self._last: dict[str, float] = state.load() if state else {}
        self._catch_up = catch_up_s
        self._max_inflight = max_inflight
        self._drain = drain_timeout_s
        self._jobs: dict[str, _Job] = {}
        self._crons: dict[tuple[str, str], _Cron] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._forgotten: dict[str, float] = {}
        """Removed sources whose row goes at a round FORGET_AFTER_S later: a shutdown stops every adapter
        at once, and must keep every row (the loop has stopped by then)."""
        self._sends: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: _Job) -> None:
        now = time.time()
        last = self._last.get(job.uid)
        self._forgotten.pop(job.uid, None)
        if last is None:
            first = self._after(job, now)
        else:
            # Continue after the last fired tick, but only within the catch-up window: ticks missed while
            # nothing ran are fired (late) if recent, skipped if older.
            oldest = now - self._catch_up
            if last < oldest and self._after(job, last) <= oldest:
                log.warning("%s: ticks due between %s and %s were missed while nothing ran and are skipped "
                            "(older than %gs)", job.name, rfc3339(last), rfc3339(oldest), self._catch_up)
            first = self._after(job, max(last, oldest))
        self._jobs[job.uid] = job
        self._push(job, first)
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="pingsource-scheduler")

    def reschedule(self, job: _Job, timing: tuple[str, str]) -> None:
        """A new schedule or zone takes effect at once: its first tick after now (and after the last fired)."""
        job.timing = timing
        job.version += 1
        self._push(job, self._after(job, max(time.time(), self._last.get(job.uid, 0.0))))

    def remove(self, uid: str) -> None:
        job = self._jobs.pop(uid, None)
        if job is not None:
            job.version += 1  # its heap entries are stale from now on
            self._last.pop(uid, None)
            self._forgotten[uid] = time.time()

    def _after(self, job: _Job, at: float) -> float:
        cron = self._crons.get(job.timing)
        if cron is None:
            cron = self._crons[job.timing] = _Cron(*job.timing)
        return cron.after(at)

    def _push(self, job: _Job, at: float) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), job.uid, job.version))
        if self._heap[0][2] == job.uid:
            self._wake.set()  # an earlier tick than the loop sleeps for

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._heap:
                await self._wake.wait()
                continue
            delay = self._heap[0][0] - time.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                continue
            try:
                self._fire_due(time.time())
            except Exception:  # one bad round must not end every PingSource's ticks
                log.exception("PingSource scheduler: a round of ticks failed")

    def _fire_due(self, now: float) -> None:
        fired: dict[str, float] = {}
        while self._heap and self._heap[0][0] <= now:
            at, _, uid, version = heapq.heappop(self._heap)
            job = self._jobs.get(uid)
            if job is None or job.version != version:
                continue
            self._fire(job, at)
            fired[uid] = at
            following = self._after(job, at)
            if following < now - self._catch_up:  # the loop itself was held up for long
                log.warning("%s: ticks up to %s are skipped (the scheduler was held up)", job.name, rfc3339(now))
                following = self._after(job, now - self._catch_up)
            self._push(job, following)
        self._last.update(fired)
        gone = {uid for uid, at in self._forgotten.items() if at < now - FORGET_AFTER_S}
        if self._state is not None and (fired or gone):
            # Recorded before any of this round's sends runs: a tick is fired once, never twice.
            started = time.monotonic()
            try:
                self._state.write(fired, gone)
                took = time.monotonic() - started
                if took > SLOW_WRITE_S:
                    log.warning("PingSource ticks: recording %d took %.0f ms (the sends waited for it)",
                                len(fired), took * 1000)
            except (sqlite3.Error, OSError) as exc:
                log.error("PingSource ticks not recorded in %s (%s): after a restart they may fire again",
                          self._state.path, exc)
        for uid in gone:
            del self._forgotten[uid]

    def _fire(self, job: _Job, at: float) -> None:
        if job.inflight >= self._max_inflight:
            log.warning("%s: tick %s not sent: %d sends to the sink are still in flight", job.name, rfc3339(at),
                        job.inflight)
            return
        p = job.payload
        event = job.emitter.event(EVENT_TYPE, p.source, p.data, content_type=p.content_type or None,
                                  extensions={"time": rfc3339(at)})
        job.inflight += 1
        task = asyncio.create_task(self._send(job, job.emitter, event))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    @staticmethod
    async def _send(job: _Job, emitter: Emitter, event: Event) -> None:
        try:
            await emitter.send(event)
        finally:
            job.inflight -= 1

    async def stop(self) -> None:
        """The loop ends; sends in flight get the drain timeout to finish."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._sends:
            _, pending = await asyncio.wait(set(self._sends), timeout=self._drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._state is not None:
            self._state.close()
            self._state = None


# One scheduler per sources service (keyed by its deliverer), shared by all its PingSources; made by the
# first adapter that starts and stopped with the last one.
_SCHEDULERS: dict[int, Scheduler] = {}


def _scheduler(context: SourceContext) -> Scheduler:
    key = id(context.deliverer)
    scheduler = _SCHEDULERS.get(key)
    if scheduler is None:
        settings = context.settings
        state: TickState | None = None
        try:
            state = TickState(settings.state_dir / STATE_FILE)
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot keep PingSource ticks in %s (%s): they run, but a restart may double or skip "
                      "ticks", settings.state_dir / STATE_FILE, exc)
        scheduler = Scheduler(state, catch_up_s=settings.ping_catch_up_s, max_inflight=settings.max_inflight,
                              drain_timeout_s=settings.drain_timeout_s)
        _SCHEDULERS[key] = scheduler
    return scheduler


class PingSourceAdapter:
    def __init__(self, source: Source, context: SourceContext) -> None:
        self._source = source
        self._context = context
        self._emitter = Emitter(source, context.deliverer, default_timeout_s=context.settings.default_timeout_s)
        self._job = _Job(source.uid, part_name(source), self._emitter, source)
        self._scheduler: Scheduler | None = None

    @property
    def source(self) -> Source:
        return self._source

    def must_restart(self, source: Source) -> bool:
        return False  # a new schedule, payload or sink all take effect in place

    def update(self, source: Source) -> None:
        if source == self._source:
            return  # every contract change reaches every adapter: most have nothing new
        self._source = source
        self._emitter.update(source)
        self._job.payload = Payload.of(source)
        timing = _timing(source)
        if timing != self._job.timing and self._scheduler is not None:
            self._scheduler.reschedule(self._job, timing)

    async def start(self) -> None:
        self._scheduler = _scheduler(self._context)
        self._scheduler.add(self._job)

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.remove(self._job.uid)
        if not len(scheduler):
            # The last one: the service is stopping (or had one PingSource). The state is kept as it is.
            _SCHEDULERS.pop(id(self._context.deliverer), None)
            await scheduler.stop()


def ping_source(source: Source, context: SourceContext) -> PingSourceAdapter:
    return PingSourceAdapter(source, context)
