// STELLA playground: plain JavaScript, no build step. Talks to the gateway's REST API,
// a WebSocket for events and typed text, and WebRTC for the microphone and agent voice.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { session: null, ws: null, pc: null, mic: null, agentTexts: new Map(), audioCtx: null };
// What tests (and curious developers) can read from the console.
window.stella = { events: [], levels: [], maxLevel: 0, state: "idle" };

function setStatus(text) {
  $("status").textContent = text;
  window.stella.state = text;
}

function apiKey() {
  return $("api-key").value.trim();
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${apiKey()}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new Error(`${response.status} ${error.code || ""}: ${error.message || response.statusText}`);
  }
  return data;
}

function addMessage(list, role, text) {
  const item = document.createElement("li");
  item.className = role;
  item.textContent = text;
  list.appendChild(item);
  list.scrollTop = list.scrollHeight;
  return item;
}

function agentText(payload) {
  // Streaming deltas of one turn grow one bubble; a final text replaces it.
  const key = payload.turn_id || `t${state.agentTexts.size}`;
  let entry = state.agentTexts.get(key);
  if (!entry || entry.done) {
    entry = { item: addMessage($("messages"), "assistant", ""), text: "", done: false };
    state.agentTexts.set(key, entry);
  }
  entry.text = payload.is_final && !entry.text ? payload.text : entry.text + (payload.is_final ? "" : payload.text);
  if (payload.is_final) entry.done = true;
  entry.item.textContent = entry.text;
}

function latencyRow(payload) {
  const d = payload.deltas_ms || {};
  const fmt = (v) => (v === undefined ? "–" : Math.round(v));
  const row = document.createElement("tr");
  const cells = [payload.turn_id.slice(-6), fmt(d.stt_final_ms), fmt(d.agent_text_ms), fmt(d.synthesis_ms), fmt(d.audio_out_ms), fmt(d.voice_to_voice_ms)];
  for (const value of cells) {
    const cell = document.createElement("td");
    cell.textContent = value;
    row.appendChild(cell);
  }
  $("turns").appendChild(row);
}

function onEvent(envelope) {
  const p = envelope.payload || {};
  window.stella.events.push({ t: performance.now(), type: envelope.type, payload: p });
  switch (envelope.type) {
    case "stt.transcript":
      if (p.is_final) {
        $("partial").textContent = "";
        if (p.text) addMessage($("messages"), "user", p.text);
      } else {
        $("partial").textContent = p.text;
      }
      break;
    case "user.text":
      addMessage($("messages"), "user", p.text);
      break;
    case "agent.text":
      agentText(p);
      break;
    case "metrics.turn":
      latencyRow(p);
      break;
    case "tool.call":
      addMessage($("messages"), "system", `tool ${p.name}(${JSON.stringify(p.arguments || {})})`);
      break;
    case "lifecycle.ended":
      addMessage($("messages"), "system", `session ended (${p.reason}${p.detail ? ": " + p.detail : ""})`);
      teardown(`ended: ${p.reason}`);
      break;
  }
}

function meter(stream) {
  // The level of the agent's voice as it plays; the audio element does the playing.
  const ctx = state.audioCtx;
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!state.pc) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    window.stella.levels.push([performance.now(), rms]);
    if (window.stella.levels.length > 3000) window.stella.levels.shift();
    window.stella.maxLevel = Math.max(window.stella.maxLevel, rms);
    $("level").style.width = `${Math.min(100, rms * 400)}%`;
    setTimeout(tick, 50);
  };
  tick();
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // use what was gathered; loopback comes first
  });
}

async function connectVoice(connect) {
  state.mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const pc = new RTCPeerConnection({ iceServers: [] }); // no STUN: nothing leaves the host
  state.pc = pc;
  for (const track of state.mic.getTracks()) pc.addTrack(track, state.mic);
  pc.addEventListener("track", (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    $("agent-audio").srcObject = stream;
    meter(stream);
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed") setStatus("WebRTC failed");
  });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const response = await fetch(connect.webrtc_offer, {
    method: "POST",
    headers: { Authorization: `Bearer ${connect.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`WebRTC: ${answer.error ? answer.error.message : response.status}`);
  window.stella.remoteSdp = answer.sdp;
  await pc.setRemoteDescription(answer);
}

function connectEvents(connect) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${connect.websocket}?token=${encodeURIComponent(connect.token)}&audio=false`);
    state.ws = ws;
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("the event WebSocket could not open"));
    ws.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "error") addMessage($("messages"), "system", `error: ${data.message}`);
      else onEvent(data);
    };
    ws.onclose = () => { if (state.session) teardown("disconnected"); };
  });
}

