// A Worker that sends rewards through plumgate over a Service Binding.
//
// The client takes the binding's fetch instead of the global one: the URL's
// host is then only a label (nothing resolves it), and the call never leaves
// Cloudflare. plumgate still checks the caller key on every request; the
// binding only removes the public hop.
//
//   GET  /health   plumgate's /healthz, through the binding
//   GET  /balance  the wallet balance
//   POST /reward   {productId, denomination, email, poNumber, quantity?}
//
// /balance and /reward spend or show the wallet: only callers holding
// REWARD_TOKEN (a secret of this Worker, sent as `Authorization: Bearer
// <token>`) get through, and without it set nobody does. A Worker is
// published on workers.dev by default, open to anyone who finds it.
import { PlumgateClient } from "@plumgate/client";

/** A Worker's request may run for a while, but its caller usually will not wait longer. */
const ORDER_BUDGET_MS = 25_000;

const isEmail = (v) => typeof v === "string" && /^[^\s@]+@[^\s@]+$/.test(v);

const digest = (text) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));

/** The caller's bearer token against REWARD_TOKEN (constant time): `null` to go on, else the answer. */
async function refusal(request, env) {
  if (!env.REWARD_TOKEN) return Response.json({ error: "REWARD_TOKEN is not set: this Worker answers no one until it is" }, { status: 503 });
  const sent = /^Bearer (.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1] ?? "";
  const [a, b] = await Promise.all([digest(sent), digest(env.REWARD_TOKEN)]);
  return crypto.subtle.timingSafeEqual(a, b) ? null : Response.json({ error: "unauthorized" }, { status: 401 });
}

/**
 * plumgate refused this Worker's own key (401: revoked or unknown; 403:
 * lacking the scope). Its callers passed REWARD_TOKEN already: that is the
 * operator's to fix, answered 502, never passed on as the caller's 401 or 403.
 */
const keyRefused = (e) => e.source === "plumgate" && (e.status === 401 || e.status === 403);
const KEY_REFUSED = "this Worker's plumgate key was refused (revoked, unknown or lacking the scope): its operator must fix PLUMGATE_KEY";

/** The wait plumgate asked for (a rate limit, the key's daily cap), as `Retry-After`. */
const retryAfter = (e) => (e.retryAfter === undefined ? {} : { "retry-after": String(Math.ceil(e.retryAfter)) });

function plumgate(env) {
  return new PlumgateClient({
    baseUrl: "https://plumgate.internal",
    key: env.PLUMGATE_KEY,
    fetch: (url, init) => env.PLUMGATE.fetch(url, init),
    timeoutMs: 10_000,
  });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    try {
      // Inside the try: a missing or malformed PLUMGATE_KEY makes the
      // constructor throw, which answers 502 below instead of an exception.
      const client = plumgate(env);
      if (request.method === "GET" && pathname === "/health") {
        const h = await client.health();
        return Response.json(h, { status: h.status === "ok" ? 200 : 503 });
      }
      const refused = await refusal(request, env);
      if (refused) return refused;
      if (request.method === "GET" && pathname === "/balance") {
        const b = await client.getBalance();
        return Response.json({ value: b.data.value, currency: b.data.currency, cache: b.cache ?? null });
      }
      if (request.method === "POST" && pathname === "/reward") {
        const input = await request.json().catch(() => undefined);
        if (input === undefined) {
          return Response.json({ error: "the body is not JSON: send a JSON object with productId, denomination, email and poNumber" }, { status: 400 });
        }
        // The recipient's address is where Xoxoday mails the voucher
        // (notifyReceiverEmail below): without one the order reaches nobody.
        if (!input || input.productId === undefined || input.denomination === undefined || !isEmail(input.email)) {
          return Response.json({ error: "productId, denomination and email (the recipient's address) are required" }, { status: 400 });
        }
        // The order's identity, from the caller's event: made up here, it
        // would reach the caller only in the answer, and a caller that lost
        // the answer and asked again would order twice.
        if (input.poNumber === undefined || input.poNumber === null || input.poNumber === "") {
          return Response.json({ error: "poNumber is required: your event's id, the same on every retry, so the reward is placed once" }, { status: 400 });
        }
        const outcome = await client.placeOrder(
          { productId: input.productId, quantity: input.quantity ?? 1, denomination: input.denomination, email: input.email, poNumber: input.poNumber, notifyReceiverEmail: 1 },
          { timeoutMs: ORDER_BUDGET_MS },
        );
        if (outcome.status === "placed") {
          return Response.json({ status: "placed", poNumber: outcome.poNumber, orderId: outcome.order.orderId, replayed: outcome.replayed });
        }
        if (outcome.status === "refused") {
          const e = outcome.error;
          return Response.json(
            { status: "refused", poNumber: outcome.poNumber, code: e.code, message: keyRefused(e) ? KEY_REFUSED : e.message, retryAfter: e.retryAfter, requestId: e.requestId },
            { status: keyRefused(e) ? 502 : outcome.retryable ? 503 : 422, headers: retryAfter(e) },
          );
        }
        // Another order holds the poNumber: asking again gets the same
        // answer, so the caller must look it up, not come back.
        if (outcome.reason === "duplicate_po_number") {
          return Response.json({ status: "unknown", poNumber: outcome.poNumber, reason: outcome.reason }, { status: 409 });
        }
        // The order may exist: the caller comes back with the same poNumber.
        return Response.json({ status: "unknown", poNumber: outcome.poNumber, reason: outcome.reason }, { status: 202 });
      }
      return Response.json({ error: "not found" }, { status: 404 });
    } catch (e) {
      // A PlumgateError from a read: its code, status, wait and request id, never the key.
      if (keyRefused(e)) return Response.json({ error: "plumgate_key_refused", code: e.code, message: KEY_REFUSED, requestId: e.requestId }, { status: 502 });
      // A 401 or 403 from further on (Xoxoday's, passed through) is not the
      // caller's REWARD_TOKEN either: 502, like any answer that is no error status.
      const status = e.status >= 400 && e.status !== 401 && e.status !== 403 ? e.status : 502;
      return Response.json(
        { error: e.code ?? "error", message: e.message, retryAfter: e.retryAfter, requestId: e.requestId },
        { status, headers: retryAfter(e) },
      );
    }
  },
};
