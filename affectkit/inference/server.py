"""A small local web demo: upload an image (or a webcam snapshot) and see each face's expression and affect.

FastAPI on uvicorn: HTTP framing, keep-alive and connection limits are theirs. Routes:

- ``GET /``: the page (``static/index.html``); ``GET /static/<file>``: its assets.
- ``GET /info``: JSON about the model (backbone, expressions, trained heads, preprocessing, backend, and a
  ``note`` when the model lacks heads, e.g. "trained without valence and arousal labels").
- ``GET /health``: ``{"status": "ok", "busy": n}`` while the server can take predictions.
- ``POST /predict[?detect=0]``: body ``multipart/form-data`` (field ``image`` or the first file) or the raw
  image bytes. Returns ``{"faces": [FacePrediction dicts], "width", "height", "detect", "heads"}``
  (``valence``/``arousal`` null for a model without those heads).

Errors are JSON ``{"error": message, "status": code}``: 400 malformed request, 404 unknown path, 408 a client
that stops sending its body for ``read_timeout`` seconds, 413 a body over the limit (counted while it streams
in, whatever Content-Length says), 415 not an image, 503 when ``max_concurrent`` predictions are already
running or queued. Binds 127.0.0.1 by default: the demo has no authentication.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from affectkit.inference.predictor import Predictor

STATIC = Path(__file__).with_name("static")
# Magic numbers of the formats Pillow decodes that a browser may send.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
MAX_PIXELS = 50_000_000
MULTIPART_OVERHEAD = 64 * 1024  # form framing on top of the file itself


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def decode_upload(data: bytes) -> np.ndarray:
    """Uploaded bytes → HxWx3 uint8 RGB by the model contract's decoder (alpha on black, EXIF applied, ...);
    _HTTPError 415 when they are not a decodable image, 413 over the pixel limit."""
    import io

    from affectkit.data.images import ImageError, load_image

    if not data:
        raise _HTTPError(400, "empty upload: send an image file")
    if not _looks_like_image(data):
        raise _HTTPError(415, "unsupported media: the upload is not a JPEG, PNG, GIF, BMP, TIFF or WebP image")
    try:
        return load_image(io.BytesIO(data), max_pixels=MAX_PIXELS, name="upload")
    except ImageError as e:
        if e.kind == "decompression bomb":
            raise _HTTPError(413, f"image too large: {e.reason} (limit {MAX_PIXELS} pixels)") from e
        raise _HTTPError(415, f"unsupported media: the image could not be decoded ({e.reason})") from e


class _BodyLimit:
    """ASGI middleware: counts request-body bytes as they arrive and gives up on a body over ``limit`` (413)
    or a client that sends nothing for ``read_timeout`` seconds (408), before any of it is parsed; adds the
    no-sniff and no-store headers to every response."""

    def __init__(self, app, limit: int, read_timeout: float):
        self.app, self.limit, self.read_timeout = app, limit, read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _send_error(send, 413, f"upload too large: {int(declared)} bytes (limit {self.limit})")
        seen = 0

        async def limited():
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except asyncio.TimeoutError:
                raise _HTTPError(408, f"request body not received within {self.read_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _HTTPError(413, f"upload too large: over {self.limit} bytes")
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-content-type-options", b"nosniff")]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _HTTPError as e:
            if not started:
                await _send_error(send, e.status, e.message)


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers={"Cache-Control": "no-store"})


def _app_with_pages() -> FastAPI:
    """The app with its error handlers (JSON errors) and its static routes: the page and ``/static/...``."""
    app = FastAPI(title="affectkit demo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return _error(exc.status_code, f"not found: {request.url.path}" if exc.status_code == 404 else str(exc.detail))

    @app.exception_handler(_HTTPError)
    async def our_error(request, exc):
        return _error(exc.status, exc.message)

    @app.get("/")
    @app.get("/index.html")
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/static/{name:path}")
    async def static(name: str):
        target = (STATIC / name).resolve()
        if STATIC.resolve() not in target.parents or not target.is_file():
            return _error(404, f"not found: {name}")
        return FileResponse(target)

    return app


def make_app(predictor: Predictor, max_upload_mb: float = 10, max_concurrent: int = 4, read_timeout: float = 30.0):
    """The ASGI app: the page, ``/info``, ``/health`` and ``POST /predict`` (see the module docstring)."""
    max_upload = int(max_upload_mb * 1024 * 1024)
    app = _app_with_pages()
    slots = threading.BoundedSemaphore(max_concurrent)
    busy = {"n": 0}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {**predictor.info(), "max_upload_bytes": max_upload, "max_concurrent": max_concurrent}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "busy": busy["n"], "max_concurrent": max_concurrent}

    @app.post("/predict")
    async def predict(request: Request):
        detect = request.query_params.get("detect", "1").lower() not in ("0", "false", "no")
        ctype = request.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/"):
            data = await _form_file(request)
        else:
            data = await request.body()
        if len(data) > max_upload:
            raise _HTTPError(413, f"upload too large: {len(data)} bytes (limit {max_upload})")
        if not slots.acquire(blocking=False):
            return _error(503, f"busy: {max_concurrent} predictions already running; try again shortly")
        busy["n"] += 1
        try:
            rgb = decode_upload(data)
            preds = await run_in_threadpool(predictor.predict, rgb, detect)
        except _HTTPError:
            raise
        except Exception as e:  # a model failure is reported, never a dropped connection
            print(f"serve: predict failed: {e!r}", file=sys.stderr)
            return _error(500, f"prediction failed: {type(e).__name__}: {e}")
        finally:
            busy["n"] -= 1
            slots.release()
        return {
            "faces": [p.to_dict() for p in preds],
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "detect": detect,
            "heads": predictor.heads,
        }

    return _BodyLimit(app, max_upload + MULTIPART_OVERHEAD, read_timeout)


async def _form_file(request: Request) -> bytes:
    try:
        form = await request.form(max_files=4, max_fields=16)
    except _HTTPError:
        raise
    except Exception as e:  # python-multipart's parse errors
        raise _HTTPError(400, f"malformed multipart body ({e})") from e
    files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
    chosen = next((v for k, v in files if k == "image"), None) or (files[0][1] if files else None)
    if chosen is None:
        raise _HTTPError(400, "multipart body has no file field (expected a field named 'image')")
    return await chosen.read()


class DemoServer:
    """A uvicorn server for the demo app, bound at construction (``port=0`` picks a free port).

    ``serve_forever()`` runs it in the calling thread until ``shutdown()``; ``server_address`` is (host, port).
    """

    def __init__(
        self,
        predictor: Predictor,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_upload_mb: float = 10,
        max_concurrent: int = 4,
        read_timeout: float = 30.0,
        keep_alive: float = 5.0,
    ):
        import socket

        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.server_address = self.socket.getsockname()[:2]
        app = make_app(predictor, max_upload_mb, max_concurrent, read_timeout)
        # limit_concurrency: connections + tasks beyond it get uvicorn's own 503; keep-alive idles are closed
        config = uvicorn.Config(
            app,
            log_level="warning",
            timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # uvicorn takes seconds as float too
            limit_concurrency=max(64, 8 * max_concurrent),
            h11_max_incomplete_event_size=64 * 1024,
        )
        self.server = uvicorn.Server(config)
        self._serving, self._done = threading.Event(), threading.Event()

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self._done.set()

    def shutdown(self) -> None:
        """Stop serving and wait until ``serve_forever`` has returned (like ``socketserver``)."""
        self.server.should_exit = True
        if self._serving.is_set():
            self._done.wait(30)

    def server_close(self) -> None:
        self.socket.close()


def make_server(
    predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 10, **kwargs
) -> DemoServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (see ``server.server_address``)."""
    return DemoServer(predictor, host, port, max_upload_mb, **kwargs)


