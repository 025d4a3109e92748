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
  pub data: Option<&'a Payload>,
  /// When `Some`, the caller waits: the store keeps it in the FIFO queue of waiters for this
  /// long after this attempt, so a free lock is granted to the oldest live waiter first.
  pub queue_for: Option<Duration>,
  /// Backend-specific settings (DynamoDB); other stores refuse non-default values.
  pub extras: &'a AcquireExtras,
}

/// User data stored with a lock: text, or bytes (DynamoDB and memory only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
  Text(String),
  Bytes(Vec<u8>),
}

impl Payload {
  /// The text, when this is text.
  pub fn as_text(&self) -> Option<&str> {
    match self {
      Payload::Text(t) => Some(t),
      Payload::Bytes(_) => None,
    }
  }
}

/// Acquire settings that only some backends understand (today: DynamoDB).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcquireExtras {
  /// Overwrite the data a released or expired lock kept (cirello `ReplaceData`); without
  /// it, the stored data is kept unless the lock had none.
  pub replace_data: bool,
  /// Delete the lock's record on release instead of marking it released.
  pub delete_on_release: bool,
  /// More attributes to store with the lock record (a JSON object).
  pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

impl AcquireExtras {
  /// Whether every setting has its default.
  pub fn is_default(&self) -> bool {
    *self == AcquireExtras::default()
  }
}

/// How to end a lock: by default as the store usually does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseOptions {
  /// Delete the record (DynamoDB; other stores always delete).
  pub delete: bool,
  /// Data to leave in the released record (DynamoDB).
  pub data: Option<Payload>,
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

/// One attempt's outcome with the holder's record version (`LockStore::try_acquire_over`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
  pub outcome: Acquire,
  /// When the lock is held and the store versions its records (DynamoDB): the holder's
  /// record version, which every acquisition and heartbeat changes. `Holder::remaining` is
  /// then the holder's whole lease as written; the waiter counts it down itself
  /// (`crate::takeover`).
  pub version: Option<String>,
}

/// A read-only view of a lock (no token: it cannot extend or release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
  pub owner: String,
  /// Time left on the lease, when known.
  pub remaining: Option<Duration>,
  pub fence: u64,
  pub data: Option<Payload>,
}

/// Largest accepted ttl: 2^31-1 ms, the limit of JavaScript timers.
pub const MAX_TTL: Duration = Duration::from_millis(i32::MAX as u64);

/// Largest accepted resource name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
