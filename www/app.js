// plumgate demo page. Plain JavaScript, no framework, no build step.
//
// Talks only to plumgate on the same origin, with the caller key the user
// gives (kept in sessionStorage, sent only in the Authorization header).
// Everything shown comes from plumgate's answers; nothing here is a secret.
// The Content-Security-Policy allows no inline script or style, so the DOM is
// built with createElement/textContent (which also keeps upstream text inert).
"use strict";

(() => {
  const KEY_STORAGE = "plumgate.callerKey";
  // An order sent and not yet answered for, kept in this tab's sessionStorage
  // from just before it is sent until plumgate says what became of it (placed,
  // or definitely not placed; see `fateUnknown` and `answersForPo`), so that a
  // reload, also one while the order is in flight, cannot turn it into a
  // second order.
  const UNCERTAIN_STORAGE = "plumgate.unconfirmedOrder";
  // After an order, a balance plumgate answers from its edge cache (a key
  // without the admin scope cannot skip it) may predate the order: it is
  // asked again once the entry can have expired (BALANCE_CACHE_TTL_SECS, 10 s
  // by default, and a second), a few times at most.
  const BALANCE_RECHECK_MS = 11_000;
  const BALANCE_RECHECKS = 5;
  const PAGE_SIZE = 12;
  const HISTORY_SIZE = 10;

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,
    keySource: "",
    page: 1,
    catalogSeq: 0,
    // The currencies of the products shown so far, for the currency list
    // when getFilters has no currency group (xoxoday-api.md names only
    // Country and voucher_category): null while getFilters has one.
    currenciesSeen: new Set(),
    product: null,
    po: "",
    poSent: false,
    // The body of the order being placed, null while none is out.
    ordering: null,
    // {body, name}: the order whose fate is unknown, sent again unchanged
    // (same poNumber) until plumgate answers for it.
    uncertain: null,
    // The wallet's currency, as getBalance last gave it.
    walletCurrency: "",
    balanceSeq: 0,
    balanceTimer: null,
    historyPage: 1,
    // {startDate, endDate} of the history form as last submitted: Next and
    // Previous page through that listing, not whatever the fields hold now.
    historyQuery: null,
    // As catalogSeq: only the latest history or details lookup is shown.
    historySeq: 0,
    detailsSeq: 0,
    tokenSeq: 0,
    keysSeq: 0,
    auditSeq: 0,
    // The poNumber of the order #order-result shows (placed or replayed).
    resultPo: "",
    products: new Map(),
    auditNext: null,
    // The audit trail's filters (key, from, to; a query string) as last
    // submitted: Older pairs state.auditNext with the filters that gave it,
    // and Newest goes back to the start of that listing.
    auditQuery: "",
  };

  // ------------------------------------------------------------ DOM helpers

  /** h("p", {class: "x"}, "text", child) */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** el.append() without null/false children (append would print "null"). */
  function put(el, ...children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c);
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function setStatus(id, text) {
    $(id).textContent = text || "";
  }

  function busy(el, on) {
    el.setAttribute("aria-busy", on ? "true" : "false");
    el.classList.toggle("is-loading", !!on);
  }

  const shown = (el) => Boolean(el && el.isConnected && el.getClientRects().length);

  /**
   * Call when an action begins; the function it returns, called once the
   * action has re-rendered, moves the focus if it was lost meanwhile, so that
   * a keyboard or screen-reader user is not sent back to the top of the
   * page: to the first of `candidates` that is shown and enabled (made
   * focusable if it is not), else back to the element that had it. Focus is
   * lost when its element was removed, hidden or disabled, or when it is on
   * <body>: Chromium blurs a focused button once it is disabled, as the
   * actions do while they wait (and a pager does with the button pressed on
   * its last page). Focus the user moved to another element meanwhile stays
   * where it is.
   */
  function keepFocus() {
    const from = document.activeElement;
    return (...candidates) => {
      const now = document.activeElement;
      if (shown(now) && now !== document.body && !now.disabled) return;
      const to = [...candidates, from].find((el) => el && el !== document.body && shown(el) && !el.disabled);
      if (!to) return;
      if (!to.matches("a[href], button, input, select, textarea, [tabindex]")) to.tabIndex = -1;
      to.focus();
    };
  }

  // ------------------------------------------------------------ formatting

  /** An amount in `currency`; without one, the bare amount (never a guessed currency). */
  function money(value, currency) {
    const n = Number(value);
    if (!Number.isFinite(n)) return `${value ?? "?"} ${currency || ""}`.trim();
    if (!currency) return n.toLocaleString(undefined, { maximumFractionDigits: 2 });
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(n);
    } catch {
      return `${n.toLocaleString()} ${currency}`;
    }
  }

  /**
   * A catalog amount (a denomination, a minimum or maximum), grouped in the
   * browser's locale as the balance is, with the decimals it was given: "10.50"
   * stays 10.50, "2500000" reads 2,500,000. Not a number: as given.
   */
  function amountText(value) {
    const raw = String(value ?? "").trim();
    const n = Number(raw);
    if (raw === "" || !Number.isFinite(n)) return raw || "?";
    const decimals = Math.min((/\.(\d+)$/.exec(raw) || ["", ""])[1].length, 20);
    return new Intl.NumberFormat(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals }).format(n);
  }

  /**
   * A wait of `secs` seconds (a Retry-After): "11 s" while short; a long one
   * in hours and minutes with the local time it ends, "about 13 h 55 min,
   * until 14:05" (with the date when that is not today). Not a number of
   * seconds (Retry-After may be a date): as given.
   */
  function waitText(secs) {
    const n = Number(secs);
    if (String(secs).trim() === "" || !Number.isFinite(n) || n < 0) return String(secs);
    if (n <= 90) return `${Math.round(n)} s`;
    const mins = Math.round(n / 60);
    const span = mins >= 60 ? `${Math.floor(mins / 60)} h${mins % 60 ? ` ${mins % 60} min` : ""}` : `${mins} min`;
    const end = new Date(Date.now() + n * 1000);
    const endText = end.toDateString() === new Date().toDateString()
      ? end.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
      : end.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    return `about ${span}, until ${endText}`;
  }

  /**
   * The smallest step of an amount typed in `currency`: its minor unit by
   * the browser's currency data ("0.01" for USD, "1" for JPY), so the field
   * refuses 10.555 USD rather than order it; "0.01" for a code it does not
   * know.
   */
  function amountStep(currency) {
    try {
      return String(10 ** -new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits);
    } catch {
      return "0.01";
    }
  }

  function when(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const secs = Math.round((d.getTime() - Date.now()) / 1000);
    const abs = Math.abs(secs);
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    let rel;
    if (abs < 60) rel = rtf.format(secs, "second");
    else if (abs < 3600) rel = rtf.format(Math.round(secs / 60), "minute");
    else if (abs < 86400) rel = rtf.format(Math.round(secs / 3600), "hour");
    else rel = rtf.format(Math.round(secs / 86400), "day");
    return `${d.toLocaleString()} (${rel})`;
  }

  function isoDate(d) {
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  }

  /**
   * The order history's default range: the 30 days up to today, where today
   * is the latest of the local date and India's (IST, UTC+05:30). Xoxoday's
   * docs do not say which day an order is dated by (UTC or IST, the zone of
   * its other schedules): west of either in the evening the local date would
   * leave out today's orders, and IST's date is never before UTC's.
   * [startDate, endDate] as YYYY-MM-DD.
   */
  function historyRange(now = new Date()) {
    const local = isoDate(now);
    const ist = new Date(now.getTime() + 330 * 60_000).toISOString().slice(0, 10);
    const end = local > ist ? local : ist;
    const start = new Date(Date.parse(`${end}T00:00:00Z`) - 30 * 86400 * 1000).toISOString().slice(0, 10);
    return [start, end];
  }

  function newPoNumber() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    const rand = Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("").slice(0, 12);
    return `demo-${isoDate(new Date()).replaceAll("-", "")}-${rand}`;
  }

  // ------------------------------------------------------------ API

  class PlumgateError extends Error {
    constructor({ status, code, message, requestId, retryAfter, upstream = false, keyRejected = false, foreign = false }) {
      super(message);
      this.status = status;
      this.code = code || "";
      this.requestId = requestId || "";
      this.retryAfter = retryAfter || "";
      // Xoxoday's own answer, passed through by plumgate (not plumgate's).
      this.upstream = upstream;
      // plumgate's own 401: the caller key itself was refused.
      this.keyRejected = keyRejected;
      // Not plumgate's answer at all (no x-request-id): something in front
      // of it (a proxy, a firewall, the host) answered.
      this.foreign = foreign;
    }
  }

  /** Turn any error answer (plumgate's own or Xoxoday's passed through) into a PlumgateError. */
  function errorFrom(status, json, text, headers) {
    const requestId = headers.get("x-request-id") || "";
    const retryAfter = headers.get("retry-after") || "";
    // Only plumgate's own 401 is about the caller key: plumgate's error
    // shape with code `unauthorized` (and `WWW-Authenticate: Bearer`).
    // Xoxoday's 401s (PLE10019 international orders not allowed, PIPE10015–17
    // user or company disabled, IP not allowed) are passed through unchanged
    // and are about the Xoxoday account plumgate uses.
    if (json && json.error && typeof json.error === "object") {
      // plumgate: {"error": {"code", "message", "request_id"}}
      return new PlumgateError({
        status,
        code: json.error.code,
        message: json.error.message || "plumgate refused the request",
        requestId: json.error.request_id || requestId,
        retryAfter,
        keyRejected: status === 401 && json.error.code === "unauthorized",
      });
    }
    if (json && (json.errorInfo || json.errorId || typeof json.error === "string")) {
      // Xoxoday Plum: {"code", "errorId", "errorInfo", "error"} (plumgate's
      // own errors take this shape only on the drop-in base: PLUMGATE_…).
      const own = /^PLUMGATE_/.test(String(json.errorId || ""));
      const parts = [json.errorInfo, json.error].filter((s) => typeof s === "string" && s);
      return new PlumgateError({
        status,
        code: json.errorId || String(json.code || ""),
        message: [...new Set(parts)].join(": ") || "Xoxoday refused the request",
        requestId,
        retryAfter,
        upstream: !own,
        keyRejected: status === 401 && json.errorId === "PLUMGATE_UNAUTHORIZED",
      });
    }
    if (json && typeof json.error_description === "string") {
      return new PlumgateError({ status, code: "oauth", message: json.error_description, requestId, retryAfter, upstream: true });
    }
    if (json && Array.isArray(json.errors) && json.errors.length) {
      return new PlumgateError({ status, code: "upstream", message: json.errors.map((e) => e.message).join("; "), requestId, retryAfter, upstream: true });
    }
    if (json && typeof json.message === "string" && json.message) {
      // Xoxoday's words in another shape, `{"message": …}` (plumgate's own
      // errors have one of the shapes above): its refusal all the same.
      return new PlumgateError({ status, code: `http_${status}`, message: json.message, requestId, retryAfter, upstream: true });
    }
    const snippet = (text || "").slice(0, 200);
    return new PlumgateError({ status, code: `http_${status}`, message: snippet || `HTTP ${status}`, requestId, retryAfter });
  }

  /**
   * An error answer without plumgate's x-request-id: from something in front
   * of plumgate (an HTML error page of a proxy, a firewall's JSON). Neither
   * plumgate's nor Xoxoday's word: it says nothing of what plumgate did, and
   * its body is never shown as markup (a JSON message is quoted as text).
   */
  function foreignError(status, json, headers) {
    const said = json && typeof json === "object" && [json.message, json.error, json.error_description].find((m) => typeof m === "string" && m);
    return new PlumgateError({
      status,
      code: `http_${status}`,
      message: `HTTP ${status} from something in front of plumgate, not from plumgate (the answer has no x-request-id).`
        + (said ? ` It said: ${said.slice(0, 200)}` : ""),
      retryAfter: headers.get("retry-after") || "",
      foreign: true,
    });
  }

  function noKeyError() {
    return new PlumgateError({ status: 0, code: "no_key", message: "Set a caller key first (step 1)." });
  }

  async function request(path, { method = "POST", body, noCache = false, auth = true } = {}) {
    const headers = {};
    const sentKey = state.key;
    if (auth) {
      if (!sentKey) throw noKeyError();
      headers.authorization = `Bearer ${sentKey}`;
    }
    if (body !== undefined) headers["content-type"] = "application/json";
    if (noCache) headers["cache-control"] = "no-cache";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // No `cache` option: Chrome would turn it into a Cache-Control
        // request header, which makes plumgate skip its edge cache for
        // admin keys. POST answers are never cached by the browser anyway.
        credentials: "omit",
      });
    } catch (e) {
      throw new PlumgateError({ status: 0, code: "network", message: `plumgate could not be reached (${e.message}).` });
    }
    let text;
    try {
      text = await res.text();
    } catch (e) {
      // The connection broke while the answer was read: no answer, as above
      // (for an order: it may have been placed).
      throw new PlumgateError({ status: 0, code: "network", message: `plumgate's answer was cut off (${e.message}).`, requestId: res.headers.get("x-request-id") || "" });
    }
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    if (!res.ok) {
      const err = res.headers.get("x-request-id") ? errorFrom(res.status, json, text, res.headers) : foreignError(res.status, json, res.headers);
      // Which key was refused: the one in use may have changed meanwhile.
      if (err.keyRejected) err.sentKey = sentKey;
      throw err;
    }
    return {
      status: res.status,
      json,
      requestId: res.headers.get("x-request-id") || "",
      cache: res.headers.get("x-plumgate-cache") || "",
      replayed: res.headers.get("x-plumgate-replayed") === "true",
      reconciled: res.headers.get("x-plumgate-reconciled") === "true",
    };
  }

  /** POST /v1/ops/{op}; returns {data, meta} with Xoxoday's inner data. */
  async function op(name, body, opts = {}) {
    const r = await request(`/v1/ops/${name}`, { body, ...opts });
    const env = r.json && r.json.data && r.json.data[name];
    const unexpected = () => new PlumgateError({ status: r.status, code: "unexpected", message: `Unexpected ${name} answer.`, requestId: r.requestId });
    if (!env || typeof env !== "object") throw unexpected();
    // placeOrder answers status 1 (placed) or 0 (not, or a failed order): an
    // answer with neither says nothing about the order, which may exist. A
    // placed order comes with HTTP 200 (Xoxoday's, kept, or plumgate's for an
    // order it found); a 1 under another 2xx is no placed order, and the
    // ledger may even have settled that none was made: as unreadable.
    if (name === "placeOrder" && (![1, "1", 0, "0"].includes(env.status) || (Number(env.status) === 1 && r.status !== 200))) throw unexpected();
    if (env.status !== undefined && Number(env.status) !== 1) {
      const held = heldOrder(env.data);
      if (held) {
        // An order Xoxoday holds that failed or was cancelled: plumgate found
        // it by its poNumber (x-plumgate-reconciled) or replays that answer.
        const err = new PlumgateError({ status: r.status, code: `order_${held.status}`, message: heldOrderText(held), requestId: r.requestId });
        err.order = held;
        throw err;
      }
      // Xoxoday's own "0 for failure", passed through by plumgate.
      throw new PlumgateError({
        status: r.status,
        code: "status_" + env.status,
        message: env.message || env.error || `${name} answered status ${env.status}`,
        requestId: r.requestId,
        upstream: true,
      });
    }
    return { data: env.data, meta: r };
  }

  /**
   * A placeOrder answer with status 0 ("0 for failure") that still names an
   * order: Xoxoday holds that order, and it failed or was cancelled, so none
   * of its vouchers was delivered (whatever codes the answer may list; the
   * page shows none). {id, status} or null.
   */
  function heldOrder(data) {
    if (!data || typeof data !== "object") return null;
    if (data.orderId === undefined || data.orderId === null || data.orderId === "") return null;
    return { id: String(data.orderId), status: String(data.orderStatus || "not completed") };
  }

  function heldOrderText(o) {
    return `Xoxoday holds order ${o.id}, status ${o.status}: no voucher was delivered.`;
  }

  // ------------------------------------------------------------ errors

  /**
   * No answer, or none the page could use (an error of the page's own): the
   * request may have reached plumgate and done what it asked. Not a missing
   * key, which sends nothing.
   */
  function answerLost(e) {
    return !(e instanceof PlumgateError) || (e.status === 0 && e.code !== "no_key");
  }

  /**
   * A key change whose answer says nothing of what became of it: lost, not
   * plumgate's answer (as for an order, see `fateUnknown`), or a 5xx (the
   * key registry did not answer: it may have made the change).
   */
  function changeUnsure(e) {
    return answerLost(e) || e.foreign || (e.status >= 500 && e.code !== "misconfigured");
  }

  // plumgate's words, exactly, for a placeOrder that Xoxoday never executed
  // (crates/core's `ledger::SAFE_TO_RETRY`; the README's retry table): no
  // token could be had, Xoxoday refused the token, the order was never sent,
  // or plumgate settled that it was not placed.
  const NOTHING_PLACED = "nothing was placed and retrying with the same poNumber is safe";

  /** plumgate's own 5xx saying nothing was placed: not a lost answer. */
  function neverExecuted(e) {
    return e instanceof PlumgateError && !e.upstream && !e.foreign && e.status >= 500 && e.message.includes(NOTHING_PLACED);
  }

  /**
   * Xoxoday's duplicate-poNumber refusal, which plumgate passes on only when
   * the order Xoxoday holds under the poNumber is not this one (or none
   * shows). Its shape is undocumented: `PLE10043`, or a 4xx whose words say
   * "duplicate" or "already exist" (never `PLE10041`, the quantity refusal);
   * crates/core's `ledger::is_duplicate` reads it the same way.
   */
  function duplicatePo(e) {
    return e instanceof PlumgateError && e.upstream && e.status >= 400 && e.status < 500 && e.code !== "PLE10041"
      && (e.code === "PLE10043" || /duplicate|already exist/i.test(e.message));
  }

  /**
   * plumgate cannot reach Xoxoday until a person acts (README: When a person
   * must act): sending again, safe as it is, fails the same way until then.
   */
  function personMustAct(err) {
    if (err.code === "reauth_required") return "A person must reconnect Xoxoday";
    if (err.code === "credentials_rejected") return "A person must fix the Xoxoday client id or secret";
    return "";
  }

  function errorTitle(err) {
    if (err.order) return `Order ${err.order.status} at Xoxoday`;
    if (err.poTaken) return "poNumber already used at Xoxoday";
    if (personMustAct(err)) return personMustAct(err);
    if (neverExecuted(err)) return "Not placed: safe to send again";
    // Xoxoday said no for the account plumgate uses, not for the caller key.
    if (err.upstream && (err.status === 401 || err.status === 403)) return `Xoxoday refused${err.code ? ` (${err.code})` : ""}`;
    if (err.code === "unexpected") return "Unreadable answer";
    if (err.foreign) return `Not plumgate's answer (HTTP ${err.status})`;
    // An error of this page's own code, not of the network or of plumgate.
    if (err.code === "page_error") return "This page failed";
    switch (err.status) {
      case 0: return err.code === "no_key" ? "No caller key" : "Network error";
      // Xoxoday's own "status 0" in a 200: refused, or (reconciled) failed or cancelled.
      case 200: return "Not completed";
      case 400: return "Rejected as invalid";
      case 401: return err.keyRejected ? "The caller key was not accepted" : "Not authorised (HTTP 401)";
      case 403: return "This key is not allowed to do that";
      case 404: return "Not found";
      case 409: return err.code === "order_in_progress" ? "Order not confirmed yet" : "Conflict";
      case 422: return "Xoxoday could not process this";
      case 429:
        if (err.code === "quota_exceeded" || err.code === "PLUMGATE_QUOTA_EXCEEDED") return "This key's limit is reached";
        return /TOKEN_MIN_REFRESH_INTERVAL_SECS/.test(err.message || "") ? "Refresh tried moments ago" : "Rate limited (Xoxoday's limits)";
      case 503: return "plumgate is unavailable";
      case 504: return "Xoxoday did not answer in time";
      // plumgate's own failure, not Xoxoday's.
      case 500: return err.code === "internal_error" ? "plumgate failed (internal error)" : "Upstream error";
      default: return err.status >= 500 ? "Upstream error" : `Request failed (HTTP ${err.status})`;
    }
  }

  /** Does the error's own message already say how long to wait ("retry after 11 s")? */
  function waitStated(err) {
    return /\b\d+\s*(s|secs?|seconds?)\b/i.test(err.message || "");
  }

  /**
   * After `before` (" after 11 s"), the wait plumgate gave, unless the
   * message says it already; `otherwise` then.
   */
  function afterWait(err, before, otherwise = "") {
    return err.retryAfter && !waitStated(err) ? `${before}${waitText(err.retryAfter)}` : otherwise;
  }

  /**
   * The generic hint for a wait: none when the message states it, unless
   * it is long, said then in hours and minutes.
   */
  function waitHint(err) {
    if (!err.retryAfter) return "";
    if (!waitStated(err)) return `Retry after ${waitText(err.retryAfter)}.`;
    return Number(err.retryAfter) > 90 ? `That is ${waitText(err.retryAfter)}.` : "";
  }

  function errorHint(err) {
    if (err.foreign) {
      return "Something between this page and plumgate (a proxy, a firewall, the host) answered instead of plumgate. "
        + "Nothing shows whether plumgate got the request; whoever runs that network path can tell why it answered.";
    }
    if (err.upstream && (err.status === 401 || err.status === 403)) {
      return "This is Xoxoday's answer about the Xoxoday account plumgate uses (what it may order, whether its user or company is enabled, "
        + "which IP addresses it may call from), not about your caller key, which plumgate accepted. Whoever runs the Xoxoday account can change it.";
    }
    if (err.keyRejected) return "The caller key may be mistyped, revoked or expired: check it, or enter another one, in step 1.";
    if (err.status === 403) {
      const m = /`([^`]+)` scope/.exec(err.message || "");
      return m ? `Use a key with the ${m[1]} scope (or *).` : "Use a key with the needed scope.";
    }
    if (err.status === 429 && err.retryAfter) return waitHint(err);
    if (err.order) {
      return "The order exists at Xoxoday but did not complete; sending it again only repeats this answer. "
        + "Look it up by its poNumber under Orders; a new order (change a field) gets a new poNumber.";
    }
    if (err.poTaken) {
      return "Xoxoday holds an order under this poNumber that plumgate did not find to be this one (another product, quantity, "
        + "denomination or recipient), or shows none yet. Sending it again under that poNumber gets the same answer. "
        + "Look the poNumber up under Orders first: if that order is this one, do not place it again; if not, place this order under a new poNumber.";
    }
    if (personMustAct(err)) {
      return "Whoever runs this plumgate must act first (its README: When a person must act); until then every call that needs Xoxoday gets this answer.";
    }
    if (neverExecuted(err)) {
      return `Xoxoday never executed this request. Sending the same order again${afterWait(err, " after ")} is safe: its poNumber never places it twice.`;
    }
    if (err.code === "order_in_progress") {
      return `plumgate is still finding out from Xoxoday whether it was placed. Send the same order again${afterWait(err, " after ", waitStated(err) ? "" : " later")}: it is never placed twice.`;
    }
    if (err.forcedRefresh && err.status >= 500) {
      // Its Retry-After is when plumgate's own refreshes try again; a forced
      // one is held back longer (see token()).
      return err.retryAfter
        ? `Its Retry-After (${waitText(err.retryAfter)}) is when plumgate itself tries again; Refresh now waits longer (said above).`
        : "";
    }
    // plumgate said how long to wait (a refresh backing off, a penalty).
    return waitHint(err);
  }

  function showError(boxId, err) {
    const box = $(boxId);
    clear(box);
    const e = err instanceof PlumgateError ? err : new PlumgateError({ status: 0, code: "page_error", message: String(err && err.message || err) });
    const hint = errorHint(e);
    put(box,
      h("p", { class: "err-title" }, h("strong", { text: errorTitle(e) })),
      h("p", { class: "err-message", text: e.message }),
      hint ? h("p", { class: "err-hint", text: hint }) : null,
      h("p", { class: "err-meta" },
        e.status ? `HTTP ${e.status}` : "",
        e.code ? [e.status ? " · " : "", "code ", h("code", { class: "err-code", text: e.code })] : "",
        e.requestId ? [" · request id ", h("code", { class: "err-rid", text: e.requestId })] : ""),
    );
    box.dataset.status = String(e.status);
    box.hidden = false;
    if (e.keyRejected) markKeyRejected(e);
  }

  /**
   * " (code …, request id …)": what an error box's last line shows, for an
   * error told in one line (the balance, the filters' note, the dev key).
   * README: every error shows plumgate's message, code and request id.
   */
  function errorRefs(e) {
    const refs = [e && e.code ? `code ${e.code}` : "", e && e.requestId ? `request id ${e.requestId}` : ""].filter(Boolean);
    return refs.length ? ` (${refs.join(", ")})` : "";
  }

  function hideError(boxId) {
    const box = $(boxId);
    box.hidden = true;
    clear(box);
  }

  // ------------------------------------------------------------ caller key

  /**
   * What is wrong with a key typed into the key form, or "" for none. A
   * caller key is 16–512 visible ASCII characters (README). A character
   * outside visible ASCII the browser will not put in an `Authorization`
   * header: every call would fail before it is sent, be read as "plumgate
   * could not be reached", and an order as one that may have been placed,
   * though nothing went out. trim() keeps a zero-width space (U+200B), as
   * a paste can bring one.
   */
  function keyProblem(key) {
    const bad = [...key].findIndex((c) => c < "\x21" || c > "\x7e");
    if (bad >= 0) {
      const c = [...key][bad];
      const hex = c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      const named = c === " " ? "a space" : /\p{Z}/u.test(c) ? `a space character (U+${hex})` : /[\p{L}\p{N}\p{P}\p{S}]/u.test(c) ? `"${c}" (U+${hex})` : `an invisible character (U+${hex})`;
      return `it holds ${named} at character ${bad + 1}, which no caller key has`;
    }
    if (key.length < 16) return `it is ${key.length} characters long, too short for a caller key`;
    if (key.length > 512) return `it is ${key.length} characters long, too long for a caller key`;
    return "";
  }

  function setKey(key, source) {
    // A key changed is another caller: nothing the previous key was shown stays.
    if (state.key !== key) dropKeyViews();
    state.key = key;
    state.keySource = source;
    try { sessionStorage.setItem(KEY_STORAGE, key); } catch { /* storage off: memory only */ }
    $("key-input").value = "";
    $("key-forget").disabled = false;
    $("balance-refresh").disabled = false;
    setStatus("key-status", `Key set (${source}); kept in this tab's sessionStorage only.`);
    $("key-status").classList.remove("bad");
    onKeyReady();
  }

  function forgetKey() {
    dropKeyViews();
    state.key = null;
    try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* ignore */ }
    $("key-forget").disabled = true;
    $("balance-refresh").disabled = true;
    setStatus("key-status", "No key set.");
    $("key-status").classList.remove("bad");
    $("key-input").focus();
  }

  /**
   * Everything shown for the current key goes (the key is forgotten or
   * another is set): nothing stays for the next person at this screen, no
   * voucher to reveal, no new key, key list, audit trail, order history or
   * details. Every panel's sequence moves on, so a request still in flight
   * is dropped when it answers. An unconfirmed order stays: it is settled
   * only by sending it again or forgetting it.
   */
  function dropKeyViews() {
    clearTimeout(state.balanceTimer);
    for (const seq of ["balanceSeq", "catalogSeq", "historySeq", "detailsSeq", "tokenSeq", "keysSeq", "auditSeq"]) state[seq]++;
    state.walletCurrency = "";
    $("balance-value").textContent = "not loaded";
    $("balance-note").textContent = "";
    $("balance").classList.remove("is-stale");
    $("filters-note").hidden = true;
    for (const id of ["balance-error", "catalog-error", "order-error", "history-error", "details-error", "token-error", "keys-error", "audit-error"]) hideError(id);
    for (const id of ["catalog-status", "history-status", "details-status", "token-status", "keys-status", "audit-status"]) setStatus(id, "");
    for (const id of ["balance", "products", "history", "details", "token-info", "keys-list", "audit-list"]) busy($(id), false);
    for (const id of ["products", "details", "history", "keys-list", "audit-list"]) clear($(id));
    for (const id of ["details", "history-pager", "audit-pager", "token-info"]) $(id).hidden = true;
    $("token-check").disabled = false;
    $("token-refresh").disabled = false;
    hideOrderResult();
    hideNewKey();
    // The form is emptied whenever no order is in flight: an unconfirmed
    // order is kept apart (state.uncertain, its own box) and resent from
    // there, so the next person never finds the previous one's recipient.
    if (!state.ordering) {
      resetOrderForm();
      if (!state.uncertain) setStatus("order-status", "");
    }
  }

  /**
   * The order form as no one filled it: no product, recipient or phone, and
   * a fresh poNumber (the previous one, sent again by the next person, would
   * replay the previous order and show its vouchers); no poNumber left to
   * look up either. Never while an order is in flight: that one is settled
   * from the form's poNumber. An unconfirmed order keeps its own body.
   */
  function resetOrderForm() {
    state.product = null;
    $("order-form").reset();
    clear($("picked"));
    for (const id of ["email", "contact", "details-po"]) $(id).value = "";
    freshPo();
    renderUncertain();
  }

  /**
   * plumgate refused the caller key (its own 401): it is dropped from this
   * tab's sessionStorage, so that a reload does not send it again; the page
   * keeps it until another key is set, and says why it was refused. Not for
   * an answer to a key since replaced.
   */
  function markKeyRejected(e) {
    if (e.sentKey !== state.key) return;
    try {
      if (sessionStorage.getItem(KEY_STORAGE) === e.sentKey) sessionStorage.removeItem(KEY_STORAGE);
    } catch { /* storage off: nothing kept */ }
    $("key-status").textContent = "plumgate rejected the key (401): it may be mistyped, revoked or expired. "
      + "It is no longer kept in this tab, so a reload does not send it again. Enter another key.";
    $("key-status").classList.add("bad");
  }

  /** Is the page itself served from this machine (the local dev setup)? */
  function onLoopback() {
    return ["127.0.0.1", "localhost", "[::1]", "::1"].includes(location.hostname);
  }

  async function probeDevKey() {
    // Only the local dev setup (DEV_CALLER_KEY + the sandbox) answers 200.
    // Deployed pages never ask, so their console stays free of a 404.
    if (!onLoopback()) {
      $("dev-key").hidden = true;
      return;
    }
    try {
      const res = await fetch("/v1/dev/caller-key", { credentials: "omit" });
      $("dev-key").hidden = res.status !== 200;
      await res.body?.cancel();
    } catch {
      $("dev-key").hidden = true;
    }
  }

  async function useDevKey() {
    const btn = $("dev-key");
    // The button waits for the key (which blurs it): the focus goes back to it.
    const refocus = keepFocus();
    btn.disabled = true;
    try {
      const r = await request("/v1/dev/caller-key", { method: "GET", auth: false });
      if (!r.json || typeof r.json.key !== "string" || !r.json.key) throw new Error("no key in the answer");
      setKey(r.json.key, "local dev key");
    } catch (e) {
      setStatus("key-status", `Could not get the dev key: ${e.message}${errorRefs(e)}`);
    } finally {
      btn.disabled = false;
      refocus();
    }
  }

  function onKeyReady() {
    loadBalance();
    loadFilters();
    state.page = 1;
    loadProducts();
  }

  // ------------------------------------------------------------ balance

  /**
   * `afterOrder`: the how-manieth look at the balance since an order (0: not
   * after an order). `fresh` asks plumgate to skip its edge cache, which it
   * does for admin keys only: `x-plumgate-cache: hit` says it did not.
   */
  async function loadBalance({ fresh = false, afterOrder = 0 } = {}) {
    clearTimeout(state.balanceTimer);
    const seq = ++state.balanceSeq;
    const box = $("balance");
    busy(box, true);
    $("balance-note").textContent = "loading…";
    box.classList.remove("is-stale");
    try {
      const { data, meta } = await op("getBalance", {}, { noCache: fresh });
      if (seq !== state.balanceSeq) return;
      state.walletCurrency = data.currency || state.walletCurrency;
      $("balance-value").textContent = money(data.value ?? data.points, data.currency);
      const t = new Date().toLocaleTimeString();
      let note = meta.cache === "hit" ? `as of ${t} · edge cache` : `as of ${t}`;
      // plumgate's copy in place of an error (Xoxoday erred or penalised
      // getBalance, or the shared limit held the call): an older figure.
      const held = meta.cache === "stale";
      const stale = held || (Boolean(afterOrder) && meta.cache === "hit");
      // The one note a phone shows too (style.css): the balance may be old.
      box.classList.toggle("is-stale", stale);
      if (held) {
        note = `${t} · an older copy: Xoxoday or the rate limit held the call (kept up to 2 minutes past BALANCE_CACHE_TTL_SECS)`;
      } else if (stale) {
        // Not fresh, whatever was asked: the entry may be from before the order.
        note = `as of ${t} · edge cache, may predate the order (kept up to BALANCE_CACHE_TTL_SECS, 10 s by default)`;
      }
      if (stale && afterOrder && afterOrder <= BALANCE_RECHECKS) {
        note += `; asking again in ${BALANCE_RECHECK_MS / 1000} s`;
        state.balanceTimer = setTimeout(() => loadBalance({ fresh: true, afterOrder: afterOrder + 1 }), BALANCE_RECHECK_MS);
      }
      $("balance-note").textContent = note;
      hideError("balance-error");
    } catch (e) {
      if (seq !== state.balanceSeq) return;
      $("balance-value").textContent = "unavailable";
      $("balance-note").textContent = "";
      box.classList.remove("is-stale");
      const err = $("balance-error");
      err.textContent = `Balance: ${errorTitle(e)}: ${e.message}${errorRefs(e)}`;
      err.hidden = false;
      if (e.keyRejected) markKeyRejected(e);
    } finally {
      if (seq === state.balanceSeq) busy(box, false);
    }
  }

  // ------------------------------------------------------------ catalog

  async function loadFilters() {
    const sentWith = state.key;
    try {
      const { data } = await op("getFilters", { filterGroupCode: "", includeFilters: "", excludeFilters: "" });
      if (state.key !== sentWith) return;
      const groups = Array.isArray(data) ? data : [];
      const find = (code) => groups.find((g) => String(g.filterGroupCode).toLowerCase() === code);
      fillSelect($("country"), "All countries", (find("country")?.filters || []).map((f) => [f.filterValueCode, f.filterValue]));
      const currencies = find("currency");
      if (currencies) {
        state.currenciesSeen = null;
        fillSelect($("currency"), "All currencies", (currencies.filters || []).map((f) => {
          const code = String(f.isoCode || f.filterValueCode || "").toUpperCase();
          return [code, `${code} · ${f.filterValue}`];
        }));
      } else {
        state.currenciesSeen ??= new Set();
        fillCurrenciesSeen();
      }
      $("filters-note").hidden = true;
    } catch (e) {
      // Products can still be listed; say why the filters are missing.
      if (e.keyRejected || state.key !== sentWith) return; // the catalog's own error box says it
      const note = $("filters-note");
      note.textContent = `Country and currency filters unavailable: ${errorTitle(e)}: ${e.message}${errorRefs(e)}`;
      note.hidden = false;
    }
  }

  /** The currency list from the products shown so far (no currency group in getFilters). */
  function fillCurrenciesSeen() {
    fillSelect($("currency"), "All currencies", [...state.currenciesSeen].sort().map((c) => [c, c]));
  }

  function fillSelect(sel, allLabel, items) {
    const keep = sel.value;
    clear(sel).append(h("option", { value: "", text: allLabel }));
    for (const [value, label] of items) {
      if (!value) continue;
      sel.append(h("option", { value, text: label }));
    }
    sel.value = keep;
    if (sel.value !== keep) sel.value = "";
  }

  function catalogFilters() {
    const filters = [];
    const q = $("q").value.trim();
    if (q) filters.push({ key: "productName", value: q });
    if ($("country").value) filters.push({ key: "country", value: $("country").value });
    if ($("currency").value) filters.push({ key: "currencyCode", value: $("currency").value });
    if ($("delivery").value) filters.push({ key: "deliveryType", value: $("delivery").value });
    return filters;
  }

  async function loadProducts() {
    const seq = ++state.catalogSeq;
    // Next and Previous are disabled while the page loads (which blurs them):
    // the focus goes back to the one pressed, or the other one on the last page.
    const started = document.activeElement;
    const refocus = keepFocus();
    const list = $("products");
    busy(list, true);
    setStatus("catalog-status", "Loading products…");
    hideErrorIfCatalog();
    $("prev-page").disabled = true;
    $("next-page").disabled = true;
    try {
      const body = { limit: PAGE_SIZE, page: state.page };
      const filters = catalogFilters();
      if (filters.length) body.filters = filters;
      const { data, meta } = await op("getVouchers", body);
      if (seq !== state.catalogSeq) return;
      const items = Array.isArray(data) ? data : [];
      renderProducts(items);
      if (state.currenciesSeen) {
        const before = state.currenciesSeen.size;
        for (const p of items) if (typeof p?.currencyCode === "string" && p.currencyCode) state.currenciesSeen.add(p.currencyCode.toUpperCase());
        if (state.currenciesSeen.size !== before) fillCurrenciesSeen();
      }
      const first = (state.page - 1) * PAGE_SIZE + 1;
      const cache = meta.cache ? ` · edge cache ${meta.cache}` : "";
      setStatus("catalog-status", items.length
        ? `Showing products ${first}–${first + items.length - 1}${cache}.`
        : state.page > 1 ? "No more products." : "No products match these filters.");
      $("page-label").textContent = `Page ${state.page}`;
      $("prev-page").disabled = state.page <= 1;
      $("next-page").disabled = items.length < PAGE_SIZE;
    } catch (e) {
      if (seq !== state.catalogSeq) return;
      clear(list);
      setStatus("catalog-status", "Could not load products.");
      showError("catalog-error", e);
      $("prev-page").disabled = state.page <= 1;
    } finally {
      if (seq === state.catalogSeq) {
        busy(list, false);
        // Only a page turn gives the focus back: a load the page started
        // (a key set, a filter, the first load) leaves it where it is.
        if (started === $("next-page") || started === $("prev-page")) refocus(started, $("next-page"), $("prev-page"), $("catalog-title"));
      }
    }
  }

  function hideErrorIfCatalog() {
    hideError("catalog-error");
  }

  function denominations(p) {
    if (p.valueType === "open_value" || !p.valueDenominations) {
      return { open: true, values: [], text: `Any amount ${amountText(p.minValue)}–${amountText(p.maxValue)} ${p.currencyCode}` };
    }
    // The values as given (sent in the order); the text in the browser's locale.
    const values = String(p.valueDenominations).split(",").map((s) => s.trim()).filter(Boolean);
    return { open: false, values, text: `${values.map(amountText).join(" · ")} ${p.currencyCode}` };
  }

  function delivery(p) {
    if (p.deliveryType === "delayed") {
      const tat = p.tatInDays !== undefined && String(p.tatInDays) !== "0" ? ` · ${p.tatInDays} days` : "";
      return { cls: "badge badge-delayed", text: `Delayed${tat}` };
    }
    return { cls: "badge badge-instant", text: "Instant" };
  }

  // https images, the page's own, and the sandbox's loopback images only
  // while the page is itself on loopback: a deployed page never makes its
  // viewers' browsers ask their own machine for a catalog's URL.
  function safeImage(url) {
    if (typeof url !== "string") return "";
    if (/^(https:\/\/|\/)/.test(url)) return url;
    return onLoopback() && url.startsWith("http://127.0.0.1:") ? url : "";
  }

  function renderProducts(items) {
    const list = clear($("products"));
    state.products.clear();
    for (const p of items) {
      state.products.set(String(p.productId), p);
      const d = denominations(p);
      const dl = delivery(p);
      const img = safeImage(p.imageUrl);
      const titleId = `p-${p.productId}-name`;
      list.append(h("li", { class: "card", "aria-labelledby": titleId },
        img ? h("img", { class: "card-img", src: img, alt: "", loading: "lazy", width: 320, height: 200, decoding: "async" })
            : h("div", { class: "card-img card-img-empty" }),
        h("div", { class: "card-body" },
          h("h3", { id: titleId, class: "card-title", text: p.name }),
          h("p", { class: "card-sub", text: `${p.brand || ""}${p.brand ? " · " : ""}${p.countryName || p.countryCode || ""}` }),
          h("p", { class: "card-denoms" }, h("span", { class: "sr-only", text: "Denominations: " }), d.text),
          h("p", { class: "card-meta" },
            h("span", { class: dl.cls }, h("span", { class: "sr-only", text: "Delivery: " }), dl.text),
            h("span", { class: "badge", text: p.currencyCode })),
          h("button", {
            type: "button", class: "btn btn-primary card-order", "data-product": p.productId,
            "aria-label": `Order ${p.name}`, text: "Order this",
          }),
        )));
    }
  }

  // ------------------------------------------------------------ order

  function selectProduct(p) {
    if (state.ordering) {
      // The form is the order out: a new one now would take its place (and
      // its poNumber) before its answer, which would then be told under a
      // form that is gone.
      setStatus("order-status", `Order ${state.ordering.poNumber} is being placed: wait for its answer before starting another.`);
      $("order").scrollIntoView({ block: "start" });
      return;
    }
    if (state.uncertain) {
      // A new order now could duplicate the unconfirmed one: settle it first.
      renderUncertain();
      setStatus("order-status", "Settle the unconfirmed order first: send it again, or forget it.");
      $("order").scrollIntoView({ block: "start" });
      return;
    }
    state.product = p;
    $("order-empty").hidden = true;
    const form = $("order-form");
    form.hidden = false;
    const d = denominations(p);
    const img = safeImage(p.imageUrl);
    put(clear($("picked")),
      img ? h("img", { src: img, alt: "", width: 96, height: 60, class: "picked-img" }) : null,
      h("div", { class: "picked-text" },
        h("p", { class: "picked-name" }, h("strong", { id: "picked-name", text: p.name })),
        h("p", { class: "help", text: `${d.text} · ${delivery(p).text} · up to ${p.orderQuantityLimit || "?"} per order` })),
    );
    $("denom-fixed-field").hidden = d.open;
    $("denom-open-field").hidden = !d.open;
    $("denomination").required = !d.open;
    $("amount").required = d.open;
    // A hidden field is still validated unless disabled: an amount left out
    // of range by an earlier any-amount product would block this form with
    // nothing on screen to say why.
    $("denomination").disabled = d.open;
    $("amount").disabled = !d.open;
    if (d.open) {
      $("amount").min = p.minValue;
      $("amount").max = p.maxValue;
      $("amount").step = amountStep(p.currencyCode);
      $("amount").value = p.minValue;
      $("amount-help").textContent = `${amountText(p.minValue)}–${amountText(p.maxValue)} ${p.currencyCode}`;
    } else {
      const sel = clear($("denomination"));
      for (const v of d.values) sel.append(h("option", { value: v, text: `${amountText(v)} ${p.currencyCode}` }));
    }
    const limit = Number(p.orderQuantityLimit) || 10;
    $("quantity").max = limit;
    $("quantity").value = 1;
    $("qty-help").textContent = `1–${limit}`;
    // A Flag: 0/1, "0"/"1" or false/true (the OpenAPI document's Flag).
    const phone = [true, 1, "1", "true"].includes(p.isPhoneNumberMandatory);
    $("contact-field").hidden = !phone;
    $("contact").required = phone;
    freshPo();
    hideOrderResult();
    hideError("order-error");
    setStatus("order-status", "");
    $("order").scrollIntoView({ block: "start" });
    focusOrderForm({ preventScroll: true });
  }

  /** Focus the order form's first field, or the section's heading while there is no form. */
  function focusOrderForm(opts) {
    if ($("order-form").hidden || !state.product) {
      $("order-title").focus(opts);
      return;
    }
    (denominations(state.product).open ? $("amount") : $("denomination")).focus(opts);
  }

  /** No answer of an earlier order stays on screen, hidden or not (its vouchers included). */
  function hideOrderResult() {
    state.resultPo = "";
    clear($("order-result")).hidden = true;
  }

  function freshPo() {
    state.po = newPoNumber();
    state.poSent = false;
    $("po-number").textContent = state.po;
  }

  function orderBody() {
    const p = state.product;
    const d = denominations(p);
    const body = {
      // As the catalog gave it: plumgate sends values on as they come, and a
      // merchandise productId may have leading zeros a number would lose.
      productId: p.productId,
      quantity: Number($("quantity").value),
      denomination: Number(d.open ? $("amount").value : $("denomination").value),
      email: $("email").value.trim(),
      poNumber: state.po,
      notifyReceiverEmail: 0,
      notifyAdminEmail: 0,
    };
    if (!$("contact-field").hidden) body.contact = $("contact").value.trim();
    return body;
  }

  /**
   * Did this error leave the order's fate open? No answer at all (the request
   * may have reached plumgate), a success status without a readable placeOrder
   * answer, a 5xx other than "nothing was sent", plumgate's own `409
   * order_in_progress`, or an answer that is not plumgate's (no
   * x-request-id). Anything else is definite: the
   * order was refused, rejected or never sent.
   */
  function fateUnknown(e) {
    if (answerLost(e)) return true;
    // Not plumgate's answer: whether plumgate got the order, and placed it,
    // is unknown (sent again, its poNumber never orders twice).
    if (e.foreign) return true;
    if (neverExecuted(e)) return false;
    // A success status whose body is no placeOrder answer (not JSON, or
    // without data.placeOrder): the answer was damaged or replaced on the
    // way, not refused; the order may exist.
    if (e.code === "unexpected") return true;
    if (e.status === 409) return e.code === "order_in_progress";
    if (e.status === 503) return !["reauth_required", "credentials_rejected", "misconfigured"].includes(e.code);
    return e.status >= 500;
  }

  /**
   * Does this refusal answer for the order's poNumber, so that it settles an
   * order whose fate was unknown? Only when plumgate's order ledger was asked:
   * it holds another order under the poNumber (`idempotency_conflict`), or it
   * let the order through and Xoxoday refused it. A refusal before the ledger
   * (the key refused or without orders:write, a limit, `503 misconfigured`)
   * says nothing about the earlier attempt, which may have placed it.
   * (Xoxoday's failed order, `e.order`, settles it too.)
   */
  function answersForPo(e) {
    return e instanceof PlumgateError && (e.code === "idempotency_conflict" || e.upstream);
  }

  /** Keep `order` ({body, name}) in this tab's sessionStorage, or drop it (null). */
  function keepOrder(order) {
    try {
      if (order) sessionStorage.setItem(UNCERTAIN_STORAGE, JSON.stringify(order));
      else sessionStorage.removeItem(UNCERTAIN_STORAGE);
    } catch { /* storage off: memory only */ }
  }

  /**
   * Closing the tab (or leaving the page) while an order is out or
   * unconfirmed asks first: the order is kept in this tab's sessionStorage
   * only, so a new tab has no record of it and the same order typed in there
   * gets a new poNumber, a second order. Listened for only while there is
   * such an order, so leaving the page at any other time asks nothing (and
   * the browser's back-forward cache keeps working).
   */
  function warnOnLeave(ev) {
    ev.preventDefault();
    // Older browsers ask only when returnValue is set.
    ev.returnValue = "";
  }

  let leaveGuarded = false;

  /** The leave warning on while an order is in flight or unconfirmed, off otherwise. */
  function guardLeave() {
    const on = Boolean(state.ordering || state.uncertain);
    if (on === leaveGuarded) return;
    leaveGuarded = on;
    if (on) window.addEventListener("beforeunload", warnOnLeave);
    else window.removeEventListener("beforeunload", warnOnLeave);
  }

  function setUncertain(order) {
    state.uncertain = order;
    guardLeave();
    keepOrder(order);
    // The only way on is the unconfirmed order's own box: no earlier
    // order's answer, and none of its buttons, stays beside it.
    if (order) hideOrderResult();
    renderUncertain();
  }

  /**
   * While an order's fate is unknown, the form is put away: the only ways on
   * are sending that same order again (its poNumber never orders twice) or
   * forgetting it on purpose.
   */
  function renderUncertain() {
    const o = state.uncertain;
    const box = clear($("order-uncertain"));
    box.hidden = !o;
    $("order-form").hidden = Boolean(o) || !state.product;
    $("order-empty").hidden = Boolean(o) || Boolean(state.product);
    if (!o) return;
    const b = o.body;
    put(box,
      h("h3", { id: "order-uncertain-title", tabindex: "-1", text: "Order not confirmed" }),
      h("p", {},
        "Order ", h("code", { id: "uncertain-po", text: b.poNumber }),
        ` (${o.name || `product ${b.productId}`}, ${b.quantity} × ${amountText(b.denomination)}, to ${b.email}) was sent, `,
        "but plumgate has not said whether it was placed: it may have been. "),
      h("p", { class: "help", text: "Send it again unchanged to learn what happened: the same poNumber never places a second order. "
        + "A new order is possible once you forget this one, and may then duplicate it." }),
      // Both wait while it is being sent again (see orderButtons).
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn btn-primary", id: "uncertain-again", text: "Send the same order again", disabled: Boolean(state.ordering), onclick: () => placeOrder() }),
        h("button", { type: "button", class: "btn", id: "uncertain-forget", text: "Forget it and start a new order", disabled: Boolean(state.ordering), onclick: () => {
          setUncertain(null);
          if (state.product) freshPo();
          setStatus("order-status", `Order ${b.poNumber} forgotten by this page; look it up by its poNumber under Orders.`);
          focusOrderForm();
        } })),
    );
  }

  /**
   * The buttons beside an order's answer and in the unconfirmed order's
   * box, off while an order is out: Forget, above all, would drop the kept
   * order mid-send, and an answer that settles nothing would bring it back.
   */
  function orderButtons(enabled) {
    for (const b of document.querySelectorAll("#order-again, #order-new, #uncertain-again, #uncertain-forget")) b.disabled = !enabled;
  }

  async function placeOrder(again) {
    // A double click, Enter pressed twice or a resubmit while the first call
    // is in flight does nothing; a later resubmit reuses the same poNumber, so
    // plumgate answers with the first result (x-plumgate-replayed). An order
    // whose fate is unknown is the one sent, whatever the form says.
    if (state.ordering) return;
    const pending = state.uncertain;
    if (!pending && !again) {
      if (!state.product || !$("order-form").reportValidity()) return;
    }
    if (!state.key) {
      // Nothing is sent, and an unconfirmed order stays as it is.
      showError("order-error", noKeyError());
      setStatus("order-status", pending ? `Order ${pending.body.poNumber} is still not settled: set a key, then send it again.` : "");
      return;
    }
    const body = pending ? pending.body : again || orderBody();
    const name = pending ? pending.name : state.product ? state.product.name : "";
    state.ordering = body;
    guardLeave();
    const refocus = keepFocus();
    const btn = $("place-order");
    btn.disabled = true;
    // Busy is the form (or the unconfirmed order's box), not the section:
    // a busy region's live status and error lines are not read out by some
    // screen readers until it is done.
    const busyBox = pending ? $("order-uncertain") : $("order-form");
    busy(busyBox, true);
    hideError("order-error");
    if (!pending && !again) state.poSent = true;
    // The answer shown is this order's (sent again) or goes: another order's
    // vouchers never stay under this one's outcome.
    const placedBefore = !pending && state.resultPo === body.poNumber;
    if (!placedBefore) hideOrderResult();
    orderButtons(false);
    setStatus("order-status", `Placing order ${body.poNumber}…`);
    // Kept before it is sent: a reload while it is in flight (a realtime
    // order may take two minutes) offers this same order again, never a
    // fresh form and poNumber. Dropped only on a definite answer.
    keepOrder({ body, name });
    const sentWith = state.key;
    try {
      const { data, meta } = await op("placeOrder", body);
      setUncertain(null);
      if (state.key !== sentWith) {
        // The key was forgotten (or changed) while the order was out: its
        // vouchers are not shown to whoever is at the screen now.
        setStatus("order-status", `Order ${body.poNumber} placed; its vouchers are not shown, as the key was changed meanwhile. Look it up with the key.`);
        return;
      }
      // Settled before anything is drawn: a page error while showing the
      // answer is not a lost answer, and never makes the order unconfirmed.
      $("details-po").value = body.poNumber;
      loadBalance({ fresh: true, afterOrder: 1 });
      // An order history on screen predates this order: asked again, for
      // the range and page it shows.
      if (historyShown()) loadHistory();
      try {
        renderOrderResult(data, meta, body);
        setStatus("order-status", meta.replayed
          ? `Replayed: ${body.poNumber} was already ordered; no second order was placed.`
          : `Order ${body.poNumber} placed.`);
      } catch (shownErr) {
        renderOrderFallback(meta, body);
        setStatus("order-status", `Order ${body.poNumber} ${meta.replayed ? "was already placed (replayed)" : "placed"}; `
          + "its answer could not be shown. Look it up by its poNumber under Orders.");
        showError("order-error", shownErr);
      }
    } catch (e) {
      // An unconfirmed order sent again and still not settled (offline, say)
      // would read as before: each try says when it was made.
      const triedAgain = pending ? `Tried again at ${new Date().toLocaleTimeString()}: ` : "";
      if (e instanceof PlumgateError && e.order) {
        // Definite: the order exists and did not complete. Not "not placed".
        setUncertain(null);
        setStatus("order-status", `Order ${body.poNumber}: ${heldOrderText(e.order)}`);
        $("details-po").value = body.poNumber;
      } else if (placedBefore) {
        // Sent again after it was placed: whatever this attempt met, the
        // order shown stands, and its poNumber never orders twice.
        setUncertain(null);
        setStatus("order-status", `Order ${body.poNumber} sent again: ${errorTitle(e)}. It was placed before, and is still one order.`);
      } else if (duplicatePo(e)) {
        // Refused for its poNumber: sent again under it, it only repeats the
        // refusal. Whether the order Xoxoday holds is this one after all
        // (its record lost), only a look can tell: offered first. (Marked
        // here, so that the title and hint above are only this box's.)
        e.poTaken = true;
        $("details-po").value = body.poNumber;
        const taken = `Order ${body.poNumber}: Xoxoday already holds an order under this poNumber, not found to be this one. Look it up under Orders first`;
        if (pending || !state.product) {
          // An order sent before (a reload, a lost answer), with no form
          // behind it: it stays, to look up and then forget or keep.
          setUncertain(pending || { body, name });
          setStatus("order-status", `${taken}: if it is this order, it was placed; if not, forget this one and order again from the catalog.`);
        } else {
          setUncertain(null);
          freshPo();
          setStatus("order-status", `${taken}; the form has a new poNumber, ${state.po}, to place this order.`);
        }
      } else if (fateUnknown(e)) {
        setUncertain({ body, name });
        setStatus("order-status", `${triedAgain}Order ${body.poNumber} was not confirmed: it may have been placed. Send it again unchanged to find out.`);
      } else if (pending && !answersForPo(e)) {
        // Refused before plumgate looked the poNumber up: the earlier attempt
        // may still have placed the order.
        setUncertain(pending);
        setStatus("order-status", triedAgain + (neverExecuted(e)
          ? `Order ${body.poNumber} is still not settled: this attempt placed nothing, but an earlier one may have placed it. Send it again unchanged.`
          : `Order ${body.poNumber} is still not settled (${errorTitle(e)}): it may have been placed. Send it again unchanged once that is fixed.`));
      } else if (e instanceof PlumgateError && e.code === "idempotency_conflict") {
        // plumgate found another order under the poNumber (its ledger, or
        // its look at Xoxoday after a lost answer): not placed, and the
        // poNumber is taken, so a form still holding it gets a new one (sent
        // again, the old one only meets Xoxoday's duplicate refusal). A form
        // filled since (another product after a reload) has its own.
        setUncertain(null);
        const formHadIt = Boolean(state.product) && state.po === body.poNumber;
        if (formHadIt) freshPo();
        setStatus("order-status", `Order ${body.poNumber} was not placed: another order holds its poNumber.`
          + (formHadIt ? ` The form has a new poNumber, ${state.po}, to place this order.` : ""));
      } else {
        setUncertain(null);
        setStatus("order-status", personMustAct(e)
          ? `Order ${body.poNumber} was not placed (${personMustAct(e)}). Sending it again unchanged (same poNumber) is safe once that is done.`
          : neverExecuted(e)
            ? `Order ${body.poNumber} was not placed: Xoxoday did not execute it. Sending it again unchanged (same poNumber) is safe${e.retryAfter ? ` after ${waitText(e.retryAfter)}` : ""}.`
            : `Order ${body.poNumber} was not placed.`);
      }
      // An answer for a key no longer in use: its error (a 401 above all,
      // which would mark the new key rejected) is not shown.
      if (state.key === sentWith) showError("order-error", e);
    } finally {
      state.ordering = null;
      guardLeave();
      // Answered after the key was forgotten or changed: nothing of this
      // order stays in the form for whoever is at the screen now (an
      // unconfirmed one stays in its own box, to be settled).
      if (state.key !== sentWith) resetOrderForm();
      btn.disabled = false;
      orderButtons(true);
      busy(busyBox, false);
      // The button that sent it may be gone (the boxes re-rendered, the form
      // put away): on to what the order came to.
      const where = ["order-uncertain-title", "order-result-title"].map($).find(shown);
      refocus(where || (shown($("order-form")) ? btn : $("order-title")));
    }
  }

  function renderOrderResult(data, meta, body) {
    const box = clear($("order-result"));
    box.hidden = false;
    state.resultPo = body.poNumber;
    box.classList.toggle("replayed", meta.replayed);
    put(box,
      h("h3", { id: "order-result-title", tabindex: "-1", text: meta.replayed ? "Same order, answered again" : "Order placed" }),
      meta.replayed
        ? h("p", { class: "replay-note", id: "replay-note" },
          h("strong", { text: "Replayed. " }),
          "plumgate already had an order with this poNumber and returned its first answer (header ",
          h("code", { text: "x-plumgate-replayed: true" }),
          "). Xoxoday was not called again and nothing was charged twice.")
        : null,
      meta.reconciled
        ? h("p", { class: "replay-note", text: "Xoxoday's answer was lost or left the order's fate open; plumgate found the order by its poNumber (x-plumgate-reconciled)." })
        : null,
      orderFacts(data, body.poNumber, meta.requestId),
      vouchersView(data && data.vouchers, "order"),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", id: "order-again", text: "Send the same order again", onclick: () => placeOrder(body) }),
        newOrderButton()),
    );
  }

  /** "Start a new order" under an order's answer: a fresh poNumber, the form again. */
  function newOrderButton() {
    return h("button", { type: "button", class: "btn", id: "order-new", text: "Start a new order", onclick: () => {
      freshPo();
      hideOrderResult();
      setStatus("order-status", "New order reference made.");
      focusOrderForm();
    } });
  }

  /**
   * The order was placed but its answer could not be drawn (a shape this page
   * does not read): what is sure, its poNumber and request id, and where to
   * look. No voucher from that answer.
   */
  function renderOrderFallback(meta, body) {
    const box = clear($("order-result"));
    box.hidden = false;
    state.resultPo = body.poNumber;
    box.classList.toggle("replayed", meta.replayed);
    const dl = h("dl", { class: "facts" });
    fact(dl, "poNumber", h("code", { class: "po-value", text: body.poNumber }));
    fact(dl, "Request id", meta.requestId ? h("code", { text: meta.requestId }) : "");
    put(box,
      h("h3", { id: "order-result-title", tabindex: "-1", text: meta.replayed ? "Same order, answered again" : "Order placed" }),
      h("p", { text: "plumgate answered that the order is placed, but this page could not show the answer. "
        + "Look the order up by its poNumber under Orders for its vouchers." }),
      dl,
      h("div", { class: "actions" },
        newOrderButton()),
    );
  }

  function fact(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.append(h("dt", { text: label }), h("dd", {}, value));
  }

  function orderFacts(o, po, requestId) {
    const dl = h("dl", { class: "facts" });
    o = o || {};
    fact(dl, "poNumber", h("code", { class: "po-value", text: o.poNumber || po || "" }));
    fact(dl, "Order id", o.orderId);
    // Xoxoday's clock as it writes it (no zone: UTC or IST, unstated),
    // unlike the audit trail's times, which are this browser's.
    fact(dl, "Order date (Xoxoday's clock)", o.orderDate);
    fact(dl, "Status", [o.orderStatus, o.deliveryStatus ? ` · delivery ${o.deliveryStatus}` : ""].join(""));
    fact(dl, "Recipient", o.email);
    // Charged to the wallet, in its currency (getBalance's), not the product's;
    // never a guessed one when the balance was not read.
    if (o.amountCharged !== undefined) {
      fact(dl, "Charged", state.walletCurrency
        ? money(o.amountCharged, state.walletCurrency)
        : `${money(o.amountCharged)} (wallet currency unknown: the balance was not read)`);
    }
    if (o.orderTotal !== undefined) fact(dl, "Order total", `${amountText(o.orderTotal)} ${o.currencyCode || ""}`.trim());
    for (const v of o.voucherDetails || []) {
      fact(dl, "Product", `${v.productName} · ${v.quantity} × ${amountText(v.denomination)} ${v.currencyCode || ""}`.trim());
    }
    fact(dl, "Request id", requestId ? h("code", { text: requestId }) : "");
    return dl;
  }

  let voucherSeq = 0;

  function vouchersView(vouchers, where) {
    const wrap = h("div", { class: "vouchers" });
    if (!Array.isArray(vouchers) || vouchers.length === 0) {
      wrap.append(h("p", { class: "help", text: "No voucher yet: delayed products are delivered later. Look the order up by its poNumber." }));
      return wrap;
    }
    wrap.append(h("h4", { text: vouchers.length === 1 ? "Voucher" : `Vouchers (${vouchers.length})` }));
    for (const v of vouchers) {
      const id = `${where}-voucher-${++voucherSeq}`;
      const secretFields = [
        ["Code", v.voucherCode],
        ["PIN", v.pin],
      ].filter(([, val]) => val !== undefined && val !== null && val !== "");
      // The bullets are named "hidden" for screen readers (not read as bullets).
      const masked = () => h("span", { role: "img", "aria-label": "hidden", text: "••••••••" });
      const values = secretFields.map(([label]) => h("dd", { class: "secret masked", "data-label": label }, masked()));
      const dl = h("dl", { class: "voucher-facts", id });
      secretFields.forEach(([label], i) => dl.append(h("dt", { text: label }), values[i]));
      fact(dl, "Value", money(v.amount, v.currency));
      fact(dl, "Valid until", v.validity);
      let shown = false;
      // Named for what it does next (Reveal, then Hide), so no aria-pressed:
      // a toggle's name must not change with its state (ARIA APG), and this
      // one's name is what tells sighted users which state it is in.
      // aria-expanded says whether the code and PIN it controls are shown.
      const btn = h("button", {
        type: "button", class: "btn btn-small reveal", "aria-controls": id, "aria-expanded": "false",
        text: "Reveal code and PIN",
      });
      btn.addEventListener("click", () => {
        shown = !shown;
        secretFields.forEach(([, val], i) => {
          values[i].replaceChildren(shown ? String(val) : masked());
          values[i].classList.toggle("masked", !shown);
        });
        btn.textContent = shown ? "Hide code and PIN" : "Reveal code and PIN";
        btn.setAttribute("aria-expanded", String(shown));
      });
      wrap.append(h("div", { class: "voucher" }, dl, btn));
    }
    return wrap;
  }

  // ------------------------------------------------------------ orders

  async function loadHistory() {
    const seq = ++state.historySeq;
    // Next and Previous are disabled while the page loads (which blurs them):
    // the focus goes back to the one pressed, or the other one on the last
    // (or first) page.
    const started = document.activeElement;
    const refocus = keepFocus();
    const status = "history-status";
    $(status).classList.remove("bad");
    hideError("history-error");
    const box = $("history");
    busy(box, true);
    setStatus(status, "Loading order history…");
    $("history-prev").disabled = true;
    $("history-next").disabled = true;
    try {
      const body = {
        ...state.historyQuery,
        limit: HISTORY_SIZE,
        page: state.historyPage,
      };
      const { data } = await op("getOrderHistory", body);
      if (seq !== state.historySeq) return;
      const rows = Array.isArray(data) ? data : [];
      renderHistory(rows);
      setStatus(status, rows.length
        ? `${rows.length} order${rows.length === 1 ? "" : "s"} on page ${state.historyPage}.`
        : state.historyPage > 1 ? "No more orders." : "No orders in this date range.");
      $("history-page").textContent = `Page ${state.historyPage}`;
      $("history-pager").hidden = rows.length === 0 && state.historyPage === 1;
      $("history-prev").disabled = state.historyPage <= 1;
      $("history-next").disabled = rows.length < HISTORY_SIZE;
    } catch (e) {
      if (seq !== state.historySeq) return;
      clear(box);
      setStatus(status, "Could not load the order history.");
      showError("history-error", e);
      $("history-prev").disabled = state.historyPage <= 1;
    } finally {
      if (seq === state.historySeq) {
        busy(box, false);
        // Only a page turn gives the focus back: "Show orders" leaves it be.
        if (started === $("history-next") || started === $("history-prev")) refocus(started, $("history-next"), $("history-prev"), $("history-title"));
      }
    }
  }

  /** Is an order history (its rows, or its status: none, an error) on screen for the current key? */
  function historyShown() {
    return Boolean(state.historyQuery) && $("history-status").textContent !== "";
  }

  /** The header of a table's buttons column: named for screen readers, blank on screen. */
  function actionsHeader() {
    return h("th", { scope: "col" }, h("span", { class: "sr-only", text: "Actions" }));
  }

  /**
   * The two clocks the page shows, named so that they are not compared as
   * one: an order's date is Xoxoday's `orderDate` as written (no zone; UTC
   * or IST, unstated), the audit trail's times are this browser's.
   */
  const HISTORY_DATE = "Date (Xoxoday's clock)";
  const AUDIT_TIME = "Time (your clock)";

  function renderHistory(rows) {
    const box = clear($("history"));
    if (!rows.length) return;
    const table = h("table", { class: "table" },
      h("caption", { class: "sr-only", text: "Order history" }),
      h("thead", {}, h("tr", {},
        [HISTORY_DATE, "poNumber", "Product", "Amount", "Status"].map((t) => h("th", { scope: "col", text: t })), actionsHeader())));
    const tbody = h("tbody");
    for (const o of rows) {
      const products = (o.products || o.voucherDetails || []).map((p) => p.productName).filter(Boolean).join(", ");
      tbody.append(h("tr", {},
        h("td", { "data-label": HISTORY_DATE, text: o.orderDate || "" }),
        h("td", { "data-label": "poNumber" }, h("code", { text: o.poNumber || "" })),
        h("td", { "data-label": "Product", text: products }),
        h("td", { "data-label": "Amount", text: `${o.orderTotal === undefined || o.orderTotal === null ? "" : amountText(o.orderTotal)} ${o.currencyCode || ""}`.trim() }),
        h("td", { "data-label": "Status", text: o.deliveryStatus || o.orderStatus || "" }),
        h("td", {}, o.poNumber
          ? h("button", { type: "button", class: "btn btn-small history-details", "data-po": o.poNumber,
            "aria-label": `Details of ${o.poNumber}`, text: "Details" })
          : "")));
    }
    table.append(tbody);
    box.append(h("div", { class: "table-wrap" }, table));
  }

  /**
   * Look a poNumber up. `from`: the history row's Details button pressed;
   * the answer (or error) is drawn beside the history at desktop width, far
   * below it on a phone: once it comes, the details heading is scrolled to
   * and focused, unless the focus was moved elsewhere meanwhile.
   */
  async function loadDetails(po, from = null) {
    const seq = ++state.detailsSeq;
    hideError("details-error");
    const box = $("details");
    busy(box, true);
    setStatus("details-status", `Looking up ${po}…`);
    try {
      const { data, meta } = await op("getOrderDetails", { poNumber: po, orderId: null, sendMailToReceiver: 0 });
      if (seq !== state.detailsSeq) return;
      put(clear(box),
        h("h4", { text: `Order ${po}` }),
        orderFacts(data, po, meta.requestId),
        vouchersView(data && data.vouchers, "details"));
      box.hidden = false;
      setStatus("details-status", `Found order ${po}.`);
    } catch (e) {
      if (seq !== state.detailsSeq) return;
      // No earlier order's vouchers left behind, hidden or not.
      clear(box).hidden = true;
      setStatus("details-status", `No details for ${po}.`);
      showError("details-error", e);
    } finally {
      if (seq === state.detailsSeq) {
        busy(box, false);
        const now = document.activeElement;
        if (from && (now === from || now === document.body || !shown(now))) {
          // Scrolled to only when off screen (beside the history, it is not).
          $("details-title").focus();
        }
      }
    }
  }

  // ------------------------------------------------------------ token

  const STATE_TEXT = {
    uninitialized: "No token yet: the first call will fetch one.",
    fresh: "Healthy: the access token is valid.",
    stale: "Early-refresh window: plumgate refreshes in the background while serving the current token.",
    expired: "The access token has expired or Xoxoday revoked it: the next call waits for a refresh.",
    reauth_required: "The refresh token is dead: generate new tokens in the Xoxoday dashboard and set XOXODAY_REFRESH_TOKEN again.",
    credentials_rejected: "Xoxoday rejected the client id or secret: set XOXODAY_CLIENT_ID / XOXODAY_CLIENT_SECRET right; plumgate tries again by itself then. If they were right, Refresh now tries them again (once a minute).",
  };

  const ALERT_TEXT = {
    reauth_required: "refresh token dead",
    credentials_rejected: "client id or secret rejected",
    tokens_rejected: "Xoxoday keeps rejecting new access tokens",
    refresh_failing: "token refreshes failing",
    balance_low: "balance below BALANCE_ALERT_BELOW",
  };

  /** GET /v1/token's last_alert in one line: what, when, and whether ALERT_WEBHOOK_URL got it. */
  function alertText(a) {
    if (!a) return "none";
    const what = `${ALERT_TEXT[a.event] || a.event} (${a.event}), ${a.state === "resolved" ? "resolved" : "firing"}, ${when(a.at)}`;
    let sent;
    if (a.delivered) sent = "delivered";
    else if (a.next_attempt_at) sent = `not delivered yet (${a.attempts} attempt${a.attempts === 1 ? "" : "s"}; next ${when(a.next_attempt_at)})`;
    else sent = "not delivered";
    return `${what}: ${sent}${a.error ? ` — ${a.error}` : ""}`;
  }

  /** The token facts (GET /v1/token's body) into the panel. */
  function showToken(t, requestId) {
    const dl = clear($("token-info"));
    fact(dl, "State", h("span", { class: `badge state state-${t.state}`, id: "token-state", text: t.state }));
    fact(dl, "Meaning", STATE_TEXT[t.state] || "");
    fact(dl, "Access token expires", when(t.access_token_expires_at));
    fact(dl, "Refresh token expires", when(t.refresh_token_expires_at));
    fact(dl, "Last refresh", when(t.last_refresh_at));
    fact(dl, "Refreshes", String(t.refresh_count ?? 0));
    fact(dl, "Last error", t.last_error ? (typeof t.last_error === "string" ? t.last_error : JSON.stringify(t.last_error)) : "none");
    if (t.retry_at) fact(dl, "No refresh attempt before", when(t.retry_at));
    fact(dl, "Last alert", alertText(t.last_alert));
    fact(dl, "Request id", h("code", { text: requestId }));
    dl.hidden = false;
  }

  async function token(method) {
    const seq = ++state.tokenSeq;
    hideError("token-error");
    // Both buttons wait for the answer (which blurs the one pressed): the
    // focus goes back to it then.
    const refocus = keepFocus();
    busy($("token-info"), true);
    $("token-check").disabled = true;
    $("token-refresh").disabled = true;
    setStatus("token-status", method === "POST" ? "Refreshing the Xoxoday token…" : "Checking token health…");
    try {
      const r = await request(method === "POST" ? "/v1/token/refresh" : "/v1/token", { method });
      if (seq !== state.tokenSeq) return;
      showToken(r.json || {}, r.requestId);
      setStatus("token-status", method === "POST" ? `Refreshed at ${new Date().toLocaleTimeString()}.` : `Checked at ${new Date().toLocaleTimeString()}.`);
    } catch (e) {
      if (seq !== state.tokenSeq) return;
      if (method === "POST" && e instanceof PlumgateError && e.status === 429) {
        // Throttled (a forced refresh is allowed once a minute while the
        // token is valid or the client id/secret stand rejected) or
        // Xoxoday's refresh penalty: nothing changed, so the facts stay as
        // they were.
        setStatus("token-status", `Not refreshed: plumgate answered 429${e.retryAfter ? `; try again in ${waitText(e.retryAfter)}` : ""}.`);
      } else if (method === "POST") {
        // A refresh that failed: what it left (its error, the state, when
        // plumgate tries again) is in the facts, asked again below. A forced
        // refresh is refused (429) until TOKEN_MIN_REFRESH_INTERVAL_SECS
        // after this attempt while the token is usable or the client
        // id/secret stand rejected (README), whatever the 5xx's Retry-After
        // says; GET /v1/token does not tell that interval, so no clock time
        // is worked out from the default (a deployment may set another).
        e.forcedRefresh = true;
        const at = new Date();
        setStatus("token-status", `Not refreshed (tried at ${at.toLocaleTimeString()}). While the access token is valid, Refresh now is allowed again `
          + "TOKEN_MIN_REFRESH_INTERVAL_SECS after this attempt (a minute by default; this page cannot see the setting); plumgate answers 429 before that.");
      } else {
        $("token-info").hidden = true;
        setStatus("token-status", "");
      }
      showError("token-error", e);
      if (e.forcedRefresh) {
        try {
          const r = await request("/v1/token", { method: "GET" });
          if (seq === state.tokenSeq) showToken(r.json || {}, r.requestId);
        } catch { /* the facts shown before stay */ }
      }
    } finally {
      if (seq === state.tokenSeq) {
        busy($("token-info"), false);
        $("token-check").disabled = false;
        $("token-refresh").disabled = false;
        refocus();
      }
    }
  }


  // ------------------------------------------------------------ keys (admin)

  /** The body of POST /v1/keys from the form. */
  function newKeyBody() {
    const body = {
      id: $("new-key-id").value.trim(),
      scopes: [...document.querySelectorAll('#key-create-form input[name="scope"]:checked')].map((c) => c.value),
    };
    const limits = {};
    if ($("new-key-rpm").value !== "") limits.requests_per_minute = Number($("new-key-rpm").value);
    if ($("new-key-amount").value !== "") limits.order_amount_per_day = Number($("new-key-amount").value);
    if (Object.keys(limits).length) body.limits = limits;
    const expires = $("new-key-expires").value;
    if (expires) body.expires_at = new Date(expires).toISOString();
    return body;
  }

  async function createKey() {
    const form = $("key-create-form");
    if (!form.reportValidity()) return;
    const body = newKeyBody();
    hideError("keys-error");
    hideNewKey();
    const btn = $("key-create");
    // The button waits for the answer (which blurs it): a created key takes
    // the focus (its copy button); else it goes back to the button.
    const refocus = keepFocus();
    btn.disabled = true;
    setStatus("keys-status", `Creating key ${body.id}…`);
    const sentWith = state.key;
    try {
      const r = await request("/v1/keys", { body });
      if (state.key !== sentWith) {
        // The caller key was forgotten or changed meanwhile: the new key is
        // not shown to whoever is at the screen now.
        createdUnseen(body.id, "created");
        return;
      }
      showNewKey(r.json, `New key ${r.json.id}`, "");
      const until = r.json.expires_at ? ` until ${when(r.json.expires_at)}` : "";
      setStatus("keys-status", `Key ${r.json.id} created. It works now${until}; copy it before you leave this page.`);
      form.reset();
      await loadKeys({ quiet: true });
    } catch (e) {
      if (state.key !== sentWith) return;
      setStatus("keys-status", changeUnsure(e)
        ? `Key ${body.id} may have been created: nothing confirmed it. Use "Show keys" to check before creating it again.`
        : "The key was not created.");
      showError("keys-error", e);
    } finally {
      btn.disabled = false;
      refocus();
    }
  }

  /**
   * A key made with the previous caller key (`done`: "created" or "rotated"):
   * never shown, and said only to another caller key, not to no key.
   */
  function createdUnseen(id, done) {
    if (state.key) setStatus("keys-status", `Key ${id} was ${done} with the previous caller key: its new key is not shown here (rotate ${id} to get one).`);
  }

  /** The key of a create or rotate answer, shown once. */
  function showNewKey(k, title, note) {
    $("new-key-title").textContent = title;
    $("new-key-value").textContent = k.key;
    $("new-key-note").textContent = note;
    $("new-key").hidden = false;
    $("new-key-copy").focus();
  }

  function hideNewKey() {
    $("new-key").hidden = true;
    $("new-key-value").textContent = "";
    $("new-key-note").textContent = "";
  }

  async function copyNewKey() {
    const code = $("new-key-value");
    try {
      await navigator.clipboard.writeText(code.textContent);
      $("new-key-note").textContent = "Copied to the clipboard.";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      $("new-key-note").textContent = "The browser did not allow copying: the key is selected, copy it with Ctrl+C (⌘C).";
    }
  }

  function limitsText(l) {
    const parts = [];
    if (l && l.requests_per_minute !== null && l.requests_per_minute !== undefined) parts.push(`${l.requests_per_minute} requests/min`);
    if (l && l.order_amount_per_day !== null && l.order_amount_per_day !== undefined) parts.push(`${amountText(l.order_amount_per_day)} face value a day`);
    return parts.length ? parts.join(" · ") : "none";
  }

  function usageText(u) {
    if (!u) return "";
    const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;
    // `reserved`: orders whose fate plumgate does not know yet, held against the cap.
    const held = Number(u.reserved) > 0 ? ` · ${u.reserved} reserved` : "";
    return `${plural(u.requests, "request")} · ${plural(u.orders, "order")} · amount ${amountText(u.amount)}${held}`;
  }

  /**
   * When a key was last rotated and until when its previous key works (GET
   * /v1/keys: `rotated_at`, `previous_key_expires_at`, null once that key no
   * longer works): what tells whether a rotation whose answer was lost
   * happened, and when callers still on the previous key are cut off.
   */
  function rotationText(k) {
    if (!k.rotated_at) return null;
    const previous = k.previous_key_expires_at
      ? `the previous key works until ${when(k.previous_key_expires_at)}`
      : "the previous key no longer works";
    return h("p", { class: "key-rotated help", text: `Rotated ${when(k.rotated_at)}; ${previous}.` });
  }

  /** When a key stops working by itself (GET /v1/keys: `expires_at`); nothing for a key without an end. */
  function expiryText(k) {
    if (!k.expires_at) return null;
    const past = Date.parse(k.expires_at) <= Date.now();
    return h("p", { class: "key-expires help", text: `${past ? "Expired" : "Expires"} ${when(k.expires_at)}.` });
  }

  async function loadKeys({ quiet = false } = {}) {
    const seq = ++state.keysSeq;
    const list = $("keys-list");
    busy(list, true);
    if (!quiet) {
      hideError("keys-error");
      setStatus("keys-status", "Loading keys…");
    }
    try {
      const r = await request("/v1/keys", { method: "GET" });
      if (seq !== state.keysSeq) return;
      const keys = (r.json && r.json.keys) || [];
      renderKeys(keys);
      if (!quiet) setStatus("keys-status", `${keys.length} key${keys.length === 1 ? "" : "s"}; usage is today's (UTC).`);
    } catch (e) {
      if (seq !== state.keysSeq) return;
      clear(list);
      setStatus("keys-status", "Could not load the keys.");
      showError("keys-error", e);
    } finally {
      if (seq === state.keysSeq) busy(list, false);
    }
  }

  function renderKeys(keys) {
    const box = clear($("keys-list"));
    if (!keys.length) return;
    const table = h("table", { class: "table keys-table" },
      h("caption", { class: "sr-only", text: "Caller keys" }),
      h("thead", {}, h("tr", {},
        ["Id", "Source", "State", "Scopes", "Limits", "Today", "Last used"].map((t) => h("th", { scope: "col", text: t })), actionsHeader())));
    const tbody = h("tbody");
    for (const k of keys) {
      const changing = keysChanging.has(k.id);
      const actions = k.source === "runtime" && k.state === "active"
        ? h("div", { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-small", "data-action": "rotate", "data-id": k.id, "aria-label": `Rotate key ${k.id}`, text: "Rotate", disabled: changing }),
          h("button", { type: "button", class: "btn btn-small btn-danger", "data-action": "revoke", "data-id": k.id, "aria-label": `Revoke key ${k.id}`, text: "Revoke", disabled: changing }))
        : "";
      tbody.append(h("tr", { "data-key": k.id },
        h("td", { "data-label": "Id" }, h("code", { text: k.id })),
        h("td", { "data-label": "Source", text: k.source === "static" ? "GATEWAY_KEYS" : "runtime" }),
        h("td", { "data-label": "State" }, h("span", { class: `badge key-${k.state}`, text: k.state }), expiryText(k), rotationText(k)),
        h("td", { "data-label": "Scopes", text: (k.scopes || []).join(", ") }),
        h("td", { "data-label": "Limits", text: limitsText(k.limits) }),
        h("td", { "data-label": "Today", text: usageText(k.usage) }),
        h("td", { "data-label": "Last used", text: k.last_used_at ? when(k.last_used_at) : "never" }),
        h("td", {}, actions)));
    }
    table.append(tbody);
    box.append(table);
  }

  // Runtime keys with a rotation or revocation in flight. A key is changed
  // once at a time: a second rotation sent by a double click or a held Enter
  // would end the first one's grace at once (rotating again ends the earlier
  // grace), cutting off the callers still on the original key.
  const keysChanging = new Set();

  /** The row buttons of key `id` on or off (the list may have been re-rendered meanwhile). */
  function keyButtons(id, enabled) {
    for (const b of $("keys-list").querySelectorAll("button[data-id]")) {
      if (b.dataset.id === id) b.disabled = !enabled;
    }
  }

  async function keyAction(action, id) {
    if (keysChanging.has(id)) return;
    if (action === "revoke" && !window.confirm(`Revoke key ${id}? Every caller using it is refused within 8 seconds.`)) return;
    // The row's buttons wait for the answer (which blurs the one pressed).
    const refocus = keepFocus();
    keysChanging.add(id);
    keyButtons(id, false);
    let done = false;
    try {
      done = await changeKey(action, id);
    } finally {
      keysChanging.delete(id);
      keyButtons(id, true);
      // Done: the row's buttons are gone or re-rendered with the list, on to
      // what happened (a rotation's new key has the focus already). Not done:
      // back to the button pressed.
      refocus(done ? $("keys-status") : null);
    }
  }

  async function changeKey(action, id) {
    hideError("keys-error");
    hideNewKey();
    setStatus("keys-status", action === "revoke" ? `Revoking ${id}…` : `Rotating ${id}…`);
    const sentWith = state.key;
    try {
      if (action === "revoke") {
        await request(`/v1/keys/${encodeURIComponent(id)}`, { method: "DELETE" });
        if (state.key !== sentWith) return false;
        setStatus("keys-status", `Key ${id} revoked: refused everywhere within 8 seconds.`);
      } else {
        const r = await request(`/v1/keys/${encodeURIComponent(id)}/rotate`, { method: "POST" });
        if (state.key !== sentWith) {
          createdUnseen(id, "rotated");
          return false;
        }
        showNewKey(r.json, `New key for ${id}`, `The previous key keeps working until ${when(r.json.previous_key_expires_at)}.`);
        setStatus("keys-status", `Key ${id} rotated.`);
      }
      await loadKeys({ quiet: true });
      return true;
    } catch (e) {
      if (state.key !== sentWith) return false;
      setStatus("keys-status", changeUnsure(e)
        ? `Key ${id} may have been ${action === "revoke" ? "revoked" : "rotated"}: nothing confirmed it. Use "Show keys" to check.`
        : `Key ${id} was not changed.`);
      showError("keys-error", e);
      return false;
    }
  }

  // ------------------------------------------------------------ audit (admin)

  /** The audit form's filters as /v1/audit's query string. */
  function auditFilters() {
    const q = new URLSearchParams();
    const key = $("audit-key").value.trim();
    if (key) q.set("key", key);
    // The dates are this browser's days, as the entries' times are shown:
    // sent as the instants those days begin and end (the API would read a
    // date alone as a UTC day); `to` includes its day.
    const localDay = (date, plus) => {
      const [y, m, d] = date.split("-").map(Number);
      return new Date(y, m - 1, d + plus).toISOString();
    };
    if ($("audit-from").value) q.set("from", localDay($("audit-from").value, 0));
    if ($("audit-to").value) q.set("to", localDay($("audit-to").value, 1));
    return q.toString();
  }

  /** The trail for state.auditQuery (the filters last submitted), from `cursor` on. */
  async function loadAudit({ cursor = null } = {}) {
    const seq = ++state.auditSeq;
    // Older is disabled while the page loads, and on the last page; Newest
    // on the first (either blurs the one pressed): the focus goes back to
    // it, or to the other one.
    const started = document.activeElement;
    const refocus = keepFocus();
    const list = $("audit-list");
    hideError("audit-error");
    $("audit-status").classList.remove("bad");
    busy(list, true);
    setStatus("audit-status", "Loading the audit trail…");
    $("audit-older").disabled = true;
    try {
      const q = new URLSearchParams(state.auditQuery);
      q.set("limit", "20");
      if (cursor) q.set("cursor", cursor);
      const r = await request(`/v1/audit?${q}`, { method: "GET" });
      if (seq !== state.auditSeq) return;
      const entries = (r.json && r.json.entries) || [];
      state.auditNext = r.json && r.json.next_cursor;
      renderAudit(entries);
      setStatus("audit-status", entries.length
        ? `${entries.length} entr${entries.length === 1 ? "y" : "ies"}${cursor ? " (older)" : ", newest first"}.`
        : "No entries for these filters.");
      $("audit-pager").hidden = !state.auditNext && !cursor;
      $("audit-older").disabled = !state.auditNext;
      $("audit-newest").disabled = !cursor;
    } catch (e) {
      if (seq !== state.auditSeq) return;
      clear(list);
      setStatus("audit-status", "Could not load the audit trail.");
      showError("audit-error", e);
    } finally {
      if (seq === state.auditSeq) {
        busy(list, false);
        // Only a page turn gives the focus back (as the catalog's pager).
        if (started === $("audit-older") || started === $("audit-newest")) refocus(started, $("audit-older"), $("audit-newest"), $("audit-title"));
      }
    }
  }

  function renderAudit(entries) {
    const box = clear($("audit-list"));
    if (!entries.length) return;
    const table = h("table", { class: "table audit-table" },
      h("caption", { class: "sr-only", text: "Audit trail of placeOrder attempts" }),
      h("thead", {}, h("tr", {},
        [AUDIT_TIME, "Key", "poNumber", "Product", "Amount", "Outcome", "HTTP", "Request id"].map((t) => h("th", { scope: "col", text: t })))));
    const tbody = h("tbody");
    for (const e of entries) {
      tbody.append(h("tr", {},
        h("td", { "data-label": AUDIT_TIME, text: new Date(e.at).toLocaleString() }),
        h("td", { "data-label": "Key" }, h("code", { text: e.key })),
        h("td", { "data-label": "poNumber" }, h("code", { text: e.po_number })),
        h("td", { "data-label": "Product", text: e.product_id }),
        h("td", { "data-label": "Amount", text: `${amountText(e.amount)} · qty ${e.quantity}` }),
        h("td", { "data-label": "Outcome" }, h("span", { class: `badge outcome-${e.outcome}`, text: e.outcome.replaceAll("_", " ") })),
        h("td", { "data-label": "HTTP", text: String(e.status) }),
        h("td", { "data-label": "Request id" }, h("code", { class: "rid", text: e.request_id }))));
    }
    table.append(tbody);
    box.append(table);
  }

  // ------------------------------------------------------------ wiring

  /**
   * The sticky top bar's height into --topbar-h, which style.css gives to
   * scroll-padding-top: focus moved by keyboard, or a section scrolled to,
   * is shown below the bar, not under it, also while the bar is taller (it
   * wraps on narrow phones, and a stale balance's note adds lines).
   */
  function trackTopBar() {
    const bar = document.querySelector(".topbar");
    if (!bar || typeof ResizeObserver !== "function") return;
    new ResizeObserver(() => {
      document.documentElement.style.setProperty("--topbar-h", `${Math.ceil(bar.getBoundingClientRect().height)}px`);
    }).observe(bar);
  }

  function init() {
    trackTopBar();
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const k = $("key-input").value.trim();
      if (!k) {
        setStatus("key-status", "Paste a caller key first.");
        $("key-input").focus();
        return;
      }
      const problem = keyProblem(k);
      if (problem) {
        // Nothing of it kept or sent: the key set before, if any, stays.
        $("key-input").value = "";
        setStatus("key-status", `That key was not used: ${problem}. A caller key is 16–512 visible ASCII characters (no spaces, accents or invisible characters). ${state.key ? "The key set before stays in use." : "No key set."}`);
        $("key-status").classList.add("bad");
        $("key-input").focus();
        return;
      }
      setKey(k, "entered");
    });
    $("key-forget").addEventListener("click", forgetKey);
    $("dev-key").addEventListener("click", useDevKey);
    $("balance-refresh").addEventListener("click", () => loadBalance({ fresh: true }));

    // A search typed and then submitted is one search: the submit cancels
    // the search the typing scheduled (else the same getVouchers goes out
    // again 350 ms later, and the list flickers back to "Loading").
    let searchTimer;
    $("catalog-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearTimeout(searchTimer);
      state.page = 1;
      loadProducts();
    });
    for (const id of ["country", "currency", "delivery"]) {
      $(id).addEventListener("change", () => { state.page = 1; if (state.key) loadProducts(); });
    }
    $("q").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { state.page = 1; if (state.key) loadProducts(); }, 350);
    });
    $("prev-page").addEventListener("click", () => { if (state.page > 1) { state.page--; loadProducts(); } });
    $("next-page").addEventListener("click", () => { state.page++; loadProducts(); });
    $("products").addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-product]");
      if (!btn) return;
      const p = state.products.get(btn.dataset.product);
      if (p) selectProduct(p);
    });

    $("order-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      placeOrder();
    });
    // A changed order is a new order: it gets a new poNumber. An unchanged
    // resubmit keeps the old one, so it can never be ordered twice.
    $("order-form").addEventListener("input", () => { if (state.poSent) freshPo(); });

    // A From after To is said here and nothing is sent (plumgate would
    // only answer 400); the listing shown, if any, stays that of the range
    // last asked for. An empty field bounds nothing.
    function backwards(from, to, panel, what, fromField) {
      if (!from || !to || from <= to) return false;
      hideError(`${panel}-error`);
      setStatus(`${panel}-status`, `From (${from}) is after To (${to}): no ${what} were asked for. Choose a From on or before To.`);
      $(`${panel}-status`).classList.add("bad");
      $(fromField).focus();
      return true;
    }

    let historyDefaults = historyRange();
    [$("start-date").value, $("end-date").value] = historyDefaults;
    $("history-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      // A field still at its default moves up to today's default (a tab
      // kept open past midnight would miss today's orders); a date the
      // user chose stays, field by field.
      const [start, end] = historyRange();
      if ($("start-date").value === historyDefaults[0]) $("start-date").value = start;
      if ($("end-date").value === historyDefaults[1]) $("end-date").value = end;
      historyDefaults = [start, end];
      const [from, to] = [$("start-date").value, $("end-date").value];
      if (backwards(from, to, "history", "orders", "start-date")) return;
      state.historyQuery = { startDate: from, endDate: to };
      state.historyPage = 1;
      loadHistory();
    });
    $("history-prev").addEventListener("click", () => { if (state.historyPage > 1) { state.historyPage--; loadHistory(); } });
    $("history-next").addEventListener("click", () => { state.historyPage++; loadHistory(); });
    $("history").addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-po]");
      if (!btn) return;
      $("details-po").value = btn.dataset.po;
      loadDetails(btn.dataset.po, btn);
    });
    $("details-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const po = $("details-po").value.trim();
      if (po) {
        loadDetails(po);
        return;
      }
      // Refused here: no earlier lookup's error stays beside this answer,
      // and one still on its way is not shown when it comes.
      state.detailsSeq++;
      busy($("details"), false);
      hideError("details-error");
      setStatus("details-status", "Enter a poNumber: spaces alone name no order.");
    });

    $("token-check").addEventListener("click", () => token("GET"));
    $("token-refresh").addEventListener("click", () => token("POST"));

    $("key-create-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      createKey();
    });
    $("keys-load").addEventListener("click", () => loadKeys());
    $("new-key-copy").addEventListener("click", copyNewKey);
    $("new-key-done").addEventListener("click", () => {
      hideNewKey();
      $("keys-load").focus();
    });
    $("keys-list").addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-action]");
      if (btn) keyAction(btn.dataset.action, btn.dataset.id);
    });
    $("audit-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (backwards($("audit-from").value, $("audit-to").value, "audit", "entries", "audit-from")) return;
      state.auditQuery = auditFilters();
      loadAudit();
    });
    $("audit-older").addEventListener("click", () => { if (state.auditNext) loadAudit({ cursor: state.auditNext }); });
    $("audit-newest").addEventListener("click", () => loadAudit());

    try {
      const kept = JSON.parse(sessionStorage.getItem(UNCERTAIN_STORAGE) || "null");
      if (kept && kept.body && typeof kept.body.poNumber === "string") {
        state.uncertain = kept;
        guardLeave();
        renderUncertain();
        setStatus("order-status", `Order ${kept.body.poNumber} was sent from this tab and not confirmed before the page was reloaded.`);
      }
    } catch { /* storage off or unreadable: nothing kept */ }
    probeDevKey();
    let saved = null;
    try { saved = sessionStorage.getItem(KEY_STORAGE); } catch { /* ignore */ }
    if (saved) setKey(saved, "from this tab's session");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
