// PlumgateClient: one method per Plum operation, token status and health,
// over fetch. Reads are retried on transport errors, 5xx and 429 within their
// time limit; placeOrder follows the retry contract (see placeOrder below and
// the README): same poNumber on every attempt, jittered backoff inside the
// caller's deadline, and an outcome that is never "failed" when the order
// may exist.

import { PlumgateError, errorFromAnswer } from "./errors.js";
import { type Backoff, failedOrderIn, judgeOrderAnswer, plumSuccess, readIsRetryable, retryDelayMs } from "./policy.js";
import { type Answer, type Clock, type FetchLike, Transport, abortedError, baseUrlProblem, isHeaderSafeKey, realClock, tlsHandshakeFailed } from "./transport.js";
import type {
  Health,
  Misconfigured,
  OperationAnswer,
  OperationData,
  OperationInput,
  OperationName,
  Order,
  PlaceOrderInput,
  PoNumber,
  PoNumberOf,
  TokenStatus,
  AuditPage,
  AuditQuery,
  CacheStatus,
  Key,
  LimitsInput,
  NewKeyAnswer,
  NewKeyRequest,
} from "./types.js";

export interface PlumgateClientOptions {
  /**
   * Where plumgate answers: `https://plumgate.<account>.workers.dev` or your
   * route. `http://` only for a loopback host (127.0.0.0/8, `localhost`,
   * `[::1]`: `wrangler dev`), or with your own `fetch`, such as a Service
   * Binding's (the host is only a label then).
   */
  baseUrl: string;
  /** A plumgate caller key (`pgk_...`) holding the scopes you call. */
  key: string;
  /**
   * The fetch to use: defaults to the global one. With a Service Binding,
   * `(input, init) => env.PLUMGATE.fetch(input, init)`. Pass `init` on
   * whole: its `redirect: "manual"` keeps a redirect from sending the key
   * and the order elsewhere.
   */
  fetch?: FetchLike;
  /** Time limit of each read (every call but placeOrder), in ms, retries included. Default 45000. */
  timeoutMs?: number;
  /** Further attempts of a read after a retryable failure, within its time limit. Default 2. */
  retries?: number;
  /** Delays between attempts. */
  backoff?: Backoff;
  /** For tests: time, sleeping and randomness. */
  clock?: Clock;
}

/** Options of one read. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
  /** Overrides the client's `retries` for this call. */
  retries?: number;
  /** Admin keys only: `no-cache` bypasses plumgate's edge cache. */
  cacheControl?: "no-cache";
}

/** A successful operation answer. */
export interface OperationResult<N extends OperationName> {
  /** `data.<operation>.data`: the products, the balance, the order, ... */
  data: OperationData<N>;
  /** Xoxoday's whole answer, unchanged. */
  body: OperationAnswer<N>;
  requestId: string | undefined;
  /** `x-plumgate-cache` for cached operations: hit, miss, bypass, or stale (a copy plumgate served while Xoxoday erred or penalised the operation, or plumgate's limiter held the call: a catalog copy up to a day past its lifetime, a balance up to two minutes). */
  cache: CacheStatus | undefined;
}

/**
 * `P` is the poNumber type `onAttempt` is told. placeOrder asks for the
 * order's own (`PlaceOrderOptions<string>` for a string poNumber); the
 * default, either, fits every order, so one options object can serve string
 * and numbered orders alike.
 */
export interface PlaceOrderOptions<P extends PoNumber = PoNumber> {
  /**
   * When to stop trying, as epoch ms or a Date. Set it to your function's own
   * end minus a margin (e.g. Lambda's `context.getRemainingTimeInMillis()`
   * minus 2 s). Default: `timeoutMs` from now.
   */
  deadline?: number | Date;
  /**
   * The budget from now, in ms. Default 150000 (Xoxoday can take 120 s)
   * when no deadline is given; given with a deadline, whichever ends first.
   */
  timeoutMs?: number;
  /** Cap on one attempt, in ms; default none (an attempt may use all the time left). */
  attemptTimeoutMs?: number;
  /**
   * No attempt, the first included, is started with less time than this
   * left before the deadline, in ms: then nothing is sent and the outcome is
   * `refused` (`timeout`, retryable). Default 1000.
   */
  minAttemptMs?: number;
  signal?: AbortSignal;
  backoff?: Backoff;
  /** Called after every attempt, before any wait for the next (for logs or metrics; it never sees the key). What it throws is ignored. */
  onAttempt?: (attempt: AttemptReport<P>) => void;
}

/**
 * What `onAttempt` is told. `P`: as for {@link PlaceOrderOptions}, either
 * type by default, so a report handler written once takes every order's.
 */
