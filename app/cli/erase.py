"""`applyrelay erase --email ...`: erasure on request from a terminal (same as POST /v1/erasure)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from app.core.model import EMAIL_PATTERN
from app.privacy import audit


async def erase(settings: Any, email: str, actor: str) -> dict[str, Any]:
    from app.privacy.erasure import Eraser
    from app.runtime import Runtime

    runtime = Runtime(settings)
    try:
        report = await Eraser(runtime.store, runtime.pseudonyms, lease_wait_s=settings.lease_s + 1).erase(email)
        await audit.record(
            runtime.redis,
            actor,
            "erase",
            f"subject:{report.subject}",
            {"deliveries": len(report.deliveries), "stopped": sum(d.stopped for d in report.deliveries)},
        )
        return report.to_json()
    finally:
        await runtime.close()


def cmd_erase(args: argparse.Namespace) -> None:
    import re

    from app.cli import _settings
    from app.cli.keys import operator
    from app.log import configure

    configure(stream=sys.stderr)  # stdout carries the report alone

    if not re.match(EMAIL_PATTERN, args.email.strip()):
        sys.exit("applyrelay: --email: not a valid email address")
    result = asyncio.run(erase(_settings(), args.email.strip(), operator()))
    print(json.dumps(result, indent=2))
    records = sum(len(r["records"]) for r in result["erase_in_ats"])
    print(
        f"applyrelay: erased {result['deliveries_erased']} deliveries; "
        f"{records} records to erase in the ATSs (erase_in_ats above)",
        file=sys.stderr,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("erase", help="erase a candidate's stored data (GDPR erasure request)")
    p.add_argument("--email", required=True, help="the candidate's email address")
    p.set_defaults(fn=cmd_erase)
