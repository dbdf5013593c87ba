"""A small real SMS gateway for the tests: an HTTP server on a free loopback port.

It records every request (headers and JSON body), delivers each ``Idempotency-Key`` once (a
repeat is answered 200 with the first id and counted as a duplicate), and fails on command:
``fail_next(n, status)`` answers the next n requests with ``status`` without delivering.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Gateway:
    requests: list[dict[str, Any]] = field(default_factory=list)
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.failures.extend([status] * n)

    def handle(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            if self.failures:
                return self.failures.pop(0), {"error": "failing on command"}
            key = headers.get("idempotency-key", "")
            if key in self.delivered:
                self.duplicates += 1
                return 200, {"id": self.delivered[key]["id"]}
            record = {**body, "id": f"G{len(self.delivered) + 1}"}
            self.delivered[key] = record
            return 200, {"id": record["id"]}


def start_gateway() -> tuple[Gateway, ThreadingHTTPServer]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(size) or b"{}")
            status, answer = gateway.handle({k.lower(): v for k, v in self.headers.items()}, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/send"
    threading.Thread(target=server.serve_forever, name="sms-gateway", daemon=True).start()
    return gateway, server
