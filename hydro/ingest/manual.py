"""Manual entry of a reading: a duty officer types in what a patrol person read off the gauge
and phoned in, while the station's gateway is down.

Judged as ingest judges a gateway's reading (``judge_entry``: the same bounds, time window and
registry), stored by the reading writer like a gateway's batch (so the journal wakes the
evaluator, which evaluates it like any other), and recorded with who entered it and why in the
same transaction. Refused: nothing is stored, and the reason names the problem.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping

from hydro.config import IngestConfig
from hydro.errors import ReadingRefused
from hydro.ingest.validate import ValidationRules, judge_entry
from hydro.models import Reading, Rejection, Station
from hydro.store.manual import ManualEntry
from hydro.store.readings import ReadingWriter, storable_text

log = logging.getLogger(__name__)

MAX_NOTE = 500  # characters


class ManualReadings:
    def __init__(
        self,
        config: IngestConfig,
        stations: Mapping[str, Station],
        writer: ReadingWriter,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``clock``: when an entry is received, which ``ingest.max_future`` and ``max_past``
        count from."""
        self._rules = ValidationRules.from_config(config, topic_prefix="manual")
        self._stations = stations
        self._writer = writer
        self._clock = clock

    async def enter(self, entry: ManualEntry) -> Reading:
        """The stored reading, or ReadingRefused naming why (nothing stored)."""
        note = entry.note.strip()
        if not note or len(note) > MAX_NOTE:
            raise ReadingRefused(
                f"a note of 1 to {MAX_NOTE} characters is required: who read the gauge and"
                " phoned it in, and why it is entered by hand",
                "no_note",
            )
        if not entry.entered_by.strip():
            raise ReadingRefused("who entered the reading is required", "no_note")
        item = {
            "station": entry.station,
            "time": entry.time,
            "water_level": entry.water_level,
            "flow": entry.flow,
            "rainfall": entry.rainfall,
        }
        judged = judge_entry(item, self._clock(), stations=self._stations, rules=self._rules)
        if isinstance(judged, Rejection):
            raise ReadingRefused(judged.reason, judged.code.value)
        # A NUL or a lone surrogate would fail the transaction: kept visibly escaped instead.
        kept = dataclasses.replace(
            entry, note=storable_text(note), entered_by=storable_text(entry.entered_by)
        )
        await self._writer.write([judged], entered=kept)
        log.info(
            "station=%s manual reading at %s entered by %s (%s): water_level=%s flow=%s"
            " rainfall=%s",
            judged.station,
            judged.time.isoformat(),
            entry.entered_by,
            note,
            judged.water_level,
            judged.flow,
            judged.rainfall,
        )
        return judged
