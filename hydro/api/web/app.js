// hydro's web page: the one map, active alerts, alert history and detail, station hydrographs.
// Plain JavaScript, no build step and no internet: everything it loads is served by hydro.
"use strict";

const TEXT = {
  zh: {
    title: "hydro 防汛一张图", nav_map: "一张图", nav_alerts: "预警查询", logout: "退出",
    token: "访问令牌", sign_in: "登录", click_station: "点击测站查看详情", active_alerts: "当前预警",
    station: "测站", prefecture: "市州", severity: "等级", state: "状态", from: "起", to: "止",
    search: "查询", export_csv: "导出CSV", more: "更多", season: "汛期", close: "关闭",
    stations: "测站", open_alerts: "预警", silent: "失联", no_data: "无数据", backlog: "待发短信",
    reporting: "5分钟内上报", rate: "入库(条/秒)", normal: "正常", blue: "蓝色", yellow: "黄色", orange: "橙色", red: "红色",
    opened: "发生时间", rule: "预警", peak: "峰值", acknowledged: "已确认", ack: "确认",
    latest: "最新", water_level: "水位", rainfall: "雨量", flow: "流量", hydrograph: "水位过程线",
    persons: "责任人", events: "过程", notifications: "短信", county: "区县", kind: "类型",
    change_open: "发生", change_escalate: "升级", change_clear: "解除", change_remind: "提醒", change_step_down: "降级",
    bad_token: "令牌无效", none: "无", status: "状态", attempts: "次数", time: "时间",
    acked_by: "确认人", levels: "特征水位", open_station: "查看过程线", rain_mm: "雨量 (mm)",
    nav_report: "水情日报", day: "日期", not_stored: "该日报尚未存档, 按当前数据生成",
    nav_sms: "短信发送", sms_to: "发送对象", sms_station: "测站责任人", sms_river: "河流", sms_in_alert: "预警测站",
    sms_duty: "值班人员", sms_group: "分组", sms_which: "名称/站码", sms_text: "短信内容", sms_from_rule: "预警规则模板",
    sms_rule_station: "规则测站", sms_from_alert: "最近预警短信(站码)", sms_reason: "发送原因", sms_preview: "预览",
    sms_send: "发送", sms_recipients: "接收人", sms_segments: "条短信", sms_longest: "最长", sms_chars: "字",
    sms_confirm: "确认发送给 {n} 人", sms_need_confirm: "请先勾选确认", sms_queued: "已提交发送 {n} 条短信 (发送编号 {id})",
    sms_by: "人工短信, 发送人",
    on_duty: "值班", next_shift: "接班", until: "至", duty_fallback: "值班表未排班, 由备用值班员接收",
    enter_reading: "人工置数", note: "说明", save: "保存", stored: "已保存",
    storage: "库容", of_normal: "正常库容的", normal_storage: "正常库容", below_curve: "水位低于库容曲线", above_curve: "水位高于库容曲线",
    ladder: "叫应", unconfirmed: "未叫应", wake_up: "叫应用时", nobody_confirmed: "尚无人确认",
    confirmations: "确认", step: "步骤", channel: "方式", call_outcome: "呼叫结果", reason: "说明",
    recorded_by: "记录人", sms_channel: "短信", voice_channel: "电话", answer_keypress: "按键",
    answer_link: "链接", answer_operator: "值班员代确认", confirm_for: "电话已联系",
    minutes: "分", seconds: "秒",
  },
  en: {
    title: "hydro flood map", nav_map: "Map", nav_alerts: "Alert history", logout: "Sign out",
    token: "Access token", sign_in: "Sign in", click_station: "Click a station for details",
    active_alerts: "Active alerts", station: "Station", prefecture: "Prefecture",
    severity: "Severity", state: "State", from: "From", to: "To", search: "Search",
    export_csv: "Export CSV", more: "More", season: "Season", close: "Close", stations: "Stations",
    open_alerts: "Alerts", silent: "Silent", no_data: "No data", backlog: "SMS waiting",
    reporting: "Reported in 5 min", rate: "Readings/s", normal: "Normal", blue: "Blue", yellow: "Yellow",
    orange: "Orange", red: "Red", opened: "Opened", rule: "Alert", peak: "Peak",
    acknowledged: "Acknowledged", ack: "Acknowledge", latest: "Latest", water_level: "Water level",
    rainfall: "Rainfall", flow: "Flow", hydrograph: "Hydrograph", persons: "Responsible persons",
    events: "Timeline", notifications: "SMS", county: "County", kind: "Kind",
    change_open: "opened", change_escalate: "escalated", change_clear: "cleared", change_step_down: "stepped down",
    change_remind: "reminder", bad_token: "Unknown token", none: "None", status: "Status",
    attempts: "Attempts", time: "Time", acked_by: "Acknowledged by", levels: "Levels",
    open_station: "Hydrograph", rain_mm: "Rain (mm)",
    nav_report: "Daily report", day: "Day", not_stored: "Not stored yet: built from the data as it is",
    nav_sms: "Send SMS", sms_to: "To", sms_station: "Station's persons", sms_river: "River", sms_in_alert: "Stations in alert",
    sms_duty: "Duty officers", sms_group: "Group", sms_which: "Name / code", sms_text: "Text", sms_from_rule: "Rule template",
    sms_rule_station: "Rule station", sms_from_alert: "Last alert SMS of (code)", sms_reason: "Reason", sms_preview: "Preview",
    sms_send: "Send", sms_recipients: "recipients", sms_segments: "SMS", sms_longest: "longest", sms_chars: "characters",
    sms_confirm: "Confirm sending to {n} people", sms_need_confirm: "Tick the confirmation first", sms_queued: "Queued {n} SMS (send {id})",
    sms_by: "Manual SMS by",
    on_duty: "On duty", next_shift: "Next", until: "until", duty_fallback: "Nobody on the roster: the fallback officers are told",
    enter_reading: "Enter a reading", note: "Note", save: "Save", stored: "Stored",
    storage: "Storage", of_normal: "of normal: ", normal_storage: "Normal storage", below_curve: "level below the storage curve",
    above_curve: "level above the storage curve",
    ladder: "Call ladder", unconfirmed: "Not confirmed", wake_up: "Wake-up time", nobody_confirmed: "Nobody has confirmed",
    confirmations: "Confirmations", step: "Step", channel: "Channel", call_outcome: "Call outcome", reason: "Reason",
    recorded_by: "Recorded by", sms_channel: "SMS", voice_channel: "Call", answer_keypress: "key press",
    answer_link: "link", answer_operator: "by an operator", confirm_for: "Reached by phone",
    minutes: "min ", seconds: "s",
  },
};
const STATUSES = ["red", "orange", "yellow", "blue", "silent", "normal", "no_data"];
const LEVEL_NAMES = {
  warning_level: ["警戒水位", "Warning"], guaranteed_level: ["保证水位", "Guaranteed"],
  flood_limit_level: ["汛限水位", "Flood limit"], normal_level: ["正常蓄水位", "Normal pool"],
  design_flood_level: ["设计洪水位", "Design flood"],
};
const ROLE_NAMES = {
  administrative: ["行政责任人", "Administrative"], technical: ["技术责任人", "Technical"],
  patrol: ["巡查责任人", "Patrol"], duty: ["值班员", "Duty officer"], leader: ["带班领导", "Leader on call"],
  contact: ["联系人", "Contact"], county: ["县防汛负责人", "County flood chief"],
  prefecture: ["市州防汛负责人", "Prefecture flood chief"],
};
const roleName = (role) => (ROLE_NAMES[role] || [role, role])[state.lang === "zh" ? 0 : 1];
const REFRESH_MS = 10000;

