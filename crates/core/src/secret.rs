//! Redacting wrappers for every credential plumgate handles.
//!
//! A credential is wrapped the moment it enters (from the environment, from a
//! token answer, from an `Authorization` header) and only unwrapped, through
//! `expose_secret`, at the one place that must put it on the wire. The
//! wrappers print `Name([redacted])` under `Debug`, have no `Display`, no
//! `Deref` and no `PartialEq` (compare fingerprints instead), so a stray
//! `{:?}` or `format!` in a log line cannot leak one. What comes back from
//! the wire is the other way in: [`redact_token`] takes the access token
//! sent out of an upstream answer that quotes it, before a caller sees it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wrap a raw value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The raw value.
            ///
            /// # Security Warning
            /// Only for putting the value on the wire to Xoxoday or into the
            /// token authority's own storage. Never log, format or return it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }

            /// A stable, non-reversible fingerprint (first 16 hex chars of
            /// SHA-256) for comparing values and logging which one is meant.
            pub fn fingerprint(&self) -> String {
                fingerprint(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        // Serialisation exists only so the token authority can persist its
        // pair; it is the raw value by necessity.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self)
            }
        }
    };
}

secret_type!(
    /// Xoxoday client id (not strictly secret, but nobody needs to see it).
    ClientId
);
secret_type!(
    /// Xoxoday client secret.
    ClientSecret
);
secret_type!(
    /// Xoxoday refresh token (rotates on every refresh; never leaves the authority).
    RefreshToken
);
secret_type!(
    /// Xoxoday access token (bearer for the Plum API).
    AccessToken
);
secret_type!(
    /// A caller's gateway key, as presented in `Authorization: Bearer`.
    CallerKey
);
secret_type!(
    /// `ALERT_WEBHOOK_URL`: where alerts are posted. A secret: a Slack-style
    /// incoming-webhook URL carries its credential in the path.
    WebhookUrl
);

/// Short fingerprint of a secret value: the first 16 hex characters of its
/// SHA-256. Enough to tell two tokens apart, useless for recovering one.
pub fn fingerprint(value: &str) -> String {
    let mut hex = sha256_hex(value.as_bytes());
    hex.truncate(16);
    hex
}

/// [`fingerprint`] of two values together, length-prefixed so that no two
/// pairs collide by concatenation (`("ab", "c")` vs `("a", "bc")`).
pub fn fingerprint_pair(first: &str, second: &str) -> String {
    fingerprint(&format!("{}:{}{}", first.len(), first, second))
}

/// Lowercase hex SHA-256 of `bytes` (key hashes, order fingerprints,
/// cache keys).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex (hashes, request ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]);
    }
    // Written as bytes (a `char` push encodes UTF-8 each time); hex digits
    // are ASCII, so the bytes are UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Replace each occurrence of `value` in `body` with `[redacted]`; whether
/// one was. For an upstream answer passed on to a caller: an error that
/// quotes the request (its `Authorization` header) would otherwise hand the
/// caller the access token plumgate sent. A value under 8 bytes is never a
/// credential of Xoxoday's and changes nothing (a body is not mangled for it).
pub fn redact(body: &mut Vec<u8>, value: &str) -> bool {
    redact_bytes(body, value.as_bytes())
}

fn redact_bytes(body: &mut Vec<u8>, needle: &[u8]) -> bool {
    let m = needle.len();
    if m < 8 || body.len() < m {
        return false;
    }
    // Horspool: a window whose last byte is not in the value moves on by
    // its whole length, so a whole answer costs about len / m reads.
    let mut skip = [m; 256];
    for (i, b) in needle[..m - 1].iter().enumerate() {
        skip[usize::from(*b)] = m - 1 - i;
    }
    let mut out: Vec<u8> = Vec::new();
    let (mut copied, mut i) = (0, 0);
    while i + m <= body.len() {
        let last = body[i + m - 1];
        if last == needle[m - 1] && &body[i..i + m] == needle {
            out.extend_from_slice(&body[copied..i]);
            out.extend_from_slice(b"[redacted]");
            i += m;
            copied = i;
        } else {
            i += skip[usize::from(last)];
        }
    }
    if copied == 0 {
        return false;
    }
    out.extend_from_slice(&body[copied..]);
    *body = out;
    true
}

/// [`redact`] of an access token as a JSON answer may write it: as sent,
/// and, for one holding `/` (standard base64 does), with each `/` written
/// `\/` (PHP's encoder's default): decoded, such a string would hand the
/// caller the token all the same. (`\u002f` is no common encoder's
/// default, and is left.) Whether one was.
pub fn redact_token(body: &mut Vec<u8>, token: &str) -> bool {
    let token = token.as_bytes();
    let mut any = redact_bytes(body, token);
    let mut needle = Vec::with_capacity(token.len() * 2);
    for b in token {
        if *b == b'/' {
            needle.push(b'\\');
        }
        needle.push(*b);
    }
    if needle.len() > token.len() {
        any |= redact_bytes(body, &needle);
    }
    any
}

