//! `TokenAuthority`: the Durable Object that owns the Xoxoday token pair,
//! and its client.
//!
//! It is the only code that calls the refresh endpoint (contract §4.1). One
//! instance per Xoxoday account, named from the base URL and client id
//! (`plumgate_core::token::storage::authority_name`). Its protocol is
//! `plumgate_core::wire::authority` ([`call`] is the worker's side); what it
//! does with each call is decided by `plumgate_core::token::serve` and the
//! token state machine, in the order that module lists. This file does the
//! I/O around those decisions, and writes the state only through
//! `Ctx::commit`.
//!
//! How it keeps the guarantees:
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
//!    single authority (named `xoxoday`) once to hand its state over; that
//!    one hands nothing over while a refresh of its own is running (the
//!    pair is about to rotate), and the requester asks again.
//! 8. Alerts (`plumgate_core::alert`). Every write of the state goes
//!    through `Ctx::commit`, which reviews the token condition in the same
//!    step, so an alert is stored in the same write as the change that
//!    causes it; a balance report from an isolate is recorded the same way.
//!    The object's alarm delivers what is due to `ALERT_WEBHOOK_URL`, one
//!    alert at a time in the order raised, and schedules itself for the
//!    next retry; loading the state schedules it too, so pending alerts
//!    survive eviction. Delivery never blocks serving: awaiting the webhook
//!    opens the input gate like any `fetch`.

use crate::respond::{bytes_response, empty};
use crate::runtime::clock::{now_ms, rand01};
use crate::runtime::storage::{in_ms, Storage};
use crate::runtime::{kv, net};
use crate::runtime::stub::{self, StubError};
use crate::runtime::http::{Incoming, Outgoing};
use crate::runtime::object::durable_object;
use crate::settings;
use wasm_bindgen::prelude::wasm_bindgen;
use futures_util::future::{self, Either, FutureExt, LocalBoxFuture, Shared};
use plumgate_core::wire::ledger::{Fate, Outcome};
use plumgate_core::alert::{
    self, after_attempt, next_delivery, next_due_ms, read_attempt, webhook_request, AfterAttempt, AlertPolicy, Attempt,
    BalanceSeen, Raised, DELIVERY_TIMEOUT_MS,
};
use plumgate_core::config::{binding, missing_binding, Config};
use plumgate_core::errors::ApiError;
use crate::runtime::{error_event, log, log_error, log_event};
use plumgate_core::logline::event;
use plumgate_core::time::rfc3339;
use plumgate_core::token::adopt::{adopt, apply_bootstrap_check, BootstrapCheck};
use plumgate_core::token::cache::{grant, kv_ttl_secs};
use plumgate_core::token::check::{apply_check, leaves_kv, plan_check, read_check, CheckPlan, CheckVerdict};
use plumgate_core::token::refresh::read_refresh;
use plumgate_core::token::run::{answer_after_run, fall_back, finish_run, interrupted, lost_in_run, next_step, sending, wait_limit_ms, Answer, RunEnd, Step};
use plumgate_core::token::serve::{self, address, after_verdict, intent, may_adopt, may_import, observation, refused, retired, Addressed, Next};
use plumgate_core::token::storage::{
    authority_name, kv_token_key, legacy_export, load_state, read_handover, set_aside_key, unreadable_message, Handover,
    LegacyExport, LEGACY_AUTHORITY_NAME, STATE_KEY,
};
use plumgate_core::token::{
    build_refresh_request, build_validate_request, credentials_fingerprint, plan, AuthorityState,
    Plan, RefreshOutcome, Refusal, Trigger,
};
use plumgate_core::wire::authority::{Call, Reply, AUTHORITY_HEADER};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use worker::{Delay, Env, State};

/// Durable Object binding name.
pub const DO_BINDING: &str = binding::TOKEN_AUTHORITY;
/// KV binding name of the access-token cache the authority writes.
pub const KV_BINDING: &str = binding::TOKEN_CACHE;

