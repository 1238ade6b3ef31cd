"""Web demo: JSON API over real HTTP on an ephemeral port, and the page in headless Chromium (if installed)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affectkit.inference.predictor import Predictor
from affectkit.inference.server import make_server, serve_in_thread
from affectkit.labels import EXPRESSIONS

from clitools import serve_cli
from test_inference import astronaut, face_photo, make_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def server():
    predictor = Predictor.from_model(make_model(), face_margin=0.2)
    httpd, thread = serve_in_thread(predictor, port=0, max_upload_mb=0.5)
    host, port = httpd.server_address[:2]
    yield f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _png(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def _post(url: str, data: bytes, ctype: str) -> tuple[int, dict]:
    """POST and read the answer, also when the server answers (413) and closes before the body is all sent: a
    client then meets a broken pipe mid-upload, but the answer is already on the socket."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.putrequest("POST", u.path + (f"?{u.query}" if u.query else ""))
        conn.putheader("Content-Type", ctype)
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(data)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _multipart(field: str, filename: str, payload: bytes, ctype: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_page_and_static_files(server):
    with urllib.request.urlopen(server + "/", timeout=10) as r:
        html = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/html")
    assert 'id="circumplex"' in html and 'id="file"' in html and "/static/app.js" in html
    with urllib.request.urlopen(server + "/static/app.js", timeout=10) as r:
        js = r.read().decode()
    assert "getUserMedia" in js and "/predict" in js
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server + "/static/../predictor.py", timeout=10)
    assert e.value.code == 404
    with urllib.request.urlopen(server + "/info", timeout=10) as r:
        info = json.loads(r.read())
    assert info["expressions"] == list(EXPRESSIONS) and info["backend"] == "torch"


def test_predict_raw_and_multipart(server):
    photo = face_photo((600, 420), at=(200, 100))
    status, data = _post(server + "/predict", _png(photo), "image/png")
    assert status == 200, data
    assert (data["width"], data["height"]) == (600, 420)
    assert len(data["faces"]) == 1
    f = data["faces"][0]
    assert f["expression"] in EXPRESSIONS and set(f["probabilities"]) == set(EXPRESSIONS)
    assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert 200 <= f["box"][0] < f["box"][2] <= 340 and -1 <= f["valence"] <= 1
    body, ctype = _multipart("image", "photo.jpg", _png(photo, "JPEG"), "image/jpeg")
    status, data2 = _post(server + "/predict", body, ctype)
    assert status == 200 and len(data2["faces"]) == 1
    assert data2["faces"][0]["box"] == pytest.approx(f["box"], abs=6)  # JPEG shifts the box a little


def test_predict_without_detection_and_no_face(server):
    status, data = _post(server + "/predict?detect=0", _png(astronaut()[:100, :150]), "image/png")
    assert status == 200 and data["detect"] is False
    assert [face["box"] for face in data["faces"]] == [[0.0, 0.0, 150.0, 100.0]]
    status, data = _post(server + "/predict", _png(np.full((90, 90, 3), 30, np.uint8)), "image/png")
    assert status == 200 and data["faces"] == []


def test_rejects_non_images_and_large_uploads(server):
    status, data = _post(server + "/predict", b"hello, this is text", "text/plain")
    assert status == 415 and "not a JPEG, PNG" in data["error"]
    status, data = _post(server + "/predict", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "image/png")
    assert status == 415 and "could not be decoded" in data["error"]
    body, ctype = _multipart("image", "notes.txt", b"plain text", "text/plain")
    assert _post(server + "/predict", body, ctype)[0] == 415
    big = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)  # ~1.4 MB PNG > 0.5 MB
    status, data = _post(server + "/predict", _png(big), "image/png")
    assert status == 413 and "too large" in data["error"]
    status, data = _post(server + "/predict", b"", "image/png")
    assert status == 400
    status, data = _post(server + "/nothing", b"x", "image/png")
    assert status == 404