const state = {
  lang: localStorage.getItem("hydro.lang") || "zh",
  token: null,
  me: null,
  stations: [],
  selected: null,
  historyCursor: null,
  chart: null,
  smsPreview: null,  // the last preview: its confirm goes with the send
};

const $ = (selector) => document.querySelector(selector);
const t = (key) => TEXT[state.lang][key] ?? key;
const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const when = (iso) => iso ? new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB") : "";
const badge = (status) => `<span class="badge ${esc(status)}">${esc(t(status))}</span>`;

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}

// --- language ---------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  $("#lang").textContent = state.lang === "zh" ? "English" : "中文";
  document.title = t("title");
}

// --- sign-in ----------------------------------------------------------------------------

function takeTokenFromAddress() {
  // `hydro demo` prints the page's address with #token=...: a fragment never reaches a server log.
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    localStorage.setItem("hydro.token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + "#map");
  }
  state.token = localStorage.getItem("hydro.token");
}

async function signIn() {
  try {
    state.me = await api("/api/v1/me");
  } catch (error) {
    if (!(error instanceof Unauthorized)) throw error;
    state.me = null;
  }
  $("#login").hidden = Boolean(state.me);
  $("#who").textContent = state.me ? `${state.me.name} (${state.me.role})` : "";
  return Boolean(state.me);
}

// --- the one map ------------------------------------------------------------------------

function projection(stations) {
  const lats = stations.map((s) => s.lat), lons = stations.map((s) => s.lon);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const midLat = (minLat + maxLat) / 2;
  const kx = Math.cos((midLat * Math.PI) / 180);  // a degree of longitude is shorter up north
  const width = Math.max((maxLon - minLon) * kx, 0.01), height = Math.max(maxLat - minLat, 0.01);
  const scale = Math.min(900 / width, 660 / height);
  const left = 50 + (900 - width * scale) / 2, bottom = 710 - (660 - height * scale) / 2;
  return {
    x: (lon) => left + (lon - minLon) * kx * scale,
    y: (lat) => bottom - (lat - minLat) * scale,
    bounds: { minLat, maxLat, minLon, maxLon },
  };
}

