"""`applyrelay` — run the service, its parts, and the ATS emulators."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

from app.config import ConfigError
from app.settings import VAR_DIR

if TYPE_CHECKING:
    from app.settings import Settings  # imported where a command needs it: the CLI starts fast


def _settings(redis_url: str | None = None) -> Settings:
    from app.settings import load_settings

    try:
        return load_settings(redis_url)
    except ConfigError as exc:
        sys.exit(f"applyrelay: configuration error: {exc}")


def cmd_web(args: argparse.Namespace) -> None:
    import uvicorn

    from app.log import configure
    from app.runtime import Runtime
    from app.web import server
    from app.web.app import create_app

    configure()
    settings = _settings()
    # uvloop ("auto", app/net/event_loop.py says why) and httptools with the relay's client
    # limits: header and body read timeouts, connections per client (app/web/server.py).
    config = server.config(
        create_app(Runtime(settings)),
        server.limits_of(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        loop="auto",
    )
    uvicorn.Server(config).run()


def cmd_worker(_: argparse.Namespace) -> None:
    from app.log import configure
    from app.net.event_loop import use_uvloop
    from app.worker import create_worker

    configure()
    settings = _settings()
    use_uvloop()  # before arq's Worker creates its loop
    create_worker(settings).run()


def cmd_run(args: argparse.Namespace) -> None:
    """Web + one worker, with an embedded Redis (AOF under ./var) unless REDIS_URL is set."""
    from app.redis.embedded import EmbeddedRedis

    embedded = None
    env = dict(os.environ)
    if not env.get("REDIS_URL"):
        embedded = EmbeddedRedis(VAR_DIR / "redis")
        env["REDIS_URL"] = embedded.url  # its port and password are chosen; it is not started yet
    settings = _settings(env["REDIS_URL"])  # a bad config exits here, before anything starts
    if embedded:
        embedded.start()
        print(f"applyrelay: embedded Redis on 127.0.0.1:{embedded.port} (AOF in {embedded.data_dir})", flush=True)
    os.environ["REDIS_URL"] = env["REDIS_URL"]
    worker = _Supervised([sys.executable, "-m", "app.cli", "worker"], env)
    print(
        f"applyrelay: web on http://{args.host}:{args.port}  (config: {settings.config.source}; "
        f"connections: {', '.join(settings.config.connections)})",
        flush=True,
    )
    if "admin token" in settings.dev_generated:
        print("applyrelay: development admin token in var/admin-token", flush=True)
    if "data key" in settings.dev_generated:
        print(
            "applyrelay: development data key in var/data-key (candidate data is encrypted with it; "
            "production needs APPLYRELAY_DATA_KEY: `applyrelay keys new`)",
            flush=True,
        )
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default handler
    # that would end this process before the worker and the embedded Redis are stopped.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        cmd_web(args)
    finally:
        worker.stop(timeout=settings.job_timeout_s + 5)
        if embedded:
            embedded.stop()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class _Supervised:
    """A child process restarted (after a pause) whenever it exits on its own."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.stopping = threading.Event()
        self.process = subprocess.Popen(argv, env=env)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stopping.is_set():
            code = self.process.wait()
            if self.stopping.is_set():
                return
            print(f"applyrelay: worker exited ({code}); restarting", file=sys.stderr, flush=True)
            self.stopping.wait(1.0)
            if not self.stopping.is_set():
                self.process = subprocess.Popen(self.argv, env=self.env)

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def cmd_sandbox(args: argparse.Namespace) -> None:
    from connectors.sandbox import EMULATORS, create_emulator
    from connectors.sandbox.common import serve

    if args.name not in EMULATORS:
        sys.exit(f"applyrelay: unknown emulator {args.name!r}; known: {', '.join(EMULATORS)}")
    print(f"applyrelay: {args.name} emulator on http://{args.host}:{args.port} (API key {args.api_key!r})", flush=True)
    serve(create_emulator(args.name, api_key=args.api_key), host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="applyrelay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_text in (
        ("run", cmd_run, "web + worker (+ embedded Redis without REDIS_URL)"),
        ("web", cmd_web, "the HTTP service only"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
        p.set_defaults(fn=fn)
    sub.add_parser("worker", help="one delivery worker").set_defaults(fn=cmd_worker)
    p = sub.add_parser(
        "sandbox", help="an emulator: an ATS (factorial, flatchr, otys, laura) or a board (hellowork, indeed)"
    )
    p.add_argument("name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8091)
    p.add_argument("--api-key", default="sandbox")
    p.set_defaults(fn=cmd_sandbox)
    from app.cli import blobs, deliveries, erase, jobs, keys  # each feature's commands: `register(subparsers)`

    for module in (deliveries, keys, erase, jobs, blobs):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
