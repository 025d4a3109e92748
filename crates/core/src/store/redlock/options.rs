//! Options of a Redlock store.

use std::time::Duration;

use super::RestartQuarantine;
use crate::store::redis::RedisOptions;

/// Options of a Redlock store.
#[derive(Debug, Clone)]
pub struct RedlockOptions {
  /// One entry per independent master (a single server each, no cluster). At least 2.
  pub masters: Vec<RedisOptions>,
  /// Clock drift allowance as a fraction of the ttl, 0 to < 0.5. Default 0.01.
  pub drift_factor: f64,
  /// Fixed drift allowance added to `drift_factor × ttl`. Default 2 ms.
  pub clock_drift: Duration,
  /// How long one request to one master may take before that master counts as down for this
  /// operation. Default 500 ms.
  pub request_timeout: Duration,
  /// Prefix of every lock key on every master; default `lock:`.
  pub key_prefix: Option<String>,
  /// How long a master whose run id changed (a restart) grants no vote; default: the longest
  /// ttl this client has asked for.
  pub restart_quarantine: RestartQuarantine,
}

impl Default for RedlockOptions {
  fn default() -> Self {
    RedlockOptions {
      masters: Vec::new(),
      drift_factor: 0.01,
      clock_drift: Duration::from_millis(2),
      request_timeout: Duration::from_millis(500),
      key_prefix: None,
      restart_quarantine: RestartQuarantine::default(),
    }
  }
}
