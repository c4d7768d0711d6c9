// Data assets in headless Chromium: the asset graph, an asset's writes per interval, a
// rewrite that reruns one reader and leaves another stale, and the API behind the pages.
// Usage: node tests/browser/assets.mjs BASE_URL TOKEN SCREENSHOT_DIR
// The scheduler behind BASE_URL runs `agg` (eight 15-minute windows of warehouse.agg_15m),
// `validation` (hourly, reruns on a rewrite), `report` (hourly, mark_stale) and `waiting`
// (hourly, a third hour whose windows nobody writes).
import { check, client, open, fail } from "./lib.mjs";

const [base, token, shots] = process.argv.slice(2);
const { browser, page, errors, shot } = await open(shots);
const { api, post, until } = client(page, base, token);

try {
  // Without the token the pages are not shown (the sign-in page instead).
  const refused = await page.request.get(base + "/ui/data-assets");
  check(refused.status() === 401, "the asset pages need the token: " + refused.status());
  const refusedApi = await page.request.get(base + "/api/v1/assets");
  check(refusedApi.status() === 401, "so does the API");

  await page.goto(base + "/");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#token-form button")]);
  const done = async (dag, n) => (await api(`/dags/${dag}/runs?state=success&limit=100`)).runs.length === n;
  await until("both hours checked", async () => (await done("agg", 8)) && (await done("validation", 2)) &&
    (await done("report", 2)) && (await done("waiting", 2)));

  // A run whose windows nobody wrote says what it waits for.
  await page.goto(base + "/ui/dags/waiting/runs/scheduled__2025-09-01T02:00:00Z");
  check((await page.locator("#inputs").innerText()).includes("warehouse.agg_15m 2025-09-01T02:00:00+00:00–2025-09-01T02:15:00+00:00, "),
    "the waiting run's page names the windows it waits for");
  check(await page.locator("#inputs tr.missing").count() === 4, "four windows missing, one row each");
  const waiting = await api("/dags/waiting/runs/scheduled__2025-09-01T02:00:00Z");
  check(waiting.inputs.status === "waiting" && waiting.waiting_for.endsWith("not materialized yet"),
    "the API says so too: " + waiting.waiting_for);
  check((await page.locator("#tasks tr[data-task='check'] td").nth(1).innerText()).includes("deferred"),
    "its task is deferred, holding no slot");

  // The graph: agg → warehouse.agg_15m → validation, report.
  await page.click("nav a[href='/ui/data-assets']");
  const names = await page.locator("#asset-graph .node").evaluateAll((els) => els.map((e) => e.dataset.name));
  check(JSON.stringify(names) === JSON.stringify(["agg", "warehouse.agg_15m", "report", "validation", "waiting"]),
    "the graph: producer, asset, consumers: " + names);
  check(await page.locator("#asset-graph line.edge").count() === 4, "four edges");
  const row = page.locator("#assets tr[data-asset='warehouse.agg_15m'] td");
  check((await row.nth(1).innerText()) === "agg.load" && (await row.nth(2).innerText()) === "report, validation, waiting",
    "the table names the producing task and the consumers");
  await shot("21-asset-graph");

  // The asset's writes: eight windows, one write each, newest first.
  await page.click("#assets a");
  const starts = await page.locator("#materializations tbody tr").evaluateAll((els) => els.map((e) => e.dataset.start));
  check(starts.length === 8 && starts[0] === "2025-09-01 01:45:00Z" && starts[7] === "2025-09-01 00:00:00Z",
    "eight windows, newest first: " + starts[0] + " … " + starts[7]);

  // The 00:15 window written again: validation reruns its hour, report is left stale.
  const cleared = await post("/dags/agg/runs/scheduled__2025-09-01T00:15:00Z/clear", {});
  check(cleared.ok(), "the window cleared through the API");
  await until("the rerun and the stale mark", async () => {
    const stale = await api("/stale");
    const hour = (await api("/dags/validation/runs/scheduled__2025-09-01T00:00:00Z"));
    return stale.stale === 1 && hour.state === "success" && hour.inputs && hour.inputs.upstream_reruns === 1;
  });
  const stale = await api("/stale");
  check(stale.intervals[0].dag_id === "report" && stale.intervals[0].rerun === false &&
    stale.intervals[0].causes[0].includes("warehouse.agg_15m 2025-09-01T00:15:00+00:00 rewritten by agg"),
    "GET /stale: report's hour, with the rewrite: " + stale.intervals[0].causes[0]);
  const history = await api("/assets/warehouse.agg_15m");
  const window = history.materializations.filter((m) => m.interval.start === "2025-09-01T00:15:00Z");
  check(window.length === 2 && window[1].version > window[0].version, "two versions of the window, in order");
  const listed = await api("/assets");
  check(listed.assets[0].stale_intervals === 1 && listed.assets[0].latest.version === window[1].version,
    "GET /assets: one stale reader, the newest write");

  await page.reload();
  const marked = page.locator("#materializations tr[data-start='2025-09-01 00:15:00Z']");
  check(await marked.getAttribute("class") === "stale" && (await marked.locator("td").nth(1).innerText()) === "2",
    "the window's row: two writes, a stale reader");
  check((await page.locator("#stale tr.stale[data-dag='report'] td").nth(3).innerText()) === "mark_stale: not rerun",
    "the stale readers' table says report is not rerun");
  check(await page.locator("#stale tr.stale").count() === 1, "only report stays stale: validation and waiting reran");
  await shot("22-asset-history");

  for (const bad of ["limit=0", "limit=999999", "from=yesterday", "from=2025-09-02T00:00:00Z&to=2025-09-01T00:00:00Z"]) {
    const refusedQuery = await page.request.get(base + "/api/v1/assets/warehouse.agg_15m?" + bad, { headers: { Authorization: "Bearer " + token } });
    check(refusedQuery.status() === 400, "a bad history query is refused: " + bad);
  }
  const unknown = await page.goto(base + "/ui/data-assets/no.such.asset");
  check(unknown.status() === 404 && (await page.locator("body").innerText()).includes("no asset `no.such.asset`"),
    "an unknown asset: 404, said");
  check(errors.length === 0, "no JavaScript errors: " + errors.join("; "));
  await browser.close();
} catch (error) {
  await fail(browser, shot, "assets-failure", error);
}
