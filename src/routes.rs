//! The router and the per-request pipeline.
//!
//! Every request gets a request id (sent back as `x-request-id`), exactly one
//! JSON log line (contract §7) and, when plumgate itself refuses or fails, the
//! error body of contract §3 — in Xoxoday's error shape under `/chef/`
//! (`ErrorStyle`), where unchanged Xoxoday clients call. No error path echoes
//! a header, a body or a value the caller sent.
//!
//! The log line is this module's alone: [`handle`] starts it, each route
//! names itself in it, and what the layers below saw (cache, token source,
//! upstream status, a note, an error they answered themselves) comes back
//! from them as a `plumgate_core::logline::Trace` that is recorded into it.
//! Responses are built by `respond`.
//!
//! Pipeline of an operation call (`POST /v1/ops/{op}` and the drop-in
//! `POST /chef/v1/oauth/api`):
//! 1. configuration valid, else `503 misconfigured`;
//! 2. method and route, else `405` / `404`;
//! 3. caller key, else `401` (with `WWW-Authenticate: Bearer`);
//! 4. body at most 64 KiB and JSON, else `413` / `400 invalid_json`;
//! 5. scope for the operation (which may depend on the body), else `403`;
//! 6. validation and the data to send (`ops::prepare_call`), else `400
//!    invalid_request` naming the field;
//! 7. forward (`gateway`); a getBalance answer's balance goes to the
//!    balance alert check after the response (`tokens::balance_seen`, in
//!    `wait_until`: no round trip on the caller's path).
//!
//! A `plumProAPI.*` query the drop-in route does not know skips 6: with the
//! `*` scope it is forwarded as sent (`gateway::forward_unvalidated`).
//!
//! Step 3 is `callers`: `GATEWAY_KEYS`, then the isolate's copy of the
//! runtime keys; the key's `requests_per_minute` is checked right after it
//! (`429 quota_exceeded`).
//!
//! The drop-in token endpoints (`POST /chef/v1/oauth/token/{token_type}`,
//! `GET /chef/v1/oauth/token`) answer Xoxoday's token shapes for a gateway
//! key (`plumgate_core::dropin`); they never reach Xoxoday.
//!
//! The admin routes of runtime keys and the audit trail (`/v1/keys...`,
//! `/v1/audit`) are `keys`'.

use crate::callers;
use crate::gateway::{self, CacheMode};
use crate::keys;
use crate::respond::{
    asset, empty, error_response, json_response, json_text, oauth_error_response, set_headers,
};
use crate::runtime::clock::{now_ms, request_id};
use crate::runtime::http::{BodyError, Incoming, Outgoing};
use crate::settings;
use crate::tokens;
use plumgate_core::auth::{parse_bearer, valid_id, Caller};
use plumgate_core::config::Config;
use plumgate_core::cors;
use plumgate_core::dropin::{self, OAuthError};
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::jsontext::request_json;
use plumgate_core::ledger::before_sending;
use plumgate_core::logline::RequestLog;
use plumgate_core::ops::{self, EnvelopeError, Operation, ParsedEnvelope};
use plumgate_core::route;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};
use worker::{web_sys, Context, Env, Method};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The build's version, reported by `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Handle one request. Never fails: every outcome is a response. `ctx`
/// takes the work left for after the answer (usage reports, the audit
/// trail).
pub async fn handle(req: Incoming, env: Env, ctx: Context) -> Outgoing {
    let mut log = RequestLog {
        start_ms: now_ms(),
        request_id: request_id(),
        method: log_method(&req.method),
        route: "unknown",
        ..Default::default()
    };
    let origin = req.header("origin").map(|o| o.into_owned());
    let style = ErrorStyle::for_path(&req.path);
    let result = dispatch(req, &env, &ctx, &mut log).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.code.as_str());
            error_response(&e, style, &log.request_id)
        }
    };
    // What the edge cache did (contract §2), on every answer of a cacheable
    // operation, its own errors included: the one place this header is set.
    if let Some(state) = log.cache {
        resp.set("x-plumgate-cache", state);
    }
    log.status = resp.status_code();
    resp.set("x-request-id", log.request_id.clone());
    // The demo page's files need no CORS; an error does, so that a browser
    // caller with a wrong base path reads the 404 instead of a blocked answer.
    if log.route != "static" || log.error.is_some() {
        if let Ok(cfg) = settings::load(&env).as_ref() {
            set_headers(&mut resp, cors::response_headers(origin.as_deref(), &cfg.allowed_origins));
        }
    }
    web_sys::console::log_1(&log.line(now_ms()).into());
    resp
}

