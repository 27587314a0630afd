// Test-only: tells the test's server how a page is doing (POST /report, JSON); the reply may
// carry an instruction for the page ({"leave": true}).
"use strict";

const PAGE = new URLSearchParams(location.search).get("page") || "page";

async function report(kind, data) {
  try {
    const reply = await fetch("/report", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({page: PAGE, kind: kind, at: Date.now(), ...data}),
    });
    return await reply.json();
  } catch (e) {
    return {};
  }
}

window.addEventListener("error", (e) => report("error", {where: "window", error: String(e.message)}));
window.addEventListener("unhandledrejection", (e) => report("error", {where: "promise", error: String(e.reason)}));
