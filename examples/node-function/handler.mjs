// A serverless function that sends a reward through plumgate, in the two
// shapes the platforms call:
//
// - `handler(event, context)`: AWS Lambda (API Gateway / function URL proxy
//   events) and Netlify Functions v1: a JSON string body in, `{statusCode,
//   headers, body}` out. The deadline comes from Lambda's
//   `context.getRemainingTimeInMillis()`.
// - `POST(request)`: Vercel Functions' web-standard shape (a named method
//   export: Vercel calls a default-exported function Node-style, with
//   `(req, res)`): a `Request` in, a `Response` out.
//
// Netlify Functions v2 take a default export from a file without a
// `handler` export (else Netlify runs `handler`): that is `web.mjs`.
//
// Environment: PLUMGATE_URL (the deployment's URL), PLUMGATE_KEY (a caller
// key with the orders:write scope) and REWARD_TOKEN (what this function's own
// callers send as `Authorization: Bearer …`), e.g. in the platform's secret
// settings.
import { refusal, sendReward } from "./reward.mjs";

/** Finish this long before the platform's own time limit. */
const MARGIN_MS = 2_000;
/**
 * The limit to assume when the platform does not say: `FUNCTION_BUDGET_MS`
 * (set it to your function's configured limit), else 10 s, the shortest
 * common default (Netlify's; Vercel's and Lambda's are longer). Assuming more
 * than the platform gives would let it stop the function before it answers
 * (the caller then retries with the same poNumber: placed once all the same).
 */
const DEFAULT_BUDGET_MS = Number(process.env.FUNCTION_BUDGET_MS) || 10_000;

function deadlineFrom(context) {
  const left = typeof context?.getRemainingTimeInMillis === "function" ? context.getRemainingTimeInMillis() : DEFAULT_BUDGET_MS;
  return Date.now() + left - MARGIN_MS;
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function utf8FromBase64(text) {
  return new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
}

export async function handler(event, context) {
  // Header names arrive as the caller wrote them (API Gateway's REST
  // events) or lower-cased (HTTP APIs, function URLs).
  const authorization = Object.entries(event?.headers ?? {}).find(([k]) => k.toLowerCase() === "authorization")?.[1];
  // A base64 body is UTF-8 bytes: atob alone would read them as Latin-1
  // ("zoë" would become "zoÃ«", and the voucher go to a wrong address).
  const raw = event?.isBase64Encoded ? utf8FromBase64(event.body ?? "") : event?.body;
  const { status, body, headers } = refusal(authorization) ?? (await sendReward(parse(raw ?? ""), deadlineFrom(context)));
  return { statusCode: status, headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body) };
}

/** A `Request` in, a `Response` out (Vercel; `web.mjs` for Netlify v2). */
export async function POST(request) {
  const { status, body, headers } =
    refusal(request.headers.get("authorization")) ?? (await sendReward(parse(await request.text()), Date.now() + DEFAULT_BUDGET_MS - MARGIN_MS));
  return Response.json(body, { status, headers });
}
