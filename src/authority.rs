//! `TokenAuthority`: the Durable Object that owns the Xoxoday token pair.
//!
//! It is the only code that calls the refresh endpoint (contract §4.1). One
//! instance per Xoxoday account, named from the base URL and client id
//! (`plumgate_core::token::storage::authority_name`). Its protocol, spoken
//! by `tokens.rs` over the stub: `POST https://authority/{op}` ([`Op`]) with
//! the header [`AUTHORITY_HEADER`] naming the authority meant, and for
//! `check` the JSON body `{"fp": "<fingerprint of the access token Xoxoday
//! answered 401 to>"}`; the answer is a [`Reply`]: a grant (access token and
//! its timing; never the refresh token), the status body of `GET /v1/token`,
//! and the caller-facing error of a refusal.
//!
//! How it keeps the guarantees (each decision is a `plumgate_core::token`
//! function; this file does the I/O around them):
//! 1. Single flight. Awaiting `fetch` opens the Durable Object's input gate
//!    and lets other requests in, so the refresh in progress, the token check
//!    in progress (per token) and the loading of stored state are each kept
//!    in memory as a shared future that every request joins. A new refresh
//!    or check is also handed to `wait_until`, so it runs to its end (and its
//!    answer is stored) even when every request waiting for it is gone.
//! 2. Persist before use. A successful answer is applied and written to
//!    storage (`state`, one JSON value, so the pair is replaced atomically)
//!    before any caller sees the new access token; the output gate also holds
//!    replies until the write is durable. A good answer is never dropped.
//! 3. Confirm before spending. A 401 the caller forwards is checked with
//!    Xoxoday's token check first (`check`); only a confirmed rejection of
//!    the current token replaces it (compare-and-replace).
//! 4. Who waits how long. A request needing a refresh stops waiting after
//!    `REFRESH_TIMEOUT_MS`; the run itself (refresh call timeout: minutes)
//!    goes on. Cron and forced refreshes wait for the run.
//! 5. Never discard a live refresh token. Stored state that cannot be read
//!    is refused, never overwritten: every request answers `503
//!    misconfigured` with a loud log line naming the storage key, until an
//!    admin sets it aside with `recover` (README "When a person must act").
//! 6. Bootstrap and credentials. Each request compares the configured
//!    `XOXODAY_REFRESH_TOKEN` with the one last adopted, and the client
//!    id/secret with those Xoxoday rejected (by fingerprint).
//! 7. Upgrade. A new authority with no state asks the previous version's
//!    single authority (named `xoxoday`) once to hand its state over.

use crate::net;
use crate::settings;
use crate::tokens::{self, Grant};
use crate::util::{bytes_response, now_ms, rand01};
use futures_util::future::{self, Either, FutureExt, LocalBoxFuture, Shared};
use plumgate_core::config::Config;
use plumgate_core::errors::WireError;
use plumgate_core::logline::event;
use plumgate_core::token::check::{apply_check, parse_check_response, plan_check, CheckOutcome, CheckPlan, CheckVerdict};
use plumgate_core::token::run::{answer_after_run, finish_run, next_step, wait_limit_ms, Answer, RunEnd, Step};
use plumgate_core::token::storage::{
    legacy_export, load_state, quarantine_key, unreadable_message, LegacyExport, LEGACY_AUTHORITY_NAME, STATE_KEY,
};
use plumgate_core::token::{
    adopt_bootstrap, adopt_credentials, apply_validated_access, build_refresh_request, build_validate_request,
    credentials_fingerprint, parse_refresh_response, parse_validate_response, plan, status_json, AuthorityState, Plan,
    RefreshOutcome, Refusal, Trigger,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, console_log, durable_object, Delay, Env, Request, Response, State};

/// Header naming the authority a request is meant for. A request without
/// it comes from a worker of the previous version (during a deploy).
pub const AUTHORITY_HEADER: &str = "x-plumgate-authority";

