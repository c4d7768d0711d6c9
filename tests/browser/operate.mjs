// An operator's pages on DAGs with history, in headless Chromium.
// Usage: node tests/browser/operate.mjs BASE_URL TOKEN SCREENSHOT_DIR DAG_FOLDER HOURLY_START
// The scheduler behind BASE_URL runs `hourly` (Europe/Berlin, 60 hourly intervals from
// HOURLY_START caught up), `slow` (misses its SLA) and `kept` (this script breaks its file).
import { writeFileSync } from "node:fs";
import { check, client, open, fail } from "./lib.mjs";

const [base, token, shots, dagFolder, hourlyStart] = process.argv.slice(2);
const { browser, page, errors, shot } = await open(shots);
const { api, post, until } = client(page, base, token);
const hour = 3600 * 1000;
const at = (offsetHours) => new Date(Date.parse(hourlyStart) + offsetHours * hour).toISOString().replace(".000Z", "Z");

try {
  // Sign in: the token is kept in this browser.
  await page.goto(base + "/");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#token-form button")]);

  // `hourly` catches up its 60 intervals.
  const succeeded = async () => (await api("/dags/hourly/runs?state=success&limit=100")).runs.length;
  await until("hourly's 60 runs", async () => (await succeeded()) === 60, 120);
  check(true, "hourly caught up 60 intervals");

  // The grid pages by 25: 25, 25, then 10, and back.
  await page.goto(base + "/ui/dags/hourly");
  const heads = async () => page.locator("#grid .run-head a").evaluateAll((els) => els.map((e) => e.title.split(" ")[0]));
  let shown = await heads();
  check(shown.length === 25 && shown.at(-1) === "scheduled__" + at(59), "the first page: the newest 25 runs, newest right: " + shown.at(-1));
  check(await page.locator("#grid-newer").count() === 0, "no newer page from the newest");
  await page.click("#grid-older");
  shown = await heads();
  check(shown.length === 25 && shown.at(-1) === "scheduled__" + at(34), "older: the next 25: " + shown.at(-1));
  await page.click("#grid-older");
  shown = await heads();
  check(shown.length === 10 && shown[0] === "scheduled__" + at(0) && await page.locator("#grid-older").count() === 0,
    "the last page: the 10 oldest, and no older link");
  await page.click("#grid-newer");
  check((await heads()).at(-1) === "scheduled__" + at(34), "newer goes back a page");
  await shot("13-grid-paged");

  // A date range narrows the grid to the runs whose logical date is in it; paging keeps it.
  await page.goto(base + "/ui/dags/hourly");
  await page.fill("#grid-range input[name=from]", at(10));
  await page.fill("#grid-range input[name=to]", at(20));
  await Promise.all([page.waitForNavigation(), page.click("#grid-range button[type=submit]")]);
  shown = await heads();
  check(shown.length === 10 && shown[0] === "scheduled__" + at(10) && shown.at(-1) === "scheduled__" + at(19),
    "from/to shows the 10 runs of [from, to): " + shown[0] + " … " + shown.at(-1));
  await page.goto(base + "/ui/dags/hourly?from=" + at(0) + "&to=" + at(40));
  await page.click("#grid-older");
  check(new URL(page.url()).searchParams.get("from") === at(0) && (await heads()).length === 15, "the older page keeps the range (15 runs left)");
  // A bound left blank is no bound: from only, the newest runs after it.
  await page.goto(base + "/ui/dags/hourly");
  await page.fill("#grid-range input[name=from]", at(50));
  await Promise.all([page.waitForNavigation(), page.click("#grid-range button[type=submit]")]);
  shown = await heads();
  check(shown.length === 10 && shown[0] === "scheduled__" + at(50) && new URL(page.url()).searchParams.get("to") === "",
    "from alone (to left blank) shows the 10 runs from it: " + shown.length);
  let response = await page.goto(base + "/ui/dags/hourly?from=nonsense");
  check(response.status() === 400 && (await page.locator("main").textContent()).includes("RFC 3339"), "a bad range says what to give");

  // The run list pages by 50.
  await page.goto(base + "/ui/dags/hourly/runs");
  check((await page.locator("#runs tbody tr").count()) === 50 && await page.locator("#older").count() === 1, "the run list shows 50 and an older link");
  await page.click("#older");
  const rest = await page.locator("#runs tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.run));
  check(rest.length === 10 && rest.at(-1) === "scheduled__" + at(0) && await page.locator("#older").count() === 0, "page 2: the 10 oldest");

  // The calendar in the DAG's zone: Berlin is UTC+1 in winter, UTC+2 in summer.
  await page.goto(base + "/ui/dags/hourly/calendar?tz=dag");
  check((await page.locator("#calendar td.interval").count()) === 60, "the calendar draws the 60 intervals");
  const berlin = new Intl.DateTimeFormat("sv-SE", { timeZone: "Europe/Berlin", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  const local = berlin.format(new Date(hourlyStart)).replace(",", "");
  const firstTitle = await page.locator("#calendar td.interval").first().getAttribute("title");
  check(firstTitle.startsWith(local) && firstTitle.includes("(Europe/Berlin)"), "the first interval in Berlin time (" + local + "): " + firstTitle);
  const days = await page.locator("#calendar th").allTextContents();
  check(days[0].startsWith(local.slice(0, 10)), "days are Berlin's: " + days[0]);
  await page.goto(base + "/ui/dags/hourly/calendar?tz=utc");
  const utcTitle = await page.locator("#calendar td.interval").first().getAttribute("title");
  check(utcTitle.startsWith(hourlyStart.slice(0, 16).replace("T", " ")) && utcTitle.includes("(UTC)"), "and in UTC: " + utcTitle);
  await page.goto(base + "/ui/dags/hourly/calendar?tz=dag");
  await shot("19-calendar-berlin");

  // The definition: the file with line numbers and the compiled tasks.
  await page.goto(base + "/ui/dags/hourly");
  await page.click("#dag-links a[href$='/code']");
  await page.waitForSelector("#dag-source");
  check((await page.locator("#code-path").textContent()).endsWith("hourly.yaml"), "the code page names the file");
  const lines = await page.locator("#dag-source .line").allTextContents();
  check(lines.length === 16 && lines[0].startsWith("1# Hourly in Berlin") && lines[1] === "2dag: hourly\n", "the file, numbered: " + JSON.stringify(lines.slice(0, 2)));
  const extractRow = page.locator("#code-tasks tr[data-task=extract]");
  check((await extractRow.textContent()).includes("{{ ds }}") && (await page.locator("#code-tasks tr[data-task=load] td:nth-child(3)").textContent()) === "extract",
    "the tasks as compiled: extract's template as written, load after extract");
  check(await page.locator("#code-version + .badge").textContent() === "current", "the current version is marked");
  await page.goto(base + "/ui/dags/hourly/code#L13");
  await shot("14-code");
  response = await page.goto(base + "/ui/dags/hourly/code?version=%3Cb%3Enope");
  check(response.status() === 404 && (await page.locator("main").textContent()).includes("no version `<b>nope`"), "an unknown version is refused, shown as text");

  // A task instance's rendered fields: the command as it ran for that interval.
  const runId = "scheduled__" + at(5);
  await page.goto(base + "/ui/dags/hourly/runs/" + runId + "/tasks/extract");
  const rendered = page.locator("#rendered tr[data-recorded=true]");
  check(await rendered.count() === 1, "one rendered field recorded");
  const ds = at(5).slice(0, 10);
  const text = await rendered.locator("pre").textContent();
  check(text.startsWith("echo extracting " + ds + " for ") && text.includes("eu") && !text.includes("{{"), "rendered for its interval: " + text);
  check((await api("/dags/hourly/runs/" + runId + "/tasks/extract")).attempts[0].rendered_fields !== undefined, "the API has them too");
  await shot("15-rendered-fields");
  await page.goto(base + "/ui/dags/hourly/runs/" + runId + "/tasks/load");
  check((await page.locator("main").textContent()).includes("no templated field"), "a noop task has none");

  // The Gantt chart: round clock ticks, a duration beside each bar.
  await page.goto(base + "/ui/dags/hourly/runs/" + runId);
  const ticks = await page.locator("svg.gantt .tick text").allTextContents();
  check(ticks.length >= 2 && ticks.every((t) => /^\d\d:\d\d(:\d\d(\.\d)?)?$/.test(t)), "the axis has round ticks: " + ticks);
  const took = await page.locator("svg.gantt .bar .took").allTextContents();
  check(took.length === 2 && took.every((t) => /^\d+( ms|\.\d s)$/.test(t)), "each bar says how long it took: " + took);
  check((await page.locator("svg.gantt .axis").textContent()).startsWith("UTC, from "), "the axis says its zone");
  const times = await page.locator("#tasks tbody td:nth-child(4), #tasks tbody td:nth-child(5)").allTextContents();
  check(times.length === 4 && times.every((t) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(t)), "task times to the second: " + times);
  await shot("16-gantt-axis");

  // Two backfills: the DAG page lists both, newest first, each with its progress.
  for (const [from, to] of [[at(0), at(2)], [at(10), at(13)]]) {
    const created = await post("/dags/hourly/backfills", { from, to, reprocess: "completed" });
    check(created.status() === 201, "backfill " + from + " → " + to + " started: " + created.status());
    await until("the backfill to finish", async () => {
      const open = (await api("/backfills")).backfills.filter((b) => b.dag_id === "hourly");
      return open.length === 0 || open.every((b) => b.state === "done");
    });
  }
  await page.goto(base + "/ui/dags/hourly");
  const history = await page.locator("#backfill-history tbody tr").evaluateAll((rows) => rows.map((r) => r.textContent));
  check(history.length === 2 && history[0].includes(at(10).replace("T", " ")) && history[0].includes("3/3") && history[1].includes("2/2"),
    "the backfill history, newest first, each done: " + JSON.stringify(history));
  const progress = page.locator("#backfill-progress");
  check((await progress.getAttribute("data-done")) === "3" && (await progress.textContent()).includes("3/3 done: 3 succeeded, 0 failed") &&
    (await progress.locator("progress").getAttribute("value")) === "3", "the latest backfill's progress bar is full: " + (await progress.textContent()).trim());
  await page.locator("#backfill-history").scrollIntoViewIfNeeded();
  await shot("18-backfills");

  // SLA misses: `slow` sleeps past its 2 s deadline; the list shows the breach.
  await until("slow's SLA breach", async () => {
    await page.goto(base + "/ui/sla");
    return (await page.locator("#sla-misses tr[data-dag=slow][data-kind=breach]").count()) >= 1;
  });
  check(true, "the SLA misses page lists slow's breach");
  await page.goto(base + "/ui/sla?dag=slow&kind=breach");
  const kinds = await page.locator("#sla-misses tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.kind + "/" + r.dataset.dag));
  check(kinds.length >= 1 && kinds.every((k) => k === "breach/slow"), "filtered to slow's breaches: " + kinds);
  const cells = await page.locator("#sla-misses tbody tr").first().locator("td").allTextContents();
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/.test(cells[5]) && /^\d+s$/.test(cells[6]), "a row says when it was due and how late: " + cells.slice(4, 7));
  await shot("17-sla-misses");
  await page.goto(base + "/ui/sla?dag=hourly");
  check(await page.locator("#no-sla").count() === 1, "hourly has no SLA miss");
  response = await page.goto(base + "/ui/sla?days=100000");
  check(response.status() === 400 && (await page.locator("main").textContent()).includes("1 to 366"), "too many days are refused with the bound");
  response = await page.goto(base + "/ui/sla?kind=%3Cscript%3Ex%3C/script%3E");
  check(response.status() === 400 && await page.locator("main script").count() === 0, "an unknown kind is refused, shown as text");
  await page.goto(base + "/ui/dags/slow");
  await page.click("#sla-link");
  check(new URL(page.url()).searchParams.get("dag") === "slow", "the DAG page's SLA counts link to its misses");

  // `kept` breaks after loading: the banner says so and links to the version it keeps.
  writeFileSync(dagFolder + "/kept.yaml", "dag: kept\ntasks:\n  a: { type: nope }\n");
  await until("the banner for kept.yaml", async () => {
    await page.goto(base + "/");
    return (await page.locator("#import-errors li[data-file$='kept.yaml'] a").count()) === 1;
  }, 30);
  const link = page.locator("#import-errors li[data-file$='kept.yaml'] a");
  check((await link.getAttribute("href")) === "/ui/dags/kept" &&
    (await page.locator("#import-errors li[data-file$='kept.yaml']").textContent()).includes("keeps its last good version"), "the banner links to the kept DAG");
  await shot("20-kept-banner");
  await Promise.all([page.waitForNavigation(), link.click()]);
  check((await page.locator("h1").textContent()).startsWith("kept") && await page.locator("#import-errors").count() === 1, "the kept DAG's page, banner still shown");

  check(errors.length === 0, "no JavaScript errors: " + errors.join("; "));
} catch (error) {
  await fail(browser, shot, "failure", error);
}
await browser.close();
console.log("all operator checks passed; screenshots in " + shots);