/// Send `call` to the authority named `name` (the worker's side).
///
/// # Errors
/// `503 misconfigured` without the binding; `502 upstream_error` when the
/// object cannot be reached; `500 internal_error` for an answer that is no
/// [`Reply`]. The status comes back as the JSON the worker relays.
pub async fn call(env: &Env, name: &str, call: &Call) -> Result<Reply<Value>, ApiError> {
    let sent = stub::post(env, DO_BINDING, name, &call.url(), Some((AUTHORITY_HEADER, name)), call.body()).await;
    let (_, body) = sent.map_err(|e| match e {
        StubError::Binding => ApiError::misconfigured(&[missing_binding(DO_BINDING)]),
        StubError::Call(detail) => {
            error_event(&[("detail", detail.as_str().into()), ("event", "authority_call_failed".into()), ("op", call.op().name().into())]);
            Refusal::Unavailable { message: "the token authority is unavailable".into() }.api_error()
        }
        StubError::Request | StubError::Body => ApiError::internal(),
    })?;
    Reply::read(&body).ok_or_else(ApiError::internal)
}

/// How a piece of shared work ended. One type for the four kinds (a
/// refresh run, a token check, loading the state, and the order ledger's
/// placement run): each distinct `Shared` future type adds its own copy of
/// the sharing machinery to the wasm.
#[derive(Clone)]
pub(super) enum Done {
    Run(RunEnd),
    Check(CheckVerdict),
    Load(Result<(), Refusal>),
    /// `ledger::run`'s end.
    Placed(Outcome, Fate),
}

/// Work in flight that every request needing it joins.
pub(super) type Work = Shared<LocalBoxFuture<'static, Done>>;

struct Inner {
    /// The loaded state; `None` until loaded (and while it cannot be read).
    state: RefCell<Option<AuthorityState>>,
    run: RefCell<Option<Work>>,
    check: RefCell<Option<(String, Work)>>,
    load: RefCell<Option<Work>>,
    /// An alarm is delivering alerts (a second one leaves it to that one).
    delivering: Cell<bool>,
    /// Setting the alarm failed: the next call sets it (a pending alert
    /// would otherwise wait for the next alert, or the next load).
    unscheduled: Cell<bool>,
}

/// What a future running on its own needs.
struct Ctx {
    inner: Rc<Inner>,
    env: Env,
    storage: Storage,
    cfg: Rc<Config>,
    /// This authority's name.
    name: String,
    account: String,
    alerts: AlertPolicy,
}

impl Ctx {
    fn snapshot(&self) -> AuthorityState {
        self.inner.state.borrow().clone().unwrap_or_default()
    }

    /// The answer now ([`serve::reply`]).
    fn reply(&self, refusal: Option<Refusal>, pass_through: bool) -> Reply {
        serve::reply(&self.snapshot(), refusal, pass_through, now_ms(), &self.cfg.token_policy)
    }

    /// The one write of the state. `change` is a core decision applied to a
    /// copy of the state; it returns what it decided and whether the state
    /// changed. The token condition is reviewed in the same step
    /// (`alert::review`): an alert it raises is part of the same write. A
    /// changed state is kept in memory first (every later decision sees
    /// it), then in storage. Returns the decision and the state as it now
    /// is.
    async fn commit<R>(&self, change: impl FnOnce(&mut AuthorityState) -> (R, bool)) -> (R, AuthorityState) {
        let mut st = self.snapshot();
        let (decided, changed) = change(&mut st);
        let st = self.store(st, changed).await;
        (decided, st)
    }

