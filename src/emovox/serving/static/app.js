// The live page: microphone -> AudioWorklet (16 kHz 16-bit PCM) -> WebSocket /v1/stream;
// step events drive the bars, decisions fill the card and the history. A model trained with
// per-speaker normalisation can adapt to the speaker: 20 s read aloud go to POST /v1/speakers,
// and streams then name the speaker id it answers (kept in this tab's sessionStorage).
"use strict";

const COLORS = {
  anger: "#ff5d5d", fear: "#a27bdc", happiness: "#f3c43f", neutral: "#8fa3b3",
  sadness: "#4c8dff", disgust: "#6fbf73", boredom: "#c2a878", surprise: "#ff9f43",
};
const RATE = 16000;
const BLOCK_S = 0.1;  // the worklet's blocks
const ENROL_S = 20;   // read aloud for this long (or press "Done")
const SPEAKER_KEY = "emovox-speaker";
const $ = (id) => document.getElementById(id);
const state = { ws: null, mic: null, queue: [], ready: false, labels: [], running: false,
                adapts: false, speaker: null, enrolling: null };

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
  state.adapts = Boolean(model.adapts);
  $("model").textContent = `model ${model.id} · ${model.labels.length} emotions` +
    (model.streaming ? "" : " · cannot stream");
  drawBars(Object.fromEntries(model.labels.map((l) => [l, 0])));
  $("enrol").hidden = !state.adapts;
  await restoreSpeaker();
  return true;
}

// ---- adapting to the speaker ----------------------------------------------------------------
function adaptation(text, on) {
  $("adaptation").hidden = false;
  $("adaptation").dataset.state = on ? "on" : "off";
  $("adaptation").textContent = text;
}

function useSpeaker(info) {
  state.speaker = info ? info.speaker : null;
  if (info) {
    sessionStorage.setItem(SPEAKER_KEY, info.speaker);
    adaptation(`Adapted to your voice (${info.seconds_of_speech.toFixed(1)} s of speech); ` +
               "streams use it.", true);
    $("enrol").textContent = "Forget my voice";
  } else {
    sessionStorage.removeItem(SPEAKER_KEY);
    adaptation(`Not adapted to your voice yet: press "Adapt to my voice" and read for ` +
               `${ENROL_S} s.`, false);
    $("adaptation").hidden = !state.adapts;  // a model that cannot adapt: nothing to say
    $("enrol").textContent = "Adapt to my voice";
  }
}

async function restoreSpeaker() {
  const id = sessionStorage.getItem(SPEAKER_KEY);
  if (!state.adapts || !id) return useSpeaker(null);
  const res = await fetch(`/v1/speakers/${encodeURIComponent(id)}`, { headers: headers() });
  useSpeaker(res.ok ? await res.json() : null);  // 404: deleted or expired
}

function wavFile(blocks) {
  // 16-bit mono PCM WAV of the worklet's blocks
  const samples = blocks.reduce((n, b) => n + b.byteLength, 0);
  const out = new DataView(new ArrayBuffer(44 + samples));
  const text = (at, s) => [...s].forEach((c, i) => out.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); out.setUint32(4, 36 + samples, true); text(8, "WAVE");
  text(12, "fmt "); out.setUint32(16, 16, true); out.setUint16(20, 1, true);
  out.setUint16(22, 1, true); out.setUint32(24, RATE, true); out.setUint32(28, 2 * RATE, true);
  out.setUint16(32, 2, true); out.setUint16(34, 16, true);
  text(36, "data"); out.setUint32(40, samples, true);
  let at = 44;
  for (const block of blocks) {
    new Uint8Array(out.buffer, at, block.byteLength).set(new Uint8Array(block));
    at += block.byteLength;
  }
  return out.buffer;
}

async function enrol() {
  if (state.running) stop();
  const blocks = [];
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const mic = await openMicrophone((pcm) => {
    blocks.push(pcm);
    const left = Math.max(0, ENROL_S - blocks.length * BLOCK_S);
    $("enrol-left").textContent = `${left.toFixed(0)} s left; press Done when you have read it.`;
    if (left <= 0) finish();
  });
  state.enrolling = { finish };
  $("enrolment").hidden = false;
  $("enrol").textContent = "Done";
  $("enrol").classList.add("recording");
  $("toggle").disabled = true;
  status("Recording your voice…");
  await done;
  mic.close();
  state.enrolling = null;
  $("enrolment").hidden = true;
  $("enrol").classList.remove("recording");
  $("toggle").disabled = false;
  status("Adapting…");
  const res = await fetch("/v1/speakers", {
    method: "POST", body: wavFile(blocks), headers: { ...headers(), "Content-Type": "audio/wav" },
  });
  const out = await res.json();
  if (res.status !== 201) {
    useSpeaker(null);
    status(`Not adapted: ${out.error}`, true);
    return;
  }
  useSpeaker(out);
  status("Adapted. Press start and speak.");
}

async function forget() {
  const id = state.speaker;
  useSpeaker(null);
  await fetch(`/v1/speakers/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers() });
  status("Your voice is forgotten.");
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
  const adapted = event.adapted ? ` · adapted (${event.adaptation})` : "";
  $("decision-detail").textContent = `${Math.round(100 * event.confidence)}% confident · ` +
    `decided after ${event.time.toFixed(2)} s of audio` + (event.forced ? " (at the end)" : "") +
    adapted;
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
      status(event.speaker ? "Listening, adapted to your voice…" : "Listening…");
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
      if (event.error.startsWith("handshake field 'speaker'")) useSpeaker(null);  // expired
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
  const hello = { sample_rate: RATE, encoding: "pcm_s16le", vad };
  if (state.speaker) hello.speaker = state.speaker;
  ws.onopen = () => ws.send(JSON.stringify(hello));
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = (e) => {
    if (state.running) stop(false);
    if (e.code !== 1000 && e.code !== 1005) status(`Connection closed (${e.code}) ${e.reason}`, true);
  };
  return ws;
}

async function openMicrophone(onBlock) {
  // the microphone as 16 kHz 16-bit PCM blocks of 100 ms; close() releases it
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
             autoGainControl: false },
  });
  const ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/static/worklet.js");
  const source = ctx.createMediaStreamSource(media);
  const node = new AudioWorkletNode(ctx, "pcm16-resampler",
                                    { processorOptions: { targetRate: RATE } });
  node.port.onmessage = ({ data }) => {
    $("level").style.width = `${Math.min(100, 300 * data.rms)}%`;
    onBlock(data.pcm);
  };
  source.connect(node);
  return {
    close() {
      media.getTracks().forEach((t) => t.stop());
      ctx.close();
      $("level").style.width = "0";
    },
  };
}

async function start() {
  state.queue = [];
  state.ready = false;
  state.mic = await openMicrophone((pcm) => {
    if (state.ready && state.ws.readyState === WebSocket.OPEN) state.ws.send(pcm);
    else if (state.queue.length < 100) state.queue.push(pcm);  // at most 10 s before ready
  });
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
  if (state.mic) state.mic.close();
  state.mic = null;
  if (sendEnd && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "end" }));
  }
  $("toggle").textContent = "Start microphone";
  $("toggle").classList.remove("recording");
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
$("enrol").addEventListener("click", async () => {
  if (state.enrolling) return state.enrolling.finish();
  try {
    await (state.speaker ? forget() : enrol());
  } catch (err) {
    status(`Cannot adapt: ${err.message}`, true);
  }
});
$("token").addEventListener("change", loadModel);
loadModel().catch((err) => status(`Cannot reach the server: ${err.message}`, true));
