"""The operator's pages: server-rendered HTML, one small script that listens for board updates.

Every text that came from the network (station names, operators, messages) goes through
`html.escape` here and through `textContent` in the script, never `innerHTML`: a station can
name itself `<script>`. Every status is a word, and its colour only repeats the word.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

__all__ = ["board_page", "login_page", "station_page"]

COLOURS = {  # background, text; each status also reads as its word
    "Faulted": ("#b42318", "#fff"), "Offline": ("#475467", "#fff"), "Unavailable": ("#b54708", "#fff"),
    "Charging": ("#175cd3", "#fff"), "Available": ("#067647", "#fff"), "Reserved": ("#6941c6", "#fff"),
    "Unknown": ("#d0d5dd", "#101828"), "Preparing": ("#175cd3", "#fff"), "SuspendedEV": ("#175cd3", "#fff"),
    "SuspendedEVSE": ("#175cd3", "#fff"), "Finishing": ("#175cd3", "#fff"),
}  # fmt: skip

CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#101828;background:#f2f4f7}header{display:flex;align-items:center;gap:16px;padding:10px 20px;
background:#101828;color:#fff}header h1{font-size:18px;margin:0}header a{color:#d0d5dd}header .sp{flex:1}
#live{font-size:13px;color:#d0d5dd}main{padding:16px 20px;max-width:1400px;margin:0 auto}
.counters{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:16px}
.counter{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px #1018281a}
.counter b{display:block;font-size:26px}.counter span{color:#475467;font-size:13px}
h2{font-size:16px;margin:18px 0 8px}.board{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px}
.station{background:#fff;border-radius:8px;padding:8px 10px;border-left:8px solid #d0d5dd;box-shadow:0 1px 2px #1018281a}
.station a{color:#101828;text-decoration:none;font-weight:600}.station .where{color:#475467;font-size:12px}
.status{display:inline-block;font-weight:700;font-size:13px;padding:1px 8px;border-radius:10px;margin:4px 0}
.chips{display:flex;flex-wrap:wrap;gap:4px}.chip{font-size:11px;padding:0 6px;border-radius:8px;border:1px solid #d0d5dd}
.cols{display:grid;grid-template-columns:2fr 1fr;gap:16px}@media(max-width:900px){.cols{grid-template-columns:1fr}}
ul.alerts{list-style:none;padding:0;margin:0}ul.alerts li{background:#fff;border-radius:6px;padding:6px 10px;
margin-bottom:6px;border-left:6px solid #b54708}ul.alerts li.critical{border-color:#b42318}ul.alerts li.none{border-color:#d0d5dd}
table{border-collapse:collapse;background:#fff;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #eaecf0;
text-align:left;font-size:13px}form.login{max-width:380px;margin:80px auto;background:#fff;padding:24px;border-radius:8px}
form.login input{width:100%;padding:8px;font:inherit;margin:8px 0}form.login button{padding:8px 16px;font:inherit}
.error{color:#b42318}.muted{color:#475467;font-size:13px}ul.components{list-style:none;padding:0;margin:0}
ul.components li{background:#fff;border-radius:6px;padding:3px 8px;margin-bottom:4px}ul.components .status{margin:0 4px 0 0}
""" + "".join(
    f'[data-status="{s}"]{{border-left-color:{bg}}}[data-status="{s}"] .status,.status[data-s="{s}"],'
    f'.chip[data-s="{s}"]{{background:{bg};color:{fg};border-color:{bg}}}'
    for s, (bg, fg) in COLOURS.items()
)