    /// The part of [`Ctx::commit`] after the decision: review, memory,
    /// storage, the alarm. Boxed, so the wasm holds one copy of it rather
    /// than one per kind of decision.
    fn store(&self, mut st: AuthorityState, mut changed: bool) -> LocalBoxFuture<'_, AuthorityState> {
        Box::pin(async move {
            let raised = alert::review(&mut st, now_ms(), &self.alerts, &self.cfg.token_policy);
            changed |= raised.is_some();
            if changed {
                *self.inner.state.borrow_mut() = Some(st.clone());
                persist(&self.storage, &st, Some(&self.inner.state)).await;
            }
            if let Some(r) = raised {
                self.raised(r).await;
            }
            st
        })
    }

    /// An alert was raised and stored: say so in the log, and have the
    /// alarm deliver it.
    async fn raised(&self, r: Raised) {
        let delivery = if r.deliver { "pending" } else { "not_configured" };
        log_event(&[("event", "alert_raised".into()), ("alert", r.event.into()), ("state", r.state.into()), ("delivery", delivery.into())]);
        if r.deliver {
            self.schedule().await;
        }
    }

    /// Set the alarm for the next alert delivery due, if any.
    async fn schedule(&self) {
        let Some(at) = next_due_ms(&self.snapshot()) else { return };
        let failed = self.storage.set_alarm(in_ms((at - now_ms()).max(0) as f64)).await.is_err();
        self.inner.unscheduled.set(failed);
        if failed {
            log_error("{\"event\":\"alert_alarm_failed\"}");
        }
    }

    /// Deliver the alerts that are due, oldest first, until one fails (the
    /// later ones wait behind it, so they arrive in order); then set the
    /// alarm for what is left. One log line per attempt, never the URL or
    /// the body.
    async fn deliver(&self) {
        if self.inner.delivering.replace(true) {
            return;
        }
        for _ in 0..alert::MAX_PENDING {
            let Some(body) = next_delivery(&self.snapshot(), now_ms()) else { break };
            let attempt = match &self.cfg.alert_webhook_url {
                None => Attempt::NotConfigured,
                Some(url) => read_attempt(&net::send(&webhook_request(url, &body), DELIVERY_TIMEOUT_MS).await),
            };
            let now = now_ms();
            let (after, st) = self
                .commit(|st| {
                    let after = after_attempt(st, &body, &attempt, now, rand01());
                    (after, after != AfterAttempt::Gone)
                })
                .await;
            let retry_at = match after {
                AfterAttempt::Retry(at) => Some(rfc3339(at)),
                _ => None,
            };
            let error = match &attempt {
                Attempt::Failed(why) => Some(why.as_str()),
                _ => None,
            };
            let line = event(&[
                ("event", "alert_delivery".into()),
                ("outcome", after.as_str().into()),
                ("attempts", i64::from(st.alert_attempts).into()),
                ("error", error.into()),
                ("next_attempt_at", retry_at.as_deref().into()),
                ("waiting", (st.alert_outbox.len() as i64).into()),
            ]);
            if error.is_some() {
                log_error(&line);
            } else {
                log(&line);
            }
            if retry_at.is_some() {
                break;
            }
        }
        self.inner.delivering.set(false);
        self.schedule().await;
    }
}

/// The Durable Object.
#[wasm_bindgen]
pub struct TokenAuthority {
    state: State,
    env: Env,
    inner: Rc<Inner>,
}

durable_object!(TokenAuthority, alarm);

impl TokenAuthority {
    fn open(state: State, env: Env) -> Self {
        let inner = Inner {
            state: RefCell::new(None),
            run: RefCell::new(None),
            check: RefCell::new(None),
            load: RefCell::new(None),
            delivering: Cell::new(false),
            unscheduled: Cell::new(false),
        };
        TokenAuthority { state, env, inner: Rc::new(inner) }
    }

    async fn on_fetch(&self, req: Incoming) -> worker::Result<Outgoing> {
        let path = req.path.clone();
        let addressed = req.header(AUTHORITY_HEADER).map(|a| a.into_owned());
        let body = req.bytes().await.unwrap_or_default();
        let reply = self.handle(&path, addressed.as_deref(), &body).await;
        Ok(bytes_response(200, serde_json::to_vec(&reply).unwrap_or_default(), "application/json"))
    }

