"""A small local web demo: upload an image (or a webcam snapshot) and see each face's expression and affect.

Routes (stdlib ``http.server``, one thread per request, model calls serialised by the Predictor):
- ``GET /``: the page (``static/index.html``); ``GET /static/<file>``: its assets.
- ``GET /info``: JSON about the model (backbone, expressions, input size, backend).
- ``POST /predict[?detect=0]``: body ``multipart/form-data`` (field ``image`` or the first file) or the raw
  image bytes. Returns ``{"faces": [FacePrediction dicts], "width", "height"}``; 415 for non-images, 413 over
  the size limit, 400 for a malformed request.
Binds 127.0.0.1 by default: the demo has no authentication.
"""
from __future__ import annotations

import io
import json
import mimetypes
import sys
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from affectkit.inference.predictor import Predictor

STATIC = Path(__file__).with_name("static")
# Magic numbers of the formats Pillow decodes that a browser may send.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
MAX_PIXELS = 50_000_000
_MAX_DISCARD = 256 * 1024 * 1024


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def decode_upload(data: bytes) -> np.ndarray:
    """Uploaded bytes → HxWx3 uint8 RGB; _HTTPError 415 when they are not a decodable image."""
    if not data:
        raise _HTTPError(400, "empty upload: send an image file")
    if not _looks_like_image(data):
        raise _HTTPError(415, "unsupported media: the upload is not a JPEG, PNG, GIF, BMP, TIFF or WebP image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise _HTTPError(413, f"image too large: {im.width}x{im.height} pixels (limit {MAX_PIXELS})")
            from PIL import ImageOps

            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise _HTTPError(415, f"unsupported media: the image could not be decoded ({e})") from e


def _multipart_file(content_type: str, body: bytes) -> bytes:
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise _HTTPError(400, "malformed multipart body")
    parts = list(msg.iter_parts())
    chosen = next((p for p in parts if p.get_param("name", header="content-disposition") == "image"), None)
    chosen = chosen or next((p for p in parts if p.get_filename()), None)
    if chosen is None:
        raise _HTTPError(400, "multipart body has no file field (expected a field named 'image')")
    return chosen.get_payload(decode=True) or b""


def make_handler(predictor: Predictor, max_upload_bytes: int):
    class Handler(BaseHTTPRequestHandler):
        server_version = "affectkit"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quieter than the default: one line to stderr
            sys.stderr.write("serve: " + (fmt % args) + "\n")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": message, "status": status})

        def do_GET(self):
            path = urlparse(self.path).path
            if path in ("/", "/index.html"):
                return self._static("index.html")
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):])
            if path == "/info":
                return self._json(200, {**predictor.info(), "max_upload_bytes": max_upload_bytes})
            self._error(404, f"not found: {path}")

        def _static(self, name: str) -> None:
            target = (STATIC / name).resolve()
            if STATIC.resolve() not in target.parents or not target.is_file():
                return self._error(404, f"not found: {name}")
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            self._send(200, target.read_bytes(), ctype)

        def do_POST(self):
            url = urlparse(self.path)
            if url.path != "/predict":
                self.close_connection = True
                return self._error(404, f"not found: {url.path}")
            try:
                body = self._read_body()
                ctype = self.headers.get("Content-Type", "")
                data = _multipart_file(ctype, body) if ctype.lower().startswith("multipart/") else body
                if len(data) > max_upload_bytes:
                    raise _HTTPError(413, f"upload too large: {len(data)} bytes (limit {max_upload_bytes})")
                rgb = decode_upload(data)
                detect = parse_qs(url.query).get("detect", ["1"])[0].lower() not in ("0", "false", "no")
                preds = predictor.predict(rgb, detect=detect)
            except _HTTPError as e:
                return self._error(e.status, e.message)
            except Exception as e:  # a model failure must not kill the server thread silently
                self.log_message("predict failed: %r", e)
                return self._error(500, f"prediction failed: {type(e).__name__}: {e}")
            self._json(200, {"faces": [p.to_dict() for p in preds], "width": int(rgb.shape[1]),
                             "height": int(rgb.shape[0]), "detect": detect})

        def _read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                raise _HTTPError(411, "Content-Length required")
            try:
                n = int(length)
            except ValueError:
                self.close_connection = True
                raise _HTTPError(400, "bad Content-Length") from None
            # Multipart framing adds a little; anything well past the limit is refused unread.
            if n > max_upload_bytes + 64 * 1024:
                self.close_connection = True
                self._discard(n)
                raise _HTTPError(413, f"upload too large: {n} bytes (limit {max_upload_bytes})")
            return self.rfile.read(n)

        def _discard(self, n: int) -> None:
            # Reading (a bounded amount of) the refused body lets the client see the 413 instead of a reset.
            left = min(n, _MAX_DISCARD)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)

    return Handler


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000,
                max_upload_mb: float = 10) -> ThreadingHTTPServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (see ``server.server_address``)."""
    httpd = ThreadingHTTPServer((host, port), make_handler(predictor, int(max_upload_mb * 1024 * 1024)))
    httpd.daemon_threads = True
    return httpd


def serve(ckpt: str | Path | Predictor, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 10,
          backend: str | None = None, device: str = "cpu", threshold: float = 0.9) -> None:
    """Serve the demo for a ``.ckpt``/``.onnx`` model (or a Predictor) until interrupted (Ctrl-C)."""
    predictor = ckpt if isinstance(ckpt, Predictor) else Predictor.load(ckpt, backend=backend, device=device,
                                                                          min_confidence=threshold)
    httpd = make_server(predictor, host, port, max_upload_mb)
    h, p = httpd.server_address[:2]
    print(f"affectkit demo on http://{h}:{p}/ (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the demo has no authentication; anyone who can reach this address can use it",
              file=sys.stderr)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def serve_in_thread(predictor: Predictor, host: str = "127.0.0.1", port: int = 0,
                    max_upload_mb: float = 10) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start a server in a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    httpd = make_server(predictor, host, port, max_upload_mb)
    t = threading.Thread(target=httpd.serve_forever, name="affectkit-serve", daemon=True)
    t.start()
    return httpd, t
