//! Bounded waits for the Rust tests: every wait ends, and a hang fails naming what hung.
//!
//! - `within(ms)`: a liveness bound for something promised within `ms`: (ms + 1 s) × slack.
//! - `scaled(ms)`: `ms` × slack, for a lease a test must outlast its own steps with.
//! - `wait_until("what", || cond).await`: polls `cond` (yielding between checks) and panics with
//!   "hung: what ..." after `HANG` (50 s), instead of a bare `while !cond { yield_now() }`.
//! - `bounded("what", future).await`: the future's output, or that panic after `HANG`.
//!
//! The slack factor comes from FERROLOCK_TEST_SLACK (a number >= 1, default 1), as in the JS
//! tests (`__test__/support/bounded.mjs`); it scales liveness bounds only, never a safety check.

use std::future::Future;
use std::time::Duration;

/// How long a wait may take before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(50);

/// The factor from FERROLOCK_TEST_SLACK (>= 1; default 1).
pub fn slack() -> f64 {
  match std::env::var("FERROLOCK_TEST_SLACK") {
    Err(_) => 1.0,
    Ok(raw) if raw.is_empty() => 1.0,
    Ok(raw) => match raw.trim().parse::<f64>() {
      Ok(n) if n >= 1.0 && n.is_finite() => n,
      _ => panic!("FERROLOCK_TEST_SLACK must be a number >= 1 (got {raw})"),
    },
  }
}

/// A liveness bound for something promised within `ms`: (ms + 1 s) × slack.
pub fn within(ms: u64) -> Duration {
  Duration::from_secs_f64((ms + 1000) as f64 * slack() / 1000.0)
}

/// `ms` × slack.
pub fn scaled(ms: u64) -> Duration {
  Duration::from_secs_f64(ms as f64 * slack() / 1000.0)
}

/// Resolves once `cond()` holds; panics naming `what` if it does not within `HANG`.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
  let deadline = tokio::time::Instant::now() + HANG;
  let mut turns = 0u32;
  while !cond() {
    assert!(
      tokio::time::Instant::now() < deadline,
      "hung: {what} did not happen within {HANG:?}"
    );
    // Yield first (cheap, what the loops did before), then poll every millisecond.
    if turns < 10_000 {
      tokio::task::yield_now().await;
      turns += 1;
    } else {
      tokio::time::sleep(Duration::from_millis(1)).await;
    }
  }
}

/// The output of `fut`; panics naming `what` if it takes longer than `HANG`.
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
  match tokio::time::timeout(HANG, fut).await {
    Ok(v) => v,
    Err(_) => panic!("hung: {what} did not happen within {HANG:?}"),
  }
}