async fn dispatch(req: Incoming, env: &Env, ctx: &Context, log: &mut RequestLog) -> Result<Outgoing, ApiError> {
    let path = route::routed_path(&req.path).to_owned();
    // `None` for a method `worker::Method` cannot represent (it would call
    // it GET): such a request gets 405 everywhere.
    let method = method_of(&req);

    if path == "/healthz" {
        log.route = "/healthz";
        // HEAD too: uptime monitors often ask with it (the runtime sends
        // no body to a HEAD request).
        require_read(&method)?;
        return Ok(health(env));
    }
    // Every route but /healthz answers 503 while misconfigured (contract
    // §1), the demo page and /openapi.json included.
    let api_route = path.starts_with("/v1/") || path == "/v1" || path.starts_with("/chef/") || path == "/chef";
    if !api_route {
        log.route = if path == "/openapi.json" { "/openapi.json" } else { "static" };
    }
    // An operation's route is named before the configuration is read too:
    // a misconfigured call is logged with its route and operation, and a
    // cacheable one's refusals, this 503 included, say the cache was not
    // used (contract §2, §7).
    let ops_call = path.strip_prefix("/v1/ops/").map(Operation::from_name);
    if let Some(op) = ops_call {
        log.route = "/v1/ops/{operation}";
        if let Some(op) = op {
            log.operation = Some(op.name().into());
            note_cacheable(op, log);
        }
    }
    let settings = settings::load(env);
    let cfg = match settings.as_ref() {
        Ok(c) => c,
        Err(problems) => return Err(ApiError::misconfigured(problems)),
    };

    // A browser asks before sending a call with a key, whatever the path:
    // answered here, before any path's method check, so that a caller with
    // a wrong base path reads the 404 its call then gets rather than a
    // blocked preflight. Nothing was asked of the cache.
    if method == Some(Method::Options) {
        log.route = "preflight";
        log.cache = None;
        let origin = req.header("origin");
        let mut resp = empty(204);
        set_headers(&mut resp, cors::preflight_headers(origin.as_deref(), &cfg.allowed_origins).unwrap_or_default());
        return Ok(resp);
    }

    if path == "/openapi.json" {
        require_read(&method)?;
        // A static asset (written by scripts/build.sh from
        // crates/core/src/openapi.json), so the document costs the wasm
        // nothing.
        return static_asset(req, env, cfg).await;
    }

    if !api_route {
        // The demo page is read-only: any other method gets plumgate's own
        // 405 body rather than the asset server's empty one.
        require_read(&method)?;
        return static_asset(req, env, cfg).await;
    }

    if let Some(op) = ops_call {
        // Named above: refused from here on (the method, the key, its
        // limit, the body), the answer still says the cache was not used.
        require_method(&method, Method::Post)?;
        let op = op.ok_or_else(ApiError::unknown_operation)?;
        let caller = authenticate(&req, env, ctx, cfg, log).await.map_err(|e| before_sending(op, e))?;
        let mode = cache_mode(&req, &caller);
        let data = read_json(req).await?;
        return call_operation(env, ctx, cfg, &caller, op, data, mode, ErrorStyle::Plumgate, log).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/keys/") {
        let (id, rotate) = match rest.strip_suffix("/rotate") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let id = id.to_owned();
        if rotate {
            log.route = "/v1/keys/{id}/rotate";
            require_method(&method, Method::Post)?;
        } else {
            log.route = "/v1/keys/{id}";
            if !matches!(method, Some(Method::Patch | Method::Delete)) {
                return Err(ApiError::method_not_allowed("PATCH, DELETE"));
            }
        }
        let caller = authenticate(&req, env, ctx, cfg, log).await?;
        require_scope(&caller, "admin")?;
        if !valid_id(&id) {
            return Err(plumgate_core::keys::no_such_key());
        }
        log.target = Some(id.clone());
        return match method {
            _ if rotate => {
                let body = read_body(req).await?;
                let body = if body.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    Some(plumgate_core::keys::admin_body(&body)?)
                };
                keys::rotate(env, cfg, &id, body.as_ref()).await
            }
            Some(Method::Delete) => keys::revoke(env, cfg, &id).await,
            _ => keys::set_limits(env, cfg, &id, &plumgate_core::keys::admin_body(&read_body(req).await?)?).await,
        };
    }
    if let Some(token_type) = path.strip_prefix("/chef/v1/oauth/token/") {
        log.route = "/chef/v1/oauth/token/{token_type}";
        if !dropin::TOKEN_TYPES.contains(&token_type) {
            return Err(ApiError::not_found());
        }
        require_method(&method, Method::Post)?;
        return Ok(refresh_token(req, env, cfg, log).await);
    }
    match path.as_str() {
        "/chef/v1/oauth/api" => {
            log.route = "/chef/v1/oauth/api";
            require_method(&method, Method::Post)?;
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            let mode = cache_mode(&req, &caller);
            let envelope = read_json(req).await?;
            let parsed = ops::parse_envelope(&envelope).map_err(|e| match e {
                EnvelopeError::UnknownOperation(_) => ApiError::unknown_query(),
                EnvelopeError::Invalid(v) => ApiError::invalid_request(v.message),
            })?;
            match parsed {
                ParsedEnvelope::Known(op, data) => {
                    log.operation = Some(op.name().into());
                    call_operation(env, ctx, cfg, &caller, op, data, mode, ErrorStyle::Xoxoday, log).await
                }
                ParsedEnvelope::Unvalidated(name) => {
                    log.operation = Some(name.into());
                    log.note = Some("unvalidated");
                    ops::may_forward_unvalidated(&caller)?;
                    let (result, trace) = gateway::forward_unvalidated(env, cfg, &envelope).await;
                    log.record(trace);
                    result
                }
            }
        }
        "/chef/v1/oauth/token" => {
            log.route = "/chef/v1/oauth/token";
            require_method(&method, Method::Get)?;
            Ok(validate_token(&req, env, cfg, log).await)
        }
        "/v1/token" => {
            log.route = "/v1/token";
            require_read(&method)?;
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            require_scope(&caller, "admin")?;
            Ok(json_response(200, &tokens::status(env, cfg).await?))
        }
        "/v1/token/refresh" => {
            log.route = "/v1/token/refresh";
            require_method(&method, Method::Post)?;
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            require_scope(&caller, "admin")?;
            Ok(json_response(200, &tokens::force_refresh(env, cfg).await?))
        }
        "/v1/token/recover" => {
            log.route = "/v1/token/recover";
            require_method(&method, Method::Post)?;
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            require_scope(&caller, "admin")?;
            Ok(json_response(200, &tokens::recover(env, cfg).await?))
        }
        "/v1/keys" => {
            log.route = "/v1/keys";
            if !matches!(method, Some(Method::Get | Method::Head | Method::Post)) {
                return Err(ApiError::method_not_allowed("GET, HEAD, POST"));
            }
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            require_scope(&caller, "admin")?;
            if method != Some(Method::Post) {
                keys::list(env, cfg).await
            } else {
                let body = plumgate_core::keys::admin_body(&read_body(req).await?)?;
                log.target = body.get("id").and_then(Value::as_str).filter(|id| valid_id(id)).map(str::to_owned);
                keys::create(env, cfg, &body).await
            }
        }
        "/v1/audit" => {
            log.route = "/v1/audit";
            require_read(&method)?;
            let caller = authenticate(&req, env, ctx, cfg, log).await?;
            require_scope(&caller, "admin")?;
            keys::audit_page(env, &req.query()).await
        }
        "/v1/dev/caller-key" => {
            log.route = "/v1/dev/caller-key";
            require_read(&method)?;
            dev_caller_key(cfg, req.header("host").as_deref())
        }
        _ => {
            log.route = "not_found";
            Err(ApiError::not_found())
        }
    }
}

