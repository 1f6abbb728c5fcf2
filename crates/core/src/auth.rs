//! Caller authentication and scopes.
//!
//! Owns `GATEWAY_KEYS` (parsing and validation, the optional `limits` of
//! each entry) and the check of an `Authorization: Bearer <key>` header
//! against it. Keys are never stored: only their SHA-256. A presented key is
//! hashed and compared against every configured hash in constant time,
//! without early exit ([`find_hash`], also used for the runtime keys of
//! `keys`), so response timing says nothing about which key (or how much of
//! one) matched.
//!
//! Scopes: `catalog`, `balance`, `orders:read`, `orders:write`, `admin`, and
//! `*` for all of them. `orders:write` implies `orders:read` (a key that may
//! place an order may look it up).

use crate::quota::Limits;
use crate::secret::{constant_time_eq, sha256_hex, CallerKey};
use serde_json::Value;

/// Every scope name a key may hold.
pub const SCOPES: [&str; 6] = ["catalog", "balance", "orders:read", "orders:write", "admin", "*"];

/// `SCOPES.join(", ")`, for the messages that list them (written out:
/// `join` over `&str` would be a second copy of `join` in the wasm, beside
/// the one over `String`; a test holds the two together).
pub const SCOPE_LIST: &str = "catalog, balance, orders:read, orders:write, admin, *";

/// The members a `GATEWAY_KEYS` entry may have.
const ENTRY_MEMBERS: [&str; 4] = ["id", "sha256", "scopes", "limits"];

/// One configured caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Caller id, safe to log.
    pub id: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: [u8; 64],
    /// Scope names.
    pub scopes: Vec<String>,
    /// Its `limits` (none when the entry has no `limits` object).
    pub limits: Limits,
}

/// The parsed `GATEWAY_KEYS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerKeys {
    entries: Vec<KeyEntry>,
}

/// Where a key is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `GATEWAY_KEYS` (changed only by a redeploy).
    Static,
    /// Made at runtime (`POST /v1/keys`), kept by the `KeyRegistry`.
    Runtime,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id (unique across `GATEWAY_KEYS` and runtime keys).
    pub id: String,
    scopes: Vec<String>,
    /// The key's limits.
    pub limits: Limits,
    /// Where the key is configured.
    pub source: KeySource,
    /// When the key stops working (a runtime key's expiry or the end of
    /// its grace period after a rotation); `None`: not by itself.
    pub until_ms: Option<i64>,
}

impl Caller {
    /// A caller with these scopes and limits, whose key does not end by
    /// itself.
    pub fn new(id: impl Into<String>, scopes: Vec<String>, limits: Limits, source: KeySource) -> Caller {
        Caller { id: id.into(), scopes, limits, source, until_ms: None }
    }

    /// Does this caller hold `scope`?
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| {
            s == "*" || s == scope || (scope == "orders:read" && s == "orders:write")
        })
    }
}

/// Why a request is not authenticated. Every variant answers `401`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <key>`, or the key has characters or a length no key has.
    Malformed,
    /// Well-formed but matches no configured key.
    Unknown,
}

impl AuthError {
    /// Human sentence for the error body.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing Authorization header; send `Authorization: Bearer <key>`",
            AuthError::Malformed => "malformed Authorization header; expected `Bearer <key>`",
            AuthError::Unknown => "unknown gateway key",
        }
    }
}