export interface AttemptReport<P extends PoNumber = PoNumber> {
  attempt: number;
  poNumber: P;
  /** HTTP status, 0 without an answer. */
  status: number;
  /** plumgate's or Xoxoday's error code, or a client code; undefined when placed. */
  code: string | undefined;
  requestId: string | undefined;
  /** What the client does next. */
  next: "done" | "retry" | "wait" | "stop";
  /** The wait before the next attempt, in ms. */
  delayMs: number | undefined;
}

/**
 * `P`, on every outcome type, is the poNumber's type: the one placeOrder was
 * given (a number when you passed one), or `string` (given as one, or made by
 * the client). The default is `string`, as before poNumbers could be numbers;
 * `PlaceOrderOutcome<number>` or `PlaceOrderOutcome<PoNumber>` for the others.
 */
interface OutcomeBase<P extends PoNumber = string> {
  /** The idempotency key used on every attempt, as sent: store it with your own record. */
  poNumber: P;
  /** Attempts sent. */
  attempts: number;
  /** The `x-request-id` of every answer received, oldest first. */
  requestIds: string[];
}

/** The order exists. */
export interface OrderPlaced<P extends PoNumber = string> extends OutcomeBase<P> {
  status: "placed";
  /** Xoxoday's order (`data.placeOrder.data`); `{}` if its success answer carried none. */
  order: Order;
  body: OperationAnswer<"placeOrder">;
  /** plumgate answered from its ledger: an earlier attempt with this poNumber placed it. */
  replayed: boolean;
  /**
   * plumgate found the order with getOrderDetails after Xoxoday's answer was
   * lost or left the order's fate open (a duplicate-poNumber refusal, a 422
   * "failed to confirm").
   */
  reconciled: boolean;
}

/**
 * No order was placed by this call, or the one Xoxoday holds under the
 * poNumber failed or was cancelled (`failedOrder`): nothing will be delivered.
 */
export interface OrderRefused<P extends PoNumber = string> extends OutcomeBase<P> {
  status: "refused";
  error: PlumgateError;
  /**
   * The same poNumber and body can succeed later: a rate limit or quota
   * (`error.retryAfter` says when), a token problem an operator must fix,
   * the deadline/abort before anything was sent, or plumgate not reachable
   * (every attempt's connection refused or never made, or a TLS handshake
   * that failed, which is not tried again: `error.notSent`).
   * False: the request itself is refused (validation, balance, scope, a
   * poNumber used for another order, a client_error), or the poNumber's
   * order failed.
   */
  retryable: boolean;
  /**
   * plumgate found the order with getOrderDetails after Xoxoday's answer
   * was lost or left the order's fate open, and it failed or was cancelled
   * (`failedOrder`).
   */
  reconciled: boolean;
  /**
   * Xoxoday holds an order under this poNumber and it failed or was
   * cancelled, so this is not "refused before ordering": the order
   * (`orderId`, `orderStatus`, `deliveryStatus`), whether a check found it
   * (`reconciled`) or Xoxoday's own answer named it. Undefined otherwise.
   * Never deliver from it.
   */
  failedOrder: Order | undefined;
}

/** The order may or may not exist. Never treat this as failed. */
export interface OrderUnknown<P extends PoNumber = string> extends OutcomeBase<P> {
  status: "unknown";
  /**
   * - `deadline`: time ran out while the order's fate was open;
   * - `aborted`: the caller's signal fired after a request was sent;
   * - `refused_after_lost_answer`: a refusal came after an attempt whose
   *   answer was lost, and that attempt may have placed the order;
   * - `duplicate_po_number`: Xoxoday knows an order with this poNumber (a
   *   4xx from Xoxoday with `errorId` `PLE10043`, or saying "duplicate" or
   *   "already exist", and not `PLE10041`, as plumgate reads it).
   */
  reason: "deadline" | "aborted" | "refused_after_lost_answer" | "duplicate_po_number";
  /** The last failure seen, if any. */
  lastError: PlumgateError | undefined;
}

/** `P`: the poNumber's type, `string` by default (see OutcomeBase above). */
export type PlaceOrderOutcome<P extends PoNumber = string> = OrderPlaced<P> | OrderRefused<P> | OrderUnknown<P>;

/** A fresh poNumber: `pg-` and a random UUID (36 + 3 characters, within the 64 allowed). */
export function newPoNumber(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return `pg-${c.randomUUID()}`;
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  // Node 18 without --experimental-global-webcrypto has no global crypto:
  // pass your own poNumber there (it should come from your event anyway).
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return `pg-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * A read's time limit reached on attempt `attempt` after `earlier` failed:
 * the timeout, its message naming the call's limit and the earlier failure
 * (its status, code and request id, which the operator's log finds), so
 * what went wrong first is not lost behind "no answer".
 */
function timedOutAfter(timeout: PlumgateError, earlier: PlumgateError, attempt: number, limitMs: number): PlumgateError {
  const id = earlier.requestId === undefined ? "" : `, request id ${earlier.requestId}`;
  const before = `${earlier.status === 0 ? "no answer" : `HTTP ${earlier.status}`} ${earlier.code}${id}`;
  const message = `${timeout.message}, what was left of the call's ${limitMs} ms, on attempt ${attempt} (attempt ${attempt - 1}: ${before})`;
  return new PlumgateError({ status: 0, code: "timeout", message, source: "client", cause: timeout.cause, notSent: timeout.notSent });
}

