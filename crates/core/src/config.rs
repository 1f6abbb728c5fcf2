//! Configuration: every variable of contract §1 plus plumgate's tuning knobs,
//! parsed once into a validated [`Config`].
//!
//! Parsing is pure: the shell passes a lookup function over the Worker's
//! environment. Validation fails closed: any problem makes the whole config
//! unusable (every route but `/healthz` answers `503 misconfigured`), and each
//! problem names the variable but never its value.

use crate::alert::AlertPolicy;
use crate::auth::CallerKeys;
use crate::limits::Budgets;
use crate::secret::{AccessToken, CallerKey, ClientId, ClientSecret, RefreshToken, WebhookUrl};
use crate::text::{self, split_once};
use crate::token::storage::account_id;
use crate::token::TokenPolicy;

/// Which Xoxoday environment `XOXODAY_ENV` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XoxodayEnv {
    /// `https://stagingaccount.xoxoday.com/chef`
    Staging,
    /// `https://accounts.xoxoday.com/chef`
    Production,
}

/// Staging OAUTH_URL.
pub const STAGING_URL: &str = "https://stagingaccount.xoxoday.com/chef";
/// Production OAUTH_URL.
pub const PRODUCTION_URL: &str = "https://accounts.xoxoday.com/chef";

/// `ORDER_RETENTION_SECS`'s default: 30 days.
pub const DEFAULT_ORDER_RETENTION_SECS: u32 = 2_592_000;

/// The names of the bindings plumgate reaches (`wrangler.toml`).
pub mod binding {
    /// The access-token cache's KV namespace.
    pub const TOKEN_CACHE: &str = "TOKEN_CACHE";
    /// The `TokenAuthority` namespace.
    pub const TOKEN_AUTHORITY: &str = "TOKEN_AUTHORITY";
    /// The `OrderLedger` namespace.
    pub const ORDER_LEDGER: &str = "ORDER_LEDGER";
    /// The `RateLimiter` namespace.
    pub const RATE_LIMITER: &str = "RATE_LIMITER";
    /// The `KeyRegistry` namespace.
    pub const KEY_REGISTRY: &str = "KEY_REGISTRY";
}

/// The bindings `/healthz` requires. Not the demo page's `ASSETS`: a
/// worker without it (the bench's, a private plumgate's) serves every API
/// route.
pub const REQUIRED_BINDINGS: [&str; 5] = [
    binding::TOKEN_CACHE,
    binding::TOKEN_AUTHORITY,
    binding::ORDER_LEDGER,
    binding::RATE_LIMITER,
    binding::KEY_REGISTRY,
];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `XOXODAY_ENV`.
    pub env: XoxodayEnv,
    /// OAUTH_URL without a trailing slash, e.g. `https://accounts.xoxoday.com/chef`.
    pub oauth_url: String,
    /// `ALLOWED_ORIGINS`, exact origins.
    pub allowed_origins: Vec<String>,
    /// `CATALOG_CACHE_TTL_SECS`.
    pub catalog_cache_ttl_secs: u32,
    /// `BALANCE_CACHE_TTL_SECS`.
    pub balance_cache_ttl_secs: u32,
    /// `XOXODAY_CLIENT_ID`.
    pub client_id: ClientId,
    /// `XOXODAY_CLIENT_SECRET`.
    pub client_secret: ClientSecret,
    /// `XOXODAY_REFRESH_TOKEN` (bootstrap).
    pub bootstrap_refresh_token: RefreshToken,
    /// `XOXODAY_ACCESS_TOKEN` (optional bootstrap).
    pub bootstrap_access_token: Option<AccessToken>,
    /// `GATEWAY_KEYS`.
    pub gateway_keys: CallerKeys,
    /// Token refresh windows and retry policy.
    pub token_policy: TokenPolicy,
    /// `UPSTREAM_TIMEOUT_MS`: timeout for Plum API calls other than placeOrder.
    pub upstream_timeout_ms: u32,
    /// `ORDER_TIMEOUT_MS`: timeout for placeOrder (realtime products take up to 120 s).
    pub order_timeout_ms: u32,
    /// `ORDER_RETENTION_SECS`: how long a placed order's answer is kept for
    /// replays of its `poNumber` (default 30 days), and how long an order
    /// whose fate is unknown is checked before plumgate gives up on it (at
    /// least an hour: `ledger::MIN_PENDING_MS`).
    pub order_retention_secs: u32,
    /// `XOXODAY_RATE_LIMITS`: each operation's per-minute budget (Xoxoday's
    /// documented limits unless the account has others).
    pub rate_limits: Budgets,
    /// `DEV_CALLER_KEY`: a caller key the demo page may fetch in local
    /// development. Read through [`Config::dev_caller_key`] only.
    dev_caller_key: Option<CallerKey>,
    /// [`Config::account_id`], worked out once (a SHA-256) instead of per
    /// catalog call.
    account: String,
    /// `ALERT_WEBHOOK_URL` (secret): where alerts are posted; unset, alerts
    /// are still decided and shown by `GET /v1/token`, but not sent.
    pub alert_webhook_url: Option<WebhookUrl>,
    /// `ALERT_REFRESH_FAILURES`: failed refresh runs in a row that make an
    /// alert (default 3).
    pub alert_refresh_failures: u32,
    /// `BALANCE_ALERT_BELOW`: alert when the wallet balance plumgate sees
    /// drops below this (in the wallet's currency); unset: no balance alerts.
    pub balance_alert_below: Option<f64>,
    /// `DEPLOYMENT_NAME`: how alerts name this deployment (see
    /// [`Config::deployment`]).
    pub deployment_name: Option<String>,
}

impl Config {
    /// The refresh endpoint.
    pub fn refresh_url(&self) -> String {
        format!("{}/v1/oauth/token/user", self.oauth_url)
    }
    /// The validate-token endpoint.
    pub fn validate_url(&self) -> String {
        format!("{}/v1/oauth/token", self.oauth_url)
    }
    /// The Plum API endpoint.
    pub fn api_url(&self) -> String {
        self.oauth_url.clone() + "/v1/oauth/api"
    }

    /// The Xoxoday account this configuration talks to (names its token
    /// authority and KV entry; `token::storage::account_id`).
    pub fn account_id(&self) -> &str {
        &self.account
    }