def serve(
    ckpt: str | Path | Predictor | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float = 10,
    backend: str | None = None,
    device: str = "cpu",
    threshold: float = 0.9,
    max_concurrent: int = 4,
    read_timeout: float = 30.0,
) -> None:
    """Serve the demo for a ``.ckpt``/``.onnx`` model, a run folder, a shipped model's name (None: the default) or a
    Predictor, until interrupted (Ctrl-C)."""
    predictor = (
        ckpt
        if isinstance(ckpt, Predictor)
        else Predictor.load(ckpt, backend=backend, device=device, min_confidence=threshold)
    )
    httpd = make_server(predictor, host, port, max_upload_mb, max_concurrent=max_concurrent, read_timeout=read_timeout)
    h, p = httpd.server_address[:2]
    info = predictor.info()
    named = f"{info['model']}: {info['summary']}; " if info.get("model") else ""
    print(
        f"model: {named}{info['backbone'] or 'custom'} ({info['backend']}), {info['input_size']} px input", flush=True
    )
    if info["note"]:
        print(f"note: {info['note']}", flush=True)
    print(f"affectkit demo on http://{h}:{p}/ (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the demo has no authentication; anyone who can reach this address can use it", file=sys.stderr)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def serve_in_thread(
    predictor: Predictor, host: str = "127.0.0.1", port: int = 0, max_upload_mb: float = 10, **kwargs
) -> tuple[DemoServer, threading.Thread]:
    """Start a server in a daemon thread (tests, notebooks); stop with ``server.shutdown()``."""
    httpd = make_server(predictor, host, port, max_upload_mb, **kwargs)
    t = threading.Thread(target=httpd.serve_forever, name="affectkit-serve", daemon=True)
    t.start()
    end = time.time() + 30
    while not httpd.server.started and time.time() < end:
        time.sleep(0.01)
    return httpd, t