/**
 * Xoxoday's order in a placed answer (`data.placeOrder.data`); an empty
 * object when its success answer carried none, so that reading a field of
 * it gives undefined rather than a TypeError.
 */
function orderOf(body: OperationAnswer<"placeOrder">): Order {
  const order = (body as { data?: { placeOrder?: { data?: unknown } } }).data?.placeOrder?.data;
  return (typeof order === "object" && order !== null && !Array.isArray(order) ? order : {}) as Order;
}

/**
 * Why placeOrder's time options cannot be used, or undefined: each must be a
 * number (the deadline also a valid Date), not NaN, not negative: a
 * deadline before 1970 is a mistake in the figure, not a deadline that has
 * passed (that one is refused as a `timeout`, retryable).
 */
function timeOptionProblem(opts: Omit<PlaceOrderOptions, "onAttempt">): string | undefined {
  const deadline = opts.deadline instanceof Date ? opts.deadline.getTime() : opts.deadline;
  if (deadline !== undefined && !countOrUnset(deadline)) return "deadline must be epoch ms or a valid Date, not negative";
  const bad = (["timeoutMs", "attemptTimeoutMs", "minAttemptMs"] as const).find((name) => !countOrUnset(opts[name]));
  return bad ? `${bad} must be a number of ms, not negative` : backoffProblem(opts.backoff);
}

/**
 * Why a `backoff` option cannot be used, or undefined: `baseMs` and `maxMs`
 * unset or finite numbers, not negative. A NaN delay (`Number(process.env.X)`
 * of an unset variable) sleeps 0 ms and swallows `Retry-After`: the retries
 * would come back to back until the deadline.
 */
function backoffProblem(b: unknown): string | undefined {
  if (b === undefined) return undefined;
  if (typeof b !== "object" || b === null) return "backoff must be an object ({ baseMs, maxMs })";
  const bad = (["baseMs", "maxMs"] as const).find((name) => {
    const v = (b as Backoff)[name];
    return v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0);
  });
  return bad && `backoff.${bad} must be a finite number of ms, not negative`;
}

/** Unset, or a number that is not NaN and not negative (Infinity allowed: no limit). */
function countOrUnset(v: unknown): boolean {
  return v === undefined || (typeof v === "number" && !Number.isNaN(v) && v >= 0);
}

/**
 * No attempt after the first is started with less time than this left before
 * the time limit, in ms (placeOrder's `minAttemptMs` default): it would most
 * likely time out, and end a call that had a definite answer (a 429 with its
 * Retry-After) in a bare timeout.
 */
const MIN_ATTEMPT_MS = 1000;

/** Every operation but placeOrder: safe to send again. */
export type ReadOperation = Exclude<OperationName, "placeOrder">;

/** The key under `data` that holds an operation's answer. */
const answerKeys = (op: OperationName): string[] => (op === "paymentHistory" ? ["getPaymentReport", "paymentHistory"] : [op]);

export class PlumgateClient {
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoff: Backoff;

  constructor(opts: PlumgateClientOptions) {
    if (!opts.baseUrl) throw new TypeError("PlumgateClient: baseUrl is required");
    if (!opts.key) throw new TypeError("PlumgateClient: key is required");
    // Refused here, at once, rather than by fetch on every call, where the
    // failure would look like a lost answer. Neither message quotes the value.
    const urlProblem = baseUrlProblem(opts.baseUrl, opts.fetch !== undefined);
    if (urlProblem) throw new TypeError(`PlumgateClient: ${urlProblem}`);
    if (!isHeaderSafeKey(opts.key)) {
      throw new TypeError(
        "PlumgateClient: key must be visible ASCII characters only, without spaces or control characters (often a stray newline from a file or secret store)",
      );
    }
    for (const name of ["timeoutMs", "retries"] as const) {
      if (!countOrUnset(opts[name])) throw new TypeError(`PlumgateClient: ${name} must be a number, not negative`);
    }
    const backoffBad = backoffProblem(opts.backoff);
    if (backoffBad) throw new TypeError(`PlumgateClient: ${backoffBad}`);
    const fetchFn = opts.fetch ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
    this.transport = new Transport(opts.baseUrl.replace(/\/+$/, ""), opts.key, fetchFn);
    this.clock = opts.clock ?? realClock;
    this.timeoutMs = opts.timeoutMs ?? 45_000;
    this.retries = opts.retries ?? 2;
    this.backoff = opts.backoff ?? {};
  }

