// Serves the BUILT worker (build/index.js + its wasm) in workerd through Miniflare, on 127.0.0.1:$PORT
// (0 = a free port), with the vars and secrets given in the environment. Prints "worker ready on <url>" once
// it answers, and "control on <url>": POST <url>/scheduled fires the cron trigger (the scheduled handler) and
// answers when it has finished. Everything the worker logs follows on stdout. Stops on SIGTERM or SIGINT.
import { Miniflare } from "miniflare";
import http from "node:http";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const settings = ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "ALLOWED_ORIGINS", "EXPOSE_ERROR_DEBUG",
  "DATABASE_TIMEOUT_MS", "SYNC_LEASE_SECONDS", "INTAKEQ_BASE_URL", "INTAKEQ_API_KEY", "INTAKEQ_TIMEOUT_MS",
  "SYNC_BATCH_SIZE", "SYNC_MAX_ATTEMPTS", "SYNC_MAX_BACKOFF_MINUTES", "SYNC_RETRY_WINDOW_HOURS", "ADMIN_TOKEN",
  "STAFF_ALERT_WEBHOOK_URL", "INTAKEQ_CALLS_PER_MINUTE", "INTAKEQ_CALLS_PER_DAY", "INTAKEQ_BUDGET_MINUTE_MS",
  "INLINE_SYNC_BUDGET_MS", "PARTNER_API_TOKEN", "BOOKING_LIMIT_PER_IP_PER_MINUTE", "BOOKING_LIMIT_PER_EMAIL_PER_HOUR",
  "TURNSTILE_SECRET_KEY", "TURNSTILE_VERIFY_URL", "INTAKEQ_WEBHOOK_SECRET", "MANAGE_TOKEN_SECRET",
  "INTAKEQ_CATCHUP_DAYS", "INTAKEQ_CATCHUP_MINUTES"];
const bindings = Object.fromEntries(settings.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));

const mf = new Miniflare({
  modules: true,
  scriptPath: path.join(root, "build/index.js"),
  modulesRoot: path.join(root, "build"),
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
  compatibilityDate: "2025-09-01",
  bindings,
  // wrangler.toml's [[ratelimits]] binding, with the limit the environment gives (the worker skips it at 0).
  ratelimits: {
    BOOKING_IP_LIMITER: { simple: { limit: Number(process.env.BOOKING_LIMIT_PER_IP_PER_MINUTE) || 10, period: 60 } },
  },
  host: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  cf: false,
});
const url = await mf.ready;
console.log(`worker ready on ${url.origin}`);

const control = http.createServer(async (request, response) => {
  if (request.method !== "POST" || request.url !== "/scheduled") {
    response.writeHead(404).end();
    return;
  }
  try {
    const worker = await mf.getWorker();
    const result = await worker.scheduled({ cron: "* * * * *" });
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result));
  } catch (error) {
    response.writeHead(500).end(String(error));
  }
});
control.listen(0, "127.0.0.1", () => console.log(`control on http://127.0.0.1:${control.address().port}`));

const stop = async () => {
  control.close();
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