function drawMap() {
  const svg = $("#map");
  const stations = state.stations;
  if (!stations.length) { svg.innerHTML = ""; return; }
  const p = projection(stations);
  const parts = [];
  const { minLat, maxLat, minLon, maxLon } = p.bounds;
  for (let lon = Math.ceil(minLon * 2) / 2; lon <= maxLon; lon += 0.5) {
    parts.push(`<line class="grid-line" x1="${p.x(lon)}" x2="${p.x(lon)}" y1="0" y2="760"/>`);
  }
  for (let lat = Math.ceil(minLat * 2) / 2; lat <= maxLat; lat += 0.5) {
    parts.push(`<line class="grid-line" x1="0" x2="1000" y1="${p.y(lat)}" y2="${p.y(lat)}"/>`);
  }
  const prefectures = new Map();
  for (const s of stations) {
    const c = prefectures.get(s.prefecture) || { lat: 0, lon: 0, n: 0 };
    prefectures.set(s.prefecture, { lat: c.lat + s.lat, lon: c.lon + s.lon, n: c.n + 1 });
  }
  for (const [name, c] of prefectures) {
    parts.push(`<text class="label" x="${p.x(c.lon / c.n)}" y="${p.y(c.lat / c.n) - 14}">${esc(name)}</text>`);
  }
  // Draw alerts last, so a red station is never hidden under a normal neighbour.
  const order = [...stations].sort((a, b) => STATUSES.indexOf(b.status) - STATUSES.indexOf(a.status));
  for (const s of order) {
    const radius = ["red", "orange", "yellow", "blue"].includes(s.status) ? 9 : 6;
    const selected = s.code === state.selected ? " selected" : "";
    parts.push(`<circle class="station${selected}" data-code="${esc(s.code)}" data-status="${esc(s.status)}"`
      + ` cx="${p.x(s.lon)}" cy="${p.y(s.lat)}" r="${radius}" fill="var(--${esc(s.status)})">`
      + `<title>${esc(s.name)} ${esc(s.code)}</title></circle>`);
    if (s.silent && s.status !== "silent") {
      parts.push(`<circle class="silent-ring" cx="${p.x(s.lon)}" cy="${p.y(s.lat)}" r="${radius + 4}"/>`);
    }
  }
  svg.innerHTML = parts.join("");
  const counts = Object.fromEntries(STATUSES.map((k) => [k, 0]));
  for (const s of stations) counts[s.status] += 1;
  $("#legend").innerHTML = STATUSES.map((k) =>
    `<span><i class="${k}"></i>${esc(t(k))} ${counts[k]}</span>`).join("");
}

async function showPanel(code) {
  state.selected = code;
  drawMap();
  const s = await api(`/api/v1/stations/${encodeURIComponent(code)}`);
  const levels = Object.entries(s.levels).filter(([, v]) => v !== null)
    .map(([k, v]) => `${LEVEL_NAMES[k][state.lang === "zh" ? 0 : 1]} ${v.toFixed(2)}`).join(" · ");
  const latest = s.latest
    ? `${t("water_level")} ${s.latest.water_level ?? "-"} · ${t("rainfall")} ${s.latest.rainfall ?? "-"} · ${when(s.latest.time)}`
    : t("none");
  $("#panel").innerHTML = `
    <h3>${esc(s.name)} ${badge(s.status)}</h3>
    <p class="muted">${esc(s.code)} · ${esc(s.prefecture)} ${esc(s.county)} · ${esc(s.river)} · ${esc(s.kind)}</p>
    <p><b>${esc(t("latest"))}</b>: ${esc(latest)}</p>
    <p><b>${esc(t("levels"))}</b>: ${esc(levels || t("none"))}</p>
    ${s.storage ? `<p id="panel-storage"><b>${esc(t("storage"))}</b>: ${esc(storageText(s.storage))}</p>` : ""}
    <p><b>${esc(t("persons"))}</b>: ${s.persons.map((p) => `${esc(p.name)} ${esc(p.phone)}`).join(" · ")}</p>
    <p><a href="#station/${encodeURIComponent(s.code)}">${esc(t("open_station"))}</a></p>
    ${alertTable(s.active_alerts)}`;
}

// A reservoir's storage (万m³) at its latest level, as the daily report gives it at 08:00.
function storageText(st) {
  const normal = `${t("normal_storage")} ${st.normal_storage.toFixed(0)} 万m³ · ${st.size}`;
  if (st.outside) return `${t(st.outside === "below" ? "below_curve" : "above_curve")} · ${normal}`;
  if (st.storage === null) return `${t("none")} · ${normal}`;
  return `${st.storage.toFixed(0)} 万m³ · ${t("of_normal")}${st.percent_normal}% · ${normal}`;
}

