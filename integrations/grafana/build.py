#!/usr/bin/env python3
"""Writes the Grafana dashboards of integrations/grafana/dashboards/ (JSON, stable
uids). One source for both stores: the SQL of each panel is written once per engine
where the dialects differ (PostgreSQL: Grafana's $__timeFilter / $__timeGroupAlias
macros; SQLite: the frser-sqlite-datasource plugin, whose only macro is
$__unixEpochGroupSeconds, so the time range is Grafana's global $__from / $__to in
milliseconds against the integer `ts` column).

    python3 integrations/grafana/build.py          # rewrite the JSON files
    python3 integrations/grafana/build.py --check  # fail when they are out of date

Columns a panel shows are named in its field config (overrides by name); the test
(tests/grafana.rs) runs every query against real stores and checks those columns.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dashboards"

DS = {
    "postgres": {"type": "grafana-postgresql-datasource", "uid": "edgebench-pg"},
    "sqlite": {"type": "frser-sqlite-datasource", "uid": "edgebench-sqlite"},
}
MQTT = {"type": "grafana-mqtt-datasource", "uid": "edgebench-mqtt"}


def time_filter(engine, col_time="time", col_ts="ts"):
    if engine == "postgres":
        return f"$__timeFilter({col_time})"
    return f"{col_ts} BETWEEN $__from AND $__to"


def time_group(engine, col_time="time", col_ts="ts"):
    """A `time` column bucketed by the panel interval (SQLite: 60 s buckets)."""
    if engine == "postgres":
        return f"$__timeGroupAlias({col_time}, $__interval)"
    return f"$__unixEpochGroupSeconds({col_ts} / 1000, 60) AS time"


def extra(engine, key, cast="double precision"):
    if engine == "postgres":
        return f"(extra->>'{key}')::{cast}"
    return f"json_extract(extra, '$.{key}')"


def truthy(engine, col):
    return col if engine == "postgres" else f"{col} = 1"


FILTERS = "device_id IN ($device) AND model IN ($model) AND precision IN ($precision)"


def target(engine, sql, fmt="table", time_columns=("time",), ref="A"):
    if engine == "postgres":
        return {"refId": ref, "datasource": DS[engine], "editorMode": "code", "format": fmt,
                "rawQuery": True, "rawSql": sql}
    return {"refId": ref, "datasource": DS[engine], "queryText": sql, "rawQueryText": sql,
            "queryType": "time series" if fmt == "time_series" else "table",
            "timeColumns": list(time_columns)}


def names(cols, units=None):
    """Field overrides naming the columns the panel shows (display name, unit)."""
    units = units or {}
    out = []
    for col, title in cols:
        props = [{"id": "displayName", "value": title}]
        if col in units:
            props.append({"id": "unit", "value": units[col]})
        out.append({"matcher": {"id": "byName", "options": col}, "properties": props})
    return out


def panel(pid, kind, title, grid, targets, cols=(), units=None, options=None, custom=None,
          defaults=None, ds=None, description=""):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": dict(zip(("x", "y", "w", "h"), grid)),
        "datasource": ds or targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": dict(defaults or {}), "overrides": names(cols, units)},
        "options": options or {},
    }
    if custom is not None:
        p["fieldConfig"]["defaults"]["custom"] = custom
    return p


def variables(engine, extra_vars=()):
    ds = DS[engine]

    def q(name, label, sql, multi=True):
        return {
            "type": "query", "name": name, "label": label, "datasource": ds,
            "query": sql if engine == "postgres" else {"queryText": sql, "rawQueryText": sql},
            "refresh": 1, "sort": 1, "multi": multi, "includeAll": multi,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
            "hide": 0, "options": [], "skipUrlSync": False,
        }
    vs = [
        q("device", "board", "SELECT DISTINCT device_id FROM devices ORDER BY 1"),
        q("model", "model", "SELECT DISTINCT model FROM results WHERE model IS NOT NULL ORDER BY 1"),
        q("precision", "precision",
          "SELECT DISTINCT precision FROM results WHERE precision IS NOT NULL ORDER BY 1"),
    ]
    for name, label, sql in extra_vars:
        vs.append(q(name, label, sql, multi=False))
    return {"list": vs}


def dashboard(uid, title, panels, templating, description, annotations=None, refresh=""):
    ann = [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
        "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
        "type": "dashboard",
    }] + (annotations or [])
    return {
        "uid": uid, "title": title, "description": description, "tags": ["edgebench"],
        "editable": True, "graphTooltip": 1, "timezone": "browser", "schemaVersion": 39,
        "version": 1, "refresh": refresh, "time": {"from": "now-7d", "to": "now"},
        "templating": templating, "annotations": {"list": ann}, "panels": panels, "links": [],
    }


def sfx(engine):
    return "" if engine == "postgres" else "-sqlite"


def tname(engine):
    return "" if engine == "postgres" else " (SQLite)"


# --- 1. Fleet ---------------------------------------------------------------
def fleet(e):
    boards = f"""SELECT d.device_id, d.board, d.status, d.time AS last_seen,
  s.sweep_id AS last_sweep, s.state AS sweep_state, s.done, s.total
