"""A daily report as text, JSON, CSV, HTML, and as the duty officers' SMS digest. Pure."""

from __future__ import annotations

import csv
import html
import io
import statistics
from collections.abc import Callable
from zoneinfo import ZoneInfo

from hydro.reports.model import (
    AreaRain,
    DailyReport,
    ReservoirStorage,
    StationFigures,
    StorageTotals,
    WakeUp,
)
from hydro.texts import SEVERITY_NAMES

# A Chinese SMS is UCS-2: 70 characters alone, 67 per segment when split. Two segments at most.
DIGEST_LIMIT = 2 * 67
LISTED = 20  # silent or incomplete stations named in text and HTML; the rest are counted


def period(report: DailyReport) -> str:
    tz = ZoneInfo(report.timezone)
    start, end = report.start.astimezone(tz), report.end.astimezone(tz)
    return f"{start.month}月{start.day}日8时至{end.month}月{end.day}日8时"


def _gap(row: StationFigures) -> str:
    missing = row.expected - row.rain_reports
    return f"(缺报{missing}次)" if missing > 0 else ""


def _area(area: AreaRain) -> str:
    incomplete = f",其中{area.incomplete}站缺报" if area.incomplete else ""
    return (
        f"{area.prefecture}{area.county or ''} 平均{area.mean_mm:.1f}毫米"
        f" 最大{area.wettest}{area.max_mm:.1f}毫米 ({area.stations}站{incomplete})"
    )


def _named(report: DailyReport, codes: list[str]) -> str:
    names = [f"{report.by_code[c].name}({c})" for c in codes[:LISTED]]
    more = f" 等{len(codes)}站" if len(codes) > LISTED else ""
    return "、".join(names) + more


def to_text(report: DailyReport) -> str:
    lines = [
        f"水情日报 {period(report)} ({report.timezone}), 生成于 {report.built_at:%Y-%m-%d %H:%M}Z"
    ]
    lines.append("一、降雨 (缺报时段雨量未知,不计为零)")
    if not report.wettest:
        lines.append("  无降雨数据")
    lines += [f"  {_area(a)}" for a in report.rain_by_prefecture]
    lines += [f"    {_area(a)}" for a in report.rain_by_county]
    for rank, code in enumerate(report.wettest, start=1):
        row = report.by_code[code]
        lines.append(
            f"  {rank}. {row.prefecture}{row.county}{row.name} {row.rain_mm:.1f}毫米{_gap(row)}"
        )
    grades = [f"{g.name}{g.stations}站" for g in report.grades if g.stations]
    lines.append("  暴雨等级: " + ("、".join(grades) if grades else "无"))
    lines.append("二、超特征水位")
    lines += [
        f"  {e.prefecture}{e.county}{e.name} 最高{e.level_max:.2f}米 超{e.level_name}"
        f"{e.excess:.2f}米" + (f" 8时{e.level_0800:.2f}米" if e.level_0800 is not None else "")
        for e in report.above_levels
    ] or ["  无"]
    lines.append(f"三、预警 新增{len(report.alerts_opened)}条, 仍有效{len(report.alerts_active)}条")
    lines += [
        f"  #{a.id} {a.name} {a.rule_id} {SEVERITY_NAMES.get(a.severity, a.severity)}"
        f" {a.state} {a.opened_at:%m-%d %H:%M}Z"
        for a in report.alerts_active
    ]
    lines += _wake_up_text(report)
    lines.append("四、测站")
    lines.append(f"  全天无数据 {len(report.silent)}站: {_named(report, report.silent) or '无'}")
    lines.append(
        f"  部分缺报 {len(report.missing_data)}站: {_named(report, report.missing_data) or '无'}"
    )
    lines.append("五、短信 " + _sms(report))
    if report.calls:
        lines.append("  电话 " + _calls(report))
    numbers = iter("六七")  # the sections a report may lack
    if report.storage_totals is not None:
        lines.append(f"{next(numbers)}、中型以上水库蓄水 (8时) {_totals(report.storage_totals)}")
        lines += [f"  {_reservoir(r)}" for r in report.storage]
    if report.corrections:
        lines.append(f"{next(numbers)}、报告生成后的数据更正 (迟到或更正的数据)")
        lines += [
            f"  {c.name}({c.code}) {c.figure}: {c.was} -> {c.now}" for c in report.corrections
        ]
    return "\n".join(lines)


