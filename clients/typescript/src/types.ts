// Names for the generated types (src/generated/openapi.ts, made at build time
// by `npm run generate`: openapi-typescript from crates/core/src/openapi.json,
// the document the worker serves as /openapi.json). Nothing here
// describes a shape by hand: every type is picked out of the generated ones,
// so a change to the document changes the client's types.

import type { components, operations, paths } from "./generated/openapi.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];

/** The Plum operations plumgate forwards: the `{operation}` of `POST /v1/ops/{operation}`. */
export type OperationName = Extract<keyof paths, `/v1/ops/${string}`> extends `/v1/ops/${infer N}` ? N & keyof operations : never;

/** The request body (Xoxoday's `variables.data`) of an operation. */
export type OperationInput<N extends OperationName> = operations[N] extends {
  requestBody: { content: { "application/json": infer B } };
}
  ? B
  : never;

/** The whole successful answer of an operation, as Xoxoday sends it. */
export type OperationAnswer<N extends OperationName> = operations[N] extends {
  responses: { 200: { content: { "application/json": infer B } } };
}
  ? B
  : never;

/** `T["data"]`, for a `T` that TypeScript cannot index directly. */
type DataOf<T> = T extends { data?: infer D } ? D : never;

/**
 * `data` in its wrapped form, `{<operation>: {status, data}}` (paymentHistory
 * may also come flat, the rows themselves under `data`: its payload type is
 * the same rows either way).
 */
type Wrapped<N extends OperationName> = Exclude<NonNullable<DataOf<OperationAnswer<N>>>, readonly unknown[]>;

/** The keys under `data` that carry an operation's answer (paymentHistory's is getPaymentReport). */
type AnswerKey<N extends OperationName> = keyof Wrapped<N> & string;

/** The payload of a successful answer: `data.<operation>.data`. */
export type OperationData<N extends OperationName> = NonNullable<DataOf<NonNullable<Wrapped<N>[AnswerKey<N>]>>>;

/**
 * An order's poNumber, as plumgate takes it: a string, or a whole number
 * below 2^53 (sent as a JSON number, and handed back as the one sent).
 * Xoxoday documents a string: a Xoxoday that refuses a number answers
 * 400 PLE10001, passed on.
 */
export type PoNumber = Schemas["PlaceOrderData"]["poNumber"];

/**
 * The placeOrder body with `poNumber` optional (the client makes one when
 * absent: a string). `P` is the poNumber's type, and placeOrder's outcome
 * carries the same one: `string` by default, `PlaceOrderInput<number>` for
 * numbered orders, `PlaceOrderInput<PoNumber>` for either. Unless `P` takes
 * any string, `poNumber` is required and may not be undefined (`{}`): the one
 * the client would make is a string, and the outcome would say otherwise.
 */
export type PlaceOrderInput<P extends PoNumber = string> = {
  [K in keyof Schemas["PlaceOrderData"] as K extends "poNumber" ? never : K]: Schemas["PlaceOrderData"][K];
} & { poNumber?: P } & (string extends P ? unknown : { poNumber: {} });

/**
 * The poNumber type an outcome carries for a given one: `string` for any
 * string (a literal `"PO-1"` too), `number` for any number, both for both.
 */
export type PoNumberOf<P extends PoNumber> = P extends string ? string : P extends number ? number : never;

export type Order = OperationData<"placeOrder">;
export type Product = Schemas["Product"];
export type TokenStatus = Schemas["TokenStatus"];
export type Health = Schemas["Health"];
export type Key = Schemas["Key"];
export type NewKeyRequest = Schemas["NewKeyRequest"];
export type NewKeyAnswer = Schemas["NewKeyAnswer"];
export type LimitsInput = Schemas["LimitsInput"];
export type AuditEntry = Schemas["AuditEntry"];
export type AuditPage = Schemas["AuditPage"];
export type Misconfigured = Schemas["Misconfigured"];
/** `x-plumgate-cache`: hit, miss, bypass, or stale. */
export type CacheStatus = components["headers"]["XPlumgateCache"];
/** The filters of `audit()` (the query of `GET /v1/audit`): RFC 3339 times (or dates), a key id, the previous page's cursor, a page size (1 to 200). */
export type AuditQuery = NonNullable<operations["getAudit"]["parameters"]["query"]>;
