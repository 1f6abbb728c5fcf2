//! `TokenAuthority`: the Durable Object that owns the Xoxoday token pair.
//!
//! It is the only code that calls the refresh endpoint (contract §4.1). One
//! instance per deployment (`id_from_name("xoxoday")`). Its protocol, spoken
//! by `tokens.rs` over the stub:
//!
//! `POST https://authority/{token|reject|refresh|status|cron}` with an
//! optional JSON body `{"fp": "<fingerprint of a rejected access token>"}`,
//! answering [`Reply`]: a grant (access token and its timing; never the
//! refresh token), the status body of `GET /v1/token`, and an error.
//!
//! How it keeps the guarantees:
//! 1. Single flight. Awaiting `fetch` opens the Durable Object's input gate
//!    and lets other requests in, so the refresh in progress is kept in
//!    memory as a shared future: every request that needs a refresh joins it,
//!    and re-plans on the stored state once it finishes.
//! 2. Persist before use. A successful answer is applied and written to
//!    storage (`state`, one JSON value, so the pair is replaced atomically)
//!    before any caller sees the new access token; the output gate also holds
//!    replies until the write is durable. A good answer is never dropped.
//! 3. Compare-and-replace. "Token T was rejected" refreshes only if T is still
//!    the current token; otherwise the newer token is handed out.
//! 4. Bootstrap adoption. Each request compares the configured
//!    `XOXODAY_REFRESH_TOKEN` with the one last adopted (by fingerprint); a
//!    new value that was never rotated away is taken into use.
//! 5. The state machine, lenient parsing and backoff are in
//!    `plumgate_core::token`; this file only runs them.

use crate::net;
use crate::settings;
use crate::tokens::{Grant, KV_BINDING, KV_TOKEN_KEY};
use crate::util::{json_response, now_ms, rand01};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use plumgate_core::config::Config;
use plumgate_core::token::{
    adopt_bootstrap, apply_failure, apply_success, apply_validated_access, build_refresh_request,
    build_validate_request, mark_rejected, parse_refresh_response, parse_validate_response, plan,
    retry_delay_ms, status_json, AuthorityState, Plan, RefreshOutcome, Trigger,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, console_log, durable_object, Delay, Env, Request, Response, State};

/// Storage key of the whole [`AuthorityState`] (JSON text).
pub const STATE_KEY: &str = "state";

/// Error part of a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyError {
    /// `reauth_required`, `upstream_error`, `upstream_timeout` or `misconfigured`.
    pub code: String,
    /// Safe sentence.
    pub message: String,
    /// Seconds until a retry makes sense.
    pub retry_after_secs: Option<u64>,
}

/// The authority's answer.
#[derive(Clone, Serialize, Deserialize)]
pub struct Reply {
    /// A usable access token, when there is one.
    pub grant: Option<Grant>,
    /// Status body of `GET /v1/token`.
    pub status: Value,
    /// Why there is no grant (or why a forced refresh failed).
    pub error: Option<ReplyError>,
}

/// How one refresh run ended (shared between everyone who joined it).
#[derive(Debug, Clone)]
enum RunResult {
    Ok,
    Reauth,
    Failed { timeout: bool, message: String },
}

type Run = Shared<LocalBoxFuture<'static, RunResult>>;

struct Inner {
    state: RefCell<Option<AuthorityState>>,
    inflight: RefCell<Option<Run>>,
}

/// The Durable Object.
#[durable_object]
pub struct TokenAuthority {
    state: State,
    env: Env,
    inner: Rc<Inner>,
}