def _totals(totals: StorageTotals) -> str:
    percent = "" if totals.percent_normal is None else f", 为正常库容的{totals.percent_normal}%"
    change = (
        ""
        if totals.change is None
        else f", 较前日8时{totals.change:+.2f}万m³ ({totals.compared}座可比)"
    )
    return (
        f"{totals.reservoirs}座, 有数据{totals.reported}座: 蓄水{totals.storage:.2f}万m³"
        f"{percent}{change}, 超汛限{totals.above_flood_limit}座"
    )


def _reservoir(r: ReservoirStorage) -> str:
    where = f"{r.prefecture}{r.county}{r.name}({r.size})"
    if r.level is None:
        return f"{where} 8时前24小时无水位"
    read = f"水位{r.level:.2f}米" + (f"({_age(r.age_minutes)})" if r.age_minutes else "")
    above = "" if r.above_flood_limit is None else f" 超汛限{r.above_flood_limit:.2f}米"
    if r.storage is None:
        side = "低于" if r.outside == "below" else "高于"
        return f"{where} {read} {side}库容曲线, 库容未知{above}"
    change = "" if r.change is None else f" 较前日{r.change:+.2f}"
    return f"{where} {read} 蓄水{r.storage:.2f}万m³ ({r.percent_normal}%){change}{above}"


def _age(minutes: int | None) -> str:
    """How long before 08:00 a level was read, as a duty officer reads it."""
    minutes = minutes or 0
    return f"{minutes}分钟前" if minutes < 120 else f"{minutes // 60}小时前"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}分{rest}秒" if minutes else f"{rest}秒"


def _place(prefecture: str, county: str) -> str:
    return prefecture + county or "不在测站表"


def _alerts_named(report: DailyReport, ids: list[int]) -> str:
    return "、".join(f"#{i}{report.wake_up_names[i]}" for i in ids)


def _wake_up_text(report: DailyReport) -> list[str]:
    """叫应 of the alerts opened in the day, by county: from opening to the first confirmation."""
    if not report.wake_ups:
        return ["  叫应: 无"]
    confirmed = sum(c.confirmed for c in report.wake_up_by_county)
    lines = [f"  叫应 (开始至首次确认): {len(report.wake_ups)}条, 已确认{confirmed}条"]
    for c in report.wake_up_by_county:
        unconfirmed = _alerts_named(report, c.unconfirmed)
        lines.append(
            f"    {_place(c.prefecture, c.county)} {c.alerts}条 已确认{c.confirmed}条"
            f" 中位{_duration(c.median_s)} 最长{_duration(c.worst_s)}"
            + (f" 未叫应: {unconfirmed}" if unconfirmed else "")
        )
    return lines


def _sms(report: DailyReport) -> str:
    n = report.sms.get
    return (
        f"已发{n('sent', 0) + n('delivered', 0)}条(送达{n('delivered', 0)}条),"
        f" 失败{n('failed', 0)}条, 待发{n('queued', 0) + n('sending', 0)}条"
    )


def _calls(report: DailyReport) -> str:
    """叫应's calls: a placed call is one the provider took (its answer is in the wake-up
    figures), a failed one was refused for good."""
    n = report.calls.get
    return (
        f"已呼叫{n('sent', 0) + n('delivered', 0)}次, 失败{n('failed', 0)}次,"
        f" 待呼叫{n('queued', 0) + n('sending', 0)}次"
    )


def to_json(report: DailyReport) -> str:
    return report.model_dump_json(indent=2)


# A medium or larger reservoir's storage figures, after the station's own (empty for others).
STORAGE_CSV_COLUMNS = {
    "size": "storage_size",
    "level_time": "storage_level_time",
    "storage": "storage",
    "change": "storage_change",
    "percent_normal": "storage_percent_normal",
    "above_flood_limit": "above_flood_limit",
}
WAKE_UP_COLUMNS = ["ladder_alerts", "ladder_confirmed", "wake_up_median_s", "wake_up_worst_s"]
CSV_COLUMNS = [*StationFigures.model_fields, *STORAGE_CSV_COLUMNS.values(), *WAKE_UP_COLUMNS]


