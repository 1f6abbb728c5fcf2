// PlumgateError: every failure the client reports, with what a caller needs
// to decide what to do next (status, code, request id, Retry-After), and the
// reading of an error answer in any of the shapes that reach a caller:
// plumgate's own `{"error": {code, message, request_id}}` and Xoxoday's
// Plum, OAuth and rate-limit shapes passed through unchanged.

import type { components } from "./generated/openapi.js";

/**
 * Codes plumgate itself answers with (contract §3), generated at build time
 * from the document plumgate serves at `/openapi.json`.
 */
export type PlumgateCode = components["schemas"]["Error"]["error"]["code"];

/**
 * Codes the client makes when there is no usable answer:
 * - `client_error`: the request could not be built (a URL or header value
 *   the runtime refuses, a body that is not JSON-serialisable), or the fetch
 *   function threw instead of returning a promise; nothing was sent, and
 *   sending it again cannot help.
 * - `network_error`: the request failed in transport (connection refused or
 *   reset, DNS, TLS, a body cut short); it may or may not have arrived,
 *   unless `notSent` says it never left (a refused connection, a host name
 *   that does not resolve, a TLS handshake that failed).
 * - `timeout`: no answer within the time given.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `invalid_response`: a success status whose body is not the expected JSON.
 * - `upstream_failure`: HTTP 200, but Xoxoday's `data.<operation>.status`
 *   is not 1 (Xoxoday's own "failed").
 * - `redirected`: a redirect (HTTP 3xx; status 0 for a browser's opaque
 *   one), which the client does not follow, and nothing is retried.
 *   plumgate makes none itself: without its `x-request-id` something in
 *   front of it answered (an http:// to https:// rule, an old host name),
 *   the request never reached plumgate (`notSent`), and `baseUrl` must be
 *   plumgate's own address; with one, plumgate relayed Xoxoday's redirect
 *   (it passes upstream answers on unchanged), so the request did arrive.
 */
export type ClientCode = "client_error" | "network_error" | "timeout" | "aborted" | "invalid_response" | "upstream_failure" | "redirected";

/**
 * Where an error comes from: plumgate itself, Xoxoday (passed through
 * unchanged), this client (no usable answer), or an answer in no known shape
 * (for example a platform error page in front of plumgate).
 */
export type ErrorSource = "plumgate" | "xoxoday" | "client" | "unknown";

export interface PlumgateErrorInit {
  status: number;
  code: string;
  message: string;
  source: ErrorSource;
  requestId?: string | undefined;
  retryAfter?: number | undefined;
  body?: unknown;
  cause?: unknown;
  notSent?: boolean;
}

/** An error answer, or no answer at all (then `status` is 0). */
export class PlumgateError extends Error {
  override readonly name = "PlumgateError";
  /** HTTP status; 0 when there was no answer (`client_error`, `network_error`, `timeout`, `aborted`) or it hid its status (a browser's opaque redirect, `redirected`). */
  readonly status: number;
  /**
   * plumgate's code (`invalid_request`, `rate_limited`, `order_in_progress`,
   * ...), Xoxoday's `errorId` (`PLE10018`) or OAuth `error`, a client code
   * (see {@link ClientCode}), or `http_<status>` for a body in no known shape.
   */
  readonly code: PlumgateCode | ClientCode | (string & {});
  readonly source: ErrorSource;
  /** The answer's `x-request-id`: quote it when asking the operator. */
  readonly requestId: string | undefined;
  /** Seconds to wait before trying again (`Retry-After`, or Xoxoday's `penaltySeconds`). */
  readonly retryAfter: number | undefined;
  /**
   * The parsed answer body, when there was one. It never holds a key or
   * token. Left out of placeOrder's refusal for a failed order, whose order
   * (voucher codes included) is the outcome's `failedOrder`.
   */
  readonly body: unknown;
  /**
   * The request is known never to have reached plumgate: it could not be
   * built (`client_error`), the connection was never made (a
   * `network_error` from a refused connection, a host name that does not
   * resolve, a host or network unreachable at connect, a TLS handshake that
   * failed), a redirect came from in front of plumgate (`redirected`
   * without plumgate's `x-request-id`), or placeOrder's deadline or signal
   * ended it before it was sent (`timeout`, `aborted`).
   * False when it may have arrived, and for any failure after plumgate's
   * answer began.
   */
  readonly notSent: boolean;