  /** Catalogue filter groups (countries, categories, currencies). Scope `catalog`. */
  getFilters(data: OperationInput<"getFilters"> = {}, opts?: CallOptions) {
    return this.operation("getFilters", data, opts);
  }
  /** One page of the catalogue. Scope `catalog`. */
  getVouchers(data: OperationInput<"getVouchers">, opts?: CallOptions) {
    return this.operation("getVouchers", data, opts);
  }
  /** The wallet balance. Scope `balance`. */
  getBalance(data: OperationInput<"getBalance"> = {}, opts?: CallOptions) {
    return this.operation("getBalance", data, opts);
  }
  /**
   * One order by poNumber or orderId. Scope `orders:read`; with
   * `sendMailToReceiver: 1` (resend the voucher email) `orders:write`, and
   * then it is never retried (each attempt would send a mail).
   */
  getOrderDetails(data: OperationInput<"getOrderDetails">, opts?: CallOptions) {
    return this.operation("getOrderDetails", data, opts);
  }
  /** Orders between two dates, newest first. Scope `orders:read`. */
  getOrderHistory(data: OperationInput<"getOrderHistory">, opts?: CallOptions) {
    return this.operation("getOrderHistory", data, opts);
  }
  /** The payment report between two dates. Scope `orders:read`. */
  paymentHistory(data: OperationInput<"paymentHistory">, opts?: CallOptions) {
    return this.operation("paymentHistory", data, opts);
  }

  /** The Xoxoday token's state (`GET /v1/token`), never a token. Scope `admin`. */
  async tokenStatus(opts?: CallOptions): Promise<TokenStatus> {
    const a = await this.read({ method: "GET", path: "/v1/token" }, opts);
    return this.expectJson<TokenStatus>(a);
  }

  /** Refresh the Xoxoday token now (`POST /v1/token/refresh`). Scope `admin`. Not retried. */
  async refreshToken(opts?: CallOptions): Promise<TokenStatus> {
    const a = await this.read({ method: "POST", path: "/v1/token/refresh" }, { ...opts, retries: 0 });
    return this.expectJson<TokenStatus>(a);
  }

  /**
   * Make a caller key (`POST /v1/keys`). Scope `admin`. The answer's `key`
   * is shown only this once: hand it over, plumgate keeps its SHA-256 alone.
   * Not retried: the key of a lost answer cannot be shown again (its id is
   * taken; make another under a new id, or rotate that one).
   */
  async createKey(body: NewKeyRequest, opts?: CallOptions): Promise<NewKeyAnswer> {
    const a = await this.read({ method: "POST", path: "/v1/keys", body }, { ...opts, retries: 0 });
    return this.expectJson<NewKeyAnswer>(a);
  }

  /** Every key, `GATEWAY_KEYS` ones first, without secrets, with today's usage (`GET /v1/keys`). Scope `admin`. */
  async listKeys(opts?: CallOptions): Promise<Key[]> {
    const a = await this.read({ method: "GET", path: "/v1/keys" }, opts);
    return this.expectJson<{ keys: Key[] }>(a).keys;
  }

  /** Set a runtime key's limits (`PATCH /v1/keys/{id}`, a merge patch: `null` removes a limit). Scope `admin`. */
  async setKeyLimits(id: string, limits: LimitsInput, opts?: CallOptions): Promise<Key> {
    const a = await this.read({ method: "PATCH", path: `/v1/keys/${encodeURIComponent(id)}`, body: { limits } }, opts);
    return this.expectJson<Key>(a);
  }

  /** Revoke a runtime key (`DELETE /v1/keys/{id}`): refused everywhere within 8 s. Scope `admin`. */
  async revokeKey(id: string, opts?: CallOptions): Promise<Key> {
    const a = await this.read({ method: "DELETE", path: `/v1/keys/${encodeURIComponent(id)}` }, opts);
    return this.expectJson<Key>(a);
  }

