"""The event loop of the web and worker processes: uvloop where it is installed.

uvloop (libuv) runs the same asyncio code with a much cheaper loop and transports; with
httptools as uvicorn's HTTP parser (picked by uvicorn itself when installed) it doubled intake
throughput and cut the worker's CPU per delivery (bench/RESULTS.md, P1 and P2). Both are
uvicorn's own "standard" extras. Without uvloop (Windows) the standard loop is used, unchanged.
"""

from __future__ import annotations

import asyncio


def use_uvloop() -> bool:
    """Make new event loops uvloop's; False (and nothing changed) where uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
