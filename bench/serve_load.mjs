// Load generator for bench/serve_load.sh: CLIENTS concurrent clients each send REQUESTS
// streaming greedy completions, one after another, to lm-serve at URL, and check each answer
// against the expected text of its prompt. Prints one JSON object: requests, ok, wrong, failed,
// latency p50/p99 and time to first token p50 (ms), completion tokens, seconds, tokens/s.
//   node serve_load.mjs URL CLIENTS REQUESTS MAX_TOKENS EXPECTED.json
// EXPECTED.json: [{"prompt": ..., "text": ...}, ...]; request r of client c uses entry
// (c * REQUESTS + r) mod its length.
import { readFileSync } from "node:fs";

const [url, clients, requests, maxTokens, expectedFile] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedFile, "utf8"));
const latencies = [], firsts = [];
let ok = 0, wrong = 0, failed = 0, tokens = 0;
const examples = [];

async function one(entry) {
  const t0 = performance.now();
  let first = null, text = "", usage = null, done = false;
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: entry.prompt, max_tokens: Number(maxTokens), temperature: 0, stream: true,
                           stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = "";
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!event.startsWith("data: ")) throw new Error(`not an SSE data line: ${event.slice(0, 80)}`);
      const data = event.slice(6);
      if (data === "[DONE]") { done = true; continue; }
      const j = JSON.parse(data);
      if (j.usage) usage = j.usage;
      for (const c of j.choices) {
        if (first === null && c.text) first = performance.now() - t0;
        text += c.text;
      }
    }
  }
  if (!done) throw new Error("the stream ended without data: [DONE]");
  latencies.push(performance.now() - t0);
  if (first !== null) firsts.push(first);
  tokens += usage ? usage.completion_tokens : 0;
  if (text === entry.text) ok++;
  else {
    wrong++;
    if (examples.length < 3) examples.push({ prompt: entry.prompt, got: text, expected: entry.text });
  }
}

async function client(c) {
  for (let r = 0; r < Number(requests); r++) {
    const entry = expected[(c * Number(requests) + r) % expected.length];
    try {
      await one(entry);
    } catch (e) {
      failed++;
      if (examples.length < 3) examples.push({ prompt: entry.prompt, error: String(e) + (e.cause ? ": " + String(e.cause) : "") });
    }
  }
}

const pct = (a, p) => {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] * 10) / 10;
};
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(clients) }, (_, c) => client(c)));
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({
  requests: Number(clients) * Number(requests), ok, wrong, failed,
  p50_ms: pct(latencies, 0.5), p99_ms: pct(latencies, 0.99), first_token_p50_ms: pct(firsts, 0.5),
  tokens, seconds: Math.round(seconds * 100) / 100, tokens_per_s: Math.round(tokens / seconds * 10) / 10, examples,
}));