/// The operations of the authority's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A caller needs a token.
    Token,
    /// Xoxoday answered 401 to the token with fingerprint `fp`.
    Check,
    /// `POST /v1/token/refresh`.
    Refresh,
    /// The cron keep-alive.
    Cron,
    /// `GET /v1/token`.
    Status,
    /// `POST /v1/token/recover`: set unreadable state aside.
    Recover,
    /// Asked of the previous version's authority by a new one.
    Export,
}

impl Op {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Check => "check",
            Op::Refresh => "refresh",
            Op::Cron => "cron",
            Op::Status => "status",
            Op::Recover => "recover",
            Op::Export => "export",
        }
    }

    fn from_name(name: &str) -> Option<Op> {
        [Op::Token, Op::Check, Op::Refresh, Op::Cron, Op::Status, Op::Recover, Op::Export]
            .into_iter()
            .find(|op| op.name() == name)
    }

    /// The previous version's names for the same requests.
    fn from_legacy_name(name: &str) -> Option<Op> {
        match name {
            "reject" => Some(Op::Check),
            other => Op::from_name(other).filter(|op| !matches!(op, Op::Recover | Op::Export)),
        }
    }
}

/// The authority's answer.
#[derive(Clone, Serialize, Deserialize)]
pub struct Reply {
    /// A usable access token, when there is one.
    pub grant: Option<Grant>,
    /// Status body of `GET /v1/token`.
    pub status: Value,
    /// Why there is no grant (or why a forced refresh did not happen): the
    /// caller-facing error of the authority's `Refusal`.
    #[serde(default)]
    pub error: Option<WireError>,
    /// `check`: the token is valid; pass Xoxoday's 401 on unchanged.
    #[serde(default)]
    pub pass_through: bool,
    /// `export`: the previous version's state, handed over (JSON text: the
    /// requester reads it with the same code as its own storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
}

impl Reply {
    fn refused(r: Refusal) -> Reply {
        Reply { grant: None, status: Value::Null, error: Some(WireError::from(&r.api_error())), pass_through: false, handover: None }
    }
}

/// How a piece of shared work ended. One type for the three kinds (a
/// refresh run, a token check, loading the state): each distinct `Shared`
/// future type adds its own copy of the sharing machinery to the wasm.
#[derive(Clone)]
enum Done {
    Run(RunEnd),
    Check(CheckVerdict),
    Load(Result<(), Refusal>),
}

/// Work in flight that every request needing it joins.
type Work = Shared<LocalBoxFuture<'static, Done>>;

struct Inner {
    /// The loaded state; `None` until loaded (and while it cannot be read).
    state: RefCell<Option<AuthorityState>>,
    run: RefCell<Option<Work>>,
    check: RefCell<Option<(String, Work)>>,
    load: RefCell<Option<Work>>,
}

/// What a future running on its own needs.
struct Ctx {
    inner: Rc<Inner>,
    env: Env,
    cfg: Rc<Config>,
    /// This authority's name.
    name: String,
    account: String,
}

impl Ctx {
    fn snapshot(&self) -> AuthorityState {
        self.inner.state.borrow().clone().unwrap_or_default()
    }
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
        let inner = Inner { state: RefCell::new(None), run: RefCell::new(None), check: RefCell::new(None), load: RefCell::new(None) };
        TokenAuthority { state, env, inner: Rc::new(inner) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let addressed = req.headers().get(AUTHORITY_HEADER).ok().flatten();
        let body: Value = req.json().await.unwrap_or(Value::Null);
        let reply = self.handle(path.trim_start_matches('/'), addressed, &body).await;
        Ok(bytes_response(200, serde_json::to_vec(&reply).unwrap_or_default(), "application/json"))
    }
}