impl CallerKeys {
    /// Parse `GATEWAY_KEYS`. Problems name the entry and field, never a value.
    ///
    /// # Errors
    /// A list of human-readable problems when the JSON is not an array of
    /// valid `{id, sha256, scopes, limits?}` entries (no other member), ids
    /// or hashes repeat, a scope is unknown, or the array is empty.
    pub fn parse(raw: &str) -> Result<CallerKeys, Vec<String>> {
        let value: Value = crate::jsontext::from_text(raw)
            .map_err(|_| vec!["GATEWAY_KEYS is not valid JSON".to_string()])?;
        // A second `scopes` or `limits` would win unseen (serde_json keeps
        // the last): it could widen a key or drop its cap.
        if crate::jsontext::repeats_a_member(raw.as_bytes(), &value) {
            return Err(vec!["GATEWAY_KEYS names a member twice in one object".into()]);
        }
        let Value::Array(items) = value else {
            return Err(vec!["GATEWAY_KEYS must be a JSON array of {id, sha256, scopes}".into()]);
        };
        let mut problems = Vec::new();
        let mut entries: Vec<KeyEntry> = Vec::new();
        if items.is_empty() {
            problems.push("GATEWAY_KEYS has no keys".to_string());
        }
        for (i, item) in items.iter().enumerate() {
            let at = format!("GATEWAY_KEYS[{i}]");
            let Some(obj) = item.as_object() else {
                problems.push(format!("{at} must be an object"));
                continue;
            };
            // A misspelt member (`expires_at`, `limit`, a limit outside
            // `limits`) must not give a key without the rule it meant; the
            // member is not named: it is the operator's own text.
            if obj.keys().any(|k| !ENTRY_MEMBERS.contains(&k.as_str())) {
                problems.push(format!("{at} has an unknown member; it may have only id, sha256, scopes and limits"));
                continue;
            }
            let id = match obj.get("id").and_then(Value::as_str) {
                Some(id) if valid_id(id) => id.to_string(),
                _ => {
                    problems.push(format!(
                        "{at}.id must be 1-64 characters of letters, digits, '-', '_' or '.', and not '.' or '..'"
                    ));
                    continue;
                }
            };
            let hash = match obj.get("sha256").and_then(Value::as_str) {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    let mut out = [0u8; 64];
                    out.copy_from_slice(h.to_ascii_lowercase().as_bytes());
                    out
                }
                _ => {
                    problems.push(format!("{at}.sha256 must be 64 hex characters (SHA-256 of the key)"));
                    continue;
                }
            };
            let scopes = match obj.get("scopes").and_then(Value::as_array) {
                Some(list) if !list.is_empty() => {
                    let mut scopes = Vec::new();
                    for s in list {
                        match s.as_str() {
                            Some(s) if SCOPES.contains(&s) => scopes.push(s.to_string()),
                            _ => problems.push(format!(
                                "{at}.scopes has an unknown scope (known: {})",
                                SCOPE_LIST
                            )),
                        }
                    }
                    scopes
                }
                _ => {
                    problems.push(format!("{at}.scopes must be a non-empty array of scope names"));
                    continue;
                }
            };
            let limits = match obj.get("limits") {
                None | Some(Value::Null) => Limits::default(),
                Some(v) => match Limits::parse(v, &format!("{at}.limits")) {
                    Ok(l) => l,
                    Err(p) => {
                        problems.push(p);
                        continue;
                    }
                },
            };
            if entries.iter().any(|e| e.id == id) {
                problems.push(format!("{at}.id repeats an earlier id"));
            }
            if entries.iter().any(|e| e.sha256 == hash) {
                problems.push(format!("{at}.sha256 repeats an earlier key"));
            }
            entries.push(KeyEntry { id, sha256: hash, scopes, limits });
        }
        if problems.is_empty() {
            Ok(CallerKeys { entries })
        } else {
            Err(problems)
        }
    }

    /// Number of configured keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The configured entries, in `GATEWAY_KEYS` order.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Does a configured entry have this id?
    pub fn has_id(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// Check an `Authorization` header value.
    ///
    /// # Errors
    /// [`AuthError`] when the header is missing, malformed or matches no key.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        self.identify(&parse_bearer(header)?)
    }

    /// Check a key presented some other way than an `Authorization` header
    /// (the drop-in token endpoint takes it as a `refresh_token`).
    ///
    /// # Errors
    /// `Malformed` for a value no key can be (see [`parse_bearer`]),
    /// `Unknown` when it matches no key.
    pub fn authenticate_key(&self, key: &CallerKey) -> Result<Caller, AuthError> {
        self.identify(&checked_key(key.expose_secret())?)
    }

    fn identify(&self, key: &CallerKey) -> Result<Caller, AuthError> {
        let presented = hash_key(key.expose_secret());
        find_hash(self.entries.iter().map(|e| &e.sha256[..]), presented.as_bytes())
            .map(|i| {
                let e = &self.entries[i];
                Caller::new(e.id.clone(), e.scopes.clone(), e.limits, KeySource::Static)
            })
            .ok_or(AuthError::Unknown)
    }
}

