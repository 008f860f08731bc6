// The official OpenAI Node client against lm-serve (run by tests/tools/lm_serve_test.sh):
//   node openai_client.mjs BASE_URL API_KEY MODEL_ID GREEDY_TEXT
// models (listed and retrieved), a greedy completion (its text must be GREEDY_TEXT, lm-generate's for "The jury", 24
// tokens), chat, streaming chat (its deltas must add up to the same reply) and the client's
// error classes for 401 and 400. Prints one line per failure and exits 1 if any.
import OpenAI from "openai";

const [baseURL, apiKey, model, greedy] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
let failures = 0;
const check = (ok, what) => {
  if (!ok) {
    failures++;
    console.log(`FAIL: ${what}`);
  }
};

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, `models: ${JSON.stringify(models.data)}`);
const one = await client.models.retrieve(model);
check(one.id === model && one.object === "model", `models.retrieve: ${JSON.stringify(one)}`);

const c = await client.completions.create({ model, prompt: "The jury", max_tokens: 24, temperature: 0 });
check(c.object === "text_completion" && c.choices[0].text === greedy,
      `completion text ${JSON.stringify(c.choices[0].text)} is not lm-generate's ${JSON.stringify(greedy)}`);
check(c.usage.completion_tokens > 0 && c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens,
      `completion usage ${JSON.stringify(c.usage)}`);

// The test model's context is 64 tokens, and ChatML's markers are characters to its vocabulary.
const messages = [{ role: "user", content: "The jury" }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
const reply = chat.choices[0].message;
check(chat.object === "chat.completion" && reply.role === "assistant" && typeof reply.content === "string" &&
      reply.content.length > 0, `chat reply ${JSON.stringify(chat.choices[0])}`);
check(["stop", "length"].includes(chat.choices[0].finish_reason), `chat finish_reason ${chat.choices[0].finish_reason}`);

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = "", finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const ch of chunk.choices) {
    text += ch.delta?.content ?? "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
}
check(chunks > 2 && text === reply.content, `streamed chat ${JSON.stringify(text)} is not ${JSON.stringify(reply.content)}`);
check(finish === chat.choices[0].finish_reason, `streamed finish_reason ${finish}`);
check(usage && usage.completion_tokens === chat.usage.completion_tokens, `streamed usage ${JSON.stringify(usage)}`);

const emb = await client.embeddings.create({ model, input: ["The jury said", "It was"] });
const norm = v => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
check(emb.data.length === 2 && emb.data[1].index === 1 && Math.abs(norm(emb.data[0].embedding) - 1) < 1e-4,
      `embeddings: ${JSON.stringify(emb).slice(0, 300)}`);

try {
  await new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 }).models.list();
  check(false, "a wrong key was accepted");
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError && e.status === 401, `wrong key: ${e}`);
}
try {
  await client.completions.create({ model, prompt: "x", temperature: 5 });
  check(false, "temperature 5 was accepted");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "temperature", `temperature 5: ${e}`);
}
process.exit(failures ? 1 : 0);
