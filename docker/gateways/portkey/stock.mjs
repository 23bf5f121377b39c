// Portkey's "stock" routing config: its defaults plus only what routing to UPSTREAM_URL
// needs. Portkey reads a config per request (the x-portkey-config header; docs:
// https://portkey.ai/docs/product/ai-gateway/configs); wiring.mjs sets this one on requests
// that carry none. No retry, no fallback, no timeout: none of them is on by default.
export default function config({ upstream }) {
  return {
    // The OpenAI adapter: the scenarios speak the OpenAI API (POST /v1/chat/completions),
    // and the model name (gpt-4o-mini) is passed through as the client sent it.
    provider: "openai",
    // A self-hosted OpenAI-compatible endpoint (docs: "custom_host" in the config object,
    // https://portkey.ai/docs/api-reference/config-object; product/ai-gateway/universal-api
    // "local or private models"). The adapter's base URL includes /v1 and it appends
    // /chat/completions, so the path the provider sees is the client's.
    custom_host: `${upstream}/v1`,
    // The config refuses a provider without api_key; the harness's providers take any.
    api_key: "chaos-no-key",
  };
}