SCRIPT = """
(function(){
  const $ = (s, r) => (r || document).querySelector(s);
  const fmt = (n, d) => Number(n).toLocaleString(undefined, {minimumFractionDigits: d, maximumFractionDigits: d});
  function el(tag, cls, text){ const e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; return e; }
  function chips(box, connectors){ box.replaceChildren(...connectors.map(c => { const x = el('span', 'chip',
    c.connector_id + ' ' + c.status); x.dataset.s = c.status; return x; })); }
  function card(s){
    const c = el('div', 'station'); c.dataset.stationId = s.id;
    const a = el('a', 'name', s.name); a.href = '/stations/' + encodeURIComponent(s.id); c.append(a);
    c.append(el('div', 'where', [s.id, s.operator, s.city].filter(Boolean).join(' · ')));
    c.append(el('div', 'status')); c.append(el('div', 'chips')); return c; }
  function render(b){
    const k = b.counters;
    $('#c-running').textContent = k.sessions_running; $('#c-done').textContent = k.sessions_done;
    $('#c-kwh').textContent = fmt(k.energy_kwh, 1); $('#c-eur').textContent = fmt(k.revenue_eur, 2);
    const board = $('#board');
    for (const s of b.stations){
      let c = board.querySelector('[data-station-id="' + CSS.escape(s.id) + '"]');
      if (!c){ c = card(s); board.append(c); }
      c.dataset.status = s.status; const st = $('.status', c); st.textContent = s.status; st.dataset.s = s.status;
      chips($('.chips', c), s.connectors);
    }
    $('#c-faulted').textContent = b.stations_by_status.Faulted || 0;
    const ul = $('#alerts'); ul.replaceChildren(...b.open_alerts.map(a => { const li = el('li', a.severity);
      li.append(el('b', '', a.severity.toUpperCase() + ' ' + a.kind + ' · ' + a.station_id));
      li.append(el('div', '', a.message)); return li; }));
    if (!b.open_alerts.length) ul.append(el('li', 'none', 'No open alerts.'));
    const p = b.pipeline;
    $('#p-write').textContent = p.last_write_at ? new Date(p.last_write_at).toLocaleTimeString() +
      ' (' + Math.round(p.idle_s) + ' s ago)' : 'never';
    $('#p-unsettled').textContent = p.sinks.map(s => s.sink + ' ' + s.batches_unsettled).join(', ') || 'none';
    $('#live').textContent = 'Live · updated ' + new Date(b.generated_at).toLocaleTimeString();
  }
  const HEALTH = {up: 'Available', down: 'Faulted', unknown: 'Unknown'};
  async function components(){
    let p; try { const r = await fetch('/api/v1/pipeline', {credentials: 'same-origin'}); if (!r.ok) return;
      p = await r.json(); } catch (e) { return; }
    $('#components').replaceChildren(...p.components.map(c => { const li = el('li');
      li.dataset.component = c.name; li.dataset.health = c.status; const s = el('span', 'status', c.status);
      s.dataset.s = HEALTH[c.status] || 'Unknown'; li.append(s, el('b', '', ' ' + c.name + ' '), el('span', 'muted', c.detail));
      return li; }));
    $('#p-inflight').textContent = p.batches_in_flight === null ? 'unknown (no bridge)' : p.batches_in_flight;
    const lag = (p.consumer_lag || []).reduce((n, x) => n + x.lag, 0);
    $('#p-lag').textContent = p.consumer_lag ? lag + ' records' : 'unknown (Kafka does not answer)';
    $('#p-dead').textContent = p.deadletters ? Object.entries(p.deadletters.by_reason).map(([r, n]) => r + ' ' + n)
      .join(', ') || 'none' : 'unknown';
  }
  components(); setInterval(components, 5000);
  const source = new EventSource('/api/v1/board/stream');
  source.onmessage = e => render(JSON.parse(e.data));
  source.onerror = () => { $('#live').textContent = 'Reconnecting…'; };
  source.addEventListener('signed-out', () => { source.close(); window.location.assign('/login'); });
})();
"""


def _layout(title: str, body: str, *, signed_in: bool = True, script: str = "") -> str:
    nav = '<a href="/">Board</a><a href="/docs">API</a><span class="sp"></span><span id="live"></span>' \
          '<form method="post" action="/logout"><button>Sign out</button></form>' if signed_in else ""  # fmt: skip
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style></head>'
            f'<body><header><h1>evmonitor</h1>{nav}</header><main>{body}</main>'
            + (f"<script>{script}</script>" if script else "") + "</body></html>")  # fmt: skip