impl TokenAuthority {
    async fn handle(&self, path: &str, addressed: Option<String>, body: &Value) -> Reply {
        let cfg = match settings::load(&self.env) {
            Ok(c) => c,
            Err(problems) => return Reply::refused(Refusal::Misconfigured { problems: problems.to_vec() }),
        };
        let account = tokens::account(&cfg);
        let ctx = Rc::new(Ctx {
            inner: self.inner.clone(),
            env: self.env.clone(),
            name: plumgate_core::token::storage::authority_name(&account),
            account,
            cfg,
        });
        match addressed {
            Some(name) if name == ctx.name => match Op::from_name(path) {
                Some(op) => self.serve_op(&ctx, op, body, true).await,
                None => Reply::refused(Refusal::Unavailable { message: "unknown token authority operation".into() }),
            },
            Some(name) if name == LEGACY_AUTHORITY_NAME && path == Op::Export.name() => self.export(&ctx, body).await,
            Some(_) => Reply::refused(Refusal::Unavailable {
                message: "the token authority was reached with another configuration (a deploy or secret change is in progress); retry".into(),
            }),
            // A worker of the previous version, during a deploy: serve from
            // this object's own state as before, unless it has been handed over.
            None => match Op::from_legacy_name(path) {
                Some(op) => self.serve_op(&ctx, op, body, false).await,
                None => Reply::refused(Refusal::Unavailable { message: "unknown token authority operation".into() }),
            },
        }
    }

    async fn serve_op(&self, ctx: &Rc<Ctx>, op: Op, body: &Value, current_protocol: bool) -> Reply {
        if op == Op::Recover {
            if let Err(r) = self.recover(ctx).await {
                return Reply::refused(r);
            }
        }
        // Import the previous version's state only on a first start (not
        // after `recover`, and not for a previous-version caller).
        let may_import = current_protocol && op != Op::Recover;
        if let Err(r) = self.ensure_loaded(ctx, may_import).await {
            return Reply::refused(r);
        }
        if ctx.snapshot().retired_to.is_some() {
            return Reply::refused(Refusal::Unavailable {
                message: "this token authority has handed its state to a per-account authority; retry".into(),
            });
        }
        self.adopt(ctx).await;
        let trigger = match op {
            Op::Status | Op::Recover | Op::Export => return reply(ctx, None),
            Op::Token => Trigger::Request,
            Op::Cron => Trigger::Cron,
            Op::Refresh => Trigger::Forced,
            Op::Check => {
                let fp = body.get("fp").and_then(Value::as_str).unwrap_or("").to_string();
                match self.check(ctx, fp).await {
                    CheckVerdict::Serve => Trigger::Request,
                    CheckVerdict::PassThrough => return Reply { pass_through: true, ..reply(ctx, None) },
                    CheckVerdict::Refuse(r) => return reply(ctx, Some(r)),
                }
            }
        };
        self.serve(ctx, trigger).await
    }

