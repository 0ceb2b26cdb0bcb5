"""A partner API stub on loopback for edge tests: answers from a function, records every request it gets.

Why not the sandbox: these tests need answers the sandbox never gives (a stored payload file, a link to
another origin, a redirect) and a second server that proves credentials never reached it.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CREDENTIAL_HEADERS = ("authorization", "x-shopify-access-token")


@dataclass(frozen=True)
class Seen:
    path: str  # path and query as requested
    headers: dict[str, str]  # lower-cased names

    @property
    def carried_credentials(self) -> bool:
        return any(name in self.headers for name in CREDENTIAL_HEADERS)


# (path with query, request headers, this server's origin) -> (status, headers, body)
Handler = Callable[[str, dict[str, str], str], tuple[int, dict[str, str], bytes]]


class LoopbackApi:
    """`with LoopbackApi(handler) as api:` serves on 127.0.0.1 (https when given a cert and key); `api.seen`.

    `host` may be any loopback address (127.0.0.2 is another host on the same port); port 0 picks a free one.
    """

    def __init__(self, handler: Handler, tls: tuple[Path, Path] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.seen: list[Seen] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.seen.append(Seen(self.path, headers))
                status, extra, body = handler(self.path, headers, owner.url)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.port: int = self._server.server_address[1]
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (subjectAltName IP) and its key; trust it with REQUESTS_CA_BUNDLE."""
    cert, key = folder / "loopback-cert.pem", folder / "loopback-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key