def _status(word: str | None) -> str:
    word = word or "Unknown"
    return f'<span class="status" data-s="{escape(word)}">{escape(word)}</span>'


def _chips(connectors: list[dict[str, Any]]) -> str:
    return "".join(f'<span class="chip" data-s="{escape(c["status"])}">{c["connector_id"]} {escape(c["status"])}</span>'
                   for c in connectors)  # fmt: skip


def _when(ts: datetime | None) -> str:
    return "" if ts is None else escape(ts.strftime("%Y-%m-%d %H:%M:%SZ"))


def login_page(problem: str = "") -> str:
    error = f'<p class="error">{escape(problem)}</p>' if problem else ""
    body = ('<form class="login" method="post" action="/login"><h2>Sign in</h2>'
            '<p class="muted">Paste an API token (<code>evmonitor tokens create --name you --scope read</code>).</p>'
            f'{error}<label>Token<input name="token" type="password" autocomplete="off" required autofocus></label>'
            '<button type="submit">Sign in</button></form>')  # fmt: skip
    return _layout("Sign in · evmonitor", body, signed_in=False)


def board_page(board: dict[str, Any], network: str) -> str:
    k = board["counters"]
    counters = "".join(f'<div class="counter"><b id="{i}">{v}</b><span>{escape(label)}</span></div>' for i, v, label in (
        ("c-running", k["sessions_running"], "sessions running"), ("c-done", k["sessions_done"], "sessions done today"),
        ("c-kwh", f'{k["energy_kwh"]:,.1f}', "kWh today"), ("c-eur", f'{k["revenue_eur"]:,.2f}', "EUR today"),
        ("c-faulted", board["stations_by_status"].get("Faulted", 0), "stations faulted")))  # fmt: skip
    cards = "".join(
        f'<div class="station" data-station-id="{escape(s["id"])}" data-status="{escape(s["status"])}">'
        f'<a class="name" href="/stations/{escape(s["id"])}">{escape(s["name"])}</a>'
        f'<div class="where">{escape(" · ".join(x for x in (s["id"], s["operator"], s["city"]) if x))}</div>'
        f'{_status(s["status"])}<div class="chips">{_chips(s["connectors"])}</div></div>'
        for s in board["stations"]
    )
    alerts = "".join(
        f'<li class="{escape(a["severity"])}"><b>{escape(a["severity"].upper())} {escape(a["kind"])} · '
        f'{escape(a["station_id"])}</b><div>{escape(a["message"])}</div></li>' for a in board["open_alerts"]
    ) or '<li class="none">No open alerts.</li>'
    p = board["pipeline"]
    unsettled = ", ".join(f'{escape(s["sink"])} {s["batches_unsettled"]}' for s in p["sinks"]) or "none"
    sinks = (f'<li>last write to PostgreSQL: <span id="p-write">{_when(p["last_write_at"]) or "never"}</span></li>'
             f'<li>batches not yet committed: <span id="p-unsettled">{unsettled}</span></li>'
             '<li>batches in flight: <span id="p-inflight">…</span></li><li>consumer lag: <span id="p-lag">…</span></li>'
             '<li>dead letters: <span id="p-dead">…</span></li>')
    body = (f'<div class="counters">{counters}</div><div class="cols"><section><h2>Stations '
            f'<span class="muted">({len(board["stations"])})</span></h2><div class="board" id="board">{cards}</div>'
            f'</section><aside><h2>Open alerts</h2><ul class="alerts" id="alerts">{alerts}</ul>'
            f'<h2>Pipeline</h2><ul id="pipeline">{sinks}</ul>'
            '<h2>Components</h2><ul class="components" id="components"><li class="muted">checking …</li></ul>'
            '</aside></div>')  # fmt: skip
    return _layout(f"{network} · evmonitor", body, script=SCRIPT)