/// A cacheable operation's answer carries `x-plumgate-cache` (contract
/// §2): `bypass` until the cache says otherwise.
fn note_cacheable(op: Operation, log: &mut RequestLog) {
    if op.cache_class().is_some() {
        log.cache = Some("bypass");
    }
}

#[allow(clippy::too_many_arguments)]
async fn call_operation(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    caller: &Caller,
    op: Operation,
    data: Value,
    mode: CacheMode,
    style: ErrorStyle,
    log: &mut RequestLog,
) -> Result<Outgoing, ApiError> {
    // A cacheable operation refused before the cache is asked (its scope,
    // its input) still says so (contract §2); `forward` says what it did.
    note_cacheable(op, log);
    require_scope(caller, op.required_scope(&data))?;
    let prepared = ops::prepare_call(op, data).map_err(|e| ApiError::invalid_request(e.message))?;
    let (result, trace) = gateway::forward(env, ctx, cfg, caller, op, prepared, mode, style, &log.request_id).await;
    if let Some(balance) = trace.balance {
        tokens::balance_seen(env, ctx, cfg, balance);
    }
    log.record(trace);
    result
}

/// `POST /chef/v1/oauth/token/{token_type}`: Xoxoday's refresh, answered
/// with the gateway key presented as the refresh token (steps: read the
/// body, find the key, check it, answer). Never calls Xoxoday.
async fn refresh_token(req: Incoming, env: &Env, cfg: &Config, log: &mut RequestLog) -> Outgoing {
    let content_type = req.header("content-type").map(|t| t.into_owned());
    let key = match read_body(req).await {
        Err(e) => return registry_error(e, log),
        Ok(body) => match dropin::refresh_key(content_type.as_deref(), &body) {
            Ok(key) => key,
            Err(e) => return oauth_error(e, log),
        },
    };
    match callers::identify(env, cfg, &key).await {
        Ok(caller) => {
            log.caller = Some(caller.id);
            json_text(200, dropin::refresh_answer(&key, caller.until_ms, now_ms()))
        }
        Err(e) if e.status == 401 => oauth_error(OAuthError::INVALID_GRANT, log),
        Err(e) => registry_error(e, log),
    }
}