    /// Does plumgate talk to a Xoxoday on this machine (`http://` to a
    /// loopback host: the bundled sandbox)? Never true for a deployment,
    /// which must use `https://`.
    pub fn upstream_on_loopback(&self) -> bool {
        match split_once(&self.oauth_url, "://") {
            Some((scheme, rest)) => scheme.eq_ignore_ascii_case("http") && is_loopback(authority_of(rest)),
            None => false,
        }
    }

    /// The demo page's Content-Security-Policy: only its own scripts,
    /// styles, images and API calls, no inline script, no framing; product
    /// images from `https:` (Xoxoday's) and, while the upstream is the
    /// bundled sandbox on this machine, from `http://127.0.0.1` (its
    /// images). A deployment's page never asks the visitor's own machine.
    pub fn page_csp(&self) -> &'static str {
        if self.upstream_on_loopback() {
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: http://127.0.0.1:* https:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        } else {
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        }
    }

    /// The `deployment` an alert names: `DEPLOYMENT_NAME` when set, else the
    /// Xoxoday host and the account (`stagingaccount.xoxoday.com
    /// account:0123456789abcdef`, the token authority's name), which say
    /// which Xoxoday account the alert is about without revealing the
    /// client id.
    pub fn deployment(&self) -> String {
        match &self.deployment_name {
            Some(name) => name.clone(),
            None => {
                let host = split_once(&self.oauth_url, "://").map_or("", |(_, rest)| authority_of(rest));
                format!("{host} account:{}", self.account_id())
            }
        }
    }

    /// What the alert decisions need to know (`crate::alert`).
    pub fn alert_policy(&self) -> AlertPolicy {
        AlertPolicy {
            webhook: self.alert_webhook_url.is_some(),
            refresh_failures: self.alert_refresh_failures,
            balance_below: self.balance_alert_below,
            deployment: self.deployment(),
        }
    }

    /// `DEV_CALLER_KEY`, for `GET /v1/dev/caller-key`: only while plumgate
    /// talks to a loopback Xoxoday ([`Config::upstream_on_loopback`]), so a
    /// deployment never serves a key even if the variable is set; and only
    /// to a request for a loopback `host` (its `Host` header), so a web page
    /// whose own name resolves to 127.0.0.1 (DNS rebinding) cannot read it.
    pub fn dev_caller_key(&self, host: Option<&str>) -> Option<&CallerKey> {
        self.dev_caller_key.as_ref().filter(|_| self.upstream_on_loopback() && host.is_some_and(is_loopback))
    }
}

/// Parse and validate the configuration.
///
/// `get` returns a variable's value (plain var or secret), or `None` when
/// unset. Empty strings count as unset.
///
/// # Errors
/// Every problem found, each naming its variable and never a value.
pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
    let get = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut problems = Vec::new();

    let env = match get("XOXODAY_ENV").as_deref() {
        None | Some("staging") => XoxodayEnv::Staging,
        Some("production") => XoxodayEnv::Production,
        Some(_) => {
            problems.push("XOXODAY_ENV must be `staging` or `production`".to_string());
            XoxodayEnv::Staging
        }
    };
    let oauth_url = match get("XOXODAY_OAUTH_URL") {
        None => match env {
            XoxodayEnv::Staging => STAGING_URL.to_string(),
            XoxodayEnv::Production => PRODUCTION_URL.to_string(),
        },
        Some(url) => match check_url(&url, false) {
            Ok(u) if names_the_endpoints(&u) => {
                problems.push(OAUTH_URL_NAMES_ENDPOINTS.to_string());
                String::new()
            }
            Ok(u) => {
                if env == XoxodayEnv::Production && names_a_staging_host(&u) {
                    problems.push(STAGING_IN_PRODUCTION.to_string());
                }
                u
            }
            Err(p) => {
                problems.push(format!("XOXODAY_OAUTH_URL {p}"));
                String::new()
            }
        },
    };

    let allowed_origins = match get("ALLOWED_ORIGINS") {
        None => Vec::new(),
        Some(raw) => {
            let mut out = Vec::new();
            for o in crate::text::split(&raw, ",").map(str::trim).filter(|o| !o.is_empty()) {
                if valid_origin(o) {
                    // A browser's Origin never names the scheme's default
                    // port: `https://app.example.com:443` would match nothing.
                    // (By bytes: `valid_origin` saw `http://` or `https://`.)
                    let o = text::trim_end(o, b'/');
                    let b = o.as_bytes();
                    let cut = match b {
                        [.., b':', b'4', b'4', b'3'] if b[4] == b's' => 4,
                        [.., b':', b'8', b'0'] if b[4] == b':' => 3,
                        _ => 0,
                    };
                    out.push(o[..o.len() - cut].to_string());
                } else {
                    problems.push(
                        "ALLOWED_ORIGINS must be comma-separated origins like https://app.example.com"
                            .to_string(),
                    );
                    break;
                }
            }
            out
        }
    };

    let mut num = |name: &str, default: u64, min: u64, max: u64| -> u64 {
        match get(name) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    problems.push(format!("{name} must be a whole number from {min} to {max}"));
                    default
                }
            },
        }
    };
    let catalog_cache_ttl_secs = num("CATALOG_CACHE_TTL_SECS", 21_600, 0, 604_800) as u32;
    let balance_cache_ttl_secs = num("BALANCE_CACHE_TTL_SECS", 10, 0, 86_400) as u32;
    let defaults = TokenPolicy::default();
    let token_policy = TokenPolicy {
        early_refresh_secs: num("TOKEN_EARLY_REFRESH_SECS", defaults.early_refresh_secs, 0, 31_536_000),
        must_refresh_secs: num("TOKEN_MUST_REFRESH_SECS", defaults.must_refresh_secs, 0, 86_400),
        min_refresh_interval_secs: num(
            "TOKEN_MIN_REFRESH_INTERVAL_SECS",
            defaults.min_refresh_interval_secs,
            0,
            86_400,
        ),
        refresh_timeout_ms: num("REFRESH_TIMEOUT_MS", defaults.refresh_timeout_ms, 100, 120_000),
        ..defaults
    };
    let upstream_timeout_ms = num("UPSTREAM_TIMEOUT_MS", 30_000, 100, 300_000) as u32;
    // Not below 120 s: realtime products may take that long (contract §5).
    let order_timeout_ms = num("ORDER_TIMEOUT_MS", 130_000, 120_000, 300_000) as u32;
    let order_retention_secs = num("ORDER_RETENTION_SECS", u64::from(DEFAULT_ORDER_RETENTION_SECS), 1, 31_536_000) as u32;
    let alert_refresh_failures = num("ALERT_REFRESH_FAILURES", 3, 1, 1000) as u32;
    let rate_limits = match get("XOXODAY_RATE_LIMITS") {
        None => Budgets::default(),
        Some(raw) => Budgets::parse(&raw).unwrap_or_else(|p| {
            problems.push(p);
            Budgets::default()
        }),
    };

    let mut required = |name: &str| -> String {
        get(name).unwrap_or_else(|| {
            problems.push(format!("{name} is not set"));
            String::new()
        })
    };
    let client_id = ClientId::new(required("XOXODAY_CLIENT_ID"));
    let client_secret = ClientSecret::new(required("XOXODAY_CLIENT_SECRET"));
    let bootstrap_refresh_token = RefreshToken::new(required("XOXODAY_REFRESH_TOKEN"));
    let bootstrap_access_token = get("XOXODAY_ACCESS_TOKEN").map(AccessToken::new);
    let dev_caller_key = get("DEV_CALLER_KEY").map(CallerKey::new);
    // Posted to exactly as given: a receiver's route may end in `/` (a
    // redirect or a 404 without it, and plumgate follows no redirect).
    let alert_webhook_url = get("ALERT_WEBHOOK_URL").and_then(|url| match check_url(&url, true) {
        Ok(u) => Some(WebhookUrl::new(u)),
        Err(p) => {
            problems.push(format!("ALERT_WEBHOOK_URL {p}"));
            None
        }
    });
    let balance_alert_below = get("BALANCE_ALERT_BELOW").and_then(|v| match crate::jsontext::number_from_text(&v) {
        Some(n) if n > 0.0 && n <= 1e12 => Some(n),
        _ => {
            problems.push("BALANCE_ALERT_BELOW must be a number above 0 (an amount in the wallet's currency), or unset".into());
            None
        }
    });
    let deployment_name = get("DEPLOYMENT_NAME").filter(|name| {
        let ok = name.chars().count() <= 64 && !name.chars().any(char::is_control);
        if !ok {
            problems.push("DEPLOYMENT_NAME must be at most 64 characters, without control characters".into());
        }
        ok
    });
    let gateway_keys = match get("GATEWAY_KEYS") {
        None => {
            problems.push("GATEWAY_KEYS is not set".to_string());
            CallerKeys::default()
        }
        Some(raw) => CallerKeys::parse(&raw).unwrap_or_else(|p| {
            problems.extend(p);
            CallerKeys::default()
        }),
    };

    if !problems.is_empty() {
        return Err(problems);
    }
    let account = account_id(&oauth_url, client_id.expose_secret());
    Ok(Config {
        account,
        env,
        oauth_url,
        allowed_origins,
        catalog_cache_ttl_secs,
        balance_cache_ttl_secs,
        client_id,
        client_secret,
        bootstrap_refresh_token,
        bootstrap_access_token,
        gateway_keys,
        token_policy,
        upstream_timeout_ms,
        order_timeout_ms,
        order_retention_secs,
        rate_limits,
        dev_caller_key,
        alert_webhook_url,
        alert_refresh_failures,
        balance_alert_below,
        deployment_name,
    })
}