async function start() {
  if (!apiKey()) { setStatus("enter the API key `make up` printed"); return; }
  localStorage.setItem("stella.apiKey", apiKey());
  $("start").disabled = true;
  $("messages").replaceChildren();
  $("turns").replaceChildren();
  state.agentTexts.clear();
  window.stella.maxLevel = 0;
  const voice = $("voice").checked;
  try {
    state.audioCtx = state.audioCtx || new AudioContext();
    await state.audioCtx.resume();
    setStatus("creating session…");
    const session = await api("POST", "/v1/sessions", { agent: $("agent").value.trim(), audio: voice });
    state.session = session;
    $("session-id").textContent = `session ${session.session_id}`;
    await connectEvents(session.connect);
    if (voice) {
      setStatus("connecting microphone…");
      await connectVoice(session.connect);
    }
    $("end").disabled = false;
    $("text").disabled = false;
    $("send").disabled = false;
    setStatus(voice ? "live: speak or type" : "live: type a message");
  } catch (error) {
    setStatus(error.message);
    teardown(error.message);
  }
}

function teardown(reason) {
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.mic) { state.mic.getTracks().forEach((t) => t.stop()); state.mic = null; }
  if (state.ws && state.ws.readyState <= 1) state.ws.close();
  state.ws = null;
  state.session = null;
  $("start").disabled = false;
  $("end").disabled = true;
  $("text").disabled = true;
  $("send").disabled = true;
  setStatus(reason);
  loadSessions();
}

async function end() {
  if (!state.session) return;
  try { await api("DELETE", `/v1/sessions/${state.session.session_id}`); }
  catch (error) { setStatus(error.message); }
}

function say(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.ws) return;
  state.ws.send(JSON.stringify({ type: "user.text", text }));
  $("text").value = "";
}

async function loadSessions() {
  if (!apiKey()) return;
  try {
    const page = await api("GET", "/v1/sessions?limit=20");
    const list = $("sessions");
    list.replaceChildren();
    for (const s of page.sessions) {
      const item = document.createElement("li");
      const when = new Date(s.created_at).toLocaleString();
      item.textContent = `${when} · ${s.agent} · ${s.status}${s.end_reason ? " (" + s.end_reason + ")" : ""}`;
      item.onclick = () => showTranscript(s.session_id);
      list.appendChild(item);
    }
    const agents = await api("GET", "/v1/agents");
    $("agents").replaceChildren(...agents.agents.map((name) => Object.assign(document.createElement("option"), { value: name })));
  } catch (error) {
    $("sessions").textContent = error.message;
  }
}

async function showTranscript(sessionId) {
  const list = $("past-transcript");
  list.replaceChildren();
  try {
    const transcript = await api("GET", `/v1/sessions/${sessionId}/transcript`);
    for (const m of transcript.messages) addMessage(list, m.role, m.content);
    if (!transcript.messages.length) addMessage(list, "system", "no messages recorded");
  } catch (error) {
    addMessage(list, "system", error.message);
  }
}

function init() {
  // `make up` prints a link with the key in the fragment (never sent to a server).
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromLink) {
    localStorage.setItem("stella.apiKey", fromLink);
    history.replaceState(null, "", location.pathname);
  }
  $("api-key").value = fromLink || localStorage.getItem("stella.apiKey") || "";
  const agent = new URLSearchParams(location.search).get("agent");
  if (agent) $("agent").value = agent;
  $("start").onclick = start;
  $("end").onclick = end;
  $("say").onsubmit = say;
  $("refresh").onclick = loadSessions;
  loadSessions();
}

init();