def _raw(server: str, request: bytes, read_timeout: float = 30.0) -> bytes:
    """Send bytes as they are on one socket; return what the server answers before it closes or goes quiet."""
    import socket

    host, port = server.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as s:
        s.sendall(request)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b'"status"' in b"".join(chunks):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_health(server):
    with urllib.request.urlopen(server + "/health", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"


def test_bad_and_streamed_oversized_bodies_are_refused_unread(server):
    # a negative Content-Length is a framing error: answered at once, the body is never read into memory
    answer = _raw(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + b"x" * 100_000)
    assert answer.startswith(b"HTTP/1.1 400")
    # a chunked upload (no Content-Length) over the limit: counted while it streams, refused with 413
    chunk = b"\x89PNG\r\n\x1a\n" + b"\x00" * 65_528
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
    answer = _raw(
        server,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
    )
    assert answer.startswith(b"HTTP/1.1 413") and b"too large" in answer


def test_slow_client_times_out(tmp_path):
    httpd, thread = serve_in_thread(Predictor.from_model(make_model()), port=0, read_timeout=1.0)
    try:
        host, port = httpd.server_address[:2]
        t0 = time.time()  # declares 1000 bytes, sends 10, then nothing
        answer = _raw(
            f"http://{host}:{port}",
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789",
            read_timeout=20,
        )
        assert answer.startswith(b"HTTP/1.1 408") and time.time() - t0 < 15
    finally:
        httpd.shutdown()
        thread.join(10)
        httpd.server_close()


def test_concurrent_predictions_beyond_the_bound_get_503():
    import concurrent.futures

    gate = threading.Event()

    class Slow(Predictor):
        def predict(self, image, detect=True, color="RGB"):
            gate.wait(20)
            return super().predict(image, detect, color)

    m = make_model()
    slow = Slow(Predictor.from_model(m).backend, Predictor.from_model(m).contract)
    httpd, thread = serve_in_thread(slow, port=0, max_concurrent=2)
    try:
        host, port = httpd.server_address[:2]
        url = f"http://{host}:{port}/predict?detect=0"
        png = _png(astronaut()[:64, :64])
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            futures = [ex.submit(_post, url, png, "image/png") for _ in range(5)]
            time.sleep(3)
            gate.set()
            codes = sorted(f.result()[0] for f in futures)
        assert codes.count(200) == 2 and codes.count(503) == 3, codes
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10) as r:
            assert json.loads(r.read())["busy"] == 0
    finally:
        httpd.shutdown()
        thread.join(10)
        httpd.server_close()


def test_binds_loopback_by_default():
    httpd = make_server(Predictor.from_model(make_model()), port=0)
    try:
        assert httpd.server_address[0] == "127.0.0.1"
    finally:
        httpd.server_close()


# ---- the page in a real browser ------------------------------------------------------------------
class _CDP:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, chromium: str, user_data_dir: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        # Move the child's ends out of the way so dup2 onto 3 and 4 cannot clobber one another.
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 100), fcntl.fcntl(out_w, fcntl.F_DUPFD, 100)

        def child():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            f"--user-data-dir={user_data_dir}",
            "--window-size=1200,900",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [chromium, *flags], preexec_fn=child, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for fd in (cmd_r, out_w, hi_r, hi_w):
            os.close(fd)
        self._id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._out_r, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        with self._lock:
            self._id += 1
            mid = self._id
            q = self._replies[mid] = queue.Queue()
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        reply = q.get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self):
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self._cmd_w)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium) for the browser test")
@pytest.mark.parametrize("with_va", [True, False], ids=["multitask", "expression-only"])
def test_page_in_headless_chromium(tmp_path, with_va):
    """The page as a user opens it, on a server started with the `affectkit serve` command."""
    from affectkit.training.checkpoint import save_model_checkpoint

    config = {"face_margin": 0.2} if with_va else {"face_margin": 0.2, "loss_valence": 0, "loss_arousal": 0}
    ckpt = save_model_checkpoint(make_model(), tmp_path / "model.ckpt", config)
    img = tmp_path / "photo.png"
    Image.fromarray(face_photo((640, 440), at=(240, 100))).save(img)
    with serve_cli(ckpt, cwd=tmp_path) as (base, info):
        assert info["heads"]["valence"] is with_va
        state = _drive_page(base, img, tmp_path)
    assert state["cards"] == 1
    assert state["expression"] in EXPRESSIONS
    assert state["names"] == list(EXPRESSIONS) and len(state["bars"]) == 8
    assert sum(state["bars"]) == pytest.approx(1.0, abs=2e-3)
    assert state["canvas"][0] > 0 and state["nonGrey"] > 100  # photo and coloured box drawn
    assert state["status"] == "Found 1 face."
    assert state["model"].startswith("Model: resnet18")
    assert (tmp_path / "page.png").stat().st_size > 10_000
    if with_va:
        assert state["points"] == 1 and not state["vaHidden"] and state["note"] == ""
        assert state["cx"] == pytest.approx(100 * state["valence"], abs=0.2)
        assert state["cy"] == pytest.approx(-100 * state["arousal"], abs=0.2)
    else:  # an untrained head shows nothing: no numbers, no circumplex point, a note saying why
        assert state["points"] == 0 and state["vaHidden"] and state["hasVa"] is False
        assert "without valence and arousal labels" in state["note"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium) for the browser test")
