//! The takeover rule of stores whose records carry a version that every acquisition and every
//! heartbeat changes (DynamoDB's record version number): a waiter may take a lock over once it
//! has seen the same version for a whole lease, on its own monotonic clock. No clocks of
//! different hosts are compared; a heartbeat in between changes the version, and the
//! conditional write of the takeover then fails.
//!
//! The manager's attempt loop keeps one [`Sighting`] per waiter and hands the store a "take over
//! this version" instruction once it is ripe; stores only report versions and write.

use std::time::Duration;

use tokio::time::Instant;

/// What one observer saw of a held lock: its version, since when, and the holder's lease.
#[derive(Debug, Clone)]
pub struct Sighting {
  version: String,
  since: Instant,
  lease: Duration,
}

impl Sighting {
  /// A version just read. Counted from after the read: the holder wrote it no later than that.
  pub fn new(version: &str, lease: Duration) -> Self {
    Sighting {
      version: version.to_owned(),
      since: Instant::now(),
      lease,
    }
  }

  /// Another look at the lock: the clock keeps running while the version is the same and
  /// starts again when it changed. Returns the time left before a takeover may be tried.
  pub fn update(&mut self, version: &str, lease: Duration) -> Duration {
    if self.version == version {
      self.lease = lease;
    } else {
      *self = Sighting::new(version, lease);
    }
    self.left()
  }

  /// How long the same version has been seen.
  pub fn waited(&self) -> Duration {
    self.since.elapsed()
  }

  /// Time left before a takeover may be tried (zero once ripe).
  pub fn left(&self) -> Duration {
    self.lease.saturating_sub(self.waited())
  }

  /// The version that may be taken over: seen unchanged for a whole lease.
  pub fn ripe(&self) -> Option<&str> {
    (self.waited() >= self.lease).then_some(self.version.as_str())
  }

  /// The lease the holder wrote.
  pub fn lease(&self) -> Duration {
    self.lease
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test(start_paused = true)]
  async fn the_clock_runs_while_the_version_stays_and_restarts_when_it_changes() {
    let lease = Duration::from_millis(100);
    let mut s = Sighting::new("a", lease);
    assert_eq!(s.ripe(), None);
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(s.update("a", lease), Duration::from_millis(40));
    tokio::time::advance(Duration::from_millis(40)).await;
    assert_eq!(s.ripe(), Some("a"));
    // A heartbeat wrote a new version: a whole lease again.
    assert_eq!(s.update("b", lease), lease);
    assert_eq!(s.ripe(), None);
  }
}