def meter_chart(points: list[dict[str, Any]], width: int = 640, height: int = 220) -> str:
    """An inline SVG line of energy delivered (kWh) over the session's time; empty without two points."""
    pts = [p for p in points if p["meter_wh"] is not None]
    if len(pts) < 2:
        return '<p class="muted">No meter readings in the event log yet.</p>'
    t0, t1 = pts[0]["timestamp"].timestamp(), pts[-1]["timestamp"].timestamp()
    base = pts[0]["meter_wh"]
    top = max(max(p["meter_wh"] - base for p in pts), 1)
    pad = 40
    xy = [(pad + (p["timestamp"].timestamp() - t0) / max(t1 - t0, 1) * (width - 2 * pad),
           height - pad - (p["meter_wh"] - base) / top * (height - 2 * pad)) for p in pts]  # fmt: skip
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return (f'<svg role="img" aria-label="energy delivered over time" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="background:#fff;border-radius:8px">'
            f'<polyline fill="none" stroke="#175cd3" stroke-width="2" points="{line}"/>'
            f'<text x="{pad}" y="20" font-size="12">{top / 1000:.2f} kWh</text>'
            f'<text x="{pad}" y="{height - 10}" font-size="12">{_when(pts[0]["timestamp"])}</text>'
            f'<text x="{width - pad}" y="{height - 10}" font-size="12" text-anchor="end">{_when(pts[-1]["timestamp"])}</text>'
            "</svg>")  # fmt: skip


def station_page(station: dict[str, Any], sessions: list[dict[str, Any]], curve: list[dict[str, Any]],
                 curve_session: str | None) -> str:  # fmt: skip
    rows = "".join(f'<tr><td>{c["connector_id"]}</td><td>{_status(c["status"])}</td><td>{escape(c["error_code"])}</td>'
                   f'<td>{escape(c["info"] or "")}</td><td>{_when(c["status_at"])}</td></tr>' for c in station["connectors"])
    srows = "".join(
        f'<tr><td>{escape(s["id"][:8])}</td><td>{s["connector_id"]}</td><td>{escape(s["status"])}</td>'
        f'<td>{_when(s["start_time"])}</td><td>{_when(s["end_time"])}</td><td>{s["energy_delivered_kwh"] or 0:.3f}</td>'
        f'<td>{s["cost_eur"] or 0:.2f}</td></tr>' for s in sessions
    )  # fmt: skip
    alerts = "".join(f'<li class="{escape(a["severity"])}"><b>{escape(a["kind"])}</b> {escape(a["message"])}</li>'
                     for a in station["open_alerts"]) or '<li class="none">No open alerts.</li>'  # fmt: skip
    t = station["today"]
    body = (f'<h2>{escape(station["name"])} <span class="muted">{escape(station["id"])}</span></h2>'
            f'<div data-station-id="{escape(station["id"])}" data-status="{escape(station["status"])}">'
            f'{_status(station["status"])} <span class="muted">{escape(station["operator"] or "")} · '
            f'{escape(station["city"] or "")} · last seen {_when(station["last_seen_at"])}</span></div>'
            f'<p>Today: {t["sessions"]} sessions, {t["energy_kwh"]:.1f} kWh, {t["revenue_eur"]:.2f} EUR</p>'
            f'<h2>Connectors</h2><table><tr><th>#</th><th>status</th><th>error</th><th>info</th><th>since</th></tr>{rows}</table>'
            f'<h2>Open alerts</h2><ul class="alerts">{alerts}</ul>'
            f'<h2>Meter, session {escape((curve_session or "")[:8])}</h2>{meter_chart(curve)}'
            f'<h2>Sessions</h2><table><tr><th>session</th><th>connector</th><th>status</th><th>start</th><th>end</th>'
            f'<th>kWh</th><th>EUR</th></tr>{srows}</table>')  # fmt: skip
    return _layout(f"{station['name']} · evmonitor", body)
