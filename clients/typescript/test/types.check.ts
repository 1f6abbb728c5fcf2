// Type-level tests, compiled (never run) by `npm run build` against the built
// package, the way a user's code sees it. Each assignment fails to compile if
// the generated types lose their shape (a field becomes `unknown`, a required
// field optional, an operation disappears); each @ts-expect-error fails the
// build if the misuse below it ever starts compiling.

import {
  PlumgateClient,
  PlumgateError,
  type AttemptReport,
  type AuditQuery,
  type PlaceOrderInput,
  type PlaceOrderOptions,
  type PlaceOrderOutcome,
  type PoNumber,
  type Product,
} from "@plumgate/client";

declare const client: PlumgateClient;
declare const userId: string;
declare const maybeString: string | undefined;
declare const maybeNumber: number | undefined;

export async function catalog(): Promise<string[]> {
  const page = await client.getVouchers({ limit: 10, page: 1, filters: [{ key: "country", value: "usa" }] });
  const first: Product | undefined = page.data[0];
  const name: string | undefined = first?.name;
  const denominations: string | undefined = first?.valueDenominations;
  // Xoxoday sends these as a number or a numeric string; null for exchangeRate.
  const min: number | string | undefined = first?.minValue;
  const rate: number | string | null | undefined = first?.exchangeRate;
  void [min, rate, denominations];
  // x-plumgate-cache as the document's enum, not any string.
  const cache: "hit" | "miss" | "bypass" | "stale" | undefined = page.cache;
  // @ts-expect-error not a value plumgate sends
  void (page.cache === "hits");
  void cache;
  // Every getVouchers field is optional (Xoxoday's API reference requires none).
  await client.getVouchers({});
  // @ts-expect-error limit is a count, not a boolean
  await client.getVouchers({ limit: true, page: 1 });
  // @ts-expect-error a filter needs a key and a value
  await client.getVouchers({ limit: 10, page: 1, filters: [{ key: "deliveryType" }] });
  // @ts-expect-error a product name is a string, not a number
  const wrong: number | undefined = first?.name;
  void wrong;
  return name ? [name] : [];
}

export async function balance(): Promise<number> {
  const b = await client.getBalance();
  const currency: string = b.data.currency;
  void currency;
  return Number(b.data.value);
}

export async function history(): Promise<void> {
  const h = await client.getOrderHistory({ startDate: "2025-01-01", endDate: "2025-01-31" });
  const po: string | undefined = h.data[0]?.poNumber;
  const p = await client.paymentHistory({ startDate: "2025-01-01", endDate: "2025-01-31" });
  const amount: number | string | undefined = p.data[0]?.adjusted_amount;
  const filters = await client.getFilters({ filterGroupCode: "country" });
  const code: string | undefined = filters.data[0]?.filters[0]?.filterValueCode;
  const details = await client.getOrderDetails({ poNumber: "PO-1" });
  // @ts-expect-error an order is named by poNumber or orderId
  await client.getOrderDetails({ sendMailToReceiver: 0 });
  const status: string = details.data.orderStatus;
  void [po, amount, code, status];
}

export async function numberedOrder(): Promise<number> {
  // A poNumber may be a whole number (below 2^53), as the API takes it, and
  // the outcome hands back the one that was sent, typed as given.
  const outcome = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: 12345 });
  const n: number = outcome.poNumber;
  // @ts-expect-error a number poNumber comes back a number, not a string
  const text: string = outcome.poNumber;
  // @ts-expect-error a poNumber is a string or a number
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: true });
  // @ts-expect-error a number-typed order must carry its poNumber: the one the client makes is a string
  await client.placeOrder<number>({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com" });
  // @ts-expect-error the same for a number that may be absent (type it PoNumber: the outcome is then either)
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: maybeNumber });
  // @ts-expect-error an outcome without a type argument is a string poNumber's
  const plain: PlaceOrderOutcome = outcome;
  const typed: PlaceOrderOutcome<number> = outcome;
  // Told the call's type in onAttempt too.
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: 7 }, {
    onAttempt: (a) => {
      const po: number = a.poNumber;
      void po;
    },
  });
  void [text, plain, typed];
  return n;
}

export async function stringOrder(): Promise<string> {
  // A caller with string poNumbers (given, maybe absent, or made by the
  // client) reads them back as strings.
  const given = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: `signup-${userId}` });
  const s: string = given.poNumber;
  const maybe = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: maybeString });
  const m: string = maybe.poNumber;
  const input: PlaceOrderInput = { productId: 10100, quantity: 1, denomination: 25, email: "a@example.com" };
  const made = await client.placeOrder(input, {
    onAttempt: (a) => {
      const po: string = a.poNumber;
      void po;
    },
  });
  const plain: PlaceOrderOutcome = made;
  // Literal poNumbers are not kept as literal types: any string is a string.
  let again = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: "PO-1" });
  again = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: "PO-2" });
  void [m, plain, again];
  return s + made.poNumber;
}

