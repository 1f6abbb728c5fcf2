//! Injected faults for the refresh endpoint, the token check, the Plum API
//! and placeOrder. Owns the fault requests' parsing/validation and the
//! "next N calls" countdown. Faults are runtime-only (not persisted) and
//! cleared by `/faults/clear` and `/reset`; with none set the sandbox
//! behaves as Xoxoday documents.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::OPS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshFaultMode {
    /// `server_error` with a 5xx status.
    #[serde(rename = "5xx")]
    ServerError,
    /// Sleep `hang_ms`, then a 5xx.
    Hang,
    /// `invalid_grant` (the token is not touched).
    InvalidGrant,
    /// Rotate, then break the answer's body (the new pair is lost).
    RotateThenDrop,
    /// Rotate, then answer the new pair after `hang_ms`.
    RotateThenDelay,
    /// Rotate, then answer only the new refresh token (no access token).
    RotateRefreshOnly,
    /// Xoxoday's refresh rate limit in the chosen `shape`; starts a penalty
    /// of `penalty_seconds` during which every refresh gets that answer.
    RateLimited,
    /// HTTP 200 `{"success":0,"error_message_id":"auth.token_error"}`, the
    /// answer after a Super Admin password reset; every token dies.
    TokenError,
    /// `invalid_client` (HTTP 401), whatever the client id/secret.
    InvalidClient,
    /// `PIPE10015`, `PIPE10016` or `PIPE10017`, HTTP 401 by default: the
    /// docs name them for the API, and whether the refresh endpoint answers
    /// them so is UNCONFIRMED. The token is not touched.
    #[serde(untagged)]
    Account(AccountRefusal),
}

/// The Plum Pro API's refusals of the account (xoxoday-api.md §1.8: user
/// disabled, company disabled, IP not whitelisted), which the API's, the
/// refresh endpoint's and the token check's faults can each answer: one
/// home for their names and texts. A fault mode takes them as an untagged
/// variant, so `{"mode":"PIPE10017"}` reads the same on every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountRefusal {
    /// User is disabled.
    #[serde(rename = "PIPE10015")]
    Pipe10015,
    /// Company is disabled.
    #[serde(rename = "PIPE10016")]
    Pipe10016,
    /// Access restricted for this IP.
    #[serde(rename = "PIPE10017")]
    Pipe10017,
}

/// `every!(Enum: A, B, …)`: the array of those unit variants, and a compile
/// error while the enum has a variant the list lacks (the list is also an
/// exhaustive match). `; V` after them admits a variant `V(_)` that is
/// listed elsewhere: it is matched, not put in the array.
macro_rules! every {
    ($kind:ident: $($unit:ident),+ $(; $other:ident)?) => {{
        const _: fn($kind) = |v| match v {
            $($kind::$unit)|+ $(| $kind::$other(_))? => {}
        };
        [$($kind::$unit),+]
    }};
}

impl AccountRefusal {
    /// Every refusal (the fault kinds' `Account` modes).
    pub const ALL: [Self; 3] = every!(AccountRefusal: Pipe10015, Pipe10016, Pipe10017);

    /// The answer's body, in the Plum API's error shape (`status`: the
    /// fault's).
    pub fn body(self, status: u16) -> Value {
        match self {
            AccountRefusal::Pipe10015 => plum_error(status, "PIPE10015", "Plum Pro APIs: User is disabled"),
            AccountRefusal::Pipe10016 => plum_error(status, "PIPE10016", "Plum Pro APIs: Company is disabled"),
            AccountRefusal::Pipe10017 => plum_error(status, "PIPE10017", "Access restricted for this IP"),
        }
    }
}

/// The Plum API's error shape (`PlumError`), its `error` the same words.
fn plum_error(status: u16, id: &'static str, info: &str) -> Value {
    crate::plum::PlumError::new(status, id, info, info).body()
}

/// [`ApiFaultMode::EchoHeader`]'s answer, quoting `authorization`.
pub fn echo_header_body(status: u16, authorization: &str) -> Value {
    crate::plum::PlumError::new(status, "PLE10001", "Validation error", format!("invalid request with authorization {authorization}")).body()
}

/// The shapes Xoxoday's rate-limit answer is documented or seen in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitShape {
    /// HTTP 429 with `{"message":"auth.request_limit_exceeded"}` and `Retry-After`.
    Status429,
    /// `{"errors":[{"message","penaltySeconds"}]}`.
    ErrorsArray,
    /// `{"errors":{"message","penaltySeconds"}}`.
    ErrorsObject,
    /// `{"message":"auth.request_limit_exceeded"}`.
    Message,
    /// HTTP 200 `{"success":0,"message":"auth.request_limit_exceeded"}`.
    Success0,
}

impl RateLimitShape {
    /// The status this shape is answered with unless one is given.
    pub fn default_status(self) -> u16 {
        match self {
            RateLimitShape::Status429 => 429,
            RateLimitShape::Success0 => 200,
            _ => 400,
        }
    }

    /// The answer's body for a penalty of `secs`.
    pub fn body(self, secs: u64) -> Value {
        let msg = "auth.request_limit_exceeded";
        match self {
            RateLimitShape::Status429 | RateLimitShape::Message => json!({ "message": msg }),
            RateLimitShape::ErrorsArray => json!({ "errors": [{ "message": msg, "penaltySeconds": secs }] }),
            RateLimitShape::ErrorsObject => json!({ "errors": { "message": msg, "penaltySeconds": secs } }),
            RateLimitShape::Success0 => json!({ "success": 0, "message": msg }),
        }
    }
}

