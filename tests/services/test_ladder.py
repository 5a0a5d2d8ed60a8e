"""叫应 ladders against a real PostgreSQL: each step once across processes and restarts, its
calls and SMS queued in the outbox with it, and the climb stopped by an answer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from hydro.alerts.ladder_runner import LadderRunner, TakenRecord
from hydro.config import DatabaseConfig
from hydro.models import Answer, Confirmation, Recipient, Role
from hydro.rules import load_rules
from hydro.stations import load_registry
from hydro.store.confirmations import record_confirmation
from hydro.store.db import open_pool
from hydro.store.ladder import count_unconfirmed
from hydro.store.links import Links
from tests.support import REPO, execute, fetch, migrated, open_alert

REGISTRY = load_registry(REPO / "stations", "Asia/Shanghai")
RULES = load_rules(REPO / "alert_rules")
MAICHONG = "67901001"  # 麦冲水库, 黔东南州台江县
T0 = dt.datetime(2026, 7, 1, 19, 0, tzinfo=dt.UTC)
DUTY = (Recipient(Role.DUTY, "值班甲", "+8613900000009"),)
LINKS = Links("https://hydro.example.org", dt.timedelta(hours=24))


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def open_red_alert(pg_url: str) -> int:
    return open_alert(
        pg_url,
        MAICHONG,
        family="reservoir_level",
        rule_id="reservoir_design_flood",
        rank=3,
        severity="red",
        opened_at=T0,
        sms=("patrol", "张秀英", "+8615885500103", "麦冲水库水位超设计洪水位"),
    )


async def run_at(pg_url: str, minutes: float, processes: int = 1) -> list[list[TakenRecord]]:
    """``processes`` runners, each on its own pool (as two hydro run would be), run at once."""
    config = DatabaseConfig(url=pg_url, timescaledb="off")
    async with contextlib.AsyncExitStack() as stack:
        runners = [
            LadderRunner(
                REGISTRY,
                RULES,
                await stack.enter_async_context(open_pool(config)),
                lambda _: DUTY,
                LINKS,
                clock=lambda: at(minutes),
            )
            for _ in range(processes)
        ]
        return list(await asyncio.gather(*(runner.run() for runner in runners)))


def queued(pg_url: str, alert_id: int) -> list[tuple[str, str, str]]:
    """(channel, role, body) of the alert's outbox rows the ladder queued, in order."""
    rows = fetch(
        pg_url,
        "SELECT channel, role, body FROM outbox WHERE alert_id = %s AND id > ("
        "SELECT min(id) FROM outbox WHERE alert_id = %s) ORDER BY id",
        (alert_id, alert_id),
    )
    return [(str(c), str(r), str(b)) for c, r, b in rows]


def steps(pg_url: str, alert_id: int) -> list[str]:
    rows = fetch(
        pg_url, "SELECT key FROM ladder_steps WHERE alert_id = %s ORDER BY id", (alert_id,)
    )
    return [str(key) for (key,) in rows]


def placed(pg_url: str, alert_id: int) -> None:
    """The dispatcher's part: every queued row of the alert is sent."""
    execute(
        pg_url,
        "UPDATE outbox SET status = 'sent', sent_at = now() WHERE alert_id = %s"
        " AND status = 'queued'",
        (alert_id,),
    )


FIRST = ["red:call:administrative:1", "red:call:technical:1", "red:call:patrol:1"]
SECOND = [key.replace(":1", ":2") for key in FIRST]


