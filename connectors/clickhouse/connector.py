"""The ClickHouse connector: what the gateway's request log says happened.

Every operation runs a few fixed, aggregated SELECTs over the request log
(`spec/case-format.md`), with every value bound server-side, and turns the
numbers into evidence: `data` keeps the counts, shares and UTC times; the
summary states them in a sentence. Refs are descriptive (`timeline:ws_acme`,
`errors:payment_required`, `scope:500`), as the spec allows for ClickHouse.

SQL text is assembled only from the fixed fragments in this module and the
validated table reference; every value is a server-side bound parameter.
"""
# ruff: noqa: S608  (see above: no value is ever formatted into SQL text)

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Connector, operation
from connectors.clickhouse.client import ClickHouseClient, Row
from connectors.clickhouse.config import (
    ClickHouseConfig,
    ErrorMatch,
    FirstOccurrenceParams,
    LatencyParams,
    QuotaParams,
    SpikeScopeParams,
    TimelineParams,
    TopErrorsParams,
    VersionParams,
)
from core.domain import Evidence
from core.errors import NotFoundError
from core.resilience import Attempt

_TS = "DateTime64(3, 'UTC')"
_WINDOW = f"ts >= {{since:{_TS}}} AND ts < {{until:{_TS}}}"
_WS = "workspace_id = {ws:String}"
_TIMELINE = f"""
SELECT toUnixTimestamp(toStartOfInterval(ts, toIntervalMinute({{bucket:UInt32}}))) AS bucket,
       if(status >= 400, status, 0) AS e_status, if(status >= 400, error_code, '') AS e_code,
       if(status >= 400, provider, '') AS e_provider, count() AS n,
       toUnixTimestamp64Milli(min(ts)) AS first_ms, toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM @T WHERE {_WS} AND {_WINDOW}
GROUP BY bucket, e_status, e_code, e_provider ORDER BY bucket LIMIT {{limit:UInt32}}"""
# requests from an error's first sighting to the end of that bucket, for up to three errors
_RANGES = [f"(ts >= {{f{i}:{_TS}}} AND ts < {{e{i}:{_TS}}})" for i in range(3)]
_SINCE_COUNTS = (
    "SELECT " + ", ".join(f"countIf{r} AS r{i}" for i, r in enumerate(_RANGES))
    + f" FROM @T WHERE {_WS} AND ({' OR '.join(_RANGES)})")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _from_ms(ms: int) -> datetime:
    return _epoch(ms // 1000) + timedelta(milliseconds=ms % 1000)


def when(value: datetime | None) -> str:
    """Format a time as UTC for a summary ("2026-02-17 12:30 UTC")."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def pct(part: int, whole: int) -> str:
    """Format a share as a percentage ("42%", "4.9%")."""
    if not whole:
        return "0%"
    share = 100 * part / whole
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _error_label(status: int, code: str) -> str:
    return f"{status} {code}".strip()


def _top(counter: Counter[str], n: int = 3) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common(n))


def _window_values(params: Any) -> dict[str, Any]:
    return {"since": params.since, "until": params.until}


def _match(params: ErrorMatch) -> tuple[str, dict[str, Any], str]:
    """Return the SQL condition, its bound values and a label for an error code/status."""
    parts: list[str] = []
    values: dict[str, Any] = {}
    if params.error_code is not None:
        parts.append("error_code = {code:String}")
        values["code"] = params.error_code
    if params.status is not None:
        parts.append("status = {status:UInt16}")
        values["status"] = params.status
    label = " ".join(str(v) for v in (params.status, params.error_code) if v is not None)
    return "(" + " AND ".join(parts) + ")", values, label


class ClickHouseConnector(Connector):
    """Reads request-log aggregates: timelines, top errors, latency, scope, versions, quota."""

    name = "clickhouse"
    config_model = ClickHouseConfig

    def __init__(self, config: ClickHouseConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.settings: ClickHouseConfig = config
        self.client = ClickHouseClient(config)

    async def _q(self, sql: str, values: dict[str, Any], attempt: Attempt) -> list[Row]:
        # the table reference is the only text spliced in: validated identifiers, quoted
        sql = sql.replace("@T", self.settings.table_ref)
        return await self.client.query(sql, values, attempt)

    async def _one(self, sql: str, values: dict[str, Any], attempt: Attempt) -> Row:
        rows = await self._q(sql, values, attempt)
        return rows[0] if rows else {}

    def _ev(self, ref: str, title: str, summary: str, data: dict[str, Any]) -> Evidence:
        return Evidence(source="clickhouse", ref=ref[:512], title=title, summary=summary,
                        data=data, observed_at=self.now())

    async def _ping(self, attempt: Attempt) -> None:
        row = await self._one(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String} "
            "AND name = {table:String}",
            {"db": self.settings.database, "table": self.settings.table}, attempt)
        if not row.get("n"):
            raise NotFoundError(f"clickhouse: table {self.settings.table_ref} does not exist")

    async def aclose(self) -> None:
        """Close the library client."""
        self.client.close()

    @operation("error_timeline", TimelineParams,
               "Requests and errors (by status, error code, provider) per time bucket")
    async def error_timeline(self, p: TimelineParams, attempt: Attempt) -> list[Evidence]:
        """Return a timeline summary and one item per dominant error."""
        base = {"ws": p.workspace_id, **_window_values(p)}
        cols = await self.client.columns(
            _TIMELINE.replace("@T", self.settings.table_ref),
            {**base, "bucket": p.bucket_minutes, "limit": self.settings.row_limit}, attempt)
        truncated = len(cols["n"]) >= self.settings.row_limit  # LIMIT row_limit was reached
        # times come as integers (seconds, milliseconds) and rows come ordered by bucket: up
        # to row_limit rows are folded here, so the loop does no more than it must
        buckets: dict[int, dict[str, Any]] = {}
        codes: dict[tuple[int, str], dict[str, Any]] = {}
        current: int | None = None
        b: dict[str, Any] = {}
        by_status: dict[str, int] = {}
        by_code: dict[str, int] = {}
        by_provider: dict[str, int] = {}
        names = ("bucket", "e_status", "e_code", "e_provider", "n", "first_ms", "last_ms")
        for at, status, code, provider, n, first_ms, last_ms in zip(
                *(cols[name] for name in names), strict=True):
            if at != current:
                current, by_status, by_code, by_provider = at, {}, {}, {}
                b = buckets[at] = {"start": at, "requests": 0, "errors": 0,
                                   "by_status": by_status, "by_error_code": by_code,
                                   "by_provider": by_provider}
            b["requests"] += n
            if not status:
                continue
            b["errors"] += n
            label = str(status)
            by_status[label] = by_status.get(label, 0) + n
            by_code[code] = by_code.get(code, 0) + n
            by_provider[provider] = by_provider.get(provider, 0) + n
            c = codes.get((status, code))
            if c is None:
                c = codes[(status, code)] = {"count": 0, "first": first_ms, "bucket": at,
                                             "last": last_ms, "providers": Counter()}
            c["count"] += n
            if first_ms < c["first"]:
                c["first"], c["bucket"] = first_ms, at
            if last_ms > c["last"]:
                c["last"] = last_ms
            c["providers"][provider] += n
        for c in codes.values():
            c["first"], c["last"] = _from_ms(c["first"]), _from_ms(c["last"])
        requests = sum(b["requests"] for b in buckets.values())
        errors = sum(b["errors"] for b in buckets.values())
        ranked = sorted(codes.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
        dominant = [kv for kv in ranked if kv[1]["count"] >= max(3, errors / 10)][:3]
        since_counts: list[int] = []
        if dominant:
            # requests since an error began = the rest of its first bucket (read from the log:
            # a narrow range of the (workspace_id, ts) key) + every later bucket (known here)
            keys = sorted(buckets)
            ranges: dict[str, Any] = {f"{x}{i}": p.until for i in range(3) for x in "fe"}
            for i, (_, c) in enumerate(dominant):
                later = [k for k in keys if k > c["bucket"]]
                end = min([c["bucket"] + p.bucket_minutes * 60, *later[:1]])
                ranges.update({f"f{i}": c["first"], f"e{i}": _epoch(end)})
                c["after_bucket"] = sum(buckets[k]["requests"] for k in later)
            row = await self._one(_SINCE_COUNTS, {"ws": p.workspace_id, **ranges}, attempt)
            since_counts = [int(row.get(f"r{i}", 0)) + c["after_bucket"]
                            for i, (_, c) in enumerate(dominant)]
        series = list(buckets.values())
        peak = max(series, key=lambda item: item["errors"], default=None)
        peak_at = _epoch(peak["start"]) if peak else None
        for item in series:
            item["start"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(item["start"]))
        text = (f"{p.workspace_id}: {errors} of {requests} requests ({pct(errors, requests)}) "
                f"failed between {when(p.since)} and {when(p.until)}")
        if ranked:
            (status, code), top = ranked[0]
            text += f"; most often {_error_label(status, code)} ({top['count']})"
        if peak and peak["errors"]:
            text += (f"; worst {p.bucket_minutes}-minute bucket from {when(peak_at)}: "
                     f"{peak['errors']} of {peak['requests']} failed")
        if truncated:
            text += f" (only the first {self.settings.row_limit:,} result rows were read)"
        items = [self._ev(f"timeline:{p.workspace_id}", f"Error timeline of {p.workspace_id}",
                          text + ".", {
                              "workspace_id": p.workspace_id, "since": _iso(p.since),
                              "until": _iso(p.until), "bucket_minutes": p.bucket_minutes,
                              "requests": requests, "errors": errors,
                              "error_rate": _rate(errors, requests),
                              "truncated": truncated,
                              "errors_by_code": [{"status": s, "error_code": c, "count": v["count"]}
                                                 for (s, c), v in ranked],
                              "buckets": series})]
        for ((status, code), c), since in zip(dominant, since_counts, strict=True):
            label = _error_label(status, code)
            items.append(self._ev(
                f"errors:{code or status}", f"{label} for {p.workspace_id}",
                f"{c['count']} of {since} requests ({pct(c['count'], since)}) failed with {label} "
                f"since {when(c['first'])} (last {when(c['last'])}); by provider: "
                f"{_top(c['providers'])}.",
                {"workspace_id": p.workspace_id, "status": status, "error_code": code,
                 "count": c["count"], "first_seen": _iso(c["first"]),
                 "last_seen": _iso(c["last"]), "requests_since_first": since,
                 "share_since_first": _rate(c["count"], since),
                 "share_of_window": _rate(c["count"], requests),
                 "providers": dict(c["providers"])}))
        return items

    @operation("top_error_codes", TopErrorsParams,
               "The most frequent (error_code, status, provider) of a workspace in a window")
    async def top_error_codes(self, p: TopErrorsParams, attempt: Attempt) -> list[Evidence]:
        """Return one item listing the top error groups with counts and shares."""
        base = {"ws": p.workspace_id, **_window_values(p)}
        where = f"{_WS} AND {_WINDOW}"
        totals = await self._one(f"SELECT count() AS requests, countIf(status >= 400) AS errors "
                                 f"FROM @T WHERE {where}", base, attempt)
        rows = await self._q(
            f"SELECT error_code, status, provider, count() AS n, min(ts) AS first_ts, "
            f"max(ts) AS last_ts, topK(3)(model) AS models, topK(3)(api_key_id) AS api_keys "
            f"FROM @T WHERE {where} AND status >= 400 GROUP BY error_code, status, provider "
            f"ORDER BY n DESC, status, error_code, provider LIMIT {{top:UInt32}}",
            {**base, "top": p.limit}, attempt)
        requests, errors = int(totals.get("requests", 0)), int(totals.get("errors", 0))
        top = [{"error_code": r["error_code"], "status": r["status"], "provider": r["provider"],
                "count": r["n"], "share": _rate(r["n"], requests),
                "share_of_errors": _rate(r["n"], errors), "first_seen": _iso(r["first_ts"]),
                "last_seen": _iso(r["last_ts"]), "models": list(r["models"]),
                "api_key_ids": list(r["api_keys"])} for r in rows]
        listed = "; ".join(f"{_error_label(t['status'], t['error_code'])} via {t['provider']} "
                           f"{t['count']} ({pct(t['count'], requests)})" for t in top[:3])
        text = (f"{p.workspace_id}: {errors} of {requests} requests ({pct(errors, requests)}) "
                f"failed between {when(p.since)} and {when(p.until)}"
                + (f"; top: {listed}." if top else "; no errors."))
        return [self._ev(f"top_errors:{p.workspace_id}", f"Top errors of {p.workspace_id}", text,
                         {"workspace_id": p.workspace_id, "since": _iso(p.since),
                          "until": _iso(p.until), "requests": requests, "errors": errors,
                          "top": top})]

    @operation("latency_percentiles", LatencyParams,
               "p50/p95/p99 latency by provider and model for a workspace in a window")
    async def latency_percentiles(self, p: LatencyParams, attempt: Attempt) -> list[Evidence]:
        """Return one item with overall and per provider/model latency percentiles."""
        where = f"{_WS} AND {_WINDOW}"
        values: dict[str, Any] = {"ws": p.workspace_id, **_window_values(p), "top": p.limit}
        if p.provider is not None:
            where += " AND provider = {provider:String}"
            values["provider"] = p.provider
        stats = ("count() AS n, quantilesExact(0.5, 0.95, 0.99)(latency_ms) AS q, "
                 "max(latency_ms) AS max_ms, countIf(status >= 400) AS errors")
        total = await self._one(f"SELECT {stats} FROM @T WHERE {where}", values, attempt)
        rows = await self._q(f"SELECT provider, model, {stats} FROM @T WHERE {where} "
                             f"GROUP BY provider, model ORDER BY n DESC, provider, model "
                             f"LIMIT {{top:UInt32}}", values, attempt)

        def shape(r: Row) -> dict[str, Any]:
            q = list(r.get("q") or [0, 0, 0])
            return {"requests": r.get("n", 0), "p50_ms": q[0], "p95_ms": q[1], "p99_ms": q[2],
                    "max_ms": r.get("max_ms", 0), "errors": r.get("errors", 0)}

        overall = shape(total) if total.get("n") else shape({})
        groups = [{"provider": r["provider"], "model": r["model"], **shape(r)} for r in rows]
        slowest = max(groups, key=lambda g: g["p99_ms"], default=None)
        span = f"between {when(p.since)} and {when(p.until)}"
        text = (f"{p.workspace_id}: p50 {overall['p50_ms']:,.0f} ms, p95 {overall['p95_ms']:,.0f} "
                f"ms, p99 {overall['p99_ms']:,.0f} ms over {overall['requests']} requests {span}"
                if overall["requests"] else f"{p.workspace_id} sent no requests {span}")
        if slowest:
            text += (f"; slowest: {slowest['provider']} {slowest['model']} p99 "
                     f"{slowest['p99_ms']:,.0f} ms ({slowest['requests']} requests)")
        return [self._ev(f"latency:{p.workspace_id}", f"Latency of {p.workspace_id}", text + ".",
                         {"workspace_id": p.workspace_id, "provider": p.provider,
                          "since": _iso(p.since), "until": _iso(p.until), **overall,
                          "by_model": groups})]

    @operation("first_occurrence", FirstOccurrenceParams,
               "First and last time a workspace saw an error code/status, and its last success")
    async def first_occurrence(self, p: FirstOccurrenceParams, attempt: Attempt
                               ) -> list[Evidence]:
        """Return one item: count, first/last seen, last success before, successes after."""
        cond, values, label = _match(p)
        base = {"ws": p.workspace_id, **_window_values(p), **values}
        hit = await self._one(
            f"SELECT count() AS n, min(ts) AS first_ts, max(ts) AS last_ts, "
            f"topK(3)(provider) AS providers, topK(3)(api_key_id) AS api_keys, "
            f"topK(3)(model) AS models FROM @T WHERE {_WS} AND {_WINDOW} AND {cond}",
            base, attempt)
        n = int(hit.get("n", 0))
        data: dict[str, Any] = {"workspace_id": p.workspace_id, "error_code": p.error_code,
                                "status": p.status, "since": _iso(p.since),
                                "until": _iso(p.until), "count": n}
        ref = f"first_seen:{p.workspace_id}:{p.error_code or p.status}"
        title = f"First {label} for {p.workspace_id}"
        if not n:
            return [self._ev(ref, title, f"{p.workspace_id} saw no {label} between "
                             f"{when(p.since)} and {when(p.until)}.", data)]
        first = hit["first_ts"]
        ctx = await self._one(
            f"SELECT countIf(status < 400 AND ts < {{first:{_TS}}}) AS ok_before, "
            f"maxIf(ts, status < 400 AND ts < {{first:{_TS}}}) AS last_ok, "
            f"countIf(ts >= {{first:{_TS}}}) AS after, "
            f"countIf(status < 400 AND ts >= {{first:{_TS}}}) AS ok_after "
            f"FROM @T WHERE {_WS} AND {_WINDOW}", {**base, "first": first}, attempt)
        last_ok = ctx["last_ok"] if ctx.get("ok_before") else None
        data.update({"first_seen": _iso(first), "last_seen": _iso(hit["last_ts"]),
                     "providers": list(hit["providers"]), "api_key_ids": list(hit["api_keys"]),
                     "models": list(hit["models"]), "last_success_before": _iso(last_ok),
                     "requests_since_first": ctx.get("after", 0),
                     "successes_since_first": ctx.get("ok_after", 0)})
        text = (f"{p.workspace_id} first saw {label} at {when(first)} and last at "
                f"{when(hit['last_ts'])} ({n} times); last success before it: {when(last_ok)}; "
                f"{ctx.get('ok_after', 0)} of {ctx.get('after', 0)} requests since then "
                f"succeeded.")
        return [self._ev(ref, title, text, data)]

    @operation("spike_scope", SpikeScopeParams,
               "How many workspaces saw an error code/status, out of those with traffic")
    async def spike_scope(self, p: SpikeScopeParams, attempt: Attempt) -> list[Evidence]:
        """Return one item saying whether an error is global or isolated, with top workspaces."""
        cond, values, label = _match(p)
        base = {**_window_values(p), **values, "top": p.limit}
        agg = await self._one(
            f"SELECT count() AS with_traffic, countIf(hits > 0) AS affected, "
            f"countIf(hits >= 3 AND hits * 20 >= requests) AS significant, "
            f"sum(requests) AS total, sum(hits) AS total_hits, minIf(first_ts, hits > 0) AS first, "
            f"maxIf(last_ts, hits > 0) AS last FROM (SELECT workspace_id, count() AS requests, "
            f"countIf({cond}) AS hits, minIf(ts, {cond}) AS first_ts, maxIf(ts, {cond}) AS last_ts "
            f"FROM @T WHERE {_WINDOW} GROUP BY workspace_id)", base, attempt)
        rows = await self._q(
            f"SELECT workspace_id, countIf({cond}) AS hits, count() AS requests, "
            f"minIf(ts, {cond}) AS first_ts FROM @T WHERE {_WINDOW} GROUP BY workspace_id "
            f"HAVING hits > 0 ORDER BY hits DESC, workspace_id LIMIT {{top:UInt32}}", base, attempt)
        hits, traffic = int(agg.get("total_hits", 0)), int(agg.get("with_traffic", 0))
        affected, significant = int(agg.get("affected", 0)), int(agg.get("significant", 0))
        top_share = _rate(rows[0]["hits"], hits) if rows else 0.0
        # global: several workspaces each lose a real share of requests and no one dominates
        if not hits:
            scope = "none"
        elif significant >= 3 and significant * 4 >= traffic and top_share < 0.6:
            scope = "global"
        else:
            scope = "isolated"
        data: dict[str, Any] = {
            "error_code": p.error_code, "status": p.status, "since": _iso(p.since),
            "until": _iso(p.until), "scope": scope, "hits": hits,
            "requests": int(agg.get("total", 0)), "workspaces_with_traffic": traffic,
            "workspaces_affected": affected, "workspaces_significant": significant,
            "top_workspace_share": top_share,
            "first_seen": _iso(agg.get("first")) if hits else None,
            "last_seen": _iso(agg.get("last")) if hits else None,
            "top_workspaces": [{"workspace_id": r["workspace_id"], "hits": r["hits"],
                                "requests": r["requests"], "share": _rate(r["hits"], r["requests"]),
                                "first_seen": _iso(r["first_ts"])} for r in rows]}
        text = (f"{label} is {scope}: {affected} of {traffic} workspaces with traffic saw it "
                f"({significant} with at least 5% of their requests), {hits} times between "
                f"{when(p.since)} and {when(p.until)}")
        if rows:
            text += f"; most: {rows[0]['workspace_id']} {rows[0]['hits']} ({pct(*_top_pair(rows))})"
        if p.workspace_id is not None:
            own = await self._one(f"SELECT countIf({cond}) AS hits, count() AS requests FROM @T "
                                  f"WHERE {_WS} AND {_WINDOW}", {**base, "ws": p.workspace_id},
                                  attempt)
            data["workspace"] = {"workspace_id": p.workspace_id, "hits": own.get("hits", 0),
                                 "requests": own.get("requests", 0)}
            text += f"; {p.workspace_id}: {own.get('hits', 0)} of {own.get('requests', 0)}"
        return [self._ev(f"scope:{p.error_code or p.status}", f"Scope of {label}", text + ".",
                         data)]

    @operation("traffic_by_version", VersionParams,
               "Requests and error rates by gateway version, with each version's first sighting")
    async def traffic_by_version(self, p: VersionParams, attempt: Attempt) -> list[Evidence]:
        """Return one item per window and one more for a version with an outlying error rate."""
        where, values = _WINDOW, {**_window_values(p), "top": p.limit}
        if p.workspace_id is not None:
            where, values = f"{_WS} AND {where}", {**values, "ws": p.workspace_id}
        rows = await self._q(
            f"SELECT gateway_version, count() AS requests, countIf(status >= 400) AS errors, "
            f"countIf(status >= 500) AS server_errors, min(ts) AS first_ts, max(ts) AS last_ts, "
            f"uniqExact(workspace_id) AS workspaces, topKIf(3)(error_code, status >= 400) AS codes "
            f"FROM @T WHERE {where} GROUP BY gateway_version ORDER BY first_ts, gateway_version "
            f"LIMIT {{top:UInt32}}", values, attempt)
        versions = [{"gateway_version": r["gateway_version"], "requests": r["requests"],
                     "errors": r["errors"], "server_errors": r["server_errors"],
                     "error_rate": _rate(r["errors"], r["requests"]),
                     "first_seen": _iso(r["first_ts"]), "last_seen": _iso(r["last_ts"]),
                     "workspaces": r["workspaces"], "top_error_codes": list(r["codes"])}
                    for r in rows]
        who = p.workspace_id or "all"
        parts = [f"{v['gateway_version']} (first seen {when(r['first_ts'])}): {v['requests']} "
                 f"requests, {pct(v['errors'], v['requests'])} errors"
                 for v, r in zip(versions, rows, strict=True)]
        items = [self._ev(f"versions:{who}", f"Traffic by gateway version ({who})",
                          ("; ".join(parts) or f"no requests for {who}") + ".",
                          {"workspace_id": p.workspace_id, "since": _iso(p.since),
                           "until": _iso(p.until), "versions": versions})]
        for v in versions:
            rest_req = sum(o["requests"] for o in versions) - v["requests"]
            rest_err = sum(o["errors"] for o in versions) - v["errors"]
            rest = _rate(rest_err, rest_req)
            if v["requests"] >= 20 and v["error_rate"] >= 0.05 and v["error_rate"] >= 3 * rest:
                items.append(self._ev(
                    f"version:{v['gateway_version']}", f"Errors on {v['gateway_version']}",
                    f"{v['errors']} of {v['requests']} requests ({pct(v['errors'], v['requests'])})"
                    f" on gateway {v['gateway_version']} failed since {v['first_seen']}, against "
                    f"{pct(rest_err, rest_req)} on the other versions; top codes: "
                    f"{', '.join(v['top_error_codes']) or 'none'}.",
                    {**v, "workspace_id": p.workspace_id, "other_error_rate": rest}))
        return items

    @operation("quota_usage", QuotaParams,
               "Requests of a workspace since its period start, against a quota, and 429s")
    async def quota_usage(self, p: QuotaParams, attempt: Attempt) -> list[Evidence]:
        """Return one item: requests counted, quota share, quota_exceeded count and first time."""
        quota_hit = "(status = 429 AND error_code = 'quota_exceeded')"
        values = {"ws": p.workspace_id, "since": p.period_start, "until": p.until}
        row = await self._one(
            f"SELECT count() AS requests, countIf(NOT {quota_hit}) AS counted, "
            f"countIf({quota_hit}) AS rejected, minIf(ts, {quota_hit}) AS first_rejected, "
            f"maxIf(ts, {quota_hit}) AS last_rejected, min(ts) AS first_ts, "
            f"(SELECT min(ts) FROM @T WHERE {_WINDOW}) AS log_start "
            f"FROM @T WHERE {_WS} AND {_WINDOW}", values, attempt)
        requests, counted = int(row.get("requests", 0)), int(row.get("counted", 0))
        rejected = int(row.get("rejected", 0))
        log_start = row.get("log_start") if requests else None
        # the log may start after the period did: then the count is only a lower bound
        complete = log_start is not None and (log_start - p.period_start).total_seconds() < 3_600
        data = {"workspace_id": p.workspace_id, "period_start": _iso(p.period_start),
                "until": _iso(p.until), "quota": p.quota, "requests": requests,
                "counted": counted, "used_share": _rate(counted, p.quota),
                "quota_exceeded": rejected,
                "first_quota_exceeded": _iso(row.get("first_rejected")) if rejected else None,
                "last_quota_exceeded": _iso(row.get("last_rejected")) if rejected else None,
                "log_start": _iso(log_start), "log_covers_period": complete}
        text = (f"{p.workspace_id}: {counted:,} requests counted against a quota of {p.quota:,} "
                f"({pct(counted, p.quota)}) since {when(p.period_start)}")
        if not complete and requests:
            text += f" (the log only starts at {when(log_start)}, so this is a lower bound)"
        text += (f"; {rejected} rejected with 429 quota_exceeded since "
                 f"{when(row.get('first_rejected'))}" if rejected else "; no quota_exceeded")
        return [self._ev(f"quota:{p.workspace_id}", f"Quota usage of {p.workspace_id}",
                         text + ".", data)]


def _top_pair(rows: list[Row]) -> tuple[int, int]:
    return int(rows[0]["hits"]), int(rows[0]["requests"])
