// The demo page (www/) in a real browser: Debian's chromium driven by
// playwright-core, against the built worker under `wrangler dev` and the
// bundled sandbox. Walks every flow of the page at desktop width, then the
// key errors and the layout at phone width, then the admin's caller keys and
// audit trail at both widths, then an order through a reload, the answers
// that are not a plain order (Xoxoday's refusals, a failed order, a delayed
// product's order without vouchers yet, a cached balance), an order dated by
// India's day in the history, and the history's default dates; fails on any
// console error the test did not cause on purpose; saves screenshots under
// test-results/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startSandbox, startWorker, standardKeys, leakScan, launchChromium, waitFor, HIGH_LIMITS } from "./harness.mjs";

const SHOTS = join(ROOT, "test-results/screenshots");
// The page formats numbers in the browser's locale; the assertions read
// en-US grouping ("249,975"), whatever the machine's locale is.
const LOCALE = "en-US";
const keys = standardKeys();
let sandbox;
let worker;
let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sandbox = await startSandbox(["--quiet"]);
  // The bootstrap access token is used as is (no refresh at start), so the
  // page's first forced refresh is not throttled and its second one is.
  // BALANCE_ALERT_BELOW above the sandbox's balance (250,000): the page's
  // first balance raises a balance_low alert (no webhook: recorded, not
  // sent), which the token panel shows.
  worker = await startWorker({
    sandbox, keys,
    vars: { DEV_CALLER_KEY: keys.admin.key, XOXODAY_ACCESS_TOKEN: "plumgate-dev-access-token", BALANCE_ALERT_BELOW: "1000000" },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close().catch(() => {});
  await worker?.stop();
  const hits = await leakScan(sandbox, keys);
  await sandbox?.stop();
  assert.deepEqual(hits, [], "no secret in any log line");
});

/**
 * Console watch: every console error and page error is a failure, except the
 * browser's own "Failed to load resource: ... status of N" line for an HTTP
 * error the test provoked on purpose (listed in `expected`), and its
 * "net::ERR_FAILED" line for a request the test aborted on purpose
 * (`aborted` of them).
 */
function watchConsole(page) {
  const unexpected = [];
  const httpStatuses = [];
  let netFailures = 0;
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const m = /^Failed to load resource: the server responded with a status of (\d{3})/.exec(msg.text());
    if (m) httpStatuses.push(Number(m[1]));
    else if (msg.text() === "Failed to load resource: net::ERR_FAILED") netFailures += 1;
    else unexpected.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (e) => unexpected.push(`pageerror: ${e.message}`));
  return {
    check(expected, aborted = 0) {
      assert.deepEqual(unexpected, [], "no console error");
      const got = [...new Set(httpStatuses)].sort();
      assert.deepEqual(got, [...new Set(expected)].sort(), "only the HTTP errors the test provoked");
      assert.equal(netFailures, aborted, "only the requests the test aborted failed");
    },
  };
}

/** Every form control has an accessible name from a label (or aria-label). */
async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden")
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.name));
  assert.deepEqual(unlabelled, [], "every control has a label");
}

const text = (page, sel) => page.locator(sel).innerText();

// Places the form's order with its answer lost on the way (the request
// aborted), waits for the page to call it unconfirmed, and lets later
// orders through again. Returns the poNumber the order went under.
async function loseOrderAnswer(page) {
  const po = await text(page, "#po-number");
  await page.route("**/v1/ops/placeOrder", (route) => route.abort("failed"));
  await page.click("#place-order");
  await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await text(page, "#uncertain-po"), po, "the unconfirmed order is the one sent");
  return po;
}

// Holds the page's placeOrder requests until the returned function is
// called, which lets them on to plumgate. The caller unroutes
// "**/v1/ops/placeOrder" once the answer is in.
async function holdPlaceOrder(page) {
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route("**/v1/ops/placeOrder", async (route) => { await held; await route.continue(); });
  return release;
}

/**
 * The URLs of the page's requests that `wanted` picks while `act` runs and
 * for 300 ms after: what a refusal made by the page itself should leave
 * empty.
 */
async function requestsWhile(page, wanted, act) {
  const seen = [];
  const note = (r) => { if (wanted(r.url())) seen.push(r.url()); };
  page.on("request", note);
  try {
    await act();
    await page.waitForTimeout(300);
  } finally {
    page.off("request", note);
  }
  return seen;
}
const RID = /^[0-9a-f]{32}$/;

/** No rendering slip: no "null", "undefined", "NaN" or "[object Object]" in the visible text. */
async function assertCleanText(page) {
  const body = await page.locator("body").innerText();
  assert.doesNotMatch(body, /\bnull\b|\bundefined\b|\bNaN\b|\[object Object\]/);
}

/**
 * Keyboard focus never hides under the sticky top bar (WCAG 2.4.11): with
 * the page scrolled so that `to` sits under the bar, Tab from `from` onto it
 * shows it below the bar. The scroll padding follows the bar's real height.
 */
async function assertFocusClearsBar(page, from, to) {
  await page.evaluate(([from, to]) => {
    window.scrollBy(0, document.querySelector(to).getBoundingClientRect().top - 4);
    document.querySelector(from).focus({ preventScroll: true });
  }, [from, to]);
  assert.ok(await page.evaluate((to) => document.querySelector(to).getBoundingClientRect().top < document.querySelector(".topbar").getBoundingClientRect().bottom, to), `${to} under the bar before`);
  await page.keyboard.press("Tab");
  const m = await page.evaluate((to) => {
    const bar = document.querySelector(".topbar").getBoundingClientRect();
    return {
      focused: document.activeElement === document.querySelector(to),
      top: document.querySelector(to).getBoundingClientRect().top,
      bar: bar.bottom,
      padding: getComputedStyle(document.documentElement).scrollPaddingTop,
      height: Math.ceil(bar.height),
    };
  }, to);
  assert.ok(m.focused, `Tab reaches ${to}`);
  assert.ok(m.top >= m.bar, `${to} focused below the top bar (${m.top} < ${m.bar})`);
  assert.equal(m.padding, `${m.height + 8}px`, "scroll-padding-top is the bar's height and a little");
}

let current; // the page in use, for a screenshot when a step fails

/** The demo page at desktop width (1280 × 900), its console watched and its controls checked for labels. */
async function desktopPage(permissions = []) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: LOCALE });
  if (permissions.length) await ctx.grantPermissions(permissions, { origin: worker.url });
  const page = await ctx.newPage();
  current = page;
  page.setDefaultTimeout(30_000);
  const watch = watchConsole(page);
  await page.goto(`${worker.url}/`);
  await assertLabelled(page);
  return { ctx, page, watch };
}

test("demo page: every flow at desktop width, errors and layout at phone width", { timeout: 240_000 }, async () => {
  try {
    await walkThePage();
  } catch (e) {
    if (current && !current.isClosed()) {
      await current.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
      const statuses = await current.evaluate(() =>
        [...document.querySelectorAll("[role=status], [role=alert]")].map((el) => `${el.id}: ${el.textContent.trim()}`).filter((t) => !t.endsWith(": "))).catch(() => []);
      e.message += `\npage state (screenshot test-results/screenshots/failure.png):\n  ${statuses.join("\n  ")}`;
    }
    throw e;
  }
});

