// @plumgate/client: a typed client for plumgate, the edge gateway for the
// Xoxoday Plum Reward API. No runtime dependencies; ESM; uses only fetch,
// AbortController, timers and crypto, so it runs on Node 18+, Cloudflare
// Workers (also through a Service Binding), Deno, Bun and browsers.

export { PlumgateClient, newPoNumber } from "./client.js";
export type {
  AttemptReport,
  CallOptions,
  OperationResult,
  OrderPlaced,
  OrderRefused,
  OrderUnknown,
  PlaceOrderOptions,
  PlaceOrderOutcome,
  PlumgateClientOptions,
  ReadOperation,
} from "./client.js";
export { PlumgateError, parseRetryAfter } from "./errors.js";
export type { ClientCode, ErrorSource, PlumgateCode } from "./errors.js";
export { judgeOrderAnswer, retryDelayMs } from "./policy.js";
export type { Backoff, OrderVerdict } from "./policy.js";
export type { Answer, Clock, FetchLike } from "./transport.js";
export type {
  AuditEntry,
  AuditPage,
  AuditQuery,
  CacheStatus,
  Health,
  Key,
  LimitsInput,
  Misconfigured,
  NewKeyAnswer,
  NewKeyRequest,
  OperationAnswer,
  OperationData,
  OperationInput,
  OperationName,
  Order,
  PlaceOrderInput,
  PoNumber,
  PoNumberOf,
  Product,
  Schemas,
  TokenStatus,
  components,
  operations,
  paths,
} from "./types.js";
