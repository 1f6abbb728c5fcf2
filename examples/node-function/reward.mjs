// The function's logic, shared by both handler shapes in handler.mjs: send one
// gift card through plumgate and say clearly what happened to the order.
//
// The poNumber is the order's identity. It comes from the caller (the event
// that asked for the reward: a signup id, an invoice number), so a retried
// event, a second click or a queue redelivery asks for the same order and
// plumgate places it at most once. Without one the function refuses (400): a
// poNumber made up here would reach the caller only in the answer, and a
// caller that lost the answer and asked again would order twice.
//
// The function spends the wallet: only callers holding REWARD_TOKEN (a
// secret of its own, sent as `Authorization: Bearer <token>`) get through;
// without it set, nothing does. A public function URL is otherwise open to
// anyone who finds it.
import { createHash, timingSafeEqual } from "node:crypto";
import { PlumgateClient } from "@plumgate/client";

let client;
function plumgate() {
  client ??= new PlumgateClient({
    baseUrl: process.env.PLUMGATE_URL,
    key: process.env.PLUMGATE_KEY,
    // Reads (not used here) give up after 10 s: well inside the function's own limit.
    timeoutMs: 10_000,
  });
  return client;
}

const isEmail = (v) => typeof v === "string" && /^[^\s@]+@[^\s@]+$/.test(v);

/**
 * plumgate refused the function's own key (401: revoked or unknown; 403:
 * without `orders:write`). The caller passed REWARD_TOKEN already: this is
 * the operator's to fix, so 502, not a refusal of the caller's order.
 */
const keyRefused = (e) => e.source === "plumgate" && (e.status === 401 || e.status === 403);

const digest = (text) => createHash("sha256").update(String(text)).digest();

/**
 * The caller's `Authorization` header against REWARD_TOKEN (compared in
 * constant time): `null` when it may go on, else the answer to give.
 */
export function refusal(authorization) {
  const token = process.env.REWARD_TOKEN;
  if (!token) return { status: 503, body: { error: "REWARD_TOKEN is not set: this function answers no one until it is" } };
  const sent = /^Bearer (.+)$/i.exec(authorization ?? "")?.[1] ?? "";
  return timingSafeEqual(digest(sent), digest(token)) ? null : { status: 401, body: { error: "unauthorized" } };
}

/**
 * `input`: {productId, denomination, email, poNumber, quantity?}.
 * `deadline`: epoch ms by which the function must have answered.
 * Returns an HTTP status, a JSON body and, for some answers, headers.
 */
export async function sendReward(input, deadline) {
  // `undefined`: the body did not parse (JSON has no such value).
  if (input === undefined) {
    return { status: 400, body: { error: "the body is not JSON: send a JSON object with productId, denomination, email and poNumber" } };
  }
  // The recipient's address is where Xoxoday mails the voucher
  // (notifyReceiverEmail below): an order without one would be paid for and
  // reach nobody.
  if (!input || typeof input !== "object" || input.productId === undefined || input.denomination === undefined || !isEmail(input.email)) {
    return { status: 400, body: { error: "productId, denomination and email (the recipient's address) are required" } };
  }
  if (input.poNumber === undefined || input.poNumber === null || input.poNumber === "") {
    return { status: 400, body: { error: "poNumber is required: your event's id, the same on every retry, so the reward is placed once" } };
  }
  const outcome = await plumgate().placeOrder(
    {
      productId: input.productId,
      quantity: input.quantity ?? 1,
      denomination: input.denomination,
      email: input.email,
      poNumber: input.poNumber,
      notifyReceiverEmail: 1,
    },
    { deadline },
  );
  switch (outcome.status) {
    case "placed":
      // Never log or return voucher codes here: the recipient gets them by mail.
      return {
        status: 200,
        body: { status: "placed", poNumber: outcome.poNumber, orderId: outcome.order.orderId, orderStatus: outcome.order.orderStatus, replayed: outcome.replayed },
      };
    case "refused": {
      const e = outcome.error;
      return {
        status: keyRefused(e) || e.code === "redirected" ? 502 : outcome.retryable ? 503 : 422,
        // The wait plumgate asked for (a rate limit, the key's daily cap),
        // where HTTP clients and queues look for it.
        headers: e.retryAfter === undefined ? {} : { "retry-after": String(Math.ceil(e.retryAfter)) },
        body: {
          status: "refused",
          poNumber: outcome.poNumber,
          code: e.code,
          message: keyRefused(e)
            ? "this function's plumgate key was refused (revoked, unknown or without orders:write): nothing was placed; its operator must fix PLUMGATE_KEY"
            : e.code === "redirected" && e.notSent
              ? "PLUMGATE_URL answered with a redirect (something in front of plumgate, which never redirects): nothing was placed; its operator must fix PLUMGATE_URL"
              : e.message,
          retryAfter: e.retryAfter,
          requestId: e.requestId,
        },
      };
    }
    case "unknown":
      if (outcome.reason === "duplicate_po_number") {
        // Xoxoday holds another order under this poNumber (not this one):
        // asking again gets the same answer. The caller must look first.
        return {
          status: 409,
          body: { status: "unknown", poNumber: outcome.poNumber, reason: outcome.reason, retry: "do not call again with this poNumber: another order holds it; look it up with getOrderDetails" },
        };
      }
      // Not a failure: the order may exist. 202 tells the caller to come back
      // with the same poNumber (plumgate then answers with the order, once).
      return {
        status: 202,
        body: { status: "unknown", poNumber: outcome.poNumber, reason: outcome.reason, retry: "call again later with the same poNumber" },
      };
  }
}