def test_two_processes_take_each_step_once(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_red_alert(pg_url)
    for minutes in (0, 0, 1, 3, 3):
        runs = asyncio.run(run_at(pg_url, minutes, processes=2))
        keys = [record.step.key for run in runs for record in run]
        assert len(keys) == len(set(keys))
        placed(pg_url, alert)
    assert steps(pg_url, alert) == FIRST + SECOND
    calls = queued(pg_url, alert)
    assert [(c, r) for c, r, _ in calls] == [
        ("voice", "administrative"),
        ("voice", "technical"),
        ("voice", "patrol"),
    ] * 2
    assert {body for *_, body in calls} == {"麦冲水库水位超设计洪水位"}


def test_a_restart_resumes_the_ladder_where_it_was(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_red_alert(pg_url)
    asyncio.run(run_at(pg_url, 0))
    placed(pg_url, alert)
    # a new process (new pools, nothing in memory) three minutes on
    [second] = asyncio.run(run_at(pg_url, 3))
    assert [record.step.key for record in second] == SECOND
    for minutes in (6, 9.5):
        placed(pg_url, alert)
        asyncio.run(run_at(pg_url, minutes))
    [county] = asyncio.run(run_at(pg_url, 10))
    assert [record.step.key for record in county] == ["red:county:1"]
    assert steps(pg_url, alert) == [
        *FIRST,
        *SECOND,
        *(key.replace(":1", ":3") for key in FIRST),
        "red:county:1",
    ]
    voice, sms = queued(pg_url, alert)[-2:]
    assert voice[:2] == ("voice", "county")
    assert sms[:2] == ("sms", "county")
    assert sms[2].startswith(
        "【无人叫应】麦冲水库水位超设计洪水位 确认https://hydro.example.org/c/"
    )


def test_nobody_is_called_again_before_their_call_is_placed_and_the_climb_goes_on(
    pg_url: str,
) -> None:
    """A call still queued (the provider is down, or the call rate is a backlog in a wide flood)
    is not followed by a second one to the same person; the climb to the county does not wait
    for it, and once the calls are placed the calls again come."""
    migrated(pg_url)
    alert = open_red_alert(pg_url)
    asyncio.run(run_at(pg_url, 0))
    execute(
        pg_url,
        "UPDATE outbox SET attempts = 3, last_error = 'HTTP 503', next_attempt_at ="
        " now() + interval '1 hour' WHERE alert_id = %s AND channel = 'voice'",
        (alert,),
    )
    assert asyncio.run(run_at(pg_url, 3)) == [[]]
    [county] = asyncio.run(run_at(pg_url, 10))
    assert [record.step.key for record in county] == ["red:county:1"]
    placed(pg_url, alert)
    [again] = asyncio.run(run_at(pg_url, 10.5))
    assert [record.step.key for record in again] == SECOND


def test_a_confirmation_stops_the_ladder_once(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_red_alert(pg_url)
    asyncio.run(run_at(pg_url, 0))
    patrol = next(p for p in REGISTRY.by_code[MAICHONG].persons if p.role is Role.PATROL)

    async def confirm() -> None:
        async with open_pool(DatabaseConfig(url=pg_url)) as pool, pool.connection() as conn:
            await record_confirmation(
                conn, Confirmation(alert, patrol, Answer.KEYPRESS, at(2), patrol.name)
            )

    asyncio.run(confirm())
    [stopped] = asyncio.run(run_at(pg_url, 3))
    assert [(r.step.key, r.step.reason) for r in stopped] == [
        ("red:stop", f"巡查责任人{patrol.name}已确认(电话按键), 停止叫应")
    ]
    for minutes in (3, 10, 60):
        assert asyncio.run(run_at(pg_url, minutes)) == [[]]
    assert steps(pg_url, alert) == [*FIRST, "red:stop"]


def test_a_cleared_alert_stops_its_ladder_and_is_not_looked_at_again(pg_url: str) -> None:
    migrated(pg_url)
    alert = open_red_alert(pg_url)
    asyncio.run(run_at(pg_url, 0))
    execute(
        pg_url, "UPDATE alerts SET state = 'cleared', cleared_at = %s WHERE id = %s", (at(1), alert)
    )
    [stopped] = asyncio.run(run_at(pg_url, 3))
    assert [r.step.reason for r in stopped] == ["预警已解除, 停止叫应"]
    assert asyncio.run(run_at(pg_url, 20)) == [[]]


def test_an_answer_to_the_yellow_is_no_answer_to_the_red_it_became(pg_url: str) -> None:
    """The patrol person confirmed the yellow alert (by phone to the duty desk); the reservoir
    then passed its design flood level: red's ladder calls all three, the alert is 未叫应 again,
    and the same person's new answer stops it; back at yellow, their first answer stands."""
    migrated(pg_url)
    alert = open_alert(
        pg_url,
        MAICHONG,
        family="reservoir_level",
        rule_id="reservoir_normal",
        rank=2,
        severity="yellow",
        opened_at=T0,
    )
    patrol = next(p for p in REGISTRY.by_code[MAICHONG].persons if p.role is Role.PATROL)

    async def confirm(minutes: float) -> tuple[Confirmation, bool]:
        answer = Confirmation(alert, patrol, Answer.OPERATOR, at(minutes), "王值班")
        async with open_pool(DatabaseConfig(url=pg_url)) as pool, pool.connection() as conn:
            return await record_confirmation(conn, answer)

    async def unconfirmed() -> int:
        async with open_pool(DatabaseConfig(url=pg_url)) as pool, pool.connection() as conn:
            return await count_unconfirmed(conn)

    yellow, new = asyncio.run(confirm(1))
    assert (yellow.rank, new) == (2, True)
    assert asyncio.run(run_at(pg_url, 2)) == [[]]  # yellow has no ladder
    execute(
        pg_url,
        "UPDATE alerts SET rule_id = 'reservoir_design_flood', rank = 3, severity = 'red'"
        " WHERE id = %s",
        (alert,),
    )
    [calls] = asyncio.run(run_at(pg_url, 10))
    assert [record.step.key for record in calls] == FIRST
    assert asyncio.run(unconfirmed()) == 1
    red, new = asyncio.run(confirm(11))
    assert (red.rank, red.confirmed_at, new) == (3, at(11), True)
    [stopped] = asyncio.run(run_at(pg_url, 12))
    assert [record.step.key for record in stopped] == ["red:stop"]
    assert asyncio.run(unconfirmed()) == 0
    assert asyncio.run(run_at(pg_url, 20)) == [[]]
    # back to yellow: answered already
    execute(
        pg_url,
        "UPDATE alerts SET rule_id = 'reservoir_normal', rank = 2, severity = 'yellow'"
        " WHERE id = %s",
        (alert,),
    )
    standing, new = asyncio.run(confirm(30))
    assert (standing.confirmed_at, new) == (at(1), False)