    /// Load the stored state once per object lifetime (shared by every
    /// request that arrives meanwhile). Unreadable state is not kept: every
    /// request reads it again, so an admin's fix is seen at once.
    async fn ensure_loaded(&self, ctx: &Rc<Ctx>, may_import: bool) -> Result<(), Refusal> {
        if self.inner.state.borrow().is_some() {
            return Ok(());
        }
        let joined = self.inner.load.borrow().clone();
        let load = match joined {
            Some(l) => l,
            None => {
                let c = ctx.clone();
                let storage = self.state.storage();
                let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
                    let r = load(&c, &storage, may_import).await;
                    *c.inner.load.borrow_mut() = None;
                    Done::Load(r)
                });
                let shared = fut.shared();
                *self.inner.load.borrow_mut() = Some(shared.clone());
                shared
            }
        };
        match load.await {
            Done::Load(r) => r,
            _ => Err(Refusal::Unavailable { message: "token storage unavailable".into() }),
        }
    }

    /// `recover`: if the stored state cannot be read, copy it unchanged to
    /// `state.unreadable.<ms>` and remove it, so the authority starts again
    /// from `XOXODAY_REFRESH_TOKEN`. Readable state is left alone.
    async fn recover(&self, ctx: &Rc<Ctx>) -> Result<(), Refusal> {
        let storage = self.state.storage();
        let stored = read_stored(&storage).await?;
        if load_state(stored.as_ref()).is_ok() {
            return Ok(());
        }
        let key = quarantine_key(now_ms());
        let raw = stored.unwrap_or(Value::Null);
        let kept = match &raw {
            Value::String(text) => storage.put(&key, text.clone()).await,
            other => storage.put(&key, other.clone()).await,
        };
        if kept.is_err() || storage.delete(STATE_KEY).await.is_err() {
            return Err(Refusal::Unavailable { message: "token storage unavailable; nothing was changed".into() });
        }
        *self.inner.state.borrow_mut() = None;
        console_error!(
            "{}",
            event(&[
                ("event", "authority_state_set_aside".into()),
                ("level", "critical".into()),
                ("authority", ctx.name.as_str().into()),
                ("storage_key", STATE_KEY.into()),
                ("kept_under", key.as_str().into()),
                ("action", "the authority starts again from XOXODAY_REFRESH_TOKEN".into()),
            ])
        );
        Ok(())
    }

    /// `export`, on the previous version's authority: hand its state over
    /// once, to the requester named in the body.
    async fn export(&self, ctx: &Rc<Ctx>, body: &Value) -> Reply {
        let Some(requester) = body.get("requester").and_then(Value::as_str).filter(|r| r.starts_with("account:")) else {
            return Reply::refused(Refusal::Unavailable { message: "export needs a requester".into() });
        };
        let storage = self.state.storage();
        let loaded = self.inner.state.borrow().clone();
        let mut state = match loaded {
            Some(s) => Some(s),
            None => match read_stored(&storage).await.map(|v| load_state(v.as_ref())) {
                Ok(Ok(s)) => s,
                Ok(Err(_)) => {
                    return Reply::refused(Refusal::Unavailable {
                        message: "the previous version's state cannot be read (it is left as it is)".into(),
                    })
                }
                Err(r) => return Reply::refused(r),
            },
        };
        let bootstrap_fp = ctx.cfg.bootstrap_refresh_token.fingerprint();
        match legacy_export(state.as_mut(), requester, &bootstrap_fp, now_ms()) {
            LegacyExport::Export(handed) => {
                let marked = state.expect("exported state exists");
                if self.inner.state.borrow().is_some() {
                    *self.inner.state.borrow_mut() = Some(marked.clone());
                }
                if !persist(&storage, &marked).await {
                    return Reply::refused(Refusal::Unavailable { message: "token storage unavailable".into() });
                }
                console_log!("{}", event(&[("event", "legacy_state_handed_over".into()), ("to", requester.into())]));
                let text = serde_json::to_string(&*handed).ok();
                Reply { grant: None, status: Value::Null, error: None, pass_through: false, handover: text }
            }
            LegacyExport::Nothing => Reply { grant: None, status: Value::Null, error: None, pass_through: false, handover: None },
            LegacyExport::Refused(why) => Reply::refused(Refusal::Unavailable { message: why.into() }),
        }
    }

    /// Adopt a new bootstrap refresh token (and validate a new bootstrap
    /// access token) when the operator has set one; clear a credentials
    /// rejection once the client id/secret changed.
    async fn adopt(&self, ctx: &Rc<Ctx>) {
        let cfg = &ctx.cfg;
        let now = now_ms();
        let before = ctx.snapshot();
        let mut st = before.clone();
        let adoption = adopt_bootstrap(&mut st, &cfg.bootstrap_refresh_token, cfg.bootstrap_access_token.as_ref(), now);
        let creds_cleared = adopt_credentials(&mut st, &credentials_fingerprint(&cfg.client_id, &cfg.client_secret));
        let changed = st.adopted_bootstrap_fp != before.adopted_bootstrap_fp
            || st.adopted_access_fp != before.adopted_access_fp
            || creds_cleared;
        if !changed {
            return;
        }
        if adoption.adopted_refresh {
            console_log!("{}", event(&[("event", "bootstrap_refresh_token_adopted".into()), ("authority", ctx.name.as_str().into())]));
        }
        if adoption.ignored_spent {
            console_error!("{{\"event\":\"bootstrap_refresh_token_ignored\",\"reason\":\"this refresh token was already rotated away; set a newly generated one\"}}");
        }
        if creds_cleared {
            console_log!("{}", event(&[("event", "client_credentials_changed".into()), ("action", "refreshing resumes".into())]));
        }
        commit(ctx, &self.state.storage(), st).await;
        if adoption.validate_access {
            if let Some(at) = cfg.bootstrap_access_token.clone() {
                let req = build_validate_request(&cfg.validate_url(), &at);
                if let Ok(ans) = net::send(&req, cfg.token_policy.refresh_timeout_ms).await {
                    let now = now_ms();
                    if let Some(exp) = parse_validate_response(ans.status, &ans.body, now) {
                        let mut st = ctx.snapshot();
                        if st.access.is_none() {
                            apply_validated_access(&mut st, at, exp, now);
                            commit(ctx, &self.state.storage(), st.clone()).await;
                            write_kv(ctx, &st).await;
                        }
                    }
                }
            }
        }
    }

    async fn serve(&self, ctx: &Rc<Ctx>, trigger: Trigger) -> Reply {
        let policy = &ctx.cfg.token_policy;
        match plan(&ctx.snapshot(), trigger, now_ms(), policy) {
            Plan::Serve => reply(ctx, None),
            Plan::ServeAndRefresh => {
                // Runs on under wait_until; nobody waits for it here.
                drop(self.start_or_join(ctx));
                reply(ctx, None)
            }
            Plan::Refuse(r) => reply(ctx, Some(r)),
            Plan::RefreshThenServe => {
                let run = self.start_or_join(ctx);
                let done = match wait_limit_ms(trigger, policy) {
                    None => Some(run.await),
                    Some(ms) => match future::select(run, Box::pin(Delay::from(Duration::from_millis(ms)))).await {
                        Either::Left((done, _)) => Some(done),
                        // The run goes on (wait_until); its answer is kept.
                        Either::Right(_) => None,
                    },
                };
                let end = match done {
                    Some(Done::Run(end)) => Some(end),
                    _ => None,
                };
                match answer_after_run(&ctx.snapshot(), trigger, end.as_ref(), now_ms(), policy) {
                    Answer::Grant => reply(ctx, None),
                    Answer::Refuse(r) => reply(ctx, Some(r)),
                }
            }
        }
    }

    /// Join the refresh in flight, or start one (kept alive by `wait_until`).
    fn start_or_join(&self, ctx: &Rc<Ctx>) -> Work {
        if let Some(run) = self.inner.run.borrow().clone() {
            return run;
        }
        let c = ctx.clone();
        let storage = self.state.storage();
        let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
            let end = refresh_run(&c, &storage).await;
            *c.inner.run.borrow_mut() = None;
            Done::Run(end)
        });
        let run = fut.shared();
        *self.inner.run.borrow_mut() = Some(run.clone());
        self.keep_alive(Box::pin(run.clone().map(drop)));
        run
    }

    /// Run `fut` to its end even if every request waiting for it is gone
    /// (one `wait_until` for every kind of work: each call site of a generic
    /// `wait_until` would add its own copy to the wasm).
    fn keep_alive(&self, fut: LocalBoxFuture<'static, ()>) {
        self.state.wait_until(fut);
    }

    /// A caller met a 401 that can be about the token with fingerprint
    /// `fp`: the verdict (serving then goes as for a plain request).
    async fn check(&self, ctx: &Rc<Ctx>, fp: String) -> CheckVerdict {
        match plan_check(&ctx.snapshot(), &fp, now_ms()) {
            CheckPlan::Verdict(v) => v,
            CheckPlan::Check => match self.check_or_join(ctx, fp).await {
                Done::Check(v) => v,
                _ => CheckVerdict::Serve,
            },
        }
    }

    /// Join the check of `fp` in flight, or start one.
    fn check_or_join(&self, ctx: &Rc<Ctx>, fp: String) -> Work {
        if let Some((running, run)) = self.inner.check.borrow().clone() {
            if running == fp {
                return run;
            }
        }
        let c = ctx.clone();
        let storage = self.state.storage();
        let key = fp.clone();
        let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
            let verdict = check_token(&c, &storage, &key).await;
            let mut slot = c.inner.check.borrow_mut();
            if slot.as_ref().is_some_and(|(f, _)| *f == key) {
                *slot = None;
            }
            Done::Check(verdict)
        });
        let run = fut.shared();
        *self.inner.check.borrow_mut() = Some((fp, run.clone()));
        self.keep_alive(Box::pin(run.clone().map(drop)));
        run
    }
}

