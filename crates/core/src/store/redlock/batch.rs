//! Batches over every master: one pipeline per master (its `extend_many` / `release_many`),
//! every master at once; then each lock is decided on its own by its own majority, as the
//! one-lock operation decides it. A release batch settles as soon as every lock is decided.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
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

  /// `release_many`: each lock answers as `release` would, and the batch settles once every
  /// lock is decided by its masters' answers, without waiting for the others (a hung master
  /// costs nothing while a majority answers). A lock whose late acquire requests are still in
  /// flight (a slow master at its grant) is released after them, as `release` does, so that its
  /// release cannot overtake them; the others go at once, in one pipeline per master.
  pub(super) async fn release_batch(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    let (mut now, mut later) = (Vec::new(), Vec::new());
    {
      let mut late = self.late.lock().unwrap_or_else(|e| e.into_inner());
      for (i, r) in items.iter().enumerate() {
        let busy = late
          .get(r.name)
          .is_some_and(|pending| pending.iter().any(|t| !t.is_finished()));
        if busy {
          later.push(i);
        } else {
          late.remove(r.name); // finished: nothing to wait for
          now.push(i);
        }
      }
    }
    let after_late = async {
      futures_util::future::join_all(later.iter().map(|&i| self.settle_late(items[i].name))).await;
      self.release_decided(items, &later).await
    };
    let (first, second) =
      futures_util::future::join(self.release_decided(items, &now), after_late).await;
    let mut out: Vec<Option<Result<bool>>> = items.iter().map(|_| None).collect();
    for (indexes, answers) in [(now, first), (later, second)] {
      for (i, answer) in indexes.into_iter().zip(answers) {
        out[i] = Some(answer);
      }
    }
    out
      .into_iter()
      .map(|r| r.unwrap_or_else(|| Err(self.unavailable("release", 0))))
      .collect()
  }

  /// Releases `items[i]` for each `i` of `which` with one pipeline per master, every master at
  /// once (each bounded by the request timeout, and run to its end even after the batch has
  /// settled); answers in the order of `which`, once every lock is decided: released by a
  /// majority, or not ours on so many masters that no majority can confirm it, or every
  /// master answered or timed out (then `release_verdict`).
  async fn release_decided(&self, items: &[Owned<'_>], which: &[usize]) -> Vec<Result<bool>> {
    if which.is_empty() {
      return Vec::new();
    }
    let owned: Arc<Vec<(String, String)>> = Arc::new(
      which
        .iter()
        .map(|&i| (items[i].name.to_owned(), items[i].token.to_owned()))
        .collect(),
    );
    let mut calls = self.spawn_all(self.request_timeout, |m| {
      let owned = owned.clone();
      async move {
        let batch: Vec<Owned> = owned
          .iter()
          .map(|(name, token)| Owned { name, token })
          .collect();
        Ok(m.release_many(&batch).await)
      }
    });
    let (n, k) = (self.masters.len(), which.len());
    let decided = |yes: usize, no: usize| yes >= self.quorum || no > n - self.quorum;
    let (mut yes, mut no, mut failed) = (vec![0; k], vec![0; k], vec![0; k]);
    let mut open = k;
    while open > 0 {
      let Some((_, answers)) = calls.next().await else {
        break;
      };
      for i in 0..k {
        let before = decided(yes[i], no[i]);
        match answers.as_ref().and_then(|a| a.get(i)) {
          Some(Ok(true)) => yes[i] += 1,
          Some(Ok(false)) => no[i] += 1,
          // Failed, or the master did not answer the batch in time.
          _ => failed[i] += 1,
        }
        if !before && decided(yes[i], no[i]) {
          open -= 1;
        }
      }
    }
    (0..k)
      .map(|i| self.release_verdict(yes[i], failed[i]))
      .collect()
  }
}