/// The index of the hash (lowercase hex) equal to `presented`, compared
/// with every one of them, always, in constant time: the time taken does
/// not depend on which one matched, or how much of one.
pub fn find_hash<'a>(hashes: impl Iterator<Item = &'a [u8]>, presented: &[u8]) -> Option<usize> {
    let mut found = None;
    for (i, hash) in hashes.enumerate() {
        if constant_time_eq(hash, presented) {
            found = Some(i);
        }
    }
    found
}

/// A key id: 1-64 letters, digits, `-`, `_` or `.` (`GATEWAY_KEYS` and
/// runtime keys alike), but not `.` or `..`: a URL's path names those
/// segments' directories, so `/v1/keys/..` could never reach that key.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || crate::text::has(b"-_.", b))
}

/// Extract the key from `Bearer <key>` (scheme case-insensitive).
///
/// # Errors
/// `Missing` without a header, `Malformed` for anything but one bearer key of
/// 16–512 visible ASCII characters.
pub fn parse_bearer(header: Option<&str>) -> Result<CallerKey, AuthError> {
    let header = header.ok_or(AuthError::Missing)?.trim();
    if header.is_empty() {
        return Err(AuthError::Missing);
    }
    let (scheme, rest) = crate::text::split_once(header, " ").ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    checked_key(rest.trim())
}

/// A key of 16–512 visible ASCII characters, else `Malformed`.
fn checked_key(key: &str) -> Result<CallerKey, AuthError> {
    if key.len() < 16 || key.len() > 512 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::Malformed);
    }
    Ok(CallerKey::new(key))
}