/// The problem a missing binding is, as a call that needed it says it.
pub fn missing_binding(name: &str) -> String {
    format!("{name} binding is missing")
}

/// `/healthz`'s problems with the bindings: one for each of
/// [`REQUIRED_BINDINGS`] that `bound` does not find. Without it a missing
/// one shows only when a call needs it, and the calls that use the token
/// cache or the limiter go on without them (unshared, unchecked).
pub fn binding_problems(bound: &dyn Fn(&str) -> bool) -> Vec<String> {
    REQUIRED_BINDINGS.iter().filter(|name| !bound(name)).map(|name| missing_binding(name)).collect()
}

/// Check a URL plumgate sends to (an OAUTH_URL override, the alert
/// webhook): `https://` anywhere, `http://` only for loopback hosts (the one
/// loopback rule, [`is_loopback`]), a host, no credentials, no fragment, and
/// a query only where `query_ok` (the webhook, posted to exactly as given).
/// Returns it as given, or, for a base the endpoints' paths follow (no
/// query), without a trailing slash.
fn check_url(url: &str, query_ok: bool) -> Result<String, &'static str> {
    let (scheme, rest) = split_once(url, "://").ok_or("must be an https:// URL")?;
    let authority = authority_of(rest);
    if host_of(authority).is_none() || text::has(authority.as_bytes(), b'@') {
        return Err("must name a host (and a port up to 65535, if any), with no credentials (user:password@) in it");
    }
    if text::has(rest.as_bytes(), b'#') || (!query_ok && text::has(rest.as_bytes(), b'?')) {
        return Err(if query_ok { "must not have a fragment" } else { "must not have a query or fragment" });
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if is_loopback(authority) => {}
        "http" => return Err("may use http:// only for loopback hosts (127.0.0.0/8, localhost, [::1])"),
        _ => return Err("must be an https:// URL"),
    }
    Ok(if query_ok { url } else { text::trim_end(url, b'/') }.to_string())
}

/// Production credentials sent to a staging host: `XOXODAY_ENV`
/// production with an override naming one. (A production host under the
/// default `staging` is a choice the override makes, as before.)
const STAGING_IN_PRODUCTION: &str =
    "XOXODAY_OAUTH_URL names a Xoxoday staging host while XOXODAY_ENV is production";

/// The base URL given with Xoxoday's endpoint paths in it: plumgate adds
/// them itself, so every call would miss (404 at the refresh, named only
/// by `last_error` and an alert, not by `/healthz`).
const OAUTH_URL_NAMES_ENDPOINTS: &str = "XOXODAY_OAUTH_URL must end before /v1/oauth (e.g. https://stagingstores.xoxoday.com/chef): plumgate adds the paths";

/// Does a checked URL's path end with the endpoints' part, `/v1/oauth`
/// (the `servers` of Xoxoday's OpenAPI files) or an endpoint under it? (A
/// proxy mounted elsewhere under such a path stays valid.)
fn names_the_endpoints(url: &str) -> bool {
    let rest = split_once(url, "://").map_or("", |(_, rest)| rest);
    let path = rest[authority_of(rest).len()..].to_ascii_lowercase();
    ["/v1/oauth", "/v1/oauth/api", "/v1/oauth/token", "/v1/oauth/token/user"].iter().any(|end| path.ends_with(end))
}

