//! What the heartbeat of one lock decides when the scheduler (`renewer.rs`) comes to it: warn,
//! declare the lease over, send a liveness probe, renew, or wait; and what a renewal's answer
//! does to the lock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{lost_by_expiry, LeaseEvent, LockInner, LostReason, State};
use crate::error::Result;
use crate::renewer::{bound, Plan, TICK};

/// What the scheduler does with a lock whose entry came due.
pub(crate) enum Step {
  /// Renew it in this tick's batch.
  Renew,
  /// Look again at this time.
  At(Instant),
  /// Nothing more (over, stale entry, or a renewal on its way).
  Done,
}

impl LockInner {
  /// Whether the scheduler looks after this lock (a heartbeat or a session monitor).
  fn watched(&self) -> bool {
    self.auto_extend || self.safe_time.is_some()
  }

  /// The generation of the lock's live scheduler entry.
  pub(crate) fn gen(&self) -> u32 {
    self.state().gen
  }

  /// `Expiring` comes once less than this is left without a renewal.
  fn safe(&self, st: &State) -> Duration {
    self.safe_time.unwrap_or(st.refresh)
  }

  /// Puts the lock back in the scheduler under a new generation (older entries go stale): at
  /// `at`, or at its next point of interest.
  pub(crate) fn reschedule(self: &Arc<Self>, at: Option<Instant>) {
    if !self.watched() {
      return;
    }
    let (gen, at) = {
      let mut st = self.state();
      if st.finished {
        return;
      }
      st.gen = st.gen.wrapping_add(1);
      (st.gen, at.unwrap_or_else(|| self.next_wake(&st)))
    };
    self.renewer.schedule(self.id, gen, at);
  }

  /// The next point of interest: the renewal (or its retry), the `Expiring` warning of an
  /// explicit safe time, or the end of the lease.
  fn next_wake(&self, st: &State) -> Instant {
    let next = if !self.auto_extend || st.probe_wait {
      st.valid_until
    } else {
      st.retry_at.unwrap_or(st.last_refresh + st.refresh)
    };
    let due = next.min(st.valid_until);
    let warn_at = st.valid_until.checked_sub(self.safe(st));
    // Only an explicit safe time warns on a timer; by default `Expiring` follows failed renewals.
    match warn_at {
      Some(w) if self.safe_time.is_some() && !st.expiring_sent && w < due => w,
      _ => due,
    }
  }

  /// The scheduler's entry of generation `gen` came due at `now`: warn, declare the lease
  /// over, send a liveness probe, or renew.
  pub(crate) fn step(self: &Arc<Self>, gen: u32, now: Instant) -> Step {
    let mut st = self.state();
    if st.finished || st.gen != gen || st.in_flight {
      return Step::Done;
    }
    if now >= st.valid_until {
      drop(st);
      lost_by_expiry(self);
      return Step::Done;
    }
    if let Some(warn_at) = st.valid_until.checked_sub(self.safe(&st)) {
      if self.safe_time.is_some() && !st.expiring_sent && now >= warn_at {
        st.expiring_sent = true;
        let remaining = st.valid_until.saturating_duration_since(now);
        st.events
          .send(&self.renewer, LeaseEvent::Expiring { remaining });
      }
    }
    if self.auto_extend {
      let renew_at = st.retry_at.unwrap_or(st.last_refresh + st.refresh);
      let early = TICK.min(st.refresh / 8);
      if now + early >= renew_at {
        if !self.probe {
          st.in_flight = true;
          return Step::Renew;
        }
        // The lock belongs to the embedder's thread, not to ours: renew only when it answers.
        if !st.probe_wait {
          st.probe_n += 1;
          st.probe_wait = true;
          let n = st.probe_n;
          st.events.send(&self.renewer, LeaseEvent::Probe(n));
        } else if self.probe_acked.load(Ordering::Acquire) >= st.probe_n {
          st.probe_wait = false;
          st.in_flight = true;
          return Step::Renew;
        }
      }
    }
    Step::At(self.next_wake(&st))
  }

  /// The ttl to renew to, and how long the renewal may wait, as the batch is sent.
  pub(crate) fn plan(&self, now: Instant) -> Plan {
    let st = self.state();
    Plan {
      ttl: st.ttl,
      bound: bound(now, st.valid_until, self.safe(&st)),
    }
  }

  /// A manual extend held the lock's turn: the batch left it out; look again at `at`.
  pub(crate) fn skipped(self: &Arc<Self>, at: Instant) {
    self.state().in_flight = false;
    self.reschedule(Some(at));
  }

  /// The answer of a batched renewal sent at `started`.
  pub(crate) fn renewed(self: &Arc<Self>, started: Instant, ttl: Duration, result: Result<bool>) {
    self.state().in_flight = false;
    if self.stopped.load(Ordering::Acquire) {
      return;
    }
    match result {
      Ok(true) => self.refreshed(started, ttl),
      Ok(false) => {
        self.finish(Some(LostReason::Gone));
        return;
      }
      Err(err) => {
        let now = Instant::now();
        let mut st = self.state();
        if st.finished {
          return;
        }
        if now >= st.valid_until {
          drop(st);
          lost_by_expiry(self);
          return;
        }
        st.retry_at = Some(now + (st.refresh / 4).max(Duration::from_millis(5)));
        st.events.send(
          &self.renewer,
          LeaseEvent::Error {
            message: err.to_string(),
            original: crate::transport::original_of(&err).cloned(),
          },
        );
        let remaining = st.valid_until.saturating_duration_since(now);
        if remaining <= self.safe(&st) && !st.expiring_sent {
          st.expiring_sent = true;
          st.events
            .send(&self.renewer, LeaseEvent::Expiring { remaining });
        }
      }
    }
    self.reschedule(None);
  }
}
