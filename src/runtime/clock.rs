//! The clock, randomness and request ids: the only places the shell reads
//! time or entropy (the core is handed both).

use plumgate_core::secret::hex;
use std::cell::RefCell;

/// Wall-clock time in epoch milliseconds (`Date.now()`).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A random number in [0, 1).
pub fn rand01() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return js_sys::Math::random();
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Random bytes for request ids, drawn from the runtime 32 ids at a time:
/// one `crypto.getRandomValues` call per request showed as 0.002–0.009 ms
/// of CPU in `/healthz` profiles; one per 32 requests is gone from them.
const ID_BYTES: usize = 16;
const POOL_BYTES: usize = 32 * ID_BYTES;

thread_local! {
    /// The pool and how much of it is spent (all of it at first).
    static ID_POOL: RefCell<([u8; POOL_BYTES], usize)> = const { RefCell::new(([0; POOL_BYTES], POOL_BYTES)) };
}

/// 16 random bytes as 32 hex characters.
pub fn request_id() -> String {
    let b: [u8; ID_BYTES] = ID_POOL.with(|p| {
        let (pool, used) = &mut *p.borrow_mut();
        if *used + ID_BYTES > POOL_BYTES {
            if getrandom::fill(pool).is_err() {
                for x in pool.iter_mut() {
                    *x = (js_sys::Math::random() * 256.0) as u8;
                }
            }
            *used = 0;
        }
        let mut out = [0u8; ID_BYTES];
        out.copy_from_slice(&pool[*used..*used + ID_BYTES]);
        *used += ID_BYTES;
        out
    });
    hex(&b)
}