/// Lowercase hex SHA-256 of a key, as it goes into `GATEWAY_KEYS`.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "pg_test_key_aaaaaaaaaaaaaaaa";
    const KEY_B: &str = "pg_test_key_bbbbbbbbbbbbbbbb";

    fn keys() -> CallerKeys {
        let raw = format!(
            r#"[{{"id":"billing-fn","sha256":"{}","scopes":["catalog","orders:write"]}},
               {{"id":"ops","sha256":"{}","scopes":["*"]}}]"#,
            hash_key(KEY_A),
            hash_key(KEY_B).to_uppercase()
        );
        CallerKeys::parse(&raw).expect("valid keys")
    }

    #[test]
    fn authenticates_and_scopes() {
        let k = keys();
        let a = k.authenticate(Some(&format!("Bearer {KEY_A}"))).unwrap();
        assert_eq!(a.id, "billing-fn");
        assert!(a.has_scope("catalog"));
        assert!(a.has_scope("orders:write"));
        assert!(a.has_scope("orders:read"), "write implies read");
        assert!(!a.has_scope("balance"));
        assert!(!a.has_scope("admin"));
        // Only orders:write brings orders:read (order details hold voucher
        // codes), and read never brings write.
        let only = |scope: &str| Caller::new("c", vec![scope.into()], Limits::default(), KeySource::Static);
        for scope in ["catalog", "balance", "admin"] {
            assert!(!only(scope).has_scope("orders:read"), "{scope}");
        }
        assert!(only("orders:read").has_scope("orders:read") && !only("orders:read").has_scope("orders:write"));
        let b = k.authenticate(Some(&format!("bearer   {KEY_B}"))).unwrap();
        assert_eq!(b.id, "ops");
        for s in SCOPES {
            assert!(b.has_scope(s));
        }
    }

    #[test]
    fn an_id_or_a_key_given_twice_is_refused_each_on_its_own() {
        let two = |id2: &str, key2: &str| {
            let raw = format!(
                r#"[{{"id":"a","sha256":"{}","scopes":["catalog"]}},{{"id":"{id2}","sha256":"{}","scopes":["*"]}}]"#,
                hash_key(KEY_A),
                hash_key(key2)
            );
            CallerKeys::parse(&raw).unwrap_err()
        };
        assert_eq!(two("b", KEY_A), vec!["GATEWAY_KEYS[1].sha256 repeats an earlier key".to_string()], "one key, two ids");
        assert_eq!(two("a", KEY_B), vec!["GATEWAY_KEYS[1].id repeats an earlier id".to_string()], "one id, two keys");
    }

    #[test]
    fn the_scope_list_is_the_scopes_joined() {
        assert_eq!(SCOPE_LIST, SCOPES.join(", "));
    }

    #[test]
    fn key_ids() {
        for ok in ["a", "billing-fn", "v1.2_x", "...", ".a", "a..", &"x".repeat(64)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn header_table() {
        let k = keys();
        let cases: &[(Option<&str>, AuthError)] = &[
            (None, AuthError::Missing),
            (Some(""), AuthError::Missing),
            (Some("   "), AuthError::Missing),
            (Some("Basic dXNlcjpwYXNz"), AuthError::Malformed),
            (Some("Bearer"), AuthError::Malformed),
            (Some("Bearer short"), AuthError::Malformed),
            (Some("Bearer has space inside the key"), AuthError::Malformed),
            (Some("Bearer ümlaut-key-ümlaut-key-xx"), AuthError::Malformed),
            (Some("Token pg_test_key_aaaaaaaaaaaaaaaa"), AuthError::Malformed),
            (Some("Bearer pg_test_key_cccccccccccccccc"), AuthError::Unknown),
        ];
        for (h, want) in cases {
            assert_eq!(k.authenticate(*h).unwrap_err(), *want, "{h:?}");
        }
    }

    #[test]
    fn keys_presented_outside_a_header() {
        let k = keys();
        let a = k.authenticate_key(&CallerKey::new(KEY_A)).unwrap();
        assert_eq!(a.id, "billing-fn");
        assert!(a.has_scope("orders:write"));
        for (key, want) in [
            ("pg_test_key_cccccccccccccccc", AuthError::Unknown),
            ("short", AuthError::Malformed),
            ("pg_test_key_aaaaaaaaaaaaaaaa ", AuthError::Malformed),
            ("", AuthError::Malformed),
        ] {
            assert_eq!(k.authenticate_key(&CallerKey::new(key)).unwrap_err(), want, "{key:?}");
        }
    }

    #[test]
    fn entries_may_carry_limits() {
        let raw = format!(
            r#"[{{"id":"capped","sha256":"{}","scopes":["orders:write"],"limits":{{"requests_per_minute":60,"order_amount_per_day":"500"}}}},
               {{"id":"free","sha256":"{}","scopes":["*"],"limits":null}}]"#,
            hash_key(KEY_A),
            hash_key(KEY_B)
        );
        let k = CallerKeys::parse(&raw).unwrap();
        let a = k.authenticate_key(&CallerKey::new(KEY_A)).unwrap();
        assert_eq!(a.limits, Limits { requests_per_minute: Some(60), order_amount_per_day: Some(500_000_000) });
        assert_eq!(a.source, KeySource::Static);
        assert_eq!(k.authenticate_key(&CallerKey::new(KEY_B)).unwrap().limits, Limits::default());
        assert!(k.has_id("free") && !k.has_id("other"));
        assert_eq!(k.entries().len(), 2);
        let bad = format!(r#"[{{"id":"a","sha256":"{}","scopes":["catalog"],"limits":{{"requests_per_minute":0}}}}]"#, hash_key(KEY_A));
        let p = CallerKeys::parse(&bad).unwrap_err();
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("GATEWAY_KEYS[0].limits.requests_per_minute must be"), "{p:?}");
    }

    #[test]
    fn entries_refuse_unknown_members() {
        let entry = |extra: &str| {
            format!(r#"{{"id":"a","sha256":"{}","scopes":["orders:write"]{extra}}}"#, hash_key(KEY_A))
        };
        for extra in [
            r#","expires_at":"2020-01-01T00:00:00Z""#,
            r#","limit":{"order_amount_per_day":5}"#,
            r#","order_amount_per_day":5"#,
            r#","limits":{"requests_per_minute":5},"requests_per_minute":5"#,
        ] {
            let raw = format!(r#"[{{"id":"ok","sha256":"{}","scopes":["*"]}},{}]"#, hash_key(KEY_B), entry(extra));
            assert_eq!(
                CallerKeys::parse(&raw).unwrap_err(),
                ["GATEWAY_KEYS[1] has an unknown member; it may have only id, sha256, scopes and limits"],
                "{extra}"
            );
        }
        assert!(CallerKeys::parse(&format!("[{}]", entry(r#","limits":null"#))).is_ok());
    }

    #[test]
    fn find_hash_finds_the_one_equal() {
        let hashes = [hash_key("a"), hash_key("b"), hash_key("c")];
        assert_eq!(find_hash(hashes.iter().map(|h| h.as_bytes()), hash_key("b").as_bytes()), Some(1));
        assert_eq!(find_hash(hashes.iter().map(|h| h.as_bytes()), hash_key("d").as_bytes()), None);
        assert_eq!(find_hash(std::iter::empty(), b""), None);
    }

    #[test]
    fn empty_keys_refuse_everything() {
        let k = CallerKeys::default();
        assert_eq!(k.authenticate(Some(&format!("Bearer {KEY_A}"))), Err(AuthError::Unknown));
    }

    /// README: "A key is 16–512 visible ASCII characters (a shorter one is
    /// refused as a malformed header)": both ends are keys, one character
    /// past either is not.
    #[test]
    fn a_key_is_16_to_512_characters() {
        let k = keys();
        for n in [15, 513] {
            let key = "k".repeat(n);
            assert_eq!(k.authenticate(Some(&format!("Bearer {key}"))).unwrap_err(), AuthError::Malformed, "{n}");
            assert_eq!(k.authenticate_key(&CallerKey::new(key)).unwrap_err(), AuthError::Malformed, "{n}");
        }
        for n in [16, 512] {
            let key = "k".repeat(n);
            assert_eq!(k.authenticate(Some(&format!("Bearer {key}"))).unwrap_err(), AuthError::Unknown, "{n}: well-formed");
            let raw = format!(r#"[{{"id":"edge","sha256":"{}","scopes":["catalog"]}}]"#, hash_key(&key));
            assert_eq!(CallerKeys::parse(&raw).unwrap().authenticate(Some(&format!("Bearer {key}"))).unwrap().id, "edge", "{n}");
        }
    }

    /// `sha256` is exactly 64 hex characters: a longer one is a problem
    /// named as such (not a panic while the configuration is read), and 64
    /// characters that are not hex never make a key no one can present.
    #[test]
    fn a_sha256_is_exactly_64_hex_characters() {
        let entry = |h: &str| format!(r#"[{{"id":"a","sha256":"{h}","scopes":["catalog"]}}]"#);
        for h in [format!("{}0", hash_key(KEY_A)), format!("{}g", &hash_key(KEY_A)[..63]), "z".repeat(64), hash_key(KEY_A)[..63].to_string()] {
            assert_eq!(
                CallerKeys::parse(&entry(&h)).unwrap_err(),
                ["GATEWAY_KEYS[0].sha256 must be 64 hex characters (SHA-256 of the key)"],
                "{h}"
            );
        }
        assert!(CallerKeys::parse(&entry(&hash_key(KEY_A))).is_ok());
    }

    #[test]
    fn parse_problems_never_echo_values() {
        let secretish = "deadbeefcafebabe";
        let cases = [
            "not json".to_string(),
            "{}".to_string(),
            "[]".to_string(),
            format!(r#"[{{"id":"a","sha256":"{secretish}","scopes":["catalog"]}}]"#),
            format!(r#"[{{"id":"","sha256":"{}","scopes":["catalog"]}}]"#, hash_key(KEY_A)),
            format!(r#"[{{"id":"a","sha256":"{}","scopes":["catalogue"]}}]"#, hash_key(KEY_A)),
            format!(r#"[{{"id":"a","sha256":"{}","scopes":[]}}]"#, hash_key(KEY_A)),
            format!(r#"[{{"id":"a","sha256":"{}","scopes":["catalog"],"{secretish}":1}}]"#, hash_key(KEY_A)),
            format!(
                r#"[{{"id":"a","sha256":"{h}","scopes":["catalog"]}},{{"id":"a","sha256":"{h}","scopes":["catalog"]}}]"#,
                h = hash_key(KEY_A)
            ),
            // A second `scopes` (or `limits`) would win unseen.
            format!(r#"[{{"id":"a","sha256":"{}","scopes":["catalog"],"scopes":["*"]}}]"#, hash_key(KEY_A)),
            format!(r#"[{{"id":"a","sha256":"{}","scopes":["orders:write"],"limits":{{"order_amount_per_day":500}},"limits":null}}]"#, hash_key(KEY_A)),
        ];
        for raw in cases {
            let problems = CallerKeys::parse(&raw).unwrap_err();
            assert!(!problems.is_empty(), "{raw}");
            for p in &problems {
                assert!(p.starts_with("GATEWAY_KEYS"), "{p}");
                assert!(!p.contains(secretish), "{p}");
                assert!(!p.contains(&hash_key(KEY_A)), "{p}");
            }
        }
    }
}
