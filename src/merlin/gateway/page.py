"""The read-only page at ``/``: runs, leases, clusters and targets in progress.

Plain HTML and CSS rendered on the server (so it reads without JavaScript);
a few lines of JS re-fetch ``/page/tables`` every few seconds and swap the
tables in. No build step, nothing loaded from elsewhere.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

REFRESH_MS = 3000

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eee;font-weight:600}td.msg{color:#444}td.why{color:#8a5a00}
td.id,td.t{white-space:nowrap}td.msg div,td.why div{max-width:14rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.s-succeeded,.s-completed,.s-active{color:#176c2b}.s-failed,.s-lost,.s-blocked{color:#b3261e}
.s-pending,.s-running,.s-awaiting_operator,.s-awaiting_response{color:#8a5a00}
.h-bad,.h-retired{color:#b3261e}.h-maintenance,.h-unknown{color:#8a5a00}.muted{color:#777}code{font-size:.9em}
"""

SCRIPT = f"""
async function refresh() {{
  try {{
    const r = await fetch('/page/tables', {{credentials: 'same-origin', cache: 'no-store'}});
    if (r.ok) {{ document.getElementById('tables').innerHTML = await r.text();
      document.getElementById('updated').textContent = new Date().toLocaleTimeString(); }}
  }} catch (e) {{}}
}}
setInterval(refresh, {REFRESH_MS});
"""

LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>merlin: log in</title>
<style>{style}</style></head><body id="login"><h1>merlin</h1>
<p>This page needs the server's token. Open the one-time link that <code>merlin serve</code> printed,
or paste the token from <code>{token_file}</code>:</p>
<form method="post" action="/login"><input type="password" name="token" size="50" autocomplete="off" aria-label="token">
<button type="submit">Log in</button></form>{note}</body></html>"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def age(stamp: str | None) -> str:
    """How long ago an ISO time was, bare (``4m``: the columns say "held for", "waiting for"); ``-`` for none or one that does not parse."""
    from merlin.controlplane import ago, since

    return ago(since(str(stamp)) if stamp else None, suffix="")


def _table(table_id: str, headers: list[str], rows: list[list[str]], empty: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any, cls: str = "") -> str:
    """A cell; ``id``: an identifier on one line, never broken; ``msg``/``why``: text cut to one line
    with an ellipsis (the whole text in its tooltip), so the page fits 1280 px."""
    if cls in ("msg", "why"):
        return f'<td class="{cls}"><div title="{esc(value)}">{esc(value)}</div></td>'
    return f'<td class="{cls}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>"


def tables(call: Callable[[str, dict[str, Any]], dict[str, Any]]) -> str:
    """The tables, each from a read-only operation (so the page shows what the API shows)."""
    parts = []
    runs = call("runs_list", {"limit": 100})["runs"]
    try:
        lease_data: dict[str, Any] | None = call("leases_list", {})
    except Exception:  # no lease book here: the page shows the rest
        lease_data = None
    queued = {q["owner"].get("run_id") for q in (lease_data or {}).get("queue", [])}  # runs whose lease waits
    rows = []
    asked = 0
    for r in runs:
        status = r.get("status", "")
        why = "-"
        if (status in HELD or r.get("run_id") in queued) and asked < WHY_ROWS:
            asked += 1
            why = _first_reason(call, r["run_id"])
        rows.append([
            _cell(r.get("run_id"), "id"), _cell(status, f"s-{status} t"), _cell(r.get("outcome") or "-", f"s-{r.get('outcome')} t"),
            _cell(age(r.get("created_at")), "t"), _cell(r.get("target")), _cell(r.get("engine")), _cell(why, "why"), _cell(r.get("message", ""), "msg"),
        ])
    parts.append(f"<h2>Runs ({len(runs)})</h2>" + _table("runs", ["run", "status", "outcome", "age", "target", "engine", "why waiting", "message"], rows, "no runs recorded"))
    if lease_data is not None:
        parts.append(_leases(lease_data))
    try:
        clusters = call("clusters_list", {})["clusters"]
    except Exception:  # an unreadable cluster record must not take the page down
        clusters = []
    rows = []
    for c in clusters:
        rec = c.get("record") or {}
        nodes = rec.get("nodes") or []
        idle = rec.get("idle_timeout")
        rows.append([_cell(c.get("name")), _cell(rec.get("kind") or "local"), _cell(c.get("state"), f"s-{c.get('state')}"),
                     _cell(", ".join(nodes) if nodes else ("1 (this machine)" if rec.get("kind", "local") == "local" and rec else "-")),
                     _cell(f"{idle:g} s" if idle else "-"), _cell(c.get("message"), "msg")])
    parts.append("<h2>Clusters</h2>" + _table("clusters", ["cluster", "kind", "state", "nodes", "idle timeout", "message"], rows, "no clusters"))
    try:
        sweeps = call("sweeps_list", {})["sweeps"]
    except Exception:  # an unreadable sweep record must not take the page down
        sweeps = []
    rows = []
    for v in sweeps:
        c = v["counts"]
        done = c["succeeded"] + c["failed"] + c["lost"] + c["cancelled"]
        eta = "-" if v.get("eta_s") is None else f"{v['eta_s']:.0f} s"
        rows.append([_cell(v["name"], "id"), _cell(v["state"], f"s-{v['state']} t"), _cell(f"{done}/{v['total']}"), _cell(c["succeeded"]),
                     _cell(c["failed"] + c["lost"]), _cell(f"{v['slots_in_use']}/{v['parallel']}"), _cell(eta, "t")])
    parts.append("<h2>Sweeps</h2>" + _table("sweeps", ["sweep", "state", "ended", "succeeded", "failed", "running", "ETA"], rows, "no sweeps"))
    review = call("review_questions", {})
    open_q: dict[str, list[str]] = {}
    for q in review["questions"]:
        open_q.setdefault(q["target_dir"], []).append(f"{q['id']} (recommended {q['recommended_option']})")
    for a in review["awaiting_response"]:
        open_q.setdefault(a["target_dir"], []).append(f"response for {a['task_id']}")
    rows = [[_cell(t["target"]), _cell(t["outcome"], f"s-{t['outcome']}"), _cell(t["current_task"] or "-"), _cell(t["current_stage"] or "-"),
             _cell("; ".join(open_q.get(t["target_dir"], [])) or "-", "msg")] for t in review["targets"] if t["outcome"] != "completed"]
    parts.append("<h2>Targets in progress</h2>" + _table("targets", ["target", "outcome", "current task", "gate / stage", "waiting for"], rows, "no target in progress"))
    return "\n".join(parts)


