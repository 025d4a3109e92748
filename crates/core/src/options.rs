//! The options of one acquisition and their checks: the one place the rules on names, ttls and
//! the relations between options live (messages use the JavaScript API's option names).

use std::time::Duration;

use crate::error::{LockError, Result};
use crate::lease::{AcquireExtras, Payload, MAX_NAME_BYTES, MAX_TTL};

/// How long `acquire` waits for a held lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
  /// One attempt (`tryAcquire`, `wait: false`).
  No,
  /// Until acquired, cancelled or closed (`wait: true`, the default).
  Forever,
  /// Until this long after the call (`wait: ms`).
  For(Duration),
  /// Until the holder's lease could have run out, as the store reports it on the first
  /// attempt that finds the lock held, plus this (cirello's `additionalTimeToWait`).
  AfterLease(Duration),
}

/// Options of one acquisition. Durations are validated by `acquire`.
#[derive(Debug, Clone)]
pub struct AcquireOptions {
  /// Lease length. Default 30 s.
  pub ttl: Duration,
  pub wait: Wait,
  /// Fallback poll period while waiting (a release wakes waiters at once). Default 100 ms.
  pub retry_delay: Duration,
  /// Random extra delay, up to this, added to each poll. Default 50 ms.
  pub retry_jitter: Duration,
  /// Attempts after the first; `None`: unlimited (bounded by `wait`).
  pub max_retries: Option<u64>,
  /// Renew the lease in the background while held. Default true.
  pub auto_extend: bool,
  /// Heartbeat period; default ttl / 3. Must be below the ttl.
  pub refresh_interval: Option<Duration>,
  /// Owner name shown by `inspect`; default the token.
  pub owner: Option<String>,
  /// Data stored with the lock.
  pub data: Option<Payload>,
  /// Backend-specific settings (DynamoDB).
  pub extras: AcquireExtras,
  /// Report `Expiring` once less than this is left on the lease without a successful
  /// renewal (cirello's session monitor); default: one refresh interval. With it, a lock
  /// without auto-extend is also watched and reported `Lost` when its lease runs out.
  pub safe_time: Option<Duration>,
  /// Heartbeats wait for `Lock::ack_probe` (the embedder proves its thread is alive).
  pub probe: bool,
}

impl Default for AcquireOptions {
  fn default() -> Self {
    AcquireOptions {
      ttl: Duration::from_secs(30),
      wait: Wait::Forever,
      retry_delay: Duration::from_millis(100),
      retry_jitter: Duration::from_millis(50),
      max_retries: None,
      auto_extend: true,
      refresh_interval: None,
      owner: None,
      data: None,
      extras: AcquireExtras::default(),
      safe_time: None,
      probe: false,
    }
  }
}

/// Checks a lock name: a non-empty string of at most 1024 bytes.
pub fn check_name(name: &str) -> Result<()> {
  if name.is_empty() {
    return Err(LockError::InvalidArg(
      "name must be a non-empty string".into(),
    ));
  }
  if name.len() > MAX_NAME_BYTES {
    return Err(LockError::InvalidArg(format!(
      "name must be at most {MAX_NAME_BYTES} bytes (got {})",
      name.len()
    )));
  }
  Ok(())
}

/// Checks a lease length: 1 ms to 2^31-1 ms, whole milliseconds.
pub fn check_ttl(ttl: Duration, what: &str) -> Result<()> {
  if ttl < Duration::from_millis(1)
    || ttl > MAX_TTL
    || !ttl.subsec_nanos().is_multiple_of(1_000_000)
  {
    return Err(LockError::InvalidArg(format!(
      "{what} must be an integer number of milliseconds from 1 to {}",
      MAX_TTL.as_millis()
    )));
  }
  Ok(())
}

/// Checks acquire options and the relations between them: the one place these rules live.
/// Messages use the option names of the JavaScript API (`options.refreshInterval`).
pub fn check_options(opts: &AcquireOptions) -> Result<()> {
  check_ttl(opts.ttl, "options.ttl")?;
  let below_ttl = |value: Duration, what: &str| {
    if value.is_zero() {
      return Err(LockError::InvalidArg(format!(
        "{what} must be an integer number of milliseconds from 1 to {} (got 0)",
        MAX_TTL.as_millis()
      )));
    }
    if value >= opts.ttl {
      return Err(LockError::InvalidArg(format!(
        "{what} ({}) must be less than options.ttl ({})",
        value.as_millis(),
        opts.ttl.as_millis()
      )));
    }
    Ok(())
  };
  if let Some(r) = opts.refresh_interval {
    below_ttl(r, "options.refreshInterval")?;
  }
  if let Some(s) = opts.safe_time {
    below_ttl(s, "options.safeTime")?;
  }
  if opts.retry_delay > MAX_TTL || opts.retry_jitter > MAX_TTL {
    return Err(LockError::InvalidArg(
      "options.retryDelay and options.retryJitter must be at most 2147483647 ms".into(),
    ));
  }
  Ok(())
}
