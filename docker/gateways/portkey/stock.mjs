// Portkey's "stock" routing config: its defaults plus only what routing to UPSTREAM_URL
// needs. Portkey reads a config per request (the x-portkey-config header; docs:
// https://portkey.ai/docs/product/ai-gateway/configs); wiring.mjs sets this one on requests
// that carry none. No retry, no fallback, no timeout: none of them is on by default.
const target = (name, provider, url) => ({
  name,
  // The adapter of the API the client speaks: "openai" for POST /v1/chat/completions,
  // "anthropic" for POST /v1/messages (the openai adapter refuses /v1/messages:
  // "messages is not supported by openai"). The model name is passed through as sent.
  provider,
  // A self-hosted endpoint for that API (docs: "custom_host" in the config object,
  // https://portkey.ai/docs/api-reference/config-object). Both adapters' base URLs include
  // /v1 and append /chat/completions or /messages, so the provider sees the client's path.
  custom_host: `${url}/v1`,
  // The config refuses a provider without api_key; the harness's providers take any.
  api_key: "chaos-no-key",
});

export default function config({ upstream }) {
  return {
    // Only to pick the adapter by the request's path (docs: conditional routing,
    // https://portkey.ai/docs/product/ai-gateway/conditional-routing; 1.15.2 reads
    // url.pathname in a condition's query). One target either way: UPSTREAM_URL.
    strategy: {
      mode: "conditional",
      conditions: [{ query: { "url.pathname": { $eq: "/v1/messages" } }, then: "anthropic" }],
      default: "openai",
    },
    targets: [target("openai", "openai", upstream), target("anthropic", "anthropic", upstream)],
  };
}
