//! The token tables: access tokens, refresh tokens and the pairs they were
//! issued in. Owns: issuing, rotation (strict, grace, one active pair), the pair caps,
//! validity checks, the admin expire/revoke actions, and token value
//! generation. Knows nothing about HTTP or config beyond the numbers passed in.

use std::collections::{BTreeMap, HashMap};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

/// Grace-mode cap on live pairs per client.
pub const PAIR_CAP: usize = 10;
/// Above this many stored pairs, dead pairs are pruned on issue.
const PRUNE_ABOVE: usize = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub pair: u64,
    pub expires_ms: i64,
    pub revoked: bool,
    /// The lifetime it was issued with (`None` in a state file written
    /// before it was kept).
    #[serde(default)]
    pub lifetime_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RefreshStatus {
    /// Never used.
    Current,
    /// Used in a refresh; still accepted until `dead_after_ms` (= the rotation
    /// instant in strict mode, + grace in grace mode).
    Rotated { dead_after_ms: i64 },
    /// Killed by an admin action or by the pair cap.
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub pair: u64,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub status: RefreshStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

/// A freshly issued pair.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_ms: i64,
    pub refresh_expires_ms: i64,
}

/// Result of looking up a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshCheck {
    pub usable: bool,
    /// The token had already been rotated away (used before).
    pub was_rotated: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenStore {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    pairs: BTreeMap<u64, Pair>,
    next_pair: u64,
}

impl AccessToken {
    pub fn usable(&self, now: i64) -> bool {
        !self.revoked && now < self.expires_ms
    }
}

impl RefreshToken {
    pub fn usable(&self, now: i64) -> bool {
        now < self.expires_ms
            && match self.status {
                RefreshStatus::Current => true,
                RefreshStatus::Rotated { dead_after_ms } => now < dead_after_ms,
                RefreshStatus::Revoked => false,
            }
    }
}

impl TokenStore {
    /// Stores a new pair with the given values, its refresh token expiring
    /// at `refresh_expires_ms`. `cap` (grace mode) evicts the oldest live
    /// pairs beyond it.
    pub fn insert_pair(
        &mut self,
        access: String,
        refresh: String,
        now: i64,
        access_ttl_ms: i64,
        refresh_expires_ms: i64,
        cap: Option<usize>,
    ) -> Issued {
        if self.pairs.len() > PRUNE_ABOVE {
            self.prune(now);
        }
        self.next_pair += 1;
        let pair = self.next_pair;
        let access_expires_ms = now.saturating_add(access_ttl_ms);
        self.access.insert(
            access.clone(),
            AccessToken {
                pair,
                expires_ms: access_expires_ms,
                revoked: false,
                lifetime_ms: Some(access_ttl_ms),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                pair,
                issued_ms: now,
                expires_ms: refresh_expires_ms,
                status: RefreshStatus::Current,
            },
        );
        self.pairs.insert(
            pair,
            Pair {
                access: access.clone(),
                refresh: refresh.clone(),
            },
        );
        if let Some(cap) = cap {
            self.enforce_cap(cap, now);
        }
        Issued {
            access_token: access,
            refresh_token: refresh,
            access_expires_ms,
            refresh_expires_ms,
        }
    }

    fn pair_live(&self, p: &Pair, now: i64) -> bool {
        self.access.get(&p.access).is_some_and(|a| a.usable(now))
            || self.refresh.get(&p.refresh).is_some_and(|r| r.usable(now))
    }

    fn enforce_cap(&mut self, cap: usize, now: i64) {
        let live: Vec<u64> = self
            .pairs
            .iter()
            .filter(|(_, p)| self.pair_live(p, now))
            .map(|(id, _)| *id)
            .collect();
        if live.len() <= cap {
            return;
        }
        for id in &live[..live.len() - cap] {
            self.revoke_pair(*id);
        }
    }

    fn revoke_pair(&mut self, id: u64) {
        let Some(p) = self.pairs.get(&id) else { return };
        if let Some(a) = self.access.get_mut(&p.access) {
            a.revoked = true;
        }
        if let Some(r) = self.refresh.get_mut(&p.refresh) {
            r.status = RefreshStatus::Revoked;
        }
    }