function alertTable(alerts) {
  if (!alerts.length) return `<p class="muted">${esc(t("none"))}</p>`;
  const rows = alerts.map((a) => `
    <tr data-alert="${a.id}">
      <td>${badge(a.severity)}</td><td>${esc(a.station_name || a.station)}</td>
      <td>${esc(a.prefecture || "")} ${esc(a.county || "")}</td><td>${esc(a.rule_name || a.rule_id)}</td>
      <td>${esc(when(a.opened_at))}</td><td>${a.peak_value === null ? "" : a.peak_value.toFixed(2)}</td>
      <td>${esc(a.state)}</td><td>${esc(a.acknowledged_by || "")}</td>
    </tr>`).join("");
  return `<table class="grid"><thead><tr><th>${t("severity")}</th><th>${t("station")}</th>
    <th>${t("prefecture")}</th><th>${t("rule")}</th><th>${t("opened")}</th><th>${t("peak")}</th>
    <th>${t("state")}</th><th>${t("acked_by")}</th></tr></thead><tbody>${rows}</tbody></table>`;
}

async function refreshMap() {
  // The registry part is fetched once; each refresh asks only for every station's colour.
  if (!state.stations.length) state.stations = await api("/api/v1/stations");
  const [states, summary, active, duty, unconfirmed] = await Promise.all([
    api("/api/v1/stations/status"), api("/api/v1/summary"), api("/api/v1/alerts?state=open&limit=200"),
    api("/api/v1/duty"), api("/api/v1/alerts?unconfirmed=true&limit=200"),
  ]);
  showDuty(duty);
  const byCode = new Map(states.map((s) => [s.code, s]));
  for (const station of state.stations) Object.assign(station, byCode.get(station.code) || {});
  drawMap();
  $("#counts").innerHTML = [
    [t("stations"), summary.stations], [t("open_alerts"), summary.open_alerts],
    [t("silent"), summary.silent.length], [t("no_data"), summary.no_data],
    [t("reporting"), summary.stations_reporting_5m],
    [t("rate"), summary.ingest_rate_per_s.toFixed(1)], [t("backlog"), summary.outbox_backlog],
    [t("unconfirmed"), summary.unconfirmed_alerts],
  ].map(([label, n]) => `<div class="count" data-count="${esc(label)}"><b>${n}</b>${esc(label)}</div>`).join("");
  $("#active").innerHTML = alertTable(active.items).replace(/^<table class="grid">|<\/table>$/g, "");
  showUnconfirmed(summary.unconfirmed_alerts, unconfirmed.items);
}

// 未叫应: alerts whose ladder is calling and nobody has confirmed yet, the longest waiting last.
function showUnconfirmed(count, alerts) {
  $("#unconfirmed-count").textContent = count;
  $("#unconfirmed").innerHTML = alerts.length ? alerts.map((a) => `<tr data-alert="${a.id}">`
    + `<td>${badge(a.severity)}</td><td>${esc(a.station_name || a.station)}</td>`
    + `<td>${esc(a.county || "")}</td><td>${esc(when(a.opened_at))}</td></tr>`).join("")
    : `<tr><td class="muted">${esc(t("none"))}</td></tr>`;
}

// The hand-over: who the duty desk is now (until when), and who takes over next.
function showDuty(duty) {
  const person = (p, time) => `<span class="duty-person" data-role="${esc(p.role)}">${esc(p.role_name)}`
    + ` <b>${esc(p.name)}</b> ${esc(p.phone)}${time ? ` <span class="muted">${esc(time)}</span>` : ""}</span>`;
  const now = duty.on_duty.map((p) => person(p, p.end ? `${t("until")} ${when(p.end)}` : "")).join(" ");
  const next = duty.next.map((p) => person(p, when(p.start))).join(" ");
  $("#duty").innerHTML = `<span id="duty-now"><b>${esc(t("on_duty"))}</b> ${now || esc(t("none"))}</span>`
    + (duty.fallback ? ` <span class="error">${esc(t("duty_fallback"))}</span>` : "")
    + ` <span id="duty-next"><b>${esc(t("next_shift"))}</b> ${next || esc(t("none"))}</span>`;
}

// --- alert detail -----------------------------------------------------------------------

