// The operator's console in Debian's headless Chromium, driven by Playwright (playwright-core:
// it never downloads a browser). scripts/browser-test.sh starts the server and three simulated
// boards in group "lab" (1.0.0), and passes where everything is through the environment.
// Each step says what it checks; the first failure ends the run with a screenshot of the page.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/browser-test.sh)`);
  return v;
};
const URL = env("FERROTA_URL");
const ADMIN = env("FERROTA_ADMIN_TOKEN");
const VIEWER = env("FERROTA_VIEWER_TOKEN");
const FILES = env("FERROTA_FILES");
const SHOTS = env("FERROTA_SCREENSHOTS");
const ROLLOUT = "rel-1-1";
// Long enough for three 4 MB downloads on a loaded CI machine; bounded all the same.
const LONG = 120_000;

const profile = mkdtempSync(join(tmpdir(), "ferrota-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: env("FERROTA_CHROMIUM"),
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    ],
    viewport: { width: 1280, height: 900 },
  });
} catch (e) {
  rmSync(profile, { recursive: true, force: true });
  console.error(`FAIL starting Chromium: ${e.message}`);
  process.exit(1);
}
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(30_000);
page.on("dialog", (d) => d.accept());

let current = "start";
async function step(name, body) {
  current = name;
  const t0 = Date.now();
  await body();
  console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const text = async (sel) => (await page.locator(sel).first().textContent())?.trim();

/** Every form control has a label the screen reader reads. */
async function everyInputLabelled() {
  const unlabelled = await page.$$eval(
    "input:not([type=hidden]), select, textarea",
    (els) => els.filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label")).map((e) => e.name),
  );
  assert.deepEqual(unlabelled, [], "inputs without a label");
  assert.equal(await page.locator("main").count(), 1, "one main landmark");
}

async function signIn(token) {
  await page.goto(`${URL}/ui/`);
  assert.match(page.url(), /\/ui\/login\?next=/, "a page needs a sign-in first");
  await page.getByLabel("Operator token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${URL}/ui/`);
}

try {
  await step("a wrong token is refused on the sign-in page", async () => {
    await page.goto(`${URL}/ui/login`);
    await page.getByLabel("Operator token").fill("fer_not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("wrong or revoked").waitFor();
  });

  await step("sign in; the fleet page shows three devices online on 1.0.0", async () => {
    await signIn(ADMIN);
    const deadline = Date.now() + LONG;
    while ((await text("[data-testid=devices-online]")) !== "3") {
      assert.ok(Date.now() < deadline, "the three boards did not come online");
      await page.waitForTimeout(500);
      await page.reload();
    }
    assert.equal(await text("[data-testid=devices-total]"), "3");
    await page.getByRole("cell", { name: "1.0.0" }).first().waitFor();
    await page.getByText("Hardware KIT_T2G").waitFor();
    await everyInputLabelled();
    await shot("fleet");
  });

  await step("a release whose signature is not for this file is refused, nothing uploaded", async () => {
    await page.getByRole("link", { name: "Releases" }).click();
    await page.getByLabel("Image (bank image").setInputFiles(join(FILES, "v1.1.0.bin"));
    await page.getByLabel("OTA signature (the .sig file").setInputFiles(join(FILES, "v1.0.0.bin.sig"));
    await page.getByLabel("Code-signing certificate").setInputFiles(join(FILES, "signer.crt"));
    await page.getByRole("button", { name: "Check and upload" }).click();
    const alert = page.getByRole("alert");
    await alert.getByText("does not verify").waitFor();
    assert.match(await alert.textContent(), /nothing was uploaded/);
  });

  await step("upload a signed release: its image report and version, signature checked", async () => {
    await page.goto(`${URL}/ui/releases`);
    await everyInputLabelled();
    await page.getByLabel("Image (bank image").setInputFiles(join(FILES, "v1.1.0.bin"));
    await page.getByLabel("OTA signature (the .sig file").setInputFiles(join(FILES, "v1.1.0.bin.sig"));
    await page.getByLabel("Code-signing certificate").setInputFiles(join(FILES, "signer.crt"));
    await page.getByLabel("File name on the device").fill("firmware.bin");
    await page.getByRole("button", { name: "Check and upload" }).click();
    await page.getByRole("status").getByText("the signature verifies").waitFor();
    assert.equal(await text("[data-testid=release-version]"), "1.1.0");
    const report = await text("[data-testid=image-report]");
    assert.match(report, /version record: 1\.1\.0/);
    assert.match(report, /CM0\+ region at/);
    await shot("release");
  });

  await step("start a two-wave rollout to group lab: canary of one, approval, then the rest", async () => {
    await page.getByLabel("Rollout id").fill(ROLLOUT);
    await page.getByLabel("Thing groups").fill("lab");
    await page.getByLabel("Waves").fill("canary:1:approve\nrest:100%");
    await page.getByRole("button", { name: "Start rollout" }).click();
    await page.waitForURL(`${URL}/ui/rollouts/${ROLLOUT}`);
  });

  await step("the live view (server-sent events) shows the canary succeed and wait for approval", async () => {
    // No reload: the progress region changes by itself.
    await page.locator("[data-testid=rollout-status]", { hasText: "WAITING_FOR_APPROVAL" }).waitFor({ timeout: LONG });
    assert.equal(await text("[data-testid=wave-0-succeeded]"), "1");
    assert.equal(await page.locator("[data-testid=wave-1]").getAttribute("data-open"), "false");
    assert.ok(await page.locator("#progress").getAttribute("data-updated"), "updated by an event");
    await shot("rollout-waiting");
  });

  await step("approve: the progress reaches the second wave", async () => {
    await page.getByTestId("approve").click();
    await page.locator("[data-testid=wave-1][data-open=true]").waitFor();
  });

  await step("pause, then resume", async () => {
    await page.getByTestId("pause").click();
    await page.locator("[data-testid=rollout-status]", { hasText: "PAUSED" }).waitFor();
    await shot("rollout-paused");
    await page.getByTestId("resume").click();
    await page.locator("[data-testid=rollout-status]", { hasText: /RUNNING|FINISHED/ }).waitFor();
  });

  await step("every device succeeds (followed live)", async () => {
    await page.locator("[data-testid=count-SUCCEEDED]", { hasText: /^3$/ }).waitFor({ timeout: LONG });
    await page.locator("[data-testid=wave-1-succeeded]", { hasText: /^2$/ }).waitFor({ timeout: LONG });
    await shot("rollout-done");
  });

  await step("a device's page: it runs 1.1.0, its history shows the update's steps", async () => {
    await page.goto(`${URL}/ui/things/dev-2`);
    await page.locator("[data-testid=version]", { hasText: "1.1.0" }).waitFor({ timeout: LONG });
    const history = page.locator("article", { hasText: `AFR_OTA-${ROLLOUT}` });
    await history.getByText("SUCCEEDED").first().waitFor();
    await history.getByRole("cell", { name: "IN_PROGRESS" }).first().waitFor();
    await shot("device");
  });

  await step("the audit log, filtered, names who created the rollout", async () => {
    await page.goto(`${URL}/ui/audit`);
    await page.getByLabel("Action").fill("CreateOTAUpdate");
    await page.getByRole("button", { name: "Filter" }).click();
    const row = page.locator("tbody tr", { hasText: `ota/${ROLLOUT}` }).first();
    await row.waitFor();
    assert.match(await row.textContent(), /api-token/, "the bootstrap admin token made it");
    await page.getByLabel("Action").fill("UpdateJobExecution");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("tbody tr", { hasText: "device:dev-3" }).first().waitFor();
    await shot("audit");
  });

  await step("on a phone-sized screen the fleet page fits its width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${URL}/ui/`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
    await shot("fleet-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step("a viewer cannot start a rollout: the page shows the API's 403, nothing is created", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/ui\/login/);
    await signIn(VIEWER);
    await page.goto(`${URL}/ui/rollouts`);
    await page.getByLabel("Rollout id").fill("viewer-try");
    await page.getByLabel("Things", { exact: true }).fill("dev-1");
    await page.getByRole("button", { name: "Start rollout" }).click();
    const alert = page.getByRole("alert");
    await alert.getByText("AccessDeniedException").waitFor();
    await shot("viewer-refused");
    const api = await fetch(`${URL}/api/ota-updates`, {
      method: "POST",
      headers: { authorization: `Bearer ${VIEWER}`, "content-type": "application/json" },
      body: JSON.stringify({ otaUpdateId: "viewer-api", targets: ["thing/dev-1"], files: [] }),
    });
    assert.equal(api.status, 403, "the API refuses the viewer too");
    for (const id of ["viewer-try", "viewer-api"]) {
      const r = await fetch(`${URL}/api/ota-updates/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(r.status, 404, `${id} was not created`);
    }
  });
} catch (e) {
  console.error(`FAIL ${current}: ${e.stack ?? e}`);
  await shot("failure").catch(() => {});
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
await context.close();
rmSync(profile, { recursive: true, force: true });
console.log(`all browser steps passed; screenshots in ${SHOTS}`);