FROM devices d
LEFT JOIN sweeps s ON s.device_id = d.device_id
  AND s.time = (SELECT max(s2.time) FROM sweeps s2 WHERE s2.device_id = d.device_id)
WHERE d.device_id IN ($device)
ORDER BY d.device_id"""
    online = f"""SELECT sum(CASE WHEN {truthy(e, 'online')} THEN 1 ELSE 0 END) AS online,
  count(*) AS boards
FROM devices WHERE device_id IN ($device)"""
    bad = f"""SELECT time, device_id, model, precision, ep, batch, status, error, throttled, throttle_reasons
FROM results
WHERE {time_filter(e)} AND {FILTERS}
  AND (status <> 'ok' OR {truthy(e, 'throttled')})
ORDER BY time DESC LIMIT 200"""
    backlog = f"""SELECT {time_group(e)}, device_id AS metric,
  max({extra(e, 'unsent_bytes', 'bigint')}) AS unsent_bytes
FROM telemetry
WHERE {time_filter(e)} AND device_id IN ($device)
GROUP BY 1, 2 ORDER BY 1"""
    ps = [
        panel(1, "stat", "Boards online", (0, 0, 6, 5), [target(e, online)],
              cols=[("online", "online"), ("boards", "boards")],
              options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}),
        panel(2, "table", "Boards: status, last seen, last sweep", (6, 0, 18, 8), [target(e, boards, time_columns=("last_seen",))],
              cols=[("device_id", "board"), ("board", "hardware"), ("status", "status"),
                    ("last_seen", "last seen"), ("last_sweep", "last sweep"),
                    ("sweep_state", "state"), ("done", "done"), ("total", "total")],
              units={"last_seen": "dateTimeAsIso"}),
        panel(3, "table", "Failed and throttled runs", (0, 8, 24, 8), [target(e, bad)],
              cols=[("time", "time"), ("device_id", "board"), ("model", "model"),
                    ("precision", "precision"), ("batch", "batch"), ("status", "status"),
                    ("error", "error"), ("throttled", "throttled"),
                    ("throttle_reasons", "throttle reasons")]),
        panel(4, "timeseries", "Store backlog per board (unsent_bytes)", (0, 16, 24, 8),
              [target(e, backlog, fmt="time_series")], cols=[("unsent_bytes", "unsent")],
              units={"unsent_bytes": "bytes"}, defaults={"unit": "bytes"}),
    ]
    return dashboard("edgebench-fleet" + sfx(e), "edgebench: fleet" + tname(e), ps, variables(e),
                     "Boards online/offline, last seen, last sweep and its state, failed and "
                     "throttled runs, store backlog.", refresh="30s")


# --- 2. Latency across boards ------------------------------------------------
LATEST = """SELECT * FROM (
    SELECT r.*, row_number() OVER (
      PARTITION BY model, device_id, precision, ep ORDER BY time DESC) AS rn
    FROM results r
    WHERE status = 'ok' AND batch = $batch AND {tf}
  ) x WHERE rn = 1"""


def latency(e):
    latest = LATEST.format(tf=time_filter(e))
    table = f"""SELECT model, device_id, precision, ep, latency_ms_p50, latency_ms_p99, throughput_ips, time
FROM ({latest}) l
WHERE {FILTERS}
ORDER BY model, latency_ms_p50"""
    gain = f"""WITH latest AS ({latest}),
base AS (
  SELECT model, precision, min(latency_ms_p50) AS baseline_p50
  FROM latest WHERE device_id = '$baseline' GROUP BY model, precision)
SELECT l.model, l.device_id, l.precision, l.ep, l.latency_ms_p50, b.baseline_p50,
  b.baseline_p50 / l.latency_ms_p50 AS gain