    fn prune(&mut self, now: i64) {
        let dead: Vec<u64> = self
            .pairs
            .iter()
            .filter(|(_, p)| !self.pair_live(p, now))
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(p) = self.pairs.remove(&id) {
                self.access.remove(&p.access);
                self.refresh.remove(&p.refresh);
            }
        }
    }

    pub fn access(&self, token: &str, now: i64) -> Option<&AccessToken> {
        self.access.get(token).filter(|a| a.usable(now))
    }

    /// The refresh-token expiry of the pair an access token belongs to.
    pub fn pair_refresh_expiry(&self, pair: u64) -> Option<i64> {
        self.refresh_expiry(&self.pairs.get(&pair)?.refresh)
    }

    /// When a refresh token expires (used or not), if it was ever issued.
    pub fn refresh_expiry(&self, token: &str) -> Option<i64> {
        self.refresh.get(token).map(|r| r.expires_ms)
    }

    pub fn check_refresh(&self, token: &str, now: i64) -> RefreshCheck {
        match self.refresh.get(token) {
            None => RefreshCheck {
                usable: false,
                was_rotated: false,
            },
            Some(r) => RefreshCheck {
                usable: r.usable(now),
                was_rotated: matches!(r.status, RefreshStatus::Rotated { .. }),
            },
        }
    }

    /// Marks `old` as used. The first use starts its death clock
    /// (`now + keep_alive_ms`); later uses (grace mode) keep the original one.
    pub fn mark_rotated(&mut self, old: &str, now: i64, keep_alive_ms: i64) {
        if let Some(r) = self.refresh.get_mut(old) {
            if r.status == RefreshStatus::Current {
                r.status = RefreshStatus::Rotated {
                    dead_after_ms: now.saturating_add(keep_alive_ms),
                };
            }
        }
    }

    /// Every usable access token now expires at `now`. Returns how many.
    pub fn expire_access(&mut self, now: i64) -> usize {
        let mut n = 0;
        for a in self.access.values_mut().filter(|a| a.usable(now)) {
            a.expires_ms = now;
            n += 1;
        }
        n
    }

    /// Kills every access token, the ones not usable at `now` too (else
    /// one expired on a clock moved forward would live again once the
    /// clock went back). Returns how many were usable.
    pub fn revoke_access(&mut self, now: i64) -> usize {
        let mut n = 0;
        for a in self.access.values_mut() {
            if a.usable(now) {
                n += 1;
            }
            a.revoked = true;
        }
        n
    }

    /// Kills one refresh token (a password reset on Xoxoday's side).
    pub fn revoke_refresh_token(&mut self, token: &str) {
        if let Some(r) = self.refresh.get_mut(token) {
            r.status = RefreshStatus::Revoked;
        }
    }

    pub fn revoke_refresh(&mut self, now: i64) -> usize {
        let mut n = 0;
        for r in self.refresh.values_mut() {
            if r.usable(now) {
                n += 1;
            }
            r.status = RefreshStatus::Revoked;
        }
        n
    }

    /// Every token value ever issued (access and refresh), sorted. For the
    /// test suites' leak scans only.
    pub fn all_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self.access.keys().chain(self.refresh.keys()).cloned().collect();
        v.sort();
        v
    }

    /// (live access tokens, live refresh tokens).
    pub fn live_counts(&self, now: i64) -> (usize, usize) {
        (
            self.access.values().filter(|a| a.usable(now)).count(),
            self.refresh.values().filter(|r| r.usable(now)).count(),
        )
    }
}

