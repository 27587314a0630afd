// Drives the console in headless Chromium (tests/e2e/test_console.py): a wrong key, then the
// right one, the task list, one task, and each of two files played (HLS with hls.js, MP4 in
// <video>), a screenshot at each step. Prints what it saw as one JSON line.
//   node console_browser.js '{"url": …, "key": …, "taskId": …, "hls": name, "mp4": name, "out": dir}'
"use strict";

const path = require("path");
const { chromium } = require(path.join(__dirname, "../../console/node_modules/playwright-core"));

const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];

async function playing(page, name, seconds) {
  await page.click(`tr[data-file="${name}"] button.play`);
  await page.waitForFunction((s) => document.getElementById("player").currentTime > s, seconds, {timeout: 20000});
  return page.evaluate(() => {
    const video = document.getElementById("player");
    return {currentTime: video.currentTime, width: video.videoWidth, height: video.videoHeight,
      label: document.getElementById("now-playing").textContent};
  });
}

(async () => {
  const job = JSON.parse(process.argv[2]);
  const shot = (name, fullPage = false) => page.screenshot({path: path.join(job.out, name), fullPage});
  const browser = await chromium.launch({executablePath: "/usr/bin/chromium", args: ARGS});
  const seen = {consoleErrors: [], requestsWithKey: []};
  let page;
  try {
    page = await browser.newPage({viewport: {width: 1280, height: 900}});
    page.on("console", (m) => { if (m.type() === "error") seen.consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));
    page.on("request", (r) => {
      if (r.headers().authorization) seen.requestsWithKey.push(new URL(r.url()).origin);
    });

    await page.goto(job.url);
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#key", "not-the-key");
    await page.click("#login-form button");
    await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
    seen.wrongKey = await page.textContent("#login-error");
    await page.fill("#key", job.key);
    await shot("01-login.png");

    await page.click("#login-form button");
    const row = `tr[data-task="${job.taskId}"]`;
    await page.waitForSelector(row);
    seen.tasks = await page.$$eval("#task-rows tr", (rows) => rows.map((r) => r.dataset.task));
    seen.status = await page.textContent(`${row} .status`);
    await shot("02-tasks.png");

    await page.click(row);
    await page.waitForSelector("#timeline rect.stream");
    await page.waitForSelector("#event-rows tr[data-event]");
    seen.taskId = await page.textContent("#task-id");
    seen.events = await page.$$eval("#event-rows tr", (rows) => rows.map((r) => Number(r.dataset.event)));
    seen.timeline = await page.$$eval("#timeline", ([svg]) => ({
      streams: svg.querySelectorAll("rect.stream").length, gaps: svg.querySelectorAll("rect.gap").length,
      handovers: svg.querySelectorAll("line.handover").length,
      labels: [...svg.querySelectorAll("text.handover-label")].map((t) => t.textContent)}));
    seen.bitrateSeries = await page.$$eval("#bitrate polyline.series", (lines) => lines.length);
    seen.files = await page.$$eval("#file-rows tr", (rows) => rows.map((r) => r.dataset.file));
    await shot("03-task.png", true);

    await page.locator("#report").screenshot({path: path.join(job.out, "04-report.png")});
    seen.hls = await playing(page, job.hls, 1.0);
    await page.locator("#report").scrollIntoViewIfNeeded();
    await shot("05-playing-hls.png");
    seen.mp4 = await playing(page, job.mp4, 0.5);
    await shot("06-playing-mp4.png");
  } catch (err) {
    seen.failure = String(err && err.stack || err);
    if (page) await shot("failure.png", true).catch(() => {});
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
})();