/// `GET /chef/v1/oauth/token`: Xoxoday's token validation, for the gateway
/// key in the `Authorization` header. Never calls Xoxoday.
async fn validate_token(req: &Incoming, env: &Env, cfg: &Config, log: &mut RequestLog) -> Outgoing {
    let header = req.header("authorization");
    let key = match dropin::bearer_key(header.as_deref()) {
        Ok(key) => key,
        Err(e) => return oauth_error(e, log),
    };
    match callers::identify(env, cfg, &key).await {
        Ok(caller) => {
            log.caller = Some(caller.id);
            json_text(200, dropin::validation_answer(&key, caller.until_ms, now_ms()))
        }
        Err(e) if e.status == 401 => oauth_error(OAuthError::INVALID_TOKEN, log),
        Err(e) => registry_error(e, log),
    }
}

/// A key that could not be looked up (the registry did not answer), in
/// Xoxoday's error shape.
fn registry_error(e: ApiError, log: &mut RequestLog) -> Outgoing {
    log.error = Some(e.code.as_str());
    error_response(&e, ErrorStyle::Xoxoday, &log.request_id)
}

/// Xoxoday's OAuth error answer, logged with its error code.
fn oauth_error(e: OAuthError, log: &mut RequestLog) -> Outgoing {
    log.error = Some(e.error);
    oauth_error_response(&e, &log.request_id)
}

/// `Cache-Control: no-cache` from an admin-scoped caller bypasses the edge cache.
fn cache_mode(req: &Incoming, caller: &Caller) -> CacheMode {
    let no_cache = req
        .header("cache-control")
        .is_some_and(|v| plumgate_core::text::split(&v.to_ascii_lowercase(), ",").any(|d| d.trim() == "no-cache"));
    if no_cache && caller.has_scope("admin") {
        CacheMode::Bypass
    } else {
        CacheMode::Normal
    }
}

