// Drives Sluice's web UI in Debian's headless Chromium with playwright-core.
// Usage: node tests/browser/ui.mjs BASE_URL TOKEN SCREENSHOT_DIR
// The scheduler behind BASE_URL runs crates/sluice/tests/fixtures/ui: DAG `pipeline` with a
// succeeded, a failed and a running interval, and DAG `playground`.
import { readFileSync } from "node:fs";
import { check, open, fail } from "./lib.mjs";

const [base, token, shots] = process.argv.slice(2);
const { browser, page, errors, dialogs, shot } = await open(shots);

const bearer = { headers: { Authorization: "Bearer " + token } };

try {
  // With a token configured, pages need it too: the first page asks for it, then reloads.
  const signIn = await page.goto(base + "/");
  check(signIn.status() === 401 && await page.locator("#sign-in").count() === 1, "without the token, a sign-in page");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#token-form button")]);

  // The DAG list.
  check(await page.locator("#dags tr[data-dag=pipeline]").count() === 1, "the DAG list shows `pipeline`");
  check(await page.locator("#dags tr[data-dag=playground]").count() === 1, "the DAG list shows `playground`");
  const dots = await page.locator("#dags tr[data-dag=pipeline] .dot").evaluateAll((els) => els.map((e) => e.dataset.state));
  check(JSON.stringify(dots) === JSON.stringify(["success", "failed", "running"]), "pipeline's recent runs oldest first: " + dots);
  // A DAG file that does not load: a banner on the DAG list says which, where and why.
  const banner = page.locator("#import-errors");
  check(await banner.count() === 1, "the import-error banner is shown");
  const bannerText = await banner.textContent();
  check(/broken\.yaml:3:14/.test(bannerText) && bannerText.includes("nope"), "it names broken.yaml:3:14 and the problem: " + bannerText);
  await shot("1-dags");

  // Search and filters: by text through the form, by status and tag through the address.
  const listed = async () => page.locator("#dags tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.dag));
  await page.fill("#dag-filter input[name=q]", "PLAY");
  await Promise.all([page.waitForNavigation(), page.click("#dag-filter button[type=submit]")]);
  check(JSON.stringify(await listed()) === JSON.stringify(["playground"]), "searching `PLAY` lists playground only");
  check((await page.locator("#dag-count").textContent()).includes("1 of 3"), "the count says 1 of 3 DAGs");
  await page.goto(base + "/?status=failing");
  check(JSON.stringify(await listed()) === JSON.stringify(["pipeline"]), "`failing` lists pipeline (its newest finished run failed)");
  check(await page.locator("#dags tr[data-dag=pipeline] .badge.state-failed").count() === 1, "a failing badge marks it");
  await page.goto(base + "/?tag=demo");
  check(JSON.stringify(await listed()) === JSON.stringify(["pausable"]), "tag `demo` lists pausable only: " + JSON.stringify(await listed()));
  check(await page.locator("#dags tr[data-dag=pausable] td:nth-child(2)").textContent() === "data-team", "the owner column shows its owner");
  await page.goto(base + "/?status=paused");
  check(JSON.stringify(await listed()) === JSON.stringify(["pausable"]), "`paused` lists the paused DAG");
  await shot("7-dags-filtered");
  await page.goto(base + "/");

  // The grid: runs × tasks, coloured by state, with counts.
  await page.click("#dags tr[data-dag=pipeline] a.dag-link");
  await page.waitForSelector("#grid");
  const cells = await page.locator("#grid td.cell").evaluateAll((els) =>
    els.map((e) => ({ state: e.dataset.state, colour: getComputedStyle(e).backgroundColor })));
  const count = (state) => cells.filter((c) => c.state === state).length;
  check(cells.length === 9, "the grid has 3 tasks × 3 runs");
  check(count("success") === 5 && count("failed") === 1 && count("running") === 1 && count("upstream_failed") === 1 && count("none") === 1,
    "cell states: " + JSON.stringify(cells.map((c) => c.state)));
  const colour = (state) => cells.find((c) => c.state === state).colour;
  check(colour("success") === "rgb(45, 164, 78)", "success is green: " + colour("success"));
  check(colour("failed") === "rgb(215, 58, 73)", "failed is red: " + colour("failed"));
  check(colour("running") === "rgb(59, 130, 246)", "running is blue: " + colour("running"));
  check(colour("upstream_failed") === "rgb(240, 140, 46)", "upstream_failed is orange: " + colour("upstream_failed"));
  const legend = await page.locator("#counts .legend-item").evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.dataset.state, Number(e.querySelector(".count").textContent)])));
  check(legend.success === 5 && legend.failed === 1 && legend.running === 1, "the legend counts the cells: " + JSON.stringify(legend));
  check(await page.locator("svg.graph .node").count() === 3, "the graph view draws the 3 tasks");
  const kinds = await page.locator("#grid .kind").evaluateAll((els) => els.map((e) => e.textContent));
  check(JSON.stringify(kinds) === JSON.stringify(["S", "S", "S"]), "each run's head marks its kind: " + kinds);
  check((await page.locator("#grid .run-head .vertical").first().textContent()) === "2025-01-01 00:00", "run labels carry the year");
  check(await page.locator("#grid-older").count() === 0 && await page.locator("#grid-newer").count() === 0, "three runs need no paging");
  await shot("2-grid");

  // Auto-refresh: ticked, the page reloads by itself (within 10 s), and stays ticked.
  await page.evaluate(() => { window.sluiceMark = 1; });
  await page.check("#auto-refresh");
  await page.waitForFunction(() => window.sluiceMark === undefined, null, { timeout: 15000 });
  check(await page.isChecked("#auto-refresh"), "auto-refresh reloaded the page and is still on");
  await page.uncheck("#auto-refresh");

  // The run list: every run, newest first, by state.
  await page.click("#dag-links a[href$='/runs']");
  await page.waitForSelector("#runs");
  const runStates = await page.locator("#runs tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.state));
  check(JSON.stringify(runStates) === JSON.stringify(["running", "failed", "success"]), "the run list, newest first: " + runStates);
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test((await page.locator("#runs tbody tr:last-child td:nth-child(5)").textContent()).trim()), "times to the second");
  await page.selectOption("#run-filter select[name=state]", "failed");
  await Promise.all([page.waitForNavigation(), page.click("#run-filter button[type=submit]")]);
  check(JSON.stringify(await page.locator("#runs tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.run))) ===
    JSON.stringify(["scheduled__2025-01-01T01:00:00Z"]), "filtered to the failed run");
  await page.goto(base + "/ui/dags/pipeline/runs");
  await shot("8-runs");

  // The interval calendar: every interval of the range by its ledger status.
  await page.goto(base + "/ui/dags/pipeline/calendar");
  const intervals = await page.locator("#calendar td.interval").evaluateAll((els) => els.map((e) => e.dataset.status));
  check(JSON.stringify(intervals) === JSON.stringify(["success", "failed", "running"]), "the calendar colours each interval by the ledger: " + intervals);
  check((await page.locator("#gap-count").textContent()) === "2", "two intervals are not processed yet");
  check((await page.locator("#calendar td.interval[data-status=failed]").getAttribute("title")).includes("scheduled__2025-01-01T01:00:00Z"), "a cell names its run");
  await page.goto(base + "/ui/dags/pipeline/calendar?from=2024-12-31T22:00:00Z&to=2025-01-01T03:00:00Z&tz=dag");
  check((await page.locator("#calendar td.interval").count()) === 3, "intervals before the DAG's start are not drawn");
  await page.goto(base + "/ui/dags/pipeline/calendar?from=nonsense");
  check((await page.locator("main").textContent()).includes("RFC 3339"), "a bad range says what to give");
  // Hostile addresses: each refused with what to give, never a crash or an echo as markup.
  const said = async (path) => { const r = await page.goto(base + path); return [r.status(), await page.locator("main").textContent()]; };
  let [status, text] = await said("/ui/dags/pipeline/calendar?to=-262143-01-01T00:00:00Z");
  check(status === 400 && text.includes("1970 to 9999"), "a calendar year out of range is refused: " + status);
  [status, text] = await said("/ui/dags/pipeline/runs?state=%3Cscript%3Ealert(1)%3C/script%3E");
  check(status === 400 && text.includes("no run state `<script>") && await page.locator("main script").count() === 0, "an unknown run state is refused, shown as text");
  await page.goto(base + "/?q=" + "x".repeat(5000));
  check((await page.locator("#dags tbody tr").count()) === 0 && (await page.locator("#dag-filter input[name=q]").inputValue()).length === 200,
    "a 5,000-character search is cut to 200 and matches nothing");
  await page.goto(base + "/ui/dags/pipeline/calendar");
  await shot("9-calendar");
  await page.goto(base + "/ui/dags/pipeline");

  // A failed task: its attempt and its log.
  await page.click("#grid td.cell[data-state=failed] a");
  await page.waitForSelector("#task-state");
  check(await page.locator("#task-state").getAttribute("data-state") === "failed", "the failed task's page");
  await page.waitForFunction(() => document.getElementById("log").dataset.complete === "true", null, { timeout: 15000 });
  const log = await page.locator("#log").textContent();
  check(log.includes("working on 2025-01-01T01:00:00") && log.includes("boom"), "its log is shown: " + JSON.stringify(log));
  check((await page.locator("#attempts tbody tr").count()) === 1, "one attempt listed");
  // Search, wrap and download the log.
  // `boom` is in the logged command line and in its output: two matches.
  await page.fill("#log-search", "BOOM");
  const marks = await page.locator("#log mark").allTextContents();
  check((await page.locator("#log-matches").textContent()) === "2 matches" &&
    marks.length === 2 && marks.every((m) => m === "boom"), "searching (any case) marks each `boom`: " + marks);
  await shot("3-failed-task-log");
  await page.fill("#log-search", "");
  check((await page.locator("#log mark").count()) === 0 && (await page.locator("#log").textContent()) === log, "cleared, the whole log again");
  await page.uncheck("#log-wrap");
  check(await page.locator("#log").evaluate((e) => e.classList.contains("nowrap") && getComputedStyle(e).whiteSpace === "pre"), "wrap off: lines stay whole");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#log-download")]);
  check(download.suggestedFilename() === "pipeline-scheduled__2025-01-01T01_00_00Z-work-try1.log", "the download is named after the attempt: " + download.suggestedFilename());
  check(readFileSync(await download.path(), "utf8") === log, "the downloaded file is the log");

  // A running task's log follows.
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T02:00:00Z/tasks/work");
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("working on"), null, { timeout: 15000 });
  check((await page.locator("#log-follow").textContent()).includes("following"), "a running attempt's log is followed");

  // The run page: Gantt chart and task table.
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z");
  check(await page.locator("svg.gantt .bar").count() === 2, "the Gantt chart has a bar per attempt");
  await shot("4-run-gantt");

  // Buttons need the token in this browser's storage (the cookie serves reads only): without
  // it the API's refusal is shown.
  await page.evaluate(() => localStorage.removeItem("sluice.api-token"));
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z");
  await page.click("#tasks tr[data-task=work] button[data-action=clear-task]");
  await page.waitForSelector("#toast:not([hidden]).error");
  check((await page.locator("#toast").textContent()).startsWith("401"), "without a token, the refusal is shown");
  await page.fill("#token", token);
  await page.click("#token-form button");
  await page.waitForFunction(() => document.getElementById("token-state").textContent === "token set");

  // Clear the failed task through its button: it runs again (and fails again).
  await page.click("#tasks tr[data-task=work] button[data-action=clear-task]");
  check(dialogs.at(-1).includes("These task instances run again") && dialogs.at(-1).endsWith(": work"), "the clear's preview names work: " + dialogs.at(-1));
  await page.waitForLoadState("load");
  const tries = async () => (await (await page.request.get(base +
    "/api/v1/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z/tasks/work", bearer)).json()).attempts.length;
  for (let i = 0; i < 100 && (await tries()) < 2; i++) await page.waitForTimeout(100);
  check((await tries()) === 2, "clearing through the button ran the task again");
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z");
  await shot("5-after-clear");

  // Mark the failed task success after its preview: publish, left upstream_failed, keeps the
  // run failed (an interval whose task never ran is not processed) until it is cleared.
  const runPath = base + "/api/v1/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z";
  const stateOf = async (task) => (await (await page.request.get(runPath + "/tasks/" + task, bearer)).json()).state;
  const runState = async () => (await (await page.request.get(runPath, bearer)).json()).state;
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z");
  await page.click("#tasks tr[data-task=work] button[data-action=mark][data-state=success]");
  check(dialogs.at(-1).startsWith("Mark work success in scheduled__2025-01-01T01:00:00Z?") && dialogs.at(-1).includes("upstream_failed"),
    "the mark's preview says what stays: " + dialogs.at(-1));
  for (let i = 0; i < 100 && (await stateOf("work")) !== "success"; i++) await page.waitForTimeout(100);
  check((await stateOf("work")) === "success" && (await runState()) === "failed", "work marked success; the run stays failed");
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z");
  await page.click("#tasks tr[data-task=publish] button[data-action=clear-task]");
  for (let i = 0; i < 100 && (await runState()) !== "success"; i++) await page.waitForTimeout(100);
  check((await runState()) === "success", "publish cleared, ran, and the run succeeded");

  // Pause, then unpause, through the one button: each click flips the DAG (the API agrees).
  const pausedNow = async () => (await (await page.request.get(base + "/api/v1/dags/playground", bearer)).json()).is_paused;
  await page.goto(base + "/ui/dags/playground");
  const before = await pausedNow();
  for (const expected of [!before, before]) {
    await page.click("button[data-action=pause]");
    for (let i = 0; i < 50 && (await pausedNow()) !== expected; i++) await page.waitForTimeout(100);
    check((await pausedNow()) === expected, "the pause button set is_paused to " + expected);
    await page.goto(base + "/ui/dags/playground");
    const label = (await page.locator("button[data-action=pause]").textContent()).trim();
    check(label === (expected ? "Unpause" : "Pause"), "the button now reads " + label);
  }

  // Trigger a run through the button: the page moves to the new run.
  await page.goto(base + "/ui/dags/playground");
  await Promise.all([
    page.waitForURL(/\/ui\/dags\/playground\/runs\/manual__/),
    page.click("button[data-action=trigger]"),
  ]);
  const runId = decodeURIComponent(page.url().split("/runs/")[1]);
  check(runId.startsWith("manual__"), "trigger created " + runId);
  const triggered = await (await page.request.get(base + "/api/v1/dags/playground/runs/" + encodeURIComponent(runId), bearer)).json();
  check(triggered.run_type === "manual", "the triggered run exists in the API");
  await shot("6-triggered-run");

  // Run the 00:00 interval again: the calendar rings it as reprocessed.
  const first = base + "/api/v1/dags/pipeline/runs/scheduled__2025-01-01T00:00:00Z";
  await page.goto(base + "/ui/dags/pipeline/runs/scheduled__2025-01-01T00:00:00Z");
  await page.click("button[data-action=clear-run]");
  check(["extract", "work", "publish"].every((t) => dialogs.at(-1).includes(t)), "Clear all previews every task: " + dialogs.at(-1));
  const successes = async () => {
    const audit = await (await page.request.get(base + "/api/v1/dags/pipeline/audit?from=2025-01-01T00:00:00Z&to=2025-01-01T01:00:00Z", bearer)).json();
    return audit.entries[0].successes;
  };
  for (let i = 0; i < 100 && (await successes()) < 2; i++) await page.waitForTimeout(100);
  check((await (await page.request.get(first, bearer)).json()).state === "success" && (await successes()) === 2, "the interval succeeded a second time");
  await page.goto(base + "/ui/dags/pipeline/calendar");
  check((await page.locator("#calendar td.interval.reprocessed").count()) === 1 &&
    (await page.locator("#calendar td.interval.reprocessed").getAttribute("title")).includes("succeeded 2 times"), "the calendar rings the reprocessed interval");
  check((await page.locator("#calendar-summary").textContent()).includes("1 reprocessed"), "and counts it");

  check(errors.length === 0, "no JavaScript errors: " + errors.join("; "));
} catch (error) {
  await fail(browser, shot, "failure", error);
}
await browser.close();
console.log("all UI checks passed; screenshots in " + shots);
