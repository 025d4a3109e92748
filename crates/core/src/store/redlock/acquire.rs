//! Redlock's acquire: every master at once, a majority within the validity, the fence raise
//! that makes the agreed fence count, and the undo of an attempt without a majority.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::StreamExt;
use tokio::time::Instant;

use super::{Calls, RedlockStore};
use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireExtras, AcquireRequest, Grant, Holder, Payload};
use crate::store::{unsupported_extras, LockStore};

/// Redlock passes no backend-specific settings to its masters.
static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

/// The answers of the masters to one acquire attempt.
#[derive(Default)]
struct Tally {
  /// (master, its fence)
  granted: Vec<(usize, u64)>,
  /// Masters that granted while in restart quarantine: their grant is ours but no vote.
  benched: Vec<usize>,
  held: Vec<Holder>,
  /// Masters that failed or did not answer in time.
  failed: Vec<usize>,
}

impl Tally {
  /// Adds master `i`'s answer; `benched`: that master is in restart quarantine (asked once
  /// its answer arrived, so that a restart noticed on the way counts).
  fn add(&mut self, (i, answer): (usize, Option<Acquire>), benched: impl Fn(usize) -> bool) {
    match answer {
      Some(Acquire::Granted(_)) if benched(i) => self.benched.push(i),
      Some(Acquire::Granted(g)) => self.granted.push((i, g.fence)),
      Some(Acquire::Held(h)) => self.held.push(h),
      None => self.failed.push(i),
    }
  }
}

/// A request to one master, as owned data (it may outlive the call that sent it).
struct OwnedRequest {
  name: String,
  token: String,
  owner: String,
  ttl: Duration,
  data: Option<Payload>,
  queue_for: Option<Duration>,
}

impl RedlockStore {
  /// `try_acquire` of the Redlock store (see the module docs of `redlock/mod.rs`).
  pub(super) async fn acquire_quorum(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
  ) -> Result<Acquire> {
    self
      .identities
      .check(&self.masters, self.request_timeout)
      .await?;
    let started = Instant::now();
    if !req.extras.is_default() {
      return Err(unsupported_extras("redlock"));
    }
    self.quarantine.lease(req.ttl);
    let drift = self.drift(req.ttl);
    let Some(validity) = req.ttl.checked_sub(drift).filter(|v| !v.is_zero()) else {
      return Err(LockError::InvalidArg(format!(
        "options.ttl ({} ms) is too short for the Redlock drift allowance ({} ms)",
        req.ttl.as_millis(),
        drift.as_millis()
      )));
    };
    let mut calls = self.ask_all(name, req, self.request_timeout.min(validity));
    let n = self.masters.len();
    let mut t = Tally::default();
    // Decide as soon as a majority granted, or other owners hold so many masters that no
    // majority is possible. Failures alone do not decide early: whether the lock is held or the
    // backend unavailable depends on the other answers.
    while t.granted.len() < self.quorum && t.held.len() <= n - self.quorum {
      match calls.next().await {
        Some(answer) => t.add(answer, |i| self.benched(i)),
        None => break,
      }
    }
    if t.granted.len() >= self.quorum && started.elapsed() < validity {
      // The slower masters' requests run on: a late grant is ours, and our release waits for
      // it (so it cannot overtake it).
      if !calls.is_empty() {
        self.in_background(name, async move {
          calls.collect::<Vec<_>>().await;
        });
      }
      return self
        .confirm_fence(name, req.token, &t.granted, started, validity)
        .await;
    }
    self.undo(name, req.token, calls, t).await
  }

  /// Sends the acquire to every master at once, each bounded by `limit`.
  fn ask_all(&self, name: &str, req: &AcquireRequest<'_>, limit: Duration) -> Calls<Acquire> {
    let owned = Arc::new(OwnedRequest {
      name: name.to_owned(),
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      ttl: req.ttl,
      data: req.data.cloned(),
      queue_for: req.queue_for,
    });
    self.spawn_all(limit, |m| {
      let r = owned.clone();
      async move {
        // No queue under Redlock (see the module docs): a master without a queue only lists
        // a waiting caller as waiting.
        let single = AcquireRequest {
          token: &r.token,
          owner: &r.owner,
          ttl: r.ttl,
          data: r.data.as_ref(),
          queue_for: r.queue_for,
          extras: &NO_EXTRAS,
        };
        m.try_acquire(&r.name, &single).await
      }
    })
  }

  /// A majority granted: the fence is the largest of theirs, and it counts only once a
  /// majority's counters are at least this high (the next owner's majority shares a master with
  /// it, so its fence is higher). Granting masters with a lower counter are raised now (one more
  /// round trip, in parallel, only when the masters' fences differ); without a majority in
  /// time, the attempt is undone.
  async fn confirm_fence(
    &self,
    name: &str,
    token: &str,
    granted: &[(usize, u64)],
    started: Instant,
    validity: Duration,
  ) -> Result<Acquire> {
    let fence = granted.iter().map(|(_, f)| *f).max().unwrap_or(0);
    let mut confirmed = granted.iter().filter(|(_, f)| *f >= fence).count();
    let lower: Vec<_> = granted
      .iter()
      .filter(|(_, f)| *f < fence)
      .filter_map(|(i, _)| self.masters.get(*i).cloned())
      .collect();
    if confirmed < self.quorum && !lower.is_empty() {
      let limit = self
        .request_timeout
        .min(validity.saturating_sub(started.elapsed()));
      let raises = lower.into_iter().map(|m| async move {
        matches!(
          tokio::time::timeout(limit, m.raise_fence(name, token, fence)).await,
          Ok(Ok(_))
        )
      });
      confirmed += futures_util::future::join_all(raises)
        .await
        .into_iter()
        .filter(|raised| *raised)
        .count();
    }
    if confirmed >= self.quorum && started.elapsed() < validity {
      return Ok(Acquire::Granted(Grant { fence }));
    }
    LockStore::release(self, name, token).await?;
    Ok(Acquire::Held(Holder::default()))
  }

  /// No majority in time. Collects every answer first (each is bounded by the timeout), so the
  /// undo cannot overtake a grant still on its way; then undoes on the masters that granted or
  /// did not answer (theirs may still land), all at once. Masters that said "held" hold
  /// another owner's lock: nothing of ours is there.
  async fn undo(
    &self,
    name: &str,
    token: &str,
    mut calls: Calls<Acquire>,
    mut t: Tally,
  ) -> Result<Acquire> {
    while let Some(answer) = calls.next().await {
      t.add(answer, |i| self.benched(i));
    }
    let Tally {
      granted,
      benched,
      held,
      failed,
    } = t;
    let undo: Vec<usize> = granted
      .iter()
      .map(|(i, _)| *i)
      .chain(benched.iter().copied())
      .chain(failed.iter().copied())
      .collect();
    let undos = undo
      .iter()
      .filter_map(|i| self.masters.get(*i))
      .map(|m| tokio::time::timeout(self.request_timeout, m.release(name, token)));
    futures_util::future::join_all(undos).await;
    let n = self.masters.len();
    if held.len() > n - self.quorum || failed.is_empty() {
      let remaining = held.iter().filter_map(|h| h.remaining).min();
      let owner = held.iter().find_map(|h| h.owner.clone());
      return Ok(Acquire::Held(Holder { owner, remaining }));
    }
    Err(self.unavailable("acquire", n - failed.len()))
  }
}
