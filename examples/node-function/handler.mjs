// A serverless function that sends a reward through plumgate, in the two
// shapes the platforms call:
//
// - `handler(event, context)`: AWS Lambda (API Gateway / function URL proxy
//   events) and Netlify Functions v1: a JSON string body in, `{statusCode,
//   headers, body}` out. The deadline comes from Lambda's
//   `context.getRemainingTimeInMillis()`, and behind API Gateway from its
//   own shorter limit (API_GATEWAY_MS).
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

/**
 * The most time to assume behind API Gateway. It answers the caller with its
 * own 504 after its integration timeout (29 s for REST APIs by default, 30 s
 * for HTTP APIs), whatever the function's configured limit: a deadline past
 * it would let the caller get that 504 and never the 202 that says to call
 * again with the same poNumber. Its clock started before this function's (a
 * cold start), so a second less. Raised the REST timeout? Raise this too.
 */
const API_GATEWAY_MS = 28_000;

/**
 * Did API Gateway send this event? Its proxy events carry `requestContext`;
 * so do a function URL's, which has no such limit (the function's own is
 * the limit) and names its `*.lambda-url.*` domain, and an Application Load
 * Balancer's (`requestContext.elb`), whose idle timeout a deployment sets.
 */
function behindApiGateway(event) {
  const rc = event?.requestContext;
  return typeof rc === "object" && rc !== null && rc.elb === undefined && !String(rc.domainName ?? "").includes(".lambda-url.");
}

function deadlineFrom(event, context) {
  const left = typeof context?.getRemainingTimeInMillis === "function" ? context.getRemainingTimeInMillis() : DEFAULT_BUDGET_MS;
  return Date.now() + (behindApiGateway(event) ? Math.min(left, API_GATEWAY_MS) : left) - MARGIN_MS;
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
  const { status, body, headers } = refusal(authorization) ?? (await sendReward(parse(raw ?? ""), deadlineFrom(event, context)));
  return { statusCode: status, headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body) };
}

/** A `Request` in, a `Response` out (Vercel; `web.mjs` for Netlify v2). */
export async function POST(request) {
  const { status, body, headers } =
    refusal(request.headers.get("authorization")) ?? (await sendReward(parse(await request.text()), Date.now() + DEFAULT_BUDGET_MS - MARGIN_MS));
  return Response.json(body, { status, headers });
}