impl worker::DurableObject for TokenAuthority {
    fn new(state: State, env: Env) -> Self {
        TokenAuthority {
            state,
            env,
            inner: Rc::new(Inner { state: RefCell::new(None), inflight: RefCell::new(None) }),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let op = path.trim_start_matches('/').to_string();
        let body: Value = req.json().await.unwrap_or(Value::Null);
        let reply = self.handle(&op, &body).await;
        let body = serde_json::to_value(&reply).unwrap_or(Value::Null);
        Ok(json_response(200, &body))
    }
}

impl TokenAuthority {
    async fn handle(&self, op: &str, body: &Value) -> Reply {
        let cfg = match settings::load(&self.env) {
            Ok(c) => c,
            Err(problems) => {
                return Reply {
                    grant: None,
                    status: Value::Null,
                    error: Some(ReplyError {
                        code: "misconfigured".into(),
                        message: problems.join("; "),
                        retry_after_secs: None,
                    }),
                }
            }
        };
        if let Err(e) = self.ensure_loaded().await {
            console_error!("{}", serde_json::json!({"event": "authority_storage_error", "detail": e.to_string()}));
            return self.reply_error(&cfg, "upstream_error", "token storage unavailable", None);
        }
        self.adopt(&cfg).await;
        let trigger = match op {
            "reject" => Trigger::Rejected(body.get("fp").and_then(Value::as_str).unwrap_or("").to_string()),
            "refresh" => Trigger::Forced,
            "cron" => Trigger::Cron,
            "status" => return self.reply(&cfg, None),
            _ => Trigger::Request,
        };
        self.serve(&cfg, trigger).await
    }

    /// Load the persisted state once per object lifetime.
    async fn ensure_loaded(&self) -> worker::Result<()> {
        if self.inner.state.borrow().is_some() {
            return Ok(());
        }
        let stored: Option<String> = self.state.storage().get(STATE_KEY).await?;
        let parsed = match stored {
            Some(text) => serde_json::from_str::<AuthorityState>(&text).unwrap_or_else(|_| {
                console_error!("{{\"event\":\"authority_state_unreadable\"}}");
                AuthorityState::default()
            }),
            None => AuthorityState::default(),
        };
        // Another request may have loaded (and changed) it while we awaited.
        let mut slot = self.inner.state.borrow_mut();
        if slot.is_none() {
            *slot = Some(parsed);
        }
        Ok(())
    }

    fn snapshot(&self) -> AuthorityState {
        self.inner.state.borrow().clone().unwrap_or_default()
    }

    /// Adopt a new bootstrap refresh token (and validate a new bootstrap
    /// access token) when the operator has set one.
    async fn adopt(&self, cfg: &Config) {
        let now = now_ms();
        let mut st = self.snapshot();
        let adoption = adopt_bootstrap(&mut st, &cfg.bootstrap_refresh_token, cfg.bootstrap_access_token.as_ref(), now);
        let changed = st.adopted_bootstrap_fp != self.inner.state.borrow().as_ref().and_then(|s| s.adopted_bootstrap_fp.clone())
            || st.adopted_access_fp != self.inner.state.borrow().as_ref().and_then(|s| s.adopted_access_fp.clone());
        if !changed {
            return;
        }
        if adoption.adopted_refresh {
            console_log!("{{\"event\":\"bootstrap_refresh_token_adopted\"}}");
        }
        if adoption.ignored_spent {
            console_error!("{{\"event\":\"bootstrap_refresh_token_ignored\",\"reason\":\"this refresh token was already rotated away; set a newly generated one\"}}");
        }
        *self.inner.state.borrow_mut() = Some(st.clone());
        self.persist(&st).await;
        if adoption.validate_access {
            if let Some(at) = cfg.bootstrap_access_token.clone() {
                let req = build_validate_request(&cfg.validate_url(), &at);
                if let Ok(ans) = net::send(&req, cfg.token_policy.refresh_timeout_ms).await {
                    let now = now_ms();
                    if let Some(exp) = parse_validate_response(ans.status, &ans.body, now) {
                        let mut st = self.snapshot();
                        if st.access.is_none() {
                            apply_validated_access(&mut st, at, exp, now);
                            *self.inner.state.borrow_mut() = Some(st.clone());
                            self.persist(&st).await;
                            self.write_kv(cfg, &st).await;
                        }
                    }
                }
            }
        }
    }