/// A fresh token value: `len` characters of `A-Z a-z 0-9`, drawn uniformly
/// from the thread-local CSPRNG (ChaCha, seeded and reseeded by the OS), so
/// a value cannot be guessed from the ones issued before it.
pub fn new_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn store_with(n: usize, cap: Option<usize>) -> (TokenStore, Vec<Issued>) {
        let mut s = TokenStore::default();
        let v = (0..n)
            .map(|i| s.insert_pair(format!("a{i}"), format!("r{i}"), 0, 10 * H, 20 * H, cap))
            .collect();
        (s, v)
    }

    #[test]
    fn strict_and_grace_death_clocks() {
        let (mut s, _) = store_with(1, None);
        assert!(s.check_refresh("r0", 1).usable);
        s.mark_rotated("r0", 1, 0);
        assert_eq!(
            s.check_refresh("r0", 1),
            RefreshCheck {
                usable: false,
                was_rotated: true
            }
        );

        let (mut s, _) = store_with(1, None);
        s.mark_rotated("r0", 0, 6 * H);
        assert!(s.check_refresh("r0", 6 * H - 1).usable);
        // A second use keeps the first death clock.
        s.mark_rotated("r0", 5 * H, 6 * H);
        assert!(!s.check_refresh("r0", 6 * H).usable);
        // Refresh tokens also die at their own expiry.
        let (s, _) = store_with(1, None);
        assert!(!s.check_refresh("r0", 20 * H).usable);
        assert!(!s.check_refresh("nope", 0).usable);
    }

    #[test]
    fn cap_evicts_oldest_pairs() {
        let (s, _) = store_with(12, Some(PAIR_CAP));
        assert!(s.access("a0", 1).is_none());
        assert!(s.access("a1", 1).is_none());
        assert!(s.access("a2", 1).is_some());
        assert!(!s.check_refresh("r1", 1).usable);
        assert_eq!(s.live_counts(1), (10, 10));
        let (s, _) = store_with(12, None);
        assert_eq!(s.live_counts(1), (12, 12));
        // One active pair: the newest only, its access token included.
        let (s, _) = store_with(3, Some(1));
        assert_eq!(s.live_counts(1), (1, 1));
        assert!(s.access("a1", 1).is_none());
        assert!(s.access("a2", 1).is_some());
        assert!(!s.check_refresh("r1", 1).usable);
        assert!(s.check_refresh("r2", 1).usable);
    }

    #[test]
    fn admin_actions_count_affected() {
        let (mut s, _) = store_with(3, None);
        assert_eq!(s.expire_access(5), 3);
        assert_eq!(s.expire_access(5), 0);
        assert!(s.access("a0", 5).is_none());
        assert_eq!(s.revoke_refresh(5), 3);
        assert_eq!(s.live_counts(5), (0, 0));
    }

    /// Each access token keeps the lifetime it was issued with; a state
    /// file written before that was kept still loads, without it.
    #[test]
    fn access_tokens_keep_their_lifetime() {
        let mut s = TokenStore::default();
        s.insert_pair("a0".into(), "r0".into(), 0, 3 * H, 20 * H, None);
        s.insert_pair("a1".into(), "r1".into(), 0, 10 * H, 20 * H, None);
        assert_eq!(s.access("a0", 1).unwrap().lifetime_ms, Some(3 * H));
        assert_eq!(s.access("a1", 1).unwrap().lifetime_ms, Some(10 * H));
        let saved: TokenStore = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(saved.access("a0", 1).unwrap().lifetime_ms, Some(3 * H));
        let old = r#"{"access":{"a":{"pair":1,"expires_ms":5000,"revoked":false}},
                      "refresh":{"r":{"pair":1,"issued_ms":0,"expires_ms":9000,"status":{"state":"current"}}},
                      "pairs":{"1":{"access":"a","refresh":"r"}},"next_pair":1}"#;
        let old: TokenStore = serde_json::from_str(old).unwrap();
        let a = old.access("a", 1).unwrap();
        assert_eq!((a.expires_ms, a.lifetime_ms), (5000, None));
    }

    #[test]
    fn generated_tokens_are_alphanumeric_and_distinct() {
        let tokens: Vec<String> = (0..200).map(|_| new_token(64)).collect();
        for t in &tokens {
            assert_eq!(t.len(), 64);
            assert!(t.bytes().all(|c| c.is_ascii_alphanumeric()), "{t}");
        }
        let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len());
        // Every class of the alphabet shows up (12,800 draws from 62 symbols).
        let all = tokens.concat();
        assert!(all.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(all.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(all.bytes().any(|c| c.is_ascii_digit()));
        assert_eq!(new_token(0), "");
        assert_eq!(new_token(7).len(), 7);
    }
}
