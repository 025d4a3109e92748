//! The wall clock a store reads. Lock timing never uses it (leases and takeovers run on this
//! host's monotonic clock); DynamoDB's optional TTL attribute is the one place that writes a
//! wall-clock time. Stores take it as a value, so a caller (or a test) can give another one.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait WallClock: Send + Sync + 'static {
  /// Milliseconds since the Unix epoch.
  fn now_ms(&self) -> i64;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
  fn now_ms(&self) -> i64 {
    // A clock before 1970 reads as the epoch; one past i64 milliseconds cannot happen.
    SystemTime::now()
      .duration_since(UNIX_EPOCH)
      .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
      .unwrap_or(0)
  }
}