    async fn serve(&self, cfg: &Rc<Config>, trigger: Trigger) -> Reply {
        let policy = &cfg.token_policy;
        let now = now_ms();
        let st = self.snapshot();
        match plan(&st, &trigger, now, policy) {
            Plan::Serve => self.reply(cfg, None),
            Plan::ServeAndRefresh => {
                let run = self.start_or_join(cfg.clone());
                // Keep the object alive until the background refresh ends.
                self.state.wait_until(async move {
                    let _ = run.await;
                });
                self.reply(cfg, None)
            }
            Plan::Reauth => self.reply_error(cfg, "reauth_required", "refresh token is dead", None),
            Plan::Backoff { retry_after_secs } => self.reply_error(
                cfg,
                "upstream_error",
                "token refresh is failing; plumgate is backing off",
                Some(retry_after_secs),
            ),
            Plan::RefreshThenServe => {
                if let Trigger::Rejected(fp) = &trigger {
                    let mut st = self.snapshot();
                    if mark_rejected(&mut st, fp) {
                        *self.inner.state.borrow_mut() = Some(st.clone());
                        self.persist(&st).await;
                        self.clear_kv().await;
                    }
                }
                let forced = matches!(trigger, Trigger::Forced);
                let result = self.start_or_join(cfg.clone()).await;
                let st = self.snapshot();
                let now = now_ms();
                // Re-plan as a plain request: serve what the run produced,
                // never start another run from here.
                match (plan(&st, &Trigger::Request, now, policy), &result) {
                    (Plan::Serve | Plan::ServeAndRefresh, RunResult::Ok) => self.reply(cfg, None),
                    (Plan::Serve | Plan::ServeAndRefresh, RunResult::Failed { timeout, message }) if forced => {
                        self.reply_error(cfg, if *timeout { "upstream_timeout" } else { "upstream_error" }, message, None)
                    }
                    (Plan::Serve | Plan::ServeAndRefresh, _) => self.reply(cfg, None),
                    (_, RunResult::Reauth) | (Plan::Reauth, _) => {
                        self.reply_error(cfg, "reauth_required", "refresh token is dead", None)
                    }
                    (_, RunResult::Failed { timeout, message }) => self.reply_error(
                        cfg,
                        if *timeout { "upstream_timeout" } else { "upstream_error" },
                        message,
                        st.next_attempt_at_ms.map(|t| ((t - now).max(1000) as u64).div_ceil(1000)),
                    ),
                    (_, RunResult::Ok) => self.reply_error(cfg, "upstream_error", "refresh produced no usable token", None),
                }
            }
        }
    }

    /// Join the refresh in flight, or start one.
    fn start_or_join(&self, cfg: Rc<Config>) -> Run {
        if let Some(run) = self.inner.inflight.borrow().clone() {
            return run;
        }
        let inner = self.inner.clone();
        let storage_state = self.state.storage();
        let env = self.env.clone();
        let fut: LocalBoxFuture<'static, RunResult> = Box::pin(async move {
            let result = refresh_run(&inner, &storage_state, &env, &cfg).await;
            *inner.inflight.borrow_mut() = None;
            result
        });
        let run = fut.shared();
        *self.inner.inflight.borrow_mut() = Some(run.clone());
        run
    }

    async fn persist(&self, st: &AuthorityState) {
        persist(&self.state.storage(), st).await;
    }

    async fn write_kv(&self, cfg: &Config, st: &AuthorityState) {
        write_kv(&self.env, cfg, st).await;
    }

    async fn clear_kv(&self) {
        if let Ok(kv) = self.env.kv(KV_BINDING) {
            let _ = kv.delete(KV_TOKEN_KEY).await;
        }
    }

    fn reply(&self, cfg: &Config, error: Option<ReplyError>) -> Reply {
        let st = self.snapshot();
        let now = now_ms();
        let grant = st.access.as_ref().filter(|a| !a.rejected && a.expires_at_ms > now).map(|a| Grant {
            access_token: a.token.expose_secret().to_string(),
            expires_at_ms: a.expires_at_ms,
            recheck_at_ms: st.recheck_at_ms(now, &cfg.token_policy),
        });
        Reply { grant, status: status_json(&st, now, &cfg.token_policy), error }
    }

    fn reply_error(&self, cfg: &Config, code: &str, message: &str, retry: Option<u64>) -> Reply {
        self.reply(cfg, Some(ReplyError { code: code.into(), message: message.into(), retry_after_secs: retry }))
    }
}