  constructor(init: PlumgateErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.source = init.source;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
    this.body = init.body;
    this.notSent = init.notSent ?? init.code === "client_error";
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * `Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3),
 * relative to `nowMs`. `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // Otherwise only an HTTP date (it names a day and a month): Date.parse
  // also reads "1.5" or "-5" as dates in the past, which would mean "now".
  if (!/[a-z]/i.test(text)) return undefined;
  // Every HTTP date is GMT; asctime's form ("Sun Nov  6 08:49:37 1994")
  // names no zone, and Date.parse would read it in local time.
  const zoned = /(?:[a-z]|[+-]\d{2}:?\d{2})$/i.test(text);
  const at = Date.parse(zoned ? text : `${text} GMT`);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** Xoxoday's `penaltySeconds` in a rate-limit body (`errors` as a list or one object). */
function penaltySeconds(body: Obj): number | undefined {
  const errors = body["errors"];
  const list: unknown[] = Array.isArray(errors) ? errors : [errors];
  for (const e of list) {
    if (!isObj(e)) continue;
    const secs = Number(e["penaltySeconds"]);
    if (Number.isFinite(secs) && secs > 0) return secs;
  }
  return undefined;
}

/**
 * The error an answer with this status, body and headers stands for.
 * Answers of the `/v1/…` routes (and `/healthz`) only, the ones this client
 * calls: under the drop-in `/chef/` base plumgate gives its own errors in
 * Xoxoday's shape (`errorId` `PLUMGATE_*`), which this reads as Xoxoday's.
 * `placeOrder`: the answer is placeOrder's, which plumgate never answers
 * with a redirect (its order ledger takes an upstream 3xx for a lost
 * answer), so any redirect came from in front of it.
 */
export function errorFromAnswer(status: number, body: unknown, headers: Headers, nowMs: number, placeOrder = false): PlumgateError {
  const requestId = headers.get("x-request-id") ?? undefined;
  let retryAfter = parseRetryAfter(headers.get("retry-after"), nowMs);
  const base = { status, requestId, body };
  // Status 0: the one answer fetch gives without a status, a browser's
  // opaque redirect (`redirect: "manual"`).
  if (status === 0 || (status >= 300 && status < 400)) {
    const which = status === 0 ? "a redirect" : `a redirect (HTTP ${status})`;
    if (requestId !== undefined && isObj(body) && !placeOrder) {
      // plumgate sets x-request-id on every answer it gives, and passes an
      // upstream 3xx with a JSON body on unchanged (a read's; one without
      // JSON it answers 502): the request reached it. A proxy in front
      // that sets its own x-request-id (nginx, Envoy, Heroku) redirects
      // with an HTML or empty body.
      return new PlumgateError({
        ...base,
        source: "xoxoday",
        code: "redirected",
        message: `plumgate relayed ${which} from upstream (Xoxoday), which the client does not follow; the request reached plumgate`,
        notSent: false,
      });
    }
    return new PlumgateError({
      ...base,
      source: "unknown",
      code: "redirected",
      message: `plumgate's address answered with ${which}, which the client does not follow (it would send the key and the body elsewhere, or turn a POST into a GET); nothing reached plumgate: set baseUrl to plumgate's own https:// address`,
      notSent: true,
    });
  }
  if (isObj(body) && isObj(body["error"]) && str(body["error"]["code"])) {
    const e = body["error"];
    return new PlumgateError({
      ...base,
      source: "plumgate",
      code: String(e["code"]),
      message: str(e["message"]) ?? `plumgate answered ${status}`,
      requestId: requestId ?? str(e["request_id"]),
      retryAfter,
    });
  }
  if (isObj(body) && str(body["errorId"])) {
    const id = String(body["errorId"]);
    const text = [str(body["errorInfo"]), str(body["error"])].filter(Boolean).join(": ");
    return new PlumgateError({ ...base, source: "xoxoday", code: id, message: text || `Xoxoday answered ${status} (${id})`, retryAfter });
  }
  if (isObj(body) && str(body["error"])) {
    const code = String(body["error"]);
    return new PlumgateError({ ...base, source: "xoxoday", code, message: str(body["error_description"]) ?? code, retryAfter });
  }
  if (isObj(body) && body["errors"] !== undefined) {
    retryAfter ??= penaltySeconds(body);
    return new PlumgateError({
      ...base,
      source: "xoxoday",
      code: "auth.request_limit_exceeded",
      message: "Xoxoday's rate limit",
      retryAfter,
    });
  }
  return new PlumgateError({ ...base, source: "unknown", code: `http_${status}`, message: `HTTP ${status} without a known error body`, retryAfter });
}
