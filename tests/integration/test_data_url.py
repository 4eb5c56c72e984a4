"""Attachments given as a `data_url` are fetched by the worker, through the SSRF guard: an allowed host
is fetched and delivered, a name that resolves to an internal address is refused at fetch time."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from tests.support.builders import PDF_BYTES, application, connection_table
from tests.support.emulators import Emulator


class _FileServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/pdf")
        self.end_headers()
        self.wfile.write(PDF_BYTES)

    def log_message(self, *_: Any) -> None:
        pass


async def test_data_url_is_fetched_by_the_worker(make_relay: Any, factorial: Emulator) -> None:
    server = HTTPServer(("127.0.0.1", 0), _FileServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        relay = make_relay(
            {
                "acme": connection_table(
                    "factorial", factorial.url, fetch_allow_hosts=[f"{host}:{port}"], fetch_allow_http=True
                )
            }
        )
        await relay.start_worker()
        body = application(attachments=[{"name": "cv.pdf", "type": "CV", "data_url": f"http://{host}:{port}/cv"}])
        delivery_id = (await relay.post(body)).json()["id"]
        await relay.wait_for(delivery_id, "delivered")
        [file] = factorial.records()["files"]
        assert file["byte_size"] == len(PDF_BYTES)
    finally:
        server.shutdown()


async def test_data_url_to_an_internal_address_is_refused_by_the_worker(make_relay: Any, factorial: Emulator) -> None:
    """A name allowed at intake that resolves to loopback is refused when fetched."""
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    body = application(attachments=[{"name": "cv.pdf", "type": "CV", "data_url": "https://localtest.me/cv"}])
    response = await relay.post(body)
    assert response.status_code == 202
    record = await relay.wait_for(response.json()["id"], "failed", "retry_scheduled")
    assert record["checkpoints"].get("application")  # the application itself went through
    assert record["last_error"]["step"].startswith("attachment:")
    assert socket.AF_INET  # keeps the import honest on systems without IPv6