/// Equality of two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_every_occurrence_and_nothing_else() {
        let token = "eyJhbGciOi.token-value_123";
        let mut body = format!(r#"{{"error":"bad header: Bearer {token}","again":"{token}{token}","end":"x{token}"}}"#).into_bytes();
        assert!(redact(&mut body, token));
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"error":"bad header: Bearer [redacted]","again":"[redacted][redacted]","end":"x[redacted]"}"#);
        // At the very start and end, and a body that is only the value.
        for (given, want) in [(token.to_string(), "[redacted]".to_string()), (format!("{token} {token}"), "[redacted] [redacted]".into())] {
            let mut b = given.into_bytes();
            assert!(redact(&mut b, token));
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
        // A near miss (last byte differs, one byte short) is left alone.
        let near = r#"{"a":"eyJhbGciOi.token-value_12X","b":"eyJhbGciOi.token-value_12"}"#;
        let mut b = near.as_bytes().to_vec();
        assert!(!redact(&mut b, token));
        assert_eq!(b, near.as_bytes());
        // Too short to be a credential, or a body shorter than the value.
        let mut b = b"abc abc".to_vec();
        assert!(!redact(&mut b, "abc"));
        assert_eq!(b, b"abc abc");
        let mut b = b"short".to_vec();
        assert!(!redact(&mut b, token));
    }

    #[test]
    fn redact_token_also_finds_the_token_with_its_slashes_escaped() {
        let token = "ab/cd+ef/gh==xyz";
        let body = r#"{"a":"ab\/cd+ef\/gh==xyz","b":"ab\/cd+ef/gh==xyz","c":"ab\u002Fcd+ef\u002Fgh==xyz","d":"ab/cd+ef/gh==xyz"}"#;
        let mut b = body.as_bytes().to_vec();
        assert!(redact_token(&mut b, token));
        // Both slashes escaped, or neither, as an encoder writes them; a
        // mix, or `\u002F`, is no common encoder's: left.
        assert_eq!(String::from_utf8(b).unwrap(), r#"{"a":"[redacted]","b":"ab\/cd+ef/gh==xyz","c":"ab\u002Fcd+ef\u002Fgh==xyz","d":"[redacted]"}"#);
        // Every decoded string of the answer is free of it.
        let mut b = br#"{"e":"Bearer ab\/cd+ef\/gh==xyz."}"#.to_vec();
        assert!(redact_token(&mut b, token));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["e"], "Bearer [redacted].");
        // A token without `/` is looked for as sent only.
        let mut b = br#"{"e":"tok-en_0123"}"#.to_vec();
        assert!(redact_token(&mut b, "tok-en_0123"));
        assert!(!redact_token(&mut b, "tok-en_0123"));
    }

    #[test]
    fn redact_finds_a_value_whose_bytes_repeat() {
        // Horspool's skips must not step over an occurrence that overlaps a
        // partial match.
        let token = "aaaaaaab";
        let mut body = b"aaaaaaaaaaaaaaab-aaaaaaab".to_vec();
        assert!(redact(&mut body, token));
        assert_eq!(String::from_utf8(body).unwrap(), "aaaaaaaa[redacted]-[redacted]");
    }

    #[test]
    fn debug_never_prints_the_value() {
        let values = [
            format!("{:?}", ClientSecret::new("s3cr3t-value")),
            format!("{:?}", RefreshToken::new("s3cr3t-value")),
            format!("{:?}", AccessToken::new("s3cr3t-value")),
            format!("{:?}", CallerKey::new("s3cr3t-value")),
            format!("{:?}", WebhookUrl::new("https://hooks.example.com/s3cr3t-value")),
            format!("{:?}", Some(ClientId::new("s3cr3t-value"))),
        ];
        for v in values {
            assert!(!v.contains("s3cr3t"), "{v}");
            assert!(v.contains("[redacted]"), "{v}");
        }
    }

    #[test]
    fn fingerprint_is_stable_and_short() {
        let a = RefreshToken::new("abc");
        assert_eq!(a.fingerprint(), fingerprint("abc"));
        assert_eq!(a.fingerprint().len(), 16);
        assert_ne!(a.fingerprint(), fingerprint("abd"));
        // SHA-256("abc") starts with ba7816bf8f01cfea.
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn pairs_do_not_collide_by_concatenation() {
        assert_ne!(fingerprint_pair("ab", "c"), fingerprint_pair("a", "bc"));
        assert_eq!(fingerprint_pair("a", "bc"), fingerprint("1:abc"));
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn serde_round_trip() {
        let t = RefreshToken::new("rt-1");
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"rt-1\"");
        let back: RefreshToken = serde_json::from_str(&s).unwrap();
        assert_eq!(back.expose_secret(), "rt-1");
    }
}
