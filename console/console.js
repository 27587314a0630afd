// cloudrec console: lists an app's tasks, shows a task's events, files (played with hls.js or
// <video>) and its recording report as SVG. Talks to …/console/api with the operator's key,
// kept in sessionStorage (this tab only). Data is only ever put in the page as text.
"use strict";

(() => {
  const BASE = location.pathname.replace(/\/+$/, "");
  const API = BASE + "/api";
  const KEY = "cloudrec-console-key";
  const SVG = "http://www.w3.org/2000/svg";
  const EVENTS = {
    301: "RecorderStart", 302: "RecorderStop", 303: "UploadStart", 304: "FileInfo", 305: "UploadStop",
    306: "Failover", 307: "FileSlice", 308: "UploadError", 309: "DownloadImageError", 310: "Mp4Stop",
    311: "VodCommit", 312: "VodStop",
  };
  // bitrate lines: not the timeline's blue (video) and green (audio), which mean kinds there
  const PALETTE = ["#7c3aed", "#d97706", "#db2777", "#0891b2", "#65a30d", "#475569", "#b91c1c", "#a16207"];
  const $ = (id) => document.getElementById(id);
  let hls = null;
  let apps = [];

  class Unauthorized extends Error {}

  // -- talking to the API --------------------------------------------------------------------

  async function get(path) {
    const key = sessionStorage.getItem(KEY);
    if (!key) throw new Unauthorized();
    const response = await fetch(API + path, {headers: {Authorization: "Bearer " + key}, cache: "no-store"});
    if (response.status === 401) throw new Unauthorized();
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  const appPath = (app) => `/apps/${encodeURIComponent(app)}`;
  const taskPath = (app, task) => `${appPath(app)}/tasks/${encodeURIComponent(task)}`;

  // -- small helpers -------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  const utc = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "");
  const size = (bytes) => (bytes == null ? "?" : bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB`
    : `${(bytes / 1e6).toFixed(1)} MB`);

  function length(ms) {
    if (ms == null || ms < 0) return "";
    const s = Math.round(ms / 1000);
    return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`
      : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }

  function clock(offsetMs) {
    const s = Math.round(offsetMs / 1000);
    const m = Math.floor(s / 60);
    return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
      : `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  function show(section) {
    for (const id of ["login", "tasks", "task"]) $(id).hidden = id !== section;
    $("nav").hidden = section === "login";
    $("error").textContent = "";
  }

  function stopPlayer() {
    if (hls) { hls.destroy(); hls = null; }
    const video = $("player");
    video.pause();
    video.removeAttribute("src");
    video.load();
  }

  // -- views ---------------------------------------------------------------------------------

  async function loadApps() {
    apps = (await get("/apps")).Apps;
    const select = $("app-select");
    select.replaceChildren(...apps.map((a) => el("option", {value: a.SdkAppId}, `${a.SdkAppId} (${a.Active} live)`)));
    return apps;
  }

  async function showTasks(app) {
    const out = await get(`${appPath(app)}/tasks`);
    $("app-select").value = String(app);
    $("tasks-app").textContent = String(app);
    $("tasks-note").textContent = `${out.Tasks.length} task(s), newest first` +
      (out.Truncated ? " (older ones left out)" : "");
    const now = Date.now();
    $("task-rows").replaceChildren(...out.Tasks.map((t) => el("tr", {
      class: "link", "data-task": t.TaskId, onclick: () => { location.hash = "#" + taskPath(app, t.TaskId); },
    }, el("td", {class: "name"}, t.TaskId), el("td", {}, t.RoomId), el("td", {}, t.UserId),
    el("td", {}, el("span", {class: `status ${t.Status}`}, t.Status)), el("td", {}, utc(t.CreatedMs)),
    el("td", {}, length((t.EndedMs || now) - t.CreatedMs)), el("td", {}, t.HaCount),
    el("td", {}, t.LeaveCode ?? ""))));
    show("tasks");
  }

  function facts(task) {
    const storage = task.Storage.Vod ? "VOD" : `${task.Storage.Vendor} ${task.Storage.Region} ` +
      `${task.Storage.Bucket}/${task.Directory}`;
    const rows = [
      ["App", task.SdkAppId], ["Room", `${task.RoomId} (${task.RoomIdType === 1 ? "integer" : "string"})`],
      ["Robot", task.UserId], ["Status", task.Status], ["Started", utc(task.CreatedMs)],
      ["Ended", utc(task.EndedMs)], ["Failovers", task.HaCount], ["Leave code", task.LeaveCode ?? ""],
      ["Mode", task.RecordParams.RecordMode === 2 ? "mixed" : "single-stream"],
      ["Output format", task.RecordParams.OutputFormat ?? 0], ["Storage", storage],
    ];
    $("task-facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function files(app, taskId, list) {
    $("file-rows").replaceChildren(...list.map((f) => el("tr", {"data-file": f.Name},
      el("td", {class: "name"}, f.Name), el("td", {}, f.UserId || (f.Kind === "hls" ? "(mix)" : "")),
      el("td", {}, f.TrackType || f.Kind), el("td", {}, f.Where + (f.Ha ? ` · ha${f.Ha}` : "")),
      el("td", {}, size(f.Size)),
      el("td", {}, el("button", {type: "button", class: "play", onclick: () => play(app, taskId, f)}, "Play")))));
    if (!list.length) $("file-rows").replaceChildren(el("tr", {}, el("td", {colspan: 6, class: "note"}, "No files yet.")));
  }

  function events(list) {
    const sorted = [...list].sort((a, b) => a.EventInfo.EventMsTs - b.EventInfo.EventMsTs);
    const first = sorted.length ? sorted[0].EventInfo.EventMsTs : 0;
    $("event-rows").replaceChildren(...sorted.map((e) => el("tr", {"data-event": e.EventType},
      el("td", {}, utc(e.EventInfo.EventMsTs)), el("td", {}, ((e.EventInfo.EventMsTs - first) / 1000).toFixed(3)),
      el("td", {}, `${e.EventType} ${EVENTS[e.EventType] || ""}`),
      el("td", {class: "payload"}, JSON.stringify(e.EventInfo.Payload ?? {})))));
    if (!sorted.length) $("event-rows").replaceChildren(el("tr", {}, el("td", {colspan: 4, class: "note"}, "No events recorded.")));
  }

  async function showTask(app, taskId) {
    stopPlayer();
    const out = await get(taskPath(app, taskId));
    $("back").setAttribute("href", "#" + appPath(app));
    $("task-id").textContent = out.Task.TaskId;
    $("now-playing").textContent = "Choose a file to play.";
    facts(out.Task);
    report(out.Report);
    files(app, taskId, out.Files);
    events(out.Events);
    show("task");
  }

  function play(app, taskId, file) {
    stopPlayer();
    const video = $("player");
    $("now-playing").textContent = file.Name;
    if (file.Kind !== "hls") {
      video.src = file.Url;
    } else if (window.Hls && window.Hls.isSupported()) {
      const url = `${API}${taskPath(app, taskId)}/playlist?file=${encodeURIComponent(file.Name)}` +
        `&where=${encodeURIComponent(file.Where)}`;
      // the key goes to our own API only (the playlist); segments are presigned storage URLs
      hls = new window.Hls({
        xhrSetup: (xhr, target) => {
          if (new URL(target, location.href).origin === location.origin) {
            xhr.setRequestHeader("Authorization", "Bearer " + sessionStorage.getItem(KEY));
          }
        },
      });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (data.fatal) $("now-playing").textContent = `${file.Name}: ${data.type} ${data.details}`;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      $("now-playing").textContent = "This browser cannot play HLS here (no Media Source Extensions).";
      return;
    }
    video.play().catch(() => {});
  }

  // -- the recording report as SVG -------------------------------------------------------------

  function niceStep(spanMs, most) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
    return (steps.find((s) => spanMs / (s * 1000) <= most) || 86400) * 1000;
  }

  function timeAxis(chart, x, t0, t1, top, bottom) {
    const step = niceStep(t1 - t0, 10);
    for (let t = 0; t0 + t <= t1; t += step) {
      chart.append(svg("line", {class: "grid", x1: x(t0 + t), x2: x(t0 + t), y1: top, y2: bottom}));
      chart.append(svg("text", {x: x(t0 + t), y: bottom + 14, "text-anchor": "middle"}, clock(t)));
    }
    chart.append(svg("line", {class: "axis", x1: x(t0), x2: x(t1), y1: bottom, y2: bottom}));
  }

  const streamName = (s) => `${s.UserId || "(mix)"} · ${s.MediaId && s.MediaId !== "main" ? s.MediaId + " " : ""}` +
    s.Kind;

  function timeline(rep, t0, t1, width) {
    const left = 190; const right = 20; const row = 24; const top = 26;
    const streams = rep.Streams || [];
    const height = top + streams.length * row + 34;
    const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
    const chart = svg("svg", {class: "chart", id: "timeline", width, height, viewBox: `0 0 ${width} ${height}`});
    chart.append(svg("text", {x: 8, y: 16, class: "muted"}, "participants (bar: in the room; red: gaps)"));
    timeAxis(chart, x, t0, t1, top - 4, top + streams.length * row + 4);
    streams.forEach((s, i) => {
      const y = top + i * row;
      const stats = `${streamName(s)}: ${s.DurationS ?? "?"} s, ${s.BitrateKbps ?? "?"} kbps, ` +
        `${s.FramesReceived ?? "?"} frames (${s.FramesLost ?? 0} lost), ${s.KeyframeRequests ?? 0} keyframe requests` +
        (s.AvOffsetMs != null ? `, A/V offset ${s.AvOffsetMs} ms` : "");
      chart.append(svg("text", {x: 8, y: y + 15}, streamName(s).slice(0, 28)));
      const bar = svg("rect", {class: `bar-${s.Kind === "audio" ? "audio" : "video"} stream`, x: x(s.Joined),
        y: y + 4, width: Math.max(1, x(s.Left ?? t1) - x(s.Joined)), height: row - 8, rx: 2});
      bar.append(svg("title", {}, stats));
      chart.append(bar);
      for (const gap of s.Gaps || []) {
        const g = svg("rect", {class: "gap", x: x(gap.At), y: y + 4, width: Math.max(2, x(gap.At + gap.DurationMs) - x(gap.At)),
          height: row - 8});
        g.append(svg("title", {}, `gap of ${gap.DurationMs} ms`));
        chart.append(g);
      }
    });
    for (const h of rep.HandOvers || []) {
      chart.append(svg("line", {class: "handover", x1: x(h.At), x2: x(h.At), y1: top - 6, y2: top + streams.length * row + 4}));
      chart.append(svg("text", {class: "handover-label", x: x(h.At) + 4, y: top - 8}, `ha${h.From}→ha${h.To}`));
    }
    return chart;
  }

  function bitratePlot(rep, t0, t1, width) {
    const left = 60; const right = 20; const top = 24; const plot = 170; const height = top + plot + 34;
    const series = (rep.Streams || []).filter((s) => (s.Bitrate || []).length);
    const most = Math.max(1, ...series.flatMap((s) => s.Bitrate.map((p) => p[1])));
    const step = [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000].find((s) => most / s <= 5) || 20000;
    const top_ = Math.ceil(most / step) * step;
    const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right - 170);
    const y = (kbps) => top + plot - (kbps / top_) * plot;
    const chart = svg("svg", {class: "chart", id: "bitrate", width, height, viewBox: `0 0 ${width} ${height}`});
    chart.append(svg("text", {x: 8, y: 14, class: "muted"}, "bitrate (kbps)"));
    for (let v = 0; v <= top_; v += step) {
      chart.append(svg("line", {class: "grid", x1: left, x2: x(t1), y1: y(v), y2: y(v)}));
      chart.append(svg("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end"}, v));
    }
    timeAxis(chart, x, t0, t1, top, top + plot);
    series.forEach((s, i) => {
      const colour = PALETTE[i % PALETTE.length];
      const points = s.Bitrate.map(([t, kbps]) => `${x(t).toFixed(1)},${y(kbps).toFixed(1)}`).join(" ");
      chart.append(svg("polyline", {points, fill: "none", stroke: colour, "stroke-width": 1.6, class: "series"}));
      const ly = top + 4 + i * 16;
      chart.append(svg("rect", {x: width - right - 160, y: ly, width: 10, height: 10, fill: colour}));
      chart.append(svg("text", {x: width - right - 145, y: ly + 9}, streamName(s).slice(0, 24)));
    });
    if (!series.length) chart.append(svg("text", {x: left + 10, y: top + plot / 2, class: "muted"}, "no bitrate samples"));
    return chart;
  }

  function report(rep) {
    const box = $("report");
    if (!rep || !(rep.Streams || []).length) {
      box.replaceChildren(el("p", {class: "note"}, "No recording report (yet)."));
      return;
    }
    const ends = rep.Streams.flatMap((s) => [s.Left, ...(s.Bitrate || []).map((p) => p[0])]).filter((v) => v != null);
    const t0 = Math.min(rep.StartedAt ?? Infinity, ...rep.Streams.map((s) => s.Joined));
    const t1 = Math.max(rep.EndedAt ?? 0, ...ends, t0 + 1000);
    const width = Math.max(640, Math.min(1160, box.clientWidth || 1000));
    box.replaceChildren(
      el("p", {class: "note"}, `${utc(t0)} – ${utc(t1)} UTC · ${length(t1 - t0)} · ` +
        `${(rep.HandOvers || []).length} hand-over(s)`),
      timeline(rep, t0, t1, width), bitratePlot(rep, t0, t1, width));
  }

  // -- navigation ----------------------------------------------------------------------------

  async function route() {
    if (!sessionStorage.getItem(KEY)) { show("login"); return; }
    try {
      if (!apps.length) await loadApps();
      const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
      if (parts[0] === "apps" && parts[2] === "tasks" && parts[3]) {
        await showTask(parts[1], parts[3]);
      } else if (parts[0] === "apps" && parts[1]) {
        stopPlayer();
        await showTasks(parts[1]);
      } else if (apps.length) {
        location.hash = "#" + appPath(apps[0].SdkAppId);
      } else {
        show("tasks");
        $("tasks-note").textContent = "No app is registered.";
      }
    } catch (err) {
      if (err instanceof Unauthorized) {
        sessionStorage.removeItem(KEY);
        apps = [];
        show("login");
        $("login-error").textContent = "That key was refused.";
      } else {
        $("error").textContent = String(err.message || err);
      }
    }
  }

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key").value.trim());
      $("key").value = "";
      $("login-error").textContent = "";
      route();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      apps = [];
      stopPlayer();
      show("login");
    });
    $("refresh").addEventListener("click", () => { apps = []; route(); });
    $("app-select").addEventListener("change", (e) => { location.hash = "#" + appPath(e.target.value); });
    window.addEventListener("hashchange", route);
    route();
  }

  start();
})();