def test_page_names_an_int8_model_and_its_check(tmp_path):
    """Served from an int8 file, the page says so and how close the int8 model stayed to its float model."""
    from affectkit.inference import quantize
    from affectkit.inference.export import export_model, read_onnx_metadata
    from affectkit.training.checkpoint import load_model, save_model_checkpoint

    model, meta = load_model(save_model_checkpoint(make_model(), tmp_path / "model.ckpt", {"face_margin": 0.2}))
    fp32 = export_model(model, tmp_path / "fp32.onnx", preprocess=meta["contract"], heads=meta["heads"])
    size = meta["contract"].input_size
    x = np.random.default_rng(0).standard_normal((32, 3, size, size)).astype(np.float32)
    int8 = quantize.quantize_onnx(fp32, tmp_path / "int8.onnx", x)
    check = {"split": "val", **quantize.compare_int8(fp32, int8, x, np.full(len(x), -1))}
    quantize.write_metadata(int8, {**read_onnx_metadata(int8), "int8_check": check})
    img = tmp_path / "photo.png"
    Image.fromarray(face_photo((640, 440), at=(240, 100))).save(img)
    with serve_cli(int8, cwd=tmp_path) as (base, info):
        assert info["quantized"] == "int8" and info["int8_check"] == check
        state = _drive_page(base, img, tmp_path)
    assert state["cards"] == 1 and state["model"].startswith("Model: resnet18 (onnx, int8)")
    share = f"{100 * check['same_expression']:.1f}%"
    assert f"int8: same expression as the float model on {share} of 32 held-out faces." in state["model"]


def _drive_page(server: str, img: Path, tmp_path: Path) -> dict:
    cdp = _CDP(CHROMIUM, tmp_path / "profile")
    try:
        target = cdp.send("Target.createTarget", {"url": server + "/"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

        def js(expr: str):
            r = cdp.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            return r["result"].get("value")

        def wait_for(expr: str, what: str, timeout: float = 60.0):
            end = time.time() + timeout
            while time.time() < end:
                value = js(expr)
                if value:
                    return value
                time.sleep(0.2)
            status = js("document.getElementById('status')?.textContent")
            raise AssertionError(f"timed out waiting for {what}; page status: {status}")

        wait_for("document.readyState === 'complete' && !!document.getElementById('file')", "the page")
        root = cdp.send("DOM.getDocument", {}, session)["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#file"}, session)["nodeId"]
        cdp.send("DOM.setFileInputFiles", {"files": [str(img)], "nodeId": node}, session)
        wait_for("document.querySelectorAll('.face-card').length > 0", "the face cards")
        wait_for("document.getElementById('model').textContent.length > 0", "the model line")
        state = js("""(() => {
            const card = document.querySelector('.face-card');
            const va = card.querySelector('.va');
            const circle = document.querySelector('#va-points circle');
            const c = document.getElementById('view');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let nonGrey = 0;
            for (let i = 0; i < px.length; i += 4)
                if (Math.abs(px[i] - px[i + 1]) > 60 || Math.abs(px[i + 1] - px[i + 2]) > 60) nonGrey++;
            return {cards: document.querySelectorAll('.face-card').length,
                    expression: card.dataset.expression,
                    bars: [...card.querySelectorAll('.bar')].map(b => parseFloat(b.dataset.value)),
                    names: [...card.querySelectorAll('.prob')].map(p => p.dataset.name),
                    hasVa: !!va, valence: va ? parseFloat(va.dataset.valence) : null,
                    arousal: va ? parseFloat(va.dataset.arousal) : null,
                    points: document.querySelectorAll('#va-points .face-point').length,
                    cx: circle ? parseFloat(circle.getAttribute('cx')) : null,
                    cy: circle ? parseFloat(circle.getAttribute('cy')) : null,
                    vaHidden: document.getElementById('va-panel').hidden,
                    model: document.getElementById('model').textContent,
                    note: document.getElementById('model-note').textContent,
                    canvas: [c.width, c.height], nonGrey,
                    status: document.getElementById('status').textContent};
        })()""")
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        (tmp_path / "page.png").write_bytes(base64.b64decode(shot))
    finally:
        cdp.close()
    return state
