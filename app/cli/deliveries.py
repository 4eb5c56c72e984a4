"""`applyrelay deliveries list|show|retry|purge` — the dashboard's operations from a terminal.

It talks to Redis directly through the store (REDIS_URL), not to the HTTP API: it works while
the web process is down, needs no token, and whoever can reach the Redis can do this anyway.
Actions are written to the audit log as `cli:<OS user>`. No candidate data is printed.

    applyrelay deliveries list --status failed --connection acme [--json]
    applyrelay deliveries show dlv_... [--json]
    applyrelay deliveries retry dlv_... [--attachments]
    applyrelay deliveries retry --all --status failed --connection acme     (bulk, by filter)
    applyrelay deliveries purge dlv_... --yes
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import os
import sys
from typing import Any

FILTER_OPTIONS = (
    ("status", "queued | delivering | retry_scheduled | delivered | failed | paused"),
    ("connection", "connection id"),
    ("connector", "factorial | flatchr | otys | laura"),
    ("channel", "origin channel: api | indeed | webhook | form ..."),
    ("board", "origin board"),
    ("received-from", "epoch seconds or ISO 8601 (UTC when naive)"),
    ("received-to", "idem"),
    ("q", "a delivery id or a board's application id"),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deliveries",
        help="list, inspect, retry and purge deliveries (via REDIS_URL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="deliveries_command", required=True)

    p = sub.add_parser("list", help="deliveries matching filters, newest received first")
    _filters(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.add_argument("--json", action="store_true", help="one JSON document (rows + next_cursor)")
    p.set_defaults(fn=lambda a: _run(_list(a)))

    p = sub.add_parser("show", help="one delivery with its timeline")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=lambda a: _run(_show(a)))

    p = sub.add_parser("retry", help="retry one delivery, or every one matching filters with --all")
    p.add_argument("id", nargs="?")
    p.add_argument("--attachments", action="store_true", help="re-send the unconfirmed attachments only")
    p.add_argument("--all", action="store_true", help="bulk: every delivery matching the filters")
    _filters(p)
    p.set_defaults(fn=lambda a: _run(_retry(a)))

    p = sub.add_parser("purge", help="drop a dead letter's payload and files (a tombstone stays)")
    p.add_argument("id")
    p.add_argument("--yes", action="store_true", help="do it (without it, nothing is deleted)")
    p.set_defaults(fn=lambda a: _run(_purge(a)))


def _filters(parser: argparse.ArgumentParser) -> None:
    for name, help_text in FILTER_OPTIONS:
        parser.add_argument(f"--{name}", help=help_text)


def _filter(args: argparse.Namespace) -> Any:
    from app.operator.query import build_filter

    return build_filter(
        {name.replace("-", "_"): getattr(args, name.replace("-", "_"), None) for name, _ in FILTER_OPTIONS}
    )


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _run(coro: Any) -> None:
    from app.core.problems import Problem

    try:
        code = asyncio.run(coro)
    except Problem as exc:
        if exc.status in (400, 422) and exc.errors:  # a filter: name the option at fault
            error = exc.errors[0]
            sys.exit(f"applyrelay: --{error.field.replace('_', '-')}: {error.message}")
        sys.exit(f"applyrelay: {exc.title}: {exc.detail}")
    if code:
        sys.exit(code)


class _Store:
    """The store on REDIS_URL, closed on exit."""

    async def __aenter__(self) -> Any:
        from app.config import ConfigError
        from app.delivery.store import DeliveryStore
        from app.privacy.crypto import AesGcmSealer
        from app.runtime import redis_client
        from app.settings import data_keys_for_tools

        url = os.environ.get("REDIS_URL")
        if not url:
            sys.exit("applyrelay: REDIS_URL is not set (the Redis the relay uses; `applyrelay run` prints it)")
        try:  # the data keys: purge reads the payload to count its files
            keys = data_keys_for_tools(os.environ)
        except ConfigError as exc:
            sys.exit(f"applyrelay: {exc}")
        self.redis = redis_client(url)
        return DeliveryStore(self.redis, sealer=AesGcmSealer(keys))

    async def __aexit__(self, *_: Any) -> None:
        await self.redis.aclose()


def _utc(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


async def _list(args: argparse.Namespace) -> int:
    from app.operator.query import find
    from app.operator.views import summary

    f = _filter(args)
    async with _Store() as store:
        page = await find(store, f, limit=args.limit, cursor=args.cursor)
    rows = [summary(d) for d in page.deliveries]
    if args.json:
        print(json.dumps({"data": rows, "next_cursor": page.next_cursor}, indent=2))
        return 0
    print(f"{'ID':38} {'STATUS':16} {'CONNECTION':14} {'ORIGIN':18} {'RECEIVED (UTC)':20} RUNS  LAST ERROR")
    for r in rows:
        origin = r["channel"] + (f"/{r['board']}" if r["board"] else "")
        error = r["last_error"] or {}
        text = (f"{error.get('http_status') or ''} {error.get('message', '')}".strip())[:60]
        print(
            f"{r['id']:38} {r['status']:16} {r['connection_id']:14} {origin:18} {_utc(r['created_at']):20} "
            f"{r['runs']:4}  {text}"
        )
    if page.next_cursor:
        print(f"-- more: --cursor {page.next_cursor}")
    return 0


async def _show(args: argparse.Namespace) -> int:
    from app.operator.views import public_view, timeline

    async with _Store() as store:
        delivery = await store.get(args.id)
    if delivery is None:
        print(f"applyrelay: no delivery {args.id}", file=sys.stderr)
        return 1
    body = public_view(delivery)
    body["timeline"] = timeline(delivery)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"{delivery.id}  {delivery.status}")
    print(
        f"  connection {delivery.connection_id} ({delivery.connector}); origin {delivery.channel}"
        f"{'/' + delivery.board if delivery.board else ''}"
        f"{' ' + delivery.board_application_id if delivery.board_application_id else ''}; job {delivery.job_id}"
    )
    print(f"  received {_utc(delivery.created_at)}; updated {_utc(delivery.updated_at)}; runs {delivery.runs}")
    for name, remote in delivery.checkpoints.items():
        print(f"  step {name}: {remote}")
    for event in body["timeline"]:
        details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "event") and v not in (None, ""))
        print(f"  {_utc(event['at'])}  {event['event']:13} {details}")
    return 0


async def _retry(args: argparse.Namespace) -> int:
    from app.operator import retries
    from app.privacy import audit

    async with _Store() as store:
        if args.all:
            if args.id:
                sys.exit("applyrelay: give a delivery id or --all with filters, not both")
            f = _filter(args)
            bulk_id = await retries.create_bulk_retry(store, f, _actor())
            await retries.run_bulk_retry(store, bulk_id, f)
            progress = await retries.bulk_progress(store, bulk_id)
            assert progress is not None
            print(
                f"{bulk_id}: {progress.status}: {progress.done}/{progress.total} · {progress.retried} retried, "
                f"{progress.unchanged} unchanged, {progress.errors} refused"
            )
            return 0 if progress.status == "done" else 1
        if not args.id:
            sys.exit("applyrelay: give a delivery id (or --all with filters)")
        result = await retries.retry(store, args.id, attachments_only=args.attachments)
        await audit.record(
            store.redis,
            _actor(),
            "retry_attachments" if args.attachments else "retry",
            args.id,
            {"changed": result.changed, "via": "cli"},
        )
    print(f"{result.delivery_id}: {'queued' if result.changed else 'unchanged (' + result.status + ')'}")
    return 0


async def _purge(args: argparse.Namespace) -> int:
    from app.operator import retries
    from app.privacy import audit

    if not args.yes:
        print("applyrelay: purging deletes the payload and files for good; add --yes", file=sys.stderr)
        return 2
    async with _Store() as store:
        await retries.purge(store, args.id)
        await audit.record(store.redis, _actor(), "purge", args.id, {"via": "cli"})
    print(f"{args.id}: purged (tombstone kept)")
    return 0