/// 401s the Plum API answers to a valid token, and a failure in its JSON
/// shape (a 5xx) for any operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiFaultMode {
    /// getBalance's documented failure (xoxoday-api.md §3.3), in the Plum
    /// API's error shape with the fault's status (502 unless set, 5xx).
    #[serde(rename = "PLE10023")]
    Ple10023,
    /// International orders not allowed.
    #[serde(rename = "PLE10019")]
    Ple10019,
    /// Invalid authorization header (although the token is valid).
    #[serde(rename = "PIPE10013")]
    Pipe10013,
    /// OAuth `invalid_token`.
    #[serde(rename = "invalid_token")]
    InvalidToken,
    /// A 401 whose body names no `errorId`: `{"message":"Unauthorized"}`.
    #[serde(rename = "no_error_id")]
    NoErrorId,
    /// Xoxoday's rate-limit answer, in the fault's `shape` with its
    /// `penalty_seconds`, given where the authorisation 401s are: before
    /// the operation is looked at, so a query the sandbox does not
    /// implement (a Xoxoday operation plumgate forwards unvalidated) meets
    /// it too. It starts no penalty of the sandbox's own.
    #[serde(rename = "rate_limited")]
    RateLimited,
    /// HTTP 200 with Xoxoday's failure flag, `data.<op>.status` 0, in place
    /// of the operation's answer (any operation: what Xoxoday would say
    /// with it is undocumented, as are the words).
    #[serde(rename = "status_zero")]
    StatusZero,
    /// A refusal in the Plum API's error shape (`PLE10001`, HTTP 400 unless
    /// set, 4xx) whose `error` quotes the request's `Authorization` header,
    /// token and all: undocumented, a reading of the shape (xoxoday-api.md
    /// §1.8) for what a caller must never be handed. Given where the
    /// authorisation 401s are.
    #[serde(rename = "echo_header")]
    EchoHeader,
    /// User or company disabled, IP not allowed.
    #[serde(untagged)]
    Account(AccountRefusal),
}

impl ApiFaultMode {
    /// Whether Xoxoday would answer it from inside the operation (getBalance
    /// failing, placeOrder refusing an international order, the failure flag): after the call
    /// has passed its rate limits and the operation's own checks. The others
    /// are its authorisation layer's 401s, given where a dead token's is,
    /// before the operation is looked at.
    pub fn in_operation(self) -> bool {
        matches!(self, ApiFaultMode::Ple10023 | ApiFaultMode::Ple10019 | ApiFaultMode::StatusZero)
    }

    /// The answer's body to a call of `op` (`status`: the fault's).
    pub fn body(self, status: u16, op: &str) -> Value {
        match self {
            ApiFaultMode::StatusZero => crate::plum::failure_flag(op, "Failed to process the request"),
            ApiFaultMode::Ple10023 => plum_error(status, "PLE10023", "Failed to get client's balance"),
            ApiFaultMode::Ple10019 => plum_error(status, "PLE10019", "International orders not allowed"),
            ApiFaultMode::Pipe10013 => crate::plum::unauthorized_body(),
            ApiFaultMode::Account(a) => a.body(status),
            ApiFaultMode::InvalidToken => crate::plum::oauth_error("invalid_token", "invalid/expired token"),
            ApiFaultMode::NoErrorId => json!({ "message": "Unauthorized" }),
            // The header is quoted by `Sandbox::api`, which has it.
            ApiFaultMode::EchoHeader => echo_header_body(status, ""),
            // Answered from the fault's shape (`Sandbox::api`); this is
            // the shape's default.
            ApiFaultMode::RateLimited => RateLimitShape::Message.body(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidateFaultMode {
    /// `server_error` with a 5xx status instead of a verdict.
    #[serde(rename = "5xx")]
    ServerError,
    /// The rate-limit answer in `shape`, starting a penalty of
    /// `penalty_seconds` on the token check (Xoxoday documents no limit for
    /// it; its refresh endpoint's and the API's answers are the readings).
    RateLimited,
    /// `PIPE10015`, `PIPE10016` or `PIPE10017`, HTTP 401 by default: no
    /// verdict on the token, a refusal of the account (whether the check
    /// answers them is UNCONFIRMED, as for the refresh endpoint).
    #[serde(untagged)]
    Account(AccountRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderFaultMode {
    /// The order is made, then the answer is an error (`error_id`).
    FailAfterCreate,
    /// The answer is an error (`error_id`); no order is made.
    FailBeforeCreate,
    /// The order is made; the answer comes after `hang_ms`.
    HangAfterCreate,
    /// Xoxoday's duplicate-poNumber answer (409 `PLE10043`), although no
    /// order has the poNumber here; no order is made.
    Duplicate,
    /// HTTP 200 with Xoxoday's failure flag, `data.placeOrder.status` 0
    /// ("0 for failure", xoxoday-api.md §2); no order is made.
    StatusZero,
}

/// The error an order fault answers with: `PLE10035` (failed to check the
/// order's status, HTTP 502 by default), one of the 422s that leave the
/// order's fate open, or `PLE10036` (delivery cancelled, a 404)
/// (xoxoday-api.md §3.4). `status` gives any of them another status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderErrorId {
    #[serde(rename = "PLE10035")]
    Ple10035,
    #[serde(rename = "PLE10007")]
    Ple10007,
    #[serde(rename = "PLE10010")]
    Ple10010,
    #[serde(rename = "PLE10011")]
    Ple10011,
    #[serde(rename = "PLE10012")]
    Ple10012,
    #[serde(rename = "PLE10036")]
    Ple10036,
}

impl OrderErrorId {
    /// `(errorId, errorInfo, error)` as Xoxoday's error table words them.
    pub fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            OrderErrorId::Ple10035 => (
                "PLE10035",
                "Failed to check order status",
                "Please call getOrderDetails with the same poNumber to know the order status",
            ),
            OrderErrorId::Ple10007 => ("PLE10007", "Failed to add order", "Failed to add order"),
            OrderErrorId::Ple10010 => ("PLE10010", "Failed to redeem points", "Failed to redeem points"),
            OrderErrorId::Ple10011 => ("PLE10011", "Failed to confirm order", "Failed to confirm order"),
            OrderErrorId::Ple10012 => ("PLE10012", "Failed to process order", "Failed to process order"),
            OrderErrorId::Ple10036 => ("PLE10036", "Delivery cancelled", "Delivery cancelled"),
        }
    }

    fn default_status(self) -> u16 {
        match self {
            OrderErrorId::Ple10035 => 502,
            OrderErrorId::Ple10036 => 404,
            _ => 422,
        }
    }
}

/// The `orderStatus` of an order a fault makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Complete,
    Failed,
    Cancelled,
    /// Cancelled as xoxoday-api.md documents it, by `cancelledQuantity`
    /// alone: `orderStatus` still `complete`, delivered.
    CancelledLines,
}

/// getOrderDetails faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetailsFaultMode {
    /// 404 `PLE10016` ("no such order") even when the order exists: a
    /// lookup that lags the order.
    #[serde(rename = "not_found")]
    NotFound,
    /// A 5xx with getOrderDetails' one documented server error, `PLE10034`
    /// "Failed to process resendVoucher" (xoxoday-api.md §3.5), whatever
    /// `sendMailToReceiver` says: the words are Xoxoday's, the order's
    /// status unknown either way.
    #[serde(rename = "5xx")]
    ServerError,
    /// 404 `PLE10021`: listed among getOrderDetails' errors with no words
    /// (xoxoday-api.md §3.5), so it says nothing about whether the order
    /// exists; the words here are the sandbox's.
    #[serde(rename = "PLE10021")]
    Ple10021,
    /// HTTP 200 with Xoxoday's failure flag, `data.getOrderDetails.status`
    /// 0 ("success is judged by `status === 1`", xoxoday-api.md §5), and no
    /// order: what it would say of the order is undocumented.
    #[serde(rename = "status_zero")]
    StatusZero,
}

/// A page from the layer in front of Xoxoday (a load balancer, a firewall,
/// a CDN) instead of Xoxoday's JSON answer (to a Plum API call, a refresh
/// or a token check: [`ProxyRoute`]): HTML, with the fault's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyFaultMode {
    /// The layer answers itself; the call never reaches Xoxoday.
    Before,
    /// The call reaches Xoxoday (a placeOrder makes its order), then the
    /// layer answers with its page instead of Xoxoday's answer.
    After,
}

