//! Restart quarantine: a Redlock master that restarted grants no vote until every lease it may
//! have held before the restart has run out.
//!
//! A master restarted without persistence (or with a lost last second of writes) forgets the
//! locks it granted; counting its vote at once lets a second client win a majority while the
//! first one's lease is still valid (one shared master is all that separated them). The master's
//! connection reads its `run_id` on every (re)connect (`store/redis/tracked.rs`): no round trip
//! on the hot path, and a reply from the new process is only seen after the restart was noticed.
//! From then on, for the longest lease a client may hold there, its grants and renewals are not
//! votes (the keys are still written: after the quarantine they count as usual).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::redis::master::Master;

/// How long a restarted master stays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartQuarantine {
  /// The longest ttl this client has asked any master for (acquire or extend) so far: right
  /// when every client of these masters uses the same ttls, the default.
  #[default]
  LongestLease,
  /// A fixed length: at least the longest ttl any client uses on these masters.
  For(Duration),
  /// No quarantine: a restarted master votes at once (only with an explicit option).
  Off,
}

/// The quarantine of one Redlock store.
pub(super) struct Quarantine {
  mode: RestartQuarantine,
  /// The longest ttl asked for so far, in ms.
  longest: AtomicU64,
}

impl Quarantine {
  pub(super) fn new(mode: RestartQuarantine) -> Self {
    Quarantine {
      mode,
      longest: AtomicU64::new(0),
    }
  }

  /// Notes a ttl this client asks the masters for (before asking).
  pub(super) fn lease(&self, ttl: Duration) {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    self.longest.fetch_max(ms, Ordering::Relaxed);
  }

  /// How long a restarted master stays out, now.
  fn length(&self) -> Duration {
    match self.mode {
      RestartQuarantine::LongestLease => {
        Duration::from_millis(self.longest.load(Ordering::Relaxed))
      }
      RestartQuarantine::For(d) => d,
      RestartQuarantine::Off => Duration::ZERO,
    }
  }

  /// Whether `master`'s answers are no votes now: it restarted less than the quarantine ago.
  /// Asked after its answer arrived (the restart is recorded before any reply of the new
  /// process).
  pub(super) fn excludes(&self, master: &dyn Master) -> bool {
    if self.mode == RestartQuarantine::Off {
      return false;
    }
    let Some(at) = master.restarted_at() else {
      return false;
    };
    Instant::now() < at + self.length()
  }

  /// How long until `master` votes again (zero when it does now).
  pub(super) fn left(&self, master: &dyn Master) -> Duration {
    match master.restarted_at() {
      Some(at) if self.mode != RestartQuarantine::Off => {
        (at + self.length()).saturating_duration_since(Instant::now())
      }
      _ => Duration::ZERO,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_default_length_follows_the_longest_ttl_asked_for() {
    let q = Quarantine::new(RestartQuarantine::default());
    assert_eq!(q.length(), Duration::ZERO);
    q.lease(Duration::from_secs(5));
    q.lease(Duration::from_secs(2));
    assert_eq!(q.length(), Duration::from_secs(5));
    let q = Quarantine::new(RestartQuarantine::For(Duration::from_secs(60)));
    q.lease(Duration::from_secs(5));
    assert_eq!(q.length(), Duration::from_secs(60));
    assert_eq!(
      Quarantine::new(RestartQuarantine::Off).length(),
      Duration::ZERO
    );
  }
}