    /// Alert delivery: whatever is due goes to `ALERT_WEBHOOK_URL`
    /// ([`Ctx::deliver`]). Nothing to do while the state cannot be read or
    /// the configuration does not load: the next load (a call, the hourly
    /// cron) sets the alarm again.
    async fn on_alarm(&self) -> worker::Result<Outgoing> {
        if let Ok(ctx) = self.ctx() {
            if self.ensure_loaded(&ctx, false).await.is_ok() {
                ctx.deliver().await;
            }
        }
        Ok(empty(200))
    }
}

impl TokenAuthority {
    /// What a call (or the alarm) works with, or why nothing can be done.
    fn ctx(&self) -> Result<Rc<Ctx>, Refusal> {
        let cfg = settings::load(&self.env).map_err(|problems| Refusal::Misconfigured { problems: problems.to_vec() })?;
        let account = cfg.account_id().to_owned();
        Ok(Rc::new(Ctx {
            inner: self.inner.clone(),
            env: self.env.clone(),
            storage: Storage::of(&self.state),
            name: authority_name(&account),
            account,
            alerts: cfg.alert_policy(),
            cfg,
        }))
    }

    async fn handle(&self, path: &str, addressed: Option<&str>, body: &[u8]) -> Reply {
        let ctx = match self.ctx() {
            Ok(c) => c,
            Err(r) => return refused(r),
        };
        match address(&ctx.name, addressed, path, body) {
            Addressed::Serve { call, current } => self.serve_call(&ctx, call, current).await,
            Addressed::Export { requester } => self.export(&ctx, &requester).await,
            Addressed::Refuse(r) => refused(r),
        }
    }

    async fn serve_call(&self, ctx: &Rc<Ctx>, call: Call, current: bool) -> Reply {
        let mut set_aside = false;
        if call == Call::Recover {
            match self.recover(ctx).await {
                Ok(aside) => set_aside = aside,
                Err(r) => return refused(r),
            }
        }
        if let Err(r) = self.ensure_loaded(ctx, may_import(&call, current, set_aside)).await {
            return refused(r);
        }
        let handed_over = ctx.inner.state.borrow().as_ref().and_then(retired);
        if let Some(r) = handed_over {
            return refused(r);
        }
        if may_adopt(current) {
            self.adopt(ctx).await;
        }
        if let Some(seen) = observation(&call) {
            observe(ctx, seen).await;
        }
        let proof_due = ctx.inner.state.borrow().as_ref().is_some_and(|s| s.refresh_proof_due);
        let mut next = intent(&call, proof_due);
        loop {
            next = match next {
                Next::Answer { refusal, pass_through } => return ctx.reply(refusal, pass_through),
                Next::Serve(trigger) => return self.serve(ctx, trigger).await,
                Next::Check(fp) => after_verdict(self.check(ctx, fp).await),
            };
        }
    }