/// Which of Xoxoday's routes a proxy fault stands in front of: the layer
/// covers the whole host, the token routes as much as the Plum API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProxyRoute {
    /// `POST /chef/v1/oauth/api` (the default).
    #[default]
    Api,
    /// `POST /chef/v1/oauth/token/user`: `before`, nothing is rotated.
    Refresh,
    /// `GET /chef/v1/oauth/token`: `before`, nothing is checked.
    Validate,
}

/// The page a proxy fault answers with.
pub const PROXY_PAGE: &str = "<html><head><title>Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>sandbox proxy fault</p></body></html>";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault<M> {
    pub mode: M,
    pub remaining: u32,
    pub status: u16,
    pub hang_ms: u64,
    /// Refresh `rate_limited` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<RateLimitShape>,
    /// Refresh `rate_limited` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub penalty_seconds: Option<u64>,
    /// Refresh `rate_limited` only: the penalty also kills the refresh
    /// token it was given (xoxoday-api.md §1.4, §3.9: an "unusual number
    /// of requests" to the refresh endpoint can invalidate the token).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub revoke: bool,
    /// API faults only: the operation it applies to (any when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Order faults only: the error answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<OrderErrorId>,
    /// Order faults only: the `orderStatus` of the order made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<OrderStatus>,
    /// getOrderDetails faults only: the poNumber it applies to (any when
    /// absent), so a test's fault is not taken by another order's check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub po_number: Option<String>,
    /// Proxy faults only: the route it stands in front of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<ProxyRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest<M> {
    mode: M,
    count: Option<u32>,
    status: Option<u16>,
    hang_ms: Option<u64>,
    shape: Option<RateLimitShape>,
    penalty_seconds: Option<u64>,
    revoke: Option<bool>,
    op: Option<String>,
    error_id: Option<OrderErrorId>,
    order_status: Option<OrderStatus>,
}

#[derive(Debug, Default)]
pub struct Faults {
    pub refresh: Option<Fault<RefreshFaultMode>>,
    pub validate: Option<Fault<ValidateFaultMode>>,
    pub api: Option<Fault<ApiFaultMode>>,
    pub order: Option<Fault<OrderFaultMode>>,
    pub details: Option<Fault<DetailsFaultMode>>,
    pub proxy: Option<Fault<ProxyFaultMode>>,
}

/// What each kind of fault accepts besides `mode`, `count` and `hang_ms`.
struct Rules {
    default_status: u16,
    status_range: (u16, u16),
    /// Accepts `shape` and `penalty_seconds`.
    rate_limit: bool,
    /// Accepts `op`.
    op: bool,
    /// Accepts `error_id` (an order fault that answers an error).
    error_id: bool,
    /// Accepts `order_status` (an order fault that makes an order).
    order_status: bool,
}

/// Every mode of a fault kind: what a refusal of an unknown mode lists
/// (`read_error`). Implemented by `modes!` only, whose list of a kind's modes
/// goes through `every!`: a mode added to the enum and not to its list does
/// not compile.
trait Modes: Sized + Serialize + for<'de> Deserialize<'de> + 'static {
    fn all() -> Vec<Self>;
}

/// `modes!(Kind: A, B, …)` lists a kind's unit modes; `; Account` after them
/// adds its `Account` variant's refusals, each of [`AccountRefusal::ALL`].
macro_rules! modes {
    ($kind:ident: $($mode:ident),+ $(; $account:ident)?) => {
        impl Modes for $kind {
            fn all() -> Vec<Self> {
                let all = every!($kind: $($mode),+ $(; $account)?).into_iter();
                $(let all = all.chain(AccountRefusal::ALL.into_iter().map($kind::$account));)?
                all.collect()
            }
        }
    };
}

modes!(RefreshFaultMode: ServerError, Hang, InvalidGrant, RotateThenDrop, RotateThenDelay, RotateRefreshOnly, RateLimited, TokenError, InvalidClient; Account);
modes!(ValidateFaultMode: ServerError, RateLimited; Account);
modes!(ApiFaultMode: Ple10023, Ple10019, Pipe10013, InvalidToken, NoErrorId, RateLimited, StatusZero, EchoHeader; Account);
modes!(OrderFaultMode: FailBeforeCreate, FailAfterCreate, HangAfterCreate, Duplicate, StatusZero);
modes!(DetailsFaultMode: NotFound, Ple10021, ServerError, StatusZero);
modes!(ProxyFaultMode: Before, After);