async function walkThePage() {
  // ---- static assets: served with a strict CSP, no secret inside.
  const home = await fetch(`${worker.url}/`);
  const csp = home.headers.get("content-security-policy") || "";
  await home.text();
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  for (const f of readdirSync(join(ROOT, "www"))) {
    const body = readFileSync(join(ROOT, "www", f), "utf8");
    for (const s of ["plumgate-dev-secret", "plumgate-dev-refresh-token", "plumgate-dev-access-token", keys.admin.key]) {
      assert.ok(!body.includes(s), `www/${f} holds no secret`);
    }
    // No dev caller key (scripts/dev.sh: pgk_dev_ and 48 hex) either; the
    // OpenAPI document's short placeholder example is not one.
    assert.doesNotMatch(body, /pgk_dev_[0-9a-f]{48}/, `www/${f} holds no dev caller key`);
    if (f.endsWith(".html")) {
      assert.doesNotMatch(body, /<script(?![^>]*\bsrc=)[^>]*>/i, "no inline script");
      assert.doesNotMatch(body, /\sstyle=|<style/i, "no inline style");
      assert.doesNotMatch(body, /\son[a-z]+=/i, "no inline event handler");
    }
  }

  // =================================================================== desktop
  const { ctx: desk, page, watch: dConsole } = await desktopPage();
  assert.equal(await text(page, "#key-status"), "No key set.");

  // ---- caller key: the dev key with one click, reached by keyboard only.
  await page.locator("#dev-key").waitFor({ state: "visible" });
  let focused = "";
  for (let i = 0; i < 25 && focused !== "dev-key"; i++) {
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  }
  assert.equal(focused, "dev-key", "the dev key button is reachable with Tab");
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set (local dev key)" }).waitFor();
  // Disabled while the key is fetched (Chromium then drops its focus): given back.
  await waitFor(() => page.evaluate(() => !document.getElementById("dev-key").disabled), { what: "the dev key button enabled again" });
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "dev-key", "focus back on the button, not on <body>");
  const storage = await page.evaluate(() => ({
    session: sessionStorage.getItem("plumgate.callerKey"),
    local: localStorage.length,
    cookie: document.cookie,
    input: document.getElementById("key-input").value,
  }));
  assert.equal(storage.session, keys.admin.key, "the key is in sessionStorage");
  assert.equal(storage.local, 0, "nothing in localStorage");
  assert.equal(storage.cookie, "", "no cookie");
  assert.equal(storage.input, "", "the key is not left in the field");
  assert.ok(!page.url().includes(keys.admin.key), "the key is never in the URL");
  // The catalog the key loads leaves the focus alone: no jump to its pager.
  await page.locator("#products button[data-product]").first().waitFor();
  assert.notEqual(await page.evaluate(() => document.activeElement && document.activeElement.id), "next-page", "the focus stays off the catalog's pager");

  // ---- balance, always visible in the sticky top bar.
  await page.locator("#balance-value", { hasText: "250,000" }).waitFor();

  // A key with a character no header can carry (a zero-width space, which
  // trim() keeps): refused by the form, named, nothing sent or stored; the
  // key set before stays, and nothing shown for it goes. (Before, every
  // call failed in the browser, shown as "Network error".)
  const sentCalls = [];
  const noteCall = (r) => { if (new URL(r.url()).pathname.startsWith("/v1/")) sentCalls.push(r.url()); };
  page.on("request", noteCall);
  await page.fill("#key-input", "pgk_dev_" + "a".repeat(20) + "\u200b");
  await page.click("#key-save");
  await page.locator("#key-status", { hasText: "That key was not used" }).waitFor();
  assert.equal(await text(page, "#key-status"), "That key was not used: it holds an invisible character (U+200B) at character 29, which no caller key has. "
    + "A caller key is 16–512 visible ASCII characters (no spaces, accents or invisible characters). The key set before stays in use.");
  await page.waitForTimeout(300);
  page.off("request", noteCall);
  assert.deepEqual(sentCalls, [], "nothing sent with it");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), keys.admin.key, "the key set before is kept");
  assert.equal(await page.inputValue("#key-input"), "", "the refused key is not left in the field");
  assert.doesNotMatch(await page.locator("body").innerText(), /Network error/);
  assert.equal(await page.locator("#products .card").count(), 12, "the catalog shown for the key set before stays");
  await page.locator("#balance-value", { hasText: "250,000" }).waitFor();

  // The dev key refused (its route turned off since the page asked): the
  // line says so with plumgate's message, code and request id (README: every
  // error shows them); the key set before stays.
  const devRid = "d".repeat(32);
  await page.route("**/v1/dev/caller-key", (route) => route.fulfill({
    status: 404, contentType: "application/json", headers: { "x-request-id": devRid },
    body: JSON.stringify({ error: { code: "not_found", message: "no such route", request_id: devRid } }),
  }));
  await page.click("#dev-key");
  await page.locator("#key-status", { hasText: "Could not get the dev key" }).waitFor();
  assert.equal(await text(page, "#key-status"), `Could not get the dev key: no such route (code not_found, request id ${devRid})`);
  await page.unroute("**/v1/dev/caller-key");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), keys.admin.key, "the key set before is kept");

  // ---- catalog: cards with image, denominations and delivery type.
  const cards = page.locator("#products .card");
  await waitFor(async () => (await cards.count()) === 12, { timeout: 20_000, what: "12 product cards" });
  const first = cards.first();
  assert.match(await first.locator(".card-title").innerText(), /Gift|Card|Voucher/);
  assert.match(await first.locator(".card-denoms").innerText(), /\d/);
  assert.match(await first.locator(".card-meta .badge").first().innerText(), /Instant|Delayed/);
  assert.match(await first.locator("img").getAttribute("src"), /\/sandbox-assets\/\d+\.svg$/);
  await waitFor(() => first.locator("img").evaluate((img) => img.complete && img.naturalWidth > 0), { timeout: 20_000, what: "product image loaded" });
  assert.match(await text(page, "#catalog-status"), /Showing products 1–12/);

  // filters from getFilters
  assert.ok(await page.locator("#country option").count() > 5, "countries from getFilters");
  assert.ok(await page.locator("#currency option").count() > 5, "currencies from getFilters");
  await page.selectOption("#country", "ind");
  await page.locator("#catalog-status", { hasText: "Showing products 1–12" }).waitFor();
  await waitFor(async () => (await cards.first().locator(".card-sub").innerText()).includes("India"), { timeout: 20_000, what: "India cards" });
  for (const sub of await page.locator("#products .card-sub").allInnerTexts()) assert.match(sub, /India/);
  await page.selectOption("#currency", "INR");
  await waitFor(async () => {
    const metas = await page.locator("#products .card-denoms").allInnerTexts();
    return metas.length > 0 && metas.every((m) => m.includes("INR"));
  }, { timeout: 20_000, what: "INR cards" });
  await page.selectOption("#currency", "EUR");
  await page.locator("#catalog-status", { hasText: "No products match these filters." }).waitFor();
  await page.selectOption("#currency", "");
  await page.selectOption("#country", "");
  await page.locator("#catalog-status", { hasText: "Showing products 1–12" }).waitFor();

  // paging
  const firstName = await cards.first().locator(".card-title").innerText();
  await page.click("#next-page");
  await page.locator("#page-label", { hasText: "Page 2" }).waitFor();
  await page.locator("#catalog-status", { hasText: "Showing products 13–24" }).waitFor();
  // Disabled while the page loads (Chromium then drops its focus): given back.
  await waitFor(() => page.evaluate(() => !document.getElementById("next-page").disabled), { what: "Next enabled again" });
  assert.equal(await page.evaluate(() => document.activeElement.id), "next-page", "focus back on Next, not on <body>");
  assert.notEqual(await cards.first().locator(".card-title").innerText(), firstName);
  assert.equal(await page.locator("#prev-page").isEnabled(), true);
  await page.click("#prev-page");
  // Page 1 again: answered from plumgate's edge cache, and the page says so.
  await page.locator("#catalog-status", { hasText: "Showing products 1–12 · edge cache hit" }).waitFor();

  // visible loading state (the next getVouchers answer is held for a moment)
  let release;
  let searches = 0;
  const held = new Promise((r) => { release = r; });
  await page.route("**/v1/ops/getVouchers", async (route) => { searches++; await held; await route.continue(); });
  await page.fill("#q", "coffee");
  await page.click("#catalog-search");
  await page.locator("#catalog-status", { hasText: "Loading products…" }).waitFor();
  assert.equal(await page.locator("#products").getAttribute("aria-busy"), "true");
  release();
  await page.locator("#catalog-status", { hasText: "Showing products" }).waitFor();
  // Typed, then submitted: one search, not a second one when the typing's
  // 350 ms debounce runs out.
  await new Promise((r) => setTimeout(r, 600));
  await page.unroute("**/v1/ops/getVouchers");
  assert.equal(searches, 1, "one getVouchers for one search");
  assert.equal(await page.locator("#products").getAttribute("aria-busy"), "false");
  for (const name of await page.locator("#products .card-title").allInnerTexts()) assert.match(name, /coffee/i);

  // ---- place an order: product 10100 (Harbor Coffee Co., USD, realtime).
  await page.fill("#q", "Harbor Coffee");
  await page.selectOption("#country", "usa");
  await waitFor(async () => (await cards.count()) === 1, { timeout: 20_000, what: "one Harbor Coffee US card" });
  await page.locator('#products button[data-product="10100"]').click();
  await page.locator("#order-form").waitFor({ state: "visible" });
  assert.match(await text(page, "#picked"), /Harbor Coffee Co\. US e-Gift Card/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "denomination", "focus moves to the order form");
  await page.selectOption("#denomination", "25");
  await page.fill("#quantity", "1");
  await page.fill("#email", "winner@example.com");
  const po = await text(page, "#po-number");
  assert.match(po, /^[A-Za-z0-9_./:-]{1,64}$/, "the page makes a valid poNumber");

  // A double click places one order.
  await page.dblclick("#place-order");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  await page.locator("#order-status", { hasText: `Order ${po} placed.` }).waitFor();
  let counters = await sandbox.counters();
  assert.equal(counters.orders, 1, "one order upstream after a double click");

  // The voucher is masked until revealed; the code is not in the DOM before.
  const voucher = page.locator("#order-result .voucher").first();
  assert.deepEqual(await voucher.locator("dd.secret").allInnerTexts(), ["••••••••", "••••••••"]);
  assert.ok(!(await page.content()).includes("SBX-"), "voucher code not in the page before reveal");
  await page.locator('button[data-product="10100"]').count(); // page still interactive
  assert.match(await text(page, "#order-result .facts"), new RegExp(po));
  assert.match(await text(page, "#order-result .facts"), /Request id\s+[0-9a-f]{32}/);
  await page.locator("#balance-value", { hasText: "249,975" }).waitFor();

  // A resubmit of the same order: plumgate replays the first answer.
  const replayResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#order-again");
  const rr = await replayResp;
  assert.equal(rr.headers()["x-plumgate-replayed"], "true");
  await page.locator("#order-result-title", { hasText: "Same order, answered again" }).waitFor();
  assert.match(await text(page, "#replay-note"), /x-plumgate-replayed: true/);
  assert.match(await text(page, "#order-status"), /Replayed: .* no second order was placed/);
  // ...and the main button again (Enter in the form) is the same replay.
  await page.focus("#email");
  await page.keyboard.press("Enter");
  await page.locator("#order-status", { hasText: "Replayed" }).waitFor();
  counters = await sandbox.counters();
  assert.equal(counters.orders, 1, "still one order upstream");
  assert.equal(counters.api_calls.placeOrder, 1, "placeOrder reached Xoxoday once");
  assert.equal(await text(page, "#po-number"), po, "an unchanged resubmit keeps its poNumber");

  await voucher.waitFor();
  const reveal = page.locator("#order-result .reveal").first();
  assert.equal(await reveal.innerText(), "Reveal code and PIN");
  // Masked, the bullets are named "hidden" for a screen reader; the button says they are not shown.
  assert.equal(await voucher.getByRole("img", { name: "hidden", exact: true }).count(), 2, "masked code and PIN named hidden");
  assert.equal(await reveal.getAttribute("aria-expanded"), "false");
  await reveal.click();
  assert.equal(await reveal.getAttribute("aria-expanded"), "true", "aria-expanded follows the reveal");
  assert.equal(await voucher.getByRole("img", { name: "hidden", exact: true }).count(), 0);
  // A button named for what it does next, Reveal then Hide, with no
  // aria-pressed: a toggle's name must not change with its state (ARIA
  // APG), or a reader hears "Hide code and PIN, pressed".
  assert.equal(await reveal.getAttribute("aria-pressed"), null, "no toggle state beside a changing name");
  assert.equal(await reveal.innerText(), "Hide code and PIN");
  assert.equal(await page.locator(`#${await reveal.getAttribute("aria-controls")} dd.secret`).count(), 2, "it controls the voucher's code and PIN");
  const [code, pin] = await page.locator("#order-result .voucher").first().locator("dd.secret").allInnerTexts();
  assert.match(code, /^SBX-/);
  assert.match(pin, /^\d{4,}$/);
  await page.screenshot({ path: join(SHOTS, "desktop-order.png") });
  await reveal.click();
  assert.deepEqual(await page.locator("#order-result .voucher").first().locator("dd.secret").allInnerTexts(), ["••••••••", "••••••••"]);
  assert.equal(await reveal.innerText(), "Reveal code and PIN");
  assert.equal(await reveal.getAttribute("aria-expanded"), "false");
  assert.equal(await voucher.getByRole("img", { name: "hidden", exact: true }).count(), 2);

  // Changing the order makes a new poNumber (a new order, not a conflict).
  await page.fill("#quantity", "2");
  assert.notEqual(await text(page, "#po-number"), po, "a changed order gets a new poNumber");
  await page.fill("#quantity", "1");

  // ---- an order sent without an answer: its fate is unknown, so the page
  // keeps it (through a reload too) and only ever sends it again unchanged.
  const c0 = await sandbox.counters();
  const lostPo = await text(page, "#po-number");
  await page.route("**/v1/ops/placeOrder", (route) => route.abort("failed"));
  const firstTry = page.waitForRequest((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const firstBody = JSON.parse((await firstTry).postData());
  await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor();
  assert.equal(await text(page, "#uncertain-po"), lostPo);
  assert.match(await text(page, "#order-status"), /not confirmed: it may have been placed/);
  assert.equal(await page.locator("#order-form").isVisible(), false, "no form to change it in");
  await page.locator('#products button[data-product="10100"]').click();
  await page.locator("#order-status", { hasText: "Settle the unconfirmed order first" }).waitFor();
  // Leaving the page with an unconfirmed order asks first (its record is in
  // this tab only: a new tab would place it again under a new poNumber).
  const unconfirmedLeave = [];
  page.once("dialog", (d) => { unconfirmedLeave.push(d.type()); d.accept(); });
  await page.reload();
  assert.deepEqual(unconfirmedLeave, ["beforeunload"], "leaving with an unconfirmed order asks first");
  await page.locator("#order-uncertain-title").waitFor();
  assert.equal(await text(page, "#uncertain-po"), lostPo, "kept through a reload");
  const secondTry = page.waitForRequest((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#uncertain-again");
  assert.deepEqual(JSON.parse((await secondTry).postData()), firstBody, "the same order, the same poNumber");
  await page.locator("#order-status", { hasText: `Order ${lostPo} was not confirmed` }).waitFor();
  // Each try says when it was made, or a try that fails as the last one did looks like nothing.
  assert.match(await text(page, "#order-status"), new RegExp(`^Tried again at \\d{1,2}:\\d{2}:\\d{2}\\s[AP]M: Order ${lostPo} was not confirmed`));
  // Sent again and refused before plumgate's order ledger is asked (no key;
  // a key without orders:write): that says nothing about the lost attempt, so
  // the order stays unconfirmed, never "not placed".
  const stillKept = async (why) => {
    assert.equal(await page.locator("#order-uncertain").isVisible(), true, `${why}: still unconfirmed`);
    assert.equal(await text(page, "#uncertain-po"), lostPo);
    assert.doesNotMatch(await text(page, "#order-status"), /not placed/, `${why}: not called not placed`);
    assert.equal(await page.locator("#order-form").isVisible(), false, `${why}: no form for a new order`);
    assert.deepEqual(await page.evaluate(() => JSON.parse(sessionStorage.getItem("plumgate.unconfirmedOrder")).body), firstBody, `${why}: kept`);
  };
  // What the previous person typed in the form behind the unconfirmed order:
  await page.evaluate(() => { document.getElementById("email").value = "previous@example.com"; document.getElementById("contact").value = "+1-5550100"; });
  await page.click("#key-forget");
  // The previous key's recipient leaves the form; the unconfirmed order keeps its own.
  assert.deepEqual([await page.inputValue("#email"), await page.inputValue("#contact")], ["", ""], "the form is emptied behind the unconfirmed order");
  await page.click("#uncertain-again");
  await page.locator("#order-status", { hasText: `Order ${lostPo} is still not settled: set a key, then send it again.` }).waitFor();
  assert.equal(await text(page, "#order-error .err-title"), "No caller key");
  await stillKept("no key");
  await page.unroute("**/v1/ops/placeOrder");
  await page.fill("#key-input", keys.catalog.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set (entered)" }).waitFor();
  const scoped = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#uncertain-again");
  assert.equal((await scoped).status(), 403);
  await page.locator("#order-status", { hasText: `Order ${lostPo} is still not settled (This key is not allowed to do that)` }).waitFor();
  assert.match(await text(page, "#order-error .err-message"), /orders:write/);
  await stillKept("a key without orders:write");
  await page.fill("#key-input", keys.admin.key);
  await page.keyboard.press("Enter");
  await waitFor(() => page.evaluate((k) => sessionStorage.getItem("plumgate.callerKey") === k, keys.admin.key), { what: "the admin key set again" });
  await page.click("#uncertain-forget");
  assert.equal(await page.locator("#order-uncertain").isVisible(), false);
  const settledLeave = [];
  const noteLeave = (d) => { settledLeave.push(d.type()); d.accept(); };
  page.on("dialog", noteLeave);
  await page.reload();
  page.off("dialog", noteLeave);
  assert.deepEqual(settledLeave, [], "no order held: leaving asks nothing");
  await page.locator("#order-empty").waitFor();
  assert.equal(await page.locator("#order-uncertain").isVisible(), false, "forgotten: nothing kept");
  const c1 = await sandbox.counters();
  assert.deepEqual([c1.orders, c1.api_calls.placeOrder], [c0.orders, c0.api_calls.placeOrder], "nothing reached Xoxoday");

  // ---- orders: history and details.
  await page.click("#history-load");
  await page.locator("#history-status", { hasText: "1 order on page 1." }).waitFor();
  assert.match(await text(page, "#history"), new RegExp(po));
  assert.equal(await page.locator("#history thead th").last().textContent(), "Actions", "the buttons' column is named for screen readers");
  assert.equal(await page.locator("#history thead th").first().textContent(), "Date (Xoxoday's clock)", "the date is Xoxoday's, not the browser's");
  assert.equal(await page.locator("#history thead th .sr-only").count(), 1);
  await page.locator(`#history button[data-po="${po}"]`).click();
  await page.locator("#details-status", { hasText: `Found order ${po}.` }).waitFor();
  assert.match(await text(page, "#details"), /Harbor Coffee Co\. US e-Gift Card/);
  assert.match(await text(page, "#details"), /winner@example\.com/);
  assert.deepEqual(await page.locator("#details dd.secret").allInnerTexts(), ["••••••••", "••••••••"]);

  // Spaces alone name no order: said, nothing sent.
  await page.fill("#details-po", "   ");
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: "spaces alone name no order" }).waitFor();

  // Error state: an unknown poNumber (Xoxoday's error, passed through),
  // written as another system of the account may write one (a space, a
  // '#'): looked up as typed, not refused by the form.
  await page.fill("#details-po", "demo no-such-order #1");
  const errReq = page.waitForRequest((r) => r.url().endsWith("/v1/ops/getOrderDetails"));
  const errResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getOrderDetails"));
  await page.click("#details-load");
  assert.equal(JSON.parse((await errReq).postData()).poNumber, "demo no-such-order #1");
  const er = await errResp;
  assert.ok(er.status() >= 400, `unknown order answers an error (${er.status()})`);
  const erBody = await er.json();
  await page.locator("#details-error").waitFor({ state: "visible" });
  const errRid = await text(page, "#details-error .err-rid");
  assert.match(errRid, RID);
  assert.equal(errRid, er.headers()["x-request-id"], "the page shows the x-request-id of the failed call");
  const upstreamMsg = erBody.errorInfo || erBody.error?.message || erBody.error;
  assert.ok(typeof upstreamMsg === "string" && upstreamMsg.length > 0, "error body has a message");
  assert.match(await text(page, "#details-error .err-message"), new RegExp(upstreamMsg.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  assert.equal(await page.locator("#details-error").getAttribute("role"), "alert");
  const detailsErrorStatus = er.status();
  // The next lookup refused by the page (spaces alone): that error goes with it.
  await page.fill("#details-po", "  ");
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: "spaces alone name no order" }).waitFor();
  assert.equal(await page.locator("#details-error").isVisible(), false, "no earlier lookup's error left beside it");

  // An impossible date range (From after To): the page says so and sends nothing.
  await page.fill("#start-date", "2026-02-01");
  await page.fill("#end-date", "2026-01-01");
  const historyCalls = await requestsWhile(page, (url) => url.endsWith("/v1/ops/getOrderHistory"), async () => {
    await page.click("#history-load");
    await page.locator("#history-status", { hasText: "From (2026-02-01) is after To (2026-01-01): no orders were asked for." }).waitFor();
  });
  assert.deepEqual(historyCalls, [], "nothing sent for From after To");
  assert.equal(await page.evaluate(() => document.activeElement.id), "start-date", "on to the date to change");
  // Error state made by plumgate: such a range sent all the same (turned
  // round on its way), its message names the field.
  await page.route("**/v1/ops/getOrderHistory", (route) => {
    const body = JSON.parse(route.request().postData());
    return route.continue({ postData: JSON.stringify({ ...body, startDate: body.endDate, endDate: body.startDate }) });
  });
  await page.fill("#start-date", "2026-01-01");
  await page.fill("#end-date", "2026-02-01");
  const histResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getOrderHistory"));
  await page.click("#history-load");
  const hr = await histResp;
  await page.unroute("**/v1/ops/getOrderHistory");
  assert.equal(hr.status(), 400);
  await page.locator("#history-error").waitFor({ state: "visible" });
  assert.match(await text(page, "#history-error .err-message"), /data\.endDate/);
  assert.equal(await text(page, "#history-error .err-code"), "invalid_request");
  assert.equal(await text(page, "#history-error .err-rid"), hr.headers()["x-request-id"]);
  await page.screenshot({ path: join(SHOTS, "desktop-orders-errors.png"), fullPage: false });

  // ---- token health (admin key) and a refresh.
  await page.click("#token-check");
  await page.locator("#token-state").waitFor();
  assert.equal(await text(page, "#token-state"), "fresh");
  await page.locator("#token-status", { hasText: "Checked at" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "token-check", "focus back on the button, not on <body>");
  assert.equal(await page.locator("#token").getAttribute("aria-busy"), null, "the section with the live status is never busy");
  const info = await text(page, "#token-info");
  assert.match(info, /Access token expires/);
  assert.match(info, /Refresh token expires/);
  assert.match(info, /Last refresh/);
  assert.match(info, /Last error\s+none/);
  assert.match(info, /Last alert\s+balance below BALANCE_ALERT_BELOW \(balance_low\), firing, .+: not delivered — not sent: ALERT_WEBHOOK_URL is not set/);
  const before = Number(/Refreshes\s+(\d+)/.exec(info)[1]);
  const refreshesUpstream = (await sandbox.counters()).refresh_calls;
  await page.click("#token-refresh");
  await page.locator("#token-status", { hasText: "Refreshed at" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "token-refresh", "focus back on the button");
  const after = Number(/Refreshes\s+(\d+)/.exec(await text(page, "#token-info"))[1]);
  assert.equal(after, before + 1, "refresh count goes up");
  assert.equal((await sandbox.counters()).refresh_calls, refreshesUpstream + 1, "one upstream refresh");
  // Again at once: throttled (once a minute while the token is valid); the
  // page says so, with plumgate's 429, and keeps the token facts.
  const throttled = page.waitForResponse((r) => r.url().endsWith("/v1/token/refresh"));
  await page.click("#token-refresh");
  const tr = await throttled;
  assert.equal(tr.status(), 429);
  await page.locator("#token-error").waitFor({ state: "visible" });
  assert.equal(await text(page, "#token-error .err-code"), "rate_limited");
  assert.match(await text(page, "#token-error .err-title"), /Refresh tried moments ago/);
  assert.match(await text(page, "#token-error .err-message"), /TOKEN_MIN_REFRESH_INTERVAL_SECS/);
  // The message says the wait ("allowed again in N s"): not said again as a hint.
  assert.match(await text(page, "#token-error .err-message"), new RegExp(`allowed again in ${tr.headers()["retry-after"]} s`));
  assert.equal(await page.locator("#token-error .err-hint").count(), 0, "the wait is not repeated");
  assert.match(await text(page, "#token-error .err-meta"), /HTTP 429/);
  assert.equal(await text(page, "#token-error .err-rid"), tr.headers()["x-request-id"]);
  assert.match(await text(page, "#token-status"), /Not refreshed: plumgate answered 429; try again in \d+ s/);
  assert.ok(await page.locator("#token-info").isVisible(), "the token facts stay");
  assert.equal((await sandbox.counters()).refresh_calls, refreshesUpstream + 1, "nothing spent");
  // A forced refresh that fails (plumgate's 502, made up here: nothing is
  // refreshed): the token facts stay, asked again, and the page says when a
  // forced refresh is allowed again (TOKEN_MIN_REFRESH_INTERVAL_SECS), not
  // the 502's Retry-After, which is plumgate's own next try.
  await page.route("**/v1/token/refresh", (route) => route.fulfill({
    status: 502, contentType: "application/json", headers: { "x-request-id": "d".repeat(32), "retry-after": "17" },
    body: JSON.stringify({ error: { code: "upstream_error", message: "Xoxoday token refresh: Xoxoday answered HTTP 503", request_id: "d".repeat(32) } }),
  }));
  const factsAgain = page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/token");
  await page.click("#token-refresh");
  await page.locator("#token-error .err-code", { hasText: "upstream_error" }).waitFor();
  await page.unroute("**/v1/token/refresh");
  assert.equal((await factsAgain).status(), 200, "the token facts asked again");
  await page.locator("#token-info").waitFor({ state: "visible" });
  assert.match(await text(page, "#token-info"), /Refreshes\s+\d+/);
  assert.match(await text(page, "#token-status"), /^Not refreshed \(tried at .+\)\. While the access token is valid, Refresh now is allowed again TOKEN_MIN_REFRESH_INTERVAL_SECS after this attempt \(a minute by default; this page cannot see the setting\); plumgate answers 429 before that\.$/);
  assert.doesNotMatch(await text(page, "#token-error"), /Retry after 17/);
  assert.match(await text(page, "#token-error .err-hint"), /Retry-After \(17 s\) is when plumgate itself tries again/);
  await waitFor(async () => (await page.evaluate(() => document.activeElement.id)) === "token-refresh", { what: "focus back on Refresh now" });
  assert.ok(!(await page.content()).includes("plumgate-dev-refresh-token"), "no token in the page");

  await assertFocusClearsBar(page, "#details-po", "#details-load");
  await assertCleanText(page);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, "desktop.png"), fullPage: true });
  // Two placeOrder calls aborted on purpose (the unconfirmed order); 403s
  // for the key without orders:write (its order and its balance); the dev
  // key's 404 (the unknown order's may be a 404 too).
  dConsole.check([detailsErrorStatus, 400, 403, 404, 429, 502], 2);
  await desk.close();

  // =================================================================== phone
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: LOCALE,
  });
  const mob = await phone.newPage();
  current = mob;
  mob.setDefaultTimeout(30_000);
  const mConsole = watchConsole(mob);
  // As deployed: the dev key route answers 404, so no one-click button.
  await mob.route("**/v1/dev/caller-key", (route) => route.fulfill({
    status: 404, contentType: "application/json",
    body: JSON.stringify({ error: { code: "not_found", message: "no such route", request_id: "0".repeat(32) } }),
  }));
  const devProbe = mob.waitForResponse((r) => r.url().endsWith("/v1/dev/caller-key"));
  await mob.goto(`${worker.url}/`);
  assert.equal(await text(mob, "#key-status"), "No key set.", "a new tab starts without a key");
  assert.equal((await devProbe).status(), 404);
  await mob.waitForTimeout(200);
  assert.equal(await mob.locator("#dev-key").isVisible(), false, "no dev key button when the route is 404");

  // A key with an accent, no key set before: refused, nothing sent or stored.
  const mobCalls = [];
  const noteMobCall = (r) => { if (new URL(r.url()).pathname.startsWith("/v1/")) mobCalls.push(r.url()); };
  mob.on("request", noteMobCall);
  await mob.fill("#key-input", "pgk_dev_é" + "a".repeat(20));
  await mob.click("#key-save");
  await mob.locator("#key-status", { hasText: "That key was not used" }).waitFor();
  assert.match(await text(mob, "#key-status"), /: it holds "é" \(U\+00E9\) at character 9, which no caller key has\. .*16–512 visible ASCII characters.* No key set\.$/);
  await mob.waitForTimeout(300);
  mob.off("request", noteMobCall);
  assert.deepEqual(mobCalls, [], "nothing sent with it");
  assert.equal(await mob.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), null, "no key stored");
  assert.equal(await mob.locator("#key-forget").isDisabled(), true, "no key to forget");
  assert.doesNotMatch(await mob.locator("body").innerText(), /Network error/);

  // A wrong key: 401, shown with plumgate's message and request id.
  await mob.fill("#key-input", "pgk_wrong_0000000000000000000000000000");
  const r401 = mob.waitForResponse((r) => r.url().endsWith("/v1/ops/getVouchers"));
  await mob.click("#key-save");
  const w401 = await r401;
  assert.equal(w401.status(), 401);
  await mob.locator("#catalog-error").waitFor({ state: "visible" });
  assert.match(await text(mob, "#catalog-error .err-title"), /caller key was not accepted/);
  assert.match(await text(mob, "#catalog-error .err-message"), /unknown|key/i);
  assert.equal(await text(mob, "#catalog-error .err-rid"), w401.headers()["x-request-id"]);
  await mob.locator("#key-status", { hasText: "rejected" }).waitFor();
  assert.match(await text(mob, "#key-status"), /may be mistyped, revoked or expired/);
  assert.match(await text(mob, "#catalog-error .err-hint"), /may be mistyped, revoked or expired/);
  // Dropped from the tab's storage: a reload does not send it again.
  assert.equal(await mob.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), null, "the rejected key is not kept");
  await mob.locator("#balance-error", { hasText: "not accepted" }).waitFor();
  await mob.locator("#catalog-error").scrollIntoViewIfNeeded();
  await mob.screenshot({ path: join(SHOTS, "phone-error.png") });
  // Forget key after the rejection: "No key set." is no longer told as an error.
  await mob.click("#key-forget");
  assert.equal(await text(mob, "#key-status"), "No key set.");
  assert.equal(await mob.locator("#key-status.bad").count(), 0, "not in the rejection's red");

  // A catalog-only key: the catalog works, balance and token health say 403.
  await mob.fill("#key-input", keys.catalog.key);
  await mob.click("#key-save");
  await waitFor(async () => (await mob.locator("#products .card").count()) === 12, { timeout: 20_000, what: "cards at phone width" });
  await mob.locator("#balance-error", { hasText: "balance" }).waitFor();
  // One line, with plumgate's message, code and request id (README: every error shows them).
  assert.match(await text(mob, "#balance-error"), /^Balance: This key is not allowed to do that: this key lacks the `balance` scope \(code forbidden, request id [0-9a-f]{32}\)$/);
  await mob.click("#token-check");
  await mob.locator("#token-error").waitFor({ state: "visible" });
  assert.match(await text(mob, "#token-error .err-message"), /lacks the `admin` scope/);
  assert.match(await text(mob, "#token-error .err-hint"), /admin scope/);
  assert.match(await text(mob, "#token-error .err-rid"), RID);
  assert.equal(await mob.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), keys.catalog.key);

  await assertFocusClearsBar(mob, "#details-po", "#details-load");

  // Responsive: nothing wider than the phone; the balance stays on screen.
  await mob.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  assert.ok(await mob.locator("#balance").isVisible());
  const box = await mob.locator("#balance").boundingBox();
  assert.ok(box && box.y >= 0 && box.y < 100, "the balance stays in the sticky bar");
  const widths = await mob.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  assert.ok(widths.doc <= widths.win, `no horizontal scroll at phone width (${widths.doc} > ${widths.win})`);

  // A balance-only key: the catalog and its filters are refused; the
  // filters' note has plumgate's message, code and request id too.
  await mob.fill("#key-input", keys.balance.key);
  await mob.click("#key-save");
  await mob.locator("#filters-note").waitFor({ state: "visible" });
  assert.match(await text(mob, "#filters-note"), /^Country and currency filters unavailable: This key is not allowed to do that: this key lacks the `catalog` scope \(code forbidden, request id [0-9a-f]{32}\)$/);
  await mob.locator("#catalog-error .err-code", { hasText: "forbidden" }).waitFor();
  assert.equal(await mob.locator("#balance-error").textContent(), "", "the catalog key's balance error went with it, words and all");

  // Forget the key, use the admin key, open an order form, take the picture.
  await mob.click("#key-forget");
  assert.equal(await mob.evaluate(() => sessionStorage.getItem("plumgate.callerKey")), null);
  await mob.fill("#key-input", keys.admin.key);
  await mob.keyboard.press("Enter");
  await mob.locator("#balance-value", { hasText: "249,975" }).waitFor();
  await waitFor(async () => (await mob.locator("#products .card").count()) === 12, { timeout: 20_000, what: "cards again" });
  await mob.locator("#products .card-order").nth(1).click();
  await mob.locator("#order-form").waitFor({ state: "visible" });
  const w2 = await mob.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w2 <= 390, `no horizontal scroll with the order form open (${w2})`);
  await mob.screenshot({ path: join(SHOTS, "phone-order.png") });

  // A voucher whose code is a link (Xoxoday's url and urlPin vouchers),
  // revealed: it wraps, the page does not scroll sideways. (The answer is
  // made up here: no order reaches Xoxoday.)
  await pickHarborCoffee(mob);
  const linkCode = "https://vouchers.example.com/redeem/Q7XK2M9PLA4";
  assert.ok(linkCode.length >= 45);
  const linkAnswer = (route) => route.fulfill({
    status: 200, contentType: "application/json", headers: { "x-request-id": "b".repeat(32) },
    body: JSON.stringify({ data: { placeOrder: { status: 1, data: {
      orderId: 990002, poNumber: JSON.parse(route.request().postData()).poNumber, orderStatus: "complete", deliveryStatus: "delivered",
      orderTotal: 1000.5, currencyCode: "USD",
      vouchers: [{ voucherCode: linkCode, pin: "4821", validity: "2027-12-31", amount: 25, currency: "USD", type: "url" }],
    } } } }),
  });
  await mob.route("**/v1/ops/placeOrder", linkAnswer);
  await mob.click("#place-order");
  await mob.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  await mob.unroute("**/v1/ops/placeOrder", linkAnswer);
  await mob.locator("#order-result .reveal").click();
  await mob.locator("#order-result dd.secret", { hasText: linkCode }).waitFor();
  // An amount outside the catalog in the browser's number format too.
  assert.match(await text(mob, "#order-result .facts"), /Order total\s+1,000\.5 USD/);
  await mob.locator("#order-result .voucher").scrollIntoViewIfNeeded();
  const w3 = await mob.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  // Against the viewport's width: a phone browser widens innerWidth to fit what overflows.
  assert.ok(w3.doc <= 390 && w3.win <= 390, `no horizontal scroll with a link voucher revealed (${w3.doc}, ${w3.win} > 390)`);
  await mob.screenshot({ path: join(SHOTS, "phone-voucher-link.png") });
  await mob.evaluate(() => window.scrollTo(0, 0));
  await mob.screenshot({ path: join(SHOTS, "phone.png"), fullPage: true });
  await assertCleanText(mob);
  mConsole.check([401, 403, 404]);
  await phone.close();

  // ---- the narrowest phones (320 px) with a seven-digit balance: the top bar
  // wraps, the refresh button stays on screen, nothing scrolls sideways.
  const narrow = await browser.newContext({ viewport: { width: 320, height: 640 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: LOCALE });
  const tiny = await narrow.newPage();
  current = tiny;
  tiny.setDefaultTimeout(30_000);
  const tConsole = watchConsole(tiny);
  await tiny.route("**/v1/ops/getBalance", (route) => route.fulfill({
    status: 200, contentType: "application/json", headers: { "x-request-id": "c".repeat(32) },
    body: JSON.stringify({ data: { getBalance: { status: 1, data: { value: 1249975.5, currency: "USD" } } } }),
  }));
  await tiny.goto(`${worker.url}/`);
  await tiny.fill("#key-input", keys.admin.key);
  await tiny.keyboard.press("Enter");
  await tiny.locator("#balance-value", { hasText: "1,249,975.50" }).waitFor();
  await waitFor(async () => (await tiny.locator("#products .card").count()) === 12, { timeout: 20_000, what: "cards at 320 px" });
  const w4 = await tiny.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  assert.ok(w4.doc <= 320 && w4.win <= 320, `no horizontal scroll at 320 px (${w4.doc}, ${w4.win} > 320)`);
  const refresh = await tiny.locator("#balance-refresh").boundingBox();
  assert.ok(refresh && refresh.x >= 0 && refresh.x + refresh.width <= 320, `the balance refresh button on screen (${JSON.stringify(refresh)})`);
  const value = await tiny.locator("#balance-value").boundingBox();
  assert.ok(value && value.x + value.width <= 320, "the balance on screen");
  await tiny.screenshot({ path: join(SHOTS, "phone-320.png") });
  // The catalog's pager: one line each, no "←" above "Previous".
  for (const sel of ["#prev-page", "#page-label", "#next-page"]) {
    assert.equal(await tiny.locator(sel).evaluate((el) => {
      const r = document.createRange();
      r.selectNodeContents(el);
      return r.getClientRects().length;
    }), 1, `${sel} on one line at 320 px`);
  }
  // Two lines of top bar here: focus still lands below it.
  await assertFocusClearsBar(tiny, "#details-po", "#details-load");
  // A history row's Details: the answer is drawn far below the row here;
  // the page goes there, focus on the details heading, below the bar.
  await tiny.click("#history-load");
  await tiny.locator("#history .history-details").first().waitFor();
  await tiny.locator("#history .history-details").first().click();
  await tiny.locator("#details-status", { hasText: "Found order" }).waitFor();
  await waitFor(async () => (await tiny.evaluate(() => document.activeElement.id)) === "details-title", { what: "focus on the details heading" });
  const heading = await tiny.locator("#details-title").boundingBox();
  const bar = await tiny.locator(".topbar").boundingBox();
  assert.ok(heading.y >= bar.y + bar.height && heading.y + heading.height <= 640, `the details heading on screen, below the bar (${JSON.stringify(heading)})`);
  // A long poNumber typed in: its status line and error wrap, the page
  // does not scroll sideways.
  const longPo = "x".repeat(120);
  await tiny.fill("#details-po", longPo);
  const longResp = tiny.waitForResponse((r) => r.url().endsWith("/v1/ops/getOrderDetails"));
  await tiny.click("#details-load");
  const longStatus = (await longResp).status();
  await tiny.locator("#details-status", { hasText: `No details for ${longPo}` }).waitFor();
  const w5 = await tiny.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  assert.ok(w5.doc <= 320 && w5.win <= 320, `no horizontal scroll with a long poNumber looked up (${w5.doc}, ${w5.win} > 320)`);
  // A larger default text size in the browser (here the root's, as a
  // browser setting gives it) is the page's text size.
  const sizes = await tiny.evaluate(() => {
    document.documentElement.style.fontSize = "20px";
    const body = getComputedStyle(document.body).fontSize;
    document.documentElement.style.removeProperty("font-size");
    return { body, after: getComputedStyle(document.body).fontSize };
  });
  assert.deepEqual(sizes, { body: "20px", after: "16px" }, "the text follows the browser's default size");
  tConsole.check([longStatus]);
  await narrow.close();
}