FROM latest l JOIN base b ON b.model = l.model AND b.precision = l.precision
WHERE l.device_id IN ($device) AND l.model IN ($model) AND l.precision IN ($precision)
ORDER BY l.model, gain DESC"""
    ps = [
        panel(1, "table", "Latest p50 / p99 per model and board at batch $batch", (0, 0, 24, 10),
              [target(e, table)],
              cols=[("model", "model"), ("device_id", "board"), ("precision", "precision"),
                    ("ep", "provider"), ("latency_ms_p50", "p50"), ("latency_ms_p99", "p99"),
                    ("throughput_ips", "images/s")],
              units={"latency_ms_p50": "ms", "latency_ms_p99": "ms"}),
        panel(2, "bargauge", "Gain against $baseline (its p50 / board's p50) at batch $batch",
              (0, 10, 24, 10), [target(e, gain)],
              cols=[("gain", "gain"), ("latency_ms_p50", "p50"), ("baseline_p50", "baseline p50")],
              units={"latency_ms_p50": "ms", "baseline_p50": "ms"},
              options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^gain$/", "values": True},
                       "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True},
              defaults={"unit": "x", "min": 0}),
    ]
    extra_vars = [
        ("batch", "batch", "SELECT DISTINCT batch FROM results ORDER BY 1"),
        ("baseline", "baseline board", "SELECT DISTINCT device_id FROM devices ORDER BY 1"),
    ]
    return dashboard("edgebench-latency" + sfx(e), "edgebench: latency across boards" + tname(e), ps,
                     variables(e, extra_vars),
                     "Latest p50/p99 per model and board at one batch, and the gain against a "
                     "baseline board.")


# --- 3. Knee curves ----------------------------------------------------------
def knee(e):
    curve = f"""SELECT r.device_id, r.batch, avg(r.throughput_ips) AS throughput_ips
FROM results r
WHERE r.status = 'ok' AND {time_filter(e, 'r.time', 'r.ts')}
  AND r.device_id IN ($device) AND r.model IN ($model) AND r.precision IN ($precision)
  AND r.sweep_id = (SELECT r2.sweep_id FROM results r2
                    WHERE r2.device_id = r.device_id AND r2.model = r.model
                    ORDER BY r2.time DESC LIMIT 1)
GROUP BY r.device_id, r.batch
ORDER BY r.device_id, r.batch"""
    knees = f"""SELECT device_id, model, precision, ep, knee_batch, knee_throughput_ips,
  peak_batch, peak_throughput_ips, curve, time
FROM summaries s
WHERE {time_filter(e)} AND {FILTERS}
  AND s.time = (SELECT max(s2.time) FROM summaries s2 WHERE s2.device_id = s.device_id
                AND s2.model = s.model AND s2.precision = s.precision AND s2.ep = s.ep)
ORDER BY model, device_id"""
    marks = f"""SELECT device_id, knee_batch AS batch, knee_throughput_ips AS throughput_ips
FROM summaries s
WHERE {time_filter(e)} AND {FILTERS} AND knee_batch IS NOT NULL
  AND s.time = (SELECT max(s2.time) FROM summaries s2 WHERE s2.device_id = s.device_id
                AND s2.model = s.model AND s2.precision = s.precision AND s2.ep = s.ep)
ORDER BY device_id"""
    ps = [
        panel(1, "xychart", "Throughput against batch (last sweep per board), knee marked",
              (0, 0, 24, 12), [target(e, curve, ref="A"), target(e, marks, ref="B")],
              cols=[("batch", "batch"), ("throughput_ips", "images/s")],
              options={"mapping": "auto",
                       "series": [{"x": {"matcher": {"id": "byName", "options": "batch"}},
                                   "y": {"matcher": {"id": "byName", "options": "throughput_ips"}}}],
                       "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom",
                                  "calcs": []},
                       "tooltip": {"mode": "single", "sort": "none"}},
              custom={"show": "points+lines", "pointSize": {"fixed": 6}},
              description="Query B is the knee of each board's summary, drawn as points."),
        panel(2, "table", "Knee and peak per board", (0, 12, 24, 8), [target(e, knees)],
              cols=[("device_id", "board"), ("model", "model"), ("precision", "precision"),
                    ("ep", "provider"), ("knee_batch", "knee batch"),
                    ("knee_throughput_ips", "knee images/s"), ("peak_batch", "peak batch"),
                    ("peak_throughput_ips", "peak images/s"), ("curve", "curve")]),
    ]
    return dashboard("edgebench-knee" + sfx(e), "edgebench: knee curves" + tname(e), ps, variables(e),
                     "Throughput against batch per board for a model, the knee marked.")


# --- 4. Thermals and power ---------------------------------------------------
def thermals(e):
    def series(expr, alias):
        return f"""SELECT {time_group(e)}, device_id AS metric, max({expr}) AS {alias}