export async function eitherOrder(ref: PoNumber): Promise<PoNumber> {
  // A poNumber typed as either comes back as either.
  const outcome = await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: ref });
  const po: string | number = outcome.poNumber;
  // @ts-expect-error it may be a number
  const text: string = outcome.poNumber;
  // @ts-expect-error or a string
  const n: number = outcome.poNumber;
  const wide: PlaceOrderOutcome<PoNumber> = outcome;
  // One options object (no type argument) fits string and number orders alike.
  const shared: PlaceOrderOptions = { onAttempt: (a: AttemptReport) => void a.poNumber };
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: 1 }, shared);
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com" }, shared);
  const forStrings: PlaceOrderOptions<string> = {};
  // @ts-expect-error options for string orders do not fit a numbered one
  await client.placeOrder({ productId: 10100, quantity: 1, denomination: 25, email: "a@example.com", poNumber: 1 }, forStrings);
  void [text, n, wide];
  return po;
}

export async function order(): Promise<string> {
  // poNumber is optional: the client makes one.
  const outcome: PlaceOrderOutcome = await client.placeOrder(
    { productId: 10100, quantity: 1, denomination: 25, email: "a@example.com" },
    { deadline: Date.now() + 20_000 },
  );
  switch (outcome.status) {
    case "placed": {
      const voucherCode: string | undefined = outcome.order.vouchers?.[0]?.voucherCode;
      const replayed: boolean = outcome.replayed;
      void [voucherCode, replayed];
      return outcome.poNumber;
    }
    case "refused": {
      const e: PlumgateError = outcome.error;
      const retryAfter: number | undefined = e.retryAfter;
      const requestId: string | undefined = e.requestId;
      // A refusal for a failed order: Xoxoday holds it, failed or cancelled.
      const reconciled: boolean = outcome.reconciled;
      const orderId: number | string | undefined = outcome.failedOrder?.orderId;
      const orderStatus: string | undefined = outcome.failedOrder?.orderStatus;
      // @ts-expect-error there is a failed order only when Xoxoday holds one
      void outcome.failedOrder.orderId;
      // @ts-expect-error a refusal has no order to use
      void outcome.order;
      void [retryAfter, requestId, outcome.retryable, reconciled, orderId, orderStatus];
      return e.code;
    }
    case "unknown":
      // @ts-expect-error an unknown outcome has no order
      void outcome.order;
      return outcome.reason;
  }
}

export async function admin(): Promise<void> {
  const t = await client.tokenStatus();
  const state: "uninitialized" | "fresh" | "stale" | "expired" | "reauth_required" | (string & {}) = t.state;
  const count: number = t.refresh_count;
  // The last alert, or null before the first.
  const alert = t.last_alert;
  const delivered: boolean | undefined = alert?.delivered;
  const event: "reauth_required" | "credentials_rejected" | "tokens_rejected" | "refresh_failing" | "balance_low" | undefined = alert?.event;
  // @ts-expect-error it may be null
  void t.last_alert.attempts;
  void [state, count, delivered, event];
  // @ts-expect-error placeOrder is not a read: it has its own method
  await client.operation("placeOrder", { productId: 1, quantity: 1, denomination: 1, poNumber: "x" });
  const made = await client.createKey({ id: "billing-fn", scopes: ["catalog", "orders:write"], limits: { order_amount_per_day: 500 } });
  const secret: string = made.key;
  const source: "runtime" | "static" = made.source;
  // @ts-expect-error a scope the API does not know
  await client.createKey({ id: "x", scopes: ["catalogue"] });
  const keys = await client.listKeys();
  const requests: number = keys[0].usage.requests;
  const page = await client.audit({ key: "billing-fn", limit: 10 });
  // The audit filters are the document's getAudit query.
  const query: AuditQuery = { from: "2026-11-25", cursor: "c" };
  await client.audit(query);
  // @ts-expect-error a page size is a number
  await client.audit({ limit: "10" });
  // @ts-expect-error not a filter of GET /v1/audit
  await client.audit({ poNumber: "PO-1" });
  const outcome: string = page.entries[0].outcome;
  const next: string | null = page.next_cursor;
  void [secret, source, requests, outcome, next];
}