#: Statuses whose rows show the first reason of ``runs_why`` (as do runs a waiting lease names); at most WHY_ROWS per refresh.
HELD = ("waiting", "pending", "blocked")
WHY_ROWS = 20


def _first_reason(call: Callable[[str, dict[str, Any]], dict[str, Any]], run_id: str) -> str:
    """``[code] message`` of the first condition holding the run back ("-" if none, or if it cannot be told)."""
    try:
        conds = call("runs_why", {"run_id": run_id})["conditions"]
    except Exception:  # a run that vanished or an unreadable lease book must not take the page down
        return "-"
    return f"[{conds[0]['code']}] {conds[0]['message']}" if conds else "-"


def _leases(data: dict[str, Any]) -> str:
    """Lease holders with item health, then the queue (when an inventory is defined)."""
    rows = []
    for it in data.get("items", []):
        h = it.get("holder") or {}
        health = it.get("health", "-") + (" (drained)" if it.get("drained") else "")
        rows.append([_cell(it.get("id"), "id"), _cell(it.get("pool")), _cell(health, f"h-{it.get('health')}"),
                     _cell(f"{h['user']}@{h['host']} {h['lease_id']}" if h else "-"), _cell(age(h.get("since")) if h else "-"),
                     _cell(h.get("until") or "-"), _cell(len(it.get("waiting") or []))])
    out = "<h2>Leases</h2>" + _table("leases", ["item", "pool", "health", "holder", "held for", "until", "waiting"], rows, "no inventory defined")
    queue = data.get("queue", [])
    qrows = [[_cell(n), _cell(q["lease_id"], "id"), _cell(", ".join(f"{b['pool']}:{b['count']}" for b in q.get("bundles", []))), _cell(q.get("priority")),
              _cell(f"{q['owner']['user']}@{q['owner']['host']}"), _cell(age(q.get("created_at")))] for n, q in enumerate(queue, 1)]
    return out + "<h2>Lease queue</h2>" + _table("lease-queue", ["#", "lease", "wants", "priority", "owner", "waiting for"], qrows, "no request is waiting")


def full_page(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>merlin</title>'
        f"<style>{STYLE}</style></head><body><h1>merlin</h1>"
        f'<p class="muted">read-only; refreshes every {REFRESH_MS // 1000} s (last: <span id="updated">now</span>)</p>'
        f'<div id="tables">{body}</div><script>{SCRIPT}</script></body></html>'
    )


def login_page(token_file: str, note: str = "") -> str:
    return LOGIN.format(style=STYLE, token_file=esc(token_file), note=f'<p class="muted">{esc(note)}</p>' if note else "")
