"""``hydro sms send``: the duty desk's manual SMS from the command line, previewed first."""

from __future__ import annotations

import argparse
import getpass
import sys

from hydro import app
from hydro.cli._common import Command, OneOf, option, run_async
from hydro.config import Config
from hydro.desk.compose import Preview
from hydro.desk.manual import SmsRequest, request_of
from hydro.errors import SmsRefused
from hydro.models import mask_phone
from hydro.rules import Severity


def _send(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    request = request_of(args)
    if not args.dry_run and not (args.reason or "").strip():
        raise SmsRefused("say why this message is sent: --reason")
    return run_async(_preview_then_send(config, request, args))


async def _preview_then_send(config: Config, request: SmsRequest, args: argparse.Namespace) -> int:
    async with app.manual_sms_desk(config) as desk:
        draft = await desk.preview(request)
        preview = draft.preview
        if args.dry_run:
            _print_preview(preview, draft.alert_id)
            return 0
        confirm = None
        if preview.recipients > desk.confirm_above:
            if not (args.yes or _confirmed(preview)):
                print(
                    f"error: not sent: {preview.recipients} recipients need --yes"
                    f" (above sms.confirm_above {desk.confirm_above})",
                    file=sys.stderr,
                )
                return 1
            confirm = preview.confirm
        sent = await desk.send(
            request,
            written_by=args.by or getpass.getuser(),
            reason=args.reason,
            confirm=confirm,
        )
    alert = f", attached to alert {sent.alert_id}" if sent.alert_id else ""
    print(
        f"queued manual send {sent.send_id}: {sent.preview.recipients} SMS"
        f" ({sent.preview.segments} segments) to {sent.preview.audience}{alert}"
    )
    return 0


def _confirmed(preview: Preview) -> bool:
    if not sys.stdin.isatty():
        return False
    print(f"{preview.recipients} people will get this message ({preview.segments} SMS):")
    print(f"  {preview.messages[0].text}")
    answer = input(f"type {preview.recipients} to send: ")
    return answer.strip() == str(preview.recipients)


def _print_preview(preview: Preview, alert_id: int | None) -> None:
    longest = max(preview.messages, key=lambda m: m.characters)
    alert = f", attached to alert {alert_id}" if alert_id else ""
    print(
        f"{preview.recipients} recipients ({preview.audience}{alert}), {preview.segments} SMS;"
        f" longest {longest.characters} characters, {longest.length.segments} segment(s)"
        f" {longest.length.encoding}; confirm {preview.confirm}"
    )
    for m in preview.messages:
        to = m.recipient
        print(
            f"  {to.role.value:<14} {to.name} {mask_phone(to.phone)} {','.join(m.stations) or '-'}"
            f" [{m.characters} chars, {m.length.segments} x {m.length.encoding}]: {m.text}"
        )


COMMANDS = (
    Command(
        "sms",
        "the duty desk's manual SMS",
        """
  hydro sms send --prefecture 黔东南州 --text "{name}: 今夜强降雨" --reason 预报 --dry-run
""",
        commands=(
            Command(
                "send",
                "write an SMS to the people you pick; --dry-run prints each person's exact text",
                """
  hydro sms send --station 67901001 --text "{station}请立即复核水位" --reason 电话报汛
  hydro sms send --station 61901002 --from-rule river_guaranteed --reason 演练 --dry-run
  hydro sms send --county 台江县 --from-rule river_warning --rule-station 61901002 --dry-run
  hydro sms send --in-alert --severity red --from-alert 67901001 --reason 红色预警跟进 --yes
  hydro sms send --duty --text "交班: 夜间无新增预警" --reason 交接班
""",
                _send,
                (
                    OneOf(
                        (
                            option("--station", help="the three persons of this station (code)"),
                            option("--county", help="every responsible person of its stations"),
                            option("--prefecture", help="every responsible person of its stations"),
                            option("--river", help="every responsible person of its stations"),
                            option(
                                "--in-alert",
                                action="store_true",
                                help="the persons of stations in alert",
                            ),
                            option(
                                "--duty", action="store_true", help="the duty officers on duty now"
                            ),
                            option("--group", help="a saved group of sms.groups"),
                        ),
                        required=True,
                    ),
                    option(
                        "--severity", choices=[s.value for s in Severity], help="with --in-alert"
                    ),
                    option("--text", help="may name {name} {station} {code} {county} {prefecture}"),
                    option(
                        "--from-rule",
                        metavar="RULE",
                        help="a rule's message, filled for a station",
                    ),
                    option(
                        "--rule-station",
                        metavar="CODE",
                        help="the station --from-rule is filled for (default: --station)",
                    ),
                    option(
                        "--from-alert",
                        metavar="STATION",
                        help="the station's last alert SMS; the send is attached to that alert",
                    ),
                    option("--reason", help="why it is sent (kept with every message)"),
                    option("--by", default=None, help="who writes it (default: your login name)"),
                    option(
                        "--dry-run", action="store_true", help="print the preview; send nothing"
                    ),
                    option(
                        "--yes",
                        action="store_true",
                        help="confirm a send above sms.confirm_above recipients",
                    ),
                ),
            ),
        ),
    ),
)
