"""The HTTP API against a real PostgreSQL and Mosquitto: alerts made by the real evaluator, SMS
sent by the real dispatcher through the real twilio client, receipts signed as Twilio signs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from psycopg_pool import AsyncConnectionPool

from hydro import app
from hydro.alerts.evaluator import AlertEvaluator
from hydro.api import listen
from hydro.config import Config
from hydro.duty import DutyRoster, load_roster
from hydro.local import LocalMosquitto
from hydro.models import Reading
from hydro.notify.dispatcher import Dispatcher
from hydro.store.outbox import DutyNotices, apply_receipts, record_receipt
from hydro.store.readings import ReadingWriter
from hydro.store.status import StorageStatus, storage_status
from hydro.texts import undelivered_notice
from tests.support import HEFENG, REPO, InApiLoop, api_in_thread, fetch
from tests.twilio_server import FakeTwilio

MAICHONG = "67901001"  # 麦冲水库 (黔东南州 台江县), normal level 771.50
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
SAMPLE_ROSTER = REPO / "duty" / "roster.csv"
VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
ADMIN = "admin-token-0123456789ab"


def minutes_ago(m: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=m)


@dataclass
class Api:
    url: str
    pg_url: str
    twilio: FakeTwilio
    run: InApiLoop

    def get(self, path: str, token: str | None = VIEWER, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, params=params, timeout=10)

    def post(self, path: str, token: str | None = OPERATOR, json: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + path, headers=headers, json=json, timeout=10)


def _config(pg_url: str, broker_port: int, fake: FakeTwilio, public_url: str | None) -> Config:
    return Config.model_validate(
        {
            "mqtt": {"port": broker_port},
            "database": {"url": pg_url, "timescaledb": "off"},
            "registry": {"stations": str(REPO / "stations")},
            "alerting": {"rules": str(REPO / "alert_rules")},
            "sms": fake.sms_section(duty_officers=[{"name": "值班员", "phone": "+8613900000000"}]),
            "duty": {"roster": str(SAMPLE_ROSTER)},  # weekly: someone is always on duty
            "api": {
                "port": 0,
                "public_url": public_url,
                "tokens": f"wang:viewer:{VIEWER},li:operator:{OPERATOR},zhao:admin:{ADMIN}",
                "max_csv_rows": 2,  # the three alerts take two CSV responses
                "max_series_points": 3,
            },
        }
    )


@pytest.fixture
def api(pg_url: str, local_mosquitto: LocalMosquitto) -> Iterator[Api]:
    """The API served in a thread of its own, with alerts at 麦冲水库 and 禾丰水文站 made by the
    evaluator and their SMS sent through the fake Twilio."""
    listener = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with FakeTwilio() as fake:
        config = _config(pg_url, local_mosquitto.port, fake, url)

        async def alerts_and_their_sms(pool: AsyncConnectionPool) -> None:
            registry, rules = app.load_stations(config), app.load_alert_rules(config)
            writer = ReadingWriter(pool)
            evaluator = AlertEvaluator(config.alerting, registry, rules, pool, clock=lambda: NOW)
            await evaluator.load_state()
            for minutes, level in ((20, 771.40), (15, 771.54)):
                await writer.write([Reading(MAICHONG, minutes_ago(minutes), water_level=level)])
            await writer.write([Reading(HEFENG, minutes_ago(10), water_level=908.7)])
            await writer.write([Reading(HEFENG, minutes_ago(5), water_level=910.2)])
            await evaluator.tick()
            dispatcher = Dispatcher(
                config.sms, app.sms_provider(config), pool, app.load_duty_roster(config)
            )
            while await dispatcher.run_once():
                pass

        with api_in_thread(config, listener, alerts_and_their_sms) as run:
            yield Api(url, pg_url, fake, run)


def test_health_needs_no_token_but_everything_else_does(api: Api) -> None:
    assert api.get("/healthz", token=None).json() == {"status": "ok"}
    assert api.get("/api/v1/stations", token=None).status_code == 401
    assert api.get("/api/v1/stations", token="wrong-token-0123456789").status_code == 401
    assert api.get("/api/v1/stations").status_code == 200


def test_readyz_reports_database_and_broker(api: Api) -> None:
    answer = api.get("/readyz", token=None)
    assert (answer.status_code, answer.json()) == (200, {"database": "ok", "broker": "ok"})


def test_stations_are_coloured_by_their_most_severe_open_alert(api: Api) -> None:
    stations = {s["code"]: s for s in api.get("/api/v1/stations").json()}
    assert len(stations) == 90
    assert stations[MAICHONG]["status"] == "yellow"  # 超正常蓄水位
    assert stations[HEFENG]["status"] == "orange"  # 超保证水位, escalated from 超警戒
    assert stations[HEFENG]["latest"]["water_level"] == 910.2
    assert stations[MAICHONG]["storage"]["storage"] == 4530.18  # at its latest level
    assert stations[HEFENG]["storage"] is None  # a river
    silent_reservoir = stations["62000000"]["storage"]  # 坪堡水库: a curve, never reported
    assert (silent_reservoir["size"], silent_reservoir["storage"]) == ("中型", None)
    others = {s["status"] for code, s in stations.items() if code not in (MAICHONG, HEFENG)}
    assert others == {"no_data"}
    states = {
        s["code"]: (s["status"], s["silent"]) for s in api.get("/api/v1/stations/status").json()
    }
    assert states == {code: (s["status"], s["silent"]) for code, s in stations.items()}
    orange = api.get("/api/v1/stations", status="orange").json()
    assert [s["code"] for s in orange] == [HEFENG]
    in_guiyang = api.get("/api/v1/stations", prefecture="贵阳市", kind="river").json()
    assert HEFENG in {s["code"] for s in in_guiyang}
    assert {s["prefecture"] for s in in_guiyang} == {"贵阳市"}


def test_station_detail_masks_phones_except_for_admins(api: Api) -> None:
    viewer = api.get(f"/api/v1/stations/{MAICHONG}").json()
    admin = api.get(f"/api/v1/stations/{MAICHONG}", token=ADMIN).json()
    assert [p["role"] for p in viewer["persons"]] == ["administrative", "technical", "patrol"]
    assert all(p["phone"].startswith("*") for p in viewer["persons"])
    assert all(p["phone"].startswith("+86") for p in admin["persons"])
    assert [p["phone"][-4:] for p in viewer["persons"]] == [
        p["phone"][-4:] for p in admin["persons"]
    ]
    assert [a["rule_id"] for a in viewer["active_alerts"]] == ["reservoir_normal"]
    assert viewer["levels"]["normal_level"] == 771.5
    # stations/storage_curves.csv: 4,521.06 万m³ at 771.50 m; 771.54 m lies between its points
    # 770.62 m (4,320.46) and 771.62 m (4,548.42)
    assert viewer["storage"] == {
        "size": "中型",
        "normal_storage": 4521.06,
        "level": 771.54,
        "storage": 4530.18,
        "percent_normal": 100.2,
        "outside": None,
    }
    assert api.get("/api/v1/stations/00000000").status_code == 404


def test_readings_raw_and_hourly(api: Api) -> None:
    since = minutes_ago(60).isoformat()
    raw = api.get(f"/api/v1/stations/{HEFENG}/readings", **{"from": since}).json()
    assert raw["water_level"] == [908.7, 910.2]
    hourly = api.get(
        f"/api/v1/stations/{HEFENG}/readings",
        every="1h",
        **{"from": (NOW - dt.timedelta(hours=3)).isoformat()},
    ).json()
    assert max(v for v in hourly["water_level_max"] if v is not None) == 910.2
    assert min(v for v in hourly["water_level_min"] if v is not None) == 908.7
    too_long = api.get(f"/api/v1/stations/{HEFENG}/readings", every="raw", **{"from": "2020-01-01"})
    assert too_long.status_code == 422
    none = api.get(
        f"/api/v1/stations/{HEFENG}/readings", **{"from": "2026-01-01", "to": "2026-01-02"}
    ).json()
    columns = ("time", "water_level", "water_level_min", "water_level_max", "rainfall", "flow")
    assert none == {"station": HEFENG, "every": "raw"} | {column: [] for column in columns}


def test_a_readings_response_holds_at_most_max_series_points(api: Api) -> None:
    async def four_more(pool: AsyncConnectionPool) -> None:
        times = [minutes_ago(m) for m in (4, 3, 2, 1)]
        await ReadingWriter(pool).write([Reading(MAICHONG, t, water_level=771.5) for t in times])

    api.run(four_more)
    readings = f"/api/v1/stations/{MAICHONG}/readings"
    since = {"from": minutes_ago(60).isoformat()}
    too_many = api.get(readings, **since)  # six points, api.max_series_points is three
    assert too_many.status_code == 422
    assert "at most 3 points" in too_many.json()["detail"]
    assert api.get(readings, every="1h", **since).status_code == 200  # two hours: two points


def test_alert_history_filters_pages_and_csv(api: Api) -> None:
    everything = api.get("/api/v1/alerts").json()
    assert {a["station"] for a in everything["items"]} == {MAICHONG, HEFENG}
    assert everything["next_cursor"] is None
    paged, cursor = [], None
    while True:
        page = api.get("/api/v1/alerts", limit=1, **({"cursor": cursor} if cursor else {})).json()
        paged += [a["id"] for a in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert paged == [a["id"] for a in everything["items"]]  # each once, newest first
    orange = api.get("/api/v1/alerts", severity="orange").json()["items"]
    assert [(a["station_name"], a["rule_name"]) for a in orange] == [("禾丰水文站", "超保证水位")]
    by_prefecture = api.get("/api/v1/alerts", prefecture="黔东南州").json()["items"]
    assert [a["station"] for a in by_prefecture] == [MAICHONG]
    assert api.get("/api/v1/alerts", state="cleared").json()["items"] == []
    assert api.get("/api/v1/alerts", cursor="not-a-cursor").status_code == 422
    exported = api.get("/api/v1/alerts", format="csv")
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert len(table) == 2  # api.max_csv_rows
    rest = api.get("/api/v1/alerts", format="csv", cursor=exported.headers["x-hydro-next-cursor"])
    assert "x-hydro-next-cursor" not in rest.headers
    table += csv.DictReader(io.StringIO(rest.text.lstrip("\ufeff")))
    assert [row["id"] for row in table] == [str(a["id"]) for a in everything["items"]]


def test_alert_detail_shows_every_sms_and_ack_needs_an_operator(api: Api) -> None:
    (alert,) = api.get("/api/v1/alerts", station=MAICHONG).json()["items"]
    detail = api.get(f"/api/v1/alerts/{alert['id']}").json()
    assert [e["change"] for e in detail["events"]] == ["open"]
    assert [(n["role"], n["status"]) for n in detail["notifications"]] == [
        ("administrative", "sent"),
        ("technical", "sent"),
        ("patrol", "sent"),
    ]
    assert "麦冲水库" in detail["notifications"][0]["body"]
    assert api.post(f"/api/v1/alerts/{alert['id']}/ack", token=VIEWER).status_code == 403
    acked = api.post(f"/api/v1/alerts/{alert['id']}/ack").json()
    assert acked["acknowledged_by"] == "li"
    again = api.post(f"/api/v1/alerts/{alert['id']}/ack", token=ADMIN).json()
    assert (again["acknowledged_by"], again["acknowledged_at"]) == ("li", acked["acknowledged_at"])
    assert api.get("/api/v1/alerts/999999").status_code == 404


def test_summary_and_metrics_count_what_the_database_holds(api: Api) -> None:
    summary = api.get("/api/v1/summary").json()
    # 禾丰: 超保证 (orange) and the 1.5 m rise in 5 minutes (yellow); 麦冲: 超正常 (yellow)
    assert summary["open_alerts"] == 3
    assert summary["by_prefecture"] == {
        "贵阳市": {"orange": 1, "yellow": 1},
        "黔东南州": {"yellow": 1},
    }
    assert summary["sms_by_status"] == {"sent": 12}  # 禾丰: open, escalate, rise; 麦冲: open
    assert summary["outbox_backlog"] == 0
    assert summary["no_data"] == 88
    just_now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)

    async def three_readings(pool: AsyncConnectionPool) -> None:
        times = [just_now - dt.timedelta(seconds=s) for s in (0, 30, 60)]
        await ReadingWriter(pool).write([Reading(MAICHONG, t, water_level=771.5) for t in times])

    api.run(three_readings)
    after = api.get("/api/v1/summary").json()["ingest_rate_per_s"] * 300
    # the three just written, and no more than were there before (older ones may age out)
    assert 3 <= round(after) <= round(summary["ingest_rate_per_s"] * 300) + 3
    metrics = api.get("/metrics", token=None).text
    assert 'hydro_alerts{state="open"} 3.0' in metrics
    assert 'hydro_alerts_open{severity="orange"} 1.0' in metrics
    assert 'hydro_alerts_open{severity="yellow"} 2.0' in metrics
    assert 'hydro_sms{status="sent"} 12.0' in metrics


def test_the_summary_and_hydro_status_count_open_alerts_alike_silence_included(api: Api) -> None:
    async def both_fall_silent(pool: AsyncConnectionPool) -> StorageStatus:
        config = _config(api.pg_url, 1, api.twilio, None)
        later = NOW + dt.timedelta(minutes=20)
        evaluator = AlertEvaluator(
            config.alerting,
            app.load_stations(config),
            app.load_alert_rules(config),
            pool,
            clock=lambda: later,
        )
        await evaluator.load_state()
        await evaluator.tick()
        return await storage_status(pool)  # what `hydro status` prints

    status = api.run(both_fall_silent)
    summary = api.get("/api/v1/summary").json()
    assert {s["code"] for s in summary["silent"]} == {MAICHONG, HEFENG}
    # the three level and rise alerts, and the two silences
    assert summary["open_alerts"] == status.open_alerts == 5


def test_twilio_receipts_must_be_signed_and_undelivered_sms_reach_the_duty_officer(
    api: Api,
) -> None:
    first, second = api.twilio.received[:2]
    assert first.status_callback == f"{api.url}/api/v1/twilio/status"
    assert api.twilio.report_status(first, "delivered", sign=False) == 403
    assert api.twilio.report_status(first, "delivered") == 204
    assert api.twilio.report_status(first, "sent") == 204  # late and out of order: ignored
    assert api.twilio.report_status(second, "undelivered", "30003") == 204
    statuses = fetch(
        api.pg_url,
        f"SELECT status, error_code, delivered_at IS NOT NULL FROM outbox"
        f" WHERE provider_id IN ('{first.sid}', '{second.sid}') ORDER BY id",
    )
    assert statuses == [("delivered", None, True), ("undelivered", "30003", False)]
    desk = fetch(
        api.pg_url, "SELECT role, person, body FROM outbox WHERE role IN ('duty', 'leader')"
    )
    assert [role for role, _, _ in desk] == ["duty", "leader"]  # the roster's, not the fallback
    assert all(person.startswith("示例") and "30003" in body for _, person, body in desk)


def test_the_duty_desk_now_and_next(api: Api) -> None:
    roster = load_roster(SAMPLE_ROSTER, "Asia/Shanghai", (), today=NOW.date())
    answer = api.get("/api/v1/duty").json()
    at = dt.datetime.fromisoformat(answer["at"])
    assert [(p["role"], p["name"]) for p in answer["on_duty"]] == [
        (p.role.value, p.name) for p in roster.on_duty(at)
    ]
    assert [p["role_name"] for p in answer["on_duty"]] == ["值班员", "带班领导"]
    assert answer["on_duty"][0]["phone"].startswith("*")  # masked for a viewer
    assert [(p["name"], dt.datetime.fromisoformat(p["start"])) for p in answer["next"]] == [
        (s.name, s.start) for s in roster.next_shift(at)
    ]
    assert answer["fallback"] is False


def test_a_receipt_that_beats_the_send_record_is_applied_when_the_send_is_recorded(
    api: Api,
) -> None:
    notices = DutyNotices(DutyRoster(), undelivered_notice)

    async def early(pool: AsyncConnectionPool) -> tuple[int, str]:
        async with pool.connection() as conn:
            none_yet = await record_receipt(conn, "SMearly", "delivered", None, notices)
            await conn.execute(
                "UPDATE outbox SET status = 'queued', provider_id = NULL"
                " WHERE id = (SELECT min(id) FROM outbox)"
            )
            await conn.execute(
                "UPDATE outbox SET status = 'sent', provider_id = 'SMearly'"
                " WHERE id = (SELECT min(id) FROM outbox)"
            )
            await apply_receipts(conn, "SMearly", notices)
            cur = await conn.execute("SELECT status FROM outbox WHERE provider_id = 'SMearly'")
            row = await cur.fetchone()
            assert row is not None
            return len(none_yet), str(row[0])

    assert api.run(early) == (0, "delivered")


def test_an_operator_enters_a_reading_by_hand_and_a_viewer_cannot(api: Api) -> None:
    path = f"/api/v1/stations/{HEFENG}/readings"
    typed = {"time": minutes_ago(2).isoformat(), "water_level": 909.1, "note": "巡查员电话报数"}
    assert api.post(path, token=VIEWER, json=typed).status_code == 403
    answer = api.post(path, json=typed)
    assert answer.status_code == 201
    assert answer.json() | {"entered_at": None} == {
        "station": HEFENG,
        "time": minutes_ago(2).isoformat().replace("+00:00", "Z"),
        "water_level": 909.1,
        "flow": None,
        "rainfall": None,
        "source": "manual",
        "entered_by": "li",
        "note": "巡查员电话报数",
        "entered_at": None,
    }
    [listed] = api.get(f"{path}/manual").json()
    assert (listed["entered_by"], listed["water_level"], listed["source"]) == (
        "li",
        909.1,
        "manual",
    )
    series = api.get(path, **{"from": minutes_ago(3).isoformat()}).json()
    assert series["water_level"] == [909.1]


@pytest.mark.parametrize(
    ("code", "typed", "status", "says"),
    [
        ("99999999", {"water_level": 909.1}, 404, "'99999999' is not in the registry"),
        (HEFENG, {"water_level": 99999.0}, 422, "above the plausible maximum 6000.0"),
        (HEFENG, {}, 422, "none of water_level, flow, rainfall"),
        (HEFENG, {"water_level": 909.1, "note": ""}, 422, "a note of 1 to 500 characters"),
    ],
)
def test_a_refused_entry_stores_nothing_and_names_the_problem(
    api: Api, code: str, typed: dict[str, Any], status: int, says: str
) -> None:
    body = {"time": minutes_ago(1).isoformat(), "note": "电话", **typed}
    answer = api.post(f"/api/v1/stations/{code}/readings", json=body)
    assert answer.status_code == status
    assert says in answer.json()["detail"]
    assert fetch(api.pg_url, "SELECT count(*) FROM manual_readings") == [(0,)]


def test_openapi_is_served(api: Api) -> None:
    schema = api.get("/openapi.json", token=None).json()
    assert "/api/v1/alerts/{alert_id}/ack" in schema["paths"]
    assert "/api/v1/twilio/status" in schema["paths"]


def test_no_generated_request_makes_the_api_fail(api: Api) -> None:
    """schemathesis generates requests from the served OpenAPI document: wrong types, edge
    values, odd strings. None may get a 5xx, and every answer must match the document."""
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    calls = 0
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query}: {response.text}"
                )

        no_server_error()
    assert failures == []
    assert calls >= 10 * len(operations)


def test_edge_inputs_get_a_client_error_not_a_server_error(api: Api) -> None:
    readings = f"/api/v1/stations/{MAICHONG}/readings"
    for path, params in (
        (readings, {"to": "0001-01-01T00:00:00"}),
        (readings, {"from": "9999-12-31T23:59:59"}),
        ("/api/v1/alerts", {"from": "0001-01-01T00:00:00+14:00"}),
        ("/api/v1/alerts", {"station": "\x00"}),
        ("/api/v1/stations/%00", {}),
        ("/api/v1/alerts", {"cursor": "MDAwMS0wMS0wMVQwMDowMDowMCswMDowMHwx"}),  # year 1
    ):
        answer = api.get(path, token=ADMIN, **params)
        assert answer.status_code < 500, (path, params, answer.text)


def test_the_daily_report_in_each_format(api: Api) -> None:
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=8)))
    day = (local - dt.timedelta(hours=8)).date()  # the hydrological day holding NOW
    as_json = api.get("/api/v1/reports/daily", date=day.isoformat())
    assert as_json.status_code == 200
    assert as_json.headers["x-hydro-report-stored"] == "false"  # its 08:05 job has not run
    report = as_json.json()
    assert report["day"] == day.isoformat()
    levels = {row["code"]: row["level_max"] for row in report["stations"]}
    assert levels[HEFENG] == 910.2
    html = api.get("/api/v1/reports/daily", date=day.isoformat(), format="html")
    assert html.headers["content-type"].startswith("text/html")
    assert "禾丰水文站" in html.text
    assert api.get("/api/v1/reports/daily", token=None).status_code == 401


def _raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=10)
    client.sendall(head.encode())
    return client


def _send_until_refused(client: socket.socket, chunk: bytes, total: int) -> int:
    """Sends up to ``total`` bytes; returns how many the server took before it closed."""
    sent = 0
    try:
        while sent < total:
            client.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


_BIG = 200 * 1024 * 1024


def test_an_oversized_webhook_post_is_refused_before_its_body_is_read(api: Api) -> None:
    """Twilio's callbacks are about 1 kB: a 200 MB unsigned POST gets 413 from its headers, and
    the server closes the connection instead of reading (and holding) what follows."""
    path = "/api/v1/twilio/status"
    client = _raw_request(
        api.url,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nContent-Length: {_BIG}\r\n\r\n",
    )
    with client:
        answer = client.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 413 "), answer
        assert "connection: close" in answer.lower()
        sent = _send_until_refused(client, b"x" * 65536, _BIG)
    # What the kernels buffer on both sides at most (a few MB on loopback), not the body.
    assert sent < _BIG // 10


def test_a_chunked_body_is_counted_as_it_arrives_and_cut_off_at_the_limit(api: Api) -> None:
    client = _raw_request(
        api.url,
        "POST /api/v1/twilio/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
        "\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
    )
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    with client:
        sent = _send_until_refused(client, chunk, _BIG)
        assert sent < _BIG // 10
        try:
            answer = client.recv(65536).decode()
        except ConnectionResetError:
            answer = ""  # the reset may overtake the answer; the bytes sent above are the proof
        assert answer == "" or answer.startswith("HTTP/1.1 413 "), answer


def test_request_bodies_beyond_api_max_body_bytes_get_413(api: Api) -> None:
    ack = httpx.post(
        f"{api.url}/api/v1/alerts/1/ack",
        headers={"Authorization": f"Bearer {OPERATOR}"},
        content=b"x" * (1024 * 1024 + 1),
        timeout=10,
    )
    assert ack.status_code == 413
    signed = api.twilio.received[0]
    assert api.twilio.report_status(signed, "delivered") == 204  # a real receipt still passes


def test_security_headers_on_the_page_and_the_api(api: Api) -> None:
    page = api.get("/", token=None)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    for answer in (page, api.get("/api/v1/alerts"), api.get("/static/app.js", token=None)):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert api.get(f"/api/v1/stations/{MAICHONG}", token=ADMIN).headers["cache-control"] == (
        "no-store"  # full phone numbers
    )
    assert api.get("/api/v1/alerts").headers["cache-control"] == "no-store"


def test_the_station_list_is_compressed_and_revalidated_by_etag(api: Api) -> None:
    for path in ("/api/v1/stations", "/api/v1/stations/status"):
        auth = {"Authorization": f"Bearer {VIEWER}"}
        plain = httpx.get(api.url + path, headers={**auth, "Accept-Encoding": "identity"})
        packed = httpx.get(api.url + path, headers={**auth, "Accept-Encoding": "gzip"})
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.num_bytes_downloaded < len(plain.content) / 3
        assert packed.content == plain.content  # httpx decompressed it
        assert packed.headers["etag"] == plain.headers["etag"]
        assert plain.headers["cache-control"] == "private, no-cache"
        again = httpx.get(api.url + path, headers={**auth, "If-None-Match": plain.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["etag"] == plain.headers["etag"]
        other = httpx.get(api.url + path, headers={**auth, "If-None-Match": 'W/"0"'})
        assert other.status_code == 200
        assert (
            httpx.get(api.url + path, headers={"If-None-Match": plain.headers["etag"]}).status_code
            == 401
        )  # a tag is no token

    before = api.get("/api/v1/stations").headers["etag"]

    async def one_more(pool: AsyncConnectionPool) -> None:
        await ReadingWriter(pool).write([Reading(MAICHONG, minutes_ago(1), water_level=771.6)])

    api.run(one_more)
    assert api.get("/api/v1/stations").headers["etag"] != before  # its latest reading changed