fn parse<M: Modes>(body: &[u8], rules: impl Fn(&M) -> Rules) -> Result<Option<Fault<M>>, String> {
    let req: FaultRequest<M> = serde_json::from_slice(body).map_err(|e| read_error::<M>(body, e))?;
    let r = rules(&req.mode);
    // The refresh endpoint's documented answer to "an unusual number of
    // requests" is the flat `{"message":"auth.request_limit_exceeded"}`
    // (xoxoday-api.md §1.4); the other shapes are the API's or seen.
    let shape = match (r.rate_limit, req.shape) {
        (true, s) => Some(s.unwrap_or(RateLimitShape::Message)),
        (false, Some(_)) => return Err("shape applies to mode rate_limited only".into()),
        (false, None) => None,
    };
    let penalty_seconds = match (r.rate_limit, req.penalty_seconds) {
        (true, Some(s)) if !(1..=86_400).contains(&s) => return Err("penalty_seconds must be between 1 and 86400".into()),
        (true, s) => Some(s.unwrap_or(60)),
        (false, Some(_)) => return Err("penalty_seconds applies to mode rate_limited only".into()),
        (false, None) => None,
    };
    if req.revoke.is_some() && !r.rate_limit {
        return Err("revoke applies to mode rate_limited only".into());
    }
    let op = match (r.op, req.op) {
        (true, Some(op)) if !OPS.contains(&op.as_str()) => return Err(format!("op: unknown operation {op:?}")),
        (true, op) => op,
        (false, Some(_)) => return Err("op applies to API faults only".into()),
        (false, None) => None,
    };
    // Refused where nothing would use them, as the other fields are: an
    // `error_id` changing the default status of a mode that never answers
    // it would be a fault that lies about itself.
    if req.error_id.is_some() && !r.error_id {
        return Err("error_id applies to order modes fail_before_create and fail_after_create only".into());
    }
    if req.order_status.is_some() && !r.order_status {
        return Err("order_status applies to order modes fail_after_create and hang_after_create only".into());
    }
    let (error_id, order_status) = (req.error_id, req.order_status);
    let default_status = shape.map_or(r.default_status, RateLimitShape::default_status);
    let default_status = error_id.map_or(default_status, OrderErrorId::default_status);
    let status = req.status.unwrap_or(default_status);
    if !(r.status_range.0..=r.status_range.1).contains(&status) {
        return Err(format!("status must be between {} and {}", r.status_range.0, r.status_range.1));
    }
    let hang_ms = req.hang_ms.unwrap_or(30_000);
    if hang_ms > 600_000 {
        return Err("hang_ms must be at most 600000".into());
    }
    let count = req.count.unwrap_or(1);
    let revoke = req.revoke.unwrap_or(false);
    Ok((count > 0).then_some(Fault { mode: req.mode, remaining: count, status, hang_ms, shape, penalty_seconds, revoke, op, error_id, order_status, po_number: None, route: None }))
}

/// A fault request serde refused, in words. A `mode` the route does not
/// take is named, with the modes it does: serde's words for it name
/// neither the mode nor the field where the modes include an untagged
/// variant (the account refusals), and list the modes only where they do
/// not. Any other mistake keeps serde's words.
fn read_error<M: Modes>(body: &[u8], e: serde_json::Error) -> String {
    let Some(mode) = serde_json::from_slice::<Value>(body).ok().and_then(|mut v| v.get_mut("mode").map(Value::take)) else {
        return e.to_string();
    };
    let names: Vec<Value> = M::all().iter().filter_map(|m| serde_json::to_value(m).ok()).collect();
    if names.contains(&mode) {
        return e.to_string();
    }
    let names: Vec<String> = names.iter().map(Value::to_string).collect();
    format!("mode: unknown mode {mode} on this route; its modes: {}", names.join(", "))
}

/// The next matching call takes one from the countdown. `applies` filters
/// which calls the fault is for.
fn take<M: Copy>(slot: &mut Option<Fault<M>>, applies: impl Fn(&Fault<M>) -> bool) -> Option<Fault<M>> {
    let f = slot.as_mut().filter(|f| applies(f))?;
    let out = f.clone();
    f.remaining -= 1;
    if f.remaining == 0 {
        *slot = None;
    }
    Some(out)
}

impl Faults {
    /// `{"mode","count"=1,"status","hang_ms"=30000,"shape","penalty_seconds"}`;
    /// count 0 clears.
    pub fn set_refresh(&mut self, body: &[u8]) -> Result<(), String> {
        self.refresh = parse(body, |m: &RefreshFaultMode| match m {
            RefreshFaultMode::ServerError | RefreshFaultMode::Hang => {
                Rules { default_status: 503, status_range: (500, 599), rate_limit: false, op: false, error_id: false, order_status: false }
            }
            RefreshFaultMode::RateLimited => {
                Rules { default_status: 400, status_range: (200, 599), rate_limit: true, op: false, error_id: false, order_status: false }
            }
            // The statuses of these answers are UNCONFIRMED (xoxoday-api.md
            // §1.4): each has the one seen or documented by default, and a
            // test may set any other.
            RefreshFaultMode::InvalidGrant => Rules { default_status: 400, status_range: (200, 599), rate_limit: false, op: false, error_id: false, order_status: false },
            RefreshFaultMode::InvalidClient | RefreshFaultMode::Account(_) => {
                Rules { default_status: 401, status_range: (200, 599), rate_limit: false, op: false, error_id: false, order_status: false }
            }
            _ => Rules { default_status: 200, status_range: (200, 599), rate_limit: false, op: false, error_id: false, order_status: false },
        })?;
        Ok(())
    }

    /// `{"mode":"5xx","count"=1,"status"=503}` or
    /// `{"mode":"rate_limited","shape","penalty_seconds","status"}`; count 0 clears.
    pub fn set_validate(&mut self, body: &[u8]) -> Result<(), String> {
        let fault = parse(body, |m: &ValidateFaultMode| match m {
            ValidateFaultMode::ServerError => Rules { default_status: 503, status_range: (500, 599), rate_limit: false, op: false, error_id: false, order_status: false },
            ValidateFaultMode::RateLimited => Rules { default_status: 400, status_range: (200, 599), rate_limit: true, op: false, error_id: false, order_status: false },
            // 401 unless set, any status: unconfirmed, as on the refresh route.
            ValidateFaultMode::Account(_) => Rules { default_status: 401, status_range: (200, 599), rate_limit: false, op: false, error_id: false, order_status: false },
        })?;
        if fault.as_ref().is_some_and(|f| f.revoke) {
            return Err("revoke applies to refresh faults only".into());
        }
        self.validate = fault;
        Ok(())
    }

