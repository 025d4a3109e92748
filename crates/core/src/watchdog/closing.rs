//! `close()` with held locks: heartbeats stop first, then every lock still held is released
//! through `LockStore::release_many`, `CLOSE_BATCH` locks per request, all batches at once, so
//! that thousands of locks cost a few round trips. Each lock ends as its own `release()` would
//! end it: `Released` only where the store confirmed the delete, `Lost` (`Gone`) where the lock
//! was no longer ours, `Lost` (`Unconfirmed`) where the request failed or timed out.
//!
//! A lock whose holder is releasing it already is left to that release (never released twice);
//! a `release()` that comes while `close()` releases the lock waits for `close()`'s answer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::timeout;

use super::LockInner;
use crate::error::{LockError, Result};
use crate::lease::ReleaseOptions;
use crate::renewer::Renewer;
use crate::store::Owned;

/// The most locks in one `release_many` request (a pipeline of this many scripts on Redis).
const CLOSE_BATCH: usize = 1024;

impl LockInner {
  /// `close()` takes the release of this lock over: false when the lock is over, or when its
  /// holder's own release is on its way (that one ends it).
  fn claim_for_close(&self) -> bool {
    let mut st = self.state();
    if st.finished || st.releasing > 0 {
      return false;
    }
    st.closing = true;
    // A renewal answer that comes from now on is dropped.
    self
      .stopped
      .store(true, std::sync::atomic::Ordering::Release);
    true
  }

  /// What a `release()` called while `close()` released the lock answers, once `close()` has
  /// ended it: as that release went.
  pub(super) async fn closed_outcome(&self) -> Result<bool> {
    self.renewer.closed.cancelled().await;
    if self.unconfirmed.load(std::sync::atomic::Ordering::Acquire) {
      return Err(LockError::Backend {
        message: format!(
          "{}: the release by close() was not confirmed by the server; the key expires by its lease",
          self.store().kind()
        ),
        source: None,
      });
    }
    Ok(!self.lost_flag.load(std::sync::atomic::Ordering::Acquire))
  }
}

/// Stops every heartbeat, then releases every lock still held, in batches sent at once, and
/// waits for requests still on their way (renewals, releases by holders, deletes after an
/// expiry), `limit` (one request timeout) at most. Each batch is one request, bounded by the
/// store (`Bounded`) by the same limit.
pub(crate) async fn close_all(renewer: &Arc<Renewer>, limit: Duration) {
  renewer.stop();
  let claimed: Vec<Arc<LockInner>> = renewer
    .held()
    .values()
    .filter(|lock| lock.claim_for_close())
    .cloned()
    .collect();
  // DynamoDB's `deleteOnRelease` deletes the record instead of marking it released: those go
  // one by one with their own options (`release_many` releases as `release` does).
  let (plain, deleting): (Vec<_>, Vec<_>) = claimed
    .into_iter()
    .partition(|lock| !lock.delete_on_release);
  let store = renewer.store.clone();
  let batches = plain.chunks(CLOSE_BATCH).map(|locks| {
    let store = store.clone();
    async move {
      let items: Vec<Owned<'_>> = locks
        .iter()
        .map(|l| Owned {
          name: l.name(),
          token: l.token(),
        })
        .collect();
      let results = store.release_many(&items).await;
      let mut results = results.into_iter();
      for lock in locks {
        let done = results.next().unwrap_or_else(|| {
          Err(LockError::Backend {
            message: format!("{}: no answer to this release", store.kind()),
            source: None,
          })
        });
        lock.released(&done);
      }
    }
  });
  let one_by_one = deleting.iter().map(|lock| {
    let store = store.clone();
    async move {
      let opts = ReleaseOptions {
        delete: true,
        data: None,
      };
      let done = store.release_with(lock.name(), lock.token(), &opts).await;
      lock.released(&done);
    }
  });
  // Requests still on their way get as long as the releases: one request timeout.
  renewer.tasks.close();
  let others = timeout(limit, renewer.tasks.wait());
  let releases = futures_util::future::join(join_all(batches), join_all(one_by_one));
  let _ = futures_util::future::join(releases, others).await;
  // Every batch has its answer by now (the store bounds each one); should one have none, its
  // locks end as unconfirmed all the same, so no `release()` waits for ever.
  for lock in plain.iter().chain(&deleting) {
    if !lock.state().finished {
      lock.released(&Err(LockError::Backend {
        message: "no answer to the release".into(),
        source: None,
      }));
    }
  }
  renewer.closed.cancel();
}