/// Xoxoday's staging hosts (xoxoday-api.md's host table).
const STAGING_HOSTS: [&str; 3] = ["stagingaccount.xoxoday.com", "stagingstores.xoxoday.com", "canvas.xoxoday.com"];

/// Does a checked URL name one of [`STAGING_HOSTS`] (any port; a final dot
/// and the letters' case do not matter)?
fn names_a_staging_host(url: &str) -> bool {
    let authority = split_once(url, "://").map_or("", |(_, rest)| authority_of(rest));
    let host = text::trim_end(text::rsplit_once(authority, b':').map_or(authority, |(h, _)| h), b'.');
    STAGING_HOSTS.iter().any(|known| known.eq_ignore_ascii_case(host))
}

/// The authority (`host[:port]`) of what follows a URL's `://` (a `\`
/// ends it too: the URL parser reads it as `/` in an `http(s)` URL).
fn authority_of(rest: &str) -> &str {
    &rest[..rest.bytes().position(|b| matches!(b, b'/' | b'?' | b'#' | b'\\')).unwrap_or(rest.len())]
}

/// The host of an authority (host[:port]) as the runtime's URL parser
/// would take it, or `None`: a bracketed IPv6 address (hex digits, `:`,
/// `.`; returned without the brackets), or a name without what a URL's host
/// may not hold (controls, space, `:`, `<>[\]^|`; other bytes, letters
/// of other scripts too, pass), then a port, if any, of digits up to 65535
/// (`host:` keeps the default). A host the parser refuses would pass the
/// configuration and fail every fetch, with `/healthz` answering 200.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port, name) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, tail) = split_once(v6, "]")?;
            let port = if tail.is_empty() { "" } else { tail.strip_prefix(':')? };
            (h, port, h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        }
        None => {
            let (h, port) = text::rsplit_once(authority, b':').unwrap_or((authority, ""));
            (h, port, !h.bytes().any(|b| b <= b' ' || b == 0x7f || text::has(b":<>[\\]^|", b)))
        }
    };
    let port_ok = port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u64>().map_or(port.is_empty(), |n| n <= 65_535);
    (name && port_ok && !host.is_empty()).then_some(host)
}

/// Is the authority (host[:port]) a loopback host? The one loopback rule:
/// 127.0.0.0/8, `localhost`, `[::1]`, with a port as [`host_of`] takes it
/// (what follows the host is refused here, not by the first fetch).
fn is_loopback(authority: &str) -> bool {
    let Some(host) = host_of(authority) else { return false };
    if host.eq_ignore_ascii_case("localhost") || (host == "::1" && authority.starts_with('[')) {
        return true;
    }
    // Four parts, the first `127`, each what `parse::<u8>` reads (read as a
    // `u64`, whose parser the wasm has anyway: `u8`'s would be one more).
    let mut parts = 0;
    text::split(host, ".").all(|p| {
        parts += 1;
        !p.is_empty() && p.len() <= 3 && p.parse::<u64>().is_ok_and(|n| n <= 255)
    }) && parts == 4
        && host.starts_with("127.")
}