// =================================================================== keys and audit (admin)

/** POST /v1/ops/placeOrder from outside the page, as a caller with `key`. */
async function orderAs(key, poNumber, denomination) {
  const res = await fetch(`${worker.url}/v1/ops/placeOrder`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ productId: 10100, quantity: 1, denomination, poNumber, email: "winner@example.com" }),
  });
  const text = await res.text();
  return { status: res.status, rid: res.headers.get("x-request-id"), text };
}
const callAs = async (key) => (await fetch(`${worker.url}/v1/ops/getVouchers`, {
  method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: '{"limit":1,"page":1}',
})).status;

test("demo page: caller keys and the audit trail, by keyboard, at desktop and phone widths", { timeout: 240_000 }, async () => {
  try {
    await walkKeysAndAudit();
  } catch (e) {
    if (current && !current.isClosed()) await current.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
    throw e;
  }
});

async function walkKeysAndAudit() {
  const { ctx: desk, page, watch: dConsole } = await desktopPage(["clipboard-read", "clipboard-write"]);
  // Masked, and kept out of the password manager: no login form for it to save or fill.
  assert.deepEqual(await page.$eval("#key-input", (i) => [i.type, i.autocomplete, i.form.autocomplete]), ["password", "one-time-code", "off"]);
  await page.fill("#key-input", keys.admin.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();

  // ---- create a key, by keyboard: id, limits, scopes, Enter.
  await page.focus("#new-key-id");
  await page.keyboard.type("demo-writer");
  await page.fill("#new-key-rpm", "100");
  await page.fill("#new-key-amount", "60");
  await page.fill("#new-key-expires", "2099-06-30T12:00");
  await page.uncheck('#key-create-form input[value="catalog"]');
  await page.focus('#key-create-form input[value="orders:write"]');
  await page.keyboard.press("Space");
  await page.focus("#new-key-id");
  await page.keyboard.press("Enter");
  await page.locator("#new-key").waitFor({ state: "visible" });
  const newKey = await text(page, "#new-key-value");
  assert.match(newKey, /^pgk_[0-9a-f]{48}$/, "the key, shown once");
  assert.equal(await page.evaluate(() => document.activeElement.id), "new-key-copy", "focus moves to the copy button");
  await page.keyboard.press("Enter");
  await page.locator("#new-key-note", { hasText: "Copied" }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), newKey, "the copy button copies the key");
  await page.locator("#keys-status", { hasText: "Key demo-writer created" }).waitFor();
  const row = page.locator('#keys-list tr[data-key="demo-writer"]');
  await row.waitFor();
  assert.match(await row.innerText(), /runtime[\s\S]*active[\s\S]*orders:write[\s\S]*100 requests\/min · 60 face value a day/);
  assert.match(await text(page, "#new-key-amount-help"), /in each product's own currency: not converted/);
  // Its end, in the list and in what the page said on creating it.
  const expires = /Expires 6\/30\/2099, 12:00:00\sPM \(in [\d,]+ days\)\./;
  assert.match(await text(page, '#keys-list tr[data-key="demo-writer"] td[data-label="State"]'), expires);
  assert.match(await text(page, "#keys-status"), /^Key demo-writer created\. It works now until 6\/30\/2099, 12:00:00\sPM \(in [\d,]+ days\); copy it/);
  assert.doesNotMatch(await text(page, '#keys-list tr[data-key="admin"]'), /Expire/, "a key without an end shows none");
  assert.match(await text(page, '#keys-list tr[data-key="admin"]'), /GATEWAY_KEYS/, "static keys are listed");
  assert.equal(await page.locator("#keys-list thead th").last().textContent(), "Actions", "the buttons' column is named for screen readers");
  assert.equal(await page.locator("#keys-list thead th .sr-only").count(), 1);
  assert.equal(await page.locator('#keys-list tr[data-key="admin"] button').count(), 0, "static keys have no actions");

  // The key works for its caller; its spend cap holds.
  assert.equal((await orderAs(newKey, "demo-keys-1", 50)).status, 200);
  assert.equal((await orderAs(newKey, "demo-keys-2", 50)).status, 429, "over the daily cap");
  await waitFor(async () => {
    await page.click("#keys-load");
    await page.locator("#keys-status", { hasText: "keys; usage is today" }).waitFor();
    return /1 order · amount 50/.test(await row.innerText());
  }, { timeout: 20_000, interval: 500, what: "the order in the key's usage" });
  assert.match(await row.innerText(), /\d+ requests? · 1 order · amount 50/);
  await page.locator("#keys").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SHOTS, "desktop-keys.png") });

  // Done hides the key for good.
  await page.click("#new-key-done");
  assert.equal(await page.locator("#new-key").isVisible(), false);
  assert.ok(!(await page.content()).includes(newKey), "the key is gone from the page");

  // An id already taken: plumgate's 400, with its message and request id.
  await page.fill("#new-key-id", "demo-writer");
  const dup = page.waitForResponse((r) => r.url().endsWith("/v1/keys") && r.request().method() === "POST");
  await page.click("#key-create");
  const dr = await dup;
  assert.equal(dr.status(), 400);
  await page.locator("#keys-error").waitFor({ state: "visible" });
  assert.match(await text(page, "#keys-error .err-message"), /id is already used/);
  assert.equal(await text(page, "#keys-error .err-code"), "invalid_request");
  assert.equal(await text(page, "#keys-error .err-rid"), dr.headers()["x-request-id"]);
  // The button waits for the answer (Chromium then drops its focus): refused,
  // the focus is back on it, not on <body>.
  await waitFor(() => page.evaluate(() => !document.getElementById("key-create").disabled), { what: "Create key enabled again" });
  assert.equal(await page.evaluate(() => document.activeElement.id), "key-create", "refused: focus back on Create key");

  // A key create whose POST meets `answer` (the rest of /v1/keys goes
  // through); the caller looks at what the page says, then unroutes.
  const createAnswered = async (id, answer) => {
    await page.route("**/v1/keys", (route) => (route.request().method() === "POST" ? route.fulfill(answer) : route.continue()));
    await page.fill("#new-key-id", id);
    await page.click("#key-create");
  };
  // A create or a rotation whose answer is lost may have happened: the page
  // says so, and where to look, not that nothing was done.
  await page.route("**/v1/keys", (route) => (route.request().method() === "POST" ? route.abort("failed") : route.continue()));
  await page.fill("#new-key-id", "demo-lost");
  await page.click("#key-create");
  await page.locator("#keys-status", { hasText: 'Key demo-lost may have been created: nothing confirmed it. Use "Show keys" to check' }).waitFor();
  assert.equal(await text(page, "#keys-error .err-title"), "Network error");
  await page.unroute("**/v1/keys");
  await page.route("**/v1/keys/demo-writer/rotate", (route) => route.abort("failed"));
  await page.click('#keys-list button[data-action="rotate"][data-id="demo-writer"]');
  await page.locator("#keys-status", { hasText: 'Key demo-writer may have been rotated: nothing confirmed it. Use "Show keys" to check.' }).waitFor();
  await page.unroute("**/v1/keys/demo-writer/rotate");
  // The same for plumgate's 502 when the key registry did not answer: it may have made the change.
  await createAnswered("demo-unsure", { status: 502, contentType: "application/json", headers: { "x-request-id": "0".repeat(32) }, body: JSON.stringify({ error: { code: "upstream_error", message: "the key registry did not answer; retry in a moment", request_id: "0".repeat(32) } }) });
  await page.locator("#keys-status", { hasText: "Key demo-unsure may have been created: nothing confirmed it." }).waitFor();
  await page.unroute("**/v1/keys");
  // plumgate's 503 misconfigured comes before the registry is asked: not created.
  await createAnswered("demo-misconf", { status: 503, contentType: "application/json", headers: { "x-request-id": "0".repeat(32) }, body: JSON.stringify({ error: { code: "misconfigured", message: "plumgate is misconfigured: KEYS is not bound", request_id: "0".repeat(32) } }) });
  await page.locator("#keys-error .err-title", { hasText: "plumgate is unavailable" }).waitFor();
  assert.equal(await text(page, "#keys-status"), "The key was not created.");
  await page.unroute("**/v1/keys");
  // A success this page cannot read (the body is no JSON): made, for all it knows.
  await createAnswered("demo-garbled", { status: 201, contentType: "text/html", headers: { "x-request-id": "0".repeat(32) }, body: "<html>created</html>" });
  await page.locator("#keys-error .err-title", { hasText: "This page failed" }).waitFor();
  assert.equal(await text(page, "#keys-status"), 'Key demo-garbled may have been created: nothing confirmed it. Use "Show keys" to check before creating it again.');
  await page.unroute("**/v1/keys");
  // Not plumgate's answer (no x-request-id), a 4xx too: whether plumgate got
  // the request is unknown, as for an order.
  await createAnswered("demo-proxied", { status: 403, contentType: "text/html", body: "<html>Forbidden by the proxy</html>" });
  await page.locator("#keys-error .err-title", { hasText: "Not plumgate's answer (HTTP 403)" }).waitFor();
  assert.equal(await text(page, "#keys-status"), 'Key demo-proxied may have been created: nothing confirmed it. Use "Show keys" to check before creating it again.');
  await page.unroute("**/v1/keys");

  // ---- rotate: a new key shown once; the previous one keeps working. A
  // double click rotates once: a second rotation would end the first one's
  // grace at once, cutting off the callers still on the original key. The
  // row's buttons wait for the answer.
  assert.doesNotMatch(await row.innerText(), /Rotated/, "never rotated yet");
  let rotations = 0;
  const countRotation = (r) => { if (r.url().endsWith("/v1/keys/demo-writer/rotate")) rotations++; };
  page.on("request", countRotation);
  let releaseRotation;
  const rotationHeld = new Promise((r) => { releaseRotation = r; });
  const holdRotation = async (route) => { await rotationHeld; await route.continue(); };
  await page.route("**/v1/keys/demo-writer/rotate", holdRotation);
  // Both clicks of a double click on the button itself (page.dblclick's
  // second click can miss it: the status line above changes height).
  await page.locator('#keys-list button[data-action="rotate"][data-id="demo-writer"]').evaluate((b) => { b.click(); b.click(); });
  await page.locator("#keys-status", { hasText: "Rotating demo-writer…" }).waitFor();
  await page.waitForTimeout(300);
  assert.equal(rotations, 1, "one rotation sent for a double click");
  assert.deepEqual(await row.locator("button").evaluateAll((bs) => bs.map((b) => b.disabled)), [true, true], "the row's buttons wait for the answer");
  releaseRotation();
  await page.locator("#new-key-title", { hasText: "New key for demo-writer" }).waitFor();
  await page.unroute("**/v1/keys/demo-writer/rotate", holdRotation);
  await page.waitForTimeout(300);
  page.off("request", countRotation);
  assert.equal(rotations, 1, "still one rotation");
  // The list says when it was rotated and until when the previous key works
  // (what "Show keys" is for after a lost rotation answer).
  await waitFor(async () => /Rotated .*; the previous key works until /.test(await row.innerText()), { what: "the rotation in the key list" });
  assert.deepEqual(await row.locator("button").evaluateAll((bs) => bs.map((b) => b.disabled)), [false, false], "the row's buttons back");
  const rotated = await text(page, "#new-key-value");
  assert.match(rotated, /^pgk_[0-9a-f]{48}$/);
  assert.notEqual(rotated, newKey);
  assert.match(await text(page, "#new-key-note"), /previous key keeps working until .*\((in |tomorrow)/, "until a time to come");
  assert.equal(await callAs(newKey), 403, "the previous key still authenticates (orders:write only: 403, not 401)");
  assert.equal(await callAs(rotated), 403);

  // ---- revoke, after a confirmation.
  page.once("dialog", (d) => d.accept());
  await page.click('#keys-list button[data-action="revoke"][data-id="demo-writer"]');
  await page.locator("#keys-status", { hasText: "Key demo-writer revoked" }).waitFor();
  await page.locator('#keys-list tr[data-key="demo-writer"] .key-revoked').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "keys-status", "focus moves from the revoked row's button to what happened");
  assert.equal(await page.locator('#keys-list tr[data-key="demo-writer"] button').count(), 0, "no actions on a revoked key");
  assert.equal(await callAs(rotated), 401, "refused (at once in the isolate that revoked it)");

  // ---- the audit trail: the key's attempts, newest first, with request ids.
  const many = await (await fetch(`${worker.url}/v1/keys`, {
    method: "POST", headers: { authorization: `Bearer ${keys.admin.key}`, "content-type": "application/json" },
    body: JSON.stringify({ id: "demo-many", scopes: ["orders:write"] }),
  })).json();
  const rids = [];
  for (let i = 0; i < 21; i++) rids.push((await orderAs(many.key, `demo-many-${i}`, 10)).rid);
  await page.fill("#audit-key", "demo-writer");
  await page.locator("#audit-key").press("Enter");
  await page.locator("#audit-status", { hasText: "2 entries, newest first." }).waitFor();
  assert.equal(await page.locator("#audit-list thead th").first().textContent(), "Time (your clock)", "the trail's times are the browser's");
  const outcomes = await page.locator("#audit-list td[data-label=Outcome]").allInnerTexts();
  assert.deepEqual(outcomes, ["quota exceeded", "placed"]);
  assert.match(await text(page, "#audit-list tbody tr:last-child"), /demo-keys-1[\s\S]*10100[\s\S]*50 · qty 1[\s\S]*placed[\s\S]*200/);
  await page.screenshot({ path: join(SHOTS, "desktop-audit.png") });
  // Paging: 21 attempts of demo-many, 20 a page.
  // The trail's entry is written after the answer is sent: asked again
  // until the last call's entry is there.
  await page.fill("#audit-key", "demo-many");
  await waitFor(async () => {
    await page.click("#audit-load");
    await page.locator("#audit-status", { hasText: "newest first." }).waitFor();
    const newest = await page.locator("#audit-list .rid").allInnerTexts();
    return newest.length === 20 && newest[0] === rids[20];
  }, { timeout: 20_000, interval: 500, what: "the first page of 20, the last call's entry first" });
  assert.equal(await page.locator("#audit-older").isEnabled(), true);
  const shown = await page.locator("#audit-list .rid").allInnerTexts();
  assert.deepEqual(shown, rids.slice(1).reverse(), "newest first, the request ids of the calls");
  // A filter changed and not submitted: Older and Newest go on with the
  // listing shown (its filters, its cursor), not the changed filter with a
  // cursor from another listing, which would skip entries.
  await page.fill("#audit-key", "demo-writer");
  const olderAsked = page.waitForRequest((r) => r.url().includes("/v1/audit?"));
  await page.click("#audit-older");
  const older = new URL((await olderAsked).url()).searchParams;
  assert.deepEqual([older.get("key"), older.has("cursor")], ["demo-many", true], "Older: the submitted key, with its cursor");
  await page.locator("#audit-status", { hasText: "1 entry (older)." }).waitFor();
  assert.deepEqual(await page.locator("#audit-list .rid").allInnerTexts(), [rids[0]]);
  assert.equal(await page.locator("#audit-older").isEnabled(), false);
  // The pager's button pressed ends disabled on the last page (Older) and
  // the first (Newest), which drops its focus in Chromium: it goes to the
  // other button, not to <body>.
  assert.equal(await page.evaluate(() => document.activeElement.id), "audit-newest", "Older, on the last page: focus on Newest, not on <body>");
  const newestAsked = page.waitForRequest((r) => r.url().includes("/v1/audit?"));
  await page.click("#audit-newest");
  assert.equal(new URL((await newestAsked).url()).searchParams.get("key"), "demo-many", "Newest: the submitted key");
  await page.locator("#audit-status", { hasText: "20 entries, newest first." }).waitFor();
  assert.deepEqual(await page.locator("#audit-list .rid").allInnerTexts(), shown);
  assert.equal(await page.evaluate(() => document.activeElement.id), "audit-older", "Newest, on the first page: focus on Older, not on <body>");
  await page.fill("#audit-key", "demo-many");
  // From after To: the page says so and sends nothing (plumgate answers 400).
  await page.fill("#audit-from", "2020-01-02");
  await page.fill("#audit-to", "2020-01-01");
  const auditCalls = await requestsWhile(page, (url) => url.includes("/v1/audit?"), async () => {
    await page.click("#audit-load");
    await page.locator("#audit-status", { hasText: "From (2020-01-02) is after To (2020-01-01): no entries were asked for." }).waitFor();
  });
  assert.deepEqual(auditCalls, [], "nothing sent for From after To");
  assert.equal(await page.evaluate(() => document.activeElement.id), "audit-from", "on to the date to change");
  assert.deepEqual(await page.locator("#audit-list .rid").allInnerTexts(), shown, "the trail last asked for stays");
  // A date range with nothing in it.
  await page.fill("#audit-from", "2020-01-01");
  await page.fill("#audit-to", "2020-01-02");
  const rangeAsked = page.waitForRequest((r) => r.url().includes("/v1/audit?"));
  await page.click("#audit-load");
  await page.locator("#audit-status", { hasText: "No entries for these filters." }).waitFor();
  // The browser's own days (the entries' times are shown in its zone), not
  // UTC days: from the start of the first to the end of the last.
  const asked = new URL((await rangeAsked).url()).searchParams;
  assert.deepEqual([asked.get("from"), asked.get("to")], await page.evaluate(() =>
    [new Date(2020, 0, 1).toISOString(), new Date(2020, 0, 3).toISOString()]));
  const pageText = await page.locator("body").innerText();
  assert.ok(!pageText.includes("winner@example.com"), "no recipient in the trail");
  await assertCleanText(page);

  // ---- the order history's pages are the submitted range's, a date changed
  // since and not submitted notwithstanding: the 21 orders of demo-many are
  // the newest, 10 a page.
  await page.click("#history-load");
  await page.locator("#history-status", { hasText: "10 orders on page 1." }).waitFor();
  const range = [await page.inputValue("#start-date"), await page.inputValue("#end-date")];
  const historyPos = () => page.locator("#history tbody td[data-label=poNumber]").allInnerTexts();
  const manyPos = (from) => Array.from({ length: 10 }, (_, i) => `demo-many-${from - i}`);
  assert.deepEqual(await historyPos(), manyPos(20));
  await page.fill("#start-date", "2020-01-01");
  await page.fill("#end-date", "2020-01-02");
  // Both buttons are disabled while a page loads (Chromium then drops the
  // focus): it goes back to the one pressed, or to the other one where the
  // pressed one stays disabled (Previous on the first page).
  for (const [button, pageNo, newest, focused] of [["#history-next", 2, 10, "history-next"], ["#history-prev", 1, 20, "history-next"]]) {
    const asked = page.waitForRequest((r) => r.url().endsWith("/v1/ops/getOrderHistory"));
    await page.click(button);
    const body = JSON.parse((await asked).postData());
    assert.deepEqual([body.startDate, body.endDate, body.page], [...range, pageNo], `${button}: the submitted range`);
    await page.locator("#history-status", { hasText: `10 orders on page ${pageNo}.` }).waitFor();
    assert.deepEqual(await historyPos(), manyPos(newest), `${button}: page ${pageNo} of the submitted range`);
    assert.equal(await page.evaluate(() => document.activeElement.id), focused, `${button}: focus on ${focused}, not on <body>`);
  }
  // On to the last page: Next stays disabled there, so the focus goes to Previous.
  for (let pageNo = 2; await page.locator("#history-next").isEnabled(); pageNo++) {
    assert.ok(pageNo < 20, "the history ends");
    await page.click("#history-next");
    await page.locator("#history-status", { hasText: new RegExp(`on page ${pageNo}\\.$|^No more orders\\.$`) }).waitFor();
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), "history-prev", "Next, on the last page: focus on Previous, not on <body>");

  // ---- Forget key while a key is being created and the trail loaded: the
  // answers that come after it show nothing (no new key to copy, no key
  // list, no trail) and take no focus.
  await page.fill("#audit-from", "");
  await page.fill("#audit-to", "");
  let releaseLate;
  const lateHeld = new Promise((r) => { releaseLate = r; });
  const holdLate = async (route) => { await lateHeld; await route.continue(); };
  const lateCalls = (url) => ["/v1/keys", "/v1/audit"].includes(url.pathname);
  await page.route(lateCalls, holdLate);
  await page.fill("#new-key-id", "demo-late");
  await page.click("#key-create");
  await page.locator("#keys-status", { hasText: "Creating key demo-late…" }).waitFor();
  await page.click("#audit-load");
  await page.locator("#audit-status", { hasText: "Loading the audit trail…" }).waitFor();
  await page.click("#key-forget");
  const lateCreate = page.waitForResponse((r) => r.url().endsWith("/v1/keys") && r.request().method() === "POST");
  const lateAudit = page.waitForResponse((r) => r.url().includes("/v1/audit?"));
  releaseLate();
  assert.ok((await lateCreate).ok(), "the key was made");
  assert.equal((await lateAudit).status(), 200);
  // The create's `finally` runs after its key check: once the button is
  // back, the late answer has been dealt with.
  await page.waitForFunction(() => !document.getElementById("key-create").disabled);
  await page.unroute(lateCalls, holdLate);
  assert.equal(await page.locator("#new-key").isVisible(), false, "the late key is not shown");
  assert.equal(await page.locator("#new-key-value").textContent(), "");
  assert.equal(await page.evaluate(() => document.activeElement.id), "key-input", "focus stays on the key field");
  assert.equal(await page.locator("#keys-list tr, #audit-list tr").count(), 0, "no key list or trail for no key");
  for (const id of ["#keys-status", "#audit-status"]) assert.equal(await text(page, id), "", `${id} empty`);
  // Created with no key: nothing is sent, so nothing may have been created.
  await page.fill("#new-key-id", "demo-nokey");
  await page.click("#key-create");
  await page.locator("#keys-error .err-title", { hasText: "No caller key" }).waitFor();
  assert.equal(await text(page, "#keys-status"), "The key was not created.");

  // ---- Another key set: nothing shown for the previous one stays (its new
  // key, the key list, the trail).
  await page.fill("#key-input", keys.admin.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  await page.fill("#new-key-id", "demo-switch");
  await page.click("#key-create");
  await page.locator("#new-key").waitFor({ state: "visible" });
  await page.locator('#keys-list tr[data-key="demo-switch"]').waitFor();
  await page.click("#audit-load");
  await page.locator("#audit-status", { hasText: "20 entries" }).waitFor();
  await page.fill("#key-input", keys.catalog.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  assert.equal(await page.locator("#new-key").isVisible(), false, "the previous key's new key is gone");
  assert.equal(await page.locator("#new-key-value").textContent(), "");
  assert.equal(await page.locator("#keys-list tr, #audit-list tr").count(), 0, "the previous key's list and trail are gone");
  assert.equal(await page.locator("#audit-pager").isVisible(), false);
  // A rotation answered after the key was changed: its new key is not shown.
  await page.fill("#key-input", keys.admin.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  await page.click("#keys-load");
  let releaseSwitch;
  const switchHeld = new Promise((r) => { releaseSwitch = r; });
  const holdSwitch = async (route) => { await switchHeld; await route.continue(); };
  await page.route("**/v1/keys/demo-switch/rotate", holdSwitch);
  await page.click('#keys-list button[data-action="rotate"][data-id="demo-switch"]');
  await page.locator("#keys-status", { hasText: "Rotating demo-switch…" }).waitFor();
  await page.fill("#key-input", keys.catalog.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  releaseSwitch();
  await page.locator("#keys-status", { hasText: "Key demo-switch was rotated with the previous caller key: its new key is not shown here" }).waitFor();
  await page.unroute("**/v1/keys/demo-switch/rotate", holdSwitch);
  assert.equal(await page.locator("#new-key").isVisible(), false, "the rotated key is not shown");
  assert.equal(await page.locator("#new-key-value").textContent(), "");

  // The create and the rotation aborted on purpose; the catalog key's balance: 403
  // (waited for: the console line comes with the answer).
  await page.locator("#balance-error", { hasText: "lacks the `balance` scope" }).waitFor();
  dConsole.check([400, 403, 502, 503], 2);
  await desk.close();

  // =================================================================== phone
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: LOCALE });
  const mob = await phone.newPage();
  current = mob;
  mob.setDefaultTimeout(30_000);
  const mConsole = watchConsole(mob);
  await mob.goto(`${worker.url}/`);
  await mob.fill("#key-input", keys.admin.key);
  await mob.keyboard.press("Enter");
  await mob.locator("#key-status", { hasText: "Key set" }).waitFor();
  await mob.click("#keys-load");
  await mob.locator('#keys-list tr[data-key="demo-many"]').waitFor();
  await mob.locator("#keys").scrollIntoViewIfNeeded();
  let widths = await mob.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  assert.ok(widths.doc <= widths.win, `no horizontal scroll with the key list (${widths.doc} > ${widths.win})`);
  await mob.screenshot({ path: join(SHOTS, "phone-keys.png") });
  await mob.fill("#audit-key", "demo-many");
  await mob.click("#audit-load");
  await mob.locator("#audit-status", { hasText: "20 entries" }).waitFor();
  await mob.locator("#audit").scrollIntoViewIfNeeded();
  widths = await mob.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
  assert.ok(widths.doc <= widths.win, `no horizontal scroll with the audit trail (${widths.doc} > ${widths.win})`);
  await mob.screenshot({ path: join(SHOTS, "phone-audit.png") });
  await assertCleanText(mob);
  mConsole.check([]);
  await phone.close();
}

// =================================================================== orders: lost, refused, failed

test("demo page: an order in flight through a reload, and the answers that are not a plain order", { timeout: 240_000 }, async () => {
  try {
    await walkOrderEdges();
  } catch (e) {
    if (current && !current.isClosed()) await current.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
    throw e;
  }
});

/** Search the catalog for `name` in the US and open its one card's order form. */
async function openUsProduct(page, name) {
  await page.fill("#q", name);
  await page.selectOption("#country", "usa");
  // The card's name too: the previous search's one card (another product)
  // is still shown until this search's 350 ms pause has run out.
  const cards = page.locator("#products .card");
  await waitFor(async () => (await cards.count()) === 1 && ((await cards.first().textContent()) ?? "").includes(name), { timeout: 20_000, what: `one ${name} US card` });
  await page.locator("#products .card button[data-product]").click();
  await page.locator("#order-form").waitFor({ state: "visible" });
}

/** Pick Harbor Coffee Co. US (10100, realtime) in the catalog and fill the order form for one 25 USD card. */
async function pickHarborCoffee(page) {
  await openUsProduct(page, "Harbor Coffee");
  assert.equal(await page.locator('#products button[data-product="10100"]').count(), 1, "Harbor Coffee Co. US is 10100");
  await page.selectOption("#denomination", "25");
  await page.fill("#quantity", "1");
  await page.fill("#email", "winner@example.com");
}

async function walkOrderEdges() {
  // Xoxoday's per-minute limits out of the way (getBalance: 10): this walk
  // asks for the balance more often than that, which is not what it is about.
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  const { ctx: desk, page, watch } = await desktopPage();
  await page.fill("#key-input", keys.admin.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  await pickHarborCoffee(page);

  // ---- a reload while the order is in flight: Xoxoday has made the order,
  // its answer is still on the way. The page kept the order before sending
  // it, so the reload offers that same order (same poNumber and body), not a
  // fresh form, and sending it again makes no second order.
  const c0 = await sandbox.counters();
  await sandbox.admin("/faults/order", { mode: "hang_after_create", hang_ms: 4000, count: 1 });
  const po = await text(page, "#po-number");
  const sent = page.waitForRequest((r) => r.url().endsWith("/v1/ops/placeOrder"));
  const clicked = Date.now();
  await page.click("#place-order");
  const firstBody = JSON.parse((await sent).postData());
  assert.equal(firstBody.poNumber, po);
  assert.deepEqual(await page.evaluate(() => JSON.parse(sessionStorage.getItem("plumgate.unconfirmedOrder")).body), firstBody,
    "kept in sessionStorage before any answer");
  await waitFor(async () => (await sandbox.counters()).orders === c0.orders + 1, { timeout: 3000, what: "the order made at Xoxoday" });
  const inFlightLeave = [];
  page.once("dialog", (d) => { inFlightLeave.push(d.type()); d.accept(); });
  await page.reload();
  assert.deepEqual(inFlightLeave, ["beforeunload"], "leaving with an order in flight asks first");
  await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor();
  assert.equal(await text(page, "#uncertain-po"), po, "the order in flight, with its poNumber, after the reload");
  assert.match(await text(page, "#order-status"), new RegExp(`Order ${po} was sent from this tab and not confirmed before the page was reloaded`));
  assert.equal(await page.locator("#order-form").isVisible(), false, "no fresh form to order again in");
  // Once plumgate has the first call's answer, the same order again is that answer.
  await new Promise((r) => setTimeout(r, Math.max(0, clicked + 5000 - Date.now())));
  const again = page.waitForRequest((r) => r.url().endsWith("/v1/ops/placeOrder"));
  const againResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#uncertain-again");
  assert.deepEqual(JSON.parse((await again).postData()), firstBody, "the same order, the same poNumber");
  const ar = await againResp;
  assert.deepEqual([ar.status(), ar.headers()["x-plumgate-replayed"]], [200, "true"], "the first call's answer, replayed");
  await page.locator("#order-result-title", { hasText: "Same order, answered again" }).waitFor();
  assert.match(await text(page, "#order-status"), /Replayed: .* no second order was placed/);
  assert.match(await text(page, "#order-result .facts"), new RegExp(po));
  assert.equal(await page.locator("#order-uncertain").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "settled: nothing kept");
  const c1 = await sandbox.counters();
  assert.equal(c1.orders, c0.orders + 1, "one order, not two");

  // Closing a tab while its order is out asks first, as the browser does
  // for a tab closed by the user. The order is held on its way, and sent
  // with a key that cannot order: if the held request goes out as the tab
  // closes, plumgate refuses it (403), and nothing is ordered.
  const tab = await desk.newPage();
  tab.setDefaultTimeout(30_000);
  await tab.goto(`${worker.url}/`);
  await tab.fill("#key-input", keys.catalog.key);
  await tab.keyboard.press("Enter");
  await tab.locator("#key-status", { hasText: "Key set" }).waitFor();
  await pickHarborCoffee(tab);
  await holdPlaceOrder(tab);
  await tab.click("#place-order");
  await tab.locator("#order-status", { hasText: "Placing order" }).waitFor();
  const closeAsked = [];
  tab.on("dialog", (d) => { closeAsked.push(d.type()); d.accept(); });
  const tabClosed = new Promise((r) => tab.once("close", r));
  await tab.close({ runBeforeUnload: true });
  await tabClosed;
  assert.deepEqual(closeAsked, ["beforeunload"], "closing the tab with an order in flight asks first");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "placeOrder reached Xoxoday once");

  // ---- Xoxoday's own 401s (passed through by plumgate, without
  // WWW-Authenticate) are Xoxoday refusing the account, not plumgate
  // refusing the caller key: shown as such, and the key stays set.
  await pickHarborCoffee(page);
  await sandbox.admin("/faults/api", { mode: "PLE10019", op: "placeOrder", count: 1 });
  const refusedPo = await text(page, "#po-number");
  const refused = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const rf = await refused;
  assert.equal(rf.status(), 401);
  assert.equal(rf.headers()["www-authenticate"], undefined, "Xoxoday's 401, not plumgate's");
  await page.locator("#order-error").waitFor({ state: "visible" });
  await waitFor(() => page.evaluate(() => !document.getElementById("place-order").disabled), { what: "Place order enabled again" });
  assert.equal(await page.evaluate(() => document.activeElement.id), "place-order", "refused: focus back on the button, not on <body>");
  assert.equal(await text(page, "#order-error .err-title"), "Xoxoday refused (PLE10019)");
  assert.equal(await text(page, "#order-error .err-message"), "International orders not allowed");
  assert.match(await text(page, "#order-error .err-hint"), /Xoxoday account .*not about your caller key/);
  assert.equal(await text(page, "#order-error .err-rid"), rf.headers()["x-request-id"]);
  assert.match(await text(page, "#order-status"), new RegExp(`Order ${refusedPo} was not placed`));
  assert.match(await text(page, "#key-status"), /^Key set/, "the key is not called rejected");
  assert.equal(await page.locator("#key-status.bad").count(), 0);
  assert.equal((await sandbox.counters()).orders, c1.orders, "nothing ordered");
  // The balance (an admin's refresh skips the edge cache, so Xoxoday answers).
  await sandbox.admin("/faults/api", { mode: "PIPE10017", op: "getBalance", count: 1 });
  const refusedBalance = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getBalance"));
  await page.click("#balance-refresh");
  assert.equal((await refusedBalance).status(), 401);
  await page.locator("#balance-error").waitFor({ state: "visible" });
  assert.match(await text(page, "#balance-error"), /^Balance: Xoxoday refused \(PIPE10017\): Access restricted for this IP \(code PIPE10017, request id [0-9a-f]{32}\)$/);
  assert.match(await text(page, "#key-status"), /^Key set/, "the key is not called rejected");
  await page.click("#balance-refresh");
  await page.locator("#balance-error").waitFor({ state: "hidden" });
  assert.equal(await page.locator("#balance-error").textContent(), "", "no refusal's words left in the hidden alert");
  // Xoxoday fails on the balance (502 PLE10023) while plumgate holds a copy
  // (the refresh just before): the copy answers, and the page calls it older.
  await sandbox.admin("/faults/api", { mode: "PLE10023", op: "getBalance", count: 1 });
  const staleBalance = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getBalance"));
  await page.click("#balance-refresh");
  const sbal = await staleBalance;
  assert.deepEqual([sbal.status(), sbal.headers()["x-plumgate-cache"]], [200, "stale"]);
  await page.locator("#balance-note", { hasText: "older copy" }).waitFor();
  assert.match(await text(page, "#balance-note"), / · an older copy: Xoxoday or the rate limit held the call \(kept up to 2 minutes past BALANCE_CACHE_TTL_SECS\)$/);
  assert.equal(await page.locator("#balance.is-stale").count(), 1, "marked old, on a phone too");
  assert.equal(await page.locator("#balance-error").isVisible(), false);
  await page.click("#balance-refresh");
  await waitFor(async () => /^as of /.test(await text(page, "#balance-note")), { what: "the next refresh: Xoxoday's answer" });
  assert.equal(await page.locator("#balance.is-stale").count(), 0);

  // ---- an order Xoxoday made and then failed, its answer lost: plumgate
  // finds it by its poNumber (x-plumgate-reconciled, status 0). The page says
  // one thing: Xoxoday holds the order, failed, no voucher; not "not placed".
  await page.fill("#quantity", "2");
  await page.fill("#quantity", "1");
  const failedPo = await text(page, "#po-number");
  assert.notEqual(failedPo, refusedPo, "a changed order, a new poNumber");
  const c2 = await sandbox.counters();
  await sandbox.admin("/faults/order", { mode: "fail_after_create", count: 1, error_id: "PLE10011", order_status: "failed" });
  const failedResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const fr = await failedResp;
  assert.deepEqual([fr.status(), fr.headers()["x-plumgate-reconciled"]], [200, "true"]);
  const failedId = String((await fr.json()).data.placeOrder.data.orderId);
  await page.locator("#order-error").waitFor({ state: "visible" });
  const failedStatus = await text(page, "#order-status");
  assert.equal(failedStatus, `Order ${failedPo}: Xoxoday holds order ${failedId}, status failed: no voucher was delivered.`);
  assert.doesNotMatch(await text(page, "#order"), /not placed/, "never called not placed");
  assert.equal(await text(page, "#order-error .err-title"), "Order failed at Xoxoday");
  assert.equal(await text(page, "#order-error .err-message"), `Xoxoday holds order ${failedId}, status failed: no voucher was delivered.`);
  assert.equal(await page.locator("#order-uncertain").isVisible(), false, "settled, not unconfirmed");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null);
  assert.equal((await sandbox.counters()).orders, c2.orders + 1, "the order Xoxoday made");

  // ---- a placeOrder answer without its status (1 placed, 0 not), or with
  // status 1 under a 2xx other than 200 (plumgate answers a placed order
  // 200; another 2xx is no placed order), says nothing sure about the order:
  // unconfirmed, never "placed"; sent again, plumgate answers with the order
  // it made.
  const tamperings = [
    ["no status", (json) => { delete json.data.placeOrder.status; return 200; }],
    ["status 1 under HTTP 201", () => 201],
  ];
  for (const [what, tamper] of tamperings) {
    await page.fill("#quantity", "2");
    await page.fill("#quantity", "1");
    const barePo = await text(page, "#po-number");
    await page.route("**/v1/ops/placeOrder", async (route) => {
      const res = await route.fetch();
      const json = await res.json();
      const status = tamper(json);
      await route.fulfill({ response: res, status, json });
    });
    await page.click("#place-order");
    await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor();
    assert.equal(await text(page, "#uncertain-po"), barePo, what);
    assert.equal(await text(page, "#order-error .err-title"), "Unreadable answer", what);
    assert.match(await text(page, "#order-status"), /not confirmed: it may have been placed/, what);
    await page.unroute("**/v1/ops/placeOrder");
    await page.click("#uncertain-again");
    await page.locator("#order-result-title", { hasText: "Same order, answered again" }).waitFor();
    assert.match(await text(page, "#order-result .facts"), new RegExp(barePo), what);
    assert.equal(await page.locator("#order-uncertain").isVisible(), false, what);
    assert.equal(await page.evaluate(() => document.activeElement.id), "order-result-title", "focus on the answer, not lost with the button");
  }

  // ---- after an order, a changed order is another one: its refusal, or its
  // lost answer, never shows under the first order's answer, vouchers and
  // buttons (which would send or start something else).
  assert.ok(await page.locator("#order-result .voucher").count() > 0, "the first order's vouchers");
  await page.fill("#quantity", "2");
  const secondPo = await text(page, "#po-number");
  await sandbox.admin("/faults/api", { mode: "PLE10019", op: "placeOrder", count: 1 });
  await page.click("#place-order");
  await page.locator("#order-status", { hasText: `Order ${secondPo} was not placed.` }).waitFor();
  assert.equal(await page.locator("#order-result").isVisible(), false, "refused: the first order's answer is gone");
  assert.equal(await page.locator("#order-result .voucher, #order-again, #order-new").count(), 0, "and its vouchers and buttons");
  await page.fill("#quantity", "1");
  const thirdPo = await loseOrderAnswer(page);
  assert.equal(await page.evaluate(() => document.activeElement.id), "order-uncertain-title", "focus moves from the hidden form to the unconfirmed order");
  assert.equal(await page.locator("#order-result .voucher, #order-again, #order-new").count(), 0, "no other order's buttons beside the unconfirmed one");
  // Sent again: while it is out, neither button of its box works (Forget
  // would drop the kept order, which an answer that settles nothing then
  // brings back; a second send is refused anyway).
  const releaseResend = await holdPlaceOrder(page);
  await page.click("#uncertain-again");
  await page.locator("#order-status", { hasText: `Placing order ${thirdPo}…` }).waitFor();
  assert.deepEqual(await page.locator("#uncertain-again, #uncertain-forget").evaluateAll((bs) => bs.map((b) => [b.id, b.disabled])),
    [["uncertain-again", true], ["uncertain-forget", true]], "the unconfirmed order's buttons wait for the answer");
  releaseResend();
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.match(await text(page, "#order-result .facts"), new RegExp(thirdPo));
  assert.equal(await page.evaluate(() => document.activeElement.id), "order-result-title");

  // ---- a placed order whose answer the page cannot draw (a voucher that is
  // null): placed, with where to look it up; not "not confirmed" for ever (a
  // page error is no lost answer), nor a "Network error".
  await page.fill("#quantity", "2");
  const oddPo = await text(page, "#po-number");
  const oddAnswer = (route) => route.fulfill({
    status: 200, contentType: "application/json", headers: { "x-request-id": "a".repeat(32) },
    body: JSON.stringify({ data: { placeOrder: { status: 1, data: {
      orderId: 990001, poNumber: oddPo, orderStatus: "complete", deliveryStatus: "delivered", vouchers: [null],
    } } } }),
  });
  await page.route("**/v1/ops/placeOrder", oddAnswer);
  await page.click("#place-order");
  await page.locator("#order-status", { hasText: `Order ${oddPo} placed; its answer could not be shown. Look it up by its poNumber under Orders.` }).waitFor({ timeout: 10_000 });
  await page.unroute("**/v1/ops/placeOrder", oddAnswer);
  assert.equal(await page.locator("#order-uncertain").isVisible(), false, "a placed order is not unconfirmed");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "nothing kept to settle");
  assert.equal(await text(page, "#order-result-title"), "Order placed");
  assert.match(await text(page, "#order-result .facts"), new RegExp(`${oddPo}[\\s\\S]*${"a".repeat(32)}`));
  assert.equal(await text(page, "#order-error .err-title"), "This page failed", "not a network error");
  assert.equal(await page.inputValue("#details-po"), oddPo, "ready to look up");
  await page.fill("#quantity", "1");

  // ---- an answer that is not plumgate's (no x-request-id): an HTML error
  // page of a proxy or firewall in front of it. Never shown as markup; the
  // order's fate is open (nothing says whether plumgate got it).
  const proxyPo = await text(page, "#po-number");
  const proxyPage = (route) => route.fulfill({
    status: 403, contentType: "text/html", body: "<!doctype html><html><body><h1>403 Forbidden</h1><p>Request blocked.</p></body></html>",
  });
  await page.route("**/v1/ops/placeOrder", proxyPage);
  await page.click("#place-order");
  await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor({ timeout: 10_000 });
  await page.unroute("**/v1/ops/placeOrder", proxyPage);
  assert.equal(await text(page, "#uncertain-po"), proxyPo);
  assert.equal(await text(page, "#order-error .err-title"), "Not plumgate's answer (HTTP 403)");
  const proxyMsg = await text(page, "#order-error .err-message");
  assert.doesNotMatch(proxyMsg, /</, "no markup shown");
  assert.match(proxyMsg, /^HTTP 403 from something in front of plumgate/);
  assert.match(await text(page, "#order-error .err-hint"), /proxy, a firewall/);
  // JSON from such a proxy is not Xoxoday's refusal either: sent again, the
  // unconfirmed order stays unconfirmed, never "not placed".
  const proxyJson = (route) => route.fulfill({ status: 403, contentType: "application/json", body: JSON.stringify({ message: "Forbidden by policy" }) });
  await page.route("**/v1/ops/placeOrder", proxyJson);
  await page.click("#uncertain-again");
  await page.locator("#order-error .err-message", { hasText: "It said: Forbidden by policy" }).waitFor({ timeout: 10_000 });
  await page.unroute("**/v1/ops/placeOrder", proxyJson);
  assert.equal(await page.locator("#order-uncertain").isVisible(), true, "still unconfirmed");
  assert.doesNotMatch(await text(page, "#order-status"), /not placed/);
  assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem("plumgate.unconfirmedOrder")).body.poNumber), proxyPo, "kept");
  // Through to plumgate: placed, once.
  const cProxy = await sandbox.counters();
  await page.click("#uncertain-again");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  assert.match(await text(page, "#order-result .facts"), new RegExp(proxyPo));
  assert.equal((await sandbox.counters()).orders, cProxy.orders + 1, "one order");

  // ---- a delayed product (Northwind Outfitters US, 10105): Xoxoday delivers
  // its vouchers later, so the answer lists none (deliveryStatus pending).
  // The page says no voucher yet, shows no code and nothing to reveal, and
  // the order is placed once; its details say the same.
  await openUsProduct(page, "Northwind Outfitters");
  assert.equal(await page.locator('#products button[data-product="10105"]').count(), 1, "Northwind Outfitters US is 10105");
  assert.match(await text(page, "#products .card-meta"), /Delayed/);
  await page.selectOption("#denomination", "25");
  await page.fill("#quantity", "1");
  await page.fill("#email", "winner@example.com");
  const delayedPo = await text(page, "#po-number");
  const cDelayed = await sandbox.counters();
  const delayedResp = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const dlr = await delayedResp;
  const delayedOrder = (await dlr.json()).data.placeOrder.data;
  assert.deepEqual([dlr.status(), delayedOrder.deliveryStatus, delayedOrder.vouchers], [200, "pending", []], "placed, no voucher yet");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  await page.locator("#order-status", { hasText: `Order ${delayedPo} placed.` }).waitFor();
  assert.match(await text(page, "#order-result .facts"), /delivery pending/);
  assert.equal(await text(page, "#order-result .vouchers"), "No voucher yet: delayed products are delivered later. Look the order up by its poNumber.");
  assert.equal(await page.locator("#order-result .voucher, #order-result .reveal, #order-result dd.secret").count(), 0, "no voucher code, nothing to reveal");
  const cDelayedAfter = await sandbox.counters();
  assert.deepEqual([cDelayedAfter.orders, cDelayedAfter.api_calls.placeOrder], [cDelayed.orders + 1, cDelayed.api_calls.placeOrder + 1], "placed once");
  assert.equal(await page.inputValue("#details-po"), delayedPo, "ready to look up");
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: `Found order ${delayedPo}.` }).waitFor();
  assert.match(await text(page, "#details .vouchers"), /^No voucher yet: delayed products are delivered later/);
  assert.equal(await page.locator("#details .voucher, #details .reveal, #details dd.secret").count(), 0, "no voucher in the details either");
  // Xoxoday delivers it once its turnaround has passed: 10105's tatInDays
  // is "1 - 7", so a day on (the range's lower end) the lookup still shows
  // no voucher, and 7 days on (its upper end) the voucher, to reveal. The
  // sandbox's clock goes back after, as the rest of this walk expects.
  const { clock_offset_secs: clockBefore } = await sandbox.admin("/config");
  const lookUpDaysOn = async (days) => {
    await sandbox.admin("/config", { clock_offset_secs: clockBefore + days * 86400 });
    const looked = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getOrderDetails"));
    await page.click("#details-load");
    const answer = (await (await looked).json()).data.getOrderDetails.data;
    await page.locator("#details-status", { hasText: `Found order ${delayedPo}.` }).waitFor();
    await page.locator('#details[aria-busy="false"]').waitFor();
    return answer;
  };
  try {
    const dayOne = await lookUpDaysOn(1);
    assert.deepEqual([dayOne.deliveryStatus, dayOne.vouchers], ["pending", []], "a day on: not yet");
    assert.match(await text(page, "#details .vouchers"), /^No voucher yet/);
    const weekOn = await lookUpDaysOn(7);
    assert.deepEqual([weekOn.deliveryStatus, weekOn.voucherDetails[0].productStatus, weekOn.vouchers.length], ["delivered", "delivered", 1], "7 days on: delivered");
  } finally {
    await sandbox.admin("/config", { clock_offset_secs: clockBefore });
  }
  assert.match(await text(page, "#details .facts"), /delivery delivered/);
  const deliveredVoucher = page.locator("#details .voucher");
  assert.equal(await deliveredVoucher.count(), 1, "its one voucher, in the details");
  assert.doesNotMatch(await text(page, "#details .vouchers"), /No voucher yet/);
  await deliveredVoucher.locator(".reveal").click();
  const [deliveredCode, deliveredPin] = await deliveredVoucher.locator("dd.secret").allInnerTexts();
  assert.match(deliveredCode, /^SBX-/);
  assert.match(deliveredPin, /^\d{6}$/);
  await pickHarborCoffee(page);

  // ---- a very long product name and big denominations (made up on the
  // way): they wrap inside the card and the order form, nothing overflows,
  // and the denominations read as the balance does, with their decimals.
  const longName = `Harbor ${"Coffee".repeat(40)} US e-Gift Card`;
  await page.route("**/v1/ops/getVouchers", async (route) => {
    const res = await route.fetch();
    const json = await res.json();
    for (const p of json.data.getVouchers.data) if (String(p.productId) === "10100") Object.assign(p, { name: longName, valueDenominations: "1000000,2500000.50,10.5" });
    await route.fulfill({ response: res, json });
  });
  const relisted = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getVouchers"));
  await page.locator("#q").press("Enter");
  await relisted;
  await page.locator("#products .card-title", { hasText: longName }).waitFor();
  const overflowing = () => page.evaluate(() => [...document.querySelectorAll(".card-title, .card-denoms, .picked, .picked-text, .picked-name")]
    .filter((el) => el.getClientRects().length && el.scrollWidth > el.clientWidth).map((el) => `${el.className} ${el.scrollWidth} > ${el.clientWidth}`));
  assert.deepEqual(await overflowing(), [], "nothing in the card overflows");
  assert.match(await text(page, "#products .card-denoms"), /1,000,000 · 2,500,000\.50 · 10\.5 USD$/);
  await page.locator('#products button[data-product="10100"]').click();
  await page.locator("#picked-name", { hasText: longName }).waitFor();
  assert.deepEqual(await overflowing(), [], "nothing in the order form overflows");
  assert.deepEqual(await page.locator("#denomination option").evaluateAll((os) => os.map((o) => [o.value, o.textContent])),
    [["1000000", "1,000,000 USD"], ["2500000.50", "2,500,000.50 USD"], ["10.5", "10.5 USD"]], "sent as given, shown grouped");
  await page.unroute("**/v1/ops/getVouchers");

  // ---- isPhoneNumberMandatory is a Flag: "1" (a string) asks for the phone too.
  await page.route("**/v1/ops/getVouchers", async (route) => {
    const res = await route.fetch();
    const json = await res.json();
    for (const p of json.data.getVouchers.data) if (String(p.productId) === "10100") p.isPhoneNumberMandatory = "1";
    await route.fulfill({ response: res, json });
  });
  const listed = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getVouchers"));
  await page.locator("#q").press("Enter");
  await listed;
  await page.locator("#catalog-status", { hasText: "Showing products 1–1" }).waitFor();
  await page.locator('#products button[data-product="10100"]').click();
  await page.locator("#contact-field").waitFor({ state: "visible" });
  assert.equal(await page.locator("#contact").evaluate((el) => el.required), true, "the phone is required");
  await page.unroute("**/v1/ops/getVouchers");

  // ---- two lookups of order details, the first one's answer late: the page
  // shows the one asked for last, not whichever answer came last.
  let releaseLookup;
  const lookupHeld = new Promise((r) => { releaseLookup = r; });
  let lookups = 0;
  await page.route("**/v1/ops/getOrderDetails", async (route) => {
    if (lookups++ === 0) await lookupHeld;
    await route.continue();
  });
  await page.fill("#details-po", failedPo);
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: `Looking up ${failedPo}…` }).waitFor();
  await page.fill("#details-po", po);
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: `Found order ${po}.` }).waitFor();
  const late = page.waitForEvent("requestfinished", (r) => r.url().endsWith("/v1/ops/getOrderDetails"));
  releaseLookup();
  assert.equal(JSON.parse((await late).postData()).poNumber, failedPo, "the first lookup answered last");
  await page.waitForTimeout(300);
  await page.unroute("**/v1/ops/getOrderDetails");
  assert.equal(await text(page, "#details-status"), `Found order ${po}.`, "the later lookup's status stays");
  assert.equal(await text(page, "#details > h4"), `Order ${po}`, "the later lookup's order stays");
  assert.equal(await page.locator("#details").getAttribute("aria-busy"), "false");

  // ---- the balance after an order, for a key without the admin scope:
  // plumgate ignores its no-cache, so the balance may come from the edge
  // cache, from before the order. The page says so and asks again once the
  // entry has expired, then shows the balance after the order.
  const shop = await (await fetch(`${worker.url}/v1/keys`, {
    method: "POST", headers: { authorization: `Bearer ${keys.admin.key}`, "content-type": "application/json" },
    body: JSON.stringify({ id: "demo-shop", scopes: ["catalog", "balance", "orders:write"] }),
  })).json();
  // Forget key first: nothing of the orders stays for the next person at
  // this screen, no voucher to reveal (the order's answer, the details) and
  // no history.
  await page.click("#history-load");
  await page.locator("#history-status", { hasText: "on page 1." }).waitFor();
  assert.ok(await page.locator("#details .reveal").count() > 0, "the details offer to reveal a voucher");
  assert.ok(await page.locator("#history-pager").isVisible());
  // Nor the order form: sent again by the next key, its poNumber would replay
  // this order's answer, vouchers included.
  const formPo = await text(page, "#po-number");
  assert.equal(await page.inputValue("#details-po"), po, "a poNumber to look up before");
  assert.notEqual(await page.inputValue("#email"), "");
  await page.click("#key-forget");
  assert.notEqual(await text(page, "#po-number"), formPo, "a fresh poNumber for the next key");
  for (const id of ["#details-po", "#email", "#contact"]) assert.equal(await page.inputValue(id), "", `${id} empty`);
  assert.equal(await text(page, "#order-status"), "", "no order status left");
  assert.equal(await page.locator("#order-form").isVisible(), false, "no order form left filled in");
  assert.equal(await page.locator("#order-empty").isVisible(), true);
  assert.equal(await page.locator(".reveal, .voucher, dd.secret").count(), 0, "no voucher left in the page");
  for (const id of ["#order-result", "#details", "#history-pager"]) assert.equal(await page.locator(id).isVisible(), false, `${id} hidden`);
  for (const id of ["#order-result", "#details", "#history", "#history-status", "#details-status"]) {
    assert.equal(await page.locator(id).evaluate((el) => el.textContent), "", `${id} empty`);
  }
  await page.fill("#key-input", shop.key);
  await page.keyboard.press("Enter");
  await page.locator("#key-status", { hasText: "Key set" }).waitFor();
  await pickHarborCoffee(page);
  assert.equal(await page.locator("#contact-field").isVisible(), false);
  // A cache entry filled just now, so the page's look after the order is a hit.
  const balanceAs = async (key) => {
    const res = await fetch(`${worker.url}/v1/ops/getBalance`, {
      method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: "{}",
    });
    return { cache: res.headers.get("x-plumgate-cache"), value: (await res.json()).data.getBalance.data.value };
  };
  const filled = await waitFor(async () => { const b = await balanceAs(shop.key); return b.cache === "miss" && b; },
    { timeout: 15_000, interval: 500, what: "a fresh balance cache entry" });
  const amount = (v) => Math.trunc(v).toLocaleString("en-US");
  const afterOrderBalance = page.waitForResponse((r) => r.url().endsWith("/v1/ops/getBalance"));
  // By keyboard: the button is disabled while the order is out (Chromium
  // drops its focus then); the focus goes on to the answer.
  await page.focus("#place-order");
  await page.keyboard.press("Enter");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  await waitFor(() => page.evaluate(() => !document.getElementById("place-order").disabled), { what: "Place order enabled again" });
  assert.equal(await page.evaluate(() => document.activeElement.id), "order-result-title", "focus on the answer, not on <body>");
  // Busy is the form, not the section with the live status and error lines.
  assert.equal(await page.locator("#order").getAttribute("aria-busy"), null, "the order section is never marked busy");
  assert.equal(await page.locator("#order-form").getAttribute("aria-busy"), "false");
  const ab = await afterOrderBalance;
  assert.equal(ab.headers()["x-plumgate-cache"], "hit", "no-cache is ignored for this key");
  await page.locator("#balance-note", { hasText: "may predate the order" }).waitFor();
  assert.match(await text(page, "#balance-note"), /edge cache, may predate the order \(kept up to BALANCE_CACHE_TTL_SECS, 10 s by default\); asking again in 11 s/);
  assert.match(await text(page, "#balance-value"), new RegExp(amount(filled.value)), "the cached balance, from before the order");
  await page.locator("#balance-value", { hasText: amount(filled.value - 25) }).waitFor({ timeout: 20_000 });
  assert.doesNotMatch(await text(page, "#balance-note"), /predate|edge cache/, "asked again: Xoxoday's answer");

  // ---- a key without the balance scope never learns the wallet's currency:
  // what an order charged is shown as the bare amount, not in a guessed one.
  const blind = await (await fetch(`${worker.url}/v1/keys`, {
    method: "POST", headers: { authorization: `Bearer ${keys.admin.key}`, "content-type": "application/json" },
    body: JSON.stringify({ id: "demo-no-balance", scopes: ["catalog", "orders:write"] }),
  })).json();
  await page.click("#key-forget");
  // The order's answer (its vouchers) goes with the key.
  assert.equal(await page.locator("#order-result").innerHTML(), "", "no earlier order's answer for whoever is next");
  await page.fill("#key-input", blind.key);
  await page.keyboard.press("Enter");
  await page.locator("#balance-error", { hasText: "lacks the `balance` scope" }).waitFor();
  await pickHarborCoffee(page);
  await page.click("#place-order");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  const facts = await text(page, "#order-result .facts");
  assert.match(facts, /Charged\s+25 \(wallet currency unknown: the balance was not read\)/);
  assert.doesNotMatch(facts, /Charged\s+[^\n]*(\$|USD)/, "no guessed currency");
  // A charge in fractions of the unit is shown as charged (a made-up answer).
  await page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status: 200, contentType: "application/json", headers: { "x-request-id": "f".repeat(32) },
    body: JSON.stringify({ data: { placeOrder: { status: 1, data: { orderId: "9001", amountCharged: 24.75 } } } }),
  }));
  await page.click("#order-new");
  await page.click("#place-order");
  await page.locator("#order-result .facts dd", { hasText: /^9001$/ }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.match(await text(page, "#order-result .facts"), /Charged\s+24\.75 \(wallet currency unknown/);
  // Sent again and that answer lost: the order shown was placed, and its answer stays.
  await page.route("**/v1/ops/placeOrder", (route) => route.abort("failed"));
  await page.click("#order-again");
  await page.locator("#order-status", { hasText: "It was placed before, and is still one order." }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await page.locator("#order-result-title").isVisible(), true, "the placed order's answer stays");

  // ---- Xoxoday already holds another order under the form's poNumber (made
  // behind plumgate's back: another system of the account): plumgate passes
  // its duplicate refusal on. The page never says "may have been placed":
  // it offers the taken poNumber to look up, and a new poNumber for the
  // form, under which the order places once.
  await page.fill("#quantity", "2");
  await page.fill("#quantity", "1");
  const takenPo = await text(page, "#po-number");
  const c4 = await sandbox.counters();
  const { access_token: theirToken } = await sandbox.admin("/tokens/issue", {});
  // Another system of the account places an order at Xoxoday directly.
  const placeElsewhere = (poNumber, quantity) => fetch(`${sandbox.oauthUrl}/v1/oauth/api`, {
    method: "POST",
    headers: { authorization: `Bearer ${theirToken}`, "content-type": "application/json" },
    body: JSON.stringify({ query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI", variables: { data: {
      productId: "10100", quantity, denomination: 25, email: "someone.else@example.com", poNumber, notifyReceiverEmail: 0, notifyAdminEmail: 0,
    } } }),
  });
  const theirs = await placeElsewhere(takenPo, 2);
  assert.equal(theirs.status, 200, "their order, placed at Xoxoday directly");
  const dup = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const dr = await dup;
  assert.deepEqual([dr.status(), (await dr.json()).errorId], [409, "PLE10043"], "Xoxoday's duplicate answer, passed on");
  await page.locator("#order-error").waitFor({ state: "visible" });
  const freshAfterDup = await text(page, "#po-number");
  assert.notEqual(freshAfterDup, takenPo, "a new poNumber for this order");
  assert.equal(await text(page, "#order-status"),
    `Order ${takenPo}: Xoxoday already holds an order under this poNumber, not found to be this one. Look it up under Orders first; the form has a new poNumber, ${freshAfterDup}, to place this order.`);
  assert.equal(await text(page, "#order-error .err-title"), "poNumber already used at Xoxoday");
  assert.match(await text(page, "#order-error .err-hint"), /did not find to be this one.*Look the poNumber up under Orders first/);
  assert.doesNotMatch(await text(page, "#order"), /may have been|not confirmed/, "never called unconfirmed");
  assert.equal(await page.locator("#order-uncertain").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "nothing kept to settle");
  assert.equal(await page.inputValue("#details-po"), takenPo, "the taken poNumber, ready to look up");
  assert.equal((await sandbox.counters()).orders, c4.orders + 1, "only their order");
  // Looked up as the page says: their order (two cards), not this one.
  await page.click("#details-load");
  await page.locator("#details-status", { hasText: `Found order ${takenPo}.` }).waitFor();
  assert.match(await text(page, "#details .facts"), /2 × 25/);
  await page.click("#place-order");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  assert.match(await text(page, "#order-result .facts"), new RegExp(freshAfterDup));
  assert.equal((await sandbox.counters()).orders, c4.orders + 2, "this order, once, under its new poNumber");

  // ---- the same refusal for an order sent before and not confirmed (its
  // answer lost on the way): it stays unconfirmed, kept across a reload, to
  // look up and then forget or keep; never dropped, never "placed", never
  // given a new poNumber (the form is not this order).
  await page.fill("#quantity", "2");
  const lostPo = await loseOrderAnswer(page);
  const c5 = await sandbox.counters();
  const elsewhere = await placeElsewhere(lostPo, 1);
  assert.equal(elsewhere.status, 200, "another order under that poNumber, placed at Xoxoday directly");
  const dup2 = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#uncertain-again");
  const d2 = await dup2;
  assert.deepEqual([d2.status(), (await d2.json()).errorId], [409, "PLE10043"], "Xoxoday's duplicate answer, passed on");
  await page.locator("#order-error").waitFor({ state: "visible" });
  assert.equal(await text(page, "#order-status"),
    `Order ${lostPo}: Xoxoday already holds an order under this poNumber, not found to be this one. Look it up under Orders first: if it is this order, it was placed; if not, forget this one and order again from the catalog.`);
  assert.equal(await text(page, "#order-error .err-title"), "poNumber already used at Xoxoday");
  assert.equal(await page.locator("#order-uncertain").isVisible(), true, "still unconfirmed, to look up");
  assert.equal(await text(page, "#uncertain-po"), lostPo);
  assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem("plumgate.unconfirmedOrder")).body.poNumber), lostPo, "kept across a reload");
  assert.equal(await page.inputValue("#details-po"), lostPo, "the taken poNumber, ready to look up");
  assert.equal((await sandbox.counters()).orders, c5.orders + 1, "only the other order");
  await page.click("#uncertain-forget");
  assert.equal(await page.locator("#order-uncertain").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "forgotten");
  assert.notEqual(await text(page, "#po-number"), lostPo, "a new poNumber for the next order");
  await page.fill("#quantity", "1");

  // ---- Xoxoday's duplicate refusal in words only (`{"message": …}`, no
  // errorId; its shape is undocumented): read as the duplicate too, as
  // plumgate's ledger reads it.
  const wordsPo = await text(page, "#po-number");
  await page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status: 409, contentType: "application/json", headers: { "x-request-id": "d".repeat(32) },
    body: JSON.stringify({ message: "An order with this poNumber already exists" }),
  }));
  await page.click("#place-order");
  await page.locator("#order-error .err-title", { hasText: "poNumber already used at Xoxoday" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await page.inputValue("#details-po"), wordsPo, "the taken poNumber, ready to look up");
  assert.notEqual(await text(page, "#po-number"), wordsPo, "a new poNumber for the form");

  // ---- an unconfirmed order that plumgate's look finds to be another order
  // under its poNumber (409 idempotency_conflict): not placed, and the form
  // gets a new poNumber (the old one would only meet Xoxoday's duplicate
  // refusal: two more upstream calls and a hold on the spend cap).
  await page.fill("#quantity", "2");
  const conflictPo = await text(page, "#po-number");
  await page.route("**/v1/ops/placeOrder", (route) => route.abort("failed"));
  await page.click("#place-order");
  await page.locator("#order-uncertain-title", { hasText: "Order not confirmed" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  const c6 = await sandbox.counters();
  await page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status: 409, contentType: "application/json", headers: { "x-request-id": "e".repeat(32) },
    body: JSON.stringify({ error: { code: "idempotency_conflict", message: "Xoxoday already holds a different order under this poNumber, so this one was not placed; use a new poNumber for a new order", request_id: "e".repeat(32) } }),
  }));
  await page.click("#uncertain-again");
  await page.locator("#order-error").waitFor({ state: "visible" });
  await page.unroute("**/v1/ops/placeOrder");
  const afterConflict = await text(page, "#po-number");
  assert.notEqual(afterConflict, conflictPo, "a new poNumber for the form");
  assert.equal(await text(page, "#order-status"),
    `Order ${conflictPo} was not placed: another order holds its poNumber. The form has a new poNumber, ${afterConflict}, to place this order.`);
  assert.equal(await page.locator("#order-uncertain").isVisible(), false, "settled: not placed");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "nothing kept to settle");
  await page.click("#place-order");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  assert.match(await text(page, "#order-result .facts"), new RegExp(afterConflict));
  assert.equal((await sandbox.counters()).orders, c6.orders + 1, "placed once, under the new poNumber");
  await page.fill("#quantity", "1");

  // ---- an any-amount product with an amount out of its range, then a
  // fixed-denomination one: the hidden amount no longer blocks the form
  // (before, Place order did nothing and said nothing).
  await openUsProduct(page, "Bloom Florists");
  await page.locator("#denom-open-field").waitFor({ state: "visible" });
  // Cents at most, as the currency has (10.555 was placed, and shown as
  // 10.555 USD beside "Charged $10.56").
  assert.equal(await page.getAttribute("#amount", "step"), "0.01");
  await page.fill("#amount", "10.555");
  assert.equal(await page.$eval("#amount", (el) => el.validity.stepMismatch), true, "10.555 USD refused by the field");
  await page.fill("#amount", "10.55");
  assert.equal(await page.$eval("#amount", (el) => el.validity.valid), true, "10.55 USD taken");
  await page.fill("#amount", "999999");
  await pickHarborCoffee(page);
  assert.equal(await page.locator("#denom-open-field").isVisible(), false);
  // With the order history on screen: it is asked again once the order is
  // placed (its range, its page), so the new order shows, first.
  await page.click("#history-load");
  await page.locator("#history-status", { hasText: "on page 1." }).waitFor();
  const openPo = await text(page, "#po-number");
  assert.equal(await page.locator(`#history button[data-po="${openPo}"]`).count(), 0, "not in the history before");
  const beforeOpen = await sandbox.counters();
  const historyAgain = page.waitForRequest((r) => r.url().endsWith("/v1/ops/getOrderHistory"));
  await page.click("#place-order");
  await page.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
  assert.equal((await sandbox.counters()).orders, beforeOpen.orders + 1, "the order was placed");
  assert.equal(JSON.parse((await historyAgain).postData()).page, 1, "the history asked again, its page");
  await page.locator(`#history button[data-po="${openPo}"]`).waitFor();
  assert.equal(await page.locator("#history tbody td[data-label=poNumber]").first().innerText(), openPo, "the new order, newest first");
  await page.locator("#history-status", { hasText: "on page 1." }).waitFor();
  await pickHarborCoffee(page);

  // ---- "Order this" on another product while an order is out: refused,
  // said, and the form stays the one sent (its product, its poNumber), so
  // the answer's status is about the form on screen.
  const outPo = await text(page, "#po-number");
  const releaseOut = await holdPlaceOrder(page);
  await page.click("#place-order");
  await page.locator("#order-status", { hasText: `Placing order ${outPo}…` }).waitFor();
  await openUsProduct(page, "Bloom Florists");
  assert.equal(await text(page, "#order-status"), `Order ${outPo} is being placed: wait for its answer before starting another.`);
  assert.equal(await text(page, "#po-number"), outPo, "the form's poNumber stays");
  assert.match(await text(page, "#picked"), /Harbor Coffee Co\. US e-Gift Card/, "the form stays the order sent");
  assert.equal(await page.locator("#denom-open-field").isVisible(), false, "not the any-amount product's form");
  releaseOut();
  await page.locator("#order-status", { hasText: `Order ${outPo} placed.` }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.match(await text(page, "#order-result .facts"), new RegExp(outPo));
  assert.equal(await text(page, "#po-number"), outPo, "under the form it was sent from");
  await pickHarborCoffee(page);

  // ---- getFilters without a currency group (xoxoday-api.md names only
  // Country and voucher_category): the currency list is made of the
  // products' currencies, and picking one filters getVouchers by it. The
  // edge cache holds getFilters' answer with the sandbox's currency group by
  // now, so the group is taken out of that answer on its way to the page.
  const { ctx: plainCtx, page: plain, watch: plainWatch } = await desktopPage();
  current = plain;
  await plain.route("**/v1/ops/getFilters", async (route) => {
    const resp = await route.fetch();
    const body = await resp.json();
    body.data.getFilters.data = body.data.getFilters.data.filter((g) => String(g.filterGroupCode).toLowerCase() !== "currency");
    await route.fulfill({ response: resp, json: body });
  });
  await plain.fill("#key-input", keys.admin.key);
  await plain.keyboard.press("Enter");
  await plain.locator("#key-status", { hasText: "Key set" }).waitFor();
  await waitFor(async () => (await plain.locator("#products .card").count()) > 0, { timeout: 20_000, what: "the first products" });
  await waitFor(async () => (await plain.locator("#country option").count()) > 1, { timeout: 20_000, what: "the country filter" });
  const codes = (await plain.locator("#currency option").evaluateAll((os) => os.map((o) => o.value))).filter(Boolean);
  assert.ok(codes.length > 0, "currencies from the products shown");
  for (const c of codes) assert.match(c, /^[A-Z]{3}$/);
  const asked = plain.waitForRequest((r) => r.url().endsWith("/v1/ops/getVouchers") && JSON.parse(r.postData()).filters);
  await plain.selectOption("#currency", codes[0]);
  assert.deepEqual(JSON.parse((await asked).postData()).filters, [{ key: "currencyCode", value: codes[0] }]);
  await waitFor(async () => (await plain.locator("#products .card").count()) > 0, { timeout: 20_000, what: `${codes[0]} products` });
  plainWatch.check([]);
  await plainCtx.close();
  current = page;

  // ---- an order Xoxoday dates by India's day is listed: with the sandbox
  // dating orders in IST and its clock at 20:00 UTC, an order placed from
  // Berlin then (21:00 or 22:00 there) is dated tomorrow, 01:30 IST, and the
  // page's default history range shows it right after it is placed. Both
  // settings go back afterwards, for the rest of the walk.
  const utcToday = new Date().toISOString().slice(0, 10);
  const daysBefore = (d, n) => new Date(Date.parse(`${d}T00:00:00Z`) - n * 86400_000).toISOString().slice(0, 10);
  const sandboxBefore = await sandbox.admin("/config");
  const eightPm = `${utcToday}T20:00:00Z`;
  const istTomorrow = daysBefore(utcToday, -1);
  try {
    await sandbox.admin("/config", {
      order_day_zone: "ist",
      clock_offset_secs: sandboxBefore.clock_offset_secs + Math.round((Date.parse(eightPm) - Date.now()) / 1000),
    });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin", locale: LOCALE });
    const berlin = await ctx.newPage();
    current = berlin;
    berlin.setDefaultTimeout(30_000);
    const berlinWatch = watchConsole(berlin);
    await berlin.clock.setFixedTime(new Date(eightPm));
    await berlin.goto(`${worker.url}/`);
    await berlin.fill("#key-input", keys.admin.key);
    await berlin.keyboard.press("Enter");
    await berlin.locator("#key-status", { hasText: "Key set" }).waitFor();
    await pickHarborCoffee(berlin);
    const istPo = await text(berlin, "#po-number");
    await berlin.click("#place-order");
    await berlin.locator("#order-result-title", { hasText: "Order placed" }).waitFor();
    await berlin.click("#history-load");
    await berlin.locator("#history-status", { hasText: /on page 1\.|No orders/ }).waitFor();
    const row = berlin.locator("#history tbody tr", { has: berlin.locator(`button[data-po="${istPo}"]`) });
    const range = `${await berlin.inputValue("#start-date")}..${await berlin.inputValue("#end-date")}`;
    assert.equal(await row.count(), 1, `the order placed at ${eightPm}, dated ${istTomorrow} in IST, listed by the default range (${range})`);
    assert.match(await text(row, `td[data-label="Date (Xoxoday's clock)"]`), new RegExp(`^${istTomorrow} 01:3\\d:\\d\\d$`), "dated by IST");
    berlinWatch.check([]);
    await ctx.close();
    current = page;
  } finally {
    await sandbox.admin("/config", { order_day_zone: sandboxBefore.order_day_zone, clock_offset_secs: sandboxBefore.clock_offset_secs });
  }

  // ---- plumgate's 502 that says nothing was placed (no token could be had,
  // so Xoxoday never got the order): not placed and safe to send again, not
  // "it may have been placed".
  await page.fill("#quantity", "2");
  const unsentPo = await text(page, "#po-number");
  const c3 = await sandbox.counters();
  await sandbox.admin("/tokens/revoke-access", {});
  await sandbox.admin("/faults/refresh", { mode: "5xx", count: 3 });
  const unsent = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
  await page.click("#place-order");
  const ur = await unsent;
  assert.equal(ur.status(), 502);
  assert.match((await ur.json()).error.message, /\(placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe\)$/);
  await page.locator("#order-error").waitFor({ state: "visible" });
  // The refresh is backing off after the failures: the answer says how long.
  const wait = ur.headers()["retry-after"];
  assert.match(wait ?? "", /^[1-9]\d*$/, "Retry-After on the 502");
  assert.equal(await text(page, "#order-status"), `Order ${unsentPo} was not placed: Xoxoday did not execute it. Sending it again unchanged (same poNumber) is safe after ${wait} s.`);
  assert.equal(await text(page, "#order-error .err-title"), "Not placed: safe to send again");
  assert.doesNotMatch(await text(page, "#order"), /may have been|not confirmed/, "never called unconfirmed");
  assert.equal(await page.locator("#order-uncertain").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("plumgate.unconfirmedOrder")), null, "nothing kept to settle");
  assert.equal(await text(page, "#po-number"), unsentPo, "the same order, ready to send again");
  assert.equal((await sandbox.counters()).orders, c3.orders, "nothing ordered");

  // ---- a refusal until a person acts (503 reauth_required, with the
  // ledger's "nothing was placed" phrase): the page says a person must act,
  // not just "safe to send again", which would fail the same way.
  await page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status: 503, contentType: "application/json", headers: { "x-request-id": "e".repeat(32) },
    body: JSON.stringify({ error: { code: "reauth_required", message: "the Xoxoday refresh token is dead (placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe)" } }),
  }));
  const reauthPo = await text(page, "#po-number");
  await page.click("#place-order");
  await page.locator("#order-error .err-title", { hasText: "A person must reconnect Xoxoday" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await text(page, "#order-status"), `Order ${reauthPo} was not placed (A person must reconnect Xoxoday). Sending it again unchanged (same poNumber) is safe once that is done.`);
  assert.match(await text(page, "#order-error"), /must act first/);

  // ---- answers that decide an order's fate by their code, not their words
  // (each made up here: nothing reaches plumgate). Refused before the
  // ledger (503 misconfigured) or by Xoxoday for its quantity (409 PLE10041,
  // even in words that read like a duplicate's, as crates/core's ledger
  // tests put them): not placed, and no poNumber taken.
  const fateOf = (status, body) => page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status, contentType: "application/json", headers: { "x-request-id": "e".repeat(32), "retry-after": "5" }, body: JSON.stringify(body),
  }));
  const codePo = await text(page, "#po-number");
  for (const [status, body] of [
    [503, { error: { code: "misconfigured", message: "plumgate is misconfigured: XOXODAY_CLIENT_ID is not set" } }],
    [409, { code: 409, errorId: "PLE10041", errorInfo: "Quantity limit exceeded", error: "already exists more than 10" }],
  ]) {
    await fateOf(status, body);
    const answered = page.waitForResponse((r) => r.url().endsWith("/v1/ops/placeOrder"));
    await page.click("#place-order");
    await answered;
    await page.waitForFunction(() => !document.getElementById("place-order").disabled);
    await page.unroute("**/v1/ops/placeOrder");
    assert.equal(await text(page, "#order-status"), `Order ${codePo} was not placed.`, `${status}: not placed`);
    assert.equal(await page.locator("#order-uncertain").isVisible(), false, `${status}: settled`);
    assert.equal(await text(page, "#po-number"), codePo, `${status}: the same poNumber`);
  }
  // plumgate's own 5xx without "nothing was placed" (here its 500): the
  // order may have been placed.
  await fateOf(500, { error: { code: "internal_error", message: "internal error; the request id identifies it in the logs" } });
  await page.click("#place-order");
  await page.locator("#order-uncertain-title").waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await text(page, "#order-status"), `Order ${codePo} was not confirmed: it may have been placed. Send it again unchanged to find out.`);
  assert.equal(await text(page, "#order-error .err-title"), "plumgate failed (internal error)");
  // Sent again, plumgate's 409 order_in_progress, whose words quote
  // Xoxoday's duplicate refusal: still not settled, not "poNumber taken".
  await fateOf(409, { error: { code: "order_in_progress", message: "Xoxoday answered that an order with this poNumber already exists (HTTP 409, errorId PLE10043); plumgate cannot yet confirm whether this order was placed and keeps asking Xoxoday. Send the same poNumber and body again after 5 s: you get the order or word that it was not placed, never a second order" } });
  await page.click("#uncertain-again");
  await page.locator("#order-error .err-title", { hasText: "Order not confirmed yet" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  // Its words say the wait: the hint does not repeat it.
  assert.equal(await text(page, "#order-error .err-hint"), "plumgate is still finding out from Xoxoday whether it was placed. Send the same order again: it is never placed twice.");
  assert.match(await text(page, "#order-status"), new RegExp(`^Tried again at [^:]+:\\d{2}:\\d{2}\\s[AP]M: Order ${codePo} was not confirmed: it may have been placed\\. Send it again unchanged to find out\\.$`));
  assert.equal(await text(page, "#uncertain-po"), codePo, "still the same order");
  await page.click("#uncertain-forget");
  // A long wait (a key's daily cap, until the UTC day ends), stated in the
  // message in seconds: the hint says it in hours and minutes, and until when.
  await page.route("**/v1/ops/placeOrder", (route) => route.fulfill({
    status: 429, contentType: "application/json", headers: { "x-request-id": "e".repeat(32), "retry-after": "50108" },
    body: JSON.stringify({ error: { code: "quota_exceeded", message: "this order (25) would take this key past its order_amount_per_day limit (50; 50 already placed or reserved today, UTC), so it was not sent; retry after 50108 s (2026-12-08T00:00:00Z) or ask for a higher limit" } }),
  }));
  await page.click("#place-order");
  await page.locator("#order-error .err-title", { hasText: "This key's limit is reached" }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.match(await text(page, "#order-error .err-hint"), /^That is about 13 h 55 min, until (\w{3} \d{1,2}, \d{4}, )?\d{1,2}:\d{2}\s?[AP]M\.$/);
  assert.doesNotMatch(await text(page, "#order-error"), /Retry after 50108/);

  // ---- the key forgotten while an order is out (a made-up answer, held):
  // placed, but none of it is shown to whoever is at the screen now, and
  // the recipient leaves the form.
  let releaseLate;
  const lateHeld = new Promise((r) => { releaseLate = r; });
  await page.route("**/v1/ops/placeOrder", async (route) => {
    await lateHeld;
    await route.fulfill({
      status: 200, contentType: "application/json", headers: { "x-request-id": "f".repeat(32) },
      body: JSON.stringify({ data: { placeOrder: { status: 1, data: { orderId: "9002", vouchers: [{ voucherCode: "LATE-CODE-1", pin: "4321", amount: 25, currency: "USD" }] } } } }),
    });
  });
  const latePo = await text(page, "#po-number");
  await page.click("#place-order");
  await page.locator("#order-status", { hasText: `Placing order ${latePo}` }).waitFor();
  await page.click("#key-forget");
  releaseLate();
  await page.locator("#order-status", { hasText: `Order ${latePo} placed; its vouchers are not shown, as the key was changed meanwhile.` }).waitFor();
  await page.unroute("**/v1/ops/placeOrder");
  assert.equal(await page.locator("#order-result").isVisible(), false, "no answer shown");
  assert.equal(await page.locator("#order-result").innerHTML(), "", "nothing of it in the page");
  assert.equal(await page.inputValue("#email"), "", "the recipient leaves the form");

  await assertCleanText(page);
  // Xoxoday's 401s; the key without the balance scope: 403; the taken
  // poNumber, the quantity and the order in progress: 409; the internal
  // error: 500; the unsent order: 502; the refusal until a person acts and
  // the misconfigured one: 503; four placeOrder calls aborted.
  watch.check([401, 403, 409, 429, 500, 502, 503], 4);
  await desk.close();

  // ---- the order history's default range ends on the latest of the local
  // and India's date (Xoxoday may date orders by UTC or IST, and IST's date is
  // never before UTC's): in Los Angeles at 03:00 UTC it is still yesterday,
  // but today's orders are dated today; in Berlin at 20:00 UTC an order is
  // already dated tomorrow in IST.
  for (const [timezoneId, at, end, auditFrom, auditTo] of [
    ["America/Los_Angeles", `${utcToday}T03:00:00Z`, utcToday, "2020-01-01T08:00:00.000Z", "2020-01-03T08:00:00.000Z"],
    ["Asia/Tokyo", `${daysBefore(utcToday, 1)}T20:00:00Z`, utcToday, "2019-12-31T15:00:00.000Z", "2020-01-02T15:00:00.000Z"],
    ["Europe/Berlin", `${utcToday}T20:00:00Z`, daysBefore(utcToday, -1), "2019-12-31T23:00:00.000Z", "2020-01-02T23:00:00.000Z"],
  ]) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId, locale: LOCALE });
    const tz = await ctx.newPage();
    current = tz;
    const tzWatch = watchConsole(tz);
    await tz.clock.setFixedTime(new Date(at));
    await tz.goto(`${worker.url}/`);
    assert.equal(await tz.inputValue("#end-date"), end, `${timezoneId} at ${at}: the range ends ${end}`);
    assert.equal(await tz.inputValue("#start-date"), daysBefore(end, 30));
    assert.match(await text(tz, "#history-help"), /IST/);
    // The tab left open into the next day: the default range, untouched,
    // moves up to the new day when the history is asked for.
    await tz.clock.setFixedTime(new Date(Date.parse(at) + 86400_000));
    await tz.click("#history-load");
    const next = daysBefore(end, -1);
    assert.equal(await tz.inputValue("#end-date"), next, `${timezoneId}: a day later the range ends ${next}`);
    assert.equal(await tz.inputValue("#start-date"), daysBefore(next, 30));
    // A start the user chose stays; the end, still the default, moves on.
    await tz.fill("#start-date", "2020-01-01");
    await tz.clock.setFixedTime(new Date(Date.parse(at) + 2 * 86400_000));
    await tz.click("#history-load");
    assert.deepEqual([await tz.inputValue("#start-date"), await tz.inputValue("#end-date")], ["2020-01-01", daysBefore(end, -2)]);
    // The audit trail's dates are this zone's days: from the start of the
    // first to the end of the last, as instants.
    await tz.fill("#key-input", keys.admin.key);
    await tz.keyboard.press("Enter");
    await tz.locator("#key-status", { hasText: "Key set" }).waitFor();
    await tz.fill("#audit-from", "2020-01-01");
    await tz.fill("#audit-to", "2020-01-02");
    const auditAsked = tz.waitForRequest((r) => r.url().includes("/v1/audit?"));
    await tz.click("#audit-load");
    const q = new URL((await auditAsked).url()).searchParams;
    assert.deepEqual([q.get("from"), q.get("to")], [auditFrom, auditTo], timezoneId);
    await tz.locator("#audit-status", { hasText: "No entries for these filters." }).waitFor();
    tzWatch.check([]);
    await ctx.close();
  }
}
