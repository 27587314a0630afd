// Test-only: joins a Janus VideoRoom with janus.js and publishes the fake camera and microphone,
// one handle per publisher. Query: page, janus (URL), room, pub=<user>:<videocodec or empty>:
// <sim|plain>:<width>x<height>[,...]. Reports: joined, offer and answer (their SDPs), ice,
// webrtc, stats (each second: what the encoders send), error, left; leaves the room when the
// server says so.
"use strict";

const query = new URLSearchParams(location.search);
const room = query.get("room");
const publishers = query.get("pub").split(",").map((spec) => {
  const [user, codec, mode, size] = spec.split(":");
  const [width, height] = size.split("x").map(Number);
  return {user: user, codec: codec, simulcast: mode === "sim", width: width, height: height, handle: null};
});
let janus = null;
let leaving = false;

Janus.init({debug: false, callback: () => {
  janus = new Janus({
    server: query.get("janus"),
    success: () => publishers.forEach(attach),
    error: (e) => report("error", {where: "session", error: String(e)}),
  });
}});

function attach(p) {
  janus.attach({
    plugin: "janus.plugin.videoroom",
    success: (handle) => {
      p.handle = handle;
      handle.send({message: {request: "join", ptype: "publisher", room: room, id: p.user, display: p.user}});
    },
    error: (e) => report("error", {user: p.user, where: "attach", error: String(e)}),
    onmessage: (msg, jsep) => {
      if (msg.videoroom === "joined") {
        report("joined", {user: p.user});
        publish(p);
      }
      if (msg.error) report("error", {user: p.user, where: "videoroom", error: msg.error});
      if (jsep) {
        p.handle.handleRemoteJsep({jsep: jsep});
        report("answer", {user: p.user, video_codec: msg.video_codec || "", sdp: jsep.sdp});
      }
    },
    webrtcState: (up) => report("webrtc", {user: p.user, up: up}),
    iceState: (state) => report("ice", {user: p.user, state: state}),
  });
}

async function publish(p) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: {width: {ideal: p.width}, height: {ideal: p.height}, frameRate: {ideal: 15}}});
  } catch (e) {
    report("error", {user: p.user, where: "getUserMedia", error: String(e)});
    return;
  }
  const video = stream.getVideoTracks()[0];
  video.contentHint = "detail";  // a busy machine drops frames rather than the picture's size
  p.handle.createOffer({
    tracks: [{type: "audio", capture: stream.getAudioTracks()[0], recv: false},
             {type: "video", capture: video, recv: false, simulcast: p.simulcast}],
    success: (jsep) => {
      report("offer", {user: p.user, sdp: jsep.sdp});
      const body = {request: "configure", audio: true, video: true};
      if (p.codec) body.videocodec = p.codec;
      p.handle.send({message: body, jsep: jsep});
    },
    error: (e) => report("error", {user: p.user, where: "createOffer", error: String(e)}),
  });
}

async function sent(p) {
  const pc = p.handle && p.handle.webrtcStuff.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const video = [];
  let audioPackets = 0;
  stats.forEach((s) => {
    if (s.type !== "outbound-rtp") return;
    if (s.kind === "audio") audioPackets += s.packetsSent || 0;
    if (s.kind !== "video") return;
    const codec = stats.get(s.codecId);
    video.push({rid: s.rid || "", width: s.frameWidth || 0, height: s.frameHeight || 0,
                frames: s.framesEncoded || 0, codec: codec ? codec.mimeType : "",
                encoder: s.encoderImplementation || "", limited: s.qualityLimitationReason || ""});
  });
  return {user: p.user, video: video, audio_packets: audioPackets};
}

async function leave() {
  for (const p of publishers) {
    if (!p.handle) continue;
    p.handle.send({message: {request: "leave"}});
    p.handle.hangup();
  }
  janus.destroy({success: () => report("left", {}), error: () => report("left", {})});
}

setInterval(async () => {
  let reply = {};
  for (const p of publishers) {
    const now = await sent(p);
    if (now) reply = await report("stats", now);
  }
  if (reply.leave && janus && !leaving) {
    leaving = true;
    await leave();
  }
}, 1000);
