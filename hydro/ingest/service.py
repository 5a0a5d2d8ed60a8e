"""The ingest loop: broker -> judge -> batch -> store -> acknowledge.

Two tasks share one event loop. The receiver judges each message as it arrives and adds it whole
to the open batch; a batch is sealed as soon as the writer is free and the batch has been open
10 ms (a message that finds the writer idle waits that long for others), else when it holds
``ingest.batch_size`` readings or has been open for ``ingest.batch_interval``: a lone reading is
committed within milliseconds (a crossing reaches the evaluator at once), and under load the
batches grow by themselves to what arrives while the writer commits the one before. The writer
commits sealed batches in order and only then acknowledges their messages, so the broker forgets
nothing that is not in the database. While the writer waits on the database the receiver keeps
parsing; when the writer falls behind, the queue of sealed batches fills and the receiver waits,
and the broker's in-flight window stops the flow.

No message can stop the stream: anything judging raises, and anything in a batch the database
refuses for a reason other than an outage (defects, never a gateway's fault), quarantines the one
message as ``internal_error`` and the stream goes on; the message is acknowledged once that is
committed, like any other.

A database outage makes the writer retry the same batch with backoff, holding its messages
unacknowledged; a broker outage makes the receiver reconnect with backoff, and anything received
on the lost connection is stored but left for the broker to send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from hydro import metrics
from hydro.config import DatabaseConfig, IngestConfig, MqttConfig
from hydro.errors import BrokerUnavailable, StorageError, StorageUnavailable
from hydro.ingest.mqtt import BrokerSession, Delivery
from hydro.ingest.rejects import judge_gateway_reject
from hydro.ingest.validate import (
    KEPT_PREFIX,
    ValidationRules,
    Verdict,
    gateway_of,
    judge_message,
    printable,
    refuse_whole,
    zero_padded_codes,
)
from hydro.logs import log_progress_every
from hydro.models import Reading, Rejection, RejectionCode, Station
from hydro.store.readings import BatchOutcome, ReadingWriter

log = logging.getLogger(__name__)

_SEALED_BATCHES_AHEAD = 2
# How long a batch is open at least before a free writer takes it: gateways that send one reading
# per message come thousands a second after an outage, and a commit every few of them cost a
# quarter of the throughput (bench_ingest --per-message 1: 5.3k -> 4.0k readings/s live, 6.0k ->
# 4.4k draining); 10 ms is little beside the 250 ms goal from publish to SMS.
_LINGER_SECONDS = 0.01
_SHUTDOWN_GRACE = 10.0  # seconds a stopping service waits for the database to take its batches
_REASON_CHARS = 1000  # of an exception's text in an internal_error reason
# What a write raises when the database will not take a value (text it cannot encode among them);
# StorageUnavailable, an outage, is retried before it gets here.
_REFUSED = (StorageError, ValueError)


@dataclass
class _Batch:
    opened: float = field(default_factory=time.monotonic)
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # Per delivery, where its readings and rejections end: to write it alone if need be.
    ends: list[tuple[int, int]] = field(default_factory=list)


# Distinct unknown field names remembered (and logged once each); the rest count as one.
UNKNOWN_FIELD_NAMES_KEPT = 100
OTHER_UNKNOWN_FIELDS = "(other names)"


@dataclass
class IngestStats:
    """Running totals, logged as progress and shown by ``hydro status`` of a live process."""

    messages: int = 0
    readings: int = 0
    inserted: int = 0
    revised: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    slow_batches: int = 0
    database_retries: int = 0
    unacknowledged: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: BatchOutcome) -> None:
        self.inserted += outcome.inserted
        self.revised += outcome.revised
        self.duplicates += outcome.duplicates
        self.rejected += outcome.quarantined
        self.batches += 1
        self.slow_batches += outcome.slow_path


class Backoff:
    """Exponential delays with full jitter, so many ingest processes do not retry in step."""

    def __init__(self, first: float, limit: float) -> None:
        self._first = first
        self._limit = limit
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._limit, self._first * 2**self._attempt)
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)  # jitter, not security

    def reset(self) -> None:
        self._attempt = 0


class IngestService:
    """Runs until ``stop`` is set; then seals the open batch, commits what it holds and returns."""

    def __init__(
        self,
        config: IngestConfig,
        mqtt: MqttConfig,
        stations: Mapping[str, Station],
        writer: ReadingWriter,
        *,
        database: DatabaseConfig,
    ) -> None:
        self._config = config
        self._mqtt = mqtt
        self._database = database
        self._stations = dict(stations)  # a plain dict: the fastest lookup per reading
        self._writer = writer
        self._rules = ValidationRules.from_config(config, mqtt.topic_prefix)
        self._zero_padded = zero_padded_codes(self._stations)
        self._batch = _Batch()
        self._sealed: asyncio.Queue[_Batch | None] = asyncio.Queue(_SEALED_BATCHES_AHEAD)
        self._max_age = config.batch_interval.total_seconds()
        self._closing = False
        self._writer_idle = False  # waiting for a sealed batch, none queued
        self.stats = IngestStats()
        self.subscribed = asyncio.Event()  # set while subscribed on a live broker connection

    async def run(self, stop: asyncio.Event) -> None:
        writer = asyncio.create_task(self._write_sealed(), name="ingest-writer")
        receiver = asyncio.create_task(self._receive_until(stop, writer), name="ingest-receiver")
        helpers = [
            asyncio.create_task(self._seal_when_due(), name="ingest-sealer"),
            asyncio.create_task(log_progress_every(self._log_progress), name="ingest-progress"),
        ]
        try:
            done, _ = await asyncio.wait({writer, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled():  # the writer is cancelled by a shutdown without database
                    task.result()  # a crashed stage stops the service with its error
            await receiver
        finally:
            for task in (*helpers, receiver, writer):
                task.cancel()
            await asyncio.gather(*helpers, receiver, writer, return_exceptions=True)
            self._log_progress()

    async def _receive_until(self, stop: asyncio.Event, writer: asyncio.Task[None]) -> None:
        mqtt = self._mqtt
        backoff = Backoff(mqtt.reconnect_min.total_seconds(), mqtt.reconnect_max.total_seconds())
        while not stop.is_set():
            try:
                async with BrokerSession(mqtt) as session:
                    backoff.reset()
                    self.subscribed.set()
                    consumer = asyncio.create_task(self._consume(session))
                    stopping = asyncio.create_task(stop.wait())
                    await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if consumer.done():
                        consumer.result()  # raises BrokerUnavailable when the connection dropped
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
                    # Still connected: commit what we hold so its messages are acknowledged now
                    # rather than sent again at the next start.
                    await self._drain(writer)
                    return
            except BrokerUnavailable as exc:
                self.subscribed.clear()
                delay = backoff.next_delay()
                log.warning("broker unavailable (%s); reconnecting in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        await self._drain(writer)

    async def _consume(self, session: BrokerSession) -> None:
        async for delivery in session.deliveries():
            await self._accept(delivery)

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Commits what is held, unless the database stays away longer than the grace period:
        then the rest is left unacknowledged for the broker to deliver again."""
        self._closing = True
        try:
            async with asyncio.timeout(_SHUTDOWN_GRACE):
                await self._seal()
                await self._sealed.put(None)
                await asyncio.shield(writer)
        except TimeoutError:
            writer.cancel()
            log.warning(
                "stopping without the database: messages not yet committed stay unacknowledged"
                " and will be delivered again"
            )

    async def _accept(self, delivery: Delivery) -> None:
        try:
            verdict = judge_gateway_reject(
                delivery.topic, delivery.payload, delivery.received_at, self._rules.topic_prefix
            ) or judge_message(
                delivery.topic,
                delivery.payload,
                delivery.received_at,
                stations=self._stations,
                rules=self._rules,
                zero_padded=self._zero_padded,
            )
        except Exception as exc:  # one message must not stop every gateway's ingest
            verdict = self._internal_error(delivery, "judging it raised", exc)
        batch = self._batch
        batch.readings.extend(verdict.readings)
        batch.rejections.extend(verdict.rejections)
        batch.deliveries.append(delivery)
        batch.ends.append((len(batch.readings), len(batch.rejections)))
        self.stats.messages += 1
        self.stats.readings += len(verdict.readings)
        if verdict.unknown_fields:
            self._note_unknown_fields(verdict.gateway, verdict.unknown_fields)
        for rejection in verdict.rejections:
            log.info(
                "quarantined gateway=%s station=%s code=%s: %s",
                printable(rejection.gateway),
                None if rejection.station is None else printable(rejection.station),
                rejection.code,
                printable(rejection.reason),
            )
        if len(batch.readings) >= self._config.batch_size:
            await self._seal()
        elif self._writer_idle:
            self._writer_idle = False  # one linger at a time
            asyncio.get_running_loop().call_later(_LINGER_SECONDS, self._seal_for_idle_writer)

    def _internal_error(self, delivery: Delivery, what: str, exc: Exception) -> Verdict:
        """The whole message quarantined with the exception, so it can be replayed once the
        defect is fixed; the traceback is logged as one line of places, without gateway text."""
        gateway = gateway_of(delivery.topic, self._rules.topic_prefix)
        reason = f"{what}: {type(exc).__name__}: {str(exc)[:_REASON_CHARS]}"
        where = " <- ".join(
            f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in reversed(traceback.extract_tb(exc.__traceback__))
        )
        log.error(
            "internal error on a message on %s (gateway=%s), quarantined: %s at %s",
            printable(delivery.topic),
            None if gateway is None else printable(gateway),
            printable(reason),
            where,
        )
        # The size limit bounds the payload, unless checking it is what raised.
        kept = delivery.payload
        if len(kept) > self._rules.max_message_bytes:
            kept = kept[:KEPT_PREFIX]
        return refuse_whole(
            delivery.topic,
            gateway,
            kept,
            code=RejectionCode.INTERNAL_ERROR,
            reason=reason,
            received_at=delivery.received_at,
        )

    def _note_unknown_fields(self, gateway: str | None, fields: Counter[str]) -> None:
        known = self.stats.unknown_fields
        room = max(UNKNOWN_FIELD_NAMES_KEPT - len(known), 0)
        new = [name for name in fields if name not in known][:room]
        for name, count in fields.items():
            # A hostile gateway sending endless new names must not grow memory or the log:
            # names past the cap are counted under one key.
            known[name if name in known or name in new else OTHER_UNKNOWN_FIELDS] += count
        if new:
            # Once per field name: a gateway firmware update should be noticed, not flood the log.
            log.warning(
                "gateway=%s sends unknown fields (ignored): %s",
                None if gateway is None else printable(gateway),
                ", ".join(map(printable, new)),
            )

    async def _seal(self) -> None:
        batch, self._batch = self._batch, _Batch()
        if batch.deliveries:
            self._writer_idle = False  # it has this one to write now
            await self._sealed.put(batch)

    def _seal_for_idle_writer(self) -> None:
        """The open batch to the writer, unless it has gone already (sealed for its size or
        age) or the writer has batches queued (it will take this one when it is free)."""
        if self._batch.deliveries and self._sealed.empty() and not self._closing:
            batch, self._batch = self._batch, _Batch()
            self._sealed.put_nowait(batch)

    async def _seal_when_due(self) -> None:
        while not self._closing:
            age = time.monotonic() - self._batch.opened
            if self._batch.deliveries and age >= self._max_age:
                await self._seal()
                continue
            await asyncio.sleep(max(self._max_age - age, 0.0) if self._batch.deliveries else 0.02)

    async def _write_sealed(self) -> None:
        database = self._database
        backoff = Backoff(0.2, max(5.0, database.connect_timeout.total_seconds()))
        while (batch := await self._next_sealed()) is not None:
            rejections = batch.rejections
            try:
                outcome = await self._write(batch.readings, rejections, backoff)
            except _REFUSED as exc:  # not an outage: the database will not take something in it
                log.error(
                    "database refused a batch (%s); writing it message by message",
                    printable(str(exc)),
                )
                outcome, rejections = await self._write_each(batch, backoff)
            self.stats.add(outcome)
            metrics.READINGS_STORED.inc(outcome.inserted + outcome.revised)
            metrics.READINGS_DUPLICATE.inc(outcome.duplicates)
            for rejection in rejections:
                metrics.REJECTED.labels(rejection.code.value).inc()
            for delivery in batch.deliveries:
                if not delivery.session.acknowledge(delivery):
                    self.stats.unacknowledged += 1

    async def _next_sealed(self) -> _Batch | None:
        """The next batch to write: one sealed, else the open one sealed now if it holds
        anything (once open ``_LINGER_SECONDS``), else the first message's that long after it comes
        (``_writer_idle``)."""
        if self._sealed.empty():
            if self._batch.deliveries and not self._closing:
                await asyncio.sleep(_LINGER_SECONDS - (time.monotonic() - self._batch.opened))
                if self._sealed.empty():
                    await self._seal()
            else:
                self._writer_idle = True
        batch = await self._sealed.get()
        self._writer_idle = False
        return batch

    async def _write(
        self, readings: list[Reading], rejections: list[Rejection], backoff: Backoff
    ) -> BatchOutcome:
        """Writes, retrying through database outages for as long as they last."""
        while True:
            try:
                outcome = await self._writer.write(readings, rejections)
            except StorageUnavailable as exc:
                self.stats.database_retries += 1
                delay = backoff.next_delay()
                log.warning(
                    "database unavailable (%s); retrying %d readings in %.1fs",
                    exc,
                    len(readings),
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                backoff.reset()
                return outcome

    async def _write_each(
        self, batch: _Batch, backoff: Backoff
    ) -> tuple[BatchOutcome, list[Rejection]]:
        """Writes a refused batch one message at a time; a message refused on its own goes to the
        quarantine whole instead. Should even that be refused, the service stops, as before.
        Returns the sum of the outcomes and the rejections stored."""
        inserted = revised = duplicates = 0
        stored: list[Rejection] = []
        start = (0, 0)
        for delivery, end in zip(batch.deliveries, batch.ends, strict=True):
            readings = batch.readings[start[0] : end[0]]
            rejections = batch.rejections[start[1] : end[1]]
            start = end
            try:
                outcome = await self._write(readings, rejections, backoff)
            except _REFUSED as exc:
                rejections = self._internal_error(
                    delivery, "the database refused it", exc
                ).rejections
                outcome = await self._write([], rejections, backoff)
            inserted += outcome.inserted
            revised += outcome.revised
            duplicates += outcome.duplicates
            stored.extend(rejections)
        return BatchOutcome(inserted, revised, duplicates, len(stored), slow_path=True), stored

    def _log_progress(self) -> None:
        s = self.stats
        log.info(
            "ingest: messages=%d readings=%d inserted=%d revised=%d duplicates=%d "
            "quarantined=%d batches=%d (slow path %d) left for redelivery=%d",
            s.messages,
            s.readings,
            s.inserted,
            s.revised,
            s.duplicates,
            s.rejected,
            s.batches,
            s.slow_batches,
            s.unacknowledged,
        )
