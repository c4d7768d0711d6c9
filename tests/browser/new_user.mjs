// A new user's first hour, in Debian's headless Chromium with playwright-core, against the
// scheduler `scripts/run` started on the quickstart DAGs.
// Usage: node tests/browser/new_user.mjs BASE_URL TOKEN SCREENSHOT_DIR DAG_FOLDER
import { writeFileSync } from "node:fs";
import { check, open, fail } from "./lib.mjs";

const [base, token, shots, dagFolder] = process.argv.slice(2);
const { browser, page, errors, dialogs, shot } = await open(shots);
const bearer = { headers: { Authorization: "Bearer " + token } };
const apiGet = async (path) => (await page.request.get(base + path, bearer)).json();
async function until(what, condition, seconds = 60) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await condition()) return;
    await page.waitForTimeout(250);
  }
  throw new Error("timed out waiting for " + what);
}

const runId = "manual__2025-09-02T00:00:00Z";
const runPage = base + "/ui/dags/hello_pipeline/runs/" + encodeURIComponent(runId);
const run = () => apiGet("/api/v1/dags/hello_pipeline/runs/" + encodeURIComponent(runId));

try {
  // The token scripts/run printed opens the UI.
  await page.goto(base + "/");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#token-form button")]);
  const dags = await page.locator("#dags tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.dag));
  check(["fan_out_fan_in", "hello_pipeline", "manual_report"].every((d) => dags.includes(d)), "the quickstart DAGs are listed: " + dags);

  // Trigger hello_pipeline from the form its params make, with a conf value and a date.
  await page.click("#dags tr[data-dag=hello_pipeline] a.dag-link");
  await page.click("#trigger-details summary");
  const field = page.locator("#trigger-form [name=greeting]");
  check(await field.inputValue() === "hello", "the greeting field holds the param's default");
  check(await field.getAttribute("maxlength") === "200", "the param's maxLength bounds the field");
  await field.fill("hi from the browser test");
  await page.fill("#trigger-form [name=logical_date]", "2025-09-02T00:00:00Z");
  await shot("10-trigger-form");
  await Promise.all([page.waitForURL(/\/runs\/manual__/), page.click("#trigger-form button[type=submit]")]);
  check(decodeURIComponent(page.url()).endsWith(runId), "the form's run is " + runId);
  check((await page.locator("#run-conf").textContent()).includes("hi from the browser test"), "the run page shows its conf");

  // Watch it finish, and find the conf value in the load task's log.
  await until("the run to succeed", async () => (await run()).state === "success");
  await page.goto(runPage);
  check(await page.locator("#run-state").getAttribute("data-state") === "success", "the run finished: success");
  await page.goto(runPage + "/tasks/load");
  await page.waitForFunction(() => document.getElementById("log").dataset.complete === "true", null, { timeout: 15000 });
  check((await page.locator("#log").textContent()).includes("HI FROM THE BROWSER TEST FROM 2025-09-02"), "load's log has the conf value, upper-cased by transform");
  await page.goto(runPage);
  await shot("11-hello-finished");

  // Pause and unpause.
  const paused = async () => (await apiGet("/api/v1/dags/hello_pipeline")).is_paused;
  for (const expected of [true, false]) {
    await page.goto(base + "/ui/dags/hello_pipeline");
    await page.click("button[data-action=pause]");
    await until("is_paused " + expected, async () => (await paused()) === expected, 10);
    check((await paused()) === expected, (expected ? "paused" : "unpaused") + " through the button");
  }

  // Clear extract with its downstream: the preview names what runs again; they run again.
  await page.goto(runPage);
  await page.click("#tasks tr[data-task=extract] button[data-action=clear-downstream]");
  check(dialogs.length === 1 && ["extract", "transform", "load", "done"].every((t) => dialogs[0].includes(t)),
    "the clear's preview names extract and its downstream: " + dialogs[0]);
  const tries = async (task) => (await apiGet("/api/v1/dags/hello_pipeline/runs/" + encodeURIComponent(runId) + "/tasks/" + task)).attempts.length;
  await until("extract and done to run again", async () => (await tries("extract")) === 2 && (await tries("done")) === 2);
  await until("the run to succeed again", async () => (await run()).state === "success");
  check((await tries("load")) === 2, "load ran again after the clear, and the run succeeded again");
  await page.goto(runPage);
  await page.evaluate(() => { window.confirm = () => false; });
  await page.click("#tasks tr[data-task=extract] button[data-action=clear-task]");
  await page.waitForTimeout(500);
  check((await tries("extract")) === 2, "a preview answered no clears nothing");
  await page.goto(runPage);
  await shot("12-clear-preview");

  // A DAG file that does not load: within the reload interval the banner says where.
  writeFileSync(dagFolder + "/broken.yaml", "dag: broken\nschedule: \"*/5 * * * *\"\ntasks:\n  a: { type: comand }\n");
  await until("the banner", async () => {
    await page.goto(base + "/");
    return (await page.locator("#import-errors").count()) === 1;
  }, 30);
  const banner = await page.locator("#import-errors").textContent();
  check(banner.includes("broken.yaml:4:") && banner.includes("comand"), "the banner names broken.yaml:4 and the problem");
  check(errors.length === 0, "no JavaScript errors: " + errors.join("; "));
} catch (error) {
  await fail(browser, shot, "new-user-failure", error);
}
await browser.close();
console.log("the new user's path passed");
