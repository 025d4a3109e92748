//! Batches over every master: one pipeline per master (its `extend_many` / `release_many`),
//! every master at once; then each lock is decided on its own by its own majority, as the
//! one-lock operation decides it.

use std::time::Duration;

use tokio::time::Instant;

use super::RedlockStore;
use crate::error::{LockError, Result};
use crate::store::{LockStore, Owned, Renewal};

impl RedlockStore {
  /// `extend_many`: each lock renewed by a majority within its validity.
  pub(super) async fn extend_batch(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    let started = Instant::now();
    let mut out: Vec<Option<Result<bool>>> = Vec::with_capacity(items.len());
    let mut limit = self.request_timeout;
    for r in items {
      self.quarantine.lease(r.ttl);
      let drift = self.drift(r.ttl);
      if r.ttl <= drift {
        out.push(Some(Err(LockError::InvalidArg(format!(
          "ttl ({} ms) is too short for the Redlock drift allowance ({} ms)",
          r.ttl.as_millis(),
          drift.as_millis()
        )))));
      } else {
        limit = limit.min((r.ttl - drift).max(Duration::from_millis(1)));
        out.push(None);
      }
    }
    let per_master = self.masters.iter().map(|m| async move {
      tokio::time::timeout(limit, m.extend_many(items))
        .await
        .unwrap_or_default()
    });
    let answers = futures_util::future::join_all(per_master).await;
    let n = self.masters.len();
    let mut late = Vec::new();
    for (i, r) in items.iter().enumerate() {
      if out[i].is_some() {
        continue;
      }
      let (mut yes, mut no) = (0, 0);
      for (m, answer) in answers.iter().enumerate() {
        match answer.get(i) {
          // A master in restart quarantine renews our key there, but that is no vote (as in
          // `extend`).
          Some(Ok(true)) if self.benched(m) => {}
          Some(Ok(true)) => yes += 1,
          Some(Ok(false)) => no += 1,
          _ => {}
        }
      }
      out[i] = Some(if yes >= self.quorum {
        if started.elapsed() < r.ttl - self.drift(r.ttl) {
          Ok(true)
        } else {
          // Renewed too late to count: do not leave it blocking others for a whole ttl.
          late.push(*r);
          Ok(false)
        }
      } else if no > n - self.quorum {
        Ok(false)
      } else {
        Err(self.unavailable("extend", yes + no))
      });
    }
    futures_util::future::join_all(late.iter().map(|r| self.release(r.name, r.token))).await;
    out
      .into_iter()
      .map(|r| r.unwrap_or_else(|| Err(self.unavailable("extend", 0))))
      .collect()
  }

  /// `release_many`: first waits for each lock's requests still in flight after its grant (as
  /// `release` does), then releases; each lock answers as `release` would.
  pub(super) async fn release_batch(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    futures_util::future::join_all(items.iter().map(|r| self.settle_late(r.name))).await;
    let per_master = self.masters.iter().map(|m| async move {
      tokio::time::timeout(self.request_timeout, m.release_many(items))
        .await
        .unwrap_or_default()
    });
    let answers = futures_util::future::join_all(per_master).await;
    (0..items.len())
      .map(|i| {
        let (mut yes, mut failed) = (0, 0);
        for answer in &answers {
          match answer.get(i) {
            Some(Ok(true)) => yes += 1,
            Some(Ok(false)) => {}
            // Failed, or the master did not answer the batch in time.
            _ => failed += 1,
          }
        }
        self.release_verdict(yes, failed)
      })
      .collect()
  }
}