async function showAlert(id) {
  const detail = await api(`/api/v1/alerts/${id}`);
  const a = detail.alert;
  const canAck = state.me && ["operator", "admin"].includes(state.me.role) && !a.acknowledged_by;
  const events = detail.events.map((e) => `<li>${esc(when(e.observed_at))} · ${esc(t(`change_${e.change}`))}`
    + ` · ${esc(e.rule_id)} · ${e.value === null ? "" : e.value.toFixed(2)}${e.late ? " (late)" : ""}</li>`).join("");
  const sms = detail.notifications.map((n) => `<tr>
      <td>${esc(n.role)}</td><td>${esc(n.person)}</td><td>${esc(n.phone)}</td><td>${esc(t(`${n.channel}_channel`))}</td>
      <td class="sms-status">${esc(n.status)}${n.error_code ? ` (${esc(n.error_code)})` : ""}</td>
      <td>${n.attempts}</td><td>${esc(when(n.delivered_at || n.sent_at || n.created_at))}</td>
      <td class="sms-body">${esc(n.body)}${n.written_by ? `<br><span class="muted">${esc(t("sms_by"))} `
        + `${esc(n.written_by)}: ${esc(n.reason)}</span>` : ""}</td></tr>`).join("");
  $("#alert-detail").innerHTML = `
    <h3>${badge(a.severity)} ${esc(a.station_name || a.station)} · ${esc(a.rule_name || a.rule_id)}</h3>
    <p>${esc(t("state"))}: ${esc(a.state)} · ${esc(t("peak"))}: ${a.peak_value ?? ""}
       · ${esc(t("acked_by"))}: <span id="acked-by">${esc(a.acknowledged_by || "-")}</span>
       ${canAck ? `<button id="ack" type="button" data-alert-id="${a.id}">${esc(t("ack"))}</button>` : ""}</p>
    <h4>${esc(t("events"))}</h4><ul class="timeline">${events}</ul>
    <h4>${esc(t("notifications"))}</h4>
    <table class="grid"><thead><tr><th>role</th><th>${t("persons")}</th><th>phone</th>
      <th>${t("channel")}</th><th>${t("status")}</th><th>${t("attempts")}</th><th>${t("time")}</th><th></th></tr></thead>
      <tbody>${sms}</tbody></table>`;
  $("#alert-detail").insertAdjacentHTML("beforeend", ladderSection(detail));
  const dialog = $("#alert-dialog");
  if (!dialog.open) dialog.showModal();
}

