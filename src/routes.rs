//! The router and the per-request pipeline.
//!
//! Every request gets a request id (sent back as `x-request-id`), exactly one
//! JSON log line (contract §7) and, when plumgate itself refuses or fails, the
//! error body of contract §3. No error path echoes a header, a body or a
//! value the caller sent.
//!
//! Pipeline of an operation call (`POST /v1/ops/{op}` and the drop-in
//! `POST /chef/v1/oauth/api`):
//! 1. configuration valid, else `503 misconfigured`;
//! 2. method and route, else `405` / `404`;
//! 3. caller key, else `401` (with `WWW-Authenticate: Bearer`);
//! 4. body at most 64 KiB and JSON, else `413` / `400 invalid_json`;
//! 5. scope for the operation (which may depend on the body), else `403`;
//! 6. validation, else `400 invalid_request` naming the field;
//! 7. forward (`gateway`).

use crate::gateway;
use crate::settings;
use crate::tokens;
use crate::util::{bytes_response, json_response, now_ms, request_id};
use plumgate_core::auth::Caller;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::logline::RequestLog;
use plumgate_core::ops::{self, EnvelopeError, Operation};
use serde_json::{json, Value};
use worker::{console_log, Context, Env, Method, Request, Response};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The build's version, reported by `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Handle one request. Never fails: every outcome is a response.
pub async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    let mut log = RequestLog {
        start_ms: now_ms(),
        request_id: request_id(),
        method: req.method().to_string(),
        route: "unknown",
        ..Default::default()
    };
    let result = dispatch(req, &env, &ctx, &mut log).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            log.error = Some(e.code);
            error_response(&e, &log.request_id)
        }
    };
    log.status = resp.status_code();
    let _ = resp.headers_mut().set("x-request-id", &log.request_id);
    console_log!("{}", log.line(now_ms()));
    resp
}

/// The error body and headers for `e`.
pub fn error_response(e: &ApiError, request_id: &str) -> Response {
    let mut resp = json_response(e.status, &e.body(request_id));
    let h = resp.headers_mut();
    if e.status == 401 {
        let _ = h.set("www-authenticate", "Bearer");
    }
    if let Some(s) = e.retry_after_secs {
        let _ = h.set("retry-after", &s.to_string());
    }
    resp
}

async fn dispatch(req: Request, env: &Env, ctx: &Context, log: &mut RequestLog) -> Result<Response, ApiError> {
    let path = req.path();
    let method = req.method();

    if path == "/healthz" {
        log.route = "/healthz";
        require_method(&method, Method::Get)?;
        return Ok(health(env));
    }
    if path == "/openapi.json" {
        log.route = "/openapi.json";
        require_method(&method, Method::Get)?;
        return Ok(bytes_response(200, ops::OPENAPI_JSON.as_bytes().to_vec(), "application/json; charset=utf-8"));
    }

    let api_route = path.starts_with("/v1/") || path == "/v1" || path.starts_with("/chef/");
    if !api_route {
        log.route = "static";
        return static_asset(req, env).await;
    }

    let settings = settings::load(env);
    let cfg = match settings.as_ref() {
        Ok(c) => c,
        Err(problems) => return Err(ApiError::misconfigured(problems)),
    };

    if let Some(op_name) = path.strip_prefix("/v1/ops/") {
        log.route = "/v1/ops/{operation}";
        require_method(&method, Method::Post)?;
        let op = Operation::from_name(op_name).ok_or_else(ApiError::unknown_operation)?;
        log.operation = Some(op.name());
        let caller = authenticate(&req, cfg, log)?;
        let data = read_json(req).await?;
        return call_operation(env, ctx, cfg, &caller, op, data, log).await;
    }
    match path.as_str() {
        "/chef/v1/oauth/api" => {
            log.route = "/chef/v1/oauth/api";
            require_method(&method, Method::Post)?;
            let caller = authenticate(&req, cfg, log)?;
            let envelope = read_json(req).await?;
            let (op, data) = ops::parse_envelope(&envelope).map_err(|e| match e {
                EnvelopeError::UnknownOperation(_) => ApiError::unknown_operation(),
                EnvelopeError::Invalid(v) => ApiError::invalid_request(v.message),
            })?;
            log.operation = Some(op.name());
            call_operation(env, ctx, cfg, &caller, op, data, log).await
        }
        "/v1/token" => {
            log.route = "/v1/token";
            require_method(&method, Method::Get)?;
            let caller = authenticate(&req, cfg, log)?;
            require_scope(&caller, "admin")?;
            Ok(json_response(200, &tokens::status(env).await?))
        }
        "/v1/token/refresh" => {
            log.route = "/v1/token/refresh";
            require_method(&method, Method::Post)?;
            let caller = authenticate(&req, cfg, log)?;
            require_scope(&caller, "admin")?;
            Ok(json_response(200, &tokens::force_refresh(env).await?))
        }
        _ => {
            log.route = "not_found";
            Err(ApiError::not_found())
        }
    }
}

async fn call_operation(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    caller: &Caller,
    op: Operation,
    data: Value,
    log: &mut RequestLog,
) -> Result<Response, ApiError> {
    require_scope(caller, op.required_scope(&data))?;
    ops::validate(op, &data).map_err(|e| ApiError::invalid_request(e.message))?;
    gateway::forward(env, ctx, cfg, caller, op, data, log).await
}

fn require_method(got: &Method, want: Method) -> Result<(), ApiError> {
    if *got == want {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(&want.to_string()))
    }
}

fn authenticate(req: &Request, cfg: &Config, log: &mut RequestLog) -> Result<Caller, ApiError> {
    let header = req.headers().get("authorization").ok().flatten();
    let caller = cfg
        .gateway_keys
        .authenticate(header.as_deref())
        .map_err(|e| ApiError::unauthorized(e.message()))?;
    log.caller = Some(caller.id.clone());
    Ok(caller)
}

fn require_scope(caller: &Caller, scope: &str) -> Result<(), ApiError> {
    if caller.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(scope))
    }
}

async fn read_json(mut req: Request) -> Result<Value, ApiError> {
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.trim().parse::<usize>().map(|n| n > MAX_BODY).unwrap_or(false) {
            return Err(ApiError::payload_too_large());
        }
    }
    let bytes = req.bytes().await.map_err(|_| ApiError::invalid_json())?;
    if bytes.len() > MAX_BODY {
        return Err(ApiError::payload_too_large());
    }
    serde_json::from_slice(&bytes).map_err(|_| ApiError::invalid_json())
}

fn health(env: &Env) -> Response {
    match settings::load(env).as_ref() {
        Ok(_) => json_response(200, &json!({"status": "ok", "version": VERSION})),
        Err(problems) => json_response(503, &json!({"status": "misconfigured", "problems": problems})),
    }
}

async fn static_asset(req: Request, env: &Env) -> Result<Response, ApiError> {
    match env.assets("ASSETS") {
        Ok(assets) => assets.fetch_request(req).await.map_err(|_| ApiError::not_found()),
        Err(_) => Err(ApiError::not_found()),
    }
}
