// Profile wiring for the Portkey AI Gateway: not part of Portkey, and not a setting.
//
// Portkey takes its routing config per request (the x-portkey-config header; docs:
// https://portkey.ai/docs/product/ai-gateway/configs) and has no default config of its
// own. The harness's clients must not carry gateway wiring, so this small process is the
// container's front door on :8000: it starts Portkey (@portkey-ai/gateway's
// build/start-server.js, on port 8787: it cannot be told to bind loopback only, but the
// profile's port is 8000) as its child, and forwards every request to it
// unchanged except that a request without an x-portkey-config header gets the profile's
// config (stock.mjs or hardened.mjs, rendered once from UPSTREAM_URL and FALLBACK_URLS).
// Bodies stream both ways chunk by chunk (SSE is not buffered); a client that hangs up
// closes the request to Portkey; a Portkey response cut mid-way is cut towards the client
// too (never a clean end). If Portkey exits, so does this process (the container stops).
//
// Portkey refuses custom_host URLs on private addresses and internal-looking names
// (its SSRF guard) unless the host is in TRUSTED_CUSTOM_HOSTS: the scenario's own
// providers are by definition trusted, so their host names are added to it.
import { spawn } from "node:child_process";
import http from "node:http";

const LISTEN_PORT = 8000;
const PORTKEY_PORT = 8787;
const PORTKEY = "/opt/portkey/node_modules/@portkey-ai/gateway/build/start-server.js";
const CONFIG_HEADER = "x-portkey-config";
// Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own on each side.
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding",
  "te", "trailer", "upgrade", "host"]);

function fail(message) {
  console.error(`portkey wiring: ${message}`);
  process.exit(2);
}

function baseUrl(value, name) {
  const text = value.trim().replace(/\/+$/, "");
  let url;
  try {
    url = new URL(text);
  } catch {
    fail(`${name} must be http://host:port, got '${value}'`);
  }
  if (url.protocol !== "http:" || !url.hostname || url.pathname !== "/") {
    fail(`${name} must be http://host:port with no path, got '${value}'`);
  }
  return { text, host: url.hostname };
}

const profile = process.env.GATEWAY_PROFILE || "stock";
if (!["stock", "hardened"].includes(profile)) {
  fail(`unknown GATEWAY_PROFILE '${profile}' (expected stock or hardened)`);
}
const upstream = baseUrl(process.env.UPSTREAM_URL || "", "UPSTREAM_URL");
const fallbacks = (process.env.FALLBACK_URLS || "").split(",").filter((s) => s.trim())
  .map((s) => baseUrl(s, "FALLBACK_URLS"));
const { default: build } = await import(`./${profile}.mjs`);
const config = JSON.stringify(build({ upstream: upstream.text,
  fallbacks: fallbacks.map((f) => f.text) }));
const trusted = [process.env.TRUSTED_CUSTOM_HOSTS || "", upstream.host,
  ...fallbacks.map((f) => f.host)].filter(Boolean).join(",");

const child = spawn(process.execPath, [PORTKEY, `--port=${PORTKEY_PORT}`, "--headless"], {
  stdio: ["ignore", "inherit", "inherit"],
  env: { ...process.env, TRUSTED_CUSTOM_HOSTS: trusted },
});
let stopping = false;
child.on("exit", (code, signal) => {
  if (!stopping) console.error(`portkey wiring: Portkey exited (code ${code}, signal ${signal})`);
  process.exit(stopping ? 0 : (code || 1));
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {  // PID 1 has no default signal handlers: pass the stop on
    stopping = true;
    child.kill(sig);
    server.close();
    setTimeout(() => process.exit(0), 3000).unref();
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function strip(headers) {
  const out = {};
  for (const [key, value] of Object.entries(headers)) if (!HOP.has(key)) out[key] = value;
  return out;
}

const server = http.createServer((req, res) => {
  const headers = strip(req.headers);
  if (!(CONFIG_HEADER in headers)) headers[CONFIG_HEADER] = config;
  const upstreamReq = http.request({ host: "127.0.0.1", port: PORTKEY_PORT, agent,
    method: req.method, path: req.url, headers }, (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode, upstreamRes.statusMessage, strip(upstreamRes.headers));
    res.flushHeaders();
    upstreamRes.pipe(res);
    upstreamRes.on("error", () => res.destroy());  // cut mid-way: cut the client's too
    upstreamRes.on("aborted", () => res.destroy());
  });
  upstreamReq.on("error", (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: `portkey wiring: Portkey is not answering: ${err.code || err.message}`,
      type: "gateway_wiring_error" } }));
  });
  req.pipe(upstreamReq);
  res.on("close", () => {  // the client left before the answer ended: so does Portkey's request
    if (!res.writableFinished) upstreamReq.destroy();
  });
});
server.listen(LISTEN_PORT, "0.0.0.0", () => {
  console.log(`portkey wiring: profile=${profile} upstream=${upstream.text} `
    + `fallbacks=${fallbacks.length} listening on :${LISTEN_PORT}, Portkey on 127.0.0.1:${PORTKEY_PORT}`);
});
