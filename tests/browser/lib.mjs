// What the browser tests share: Debian's headless Chromium through playwright-core, a fresh
// profile, JavaScript errors and confirmation dialogs recorded (each answered yes), and
// full-page screenshots into the given folder.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
  console.log("ok - " + message);
}

export async function open(shots) {
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  // A fresh, empty profile per run (playwright-core's contexts are incognito-like).
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Clears and marks ask first, with a preview: answered yes, the messages kept.
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.accept(); });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  return { browser, page, errors, dialogs, shot };
}

// A browser script's end on a failed check: a screenshot `name`, the stack, exit status 1.
export async function fail(browser, shot, name, error) {
  await shot(name).catch(() => {});
  console.error(error.stack || String(error));
  await browser.close();
  process.exit(1);
}

// The API with the token, and a wait on a condition polled five times a second.
export function client(page, base, token) {
  const bearer = { headers: { Authorization: "Bearer " + token } };
  const api = async (path) => (await page.request.get(base + "/api/v1" + path, bearer)).json();
  const post = async (path, data) => page.request.post(base + "/api/v1" + path, { ...bearer, data });
  const until = async (what, condition, seconds = 60) => {
    for (let i = 0; i < seconds * 5; i++) {
      if (await condition()) return;
      await page.waitForTimeout(200);
    }
    throw new Error("timed out waiting for " + what);
  };
  return { api, post, until };
}