  /**
   * A new key for a runtime key's id (`POST /v1/keys/{id}/rotate`), shown
   * only this once; the previous key keeps working `graceSecs` (default 24 h).
   * Scope `admin`. With `currentKey` (the current key: the one the last
   * rotation, or `createKey`, returned) a lost answer is retried like any
   * read: plumgate then replaces the new key, likely unseen (it keeps
   * working through the grace, in case its answer did arrive), and the
   * grace stands as first set. Never pass a key still in an earlier
   * rotation's grace (the one before the current key, which callers may
   * still use): plumgate reads that as a retry of the last rotation and
   * replaces the current key: whoever already uses it is refused once that
   * grace ends. Without
   * `currentKey`, not retried, like `createKey` (a second rotation would
   * end the first one's grace); nor when `graceSecs` ends within the call's
   * time limit (the retry could come after the named key stopped working,
   * and be refused: a 400 saying the lost attempt rotated it, its new key
   * never seen).
   */
  async rotateKey(id: string, opts: CallOptions & { graceSecs?: number; currentKey?: string } = {}): Promise<NewKeyAnswer> {
    const { graceSecs, currentKey, ...call } = opts;
    const body = graceSecs === undefined && currentKey === undefined
      ? undefined
      : { ...(graceSecs === undefined ? {} : { grace_secs: graceSecs }), ...(currentKey === undefined ? {} : { current_key: currentKey }) };
    const limitMs = call.timeoutMs ?? this.timeoutMs;
    const graceOutlastsCall = graceSecs === undefined || graceSecs * 1000 > limitMs;
    const retries = currentKey !== undefined && graceOutlastsCall ? call.retries : 0;
    // `current_key` is a caller key: kept out of any error as the client's own is.
    const scrub = currentKey === undefined ? undefined : [currentKey];
    const a = await this.read({ method: "POST", path: `/v1/keys/${encodeURIComponent(id)}/rotate`, body, scrub }, { ...call, retries });
    return this.expectJson<NewKeyAnswer>(a);
  }

  /** A page of the audit trail of placeOrder attempts, newest first (`GET /v1/audit`). Scope `admin`. */
  async audit(query: AuditQuery = {}, opts?: CallOptions): Promise<AuditPage> {
    // Percent-encoded, not URLSearchParams: its `+` for a space would reach
    // plumgate as a plus sign (a query's `+` is literal there), and a `from`
    // such as "2026-11-25 10:00:00Z" would be refused.
    const text = Object.entries(query)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join("&");
    const a = await this.read({ method: "GET", path: `/v1/audit${text ? `?${text}` : ""}` }, opts);
    return this.expectJson<AuditPage>(a);
  }

  /**
   * `GET /healthz`: `{status: "ok"}`, or `{status: "misconfigured", problems}`
   * (HTTP 503, returned: it is the answer, not a failure). Retried like the
   * other reads; sent without the key, which the route does not take.
   */
  async health(opts?: CallOptions): Promise<Health | Misconfigured> {
    const isHealth = (a: Answer) =>
      (a.status === 200 || a.status === 503) && typeof a.json === "object" && a.json !== null && "status" in a.json;
    const a = await this.read({ method: "GET", path: "/healthz", anonymous: true, accept: isHealth }, opts);
    if (isHealth(a)) return a.json as Health | Misconfigured;
    throw errorFromAnswer(a.status, a.json, a.headers, this.clock.now());
  }

  /** Any operation but placeOrder, by name. */
  async operation<N extends ReadOperation>(op: N, data: OperationInput<N>, opts: CallOptions = {}): Promise<OperationResult<N>> {
    if ((op as string) === "placeOrder") throw new TypeError("use placeOrder() for orders: it carries the retry contract");
    // A getOrderDetails that resends the voucher email (sendMailToReceiver 1)
    // mails it once per attempt: never retried, by whichever method it comes.
    if (op === "getOrderDetails" && Number((data as { sendMailToReceiver?: unknown } | null)?.sendMailToReceiver) === 1) opts = { ...opts, retries: 0 };
    const headers = opts.cacheControl ? { "cache-control": opts.cacheControl } : undefined;
    const a = await this.read({ method: "POST", path: `/v1/ops/${op}`, body: data, headers }, opts);
    const body = this.expectJson<OperationAnswer<N>>(a);
    const key = answerKeys(op).find((k) => plumSuccess(body, k));
    const cache = (a.headers.get("x-plumgate-cache") ?? undefined) as CacheStatus | undefined;
    const flat = (body as unknown as { data?: unknown }).data;
    if (key === undefined && op === "paymentHistory" && Array.isArray(flat)) {
      // The report's other documented reading (xoxoday-api.md §3.7: "The
      // spec shows them flat under `data`"): the rows themselves, no status.
      return { data: flat as unknown as OperationData<N>, body, requestId: a.requestId, cache };
    }
    const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
    if (key === undefined && !(isObject(flat) && answerKeys(op).some((k) => isObject((flat as Record<string, unknown>)[k])))) {
      // No answer of the operation's at all (a proxy's or platform's own
      // JSON): the body is not Xoxoday's, whose refusals name `data.<op>`.
      throw new PlumgateError({
        status: a.status,
        code: "invalid_response",
        message: `plumgate's answer holds no data.${answerKeys(op).join(" or data.")}: it could not be read`,
        source: "client",
        requestId: a.requestId,
        body,
      });
    }
    if (key === undefined) {
      throw new PlumgateError({
        status: a.status,
        code: "upstream_failure",
        message: `Xoxoday answered ${op} with a status other than 1`,
        source: "xoxoday",
        requestId: a.requestId,
        body,
      });
    }
    const inner = (body as unknown as { data: Record<string, { data: OperationData<N> }> }).data[key];
    return { data: inner!.data, body, requestId: a.requestId, cache };
  }