FROM telemetry
WHERE {time_filter(e)} AND device_id IN ($device)
GROUP BY 1, 2 ORDER BY 1"""
    thr = "CASE WHEN throttled THEN 1 ELSE 0 END" if e == "postgres" else "throttled"
    ann_sql = f"""SELECT {'first_time' if e == 'postgres' else 'first_time'} AS time, time AS timeend,
  device_id || ': sweep ' || coalesce(sweep, '') || ' ' || coalesce(state, '') AS text,
  device_id AS tags
FROM sweeps
WHERE {time_filter(e)} AND device_id IN ($device)
ORDER BY 1"""
    ann = {"name": "sweeps", "enable": True, "hide": False, "iconColor": "#FF9830",
           "datasource": DS[e], "target": target(e, ann_sql, time_columns=("time", "timeend"))}
    ps = [
        panel(1, "timeseries", "SoC temperature (hottest zone)", (0, 0, 12, 8),
              [target(e, series("temp_c", "temp_c"), fmt="time_series")],
              cols=[("temp_c", "°C")], units={"temp_c": "celsius"}, defaults={"unit": "celsius"}),
        panel(2, "timeseries", "Board power", (12, 0, 12, 8),
              [target(e, series("power_w", "power_w"), fmt="time_series")],
              cols=[("power_w", "W")], units={"power_w": "watt"}, defaults={"unit": "watt"}),
        panel(3, "timeseries", "CPU0 clock", (0, 8, 12, 8),
              [target(e, series(extra(e, "freq_mhz_cpu0"), "freq_mhz_cpu0"), fmt="time_series")],
              cols=[("freq_mhz_cpu0", "MHz")], units={"freq_mhz_cpu0": "MHz"}),
        panel(4, "timeseries", "Throttled (1 = a throttle signal fired)", (12, 8, 12, 8),
              [target(e, series(thr, "throttled"), fmt="time_series")],
              cols=[("throttled", "throttled")], defaults={"min": 0, "max": 1},
              custom={"drawStyle": "line", "lineInterpolation": "stepAfter", "fillOpacity": 20}),
    ]
    return dashboard("edgebench-thermals" + sfx(e), "edgebench: thermals and power" + tname(e), ps,
                     variables(e), "Telemetry per board with sweeps as annotations.",
                     annotations=[ann], refresh="30s")


# --- 5. Live (MQTT) ----------------------------------------------------------
def live():
    def t(topic, ref="A"):
        return {"refId": ref, "datasource": MQTT, "topic": topic}
    ps = [
        panel(1, "timeseries", "Live telemetry: SoC temperature ($device)", (0, 0, 12, 8),
              [t("edgebench/v1/${device}/telemetry")], cols=[("temp_c", "°C")],
              units={"temp_c": "celsius"}, ds=MQTT,
              description="Telemetry as it arrives (Grafana's MQTT data source keeps no history)."),
        panel(2, "timeseries", "Live telemetry: power, unsent bytes ($device)", (12, 0, 12, 8),
              [t("edgebench/v1/${device}/telemetry")],
              cols=[("power_w", "W"), ("unsent_bytes", "unsent")],
              units={"power_w": "watt", "unsent_bytes": "bytes"}, ds=MQTT),
        panel(3, "table", "Results as they arrive ($device)", (0, 8, 24, 10),
              [t("edgebench/v1/${device}/result")],
              cols=[("model", "model"), ("precision", "precision"), ("ep", "provider"),
                    ("batch", "batch"), ("latency_ms_p50", "p50"), ("latency_ms_p99", "p99"),
                    ("throughput_ips", "images/s"), ("status", "status"), ("throttled", "throttled")],
              units={"latency_ms_p50": "ms", "latency_ms_p99": "ms"}, ds=MQTT),
        panel(4, "stat", "Sweep progress ($device)", (0, 18, 24, 4),
              [t("edgebench/v1/${device}/sweep/state")],
              cols=[("state", "state"), ("done", "done"), ("total", "total")], ds=MQTT,
              options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^(state|done|total)$/",
                                         "values": False},
                       "textMode": "value_and_name", "colorMode": "none", "graphMode": "none"}),
    ]
    tv = variables("postgres")
    # One board at a time: an MQTT topic per panel; the board list comes from the store.
    tv["list"][0].update({"multi": False, "includeAll": False, "current": {}})
    return dashboard("edgebench-live", "edgebench: live (MQTT)", ps, tv,
                     "Results and telemetry as they arrive, from the broker (no history).")


def all_dashboards():
    out = {}
    for e in ("postgres", "sqlite"):
        for make in (fleet, latency, knee, thermals):
            d = make(e)
            out[f"{e}/{d['uid']}.json"] = d
    d = live()
    out[f"mqtt/{d['uid']}.json"] = d
    return out


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for rel, d in all_dashboards().items():
        path = OUT / rel
        text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run integrations/grafana/build.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
