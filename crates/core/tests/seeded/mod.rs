//! What the seeded random tests (`token_model.rs`, `money_model.rs`,
//! `limits_model.rs`, `keys_model.rs`, `parser_fuzz.rs`) share:
//! a small deterministic generator (splitmix64: no crate, the same numbers
//! on every machine), how many seeds a run takes, and a failure message that
//! names the seed and the step to replay.

/// The variable that raises the number of seeds for a deeper local run
/// (`PLUMGATE_MODEL_SEEDS=2000 cargo test --release -p plumgate-core --test token_model`).
const SEEDS_VAR: &str = "PLUMGATE_MODEL_SEEDS";

/// splitmix64 (Steele, Lea, Flood 2014).
pub struct Rng(u64);

impl Rng {
    /// The generator of one seed: seeds 0, 1, 2, … start far apart.
    pub fn for_seed(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x1234_5678_9ABC_DEF1) ^ 0xA5A5)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.abs_diff(lo) + 1) as i64
    }

    /// In `[0, 1)`.
    pub fn f01(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f01() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// How many seeds to run: `default`, or more from [`SEEDS_VAR`]. A value
/// that is not a number is an error, not silently the default.
pub fn seeds(default: u64) -> u64 {
    match std::env::var(SEEDS_VAR) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{SEEDS_VAR}={v:?} is not a number of seeds")),
        Err(_) => default,
    }
}

/// Fail unless the run reached every kind of event it checks (`(what,
/// how many times)`): a change to a model that stops driving one would
/// otherwise pass while testing less.
#[allow(dead_code)] // (the parser fuzz counts no kinds)
pub fn all_reached(kinds: &[(&str, u64)]) {
    for (what, n) in kinds {
        assert!(*n > 0, "the model no longer reaches {what}");
    }
}

/// Run step `step` of seed `seed`; a failure inside fails the test with a
/// message that names both and how to replay them (every seed is
/// independent of the others, so `seed + 1` seeds replay it).
pub fn replayable<T>(seed: u64, step: u64, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|e| {
        let msg = e.downcast_ref::<String>().map(String::as_str).or_else(|| e.downcast_ref::<&str>().copied()).unwrap_or("(no message)");
        panic!("seed {seed} step {step}: {msg}\n(replay: {SEEDS_VAR}={} and this test's name)", seed + 1)
    })
}
