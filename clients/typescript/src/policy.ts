// The retry contract as pure functions: how long to wait before the next
// attempt, and what a placeOrder answer means for the order (placed, refused,
// worth another attempt with the same poNumber, or unknown for good). The
// README's "Call plumgate from your code" table states the same rules.

import { PlumgateError, errorFromAnswer } from "./errors.js";
import { type Answer, tlsHandshakeFailed } from "./transport.js";
import type { Order } from "./types.js";

export interface Backoff {
  /** First delay's ceiling, in ms (default 500). */
  baseMs?: number;
  /** Largest delay, in ms (default 8000). */
  maxMs?: number;
}

/**
 * Delay before attempt `n + 1` after `n` failed ones: exponential with "equal
 * jitter" (half fixed, half random), so many callers that failed together do
 * not come back together, and no delay collapses to zero. A `Retry-After`
 * (seconds) is a floor, plus up to 10 % jitter.
 */
export function retryDelayMs(n: number, random: () => number, backoff: Backoff = {}, retryAfterSecs?: number): number {
  const base = backoff.baseMs ?? 500;
  const max = backoff.maxMs ?? 8000;
  const ceiling = Math.min(max, base * 2 ** Math.max(0, n - 1));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  if (retryAfterSecs === undefined) return Math.round(jittered);
  return Math.round(Math.max(jittered, retryAfterSecs * 1000 * (1 + 0.1 * random())));
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A Plum `status` read as plumgate reads it: a number, or the text of a
 * decimal number (`"1"`, `" 1.0 "`), any fraction cut off; undefined for
 * anything else (`true`, `[1]`, `"0x1"`, `""`), which is not a success.
 */
function plumStatus(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? Math.trunc(v) : undefined;
  if (typeof v === "string" && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) return Math.trunc(Number(v));
  return undefined;
}

/** Is this a successful Plum answer for `key`: `data.<key>.status` is 1, as plumgate reads it? */
export function plumSuccess(json: unknown, key: string): boolean {
  const inner = (json as { data?: Record<string, { status?: unknown } | undefined> } | undefined)?.data?.[key];
  return inner !== undefined && inner !== null && plumStatus(inner.status) === 1;
}

/**
 * The order Xoxoday holds under the poNumber in a placeOrder answer with
 * HTTP 200 and a status other than 1 that names one
 * (`data.placeOrder.data.orderId`): plumgate answers so for an order that
 * failed or was cancelled, whether a check found it
 * (`x-plumgate-reconciled`) or Xoxoday's own answer named it (contract §5).
 * A poNumber has one order at Xoxoday, so no later attempt can place
 * another under it. Undefined for any other answer.
 */
export function failedOrderIn(a: Answer): Order | undefined {
  if (a.status !== 200 || plumSuccess(a.json, "placeOrder")) return undefined;
  const order = (a.json as { data?: { placeOrder?: { data?: unknown } } } | null | undefined)?.data?.placeOrder?.data;
  if (!isPlainObject(order)) return undefined;
  const id = order["orderId"];
  return id === undefined || id === null || id === "" ? undefined : (order as Order);
}

/**
 * The message for a failed order's answer ([`failedOrderIn`]), which must
 * not read like a refusal before ordering: the order's own words when it
 * has them (a cancellation by its lines leaves `orderStatus` "complete").
 */
function failedOrderMessage(order: Order): string {
  const o = order as { orderId?: unknown; orderStatus?: unknown; deliveryStatus?: unknown };
  const said = [["orderStatus", o.orderStatus], ["deliveryStatus", o.deliveryStatus]]
    .filter(([, v]) => typeof v === "string" && v !== "")
    .map(([k, v]) => `${k} ${v as string}`);
  const words = said.length > 0 ? ` (${said.join(", ")})` : "";
  return `Xoxoday holds order ${String(o.orderId)} under this poNumber, and it failed or was cancelled${words}: nothing will be delivered`;
}

/** plumgate codes that say the request never reached Xoxoday and a person or time must fix it. */
const UNAVAILABLE_CODES = new Set(["reauth_required", "misconfigured", "credentials_rejected"]);

/**
 * The words of plumgate's error for a placeOrder it knows Xoxoday never
 * executed (no token could be had, Xoxoday refused the token, the ledger
 * could not record the order): its 502 then means "not sent", not "the
 * order may exist" (the README's retry table).
 */
export const NOTHING_PLACED = "nothing was placed and retrying with the same poNumber is safe";

/**
 * Is this Xoxoday's refusal of a poNumber it already holds, read as plumgate
 * reads it (its code is undocumented): a 4xx that is not plumgate's own
 * error, whose `errorId` is `PLE10043`, or whose `error`, `errorInfo` or
 * `message` says "duplicate" or "already exist", never `PLE10041` (the
 * quantity refusal).
 */
function duplicatePoNumber(a: Answer, error: PlumgateError): boolean {
  // Not plumgate's own error (its `error` is an object, never these
  // words); a body in no shape the client knows (`errorInfo` or `message`
  // alone) may still be Xoxoday's, as the worker reads it.
  if (error.source === "plumgate" || a.status < 400 || a.status >= 500 || !isPlainObject(a.json)) return false;
  const body = a.json;
  if (body["errorId"] === "PLE10043") return true;
  if (body["errorId"] === "PLE10041") return false;
  return ["error", "errorInfo", "message"].some((k) => {
    const w = body[k];
    return typeof w === "string" && /duplicate|already exist/.test(w.toLowerCase());
  });
}

/** What one placeOrder answer means. */
export type OrderVerdict =
  /** The order exists: HTTP 200 and `data.placeOrder.status` 1. */
  | { kind: "placed" }
  /**
   * No order was placed by this request. `retryable`: the same poNumber and
   * body can succeed later (nothing is wrong with the request itself).
   */
  | { kind: "refused"; error: PlumgateError; retryable: boolean }
  /**
   * Not placed yet: wait `Retry-After` (or a backoff) and send again (429,
   * or plumgate's word that nothing was placed).
   */
  | { kind: "wait"; error: PlumgateError }
  /** The order's fate is open: send the same poNumber again after a backoff. */
  | { kind: "retry"; error: PlumgateError }
  /** The fate is open and another attempt now cannot settle it. */
  | { kind: "unknown"; error: PlumgateError; reason: "duplicate_po_number" };

/**
 * The verdict on one placeOrder answer (contract §3, §5; the 409
 * `order_in_progress` and 429 `quota_exceeded` codes included). For answers
 * of `POST /v1/ops/placeOrder` only, the route this client calls: the
 * drop-in `/chef/` base answers plumgate's own errors in Xoxoday's shape
 * (`errorId` `PLUMGATE_*`), which this reads as Xoxoday's (a `409
 * PLUMGATE_ORDER_IN_PROGRESS` as a refusal, though the order's fate is open).
 */
export function judgeOrderAnswer(a: Answer, nowMs: number): OrderVerdict {
  if (a.status >= 200 && a.status < 300) {
    // plumgate takes only an HTTP 200 with status 1 for a placed order; any
    // other success status it has reconciled, and passes on only when the
    // order proved not placed.
    if (a.status === 200 && plumSuccess(a.json, "placeOrder")) return { kind: "placed" };
    const inner = (a.json as { data?: { placeOrder?: unknown } } | null | undefined)?.data?.placeOrder;
    if (!isPlainObject(a.json) || !isPlainObject(inner)) {
      // A success status without a readable placeOrder answer (no body, JSON
      // null, an array, or an object without `data.placeOrder`, such as a
      // proxy's or platform's own JSON): it is not Xoxoday's refusal, which
      // always names `data.placeOrder`; the answer was damaged or replaced on
      // the way, and the order may exist.
      return {
        kind: "retry",
        error: new PlumgateError({ status: a.status, code: "invalid_response", message: "plumgate's answer could not be read", source: "client", requestId: a.requestId }),
      };
    }
    // A failed order's answer carries the whole order (getOrderDetails'
    // after a check), voucher codes and pins included: kept out of the
    // error, whose enumerable `body` any logger or JSON.stringify would
    // write out. placeOrder hands the order over as the outcome's
    // `failedOrder`.
    const failed = failedOrderIn(a);
    return {
      kind: "refused",
      retryable: false,
      error: new PlumgateError({
        status: a.status,
        code: "upstream_failure",
        message: failed === undefined ? "Xoxoday answered placeOrder with a status other than 1" : failedOrderMessage(failed),
        source: "xoxoday",
        requestId: a.requestId,
        body: failed === undefined ? a.json : undefined,
      }),
    };
  }
  const error = errorFromAnswer(a.status, a.json, a.headers, nowMs, true);
  // A key's spend cap without Retry-After: the order is over the whole
  // daily cap, and no day has room for it.
  if (a.status === 429 && error.code === "quota_exceeded" && error.retryAfter === undefined) return { kind: "refused", error, retryable: false };
  if (a.status === 429) return { kind: "wait", error };
  if (a.status === 408) return { kind: "retry", error };
  // Xoxoday's duplicate poNumber: an order with this poNumber exists;
  // whether it is this one, only getOrderDetails can say.
  if (duplicatePoNumber(a, error)) return { kind: "unknown", error, reason: "duplicate_po_number" };
  if (a.status === 409) {
    if (error.code === "order_in_progress") return { kind: "retry", error };
    return { kind: "refused", error, retryable: false };
  }
  if (a.status === 503 && error.source === "plumgate" && UNAVAILABLE_CODES.has(error.code)) {
    return { kind: "refused", error, retryable: true };
  }
  // Never executed: sent again like a 429, without taking the answer for lost.
  if (a.status >= 500 && error.source === "plumgate" && error.message.includes(NOTHING_PLACED)) return { kind: "wait", error };
  if (a.status >= 500) return { kind: "retry", error };
  return { kind: "refused", error, retryable: false };
}

/** Should a read (any operation but placeOrder) be sent again after this failure? */
export function readIsRetryable(e: PlumgateError): boolean {
  // A failed TLS handshake meets the same certificate the next time.
  if (e.status === 0) return (e.code === "network_error" && !tlsHandshakeFailed(e.cause)) || e.code === "timeout";
  if (e.status === 429 || e.status === 408) return true;
  if (e.status === 503 && e.source === "plumgate" && UNAVAILABLE_CODES.has(e.code)) return false;
  return e.status >= 500;
}