async fn persist(storage: &worker::Storage, st: &AuthorityState) {
    let text = match serde_json::to_string(st) {
        Ok(t) => t,
        Err(_) => return,
    };
    // A lost write would lose a rotated refresh token: retry a few times.
    for attempt in 0..3 {
        match storage.put(STATE_KEY, text.clone()).await {
            Ok(()) => return,
            Err(_) => {
                console_error!("{{\"event\":\"authority_persist_failed\",\"attempt\":{}}}", attempt + 1);
                Delay::from(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Cache the access token in KV for other isolates, when it will live long
/// enough (KV rejects an expiration TTL under 60 s).
async fn write_kv(env: &Env, cfg: &Config, st: &AuthorityState) {
    let now = now_ms();
    let Some(a) = st.access.as_ref().filter(|a| !a.rejected && a.expires_at_ms > now) else { return };
    let recheck = st.recheck_at_ms(now, &cfg.token_policy);
    let ttl_secs = (recheck - now) / 1000;
    if ttl_secs < 60 {
        return;
    }
    let grant = Grant { access_token: a.token.expose_secret().to_string(), expires_at_ms: a.expires_at_ms, recheck_at_ms: recheck };
    let Ok(kv) = env.kv(KV_BINDING) else { return };
    let Ok(text) = serde_json::to_string(&grant) else { return };
    if let Ok(put) = kv.put(KV_TOKEN_KEY, text) {
        if put.expiration_ttl(ttl_secs as u64).execute().await.is_err() {
            console_error!("{{\"event\":\"token_cache_write_failed\"}}");
        }
    }
}

/// One refresh run: up to `max_attempts` calls with jittered delays between
/// transient failures; the outcome is applied and persisted before return.
async fn refresh_run(inner: &Rc<Inner>, storage: &worker::Storage, env: &Env, cfg: &Config) -> RunResult {
    let policy = &cfg.token_policy;
    for attempt in 1..=policy.max_attempts {
        let Some(refresh) = inner.state.borrow().as_ref().and_then(|s| s.refresh.clone()) else {
            return RunResult::Reauth;
        };
        let req = build_refresh_request(&cfg.refresh_url(), &cfg.client_id, &cfg.client_secret, &refresh.token);
        let sent = net::send(&req, policy.refresh_timeout_ms).await;
        let now = now_ms();
        let (outcome, timeout) = match sent {
            Ok(ans) => (parse_refresh_response(ans.status, &ans.body, now), false),
            Err(net::Failure::Timeout) => (
                RefreshOutcome::Transient(format!("refresh timed out after {} ms", policy.refresh_timeout_ms)),
                true,
            ),
            Err(net::Failure::Transport) => {
                (RefreshOutcome::Transient("refresh failed: no answer from Xoxoday (transport error)".into()), false)
            }
        };
        match outcome {
            RefreshOutcome::Success(answer) => {
                let mut st = inner.state.borrow().clone().unwrap_or_default();
                apply_success(&mut st, answer, now, rand01());
                *inner.state.borrow_mut() = Some(st.clone());
                persist(storage, &st).await;
                write_kv(env, cfg, &st).await;
                console_log!(
                    "{{\"event\":\"token_refreshed\",\"refresh_count\":{},\"attempt\":{}}}",
                    st.refresh_count,
                    attempt
                );
                return RunResult::Ok;
            }
            RefreshOutcome::Final(reason) => {
                let mut st = inner.state.borrow().clone().unwrap_or_default();
                apply_failure(&mut st, true, reason.clone(), now, rand01(), policy);
                *inner.state.borrow_mut() = Some(st.clone());
                persist(storage, &st).await;
                console_error!(
                    "{{\"event\":\"reauth_required\",\"level\":\"critical\",\"reason\":{},\"action\":\"generate new tokens in the Xoxoday dashboard and set XOXODAY_REFRESH_TOKEN\"}}",
                    Value::String(reason)
                );
                return RunResult::Reauth;
            }
            RefreshOutcome::Transient(reason) => {
                console_error!(
                    "{{\"event\":\"token_refresh_failed\",\"attempt\":{},\"reason\":{}}}",
                    attempt,
                    Value::String(reason.clone())
                );
                if attempt == policy.max_attempts {
                    let mut st = inner.state.borrow().clone().unwrap_or_default();
                    apply_failure(&mut st, false, reason.clone(), now, rand01(), policy);
                    *inner.state.borrow_mut() = Some(st.clone());
                    persist(storage, &st).await;
                    return RunResult::Failed { timeout, message: reason };
                }
                Delay::from(Duration::from_millis(retry_delay_ms(attempt, rand01(), policy))).await;
            }
        }
    }
    RunResult::Failed { timeout: false, message: "refresh failed".into() }
}
