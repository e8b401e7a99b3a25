// The live page: microphone -> AudioWorklet (16 kHz 16-bit PCM) -> WebSocket /v1/stream;
// step events drive the bars, decisions fill the card and the history.
"use strict";

const COLORS = {
  anger: "#ff5d5d", fear: "#a27bdc", happiness: "#f3c43f", neutral: "#8fa3b3",
  sadness: "#4c8dff", disgust: "#6fbf73", boredom: "#c2a878", surprise: "#ff9f43",
};
const RATE = 16000;
const $ = (id) => document.getElementById(id);
const state = { ws: null, ctx: null, media: null, node: null, queue: [], ready: false,
                labels: [], running: false, started: 0 };

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) sessionStorage.setItem("emovox-token", fromHash);
  return $("token").value || sessionStorage.getItem("emovox-token") || "";
}

function headers() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "muted";
}

async function loadModel() {
  const res = await fetch("/v1/models", { headers: headers() });
  if (res.status === 401) {
    $("token-row").hidden = false;
    $("model").textContent = "this server needs a token";
    return false;
  }
  const model = (await res.json()).models[0];
  state.labels = model.labels;
  $("model").textContent = `model ${model.id} · ${model.labels.length} emotions` +
    (model.streaming ? "" : " · cannot stream");
  drawBars(Object.fromEntries(model.labels.map((l) => [l, 0])));
  return true;
}

function drawBars(probabilities) {
  const bars = $("bars");
  for (const [label, p] of Object.entries(probabilities)) {
    let row = bars.querySelector(`[data-label="${label}"]`);
    if (!row) {
      row = document.createElement("div");
      row.className = "bar";
      row.dataset.label = label;
      row.innerHTML = `<span>${label}</span><div class="track"><div class="fill"></div></div>` +
        `<span class="value"></span>`;
      row.querySelector(".fill").style.background = COLORS[label] || "#4cc2ff";
      bars.appendChild(row);
    }
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = `${Math.round(100 * p)}%`;
  }
}

function showDecision(event) {
  const card = $("decision");
  card.dataset.state = "decided";
  $("decision-label").textContent = event.label;
  $("decision-label").style.color = COLORS[event.label] || "";
  $("decision-detail").textContent = `${Math.round(100 * event.confidence)}% confident · ` +
    `decided after ${event.time.toFixed(2)} s of audio` + (event.forced ? " (at the end)" : "");
  drawBars(event.probabilities);
  const item = document.createElement("li");
  item.className = "decision-item";
  item.dataset.label = event.label;
  const clock = new Date().toLocaleTimeString();
  item.innerHTML = `<span class="muted">${clock}</span>` +
    `<span class="tag" style="color:${COLORS[event.label] || "inherit"}">${event.label}</span>` +
    `<span class="muted">${Math.round(100 * event.confidence)}% after ${event.time.toFixed(2)} s` +
    `${event.forced ? ", forced" : ""}</span>`;
  $("history").prepend(item);
}

function onEvent(event) {
  switch (event.type) {
    case "ready":
      state.ready = true;
      state.labels = event.labels;
      for (const buf of state.queue.splice(0)) state.ws.send(buf);
      status("Listening…");
      break;
    case "utterance_start":
      $("decision").dataset.state = "listening";
      $("decision-label").textContent = "…";
      $("decision-label").style.color = "";
      $("decision-detail").textContent = "listening";
      break;
    case "step":
      drawBars(event.probabilities);
      $("heard").textContent = `${event.time.toFixed(1)} s heard`;
      break;
    case "decision":
      showDecision(event);
      break;
    case "no_speech":
      $("decision").dataset.state = "listening";
      $("decision-label").textContent = "no speech";
      $("decision-label").style.color = "";
      $("decision-detail").textContent = "nothing to decide on: silence or noise";
      break;
    case "error":
      status(`Server: ${event.error}`, true);
      break;
    case "done":
      state.ws.close(1000);
      break;
  }
}

function connect(vad) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = ["emovox.v1"];
  if (token()) protocols.push(`bearer.${token()}`);
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`, protocols);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify({ sample_rate: RATE, encoding: "pcm_s16le", vad }));
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = (e) => {
    if (state.running) stop(false);
    if (e.code !== 1000 && e.code !== 1005) status(`Connection closed (${e.code}) ${e.reason}`, true);
  };
  return ws;
}

async function start() {
  state.queue = [];
  state.ready = false;
  state.media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
             autoGainControl: false },
  });
  state.ctx = new AudioContext();
  await state.ctx.audioWorklet.addModule("/static/worklet.js");
  const source = state.ctx.createMediaStreamSource(state.media);
  state.node = new AudioWorkletNode(state.ctx, "pcm16-resampler",
                                    { processorOptions: { targetRate: RATE } });
  state.node.port.onmessage = ({ data }) => {
    $("level").style.width = `${Math.min(100, 300 * data.rms)}%`;
    if (state.ready && state.ws.readyState === WebSocket.OPEN) state.ws.send(data.pcm);
    else if (state.queue.length < 100) state.queue.push(data.pcm);  // at most 10 s before ready
  };
  source.connect(state.node);
  state.ws = connect($("vad").checked);
  state.running = true;
  $("toggle").textContent = "Stop";
  $("toggle").classList.add("recording");
  $("decision").dataset.state = "listening";
  $("decision-label").textContent = "…";
  $("decision-detail").textContent = "listening";
  status("Connecting…");
}

function stop(sendEnd = true) {
  state.running = false;
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  if (state.ctx) state.ctx.close();
  if (sendEnd && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "end" }));
  }
  $("toggle").textContent = "Start microphone";
  $("toggle").classList.remove("recording");
  $("level").style.width = "0";
  status("Stopped.");
}

$("toggle").addEventListener("click", async () => {
  if (state.running) return stop();
  try {
    if (!state.labels.length && !(await loadModel())) {
      status("Enter the server's token, then press start.", true);
      return;
    }
    await start();
  } catch (err) {
    status(`Cannot start: ${err.message}`, true);
  }
});
$("token").addEventListener("change", loadModel);
loadModel().catch((err) => status(`Cannot reach the server: ${err.message}`, true));