/// Local development only: the demo page can fetch the dev caller key with
/// one click. Answers 404 unless `DEV_CALLER_KEY` is set AND plumgate talks to
/// a loopback Xoxoday (the bundled sandbox), so a deployment never serves it,
/// AND the request is for a loopback `host` (`Config::dev_caller_key`).
fn dev_caller_key(cfg: &Config, host: Option<&str>) -> Result<Outgoing, ApiError> {
    match cfg.dev_caller_key(host) {
        Some(k) => Ok(json_response(200, &json!({"key": k.expose_secret(), "note": "local development key (sandbox only)"}))),
        None => Err(ApiError::not_found()),
    }
}

/// The request's method, or `None` when it is not one `worker::Method`
/// represents exactly (it maps unknown methods such as `QUERY` to GET).
fn method_of(req: &Incoming) -> Option<Method> {
    Method::all().into_iter().find(|m| m.as_ref() == req.method)
}

/// The method for the log line: the real one, cut short and reduced to
/// token characters so a hostile method can't flood or forge a line.
fn log_method(method: &str) -> String {
    method
        .chars()
        .take(16)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '?' })
        .collect()
}

/// GET or HEAD (the runtime sends a HEAD's answer without its body, as
/// HTTP wants wherever GET is answered), else `405` allowing both.
fn require_read(got: &Option<Method>) -> Result<(), ApiError> {
    match got {
        Some(Method::Get | Method::Head) => Ok(()),
        _ => Err(ApiError::method_not_allowed("GET, HEAD")),
    }
}

fn require_method(got: &Option<Method>, want: Method) -> Result<(), ApiError> {
    if got.as_ref() == Some(&want) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(want.as_ref()))
    }
}

/// The caller (`callers`), counted against its `requests_per_minute`.
/// (Boxed: every route awaits it, and one boxed future keeps its code in
/// the wasm once rather than in each route's state machine.)
fn authenticate<'a>(
    req: &'a Incoming,
    env: &'a Env,
    ctx: &'a Context,
    cfg: &'a Config,
    log: &'a mut RequestLog,
) -> LocalBoxFuture<'a, Result<Caller, ApiError>> {
    Box::pin(async move {
        let header = req.header("authorization");
        let key = parse_bearer(header.as_deref()).map_err(|e| ApiError::unauthorized(e.message()))?;
        let caller = callers::identify(env, cfg, &key).await?;
        log.caller = Some(caller.id.clone());
        callers::admit(env, ctx, &caller)?;
        Ok(caller)
    })
}

fn require_scope(caller: &Caller, scope: &str) -> Result<(), ApiError> {
    if caller.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(scope))
    }
}

async fn read_json(req: Incoming) -> Result<Value, ApiError> {
    let bytes = read_body(req).await?;
    request_json(&bytes).map_err(|_| ApiError::invalid_json())
}

/// The body, at most [`MAX_BODY`] bytes, refused as soon as it is known to
/// be larger (a chunked body is not read past the limit).
async fn read_body(req: Incoming) -> Result<Vec<u8>, ApiError> {
    req.bytes_at_most(MAX_BODY).await.map_err(|e| match e {
        BodyError::TooLarge => ApiError::payload_too_large(),
        BodyError::Unreadable => ApiError::invalid_json(),
    })
}

fn health(env: &Env) -> Outgoing {
    let mut problems = match settings::load(env) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.to_vec(),
    };
    problems.extend(settings::binding_problems(env));
    if problems.is_empty() {
        return json_response(200, &json!({"status": "ok", "version": VERSION}));
    }
    // A map, not `json!`, which copies the list through serde_json's
    // `Value` serializer (code nothing else needs).
    let mut body = serde_json::Map::new();
    body.insert("status".into(), "misconfigured".into());
    body.insert("problems".into(), problems.into());
    json_response(503, &Value::Object(body))
}

async fn static_asset(req: Incoming, env: &Env, cfg: &Config) -> Result<Outgoing, ApiError> {
    let upstream = req.forward_to(env, "ASSETS").await.map_err(|()| ApiError::not_found())?;
    if upstream.status() == 404 {
        // No such asset: plumgate's own 404 body, like every other route.
        return Err(ApiError::not_found());
    }
    asset(upstream, cfg.page_csp()).await
}
