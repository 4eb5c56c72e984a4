"""`applyrelay jobs list|show` — the ATS's jobs and a job's questions from a terminal.

It reads the configuration (APPLYRELAY_CONFIG, else the built-in sandbox connections) and Redis
(REDIS_URL) as the relay does and goes through the same `Catalog`, so it shares the relay's cache
and single flight (docs/catalog.md). No token is needed: whoever runs it has the configuration's
credentials anyway.

    applyrelay jobs list acme --status OPEN --name-contains dev [--page-size 50] [--cursor ...] [--json]
    applyrelay jobs show acme 2001 [--json]          (the ATS's id, or remote:2001)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from app.core.catalog import JOB_STATUSES

NAME_WIDTH = 48


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="the ATS's jobs and their screening questions (via the relay's cache on REDIS_URL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("list", help="one page of a connection's jobs")
    p.add_argument("connection")
    p.add_argument("--status", choices=JOB_STATUSES)
    p.add_argument("--name-contains")
    p.add_argument("--updated-after", help="ISO 8601 (UTC when naive)")
    p.add_argument("--page-size", type=int, default=50, help="1 to 250")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.add_argument("--json", action="store_true", help="the API's JSON (data + next_cursor)")
    p.set_defaults(fn=lambda a: _run(_list(a)))

    p = sub.add_parser("show", help="one job with its screening questions and stages")
    p.add_argument("connection")
    p.add_argument("job", help="the ATS's job id, or remote:<id>")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=lambda a: _run(_show(a)))


def _run(coro: Any) -> None:
    from app.core.problems import Problem
    from app.log import configure

    configure("WARNING", stream=sys.stderr)  # the table alone on stdout
    try:
        code = asyncio.run(coro)
    except Problem as exc:
        if exc.status == 422 and exc.errors:  # a parameter: name the option at fault
            error = exc.errors[0]
            sys.exit(f"applyrelay: --{error.field.replace('_', '-')}: {error.message}")
        code_text = f" [{exc.code}]" if exc.code else ""
        sys.exit(f"applyrelay: {exc.title}{code_text}: {exc.detail}")
    if code:
        sys.exit(code)


class _Catalog:
    """The relay's `Catalog` on REDIS_URL and the configuration's connections, closed on exit."""

    async def __aenter__(self) -> Any:
        from app.catalog import Catalog
        from app.config import ConfigError
        from app.net.ats_http import ats_client
        from app.runtime import ConnectorPool, redis_client
        from app.settings import config_for_tools

        url = os.environ.get("REDIS_URL")
        if not url:
            sys.exit("applyrelay: REDIS_URL is not set (the Redis the relay uses; `applyrelay run` prints it)")
        try:
            config = config_for_tools(os.environ)
        except ConfigError as exc:
            sys.exit(f"applyrelay: configuration error: {exc}")
        self.redis = redis_client(url)
        self.http = ats_client()
        self.pool = ConnectorPool(config, self.http)
        return Catalog(self.redis, config, self.pool.get)

    async def __aexit__(self, *_: Any) -> None:
        await self.pool.close()
        await self.http.aclose()
        await self.redis.aclose()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table: columns as wide as their widest cell, two spaces apart."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _clip(text: str | None, width: int = NAME_WIDTH) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(cached: Any) -> str:
    stale = " (stale: the ATS did not answer)" if cached.stale else ""
    return f"fetched {int(cached.age)} s ago{stale}"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


async def _list(args: argparse.Namespace) -> int:
    import msgspec

    from app.core.catalog import JobQuery

    updated_after = None
    if args.updated_after:
        try:
            updated_after = dt.datetime.fromisoformat(args.updated_after)
        except ValueError:
            sys.exit("applyrelay: --updated-after: must be an ISO 8601 date-time")
    query = JobQuery(
        page_size=args.page_size,
        cursor=args.cursor,
        status=args.status,
        name_contains=args.name_contains,
        updated_after=updated_after,
    )
    async with _Catalog() as catalog:
        cached = await catalog.list_jobs(args.connection, query)
    page = cached.value
    if args.json:
        jobs = [_without_raw(msgspec.to_builtins(j)) for j in page.jobs]
        print(json.dumps({"data": jobs, "next_cursor": page.next_cursor, "fetched_at": cached.fetched_at}, indent=2))
        return 0
    rows = [
        [
            job.id,
            job.status,
            (job.visibility or "-"),
            _clip(job.name),
            _clip(job.location.raw or job.location.city if job.location else None, 24) or "-",
            _when(job.changed_at),
        ]
        for job in page.jobs
    ]
    _table(["ID", "STATUS", "VISIBILITY", "NAME", "LOCATION", "CHANGED (UTC)"], rows)
    print(f"-- {len(page.jobs)} jobs, {_age(cached)}")
    if page.next_cursor:
        print(f"-- more: --cursor {page.next_cursor}")
    return 0


def _without_raw(job: dict[str, Any]) -> dict[str, Any]:
    """As the API answers without ?include=remote_data: the ATS's raw object left out."""
    job.pop("remote_data", None)
    return job


def _answer_hint(question: Any) -> str:
    """What an answer to the question is, in a few words (ids for selects: what the API takes)."""
    f = question.format
    if f.options:
        return ", ".join(f"{o.id}={_clip(o.name, 20)}" for o in f.options)
    bounds = []
    if f.min is not None or f.max is not None:
        bounds.append(f"{'' if f.min is None else f'{f.min:g}'}..{'' if f.max is None else f'{f.max:g}'}")
    if f.max_length:
        bounds.append(f"≤{f.max_length} chars")
    if f.accepted_mime_types:
        bounds.append(",".join(f.accepted_mime_types))
    if f.max_file_size_bytes:
        bounds.append(f"≤{f.max_file_size_bytes} bytes")
    return " ".join(bounds) or "-"


async def _show(args: argparse.Namespace) -> int:
    import msgspec

    from app.catalog import parse_job_id

    async with _Catalog() as catalog:
        cached = await catalog.job(args.connection, parse_job_id(args.job))
    job = cached.value
    if args.json:
        body = _without_raw(msgspec.to_builtins(job))
        print(json.dumps({"data": body, "fetched_at": cached.fetched_at}, indent=2))
        return 0
    print(f"{job.id}  {job.name}")
    print(f"  status {job.status}; visibility {job.visibility or '-'}; changed {_when(job.changed_at)}; {_age(cached)}")
    if job.post_url:
        print(f"  {job.post_url}")
    print()
    rows = [
        [
            q.id,
            q.format.type,
            "yes" if q.required else "no",
            _clip(q.title),
            _answer_hint(q),
            f"{q.precondition_question_id} in {q.precondition_options}" if q.precondition_question_id else "",
        ]
        for q in job.screening_questions
    ]
    print(f"Screening questions ({len(rows)})")
    _table(["ID", "TYPE", "REQUIRED", "TITLE", "ANSWER", "ONLY WHEN"], rows)
    print()
    print(f"Stages ({len(job.stages)})")
    _table(["ID", "NAME"], [[s.id, _clip(s.name)] for s in job.stages])
    return 0
