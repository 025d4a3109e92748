//! Values exchanged between the lock manager and the stores.

use std::time::Duration;

/// What a store needs to take a lock for one owner.
#[derive(Debug, Clone)]
pub struct AcquireRequest<'a> {
  /// Random per acquisition (uuid v4); proves ownership to extend and release.
  pub token: &'a str,
  /// Human-readable owner name, returned by `inspect`.
  pub owner: &'a str,
  /// Lease length.
  pub ttl: Duration,
  /// Opaque user data stored with the lock.
  pub data: Option<&'a str>,
  /// When `Some`, the caller waits: the store keeps it in the FIFO queue of waiters for this
  /// long after this attempt, so a free lock is granted to the oldest live waiter first.
  pub queue_for: Option<Duration>,
}

/// A successful acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
  /// Fencing token: strictly greater than every earlier fence of this resource.
  pub fence: u64,
}

/// Who holds a lock that could not be taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
  /// The holder's owner name; `None` when the lock is free but reserved for an older waiter.
  pub owner: Option<String>,
  /// Time left on the holder's lease, when the store knows it.
  pub remaining: Option<Duration>,
}

/// The outcome of one acquisition attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
  Granted(Grant),
  Held(Holder),
}

/// A read-only view of a lock (no token: it cannot extend or release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
  pub owner: String,
  /// Time left on the lease, when known.
  pub remaining: Option<Duration>,
  pub fence: u64,
  pub data: Option<String>,
}

/// Largest accepted ttl: 2^31-1 ms, the limit of JavaScript timers.
pub const MAX_TTL: Duration = Duration::from_millis(i32::MAX as u64);

/// Largest accepted resource name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
