// The browser test: headless Chromium (Debian's, driven by playwright-core) opens the booking page from
// an origin in ALLOWED_ORIGINS and books; the same page from another origin is refused by CORS.
// Environment: WORKER_URL, ALLOWED_PORT (the allowed origin is http://127.0.0.1:ALLOWED_PORT), OTHER_PORT,
// PROVIDER_ID, START_ALLOWED, START_OTHER, EMAIL_TAG, SCREENSHOT (where the success screenshot goes).
// Prints one JSON line with what each page showed; exits non-zero when anything is off.
import http from "node:http";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const page = readFileSync(new URL("./booking-page.html", import.meta.url));
const serve = (port) =>
  new Promise((resolve) => {
    const server = http.createServer((_, response) => response.writeHead(200, { "content-type": "text/html" }).end(page));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
const env = process.env;
const servers = [await serve(Number(env.ALLOWED_PORT)), await serve(Number(env.OTHER_PORT))];

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const book = async (port, start, email) => {
  const tab = await browser.newPage();
  const query = new URLSearchParams({ worker: env.WORKER_URL, provider: env.PROVIDER_ID, start, email });
  await tab.goto(`http://127.0.0.1:${port}/?${query}`);
  await tab.click("button[type=submit]");
  await tab.waitForFunction(() => document.getElementById("result").textContent.length > 0, null, { timeout: 20000 });
  return { tab, text: await tab.textContent("#result"), className: await tab.getAttribute("#result", "class") };
};

let failed = false;
const allowed = await book(env.ALLOWED_PORT, env.START_ALLOWED, `${env.EMAIL_TAG}.allowed@example.com`);
await allowed.tab.screenshot({ path: env.SCREENSHOT, fullPage: true });
const other = await book(env.OTHER_PORT, env.START_OTHER, `${env.EMAIL_TAG}.other@example.com`);
if (allowed.className !== "ok" || !allowed.text.startsWith("Booked with")) failed = true;
if (other.className !== "error" || !other.text.startsWith("Could not reach")) failed = true;
console.log(JSON.stringify({ allowed: allowed.text, other: other.text }));

await browser.close();
servers.forEach((server) => server.close());
process.exit(failed ? 1 : 0);