    /// Load the stored state once per object lifetime (shared by every
    /// request that arrives meanwhile). Unreadable state is not kept: every
    /// request reads it again, so an admin's fix is seen at once.
    async fn ensure_loaded(&self, ctx: &Rc<Ctx>, may_import: bool) -> Result<(), Refusal> {
        if self.inner.state.borrow().is_some() {
            if self.inner.unscheduled.get() {
                ctx.schedule().await;
            }
            return Ok(());
        }
        let joined = self.inner.load.borrow().clone();
        let load = match joined {
            Some(l) => l,
            None => {
                let c = ctx.clone();
                let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
                    let r = load(&c, may_import).await;
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
    /// from `XOXODAY_REFRESH_TOKEN`. Readable state is left alone. Whether
    /// a state was set aside.
    async fn recover(&self, ctx: &Rc<Ctx>) -> Result<bool, Refusal> {
        let stored = read_stored(&ctx.storage).await?;
        let Some(key) = set_aside_key(stored.as_ref(), now_ms()) else { return Ok(false) };
        let text = stored.as_ref().and_then(Value::as_str).unwrap_or_default().to_string();
        if ctx.storage.put_text(&key, &text).await.is_err() || ctx.storage.delete(STATE_KEY).await.is_err() {
            return Err(Refusal::Unavailable { message: "token storage unavailable; nothing was changed".into() });
        }
        *self.inner.state.borrow_mut() = None;
        error_event(&[
            ("event", "authority_state_set_aside".into()),
            ("level", "critical".into()),
            ("authority", ctx.name.as_str().into()),
            ("storage_key", STATE_KEY.into()),
            ("kept_under", key.as_str().into()),
            ("action", "the authority starts again from XOXODAY_REFRESH_TOKEN".into()),
        ]);
        Ok(true)
    }

    /// `export`, on the previous version's authority: hand its state over
    /// once, to `requester` (`storage::legacy_export` decides; its `reply`
    /// marks the deliberate "nothing"). Every refusal here is unmarked, so
    /// the requester asks again later rather than starting fresh.
    async fn export(&self, ctx: &Rc<Ctx>, requester: &str) -> Reply {
        // A refresh running here (a worker of the previous version still
        // calling mid-deploy) is about to rotate the pair: wait for it as a
        // request would, and hand over what it leaves.
        let run = self.inner.run.borrow().clone();
        if let Some(run) = run {
            let limit = Delay::from(Duration::from_millis(ctx.cfg.token_policy.refresh_timeout_ms));
            drop(future::select(run, Box::pin(limit)).await);
        }
        // Through the shared load, never a private read: a call of the
        // previous version loading the state beside a private read would
        // put the unmarked copy in memory, and refresh the pair handed over.
        if let Err(r) = self.ensure_loaded(ctx, false).await {
            return refused(match r {
                Refusal::StateUnreadable { .. } => Refusal::Unavailable {
                    message: "the previous version's state cannot be read (it is left as it is)".into(),
                },
                r => r,
            });
        }
        let refreshing = self.inner.run.borrow().is_some();
        let bootstrap_fp = ctx.cfg.bootstrap_refresh_token.fingerprint();
        // Marked in memory at once (no await between the decision and the
        // mark), so no call here plans a refresh of the pair once it leaves.
        let (decided, marked) = {
            let mut slot = self.inner.state.borrow_mut();
            let decided = legacy_export(slot.as_mut(), requester, &bootstrap_fp, refreshing, now_ms());
            (decided, slot.clone())
        };
        if matches!(decided, LegacyExport::Export(_)) {
            // The mark is persisted before the state leaves, or nothing
            // leaves (kept in memory meanwhile: the object refreshes
            // nothing, and the requester's next ask exports it again).
            let unavailable = || refused(Refusal::Unavailable { message: "token storage unavailable".into() });
            let Some(marked) = marked else { return unavailable() };
            // A retry writes the live state (marked too): a check, an
            // alert or a balance report committed during its pause stays.
            if !persist(&ctx.storage, &marked, Some(&self.inner.state)).await {
                return unavailable();
            }
            log_event(&[("event", "legacy_state_handed_over".into()), ("to", requester.into())]);
        }
        decided.reply()
    }

    /// Adopt a new bootstrap refresh token (and validate a new bootstrap
    /// access token) when the operator has set one; clear a credentials
    /// rejection once the client id/secret changed.
    async fn adopt(&self, ctx: &Rc<Ctx>) {
        let cfg = &ctx.cfg;
        let client_fp = credentials_fingerprint(&cfg.client_id, &cfg.client_secret);
        let now = now_ms();
        let (adopted, _) = ctx
            .commit(|st| {
                let adopted = adopt(st, &cfg.bootstrap_refresh_token, cfg.bootstrap_access_token.as_ref(), &client_fp, now);
                (adopted, adopted.is_some())
            })
            .await;
        let Some(adopted) = adopted else { return };
        if adopted.bootstrap.adopted_refresh {
            log_event(&[("event", "bootstrap_refresh_token_adopted".into()), ("authority", ctx.name.as_str().into())]);
        }
        if adopted.bootstrap.ignored_spent {
            log_error("{\"event\":\"bootstrap_refresh_token_ignored\",\"reason\":\"this refresh token was already rotated away; set a newly generated one\"}");
        }
        if adopted.credentials_cleared {
            log_event(&[("event", "client_credentials_changed".into()), ("action", "refreshing resumes".into())]);
        }
        let Some(at) = cfg.bootstrap_access_token.clone().filter(|_| adopted.bootstrap.validate_access) else { return };
        let req = build_validate_request(&cfg.validate_url(), &at);
        let got = net::send(&req, cfg.token_policy.refresh_timeout_ms).await;
        let now = now_ms();
        let outcome = read_check(&got, now, cfg.token_policy.refresh_timeout_ms);
        let (done, st) = ctx
            .commit(|st| {
                let done = apply_bootstrap_check(st, at, outcome, now);
                (done, done != BootstrapCheck::Left)
            })
            .await;
        if done == BootstrapCheck::Taken {
            write_kv(ctx, &st).await;
        }
    }

    async fn serve(&self, ctx: &Rc<Ctx>, trigger: Trigger) -> Reply {
        let policy = &ctx.cfg.token_policy;
        match plan(&ctx.snapshot(), trigger, now_ms(), policy) {
            Plan::Serve => ctx.reply(None, false),
            Plan::ServeAndRefresh => {
                // Runs on under wait_until; nobody waits for it here.
                drop(self.start_or_join(ctx));
                ctx.reply(None, false)
            }
            Plan::Refuse(r) => ctx.reply(Some(r), false),
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
                    Answer::Grant => ctx.reply(None, false),
                    Answer::Refuse(r) => ctx.reply(Some(r), false),
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
        let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
            let end = refresh_run(&c).await;
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
        let key = fp.clone();
        let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
            let verdict = check_token(&c, &key).await;
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

/// The text stored under `state`. (Read as a string: every version writes
/// JSON text; decoding any JS value instead costs ~6 KB of wasm. A value
/// that is not a string makes this fail like a storage error, and nothing
/// is written either way.)
async fn read_stored(storage: &Storage) -> Result<Option<Value>, Refusal> {
    storage.get_text(STATE_KEY).await.map(|t| t.map(Value::String)).map_err(|e| {
        error_event(&[("event", "authority_storage_error".into()), ("detail", e.as_str().into())]);
        Refusal::Unavailable { message: "token storage unavailable".into() }
    })
}

async fn load(ctx: &Rc<Ctx>, may_import: bool) -> Result<(), Refusal> {
    let stored = read_stored(&ctx.storage).await?;
    let mut state = match load_state(stored.as_ref()) {
        Ok(Some(s)) => s,
        Ok(None) if may_import => import_legacy(ctx).await?,
        Ok(None) => AuthorityState::default(),
        Err(why) => {
            let message = unreadable_message(&ctx.name, &why);
            error_event(&[
                ("event", "authority_state_unreadable".into()),
                ("level", "critical".into()),
                ("authority", ctx.name.as_str().into()),
                ("storage_key", STATE_KEY.into()),
                ("reason", why.reason.as_str().into()),
                ("action", "left untouched; see README 'When a person must act' (POST /v1/token/recover)".into()),
            ]);
            return Err(Refusal::StateUnreadable { message });
        }
    };
    // The last instance stopped during a refresh: say so, and let the
    // cron refresh at its next run. Not stored here: the mark stays until
    // the next write, so an instance that stops before then says it again.
    interrupted(&mut state, now_ms());
    {
        let mut slot = ctx.inner.state.borrow_mut();
        if slot.is_none() {
            *slot = Some(state);
        }
    }
    // Alerts stored by an object that went away before delivering them.
    ctx.schedule().await;
    Ok(())
}

/// A balance an isolate saw: recorded, and an alert raised on a crossing
/// (`alert::observe_balance`).
async fn observe(ctx: &Ctx, seen: BalanceSeen) {
    let now = now_ms();
    let (raised, _) = ctx
        .commit(|st| {
            let (changed, raised) = alert::observe_balance(st, seen, now, &ctx.alerts);
            (raised, changed)
        })
        .await;
    if let Some(r) = raised {
        ctx.raised(r).await;
    }
}

/// A new authority with no state: take over the previous version's, once
/// (`storage::read_handover` decides what its answer means).
async fn import_legacy(ctx: &Ctx) -> Result<AuthorityState, Refusal> {
    let unavailable = || Refusal::Unavailable {
        message: "could not ask the previous version's token authority for its state; retry".into(),
    };
    let answer = call(&ctx.env, LEGACY_AUTHORITY_NAME, &Call::Export { requester: ctx.name.clone() }).await;
    match read_handover(answer.map_err(|_| unavailable())?) {
        Handover::Unreadable => Err(unavailable()),
        Handover::Later(reason) => {
            // Transient on the old object's side: nothing is stored here,
            // so the next request asks again.
            error_event(&[("event", "legacy_state_not_yet_imported".into()), ("reason", reason.as_deref().into())]);
            Err(unavailable())
        }
        Handover::Nothing(reason) => {
            if let Some(reason) = reason {
                log_event(&[("event", "legacy_state_not_imported".into()), ("reason", reason.as_str().into())]);
            }
            Ok(AuthorityState::default())
        }
        Handover::Take(state) => {
            // Stored here before anything else happens; if that fails, the
            // old object hands it to this requester again next time. (Not
            // through `commit`: the state is not loaded until this returns.)
            if !persist(&ctx.storage, &state, None).await {
                return Err(unavailable());
            }
            log_event(&[
                ("event", "legacy_state_imported".into()),
                ("from", LEGACY_AUTHORITY_NAME.into()),
                ("authority", ctx.name.as_str().into()),
                ("refresh_count", (state.refresh_count as i64).into()),
            ]);
            Ok(*state)
        }
    }
}

/// Write `st` under `state` ([`Ctx::commit`] is the way in for the loaded
/// state). A lost write would lose a rotated refresh token: a failed one is
/// retried a few times, and where `live` holds the loaded state, a retry
/// writes it as it is by then: another commit may have run during the
/// pause (a refresh storing its new pair), and the older text written over
/// it would bring the spent refresh token back after an eviction.
async fn persist(storage: &Storage, st: &AuthorityState, live: Option<&RefCell<Option<AuthorityState>>>) -> bool {
    for attempt in 0..3 {
        let later = live.filter(|_| attempt > 0).and_then(|l| l.borrow().clone());
        let Ok(text) = serde_json::to_string(later.as_ref().unwrap_or(st)) else { return false };
        match storage.put_text(STATE_KEY, &text).await {
            Ok(()) => return true,
            Err(_) => {
                error_event(&[("event", "authority_persist_failed".into()), ("attempt", i64::from(attempt + 1).into())]);
                Delay::from(Duration::from_millis(50)).await;
            }
        }
    }
    false
}

/// Cache the access token of `st` in KV for other isolates, when it will
/// live long enough (`token::cache::kv_ttl_secs`). Otherwise the entry goes:
/// left in place, the previous token's entry would keep isolates off the
/// authority until its own (days later) recheck, on a superseded token.
async fn write_kv(ctx: &Ctx, st: &AuthorityState) {
    let now = now_ms();
    let entry = grant(st, now, &ctx.cfg.token_policy).and_then(|g| Some((kv_ttl_secs(&g, now)?, serde_json::to_string(&g).ok()?)));
    let Some((ttl_secs, text)) = entry else { return clear_kv(ctx).await };
    if !kv::put(&ctx.env, KV_BINDING, &kv_token_key(&ctx.account), &text, ttl_secs).await {
        log_error("{\"event\":\"token_cache_write_failed\"}");
        // No entry beats the superseded one, which could live for days
        // (its own early-refresh point): readers then ask the authority.
        clear_kv(ctx).await;
    }
}

async fn clear_kv(ctx: &Ctx) {
    kv::delete(&ctx.env, KV_BINDING, &kv_token_key(&ctx.account)).await;
}

/// One refresh run: attempts until `next_step` says stop; the last outcome
/// is applied and persisted before return.
async fn refresh_run(ctx: &Ctx) -> RunEnd {
    let cfg = &ctx.cfg;
    let policy = &cfg.token_policy;
    let client_fp = credentials_fingerprint(&cfg.client_id, &cfg.client_secret);
    let mut attempt = 0;
    let mut lost: Option<String> = None;
    let mut fell = false;
    loop {
        attempt += 1;
        let refresh = ctx.inner.state.borrow().as_ref().and_then(|s| s.refresh.clone());
        let Some(refresh) = refresh else { return RunEnd::Reauth };
        let req = build_refresh_request(&cfg.refresh_url(), &cfg.client_id, &cfg.client_secret, &refresh.token);
        // Stored before sending: should this instance stop while the
        // refresh is in flight, the next one knows (`run::interrupted`).
        let mut st = ctx.snapshot();
        let sent_at = now_ms();
        sending(&mut st, sent_at);
        *ctx.inner.state.borrow_mut() = Some(st.clone());
        persist(&ctx.storage, &st, Some(&ctx.inner.state)).await;
        // `expires_in` counts from when Xoxoday issued the token, some time
        // after this send: reckoned from the send, it never runs late.
        let outcome = read_refresh(&net::send(&req, policy.refresh_call_timeout_ms).await, sent_at, policy);
        if let RefreshOutcome::Transient(reason) | RefreshOutcome::Timeout(reason) | RefreshOutcome::RefreshOnly { message: reason, .. } | RefreshOutcome::Final(reason) = &outcome {
            error_event(&[("event", "token_refresh_failed".into()), ("attempt", i64::from(attempt).into()), ("reason", reason.as_str().into())]);
        }
        // A refused new XOXODAY_REFRESH_TOKEN: the live token it displaced
        // is held again and tried at once (stored with the next attempt's mark).
        if ctx.inner.state.borrow_mut().as_mut().is_some_and(|st| fall_back(st, &outcome, now_ms(), fell)) {
            fell = true;
            lost = None;
            continue;
        }
        if let Step::Retry { delay_ms } = next_step(&outcome, attempt, rand01(), policy) {
            lost = lost_in_run(lost, &outcome);
            Delay::from(Duration::from_millis(delay_ms)).await;
            continue;
        }
        let now = now_ms();
        let (end, st) = ctx.commit(|st| (finish_run(st, outcome, now, rand01(), &client_fp, policy, lost.as_deref()), true)).await;
        if end == RunEnd::Refreshed {
            write_kv(ctx, &st).await;
            log_event(&[("event", "token_refreshed".into()), ("refresh_count", (st.refresh_count as i64).into()), ("attempt", i64::from(attempt).into())]);
        }
        if let Some(alert) = end.alert() {
            let retry_at = st.retry_at_ms(now).map(rfc3339);
            error_event(&[
                ("event", alert.event.into()),
                ("level", "critical".into()),
                ("reason", st.last_error.as_deref().into()),
                ("retry_at", retry_at.as_deref().into()),
                ("action", alert.action.into()),
            ]);
        }
        return end;
    }
}

/// Xoxoday's token check of the current token `fp`; the verdict is applied
/// and persisted, and a token it rejects (confirmed, or replaced after ten
/// minutes of failed checks) leaves KV while it is still the current one
/// (`check::leaves_kv`).
async fn check_token(ctx: &Ctx, fp: &str) -> CheckVerdict {
    let cfg = &ctx.cfg;
    let token = ctx.inner.state.borrow().as_ref().and_then(|s| s.current_access(fp)).map(|a| a.token.clone());
    let Some(token) = token else { return CheckVerdict::Serve };
    let timeout_ms = cfg.token_policy.refresh_timeout_ms;
    let outcome = read_check(&net::send(&build_validate_request(&cfg.validate_url(), &token), timeout_ms).await, now_ms(), timeout_ms);
    let result = outcome.result();
    let now = now_ms();
    let (verdict, st) = ctx.commit(|st| (apply_check(st, fp, outcome, now), true)).await;
    if leaves_kv(&st, fp) {
        clear_kv(ctx).await;
    }
    log_event(&[("event", "token_checked".into()), ("result", result.as_str().into())]);
    verdict
}