    /// `{"mode","count"=1,"op"}`; count 0 clears.
    pub fn set_api(&mut self, body: &[u8]) -> Result<(), String> {
        let fault = parse(body, |m: &ApiFaultMode| match m {
            ApiFaultMode::Ple10023 => Rules { default_status: 502, status_range: (500, 599), rate_limit: false, op: true, error_id: false, order_status: false },
            // Always a 200: the flag is the failure.
            ApiFaultMode::StatusZero => Rules { default_status: 200, status_range: (200, 200), rate_limit: false, op: true, error_id: false, order_status: false },
            ApiFaultMode::RateLimited => Rules { default_status: 400, status_range: (200, 599), rate_limit: true, op: true, error_id: false, order_status: false },
            ApiFaultMode::EchoHeader => Rules { default_status: 400, status_range: (400, 499), rate_limit: false, op: true, error_id: false, order_status: false },
            _ => Rules { default_status: 401, status_range: (401, 401), rate_limit: false, op: true, error_id: false, order_status: false },
        })?;
        if fault.as_ref().is_some_and(|f| f.revoke) {
            return Err("revoke applies to refresh faults only".into());
        }
        self.api = fault;
        Ok(())
    }

    /// `{"mode","count"=1,"status"=502 (422 with a 422 error_id; 409 for
    /// duplicate),"hang_ms"=30000,"error_id"="PLE10035","order_status"="complete"}`;
    /// count 0 clears.
    pub fn set_order(&mut self, body: &[u8]) -> Result<(), String> {
        self.order = parse(body, |m: &OrderFaultMode| {
            // `error_id`: the modes that answer it; `order_status`: the
            // modes that make an order.
            let (error_id, order_status) = match m {
                OrderFaultMode::FailBeforeCreate => (true, false),
                OrderFaultMode::FailAfterCreate => (true, true),
                OrderFaultMode::HangAfterCreate => (false, true),
                OrderFaultMode::Duplicate | OrderFaultMode::StatusZero => (false, false),
            };
            match m {
                // Always a 200: the flag is the failure.
                OrderFaultMode::StatusZero => Rules { default_status: 200, status_range: (200, 200), rate_limit: false, op: false, error_id, order_status },
                _ => {
                    let default_status = if *m == OrderFaultMode::Duplicate { 409 } else { 502 };
                    Rules { default_status, status_range: (400, 599), rate_limit: false, op: false, error_id, order_status }
                }
            }
        })?;
        Ok(())
    }

