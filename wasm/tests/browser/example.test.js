// The browser example (examples/browser/) in headless Chromium, driven by playwright-core: the
// page loads the package's browser entry (js/web.js over pkg/), takes a full and an incremental encrypted backup of its
// notes into OPFS, and restores them into a fresh store; the restored notes must equal the page's;
// then it reads the notes straight from the backup as of each backup's time (scanBackup).
// A screenshot of the finished page is saved to $STRATA_SCREENSHOT_DIR (default
// <target>/wasm-example/) as browser-example.png.
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM_BIN): playwright's own browser download
// is not used. Run by scripts/test-all.sh (step wasm-example) after wasm/build.sh:
//   cd wasm && node --test tests/browser/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(packageRoot, "..", "target");
const screenshotDir = process.env.STRATA_SCREENSHOT_DIR ?? join(targetDir, "wasm-example");
const chromiumBin = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".css": "text/css",
};

/** A static file server for the package directory (the page imports ../../js and ../../pkg). */
function serve(root) {
  const server = http.createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const file = join(root, path);
    if (!file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (!statSync(file).isFile()) throw new Error("not a file");
      res.writeHead(200, { "Content-Type": MIME[extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let server;
let browser;
before(async () => {
  server = await serve(packageRoot);
  // launch() gives the browser a fresh, temporary profile (user data directory) of its own.
  browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
  server?.close();
});

test("the example page backs up, changes, backs up incrementally, restores its notes and reads them from the backup", async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));

  const { port } = server.address();
  await page.goto(`http://127.0.0.1:${port}/examples/browser/index.html`);
  const step = () => page.evaluate(() => window.exampleState);
  const waitFor = async (name) => {
    await page.waitForFunction((s) => window.exampleState?.step === s || window.exampleState?.error, name, { timeout: 60_000 });
    const state = await step();
    assert.equal(state.error, null, `the page failed at ${name}: ${state.error}`);
  };

  await waitFor("ready");
  const before = await page.locator("#notes li").count();
  assert.equal(before, 4);

  await page.click("#full");
  await waitFor("full");
  await page.click("#change");
  await waitFor("change");
  await page.click("#incremental");
  await waitFor("incremental");
  await page.click("#restore");
  await waitFor("restore");

  const state = await step();
  assert.deepEqual(state.backups.map((b) => b.backupType), ["full", "incremental"]);
  assert.equal(state.backups[1].rows, 2, "the incremental holds the 2 written notes (and a deletion)");
  assert.equal(state.restoredMatches, true);
  assert.equal(state.restoredNotes, 4);
  assert.match(await page.textContent("#status"), /Restored 4 notes: identical/);
  assert.deepEqual(await page.locator("#restored li span").allTextContents(), await page.locator("#notes li span").allTextContents());
  assert.ok((await page.locator("#restored li span").allTextContents()).includes("Plumber comes Tuesday 9:00"));

  // Read the notes straight from the backup, as of the full backup's time: the notes before the change.
  const times = await page.locator("#asof option").evaluateAll((os) => os.map((o) => o.value));
  assert.equal(times.length, 2);
  await page.selectOption("#asof", times[0]);
  await page.click("#browse");
  await waitFor("browse");
  const early = (await step()).browsed;
  assert.deepEqual(early.map(([k]) => k), ["note-1", "note-2", "note-3", "note-4"]);
  assert.equal(early[1][1], "Call the plumber about the leak");
  assert.deepEqual(await page.locator("#restored li span").allTextContents(), early.map(([, v]) => v));
  // As of the incremental's time: the notes now.
  await page.evaluate(() => (window.exampleState.step = "again"));
  await page.selectOption("#asof", times[1]);
  await page.click("#browse");
  await waitFor("browse");
  assert.deepEqual(await page.locator("#restored li span").allTextContents(), await page.locator("#notes li span").allTextContents());
  assert.match(await page.textContent("#restored-title"), new RegExp(`as of ${times[1]}`));

  mkdirSync(screenshotDir, { recursive: true });
  const shot = join(screenshotDir, "browser-example.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
  console.log(`screenshot: ${shot}`);
  assert.deepEqual(problems, []);
});