/// The grant (when usable), the status body and a refusal.
fn reply(ctx: &Ctx, refusal: Option<Refusal>) -> Reply {
    let st = ctx.snapshot();
    let now = now_ms();
    let policy = &ctx.cfg.token_policy;
    let grant = st.access.as_ref().filter(|_| st.access_usable(now)).map(|a| Grant {
        access_token: a.token.expose_secret().to_string(),
        expires_at_ms: a.expires_at_ms,
        recheck_at_ms: st.recheck_at_ms(now, policy),
    });
    let error = refusal.map(|r| WireError::from(&r.api_error()));
    Reply { grant, status: status_json(&st, now, policy), error, pass_through: false, handover: None }
}

/// The text stored under `state`. (Read as a string: every version writes
/// JSON text; decoding any JS value instead costs ~6 KB of wasm. A value
/// that is not a string makes this fail like a storage error, and nothing
/// is written either way.)
async fn read_stored(storage: &worker::Storage) -> Result<Option<Value>, Refusal> {
    storage.get::<String>(STATE_KEY).await.map(|t| t.map(Value::String)).map_err(|e| {
        console_error!("{}", event(&[("event", "authority_storage_error".into()), ("detail", e.to_string().as_str().into())]));
        Refusal::Unavailable { message: "token storage unavailable".into() }
    })
}

