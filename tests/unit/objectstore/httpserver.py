"""A small real HTTP(S) file server for the ``http`` driver's tests.

Serves the files of a directory, with single ``Range`` requests and HEAD,
plus a few misbehaving paths::

    /files/NAME              the file, with Range support
    /norange/NAME            ignores Range (always 200 and the whole file)
    /nohead/NAME             answers HEAD with 405
    /redirect/N/NAME         N redirects, then /files/NAME
    /loop                    redirects to itself
    /slow/NAME               sends the headers, then nothing for 5 s
    /short/NAME              announces the whole file, sends half of it
    /error                   500
    /tohttp/NAME             redirect to the plain server (see ``plain_url``)
    /auth/NAME               401 unless Basic user:secret

It runs in a thread of the test process (``ThreadingHTTPServer``).
"""

from __future__ import annotations

import base64
import http.server
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d*)\Z")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _file(self, name: str) -> str | None:
        path = os.path.join(self.server.root, name)
        if "/" in name or name in ("", ".", "..") or not os.path.isfile(path):
            return None
        return path

    def _plain(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        parts = self.path.split("?", 1)[0].split("/")[1:]
        kind = parts[0] if parts else ""
        if kind == "loop":
            return self._plain(302, Location="/loop")
        if kind == "error":
            return self._plain(500, b"boom")
        if kind == "redirect" and len(parts) == 3:
            n = int(parts[1])
            if n <= 1:
                target = f"/files/{parts[2]}"
            else:
                target = f"/redirect/{n - 1}/{parts[2]}"
            return self._plain(302, Location=target)
        if kind == "tohttp" and len(parts) == 2:
            target = f"{self.server.plain_url}/files/{parts[1]}"
            return self._plain(302, Location=target)
        if len(parts) != 2:
            return self._plain(404)
        path = self._file(parts[1])
        if path is None:
            return self._plain(404, b"not found")
        if kind == "auth":
            expected = "Basic " + base64.b64encode(b"user:secret").decode()
            if self.headers.get("Authorization") != expected:
                return self._plain(401)
            kind = "files"
        if kind == "nohead" and self.command == "HEAD":
            return self._plain(405)
        with open(path, "rb") as f:
            data = f.read()
        size = len(data)
        if kind == "slow":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            time.sleep(5)
            return None
        if kind == "short":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data[: size // 2])
            self.close_connection = True
            return None
        if kind not in ("files", "norange", "nohead"):
            return self._plain(404)
        wanted = self.headers.get("Range")
        if wanted and kind != "norange":
            match = _RANGE.match(wanted)
            if not match:
                return self._plain(400)
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
            if start >= size:
                return self._plain(416, Content_Range=f"bytes */{size}")
            end = min(end, size - 1)
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return None
        return self._plain(200, data)


class FileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.plain_url = ""
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that close early (on purpose) are not errors here

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def make_certificate(directory: str) -> tuple[str, str] | None:
    """Create a self-signed certificate for 127.0.0.1; None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
