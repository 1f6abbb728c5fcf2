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
      const timer = setTimeout(done, Math.max(0, ms));
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};

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
  /** Extra request headers. */
  headers?: Record<string, string> | undefined;
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
   * rejects only with a PlumgateError of status 0: `aborted` when the
   * caller's signal fired, `timeout` when the limit passed, otherwise
   * `network_error` (the request may or may not have reached plumgate).
   */
  async send(opts: SendOptions): Promise<Answer> {
    const controller = new AbortController();
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, Math.max(0, opts.timeoutMs));
    const onAbort = () => controller.abort();
    if (opts.signal?.aborted) controller.abort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    const headers: Record<string, string> = {
      ...opts.headers,
      authorization: `Bearer ${this.#key}`,
      accept: "application/json",
    };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    try {
      const res = await this.fetchFn(this.baseUrl + opts.path, {
        method: opts.method,
        headers,
        body: opts.body === undefined ? null : JSON.stringify(opts.body),
        signal: controller.signal,
      });
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
    } catch (cause) {
      const [code, message] = opts.signal?.aborted
        ? (["aborted", "the caller aborted the request"] as const)
        : timedOut
          ? (["timeout", `no answer from plumgate within ${opts.timeoutMs} ms`] as const)
          : (["network_error", "the request to plumgate failed in transport; it may or may not have arrived"] as const);
      // The cause carries the runtime's error (never a header or the key).
      throw new PlumgateError({ status: 0, code, message, source: "client", cause });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
}