async fn load(ctx: &Rc<Ctx>, storage: &worker::Storage, may_import: bool) -> Result<(), Refusal> {
    let stored = read_stored(storage).await?;
    let state = match load_state(stored.as_ref()) {
        Ok(Some(s)) => s,
        Ok(None) if may_import => import_legacy(ctx, storage).await?,
        Ok(None) => AuthorityState::default(),
        Err(why) => {
            let message = unreadable_message(&ctx.name, &why);
            console_error!(
                "{}",
                event(&[
                    ("event", "authority_state_unreadable".into()),
                    ("level", "critical".into()),
                    ("authority", ctx.name.as_str().into()),
                    ("storage_key", STATE_KEY.into()),
                    ("reason", why.reason.as_str().into()),
                    ("action", "left untouched; see README 'When a person must act' (POST /v1/token/recover)".into()),
                ])
            );
            return Err(Refusal::StateUnreadable { message });
        }
    };
    let mut slot = ctx.inner.state.borrow_mut();
    if slot.is_none() {
        *slot = Some(state);
    }
    Ok(())
}

/// A new authority with no state: take over the previous version's, once.
async fn import_legacy(ctx: &Rc<Ctx>, storage: &worker::Storage) -> Result<AuthorityState, Refusal> {
    let unavailable = || Refusal::Unavailable {
        message: "could not ask the previous version's token authority for its state; retry".into(),
    };
    let asked = tokens::call_authority(&ctx.env, LEGACY_AUTHORITY_NAME, Op::Export, Some(json!({"requester": ctx.name}))).await;
    let answer = asked.map_err(|_| unavailable())?;
    let handed = answer.handover.map(|text| load_state(Some(&Value::String(text))));
    match handed {
        Some(Err(_)) => Err(unavailable()),
        Some(Ok(None)) | None => {
            if let Some(e) = answer.error {
                console_log!("{}", event(&[("event", "legacy_state_not_imported".into()), ("reason", e.message.as_str().into())]));
            }
            Ok(AuthorityState::default())
        }
        Some(Ok(Some(state))) => {
            // Stored here before anything else happens; if that fails, the
            // old object hands it to this requester again next time.
            if !persist(storage, &state).await {
                return Err(unavailable());
            }
            console_log!(
                "{}",
                event(&[
                    ("event", "legacy_state_imported".into()),
                    ("from", LEGACY_AUTHORITY_NAME.into()),
                    ("authority", ctx.name.as_str().into()),
                    ("refresh_count", (state.refresh_count as i64).into()),
                ])
            );
            Ok(state)
        }
    }
}

