"""``hydro alerts ...`` and ``hydro outbox list``: every alert and every SMS, afterwards."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import getpass
import json
import sys
from collections.abc import Sequence

from hydro import app
from hydro.cli._common import Command, ago, aware, option, run_async
from hydro.models import Channel, Role, mask_phone
from hydro.rules import Severity
from hydro.store.alerts import AlertFilter, AlertRecord
from hydro.store.ladder import wake_up
from hydro.store.outbox import OutboxRecord


def _list(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    zone = config.registry.default_timezone
    query = AlertFilter(
        station=args.station,
        since=aware(args.since, zone),
        until=aware(args.until, zone),
        severity=args.severity,
        state="open" if args.active else None,
        limit=args.limit,
    )
    alerts = run_async(app.alerts(config, query))
    if args.format == "json":
        for alert in alerts:
            print(json.dumps(dataclasses.asdict(alert), default=str, ensure_ascii=False))
    elif args.format == "csv":
        _csv(alerts)
    else:
        for alert in alerts:
            print(_alert_line(alert))
        if not alerts:
            print("no alerts match")
    return 0


def _csv(alerts: Sequence[AlertRecord]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow([f.name for f in dataclasses.fields(AlertRecord)])
    for alert in alerts:
        writer.writerow(dataclasses.astuple(alert))


def _alert_line(a: AlertRecord) -> str:
    ack = f" ack by {a.acknowledged_by}" if a.acknowledged_by else ""
    cleared = f" cleared {a.cleared_at:%m-%d %H:%M}" if a.cleared_at else ""
    late = " (late)" if a.late else ""
    return (
        f"{a.id:>7} {a.state:<7} {a.severity:<6} {a.station:<10} {a.rule_id:<24}"
        f" opened {a.opened_at:%Y-%m-%d %H:%M}Z peak {a.peak_value}{cleared}{late}{ack}"
    )


def _show(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    detail = run_async(app.alert(config, args.id))
    if detail is None:
        print(f"error: no alert {args.id}", file=sys.stderr)
        return 1
    print(_alert_line(detail.alert))
    for event in detail.events:
        late = " late: nobody paged" if event.late else ""
        print(
            f"  {event.observed_at:%Y-%m-%d %H:%M}Z {event.change:<9} {event.rule_id}"
            f" value {event.value}{late}"
        )
    for sms in detail.messages:
        print(f"  {_outbox_line(sms)}")
    _print_ladder(detail)
    return 0


def _print_ladder(detail: app.AlertView) -> None:
    """叫应: each step with whom it reached and how that went, who confirmed, the wake-up."""
    if not detail.ladder and not detail.confirmations:
        return
    messages = {m.notification.outbox_id: m for m in detail.messages}
    print("  叫应 ladder:")
    for step in detail.ladder:
        print(f"    {step.taken_at:%Y-%m-%d %H:%M:%S}Z {step.key}: {step.reason}")
        for outbox_id in step.outbox_ids:
            if (sent := messages.get(outbox_id)) is not None:
                n, to = sent.notification, sent.notification.recipient
                print(
                    f"      {n.channel.value} #{outbox_id} {to.role.value} {to.name}"
                    f" {mask_phone(to.phone)} {sent.status}"
                )
    for c in detail.confirmations:
        to = c.recipient
        print(
            f"    confirmed {c.confirmed_at:%Y-%m-%d %H:%M:%S}Z by {to.role.value} {to.name}"
            f" via {c.answer.value} (recorded by {c.recorded}), answers rank {c.rank}"
        )
    woke = wake_up(detail.alert.opened_at, detail.confirmations)
    print(f"    wake-up: {'nobody has confirmed' if woke is None else woke}")


def _outbox_line(o: OutboxRecord) -> str:
    n, to = o.notification, o.notification.recipient
    error = f" error: {o.last_error}" if o.last_error else ""
    manual = f" by {o.written_by} ({o.reason})" if o.manual_send_id is not None else ""
    kind = "CALL" if n.channel is Channel.VOICE else "SMS"
    call = f" call={o.call_status}" if o.call_status else ""
    return (
        f"{kind} #{n.outbox_id} {o.status:<9} x{o.attempts} {to.role.value:<14} {to.name}"
        f" {mask_phone(to.phone)} id={o.provider_id or '-'}{manual}{call}{error}: {n.text}"
    )


def _confirm(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    role = Role(args.role) if args.role else None
    if role is None and args.phone is None:
        print("error: give --role or --phone", file=sys.stderr)
        return 2
    found = run_async(
        app.confirm_alert(config, args.id, role=role, phone=args.phone, by=args.by, note=args.note)
    )
    if found is None or isinstance(found, str):
        print(f"error: {found or f'no alert {args.id}'}", file=sys.stderr)
        return 1
    standing, new = found
    to = standing.recipient
    print(
        f"alert {args.id}: {to.role.value} {to.name} {'confirmed' if new else 'had confirmed'}"
        f" at {standing.confirmed_at} via {standing.answer.value} (recorded by"
        f" {standing.recorded})"
    )
    return 0


def _ack(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    alert = run_async(app.acknowledge_alert(config, args.id, args.by))
    if alert is None:
        print(f"error: no alert {args.id}", file=sys.stderr)
        return 1
    print(f"alert {alert.id} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at}")
    return 0


def _outbox(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    for sms in run_async(app.outbox(config, args.status, args.limit)):
        print(_outbox_line(sms))
    return 0


COMMANDS = (
    Command(
        "alerts",
        "alert history: list, show one with its SMS and 叫应 ladder, acknowledge, confirm",
        """
  hydro alerts list --active
  hydro alerts show 42
  hydro alerts ack 42 --by 王值班
  hydro alerts confirm 42 --role patrol --note 电话已联系
