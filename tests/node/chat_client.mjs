// SPDX-License-Identifier: MIT
// chat_client.mjs - the official `openai` npm client pointed at ragd, as a user's code calls it:
// a chat completion with ragd's extra body fields (intent, filters) and an X-Ragd-Intent header,
// a streamed completion, and an error. Prints one JSON report on stdout for
// tests/integration/test_chat_node.py. Usage: node chat_client.mjs BASE_URL API_KEY QUESTION
import OpenAI from "openai";

const [baseURL, apiKey, question] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const report = {};

const done = await client.chat.completions.create(
  {
    model: "whatever-the-caller-says",
    messages: [
      { role: "system", content: "Answer like a colleague." },
      { role: "user", content: question },
    ],
    temperature: 0.1,
    // ragd's own fields travel in the body, as extra params
    intent: "search_info",
    filters: { type: "eq", key: "source", value: "business" },
  },
  { headers: { "X-Ragd-Collection": "default" } },
);
report.completion = {
  object: done.object,
  content: done.choices[0].message.content,
  finish_reason: done.choices[0].finish_reason,
  usage: done.usage,
  ragd: done.ragd,
};

const stream = await client.chat.completions.create({
  model: "x",
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: question }],
});
let text = "";
let last = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length > 0) text += chunk.choices[0].delta?.content ?? "";
  last = chunk;
}
report.stream = { text, chunks, ragd: last?.ragd ?? null, usage: last?.usage ?? null };

try {
  await client.chat.completions.create({
    model: "x",
    messages: [{ role: "user", content: question }],
    tools: [{ type: "function", function: { name: "wire_money", parameters: {} } }],
  });
  report.error = null;
} catch (e) {
  report.error = { name: e.constructor.name, status: e.status, code: e.code ?? e.error?.code };
}
process.stdout.write(JSON.stringify(report) + "\n");
