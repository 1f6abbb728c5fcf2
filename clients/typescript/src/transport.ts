// One HTTP exchange with plumgate: headers, a time limit, the caller's abort
// signal, and the answer read whole and parsed as JSON. Failures with no
// answer become a PlumgateError with status 0. Also the clock and the random
// source, so the retry logic can be tested without waiting.

import { PlumgateError } from "./errors.js";

/** Time and randomness, replaceable in tests. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason if it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** In [0, 1). */
  random(): number;
}

/**
 * The longest delay a timer takes (2^31 - 1 ms, about 24.8 days): a longer
 * one, Infinity included, fires at once (Node warns TimeoutOverflowWarning
 * and sets it to 1 ms; browsers overflow it the same way).
 */
export const MAX_TIMER_MS = 2_147_483_647;

export const realClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const done = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};

/**
 * The error for the caller's abort, during a request or a wait between
 * attempts alike, so a caller can test for it in one way.
 */
export function abortedError(cause?: unknown): PlumgateError {
  return new PlumgateError({ status: 0, code: "aborted", message: "the caller aborted the request", source: "client", cause });
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** An answer from plumgate, read whole. */
export interface Answer {
  status: number;
  headers: Headers;
  /** Parsed JSON; `undefined` when the body is empty or not JSON. */
  json: unknown;
  requestId: string | undefined;
}

export interface SendOptions {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  body?: unknown;
  /** The body as JSON text, serialised by the caller (placeOrder: the same bytes on every attempt); in place of `body`. */
  bodyText?: string | undefined;
  /** Extra request headers. */
  headers?: Record<string, string> | undefined;
  /** Send no `Authorization` header: the route takes no key (`/healthz`), so it is not handed one. */
  anonymous?: boolean | undefined;
  /**
   * Secrets this request carries besides the caller key (rotateKey's
   * `current_key`), cut out of any error as the key is: a fetch's error may
   * quote the request body (a mock's "No match for request {...}").
   */
  scrub?: readonly string[] | undefined;
  /** Time limit for this exchange, in ms; none when undefined. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export class Transport {
  /**
   * The caller key, in a `#` field: a `private` one is a plain property at
   * run time, which `console.log(client)` or `JSON.stringify(client)` would
   * print (contract §3: no key in any log line).
   */
  readonly #key: string;

  constructor(
    private readonly baseUrl: string,
    key: string,
    private readonly fetchFn: FetchLike,
  ) {
    this.#key = key;
  }

  /**
   * Send one request. Resolves with any HTTP answer (error statuses too);
   * rejects only with a PlumgateError of status 0: `client_error` when the
   * request could not be built or the fetch function threw instead of
   * returning a promise (nothing was sent), `aborted` when the
   * caller's signal fired, `timeout` when the limit passed, otherwise
   * `network_error` (the request may or may not have reached plumgate).
   */
  async send(opts: SendOptions): Promise<Answer> {
    const url = this.baseUrl + opts.path;
    const headers: Record<string, string> = { ...opts.headers, accept: "application/json" };
    if (!opts.anonymous) headers["authorization"] = `Bearer ${this.#key}`;
    if (opts.body !== undefined || opts.bodyText !== undefined) headers["content-type"] = "application/json";
    let body: string | null;
    try {
      body = opts.bodyText ?? (opts.body === undefined ? null : JSON.stringify(opts.body));
      // Built here and thrown away, so that what fetch would refuse before
      // sending anything (a URL it cannot parse, a header value it rejects)
      // fails here, where it is known that nothing left the process, and is
      // not taken for a lost answer, which placeOrder would retry until its
      // deadline and then report as an order that may exist.
      new Request(url, { method: opts.method, headers, body });
    } catch (cause) {
      throw new PlumgateError({
        status: 0,
        code: "client_error",
        message: "the request could not be built (the baseUrl, the key or the body); nothing was sent",
        source: "client",
        cause: this.#scrub(cause, opts.scrub),
      });
    }
    const controller = new AbortController();
    let timedOut = false;
    // A limit beyond what a timer can hold (Infinity: "no limit") is none:
    // set as given, the timer would fire at once and end every attempt.
    const timer =
      opts.timeoutMs === undefined || opts.timeoutMs > MAX_TIMER_MS
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, Math.max(0, opts.timeoutMs));
    const onAbort = () => controller.abort();
    if (opts.signal?.aborted) controller.abort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    // Set once fetch returned its promise: a fetch that throws instead sent
    // nothing. And once plumgate's answer began: nothing after that is "not sent".
    let called = false;
    let answered = false;
    try {
      // Called unbound: a platform fetch passed on as is (`fetch: fetch`)
      // throws "Illegal invocation" when `this` is not the global object,
      // as it would be the Transport in `this.fetchFn(...)`.
      const fetchFn = this.fetchFn;
      // Redirects are not followed: fetch would send the key and the order
      // on to wherever a 307 or 308 points, or turn the POST into a GET
      // (301, 302, 303: then plumgate's 405). The 3xx is the answer; a
      // browser's is opaque, status 0 (errorFromAnswer: `redirected`).
      const pending = fetchFn(url, { method: opts.method, headers, body, signal: controller.signal, redirect: "manual" });
      called = true;
      const res = await pending;
      answered = true;
      // Reading the body is part of the exchange: a connection cut while
      // reading it is a lost answer, like one cut before the headers.
      const text = await res.text();
      let json: unknown;
      try {
        json = text === "" ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, json, requestId: res.headers.get("x-request-id") ?? undefined };
    } catch (error) {
      // Read from the runtime's error itself; the error then carries only
      // its scrubbed copy. A caller's fetch (a mock's "No match for request
      // {...}") may quote the request's headers, `Bearer <key>` included,
      // or its body (rotateKey's `current_key`).
      const notSent = !answered && neverConnected(error);
      const cause = this.#scrub(error, opts.scrub);
      if (!called) {
        // Thrown before any promise: the fetch function itself refused the
        // call (workerd's "Illegal invocation"), and will again.
        throw new PlumgateError({ status: 0, code: "client_error", message: "the fetch function threw instead of sending the request; nothing was sent", source: "client", cause });
      }
      if (opts.signal?.aborted) throw abortedError(cause);
      if (timedOut) {
        throw new PlumgateError({ status: 0, code: "timeout", message: `no answer from plumgate within ${opts.timeoutMs} ms`, source: "client", cause });
      }
      const message = !notSent
        ? "the request to plumgate failed in transport; it may or may not have arrived"
        : tlsHandshakeFailed(error)
          ? "the TLS handshake with plumgate's address failed (its certificate was refused, or it does not speak https); nothing was sent"
          : "plumgate could not be reached (the connection was refused or never made); nothing was sent";
      throw new PlumgateError({ status: 0, code: "network_error", message, source: "client", cause, notSent });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The runtime's error with the key, and the request's other secrets
   * (`extra`), cut out: Node's message for a bad header value quotes the
   * value, `Bearer <key>` included, and so may a caller's fetch (a mock
   * quoting the request it did not expect, headers or body). A new
   * error with the scrubbed message, name and what says why it failed
   * (`code`, `syscall`, `errno`, and the `cause`, scrubbed the same way);
   * not the original's stack or other fields, which may repeat the key.
   */
  #scrub(cause: unknown, extra: readonly string[] = [], depth = 0): Error {
    const text = (t: string) => {
      // Each secret as sent, and as it reads inside a JSON-quoted message;
      // an empty one cuts nothing (split("") would cut between every character).
      for (const secret of [this.#key, ...extra]) {
        if (typeof secret !== "string" || secret === "") continue;
        for (const form of [secret, JSON.stringify(secret).slice(1, -1)]) t = t.split(form).join("<key>");
      }
      return t;
    };
    if (!(cause instanceof Error)) return new Error(text(String(cause)));
    const inner = cause.cause === undefined || depth >= 4 ? undefined : { cause: this.#scrub(cause.cause, extra, depth + 1) };
    const scrubbed = cause instanceof TypeError ? new TypeError(text(cause.message), inner) : new Error(text(cause.message), inner);
    if (cause.name !== scrubbed.name) scrubbed.name = text(cause.name);
    for (const field of ["code", "syscall", "errno"]) {
      const v = (cause as unknown as Record<string, unknown>)[field];
      if (typeof v === "string" || typeof v === "number") (scrubbed as unknown as Record<string, unknown>)[field] = typeof v === "string" ? text(v) : v;
    }
    return scrubbed;
  }
}

/**
 * The runtime's errors for a connection that was never made: no byte of the
 * request left the process. A refused connection, a host name that does not
 * resolve, undici's connect timeout: by their nature before connecting.
 * (A reset or a timeout after connecting may come after the request was
 * written.)
 */
const NEVER_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

/**
 * Node's errors for a TLS handshake that failed, as its fetch reports them
 * (Node 20 and 22 alike, in the `cause`, without a `syscall`): undici sends
 * the request only once the handshake is done, so no HTTP byte left the
 * process. The certificate checks run at the handshake alone: on a
 * connection already in use (kept alive) they cannot fail. A server that
 * does not speak TLS (`https://` to a plain-HTTP port) answers the client's
 * first record with one that is not TLS: the wrong version number. (OpenSSL
 * says the same of a non-TLS record later on an open connection, but undici
 * then fails the request with the socket's close, `UND_ERR_SOCKET`, not with
 * this code: checked on Node 20 and 22.) Only these codes: any other TLS
 * error (an alert, a bad record) may come on a connection that already
 * carried the request.
 */
const TLS_HANDSHAKE = new Set([
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

/**
 * Unreachable host or network: before connecting only when the failed call
 * was the `connect` itself. Linux also ends an open connection with them
 * (`read EHOSTUNREACH`) when the peer becomes unreachable mid-exchange,
 * after the request may have arrived.
 */
const UNREACHABLE = new Set(["EHOSTUNREACH", "ENETUNREACH"]);

/**
 * Does `error`, or a cause under it, say so (`test`)? Node's fetch rejects
 * with `TypeError("fetch failed")` whose `cause` holds the system error's
 * `code` (and `syscall`); trying several addresses, an `AggregateError`
 * whose every error must say so. Read on the runtime's error and on the
 * scrubbed copy a PlumgateError holds alike; five levels at most.
 */
function causeSays(error: unknown, test: (code: string, syscall: unknown) => boolean, depth = 0): boolean {
  if (typeof error !== "object" || error === null || depth > 4) return false;
  const e = error as { code?: unknown; syscall?: unknown; errors?: unknown; cause?: unknown };
  if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.every((x) => causeSays(x, test, depth + 1));
  if (typeof e.code === "string" && test(e.code, e.syscall)) return true;
  return causeSays(e.cause, test, depth + 1);
}

/**
 * Did `error` (a rejected fetch, before any answer) happen before any
 * connection was made, or in its TLS handshake? Anything else (a browser's
 * bare `TypeError`, a code not listed) is "may have arrived".
 */
function neverConnected(error: unknown): boolean {
  return causeSays(error, (code, syscall) => NEVER_CONNECTED.has(code) || TLS_HANDSHAKE.has(code) || (UNREACHABLE.has(code) && syscall === "connect"));
}

/**
 * Did the TLS handshake fail (a code of {@link TLS_HANDSHAKE} in `error` or
 * its causes)? Nothing was sent, and sending again within seconds meets the
 * same certificate: placeOrder and the reads do not retry it.
 */
export function tlsHandshakeFailed(error: unknown): boolean {
  return causeSays(error, (code) => TLS_HANDSHAKE.has(code));
}

/** A caller key fit for an `Authorization` header: visible ASCII, no whitespace or control characters. */
export function isHeaderSafeKey(key: string): boolean {
  return /^[\x21-\x7e]+$/.test(key);
}

/**
 * Is this URL host (`URL.hostname`, already normalised: lower case, IPv4 in
 * dotted decimal, IPv6 compressed) a loopback one: 127.0.0.0/8, `localhost`
 * or `[::1]`? plumgate's rule for its own `http://` URLs.
 */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * The Fetch standard's "bad ports": those of other protocols (SMTP, IRC,
 * X11, ...), where an HTTP request could be read as that protocol's
 * commands. A fetch (Node's undici, browsers) fails on them without
 * connecting. Even with the caller's own fetch: one that wraps the global
 * fetch would fail the same way.
 */
const BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117,
  119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
  989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/**
 * Why `baseUrl` cannot be the start of the client's URLs, or undefined when
 * it can. `customFetch`: the caller passed its own fetch (a Service Binding,
 * whose URL host is only a label), which then decides how the request
 * travels. Never quotes the URL: it may hold a password.
 */
export function baseUrlProblem(baseUrl: string, customFetch = false): string | undefined {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return "baseUrl must be an absolute http:// or https:// URL, such as https://plumgate.<account>.workers.dev";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return "baseUrl must be an absolute http:// or https:// URL, such as https://plumgate.<account>.workers.dev";
  }
  if (url.username !== "" || url.password !== "") return "baseUrl must not hold a user name or password (fetch refuses such URLs; the key authenticates)";
  // The client appends paths: after a query or fragment they would not be paths.
  if (baseUrl.includes("?") || baseUrl.includes("#")) return "baseUrl must not have a query or a fragment";
  // fetch refuses these before connecting, with no code to tell it from a
  // lost answer: placeOrder would retry to its deadline and end `unknown`.
  if (url.port !== "" && BAD_PORTS.has(Number(url.port))) {
    return `baseUrl's port ${url.port} is one fetch refuses to connect to (a "bad port" of the Fetch standard, kept for other protocols): serve plumgate on another port`;
  }
  // Every request carries the key, and a placeOrder the recipient's address:
  // in cleartext, anyone on the way could read them and order with the key.
  if (url.protocol === "http:" && !customFetch && !isLoopbackHost(url.hostname)) {
    return "baseUrl must be https:// (http:// only for a loopback host: 127.0.0.0/8, localhost, [::1]; or with your own fetch, such as a Service Binding's): over http:// the key and the orders would cross the network in cleartext";
  }
  return undefined;
}
