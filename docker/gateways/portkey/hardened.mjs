// Portkey's "hardened" routing config: what Portkey's documentation recommends for
// resilience, each line with why. wiring.mjs sets it on requests that carry no
// x-portkey-config of their own. Keys are read as in @portkey-ai/gateway 1.15.2's
// config schema (build/start-server.js: retry, strategy, targets, request_timeout,
// custom_host; nested targets inherit the top level's retry and request_timeout).
const target = (provider, url) => ({
  provider,                      // the client's API: openai (/v1/chat/completions) or anthropic (/v1/messages)
  custom_host: `${url}/v1`,      // docs: config-object "custom_host"; the adapter appends the API's path
  api_key: "chaos-no-key",       // required with provider; the harness's providers take any
});

// Fallback over the scenario's providers in order: UPSTREAM_URL, then each of
// FALLBACK_URLS (docs: https://portkey.ai/docs/product/ai-gateway/fallbacks).
const fallback = (name, provider, urls) => ({
  name,
  strategy: {
    mode: "fallback",
    // Fall back only on errors another provider may not have: rate limits (429), server
    // errors and overload (500, 502, 503, 504, 529) and Portkey's own per-attempt
    // timeout (408, see request_timeout). Without on_status_codes Portkey falls back on
    // ANY non-2xx, 400s included, which another provider would refuse the same way
    // (docs: fallbacks, "Trigger on Specific Status Codes").
    on_status_codes: [408, 429, 500, 502, 503, 504, 529],
  },
  targets: urls.map((url) => target(provider, url)),
});

export default function config({ upstream, fallbacks }) {
  const urls = [upstream, ...fallbacks];
  return {
    // Only to pick the API's adapter by path, as in stock (docs: conditional routing);
    // each branch is the same fallback chain over the same providers.
    strategy: {
      mode: "conditional",
      conditions: [{ query: { "url.pathname": { $eq: "/v1/messages" } }, then: "anthropic" }],
      default: "openai",
    },
    targets: [fallback("openai", "openai", urls), fallback("anthropic", "anthropic", urls)],
    // Retries on the same provider before falling back to the next (docs:
    // https://portkey.ai/docs/product/ai-gateway/automatic-retries). 2 attempts keep the
    // worst case (1 s then 2 s of exponential backoff, async-retry's defaults in 1.15.2)
    // inside a client's 5 s timeout for one provider.
    retry: {
      attempts: 2,
      // Portkey's default retry codes plus 529 (Anthropic's overloaded), listed so that a
      // 400 is never retried (docs: automatic-retries, "on_status_codes").
      on_status_codes: [429, 500, 502, 503, 504, 529],
      // Wait what the provider's retry-after / retry-after-ms says on a 429 instead of the
      // backoff (docs: automatic-retries, "Respecting provider's retry headers"; capped
      // at 60 s in total, beyond which Portkey gives up on the provider).
      use_retry_after_header: true,
    },
    // Abandon an attempt whose response has not begun in 3 s (ms; docs:
    // https://portkey.ai/docs/product/ai-gateway/request-timeouts). Portkey answers it
    // with 408, which the fallback above moves on from. In 1.15.2 the timer stops once the
    // response headers arrive: it does not bound a stream that stalls after its headers,
    // nor a late first token from a provider that sends its headers first (measured: an
    // 8 s mid-stream stall and a 5 s first token reach the client; a 5 s non-streaming
    // answer is abandoned at 3 s and served by the fallback). Portkey has no setting for it.
    request_timeout: 3000,
  };
}