  /**
   * Place an order under the retry contract.
   *
   * 1. The poNumber is `order.poNumber`, or a new one (see {@link newPoNumber});
   *    every attempt sends the same poNumber and body, so plumgate places at
   *    most one order for it.
   * 2. On a lost answer (transport error, an attempt's time limit), 5xx other
   *    than an operator-only 503, 408 or `409 order_in_progress`, it waits a
   *    jittered, growing delay (at least any `Retry-After`) and sends again.
   * 3. On 429 (`rate_limited`, `quota_exceeded`) nothing was placed: it waits
   *    `Retry-After` if that fits before the deadline, else reports `refused`
   *    (retryable), or `unknown` if an earlier answer was lost. A
   *    `quota_exceeded` without `Retry-After` (an order over the key's whole
   *    daily cap) is `refused`, not retryable.
   * 4. It stops at the deadline or the caller's abort, and starts no attempt,
   *    the first included, with less than `minAttemptMs` left. The outcome is
   *    `placed`, `refused` (no order from this call) or `unknown` (the order
   *    may exist: keep the poNumber and call again later with the same body,
   *    or look it up with getOrderDetails). It never reports a failure for an
   *    order that may exist, and it does not throw for outcomes.
   */
  async placeOrder<P extends PoNumber = string>(
    order: PlaceOrderInput<P>,
    opts: PlaceOrderOptions<PoNumberOf<P>> = {},
  ): Promise<PlaceOrderOutcome<PoNumberOf<P>>> {
    // The outcome's poNumber type follows the one given: no poNumber or a
    // string gives string, a number number (PoNumberOf drops a literal's
    // value). A made one is a string, and PlaceOrderInput requires a
    // poNumber when P takes no string, so the cast cannot lie.
    type Po = PoNumberOf<P>;
    const poNumber = (order.poNumber ?? newPoNumber()) as Po;
    const data = { ...order, poNumber };
    const base = { poNumber, attempts: 0, requestIds: [] as string[] };
    // A time option that is not a number (NaN from `Date.now() +
    // context.getRemainingTimeInMillis - 2000`, an Invalid Date) would make
    // every deadline comparison false: attempts without end. Nothing is sent.
    const badOption = timeOptionProblem(opts);
    if (badOption !== undefined) {
      const error = new PlumgateError({ status: 0, code: "client_error", message: `placeOrder: ${badOption}; nothing was sent`, source: "client" });
      return { ...base, status: "refused", error, retryable: false, reconciled: false, failedOrder: undefined };
    }
    // Serialised once, before any attempt: `data` is a shallow copy, and a
    // caller changing a nested object (`userMeta`) while a retry waits
    // would otherwise send another body under the same poNumber.
    let bodyText: string;
    try {
      bodyText = JSON.stringify(data);
    } catch (cause) {
      const error = new PlumgateError({ status: 0, code: "client_error", message: "placeOrder: the order could not be serialised as JSON; nothing was sent", source: "client", cause });
      return { ...base, status: "refused", error, retryable: false, reconciled: false, failedOrder: undefined };
    }
    const start = this.clock.now();
    const byBudget = start + (opts.timeoutMs ?? 150_000);
    const given = opts.deadline instanceof Date ? opts.deadline.getTime() : opts.deadline;
    const deadline = given === undefined ? byBudget : Math.min(given, opts.timeoutMs === undefined ? Infinity : byBudget);
    const minAttemptMs = opts.minAttemptMs ?? MIN_ATTEMPT_MS;
    const backoff = opts.backoff ?? this.backoff;
    // Set once an attempt may have reached plumgate without a definite answer.
    let lostAnswer = false;
    let lastError: PlumgateError | undefined;
    let failures = 0;

    const unknown = (reason: OrderUnknown["reason"]): OrderUnknown<Po> => ({ ...base, status: "unknown", reason, lastError });
    // A refusal proves nothing about an earlier attempt whose answer was lost,
    // not even one plumgate replays (`x-plumgate-replayed`): its ledger
    // replays a refusal it settled (a joined call, a settlement no request
    // heard) and then forgets the poNumber, and a lost attempt that reaches
    // the ledger after that (held up on the way: the spend cap's registry
    // call, a proxy) is placed as a new order.
    const refused = (error: PlumgateError, retryable: boolean): OrderRefused<Po> | OrderUnknown<Po> => {
      if (!lostAnswer) return { ...base, status: "refused", error, retryable, reconciled: false, failedOrder: undefined };
      lastError = error;
      return unknown("refused_after_lost_answer");
    };
    const notSent = (code: "aborted" | "timeout", message: string) =>
      new PlumgateError({ status: 0, code, message, source: "client", notSent: true });
    const abortedWaiting = (waitedOut: PlumgateError) =>
      new PlumgateError({ status: 0, code: "aborted", message: "aborted while waiting to send the order again; nothing was placed", source: "client", cause: waitedOut, notSent: true });
    // The callback's own failure (a log sink down) must not turn an outcome,
    // a placed order included, into an exception the caller takes for "failed".
    const report = (a: Omit<AttemptReport<Po>, "attempt" | "poNumber">) => {
      try {
        opts.onAttempt?.({ attempt: base.attempts, poNumber, ...a });
      } catch {
        // ignored: it is a report, not part of the order
      }
    };

    for (;;) {
      if (opts.signal?.aborted) {
        return lostAnswer ? unknown("aborted") : refused(notSent("aborted", "aborted before the order was sent"), true);
      }
      // The first attempt too: one started with less time left would most
      // likely end in a lost answer, and turn "not sent" into "unknown".
      const left = deadline - this.clock.now();
      if (left <= 0 || left < minAttemptMs) {
        return lostAnswer
          ? unknown("deadline")
          : refused(lastError ?? notSent("timeout", "less than minAttemptMs was left before the deadline: the order was not sent"), true);
      }
      base.attempts += 1;
      let answer: Answer;
      try {
        answer = await this.transport.send({
          method: "POST",
          path: "/v1/ops/placeOrder",
          bodyText,
          timeoutMs: Math.min(left, opts.attemptTimeoutMs ?? Infinity),
          signal: opts.signal,
        });
      } catch (e) {
        const error = e as PlumgateError;
        if (error.code === "client_error") {
          // The request could not be built, or the fetch function refused
          // the call: nothing was sent, so it was no attempt, and every
          // other attempt would fail the same way.
          base.attempts -= 1;
          return refused(error, false);
        }
        // A connection never made (refused, no such host) sent nothing: it
        // is retried like a lost answer but leaves "nothing placed" standing.
        if (!error.notSent) lostAnswer = true;
        lastError = error;
        failures += 1;
        if (error.code === "aborted") {
          report({ status: 0, code: error.code, requestId: undefined, next: "stop", delayMs: undefined });
          return unknown("aborted");
        }
        // A failed TLS handshake (a self-signed or expired certificate, one
        // for another host, https:// to a plain-HTTP port) sent nothing, and
        // the next attempt meets the same certificate: refused at once, and
        // retryable as a connection refused is, once the address is fixed.
        if (error.notSent && tlsHandshakeFailed(error.cause)) {
          report({ status: 0, code: error.code, requestId: undefined, next: "done", delayMs: undefined });
          return refused(error, true);
        }
        const delayMs = this.delayBefore(failures, undefined, deadline, minAttemptMs, backoff);
        report({ status: 0, code: error.code, requestId: undefined, next: delayMs === undefined ? "stop" : "retry", delayMs });
        if (delayMs === undefined) return lostAnswer ? unknown("deadline") : refused(error, true);
        if (!(await this.wait(delayMs, opts.signal))) return lostAnswer ? unknown("aborted") : refused(abortedWaiting(error), true);
        continue;
      }
      if (answer.requestId) base.requestIds.push(answer.requestId);
      const verdict = judgeOrderAnswer(answer, this.clock.now());
      if (verdict.kind === "placed") {
        report({ status: answer.status, code: undefined, requestId: answer.requestId, next: "done", delayMs: undefined });
        const body = answer.json as OperationAnswer<"placeOrder">;
        return {
          ...base,
          status: "placed",
          // Xoxoday's order; an empty object when its success answer carried none.
          order: orderOf(body),
          body,
          replayed: answer.headers.get("x-plumgate-replayed") === "true",
          reconciled: answer.headers.get("x-plumgate-reconciled") === "true",
        };
      }
      lastError = verdict.error;
      if (verdict.kind === "refused") {
        report({ status: answer.status, code: verdict.error.code, requestId: answer.requestId, next: "done", delayMs: undefined });
        const failedOrder = failedOrderIn(answer);
        if (failedOrder !== undefined) {
          // Xoxoday holds the poNumber's order and it failed: whatever an
          // earlier attempt whose answer was lost did, it did to this one
          // order (one poNumber, one order at Xoxoday), so the refusal holds
          // after a lost answer too.
          const reconciled = answer.headers.get("x-plumgate-reconciled") === "true";
          return { ...base, status: "refused", error: verdict.error, retryable: false, reconciled, failedOrder };
        }
        return refused(verdict.error, verdict.retryable);
      }
      if (verdict.kind === "unknown") {
        report({ status: answer.status, code: verdict.error.code, requestId: answer.requestId, next: "done", delayMs: undefined });
        return unknown(verdict.reason);
      }
      if (verdict.kind === "retry") lostAnswer = true;
      failures += 1;
      const delayMs = this.delayBefore(failures, verdict.error.retryAfter, deadline, minAttemptMs, backoff);
      // Reported before the wait: a function stopped while waiting has
      // still reported every attempt it made.
      report({
        status: answer.status,
        code: verdict.error.code,
        requestId: answer.requestId,
        next: delayMs === undefined ? "stop" : verdict.kind,
        delayMs,
      });
      // 429 that outlasts the deadline, or an abort while waiting: nothing
      // was placed by this call unless an earlier answer was lost. The abort
      // is reported as such (the 429 as its cause), as it would be had it
      // come just after the wait.
      if (delayMs === undefined) return lostAnswer ? unknown("deadline") : refused(verdict.error, true);
      if (!(await this.wait(delayMs, opts.signal))) return lostAnswer ? unknown("aborted") : refused(abortedWaiting(verdict.error), true);
    }
  }