function duration(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes ? `${minutes}${t("minutes")}` : ""}${Math.round(seconds % 60)}${t("seconds")}`;
}

// 叫应: each step with whom it called or texted and how that went, who confirmed and how, and
// (for operators) a button per person reached to record that they were reached by phone.
function ladderSection(detail) {
  if (!detail.ladder.length && !detail.confirmations.length) return "";
  const sent = new Map(detail.notifications.map((n) => [n.id, n]));
  const rows = detail.ladder.flatMap((step) => {
    const reached = step.notifications.map((id) => sent.get(id)).filter(Boolean);
    const head = `<td>${esc(when(step.taken_at))}</td><td>${esc(step.reason)}</td>`;
    if (!reached.length) return [`<tr class="ladder-step">${head}<td colspan="4"></td></tr>`];
    return reached.map((n, i) => `<tr class="ladder-step">${i ? "<td></td><td></td>" : head}`
      + `<td>${esc(roleName(n.role))} ${esc(n.person)} ${esc(n.phone)}</td>`
      + `<td>${esc(t(`${n.channel}_channel`))}</td><td>${esc(n.status)}</td>`
      + `<td class="call-outcome">${esc(n.call_status || "")}</td></tr>`);
  }).join("");
  // An answer to a lower rank than the alert's now is no answer: the operator may record a new one.
  const confirmed = new Set(detail.confirmations.filter((c) => c.rank >= detail.alert.rank)
    .map((c) => `${c.role} ${c.phone}`));
  const answers = detail.confirmations.map((c) => `<tr class="confirmation">`
    + `<td>${esc(roleName(c.role))} ${esc(c.person)}</td><td>${esc(t(`answer_${c.answer}`))}</td>`
    + `<td>${esc(when(c.confirmed_at))}</td>`
    + `<td>${esc(c.recorded_by)}${c.note ? `(${esc(c.note)})` : ""}</td></tr>`).join("");
  const people = new Map();
  for (const step of detail.ladder) {
    for (const n of step.notifications.map((id) => sent.get(id)).filter(Boolean)) {
      if (!confirmed.has(`${n.role} ${n.phone}`)) people.set(`${n.role} ${n.phone}`, n);
    }
  }
  const operator = state.me && ["operator", "admin"].includes(state.me.role);
  // Operators see masked phones: the role alone names the person unless a role has several.
  const buttons = operator ? [...people.values()].map((n) => `<button type="button" class="confirm-for"`
    + ` data-alert-id="${detail.alert.id}" data-role="${esc(n.role)}"`
    + ` data-phone="${n.phone.startsWith("+") ? esc(n.phone) : ""}">`
    + `${esc(t("confirm_for"))}: ${esc(roleName(n.role))} ${esc(n.person)}</button>`).join(" ") : "";
  const woke = detail.wake_up_seconds;
  return `<h4>${esc(t("ladder"))}</h4>
    <p>${esc(t("wake_up"))}: <b id="wake-up">${esc(woke === null ? t("nobody_confirmed") : duration(woke))}</b></p>
    <table class="grid" id="ladder"><thead><tr><th>${esc(t("time"))}</th><th>${esc(t("step"))}</th>
      <th>${esc(t("persons"))}</th><th>${esc(t("channel"))}</th><th>${esc(t("status"))}</th>
      <th>${esc(t("call_outcome"))}</th></tr></thead><tbody>${rows}</tbody></table>
    <h4>${esc(t("confirmations"))}</h4>
    ${answers ? `<table class="grid" id="confirmations"><tbody>${answers}</tbody></table>`
      : `<p class="muted">${esc(t("nobody_confirmed"))}</p>`}
    <p class="confirm-buttons">${buttons}</p><p id="confirm-error" class="error"></p>`;
}

async function confirmFor(button) {
  const body = { role: button.dataset.role, note: "电话已联系" };
  if (button.dataset.phone) body.phone = button.dataset.phone;
  const { status, data } = await postJson(`/api/v1/alerts/${button.dataset.alertId}/confirmations`, body);
  if (status !== 200 && status !== 201) {
    $("#confirm-error").textContent = smsError(data);
    return;
  }
  await showAlert(button.dataset.alertId);
  await refreshCurrent();
}

async function acknowledge(id) {
  const alert = await api(`/api/v1/alerts/${id}/ack`, { method: "POST" });
  await showAlert(alert.id);
  await refreshCurrent();
}

// --- alert history ----------------------------------------------------------------------

function historyQuery() {
  const form = new FormData($("#filters"));
  const params = new URLSearchParams();
  for (const [key, value] of form.entries()) {
    if (!value) continue;
    params.set(key, key === "from" || key === "to" ? new Date(value).toISOString() : value);
  }
  return params;
}

async function searchHistory(append) {
  const params = historyQuery();
  params.set("limit", "50");
  if (append && state.historyCursor) params.set("cursor", state.historyCursor);
  const page = await api(`/api/v1/alerts?${params}`);
  state.historyCursor = page.next_cursor;
  const body = alertTable(page.items).replace(/^<table class="grid">|<\/table>$/g, "");
  $("#history").innerHTML = append ? $("#history").innerHTML + body : body;
  $("#more").hidden = !page.next_cursor;
}

async function downloadCsv(event) {
  event.preventDefault();
  const params = historyQuery();
  params.set("format", "csv");
  // One response holds at most api.max_csv_rows alerts: follow X-Hydro-Next-Cursor for the rest.
  const parts = ["\ufeff"];  // fetch's text() drops the BOM Excel needs
  for (;;) {
    const response = await fetch(`/api/v1/alerts?${params}`, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const text = await response.text();
    parts.push(parts.length > 1 ? text.slice(text.indexOf("\n") + 1) : text);  // one header row
    const next = response.headers.get("X-Hydro-Next-Cursor");
    if (!next) break;
    params.set("cursor", next);
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob(parts, { type: "text/csv;charset=utf-8" }));
  link.download = "alerts.csv";
  link.click();
}

// --- station page: the hydrograph ---------------------------------------------------------

const RANGES = {
  "24h": { hours: 24, every: "raw" },
  "7d": { hours: 24 * 7, every: "raw" },
  "30d": { hours: 24 * 30, every: "1h" },
  season: { hours: 24 * 183, every: "1h" },
};

async function showStation(code, range = "24h") {
  const s = await api(`/api/v1/stations/${encodeURIComponent(code)}`);
  $("#station-title").innerHTML = `${esc(s.name)} ${badge(s.status)}`;
  $("#station-info").textContent = `${s.code} · ${s.prefecture} ${s.county} · ${s.river}`;
  const { hours, every } = RANGES[range];
  const from = new Date(Date.now() - hours * 3600e3).toISOString();
  const series = await api(`/api/v1/stations/${encodeURIComponent(code)}/readings?every=${every}&from=${encodeURIComponent(from)}`);
  const times = series.time.map((iso) => Date.parse(iso) / 1000);
  const levels = Object.entries(s.levels).filter(([, v]) => v !== null);
  const data = [times, series.water_level, series.rainfall,
    ...levels.map(([, v]) => times.map(() => v))];
  const bars = uPlot.paths.bars({ size: [0.6, 8] });
  const colours = ["#d62020", "#f07c00", "#1f6fe5", "#e6b800", "#7a1fa2"];
  const options = {
    width: Math.min(document.body.clientWidth - 40, 1200), height: 420,
    series: [
      {},
      { label: `${t("water_level")} (m)`, stroke: "#0f3057", width: 2, scale: "m", spanGaps: false },
      { label: t("rain_mm"), fill: "rgba(31,111,229,.35)", stroke: "#1f6fe5", paths: bars, scale: "mm" },
      ...levels.map(([k], i) => ({
        label: LEVEL_NAMES[k][state.lang === "zh" ? 0 : 1], stroke: colours[i % colours.length],
        dash: [6, 4], width: 1.5, scale: "m", points: { show: false },
      })),
    ],
    axes: [{}, { scale: "m", label: "m" }, { scale: "mm", side: 1, label: "mm", grid: { show: false } }],
    scales: { mm: { range: (u, min, max) => [0, Math.max(10, max * 3)] } },
  };
  if (state.chart) state.chart.destroy();
  $("#chart").innerHTML = "";
  state.chart = new uPlot(options, data, $("#chart"));
  for (const button of document.querySelectorAll("[data-range]")) {
    button.onclick = () => showStation(code, button.dataset.range);
  }
  const form = $("#reading-form");
  form.hidden = !(state.me && ["operator", "admin"].includes(state.me.role));
  form.dataset.code = code;
}

// A reading a patrol person phoned in (the station's gateway is down), entered by an operator.
async function enterReading(event) {
  event.preventDefault();
  const form = event.target;
  const fields = new FormData(form);
  const body = { time: new Date(fields.get("time")).toISOString(), note: fields.get("note") };
  for (const name of ["water_level", "flow", "rainfall"]) {
    if (fields.get(name) !== "") body[name] = Number(fields.get(name));
  }
  const response = await fetch(`/api/v1/stations/${encodeURIComponent(form.dataset.code)}/readings`, {
    method: "POST",
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status === 401) throw new Unauthorized();
  const answer = await response.json();
  const result = $("#reading-result");
  result.className = response.ok ? "" : "error";
  result.textContent = response.ok ? `${t("stored")} ${when(answer.time)}`
    : (typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail));
  if (response.ok) {
    form.reset();
    await showStation(form.dataset.code);
  }
}

// --- the daily report (08:00 to 08:00) ----------------------------------------------------

async function showReport() {
  const day = new FormData($("#report-form")).get("date");
  const query = new URLSearchParams({ format: "html", ...(day ? { date: day } : {}) });
  const response = await fetch(`/api/v1/reports/daily?${query}`, { headers: { Authorization: `Bearer ${state.token}` } });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  $("#report-frame").srcdoc = await response.text();
  $("#report-note").textContent = response.headers.get("X-Hydro-Report-Stored") === "true" ? "" : t("not_stored");
  if (!day) $("#report-form input[name=date]").value = response.headers.get("X-Hydro-Report-Day");
}

// --- the duty desk: manual SMS -------------------------------------------------------------

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST", body: JSON.stringify(body),
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
  });
  if (response.status === 401) throw new Unauthorized();
  return { status: response.status, data: await response.json() };
}

function smsBody() {
  const form = new FormData($("#sms-form"));
  const kind = form.get("kind"), value = form.get("value").trim();
  const body = {};
  if (kind === "in_alert") { body.in_alert = true; if (form.get("severity")) body.severity = form.get("severity"); }
  else if (kind === "duty") body.duty = true;
  else body[kind] = value;
  for (const key of ["text", "from_rule", "rule_station", "from_alert", "reason"]) {
    const v = form.get(key).trim();
    if (v) body[key] = v;
  }
  return body;
}

function smsError(data) {
  const detail = data.detail;
  return typeof detail === "string" ? detail : detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
}

function smsNames() {
  const kind = $("#sms-form select[name=kind]").value;
  const names = ["prefecture", "county", "river"].includes(kind)
    ? [...new Set(state.stations.map((s) => s[kind]).filter(Boolean))].sort()
    : kind === "station" ? state.stations.map((s) => s.code) : [];
  $("#sms-names").innerHTML = names.map((n) => `<option value="${esc(n)}">`).join("");
}

async function previewSms() {
  state.smsPreview = null;
  $("#sms-error").textContent = ""; $("#sms-result").textContent = "";
  $("#sms-send").hidden = true; $("#sms-confirm-line").hidden = true; $("#sms-confirm").checked = false;
  const { status, data } = await postJson("/api/v1/sms/preview", smsBody());
  if (status !== 200) {
    $("#sms-error").textContent = smsError(data);
    $("#sms-summary").innerHTML = ""; $("#sms-messages").innerHTML = "";
    return;
  }
  state.smsPreview = data;
  $("#sms-summary").innerHTML = `<b id="sms-count">${data.recipients}</b> ${esc(t("sms_recipients"))} · `
    + `${data.segments} ${esc(t("sms_segments"))} · ${esc(t("sms_longest"))} ${data.max_characters} ${esc(t("sms_chars"))}`
    + ` / ${data.max_segments} ${esc(t("sms_segments"))}`;
  $("#sms-messages").innerHTML = `<thead><tr><th>role</th><th>${esc(t("persons"))}</th><th>phone</th>`
    + `<th>${esc(t("station"))}</th><th></th><th>${esc(t("sms_text"))}</th></tr></thead><tbody>`
    + data.messages.map((m) => `<tr><td>${esc(m.role)}</td><td>${esc(m.person)}</td><td>${esc(m.phone)}</td>`
      + `<td>${esc(m.stations.join(","))}</td><td>${m.characters} · ${m.segments}×${esc(m.encoding)}</td>`
      + `<td class="sms-body">${esc(m.text)}</td></tr>`).join("") + "</tbody>";
  $("#sms-confirm-line").hidden = !data.needs_confirmation;
  $("#sms-confirm-text").textContent = t("sms_confirm").replace("{n}", data.recipients);
  $("#sms-send").hidden = false;
}

async function sendSms() {
  const preview = state.smsPreview;
  if (!preview) return;
  if (preview.needs_confirmation && !$("#sms-confirm").checked) {
    $("#sms-error").textContent = t("sms_need_confirm");
    return;
  }
  const body = { ...smsBody(), ...(preview.needs_confirmation ? { confirm: preview.confirm } : {}) };
  const { status, data } = await postJson("/api/v1/sms/send", body);
  if (status !== 201) {
    $("#sms-error").textContent = smsError(data);
    return;
  }
  $("#sms-error").textContent = "";
  $("#sms-send").hidden = true; $("#sms-confirm-line").hidden = true;
  state.smsPreview = null;
  $("#sms-result").textContent = t("sms_queued").replace("{n}", data.recipients).replace("{id}", data.send_id);
}

// --- routing ------------------------------------------------------------------------------

async function refreshCurrent() {
  const [view, arg] = (location.hash.slice(1) || "map").split("/");
  for (const id of ["map", "alerts", "station", "report", "sms"]) $(`#view-${id}`).hidden = !state.me || id !== view;
  $("#nav-sms").hidden = !state.me || state.me.role === "viewer";
  if (!state.me) return;
  if (view === "map") await refreshMap();
  if (view === "alerts" && !$("#history").innerHTML) await searchHistory(false);
  if (view === "station" && arg) await showStation(decodeURIComponent(arg));
  if (view === "report") await showReport();
  if (view === "sms") smsNames();
}