fn valid_origin(o: &str) -> bool {
    let Some((scheme, host)) = split_once(o, "://") else { return false };
    (scheme == "https" || scheme == "http")
        && !host.is_empty()
        && !text::has(text::trim_end(host, b'/').as_bytes(), b'/')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || text::has(b"-.:[]/", b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::hash_key;
    use std::collections::HashMap;

    pub(crate) fn good_vars() -> HashMap<&'static str, String> {
        let mut m = HashMap::new();
        m.insert("XOXODAY_CLIENT_ID", "client-id-value".to_string());
        m.insert("XOXODAY_CLIENT_SECRET", "client-secret-value".to_string());
        m.insert("XOXODAY_REFRESH_TOKEN", "refresh-token-value".to_string());
        m.insert(
            "GATEWAY_KEYS",
            format!(r#"[{{"id":"dev","sha256":"{}","scopes":["*"]}}]"#, hash_key("dev-key-0123456789abcdef")),
        );
        m
    }

    fn parse_with(vars: &HashMap<&'static str, String>) -> Result<Config, Vec<String>> {
        parse(&|n| vars.get(n).cloned())
    }

    #[test]
    fn defaults() {
        let c = parse_with(&good_vars()).unwrap();
        assert_eq!(c.env, XoxodayEnv::Staging);
        assert_eq!(c.oauth_url, STAGING_URL);
        assert_eq!(c.refresh_url(), "https://stagingaccount.xoxoday.com/chef/v1/oauth/token/user");
        assert_eq!(c.catalog_cache_ttl_secs, 21_600);
        assert_eq!(c.balance_cache_ttl_secs, 10);
        assert_eq!(c.order_retention_secs, 2_592_000);
        assert_eq!(c.rate_limits, crate::limits::Budgets::default());
        assert!(c.allowed_origins.is_empty());
        assert!(c.bootstrap_access_token.is_none());
        assert_eq!(c.gateway_keys.len(), 1);
    }

    #[test]
    fn production_and_overrides() {
        let mut v = good_vars();
        v.insert("XOXODAY_ENV", "production".into());
        assert_eq!(parse_with(&v).unwrap().oauth_url, PRODUCTION_URL);
        for (url, want) in [
            ("https://accounts.xoxoday.com/chef/", PRODUCTION_URL),
            ("https://xoxoday-egress.example.com/chef", "https://xoxoday-egress.example.com/chef"),
            ("http://127.0.0.1:8788/chef", "http://127.0.0.1:8788/chef"),
            ("http://localhost:9/chef", "http://localhost:9/chef"),
            ("http://[::1]:8788/chef", "http://[::1]:8788/chef"),
            ("http://127.1.2.3/chef", "http://127.1.2.3/chef"),
            ("https://egress.example.com/v1/oauthproxy/chef", "https://egress.example.com/v1/oauthproxy/chef"),
            ("https://egress.example.com/v1/oauth/xoxoday/chef", "https://egress.example.com/v1/oauth/xoxoday/chef"),
        ] {
            v.insert("XOXODAY_OAUTH_URL", url.into());
            assert_eq!(parse_with(&v).unwrap().oauth_url, want, "{url}");
        }
    }

    #[test]
    fn production_must_not_name_a_staging_host() {
        let to_staging = STAGING_IN_PRODUCTION;
        for (env, url, problem) in [
            (Some("production"), "https://stagingaccount.xoxoday.com/chef", Some(to_staging)),
            (Some("production"), "https://stagingstores.xoxoday.com/chef/", Some(to_staging)),
            (Some("production"), "https://Canvas.Xoxoday.com.:443/chef", Some(to_staging)),
            (Some("staging"), "https://accounts.xoxoday.com/chef", None),
            (Some("staging"), "https://stagingstores.xoxoday.com/chef", None),
            (Some("staging"), "https://canvas.xoxoday.com/chef", None),
            (Some("staging"), "http://127.0.0.1:8788/chef", None),
            (Some("production"), "http://localhost:8788/chef", None),
            (Some("production"), "https://stores.xoxoday.com/chef", None),
            (Some("production"), "https://accounts.xoxoday.com.evil.example/chef", None),
            (None, "https://accounts.xoxoday.com/chef", None),
            (None, "https://canvas.xoxoday.com/chef", None),
        ] {
            let mut v = good_vars();
            if let Some(env) = env {
                v.insert("XOXODAY_ENV", env.into());
            }
            v.insert("XOXODAY_OAUTH_URL", url.into());
            match (parse_with(&v), problem) {
                (Err(p), Some(want)) => assert_eq!(p, [want], "{env:?} {url}"),
                (Ok(c), None) => assert_eq!(c.oauth_url, url.trim_end_matches('/'), "{env:?} {url}"),
                (got, _) => panic!("{env:?} {url}: {:?}", got.map(|c| c.oauth_url)),
            }
        }
        // A value XOXODAY_ENV may not have is its own problem, and no choice.
        let mut v = good_vars();
        v.insert("XOXODAY_ENV", "prod".into());
        v.insert("XOXODAY_OAUTH_URL", "https://stagingaccount.xoxoday.com/chef".into());
        assert_eq!(parse_with(&v).unwrap_err(), ["XOXODAY_ENV must be `staging` or `production`"]);
    }

    #[test]
    fn the_token_settings_are_read_each_under_its_own_name() {
        let mut v = good_vars();
        for (name, value) in [
            ("TOKEN_EARLY_REFRESH_SECS", "100"),
            ("TOKEN_MUST_REFRESH_SECS", "200"),
            ("TOKEN_MIN_REFRESH_INTERVAL_SECS", "300"),
            ("REFRESH_TIMEOUT_MS", "400"),
        ] {
            v.insert(name, value.into());
        }
        let p = parse_with(&v).unwrap().token_policy;
        assert_eq!((p.early_refresh_secs, p.must_refresh_secs, p.min_refresh_interval_secs, p.refresh_timeout_ms), (100, 200, 300, 400));
        v.insert("REFRESH_TIMEOUT_MS", "99".into());
        assert_eq!(parse_with(&v).unwrap_err(), vec!["REFRESH_TIMEOUT_MS must be a whole number from 100 to 120000".to_string()]);
    }

    #[test]
    fn insecure_urls_fail_closed() {
        for url in [
            "http://example.com/chef",
            "http://127.0.0.1.evil.com/chef",
            "http://10.0.0.1/chef",
            "ftp://127.0.0.1/chef",
            "https://user:pw@example.com/chef",
            "not a url",
            "http://[::2]/chef",
            "http://[::1]x/chef",
            "http://[::1].evil.example/chef",
            "http://[::1]:80x/chef",
            "http://localhost:8x/chef",
            "https://stagingstores.xoxoday.com/chef/v1/oauth",
            "https://stagingstores.xoxoday.com/chef/v1/oauth/",
            "https://stagingaccount.xoxoday.com/chef/v1/oauth/api",
            "https://stagingaccount.xoxoday.com/chef/V1/OAuth/token/user",
            // What the runtime's URL parser refuses (every refresh would
            // back off for ever while /healthz answered 200).
            "https://staging stores.xoxoday.com/chef",
            "https://stagingstores.xoxoday.com:abc/chef",
            "https://stagingstores.xoxoday.com:65536/chef",
            "http://localhost:99999/chef",
            // A query would sit before the endpoints' paths.
            "https://stagingstores.xoxoday.com/chef?x=1",
        ] {
            let mut v = good_vars();
            v.insert("XOXODAY_OAUTH_URL", url.into());
            let p = parse_with(&v).unwrap_err();
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(p[0].starts_with("XOXODAY_OAUTH_URL"), "{p:?}");
            assert!(!p[0].contains(url), "never echo the value: {p:?}");
        }
    }

    #[test]
    fn each_required_variable_is_named() {
        for name in ["XOXODAY_CLIENT_ID", "XOXODAY_CLIENT_SECRET", "XOXODAY_REFRESH_TOKEN", "GATEWAY_KEYS"] {
            let mut v = good_vars();
            v.remove(name);
            let p = parse_with(&v).unwrap_err();
            assert_eq!(p, vec![format!("{name} is not set")]);
            v.insert(name, "   ".into());
            assert_eq!(parse_with(&v).unwrap_err(), vec![format!("{name} is not set")]);
        }
    }

    #[test]
    fn bad_numbers_and_env_are_named_without_values() {
        let mut v = good_vars();
        v.insert("XOXODAY_ENV", "prod-secret-ish".into());
        v.insert("CATALOG_CACHE_TTL_SECS", "-5".into());
        v.insert("BALANCE_CACHE_TTL_SECS", "ten".into());
        v.insert("ALLOWED_ORIGINS", "javascript:alert(1)".into());
        let p = parse_with(&v).unwrap_err();
        assert_eq!(p.len(), 4, "{p:?}");
        let all = p.join("\n");
        for n in ["XOXODAY_ENV", "CATALOG_CACHE_TTL_SECS", "BALANCE_CACHE_TTL_SECS", "ALLOWED_ORIGINS"] {
            assert!(all.contains(n), "{all}");
        }
        for val in ["prod-secret-ish", "-5", "ten", "javascript"] {
            assert!(!all.contains(val), "{all}");
        }
    }

    #[test]
    fn rate_limits_override_the_documented_ones() {
        let mut v = good_vars();
        v.insert("XOXODAY_RATE_LIMITS", r#"{"getBalance": 30}"#.into());
        let c = parse_with(&v).unwrap();
        assert_eq!(c.rate_limits.of(crate::ops::Operation::GetBalance), 30);
        assert_eq!(c.rate_limits.of(crate::ops::Operation::GetVouchers), 50);
        v.insert("XOXODAY_RATE_LIMITS", r#"{"getBalance": "lots"}"#.into());
        let p = parse_with(&v).unwrap_err();
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("XOXODAY_RATE_LIMITS") && !p[0].contains("lots"), "{p:?}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = parse_with(&good_vars()).unwrap();
        let d = format!("{c:?}");
        for s in ["client-id-value", "client-secret-value", "refresh-token-value"] {
            assert!(!d.contains(s), "{d}");
        }
    }

    #[test]
    fn the_dev_key_is_served_only_against_a_loopback_xoxoday() {
        let mut v = good_vars();
        let here = Some("127.0.0.1:8787");
        assert!(parse_with(&v).unwrap().dev_caller_key(here).is_none(), "unset");
        v.insert("DEV_CALLER_KEY", "pgk_dev-key-SECRET".into());
        let c = parse_with(&v).unwrap();
        assert!(!c.upstream_on_loopback() && c.dev_caller_key(here).is_none(), "staging: never");
        assert!(!format!("{c:?}").contains("SECRET"));
        for (url, local) in [
            ("http://127.0.0.1:8788/chef", true),
            ("http://127.9.9.9/chef", true),
            ("http://localhost:8788/chef", true),
            ("http://[::1]:8788/chef", true),
            ("https://127.0.0.1/chef", false),
            ("https://stagingstores.xoxoday.com/chef", false),
        ] {
            v.insert("XOXODAY_OAUTH_URL", url.into());
            let c = parse_with(&v).unwrap();
            assert_eq!(c.upstream_on_loopback(), local, "{url}");
            assert_eq!(c.dev_caller_key(here).map(|k| k.expose_secret()), local.then_some("pgk_dev-key-SECRET"), "{url}");
        }
        // Only to a request addressed to a loopback name.
        v.insert("XOXODAY_OAUTH_URL", "http://127.0.0.1:8788/chef".into());
        let c = parse_with(&v).unwrap();
        for (host, served) in [
            (Some("localhost:8787"), true),
            (Some("[::1]:8787"), true),
            (Some("127.0.0.1"), true),
            (Some("evil.example:8787"), false),
            (Some("127.0.0.1.evil.example"), false),
            (Some("localhost.evil.example:8787"), false),
            (Some("[::1].evil.example"), false),
            (Some("[::1]:"), true),
            (None, false),
        ] {
            assert_eq!(c.dev_caller_key(host).is_some(), served, "{host:?}");
        }
        v.insert("DEV_CALLER_KEY", "  ".into());
        v.insert("XOXODAY_OAUTH_URL", "http://127.0.0.1:8788/chef".into());
        assert!(parse_with(&v).unwrap().dev_caller_key(here).is_none(), "blank is unset");
    }

    #[test]
    fn a_loopback_address_is_four_octets_from_127() {
        // The rule as first written, with `u8`'s parser.
        let rule = |host: &str| {
            let parts: Vec<&str> = host.split('.').collect();
            parts.len() == 4 && parts[0] == "127" && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
        };
        for host in [
            "127.0.0.1", "127.255.255.255", "127.0.0.256", "127.0.0", "127.0.0.1.2", "127..0.1", "127.0.0.", "128.0.0.1",
            "0127.0.0.1", "127.+1.0.1", "127.-1.0.1", "127.001.0.1", "127.0001.0.1", "127.0.0.x", "127", "", ".127.0.0.1",
            "127.0.0.1.", "127.+.0.1",
        ] {
            assert_eq!(is_loopback(host), rule(host), "{host}");
        }
    }

    #[test]
    fn the_page_takes_loopback_images_only_from_a_loopback_upstream() {
        let mut v = good_vars();
        let deployed = parse_with(&v).unwrap().page_csp();
        assert!(deployed.contains("img-src 'self' data: https:;") && !deployed.contains("127.0.0.1"), "{deployed}");
        v.insert("XOXODAY_OAUTH_URL", "http://127.0.0.1:8788/chef".into());
        let local = parse_with(&v).unwrap().page_csp();
        assert!(local.contains("img-src 'self' data: http://127.0.0.1:* https:;"), "{local}");
        // Otherwise the same policy.
        assert_eq!(local.replace(" http://127.0.0.1:*", ""), deployed);
    }

    #[test]
    fn the_account_follows_url_and_client_id() {
        let c = parse_with(&good_vars()).unwrap();
        assert_eq!(c.account_id(), account_id(STAGING_URL, "client-id-value"));
    }

    #[test]
    fn alert_settings_default_to_recorded_only() {
        let c = parse_with(&good_vars()).unwrap();
        assert!(c.alert_webhook_url.is_none());
        assert_eq!(c.alert_refresh_failures, 3);
        assert_eq!(c.balance_alert_below, None);
        let p = c.alert_policy();
        assert!(!p.webhook && p.refresh_failures == 3 && p.balance_below.is_none());
        assert_eq!(p.deployment, format!("stagingaccount.xoxoday.com account:{}", c.account_id()));
    }

    #[test]
    fn alert_settings_parse() {
        let mut v = good_vars();
        v.insert("ALERT_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/SECRET".into());
        v.insert("ALERT_REFRESH_FAILURES", "5".into());
        v.insert("BALANCE_ALERT_BELOW", "1000.50".into());
        v.insert("DEPLOYMENT_NAME", "rewards-prod (eu)".into());
        let c = parse_with(&v).unwrap();
        assert_eq!(c.alert_webhook_url.as_ref().unwrap().expose_secret(), "https://hooks.slack.com/services/T0/B0/SECRET");
        assert!(!format!("{c:?}").contains("SECRET"), "the webhook URL is a secret");
        let p = c.alert_policy();
        assert_eq!((p.webhook, p.refresh_failures, p.balance_below), (true, 5, Some(1000.5)));
        assert_eq!(p.deployment, "rewards-prod (eu)");
        for url in [
            "http://127.0.0.1:9/hook", "http://localhost/hook?token=x", "http://[::1]:8/h", "https://example.com/h?a=b",
            "https://hooks.example.com:65535/h", "https://example.com:/h", "https://[2001:db8::1]:8443/h", "https://bücher.example/h",
            "https://my_hooks.example/h", "https://hooks.example.com\\h", "https://ho%6Fks.example.com/h",
            // A receiver's route ending in `/` (Zapier's catch hooks), a query ending in one.
            "https://hooks.example.com/catch/1/abc/", "https://h.example/p?t=ab/",
        ] {
            v.insert("ALERT_WEBHOOK_URL", url.into());
            assert_eq!(parse_with(&v).unwrap().alert_webhook_url.unwrap().expose_secret(), url, "{url}");
        }
        v.insert("XOXODAY_OAUTH_URL", "http://127.0.0.1:8788/chef".into());
        v.remove("DEPLOYMENT_NAME");
        let c = parse_with(&v).unwrap();
        assert_eq!(c.deployment(), format!("127.0.0.1:8788 account:{}", c.account_id()));
    }

    #[test]
    fn bad_alert_settings_are_named_without_values() {
        for (name, value) in [
            ("ALERT_WEBHOOK_URL", "http://hooks.example.com/SECRET"),
            ("ALERT_WEBHOOK_URL", "http://10.0.0.1/SECRET"),
            ("ALERT_WEBHOOK_URL", "https://user:SECRET@hooks.example.com/x"),
            ("ALERT_WEBHOOK_URL", "http://user:SECRET@127.0.0.1:9/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks.example.com/x#SECRET"),
            ("ALERT_WEBHOOK_URL", "ftp://127.0.0.1/SECRET"),
            ("ALERT_WEBHOOK_URL", "SECRET"),
            // Hosts and ports the runtime's URL parser refuses: every
            // delivery would fail while /healthz answered 200.
            ("ALERT_WEBHOOK_URL", "https://hooks SECRET.example/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks.SECRET.example:99999/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks.SECRET.example:abc/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks.SECRET.example:-1/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks.SECRET.example:+443/x"),
            ("ALERT_WEBHOOK_URL", "https://hooks|SECRET.example/x"),
            ("ALERT_WEBHOOK_URL", "https://[::1/SECRET.example"),
            ("ALERT_WEBHOOK_URL", "https://[fe80::1%25eth0]/SECRET.example"),
            ("ALERT_WEBHOOK_URL", "https://:443/SECRET.example"),
            ("ALERT_WEBHOOK_URL", "https://hooks:SECRET.example:443/x"),
            ("ALERT_REFRESH_FAILURES", "0"),
            ("ALERT_REFRESH_FAILURES", "three"),
            ("BALANCE_ALERT_BELOW", "0"),
            ("BALANCE_ALERT_BELOW", "-5"),
            ("BALANCE_ALERT_BELOW", "NaN"),
            ("BALANCE_ALERT_BELOW", "lots"),
            ("DEPLOYMENT_NAME", "line\nbreak"),
            ("DEPLOYMENT_NAME", "x"),
        ] {
            let mut v = good_vars();
            let value = if name == "DEPLOYMENT_NAME" && value == "x" { "y".repeat(65) } else { value.replace("\\n", "\n") };
            v.insert(name, value.clone());
            let p = parse_with(&v).unwrap_err();
            assert_eq!(p.len(), 1, "{name}={value}: {p:?}");
            assert!(p[0].starts_with(name), "{p:?}");
            assert!(!p[0].contains("SECRET") && (value.len() < 4 || !p[0].contains(&value)), "never echo the value: {p:?}");
            if value.contains('@') || value.contains("SECRET.example") {
                assert!(p[0].ends_with("must name a host (and a port up to 65535, if any), with no credentials (user:password@) in it"), "{p:?}");
            }
        }
    }

    #[test]
    fn health_names_each_missing_binding() {
        assert!(binding_problems(&|_| true).is_empty());
        assert_eq!(
            binding_problems(&|_| false),
            [
                "TOKEN_CACHE binding is missing",
                "TOKEN_AUTHORITY binding is missing",
                "ORDER_LEDGER binding is missing",
                "RATE_LIMITER binding is missing",
                "KEY_REGISTRY binding is missing",
            ]
        );
        let without = |gone: &'static str| move |name: &str| name != gone;
        assert_eq!(binding_problems(&without("TOKEN_CACHE")), ["TOKEN_CACHE binding is missing"]);
        assert_eq!(binding_problems(&without("RATE_LIMITER")), ["RATE_LIMITER binding is missing"]);
        assert!(binding_problems(&without("ASSETS")).is_empty(), "the demo page's assets are not required");
    }

    #[test]
    fn origins_parse() {
        let mut v = good_vars();
        v.insert("ALLOWED_ORIGINS", "https://a.example.com, http://localhost:3000/".into());
        let c = parse_with(&v).unwrap();
        assert_eq!(c.allowed_origins, vec!["https://a.example.com", "http://localhost:3000"]);
        // The scheme's default port is dropped (browsers never send it);
        // other ports stay.
        v.insert("ALLOWED_ORIGINS", "https://a.example.com:443/,http://b.example.com:80,https://c.example.com:4443,http://[::1]:80,https://d.example.com:80".into());
        let c = parse_with(&v).unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["https://a.example.com", "http://b.example.com", "https://c.example.com:4443", "http://[::1]", "https://d.example.com:80"]
        );
        assert!(crate::cors::origin_allowed("https://a.example.com", &c.allowed_origins));
    }

    #[test]
    fn order_timeout_is_never_below_the_realtime_products_120_s() {
        let mut v = good_vars();
        v.insert("ORDER_TIMEOUT_MS", "119999".into());
        let problems = parse_with(&v).unwrap_err();
        assert_eq!(problems, ["ORDER_TIMEOUT_MS must be a whole number from 120000 to 300000"]);
        v.insert("ORDER_TIMEOUT_MS", "120000".into());
        assert_eq!(parse_with(&v).unwrap().order_timeout_ms, 120_000);
        v.remove("ORDER_TIMEOUT_MS");
        assert_eq!(parse_with(&v).unwrap().order_timeout_ms, 130_000);
    }

    /// README: "whole numbers `CATALOG_CACHE_TTL_SECS` 0–604800,
    /// `BALANCE_CACHE_TTL_SECS` 0–86400, `TOKEN_EARLY_REFRESH_SECS`
    /// 0–31536000, `TOKEN_MUST_REFRESH_SECS` and
    /// `TOKEN_MIN_REFRESH_INTERVAL_SECS` 0–86400, `REFRESH_TIMEOUT_MS`
    /// 100–120000, `UPSTREAM_TIMEOUT_MS` 100–300000, `ORDER_TIMEOUT_MS`
    /// 120000–300000, `ORDER_RETENTION_SECS` 1–31536000,
    /// `ALERT_REFRESH_FAILURES` 1–1000": each end is taken, one past it is
    /// refused, and `UPSTREAM_TIMEOUT_MS` defaults to 30000.
    #[test]
    fn each_number_takes_both_ends_of_its_range_and_nothing_past_them() {
        type Read = fn(&Config) -> u64;
        let knobs: [(&str, u64, u64, Read); 10] = [
            ("CATALOG_CACHE_TTL_SECS", 0, 604_800, |c| c.catalog_cache_ttl_secs.into()),
            ("BALANCE_CACHE_TTL_SECS", 0, 86_400, |c| c.balance_cache_ttl_secs.into()),
            ("TOKEN_EARLY_REFRESH_SECS", 0, 31_536_000, |c| c.token_policy.early_refresh_secs),
            ("TOKEN_MUST_REFRESH_SECS", 0, 86_400, |c| c.token_policy.must_refresh_secs),
            ("TOKEN_MIN_REFRESH_INTERVAL_SECS", 0, 86_400, |c| c.token_policy.min_refresh_interval_secs),
            ("REFRESH_TIMEOUT_MS", 100, 120_000, |c| c.token_policy.refresh_timeout_ms),
            ("UPSTREAM_TIMEOUT_MS", 100, 300_000, |c| c.upstream_timeout_ms.into()),
            ("ORDER_TIMEOUT_MS", 120_000, 300_000, |c| c.order_timeout_ms.into()),
            ("ORDER_RETENTION_SECS", 1, 31_536_000, |c| c.order_retention_secs.into()),
            ("ALERT_REFRESH_FAILURES", 1, 1000, |c| c.alert_refresh_failures.into()),
        ];
        for (name, min, max, read) in knobs {
            let mut v = good_vars();
            for n in [min, max] {
                v.insert(name, n.to_string());
                assert_eq!(read(&parse_with(&v).unwrap()), n, "{name}={n}");
            }
            let refused = vec![format!("{name} must be a whole number from {min} to {max}")];
            v.insert(name, (max + 1).to_string());
            assert_eq!(parse_with(&v).unwrap_err(), refused, "{name} past its end");
            if min > 0 {
                v.insert(name, (min - 1).to_string());
                assert_eq!(parse_with(&v).unwrap_err(), refused, "{name} below its start");
            }
        }
        assert_eq!(parse_with(&good_vars()).unwrap().upstream_timeout_ms, 30_000);
    }

    /// README: `BALANCE_ALERT_BELOW` "a number above 0 and at most 10^12";
    /// `DEPLOYMENT_NAME` "up to 64 characters" (characters, not bytes).
    #[test]
    fn the_balance_threshold_and_the_deployment_name_take_their_largest() {
        let mut v = good_vars();
        v.insert("BALANCE_ALERT_BELOW", "1000000000000".into());
        assert_eq!(parse_with(&v).unwrap().balance_alert_below, Some(1e12));
        v.insert("BALANCE_ALERT_BELOW", "1000000000000.5".into());
        assert_eq!(parse_with(&v).unwrap_err().len(), 1);
        let mut v = good_vars();
        for name in ["d".repeat(64), "é".repeat(64)] {
            v.insert("DEPLOYMENT_NAME", name.clone());
            assert_eq!(parse_with(&v).unwrap().deployment(), name);
        }
    }

    /// The webhook URL: no `user@` even without a password, no port too
    /// long to read, no DEL in the host (the runtime's URL parser refuses
    /// it); a bracketed IPv6 address may end in dotted IPv4.
    #[test]
    fn webhook_hosts_the_url_parser_refuses_are_refused() {
        let mut v = good_vars();
        for url in ["https://user@hooks.example.com/x", "https://hooks.example.com:99999999999999999999999/x", "https://hoo\u{7f}ks.example.com/x"] {
            v.insert("ALERT_WEBHOOK_URL", url.into());
            assert_eq!(
                parse_with(&v).unwrap_err(),
                ["ALERT_WEBHOOK_URL must name a host (and a port up to 65535, if any), with no credentials (user:password@) in it"],
                "{url:?}"
            );
        }
        v.insert("ALERT_WEBHOOK_URL", "https://[::ffff:192.0.2.1]:8443/h".into());
        assert_eq!(parse_with(&v).unwrap().alert_webhook_url.unwrap().expose_secret(), "https://[::ffff:192.0.2.1]:8443/h");
    }

    #[test]
    fn the_bootstrap_access_token_is_read() {
        let mut v = good_vars();
        v.insert("XOXODAY_ACCESS_TOKEN", " access-token-value ".into());
        let c = parse_with(&v).unwrap();
        assert_eq!(c.bootstrap_access_token.as_ref().map(|t| t.expose_secret()), Some("access-token-value"));
    }

    /// README: origins "like `https://app.example.com` (a lower-case `http`
    /// or `https` scheme, a host and port, no path; a trailing `/` is
    /// dropped; `*` is not accepted)". `:443` is dropped only from
    /// `https` (an `http` origin on 443 is another origin than port 80);
    /// empty items between commas are skipped.
    #[test]
    fn origins_are_a_scheme_a_host_and_a_port_only() {
        let mut v = good_vars();
        v.insert("ALLOWED_ORIGINS", "http://a.example.com:443, ,https://b.example.com,".into());
        assert_eq!(parse_with(&v).unwrap().allowed_origins, vec!["http://a.example.com:443", "https://b.example.com"]);
        for bad in ["ftp://a.example.com", "HTTPS://a.example.com", "https://", "https://a.example.com/app", "https://a.example.com?x=1", "https://a.example.com#x", "*"] {
            v.insert("ALLOWED_ORIGINS", bad.into());
            assert_eq!(parse_with(&v).unwrap_err(), ["ALLOWED_ORIGINS must be comma-separated origins like https://app.example.com"], "{bad}");
        }
    }
}
