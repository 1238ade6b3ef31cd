"use strict";
// affectkit demo page: send an image to POST /predict, draw boxes, probability bars and the circumplex.
const EXPRESSIONS = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"];
const COLOURS = ["#9e9e9e", "#ffca28", "#42a5f5", "#ab47bc", "#7e57c2", "#66bb6a", "#ef5350", "#8d6e63"];
const $ = (id) => document.getElementById(id);
const canvas = $("view"), ctx = canvas.getContext("2d");
const statusEl = $("status");
let stream = null;

function setStatus(text, isError = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", isError);
  document.body.dataset.state = isError ? "error" : text.startsWith("Found") ? "done" : "busy";
}

function colourOf(face) { return COLOURS[(face.expression_id ?? 0) % COLOURS.length]; }

// Which model is loaded and what it can predict; the circumplex only for models with valence and arousal.
async function showModel() {
  let info;
  try { info = await (await fetch("/info")).json(); } catch (err) { return; }
  const heads = info.heads || {};
  const can = ["expression", "valence", "arousal"].filter((k) => heads[k] !== false);
  const named = info.model ? `${info.model} (${info.summary}) — ` : "";
  const backend = info.quantized ? `${info.backend}, ${info.quantized}` : info.backend;
  $("model").textContent = `Model: ${named}${info.backbone || "?"} (${backend}), ${info.input_size} px input; ` +
    `predicts ${can.join(", ") || "nothing"}.`;
  const check = info.int8_check;
  if (check) {
    $("model").textContent += ` int8: same expression as the float model on ` +
      `${(100 * check.same_expression).toFixed(1)}% of ${check.n} held-out faces.`;
  }
  if (info.note) $("model-note").textContent = info.note.charAt(0).toUpperCase() + info.note.slice(1) + ".";
  $("va-panel").hidden = !(heads.valence !== false && heads.arousal !== false);
}
showModel();

async function predict(blob) {
  setStatus("Predicting…");
  const form = new FormData();
  form.append("image", blob, blob.name || "upload.jpg");
  const detect = $("detect").checked ? "1" : "0";
  let res, data;
  try {
    res = await fetch(`/predict?detect=${detect}`, { method: "POST", body: form });
    data = await res.json();
  } catch (err) {
    setStatus(`Request failed: ${err}`, true);
    return;
  }
  if (!res.ok) {
    setStatus(`Error ${res.status}: ${data.error || res.statusText}`, true);
    clearResults();
    return;
  }
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  render(bitmap, data);
  const n = data.faces.length;
  setStatus(n ? `Found ${n} face${n > 1 ? "s" : ""}.` : "Found no face (try unticking “detect faces”).");
}

function clearResults() {
  $("faces").replaceChildren();
  $("va-points").replaceChildren();
}

function render(bitmap, data) {
  const maxW = Math.min(960, canvas.parentElement.clientWidth || 640);
  const scale = Math.min(1, maxW / data.width);
  canvas.width = Math.round(data.width * scale);
  canvas.height = Math.round(data.height * scale);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const font = Math.max(12, Math.round(canvas.width / 45));
  ctx.font = `bold ${font}px system-ui, sans-serif`;
  data.faces.forEach((f, i) => {
    const [x1, y1, x2, y2] = f.box.map((v) => v * scale);
    ctx.lineWidth = Math.max(2, canvas.width / 300);
    ctx.strokeStyle = colourOf(f);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = f.expression ? `${i + 1}. ${f.expression} ${(100 * f.probabilities[f.expression]).toFixed(0)}%`
                               : `${i + 1}.`;
    const w = ctx.measureText(label).width + 8, h = font + 6;
    const ty = y1 - h >= 0 ? y1 - h : y2;
    ctx.fillStyle = colourOf(f);
    ctx.fillRect(x1, ty, w, h);
    ctx.fillStyle = "#111";
    ctx.fillText(label, x1 + 4, ty + font);
  });
  renderCards(data.faces);
  renderCircumplex(data.faces);
}

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function renderCards(faces) {
  const box = $("faces");
  box.replaceChildren();
  if (!faces.length) { box.append(el("p", { class: "empty" }, "No face found.")); return; }
  faces.forEach((f, i) => {
    const card = el("div", { class: "face-card", "data-expression": f.expression, "data-index": String(i + 1) });
    card.style.setProperty("--face-colour", colourOf(f));
    card.append(el("h3", {}, `Face ${i + 1}: ${f.expression ?? "face"}`));
    for (const name of f.expression ? EXPRESSIONS : []) {
      const p = f.probabilities[name] ?? 0;
      const row = el("div", { class: "prob" + (name === f.expression ? " top" : ""), "data-name": name });
      const track = el("div", { class: "track" });
      const bar = el("div", { class: "bar", "data-value": p.toFixed(4) });
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      track.append(bar);
      row.append(el("span", {}, name), track, el("span", {}, `${(100 * p).toFixed(1)}%`));
      card.append(row);
    }
    // a head the model was not trained for comes back null: show nothing rather than an untrained number
    const va = [["valence", f.valence], ["arousal", f.arousal]].filter(([, v]) => v !== null && v !== undefined);
    if (va.length) {
      const attrs = { class: "va" };
      va.forEach(([k, v]) => { attrs[`data-${k}`] = v.toFixed(4); });
      card.append(el("div", attrs, va.map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`).join(", ")));
    }
    if (f.score < 1) card.append(el("div", { class: "hint" }, `face score ${f.score.toFixed(3)}`));
    box.append(card);
  });
}

function renderCircumplex(faces) {
  const g = $("va-points");
  g.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  faces.forEach((f, i) => {
    if (f.valence === null || f.arousal === null) return;  // no circumplex point without both heads
    const clamp = (v) => Math.max(-1.05, Math.min(1.05, v));
    const pt = document.createElementNS(ns, "g");
    pt.setAttribute("class", "face-point");
    pt.setAttribute("data-index", String(i + 1));
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", (100 * clamp(f.valence)).toFixed(1));
    c.setAttribute("cy", (-100 * clamp(f.arousal)).toFixed(1));  // SVG y grows downwards
    c.setAttribute("r", "6");
    c.setAttribute("fill", colourOf(f));
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", (100 * clamp(f.valence) + 8).toFixed(1));
    t.setAttribute("y", (-100 * clamp(f.arousal) + 4).toFixed(1));
    t.textContent = String(i + 1);
    pt.append(c, t);
    g.append(pt);
  });
}

$("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (file) predict(file);
});

$("webcam-start").addEventListener("click", async () => {
  const video = $("webcam");
  if (stream) {  // second click stops the camera
    stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.hidden = true; $("snap").hidden = true; $("webcam-start").textContent = "Use webcam";
    return;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser gives no camera access here (it needs localhost or https).", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    setStatus(`Camera unavailable: ${err.message || err}`, true);
    return;
  }
  video.srcObject = stream;
  video.hidden = false; $("snap").hidden = false; $("webcam-start").textContent = "Stop webcam";
  setStatus("Camera on: take a snapshot.");
});

$("snap").addEventListener("click", () => {
  const video = $("webcam");
  const c = document.createElement("canvas");
  c.width = video.videoWidth; c.height = video.videoHeight;
  c.getContext("2d").drawImage(video, 0, 0);
  c.toBlob((blob) => { if (blob) { blob.name = "snapshot.jpg"; predict(blob); } }, "image/jpeg", 0.92);
});
