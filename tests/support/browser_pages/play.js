// Test-only: one muted, autoplaying <video> per src=<name>:<hls|mp4>:<url> of the query.
// Reports each half second: state (currentTime, size, video.error, fatal hls.js errors, audio
// bytes decoded); a screenshot of the picture (PNG to /shot) once past 1 s and once past 3 s,
// each followed by a "shot" report.
"use strict";

const players = new URLSearchParams(location.search).getAll("src").map((spec) => {
  const [name, kind, ...rest] = spec.split(":");
  const url = rest.join(":");
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.width = 640;
  document.body.appendChild(video);
  const player = {name: name, video: video, fatal: [], shots: 0};
  if (kind === "hls") {
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (event, data) => {
      if (data.fatal) player.fatal.push(data.type + ": " + data.details);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else {
    video.src = url;
  }
  video.addEventListener("canplay", () => video.play().catch((e) => player.fatal.push("play: " + e)));
  return player;
});

async function shoot(player) {
  const video = player.video;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const png = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const n = player.shots;
  await fetch("/shot?name=" + encodeURIComponent(player.name + "-" + n), {method: "POST", body: png});
  report("shot", {name: player.name, n: n, time: video.currentTime});
}

setInterval(() => {
  for (const p of players) {
    const v = p.video;
    const error = v.error ? v.error.code + ": " + v.error.message : null;
    report("state", {name: p.name, time: v.currentTime, ready: v.readyState, width: v.videoWidth,
                     height: v.videoHeight, error: error, fatal: p.fatal, ended: v.ended,
                     audio_bytes: v.webkitAudioDecodedByteCount || 0});
    if ((p.shots === 0 && v.currentTime > 1) || (p.shots === 1 && v.currentTime > 3)) {
      p.shots += 1;
      shoot(p);
    }
  }
}, 500);
