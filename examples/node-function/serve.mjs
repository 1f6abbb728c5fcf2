// Runs handler.mjs locally the way a platform would: each HTTP request
// becomes a Lambda proxy event with a context whose time limit is
// FUNCTION_TIMEOUT_MS (default 15000). Prints `FUNCTION_READY <url>` once
// listening.
//
//   PLUMGATE_URL=http://127.0.0.1:8787 PLUMGATE_KEY=pgk_... REWARD_TOKEN=local-token node serve.mjs
//   curl -X POST http://127.0.0.1:8790/ -H 'authorization: Bearer local-token' -d '{"productId":10100,"denomination":25,"email":"a@example.com","poNumber":"signup-123"}'
import { createServer } from "node:http";
import { handler } from "./handler.mjs";

const port = Number(process.env.PORT ?? 8790);
const limitMs = Number(process.env.FUNCTION_TIMEOUT_MS ?? 15_000);

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const started = Date.now();
  const event = { httpMethod: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), isBase64Encoded: false };
  const context = { getRemainingTimeInMillis: () => limitMs - (Date.now() - started) };
  let out;
  try {
    out = await handler(event, context);
  } catch (e) {
    // What Lambda does with a handler that throws (say PLUMGATE_URL unset):
    // 502 for this request, the error in the log, and the process lives on.
    console.error(e);
    out = { statusCode: 502, headers: { "content-type": "application/json" }, body: JSON.stringify({ message: "Internal Server Error" }) };
  }
  res.writeHead(out.statusCode, out.headers);
  res.end(out.body);
});
server.listen(port, "127.0.0.1", () => {
  console.log(`FUNCTION_READY http://127.0.0.1:${server.address().port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
