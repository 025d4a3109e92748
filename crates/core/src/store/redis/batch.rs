//! Batches on one server: one pipelined write for many locks (`extend_many`). Each reply is
//! its own lock's result.

use redis::Value;

use super::connection::Conn;
use super::keys::Keys;
use super::scripts::{as_i64, unexpected};
use super::{millis, RedisStore};
use crate::error::{LockError, Result};
use crate::store::Renewal;

impl RedisStore {
  /// `extend_many` on one server: one pipelined write. Each reply is its lock's own result.
  pub(super) async fn extend_pipelined(
    &self,
    mut con: Conn,
    items: &[Renewal<'_>],
  ) -> Vec<Result<bool>> {
    let keep = millis(self.fence_keep);
    let mut pipe = redis::pipe();
    // Loading a cached script is a lookup: it spares the NOSCRIPT fallback of a pipeline.
    pipe
      .ignore_errors()
      .load_script(&self.scripts.extend)
      .ignore();
    for r in items {
      let (lock, fence) = Keys::lock_and_fence(&self.prefix, r.name);
      pipe.invoke_script(
        self
          .scripts
          .extend
          .key(&lock)
          .key(&fence)
          .arg(r.token)
          .arg(millis(r.ttl))
          .arg(keep),
      );
    }
    let replies: Vec<redis::RedisResult<Value>> = match pipe.query_async(&mut con).await {
      Ok(replies) => replies,
      Err(e) => {
        let err = self.error("extend", e);
        return items.iter().map(|_| Err(clone_error(&err))).collect();
      }
    };
    let mut replies = replies.into_iter();
    items
      .iter()
      .map(|_| match replies.next() {
        Some(Ok(reply)) => Ok(as_i64(&reply) == Some(1)),
        Some(Err(e)) => Err(self.error("extend", e)),
        None => Err(unexpected("extend")),
      })
      .collect()
  }
}

/// The same failure for each lock of a batch (the cause is kept as text).
pub(super) fn clone_error(err: &LockError) -> LockError {
  match err {
    LockError::Closed => LockError::Closed,
    err => LockError::Backend {
      message: err.to_string(),
      source: err
        .cause_message()
        .map(Box::<dyn std::error::Error + Send + Sync>::from),
    },
  }
}