/// Memory first (every later decision sees it), then storage.
async fn commit(ctx: &Ctx, storage: &worker::Storage, st: AuthorityState) -> bool {
    *ctx.inner.state.borrow_mut() = Some(st.clone());
    persist(storage, &st).await
}

async fn persist(storage: &worker::Storage, st: &AuthorityState) -> bool {
    let Ok(text) = serde_json::to_string(st) else { return false };
    // A lost write would lose a rotated refresh token: retry a few times.
    for attempt in 0..3 {
        match storage.put(STATE_KEY, text.clone()).await {
            Ok(()) => return true,
            Err(_) => {
                console_error!("{{\"event\":\"authority_persist_failed\",\"attempt\":{}}}", attempt + 1);
                Delay::from(Duration::from_millis(50)).await;
            }
        }
    }
    false
}

/// Cache the access token in KV for other isolates, when it will live long
/// enough (KV rejects an expiration TTL under 60 s).
async fn write_kv(ctx: &Ctx, st: &AuthorityState) {
    let now = now_ms();
    let Some(a) = st.access.as_ref().filter(|_| st.access_usable(now)) else { return };
    let recheck = st.recheck_at_ms(now, &ctx.cfg.token_policy);
    let ttl_secs = (recheck - now) / 1000;
    if ttl_secs < 60 {
        return;
    }
    let grant = Grant { access_token: a.token.expose_secret().to_string(), expires_at_ms: a.expires_at_ms, recheck_at_ms: recheck };
    let Ok(kv) = ctx.env.kv(tokens::KV_BINDING) else { return };
    let Ok(text) = serde_json::to_string(&grant) else { return };
    if let Ok(put) = kv.put(&plumgate_core::token::storage::kv_token_key(&ctx.account), text) {
        if put.expiration_ttl(ttl_secs as u64).execute().await.is_err() {
            console_error!("{{\"event\":\"token_cache_write_failed\"}}");
        }
    }
}

async fn clear_kv(ctx: &Ctx) {
    if let Ok(kv) = ctx.env.kv(tokens::KV_BINDING) {
        let _ = kv.delete(&plumgate_core::token::storage::kv_token_key(&ctx.account)).await;
    }
}