def to_csv(report: DailyReport) -> str:
    """One row per station: the day's figures (rain_reports below expected: rain unknown), then
    the 叫应 of its alerts opened in the day."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    storage = {r.code: r for r in report.storage}
    wake_ups: dict[str, list[WakeUp]] = {}
    for w in report.wake_ups:
        wake_ups.setdefault(w.station, []).append(w)
    for row in report.stations:
        held = storage.get(row.code)
        extra = [None if held is None else getattr(held, name) for name in STORAGE_CSV_COLUMNS]
        values = [
            *row.model_dump().values(),
            *extra,
            *_station_wake_ups(wake_ups.get(row.code, [])),
        ]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _station_wake_ups(wake_ups: list[WakeUp]) -> list[object]:
    times = sorted(w.wake_up_s for w in wake_ups if w.wake_up_s is not None)
    return [
        len(wake_ups),
        len(times),
        statistics.median(times) if times else None,
        times[-1] if times else None,
    ]


def to_html(report: DailyReport) -> str:
    opened = {a.id for a in report.alerts_opened}
    title = html.escape(f"水情日报 {period(report)}")
    sections = [
        f"<h1>{title}</h1>",
        f"<p>{html.escape(report.timezone)}, built {report.built_at:%Y-%m-%d %H:%M}Z</p>",
        "<h2>降雨</h2><p>缺报时段雨量未知,不计为零。</p>",
        _table(
            ["地区", "站数", "缺报站", "平均(毫米)", "最大站", "最大(毫米)"],
            [
                [
                    f"{a.prefecture}{a.county or ''}",
                    a.stations,
                    a.incomplete,
                    a.mean_mm,
                    a.wettest,
                    a.max_mm,
                ]
                for a in report.rain_by_prefecture + report.rain_by_county
            ],
        ),
        _table(
            ["站名", "站码", "地区", "雨量(毫米)", "报数/应报"],
            [
                [
                    r.name,
                    r.code,
                    r.prefecture + r.county,
                    r.rain_mm,
                    f"{r.rain_reports}/{r.expected}",
                ]
                for r in (report.by_code[c] for c in report.wettest)
            ],
        ),
        _table(["暴雨等级", "站数"], [[g.name, g.stations] for g in report.grades]),
        "<h2>超特征水位</h2>",
        _table(
            ["站名", "特征水位", "水位(米)", "最高(米)", "超(米)", "8时(米)"],
            [
                [e.name, e.level_name, e.level, e.level_max, e.excess, e.level_0800]
                for e in report.above_levels
            ],
        ),
        "<h2>预警</h2>",
        _table(
            ["#", "站名", "规则", "等级", "状态", "开始(UTC)"],
            [
                [
                    a.id,
                    a.name,
                    a.rule_id,
                    SEVERITY_NAMES.get(a.severity, a.severity),
                    a.state,
                    f"{a.opened_at:%Y-%m-%d %H:%M}",
                ]
                for a in report.alerts_opened
                + [a for a in report.alerts_active if a.id not in opened]
            ],
        ),
        *_wake_up_html(report),
        "<h2>测站</h2>",
        f"<p>全天无数据: {html.escape(_named(report, report.silent) or '无')}</p>",
        f"<p>部分缺报: {html.escape(_named(report, report.missing_data) or '无')}</p>",
        f"<h2>短信</h2><p>{html.escape(_sms(report))}</p>",
        *([f"<p>电话 {html.escape(_calls(report))}</p>"] if report.calls else []),
    ]
    if report.storage_totals is not None:
        sections += [
            "<h2>中型以上水库蓄水 (8时)</h2>",
            f"<p>{html.escape(_totals(report.storage_totals))}</p>",
            _table(
                [
                    "站名",
                    "地区",
                    "规模",
                    "水位(米)",
                    "测于(UTC)",
                    "蓄水(万m³)",
                    "较前日(万m³)",
                    "占正常库容(%)",
                    "超汛限(米)",
                ],
                [
                    [
                        r.name,
                        r.prefecture + r.county,
                        r.size,
                        r.level,
                        None if r.level_time is None else f"{r.level_time:%Y-%m-%d %H:%M}",
                        r.storage if r.outside is None else f"{r.outside} curve",
                        r.change,
                        r.percent_normal,
                        r.above_flood_limit,
                    ]
                    for r in report.storage
                ],
            ),
        ]
    if report.corrections:
        sections += [
            "<h2>报告生成后的数据更正</h2>",
            _table(
                ["站名", "站码", "项目", "原值", "现值"],
                [[c.name, c.code, c.figure, c.was, c.now] for c in report.corrections],
            ),
        ]
    body = "\n".join(sections)
    return (
        f'<!doctype html>\n<html lang="zh"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>\n{body}\n</body></html>\n"
    )


def _wake_up_html(report: DailyReport) -> list[str]:
    return [
        "<h3>叫应 (开始至首次确认)</h3>",
        _table(
            ["地区", "预警", "已确认", "中位", "最长", "未叫应"],
            [
                [
                    _place(c.prefecture, c.county),
                    c.alerts,
                    c.confirmed,
                    _duration(c.median_s),
                    _duration(c.worst_s),
                    _alerts_named(report, c.unconfirmed),
                ]
                for c in report.wake_up_by_county
            ],
        ),
        _table(
            ["#", "站名", "等级", "开始(UTC)", "首次确认(UTC)", "叫应用时", "方式"],
            [
                [
                    w.id,
                    w.name,
                    SEVERITY_NAMES.get(w.severity, w.severity),
                    f"{w.opened_at:%Y-%m-%d %H:%M:%S}",
                    "" if w.confirmed_at is None else f"{w.confirmed_at:%Y-%m-%d %H:%M:%S}",
                    _duration(w.wake_up_s),
                    w.answer or ("已签收,无人确认" if w.acknowledged else "无人确认"),
                ]
                for w in report.wake_ups
            ],
        ),
    ]


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def digest(report: DailyReport) -> str:
    """The SMS to the duty officers: at most two segments, the most important first; what does
    not fit is left out whole, never cut mid-figure."""
    parts = [f"【水情日报】{period(report)}"]
    rainy = [report.by_code[c] for c in report.wettest]
    if rainy:
        top = rainy[0]
        parts.append(f"最大降雨{top.county}{top.name}{top.rain_mm:.1f}毫米")
    grades = [
        f"{SEVERITY_NAMES.get(g.severity, '')}{g.stations}" for g in report.grades if g.stations
    ]
    if grades:
        parts.append("暴雨站" + "/".join(grades))
    if report.above_levels:
        parts.append(f"超特征水位{len({e.code for e in report.above_levels})}站")
    parts.append(f"新增预警{len(report.alerts_opened)}条,仍有效{len(report.alerts_active)}条")
    totals = report.storage_totals
    if totals is not None and totals.reported:
        parts.append(_storage_digest(totals))
    if report.silent:
        parts.append(f"无数据{len(report.silent)}站")
    failed = report.sms.get("failed", 0)
    if failed:
        parts.append(f"短信失败{failed}条")
    failed_calls = report.calls.get("failed", 0)
    if failed_calls:
        parts.append(f"电话失败{failed_calls}次")
    return _fit(parts, DIGEST_LIMIT)


def _storage_digest(totals: StorageTotals) -> str:
    """As the duty desk's summary has it: 中型以上水库 total storage, its change since the
    previous 08:00, and how many stand above their flood-limit level."""
    unit, scale = ("亿m³", 10_000.0) if totals.storage >= 10_000 else ("万m³", 1.0)
    digits = 2 if scale > 1 else 0
    text = f"中型以上水库蓄水{totals.storage / scale:.{digits}f}{unit}"
    if totals.percent_normal is not None:
        text += f"(正常{totals.percent_normal:.0f}%)"
    if totals.change is not None:
        text += f",较前日{totals.change / scale:+.{digits}f}{unit}"
    return text + f",超汛限{totals.above_flood_limit}座"


def _fit(parts: list[str], limit: int) -> str:
    text = parts[0]
    for part in parts[1:]:
        if len(text) + 1 + len(part) <= limit:
            text += ("," if text != parts[0] else ":") + part
    return text


FORMATS: dict[str, Callable[[DailyReport], str]] = {
    "text": to_text,
    "json": to_json,
    "csv": to_csv,
    "html": to_html,
}