async function guarded(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof Unauthorized) {
      state.me = null;
      $("#login").hidden = false;
      $("#login-error").textContent = t("bad_token");
      await refreshCurrent();
    } else {
      console.error(error);
    }
  }
}

function prefectureOptions() {
  const names = [...new Set(state.stations.map((s) => s.prefecture))].sort();
  $("#filters select[name=prefecture]").innerHTML =
    `<option value=""></option>${names.map((n) => `<option>${esc(n)}</option>`).join("")}`;
}

async function start() {
  applyLanguage();
  takeTokenFromAddress();
  if (state.token) await guarded(signIn);
  else $("#login").hidden = false;
  await guarded(refreshCurrent);
  if (state.me && !state.stations.length) {
    await guarded(async () => { state.stations = await api("/api/v1/stations"); });
  }
  prefectureOptions();
  smsNames();
  setInterval(() => { if (location.hash.slice(1).split("/")[0] === "map" || !location.hash) guarded(refreshMap); }, REFRESH_MS);
}

window.addEventListener("hashchange", () => guarded(refreshCurrent));
$("#lang").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("hydro.lang", state.lang);
  applyLanguage();
  guarded(refreshCurrent);
});
$("#logout").addEventListener("click", () => {
  localStorage.removeItem("hydro.token");
  state.token = null; state.me = null;
  $("#login").hidden = false;
  refreshCurrent();
});
$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  localStorage.setItem("hydro.token", state.token);
  $("#login-error").textContent = "";
  if (await signIn()) {
    await guarded(refreshCurrent);
    await guarded(async () => { state.stations = await api("/api/v1/stations"); prefectureOptions(); });
  } else {
    $("#login-error").textContent = t("bad_token");
  }
});
$("#map").addEventListener("click", (event) => {
  const code = event.target.dataset?.code;
  if (code) guarded(() => showPanel(code));
});
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-alert]");
  if (row) guarded(() => showAlert(row.dataset.alert));
  if (event.target.id === "ack") guarded(() => acknowledge(event.target.dataset.alertId));
  if (event.target.classList.contains("confirm-for")) guarded(() => confirmFor(event.target));
});
$("#filters").addEventListener("submit", (event) => { event.preventDefault(); guarded(() => searchHistory(false)); });
$("#reading-form").addEventListener("submit", (event) => guarded(() => enterReading(event)));
$("#report-form").addEventListener("submit", (event) => { event.preventDefault(); guarded(showReport); });
$("#more").addEventListener("click", () => guarded(() => searchHistory(true)));
$("#sms-form").addEventListener("submit", (event) => { event.preventDefault(); guarded(previewSms); });
$("#sms-form select[name=kind]").addEventListener("change", smsNames);
$("#sms-send").addEventListener("click", () => guarded(sendSms));
$("#csv").addEventListener("click", (event) => guarded(() => downloadCsv(event)));
start();