  /**
   * The wait before attempt `failures + 1`, or undefined when that attempt
   * would not fit before the deadline.
   */
  private delayBefore(
    failures: number,
    retryAfterSecs: number | undefined,
    deadline: number,
    minAttemptMs: number,
    backoff: Backoff,
  ): number | undefined {
    const delayMs = retryDelayMs(failures, this.clock.random, backoff, retryAfterSecs);
    return this.clock.now() + delayMs + minAttemptMs > deadline ? undefined : delayMs;
  }

  /** Sleep `delayMs`; false when `signal` aborted the wait. */
  private async wait(delayMs: number, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.clock.sleep(delayMs, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A read with retries on transport errors, 5xx (not an operator-only
   * 503), 408 and 429, within its time limit; throws on error answers.
   * `accept` says which answers are the result (default: any 2xx), for a
   * route whose error status carries one.
   */
  private async read(
    req: {
      method: "GET" | "POST" | "PATCH" | "DELETE";
      path: string;
      body?: unknown;
      headers?: Record<string, string> | undefined;
      anonymous?: boolean;
      /** Secrets in `body`, cut out of any error (see SendOptions.scrub). */
      scrub?: readonly string[] | undefined;
      accept?: (a: Answer) => boolean;
    },
    opts: CallOptions = {},
  ): Promise<Answer> {
    // Checked as the constructor checks its own: a NaN time limit would
    // end every attempt at once, a NaN retry count never stop retrying.
    const bad = (["timeoutMs", "retries"] as const).find((name) => !countOrUnset(opts[name]));
    if (bad) {
      throw new PlumgateError({ status: 0, code: "client_error", message: `${bad} must be a number, not negative; nothing was sent`, source: "client" });
    }
    const limitMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = this.clock.now() + limitMs;
    const retries = opts.retries ?? this.retries;
    const { accept = (a: Answer) => a.status >= 200 && a.status < 300, ...send } = req;
    // The last attempt's failure, for a later attempt that times out.
    let earlier: PlumgateError | undefined;
    for (let attempt = 0; ; attempt++) {
      let error: PlumgateError;
      try {
        const a = await this.transport.send({
          ...send,
          timeoutMs: Math.max(0, deadline - this.clock.now()),
          signal: opts.signal,
        });
        if (accept(a)) return a;
        error = errorFromAnswer(a.status, a.json, a.headers, this.clock.now());
      } catch (e) {
        error = e as PlumgateError;
      }
      if (earlier !== undefined && error.code === "timeout" && error.source === "client") error = timedOutAfter(error, earlier, attempt + 1, limitMs);
      if (attempt >= retries || !readIsRetryable(error)) throw error;
      earlier = error;
      const delayMs = retryDelayMs(attempt + 1, this.clock.random, this.backoff, error.retryAfter);
      // The failure in hand is the answer when the next attempt would not
      // have MIN_ATTEMPT_MS: a 429 waited out to within ms of the limit would
      // be sent again only to time out (and count against the key's budget).
      if (this.clock.now() + delayMs + MIN_ATTEMPT_MS >= deadline) throw error;
      try {
        await this.clock.sleep(delayMs, opts.signal);
      } catch (cause) {
        // The caller's abort ends the call with the error an abort during a
        // request gives, not the failure being waited out.
        if (opts.signal?.aborted) throw abortedError(cause);
        throw error;
      }
    }
  }

  private expectJson<T>(a: Answer): T {
    if (typeof a.json !== "object" || a.json === null) {
      throw new PlumgateError({ status: a.status, code: "invalid_response", message: "plumgate's answer is not JSON", source: "client", requestId: a.requestId });
    }
    return a.json as T;
  }
}
