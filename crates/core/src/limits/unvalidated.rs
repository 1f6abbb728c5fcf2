//! Penalties on drop-in queries plumgate does not know (forwarded as sent,
//! `gateway::forward_unvalidated`): contract §6 says a penalised operation
//! is answered `429` until the penalty ends "instead of calling again and
//! prolonging it", and such a query is an operation too. plumgate keeps no
//! budget for it (Xoxoday documents none), so only the penalty is kept,
//! by query name, in the memory of the isolate that met it: other isolates
//! each forward one call and meet it themselves (the seven operations share
//! theirs through the `RateLimiter` object; an unknown query is rare and
//! its name is the caller's, so it takes no storage).

use crate::limits::secs_until;
use crate::time::add_secs;

/// The query last penalised, with its penalty's end (epoch ms). One is
/// held at a time: a penalty on another query takes its place (the one it
/// replaces may then be sent once more and meet its penalty again), so
/// memory stays bounded whatever names callers send.
#[derive(Debug, Default)]
pub struct Held(Option<(String, i64)>);

impl Held {
    /// While `query`'s penalty runs at `now_ms`, the whole seconds left
    /// (the `Retry-After` of its `429`); `None` when it may be sent.
    pub fn left(&self, query: &str, now_ms: i64) -> Option<u64> {
        match &self.0 {
            Some((q, until)) if q == query && *until > now_ms => Some(secs_until(*until, now_ms)),
            _ => None,
        }
    }

    /// Xoxoday answered `query` with a penalty of `secs` at `now_ms`: hold
    /// it back until then (a later end already held for it stays).
    pub fn start(&mut self, query: &str, secs: u64, now_ms: i64) {
        let until = add_secs(now_ms, secs);
        if !matches!(&self.0, Some((q, end)) if q == query && *end > until) {
            self.0 = Some((query.to_owned(), until));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_032_800_000;
    const Q: &str = "plumProAPI.mutation.getSomething";

    #[test]
    fn a_penalised_query_is_held_until_its_end_and_no_other() {
        let mut h = Held::default();
        assert_eq!(h.left(Q, T0), None, "nothing held");
        h.start(Q, 60, T0);
        assert_eq!(h.left(Q, T0), Some(60));
        assert_eq!(h.left(Q, T0 + 59_001), Some(1), "rounded up");
        assert_eq!(h.left(Q, T0 + 59_999), Some(1));
        assert_eq!(h.left("plumProAPI.mutation.getsomething", T0), None, "names are exact");
        assert_eq!(h.left("plumProAPI.query.other", T0), None);
        assert_eq!(h.left(Q, T0 + 60_000), None, "ended");
    }

    #[test]
    fn a_second_penalty_never_shortens_the_first() {
        let mut h = Held::default();
        h.start(Q, 600, T0);
        h.start(Q, 60, T0 + 1_000);
        assert_eq!(h.left(Q, T0 + 1_000), Some(599), "the longer one stays");
        h.start(Q, 3_600, T0 + 2_000);
        assert_eq!(h.left(Q, T0 + 2_000), Some(3_600), "a longer one replaces it");
    }

    #[test]
    fn one_query_is_held_at_a_time() {
        let mut h = Held::default();
        h.start(Q, 600, T0);
        h.start("plumProAPI.query.other", 60, T0);
        assert_eq!(h.left("plumProAPI.query.other", T0), Some(60), "the last penalised");
        assert_eq!(h.left(Q, T0), None, "replaced: sent once more, to meet its penalty again");
        h.start(Q, 600, T0 + 70_000);
        assert_eq!(h.left(Q, T0 + 70_000), Some(600), "the other's ended: replaced whatever it had left");
    }
}