/// One refresh run: attempts until `next_step` says stop; the last outcome
/// is applied and persisted before return.
async fn refresh_run(ctx: &Ctx, storage: &worker::Storage) -> RunEnd {
    let cfg = &ctx.cfg;
    let policy = &cfg.token_policy;
    let client_fp = credentials_fingerprint(&cfg.client_id, &cfg.client_secret);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(refresh) = ctx.snapshot().refresh else { return RunEnd::Reauth };
        let req = build_refresh_request(&cfg.refresh_url(), &cfg.client_id, &cfg.client_secret, &refresh.token);
        let outcome = match net::send(&req, policy.refresh_call_timeout_ms).await {
            Ok(ans) => parse_refresh_response(ans.status, &ans.body, ans.retry_after.as_deref(), now_ms()),
            Err(net::Failure::Timeout) => {
                RefreshOutcome::Timeout(format!("refresh timed out after {} s", policy.refresh_call_timeout_ms / 1000))
            }
            Err(net::Failure::Transport) => {
                RefreshOutcome::Transient("refresh failed: no answer from Xoxoday (transport error)".into())
            }
        };
        if let RefreshOutcome::Transient(reason) | RefreshOutcome::Timeout(reason) = &outcome {
            console_error!("{}", event(&[("event", "token_refresh_failed".into()), ("attempt", i64::from(attempt).into()), ("reason", reason.as_str().into())]));
        }
        if let Step::Retry { delay_ms } = next_step(&outcome, attempt, rand01(), policy) {
            Delay::from(Duration::from_millis(delay_ms)).await;
            continue;
        }
        let mut st = ctx.snapshot();
        let now = now_ms();
        let end = finish_run(&mut st, outcome, now, rand01(), &client_fp, policy);
        commit(ctx, storage, st.clone()).await;
        match &end {
            RunEnd::Refreshed => {
                write_kv(ctx, &st).await;
                console_log!(
                    "{}",
                    event(&[("event", "token_refreshed".into()), ("refresh_count", (st.refresh_count as i64).into()), ("attempt", i64::from(attempt).into())])
                );
            }
            RunEnd::Reauth | RunEnd::CredentialsRejected | RunEnd::RateLimited => {
                let (name, action) = match end {
                    RunEnd::Reauth => ("reauth_required", "generate new tokens in the Xoxoday dashboard and set XOXODAY_REFRESH_TOKEN"),
                    RunEnd::CredentialsRejected => {
                        ("credentials_rejected", "set the right XOXODAY_CLIENT_ID / XOXODAY_CLIENT_SECRET; the refresh token is kept")
                    }
                    _ => ("token_refresh_rate_limited", "no refresh attempt until retry_at"),
                };
                let retry_at = st.retry_at_ms(now).map(plumgate_core::time::rfc3339);
                console_error!(
                    "{}",
                    event(&[
                        ("event", name.into()),
                        ("level", "critical".into()),
                        ("reason", st.last_error.as_deref().into()),
                        ("retry_at", retry_at.as_deref().into()),
                        ("action", action.into()),
                    ])
                );
            }
            RunEnd::Failed { .. } => {}
        }
        return end;
    }
}

/// Xoxoday's token check of the current token `fp`; the verdict is applied
/// and persisted, and a confirmed rejection removes the token from KV.
async fn check_token(ctx: &Ctx, storage: &worker::Storage, fp: &str) -> CheckVerdict {
    let cfg = &ctx.cfg;
    let Some(access) = ctx.snapshot().access.filter(|a| a.token.fingerprint() == fp) else {
        return CheckVerdict::Serve;
    };
    let req = build_validate_request(&cfg.validate_url(), &access.token);
    let outcome = match net::send(&req, cfg.token_policy.refresh_timeout_ms).await {
        Ok(ans) => parse_check_response(ans.status, &ans.body, now_ms()),
        Err(net::Failure::Timeout) => {
            CheckOutcome::Failed(format!("no answer within {} ms", cfg.token_policy.refresh_timeout_ms))
        }
        Err(net::Failure::Transport) => CheckOutcome::Failed("transport error".into()),
    };
    let result = match &outcome {
        CheckOutcome::Valid { .. } => "valid",
        CheckOutcome::Invalid => "invalid",
        CheckOutcome::Failed(_) => "failed",
    };
    let mut st = ctx.snapshot();
    let verdict = apply_check(&mut st, fp, outcome, now_ms());
    commit(ctx, storage, st).await;
    if result == "invalid" {
        clear_kv(ctx).await;
    }
    console_log!("{}", event(&[("event", "token_checked".into()), ("result", result.into())]));
    verdict
}