""",
        commands=(
            Command(
                "list",
                "alerts, newest first (by observation time)",
                """
  hydro alerts list --since 24h
  hydro alerts list --station 67901001 --format csv > maichong.csv
  hydro alerts list --severity orange --active --format json
""",
                _list,
                (
                    option("--station"),
                    option("--since", type=ago, help="a time or an age like 2h, 7d"),
                    option("--until", type=ago, help="a time or an age like 2h, 7d"),
                    option("--severity", choices=[s.value for s in Severity]),
                    option("--active", action="store_true", help="only alerts still open"),
                    option("--limit", type=int, default=100),
                    option("--format", choices=["table", "json", "csv"], default="table"),
                ),
            ),
            Command(
                "show",
                "one alert: its transitions and every SMS with its delivery status",
                """
  hydro alerts show 42
""",
                _show,
                (option("id", type=int),),
            ),
            Command(
                "ack",
                "acknowledge an alert (the first acknowledgement is kept)",
                """
  hydro alerts ack 42 --by 王值班
""",
                _ack,
                (
                    option("id", type=int),
                    option("--by", required=True, help="who acknowledges"),
                ),
            ),
            Command(
                "confirm",
                "record that you reached a person of the alert by phone (叫应 on their behalf)",
                """
  hydro alerts confirm 42 --role patrol --note 电话已联系
  hydro alerts confirm 42 --phone +8613900000001 --by 王值班
""",
                _confirm,
                (
                    option("id", type=int),
                    option("--role", choices=[r.value for r in Role], help="the person's role"),
                    option("--phone", help="the person's phone (E.164), when a role has several"),
                    option("--note", help="e.g. 电话已联系"),
                    option(
                        "--by",
                        default=f"cli:{getpass.getuser()}",
                        help="who records it (default: cli:USER)",
                    ),
                ),
            ),
        ),
    ),
    Command(
        "outbox",
        "the SMS outbox",
        """
  hydro outbox list --status failed
""",
        commands=(
            Command(
                "list",
                "SMS newest first, with status, attempts and the last error",
                """
  hydro outbox list
  hydro outbox list --status queued --limit 500
""",
                _outbox,
                (
                    option(
                        "--status", choices=["queued", "sending", "sent", "delivered", "failed"]
                    ),
                    option("--limit", type=int, default=100),
                ),
            ),
        ),
    ),
)