    /// `{"mode":"not_found"|"PLE10021"|"5xx","count"=1,"status"=502}`; count
    /// 0 clears.
    /// Also accepts `po_number`: only that order's checks meet the fault.
    pub fn set_details(&mut self, body: &[u8]) -> Result<(), String> {
        let mut req: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let po_number = match req.remove("po_number") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err("po_number must be a string".into()),
        };
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        self.details = parse(&body, |m: &DetailsFaultMode| match m {
            DetailsFaultMode::NotFound | DetailsFaultMode::Ple10021 => {
                Rules { default_status: 404, status_range: (404, 404), rate_limit: false, op: false, error_id: false, order_status: false }
            }
            DetailsFaultMode::ServerError => {
                Rules { default_status: 502, status_range: (500, 599), rate_limit: false, op: false, error_id: false, order_status: false }
            }
            DetailsFaultMode::StatusZero => {
                Rules { default_status: 200, status_range: (200, 200), rate_limit: false, op: false, error_id: false, order_status: false }
            }
        })?
        .map(|f| Fault { po_number, ..f });
        Ok(())
    }

    pub fn take_refresh(&mut self) -> Option<Fault<RefreshFaultMode>> {
        take(&mut self.refresh, |_| true)
    }

    pub fn take_validate(&mut self) -> Option<Fault<ValidateFaultMode>> {
        take(&mut self.validate, |_| true)
    }

    /// `{"mode":"before"|"after","count"=1,"status"=502,"op","route"="api"}`;
    /// `op` only with the `api` route; count 0 clears.
    pub fn set_proxy(&mut self, body: &[u8]) -> Result<(), String> {
        let mut req: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let route: ProxyRoute = match req.remove("route") {
            None => ProxyRoute::Api,
            Some(v) => serde_json::from_value(v).map_err(|e| format!("route: {e}"))?,
        };
        if route != ProxyRoute::Api && req.contains_key("op") {
            return Err("op applies to the api route only".into());
        }
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        self.proxy = parse(&body, |_: &ProxyFaultMode| Rules { default_status: 502, status_range: (200, 599), rate_limit: false, op: true, error_id: false, order_status: false })?
            .map(|f| Fault { route: Some(route), ..f });
        Ok(())
    }

    /// For a call of `route` (and, on the api route, of operation `op`).
    pub fn take_proxy(&mut self, route: ProxyRoute, op: Option<&str>) -> Option<Fault<ProxyFaultMode>> {
        take(&mut self.proxy, |f| f.route.unwrap_or_default() == route && (f.op.is_none() || f.op.as_deref() == op))
    }

    /// The API fault for a call of `op` at that stage of it: `in_operation`
    /// faults once the operation runs, the others at authorisation
    /// ([`ApiFaultMode::in_operation`]).
    pub fn take_api(&mut self, op: Option<&str>, in_operation: bool) -> Option<Fault<ApiFaultMode>> {
        take(&mut self.api, |f| f.mode.in_operation() == in_operation && (f.op.is_none() || f.op.as_deref() == op))
    }

    pub fn take_order(&mut self) -> Option<Fault<OrderFaultMode>> {
        take(&mut self.order, |_| true)
    }

    pub fn take_details(&mut self, po_number: Option<&str>) -> Option<Fault<DetailsFaultMode>> {
        take(&mut self.details, |f| f.po_number.is_none() || f.po_number.as_deref() == po_number)
    }

    pub fn to_json(&self) -> Value {
        json!({ "refresh": self.refresh, "validate": self.validate, "api": self.api, "order": self.order, "details": self.details, "proxy": self.proxy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_count_down() {
        let mut f = Faults::default();
        f.set_refresh(br#"{"mode":"5xx","count":2,"status":502}"#).unwrap();
        assert_eq!(f.take_refresh().map(|x| (x.mode, x.status)), Some((RefreshFaultMode::ServerError, 502)));
        assert!(f.take_refresh().is_some());
        assert!(f.take_refresh().is_none());
        assert!(f.set_refresh(br#"{"mode":"explode"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"5xx","status":404}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"hang","extra":1}"#).is_err());
        f.set_order(br#"{"mode":"hang_after_create"}"#).unwrap();
        assert_eq!(f.order.as_ref().map(|o| (o.remaining, o.status, o.hang_ms)), Some((1, 502, 30_000)));
        assert_eq!(f.to_json()["order"]["mode"], "hang_after_create");
        f.set_order(br#"{"mode":"fail_after_create","count":0}"#).unwrap();
        assert!(f.order.is_none());
    }

    #[test]
    fn order_faults_take_an_error_and_a_status_for_the_order() {
        let mut f = Faults::default();
        f.set_order(br#"{"mode":"fail_after_create"}"#).unwrap();
        let o = f.order.clone().unwrap();
        assert_eq!((o.status, o.error_id, o.order_status), (502, None, None));
        f.set_order(br#"{"mode":"fail_after_create","error_id":"PLE10011","order_status":"failed"}"#).unwrap();
        let o = f.order.clone().unwrap();
        assert_eq!((o.status, o.error_id, o.order_status), (422, Some(OrderErrorId::Ple10011), Some(OrderStatus::Failed)));
        f.set_order(br#"{"mode":"fail_after_create","error_id":"PLE10036","order_status":"cancelled"}"#).unwrap();
        let o = f.order.clone().unwrap();
        assert_eq!((o.status, o.error_id, o.order_status), (404, Some(OrderErrorId::Ple10036), Some(OrderStatus::Cancelled)));
        f.set_order(br#"{"mode":"fail_after_create","error_id":"PLE10011","status":400}"#).unwrap();
        assert_eq!(f.order.clone().unwrap().status, 400);
        assert_eq!(f.to_json()["order"]["error_id"], "PLE10011");
        f.set_order(br#"{"mode":"fail_before_create","error_id":"PLE10010","status":409}"#).unwrap();
        assert_eq!(f.order.as_ref().unwrap().status, 409, "a status given wins");
        f.set_order(br#"{"mode":"duplicate"}"#).unwrap();
        assert_eq!(f.order.as_ref().unwrap().status, 409);
        assert!(f.set_order(br#"{"mode":"fail_after_create","error_id":"PLE99999"}"#).is_err());
        assert!(f.set_order(br#"{"mode":"fail_after_create","order_status":"lost"}"#).is_err());
        assert!(f.set_api(br#"{"mode":"PIPE10017","error_id":"PLE10011"}"#).is_err(), "order faults only");
        assert_eq!(OrderErrorId::Ple10012.words().0, "PLE10012");
        // getOrderDetails faults.
        f.set_details(br#"{"mode":"not_found","count":2}"#).unwrap();
        assert_eq!(f.take_details(None).map(|d| (d.mode, d.status)), Some((DetailsFaultMode::NotFound, 404)));
        assert!(f.take_details(Some("any")).is_some());
        assert!(f.take_details(None).is_none());
        f.set_details(br#"{"mode":"PLE10021"}"#).unwrap();
        assert_eq!(f.take_details(None).map(|d| (d.mode, d.status)), Some((DetailsFaultMode::Ple10021, 404)));
        f.set_details(br#"{"mode":"PLE10021","po_number":"po-1"}"#).unwrap();
        assert!(f.take_details(Some("po-2")).is_none(), "another order's check");
        assert!(f.take_details(None).is_none());
        assert_eq!(f.take_details(Some("po-1")).map(|d| d.po_number), Some(Some("po-1".into())));
        assert!(f.set_details(br#"{"mode":"PLE10021","po_number":7}"#).is_err());
        assert!(f.set_details(br#"{"mode":"PLE10021","status":500}"#).is_err());
        f.set_details(br#"{"mode":"5xx","status":503}"#).unwrap();
        assert_eq!(f.to_json()["details"]["mode"], "5xx");
        assert!(f.set_details(br#"{"mode":"not_found","status":500}"#).is_err());
        assert!(f.set_details(br#"{"mode":"lagging"}"#).is_err());
        f.set_details(br#"{"mode":"status_zero","po_number":"po-3"}"#).unwrap();
        assert_eq!(f.take_details(Some("po-3")).map(|d| (d.mode, d.status)), Some((DetailsFaultMode::StatusZero, 200)));
        assert!(f.set_details(br#"{"mode":"status_zero","status":404}"#).is_err(), "always a 200: the flag is the failure");
    }

    #[test]
    fn rate_limit_faults_take_a_shape_and_a_penalty() {
        let mut f = Faults::default();
        f.set_refresh(br#"{"mode":"rate_limited"}"#).unwrap();
        let x = f.refresh.clone().unwrap();
        // The refresh endpoint's documented body by default (§1.4).
        assert_eq!((x.shape, x.penalty_seconds, x.status, x.revoke), (Some(RateLimitShape::Message), Some(60), 400, false));
        f.set_refresh(br#"{"mode":"rate_limited","revoke":true}"#).unwrap();
        assert!(f.refresh.clone().unwrap().revoke);
        assert!(f.set_refresh(br#"{"mode":"invalid_grant","revoke":true}"#).is_err(), "revoke is rate_limited's only");
        for (shape, status) in [("status429", 429), ("success0", 200), ("errors_object", 400), ("message", 400)] {
            let body = format!(r#"{{"mode":"rate_limited","shape":"{shape}","penalty_seconds":5}}"#);
            let shape = match f.set_refresh(body.as_bytes()) {
                Ok(()) => f.refresh.clone().unwrap(),
                Err(e) => panic!("{shape}: {e}"),
            };
            assert_eq!((shape.status, shape.penalty_seconds), (status, Some(5)));
        }
        f.set_refresh(br#"{"mode":"rate_limited","shape":"message","status":200}"#).unwrap();
        assert_eq!(f.refresh.as_ref().unwrap().status, 200);
        assert!(f.set_refresh(br#"{"mode":"rate_limited","shape":"sideways"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"rate_limited","penalty_seconds":0}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"5xx","shape":"message"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"5xx","penalty_seconds":3}"#).is_err());
        assert_eq!(RateLimitShape::ErrorsObject.body(7), json!({"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":7}}));
        assert_eq!(RateLimitShape::Success0.body(7), json!({"success":0,"message":"auth.request_limit_exceeded"}));
        for mode in ["token_error", "invalid_client", "rotate_then_delay", "invalid_grant", "rotate_then_drop", "rotate_refresh_only"] {
            f.set_refresh(format!(r#"{{"mode":"{mode}"}}"#).as_bytes()).unwrap();
        }
        // The account refusals: 401 unless set, any status 200-599.
        for (mode, want) in [("PIPE10015", AccountRefusal::Pipe10015), ("PIPE10016", AccountRefusal::Pipe10016), ("PIPE10017", AccountRefusal::Pipe10017)] {
            f.set_refresh(format!(r#"{{"mode":"{mode}"}}"#).as_bytes()).unwrap();
            assert_eq!(f.refresh.as_ref().map(|x| (x.mode, x.status)), Some((RefreshFaultMode::Account(want), 401)));
            assert_eq!(f.to_json()["refresh"]["mode"], mode, "named as it was set");
            f.set_refresh(format!(r#"{{"mode":"{mode}","status":403}}"#).as_bytes()).unwrap();
            assert_eq!(f.refresh.as_ref().map(|x| x.status), Some(403));
            assert!(f.set_refresh(format!(r#"{{"mode":"{mode}","status":600}}"#).as_bytes()).is_err());
            assert!(f.set_refresh(format!(r#"{{"mode":"{mode}","shape":"message"}}"#).as_bytes()).is_err());
        }
    }

    /// The token check answers the account refusals too: 401 unless set,
    /// in the Plum API's shape, the same body as the API's fault.
    #[test]
    fn validate_faults_take_the_account_refusals() {
        let mut f = Faults::default();
        for (mode, want) in [("PIPE10015", AccountRefusal::Pipe10015), ("PIPE10016", AccountRefusal::Pipe10016), ("PIPE10017", AccountRefusal::Pipe10017)] {
            f.set_validate(format!(r#"{{"mode":"{mode}","count":2}}"#).as_bytes()).unwrap();
            assert_eq!(f.take_validate().map(|x| (x.mode, x.status)), Some((ValidateFaultMode::Account(want), 401)));
            assert!(f.take_validate().is_some());
            assert!(f.take_validate().is_none(), "its count");
            f.set_validate(format!(r#"{{"mode":"{mode}","status":403}}"#).as_bytes()).unwrap();
            assert_eq!(f.take_validate().map(|x| x.status), Some(403));
            assert!(f.set_validate(format!(r#"{{"mode":"{mode}","status":199}}"#).as_bytes()).is_err());
            assert!(f.set_validate(format!(r#"{{"mode":"{mode}","penalty_seconds":5}}"#).as_bytes()).is_err());
            assert_eq!(want.body(401)["errorId"], mode);
            assert_eq!(ApiFaultMode::Account(want).body(401, "getBalance"), want.body(401), "one body on every route");
        }
        assert_eq!(
            AccountRefusal::Pipe10017.body(403),
            json!({"code": 403, "errorId": "PIPE10017", "errorInfo": "Access restricted for this IP", "error": "Access restricted for this IP"})
        );
        // The order faults take none of them; PIPE10013 is the API's only.
        assert!(f.set_order(br#"{"mode":"PIPE10015"}"#).is_err());
        assert!(f.set_validate(br#"{"mode":"PIPE10013"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"PIPE10013"}"#).is_err());
    }

    /// A mode a route does not take is named in the refusal, with the field
    /// and the modes the route takes, on every route (serde alone names only
    /// the enum where the modes include the untagged account refusals).
    #[test]
    fn an_unknown_mode_is_named_with_the_routes_modes() {
        let mut f = Faults::default();
        let cases: [(Result<(), String>, &str); 6] = [
            (f.set_validate(br#"{"mode":"PIPE10018"}"#), r#""5xx", "rate_limited", "PIPE10015", "PIPE10016", "PIPE10017""#),
            (
                f.set_refresh(br#"{"mode":"explode"}"#),
                r#""5xx", "hang", "invalid_grant", "rotate_then_drop", "rotate_then_delay", "rotate_refresh_only", "rate_limited", "token_error", "invalid_client", "PIPE10015", "PIPE10016", "PIPE10017""#,
            ),
            (
                f.set_api(br#"{"mode":"5xx"}"#),
                r#""PLE10023", "PLE10019", "PIPE10013", "invalid_token", "no_error_id", "rate_limited", "status_zero", "echo_header", "PIPE10015", "PIPE10016", "PIPE10017""#,
            ),
            (f.set_order(br#"{"mode":"PLE10035"}"#), r#""fail_before_create", "fail_after_create", "hang_after_create", "duplicate", "status_zero""#),
            (f.set_details(br#"{"mode":"PLE10016","po_number":"po-1"}"#), r#""not_found", "PLE10021", "5xx", "status_zero""#),
            (f.set_proxy(br#"{"mode":"during","route":"refresh"}"#), r#""before", "after""#),
        ];
        for (e, modes) in cases {
            let e = e.unwrap_err();
            assert!(e.starts_with("mode: unknown mode \""), "{e}");
            assert!(e.ends_with(&format!(" on this route; its modes: {modes}")), "{e}");
        }
        assert!(f.set_validate(br#"{"mode":7}"#).unwrap_err().starts_with("mode: unknown mode 7 on this route; its modes: \"5xx\""));
        // Other mistakes keep serde's own words, with a known mode or none.
        let e = f.set_validate(br#"{"mode":"5xx","count":-1}"#).unwrap_err();
        assert!(e.contains("invalid value"), "{e}");
        let e = f.set_validate(br#"{"mode":"PIPE10015","count":-1}"#).unwrap_err();
        assert!(!e.contains("unknown mode"), "a known untagged mode: {e}");
        assert!(f.set_validate(br#"{"count":1}"#).unwrap_err().contains("missing field `mode`"));
        assert_eq!(f.to_json(), Faults::default().to_json(), "nothing set");
    }

    /// Each kind's `all()` lists distinct modes, each read back as itself, and
    /// the README's row for the kind names each of them.
    #[test]
    fn every_listed_mode_is_taken_and_documented() {
        fn check<M: Modes + PartialEq + std::fmt::Debug>(kind: &str) {
            let readme = include_str!("../README.md");
            let row = readme.lines().find(|l| l.starts_with(&format!("| `POST faults/{kind}`"))).unwrap_or_else(|| panic!("README row for {kind}"));
            let mut seen = Vec::new();
            for m in &M::all() {
                let name = serde_json::to_value(m).unwrap();
                assert!(!seen.contains(&name), "{kind}: {name} twice");
                assert_eq!(&serde_json::from_value::<M>(name.clone()).unwrap(), m, "{kind}: {name}");
                let name = name.as_str().unwrap().to_owned();
                assert!(row.contains(&format!("`{name}`")) || row.contains(&format!("\"{name}\"")), "{kind}: README names {name}");
                seen.push(serde_json::Value::String(name));
            }
        }
        check::<RefreshFaultMode>("refresh");
        check::<ValidateFaultMode>("validate");
        check::<ApiFaultMode>("api");
        check::<OrderFaultMode>("order");
        check::<DetailsFaultMode>("details");
        check::<ProxyFaultMode>("proxy");
    }

    #[test]
    fn api_faults_count_only_their_operation() {
        let mut f = Faults::default();
        f.set_api(br#"{"mode":"PLE10019","count":2,"op":"placeOrder"}"#).unwrap();
        assert!(f.take_api(Some("getBalance"), true).is_none(), "another operation");
        assert!(f.take_api(Some("placeOrder"), false).is_none(), "not at authorisation");
        assert_eq!(f.take_api(Some("placeOrder"), true).map(|x| x.mode), Some(ApiFaultMode::Ple10019));
        assert!(f.take_api(Some("placeOrder"), true).is_some());
        assert!(f.take_api(Some("placeOrder"), true).is_none());
        f.set_api(br#"{"mode":"PIPE10017"}"#).unwrap();
        assert!(f.take_api(Some("getBalance"), true).is_none(), "an authorisation 401");
        assert!(f.take_api(Some("getBalance"), false).is_some(), "no op: any operation");
        assert!(f.set_api(br#"{"mode":"PIPE10017","op":"getBalanse"}"#).is_err());
        assert!(f.set_api(br#"{"mode":"PIPE10017","status":500}"#).is_err());
        assert!(f.set_api(br#"{"mode":"PLE99999"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"5xx","op":"getBalance"}"#).is_err());
        for (mode, id) in [("PIPE10015", "PIPE10015"), ("PIPE10016", "PIPE10016"), ("PIPE10013", "PIPE10013")] {
            f.set_api(format!(r#"{{"mode":"{mode}"}}"#).as_bytes()).unwrap();
            assert_eq!(f.take_api(None, false).unwrap().mode.body(401, "getBalance")["errorId"], id);
        }
        assert_eq!(ApiFaultMode::InvalidToken.body(401, "getBalance")["error"], "invalid_token");
        assert!(ApiFaultMode::NoErrorId.body(401, "getBalance").get("errorId").is_none());
        // getBalance's failure: a 5xx of the fault's status, in the Plum shape.
        f.set_api(br#"{"mode":"PLE10023","op":"getBalance"}"#).unwrap();
        let x = f.take_api(Some("getBalance"), true).unwrap();
        assert_eq!((x.status, x.mode.body(x.status, "getBalance")), (502, json!({"code": 502, "errorId": "PLE10023", "errorInfo": "Failed to get client's balance", "error": "Failed to get client's balance"})));
        assert!(f.set_api(br#"{"mode":"PLE10023","status":401}"#).is_err(), "a 5xx only");
        // Xoxoday's failure flag in place of an operation's answer: a 200 only.
        f.set_api(br#"{"mode":"status_zero","op":"getVouchers"}"#).unwrap();
        assert!(f.take_api(Some("getVouchers"), false).is_none(), "inside the operation, not at authorisation");
        let x = f.take_api(Some("getVouchers"), true).unwrap();
        assert_eq!((x.status, x.mode.body(x.status, "getVouchers")), (200, json!({"data": {"getVouchers": {"status": 0, "message": "Failed to process the request"}}})));
        assert!(f.set_api(br#"{"mode":"status_zero","status":500}"#).is_err());
        f.set_api(br#"{"mode":"PLE10023","status":500}"#).unwrap();
        f.set_validate(br#"{"mode":"5xx","count":1}"#).unwrap();
        assert_eq!(f.take_validate().map(|v| v.status), Some(503));
        assert!(f.take_validate().is_none());
    }

    /// `hang_ms` is at most 600000, that value included; a fault over it
    /// is refused and leaves the one in place.
    #[test]
    fn hang_ms_is_at_most_ten_minutes() {
        let mut f = Faults::default();
        f.set_refresh(br#"{"mode":"hang","hang_ms":600000}"#).unwrap();
        assert_eq!(f.refresh.as_ref().map(|x| x.hang_ms), Some(600_000));
        assert!(f.set_refresh(br#"{"mode":"hang","hang_ms":600001,"count":3}"#).is_err());
        assert_eq!(f.refresh.as_ref().map(|x| (x.hang_ms, x.remaining)), Some((600_000, 1)));
        f.set_order(br#"{"mode":"hang_after_create","hang_ms":600000}"#).unwrap();
        assert!(f.set_order(br#"{"mode":"hang_after_create","hang_ms":600001}"#).is_err());
        assert_eq!(f.order.as_ref().map(|x| x.hang_ms), Some(600_000));
    }
}
