//! Batches: many locks in as few round trips as the connection allows. On one server (also a
//! Redlock master), one pipelined write: SCRIPT LOAD, then one script per lock, each reply its
//! own lock's result. A cluster or the caller's client object sends every lock's script at once
//! (the multiplexed cluster connection writes them together per node).

use redis::{Pipeline, Script, Value};

use super::connection::Conn;
use super::keys::Keys;
use super::scripts::{as_i64, unexpected};
use super::{millis, RedisStore};
use crate::error::{LockError, Result};
use crate::store::{LockStore, Owned, Renewal};

impl RedisStore {
  /// `extend_many`: each lock renewed by the `extend` script.
  pub(super) async fn extend_batch(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    let con = match self.con().await {
      Ok(con @ (Conn::Single(_) | Conn::Tracked(_))) => con,
      Ok(_) => {
        let all = items.iter().map(|r| self.extend(r.name, r.token, r.ttl));
        return futures_util::future::join_all(all).await;
      }
      Err(err) => return items.iter().map(|_| Err(clone_error(&err))).collect(),
    };
    let keep = millis(self.fence_keep);
    let mut pipe = batch_pipe(&self.scripts.extend);
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
    self.run_batch(con, "extend", &pipe, items.len()).await
  }

  /// `release_many`: each lock deleted by the `release` script, exactly as `release` does it
  /// (only while it is ours; a waiter is woken).
  pub(super) async fn release_batch(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    let con = match self.con().await {
      Ok(con @ (Conn::Single(_) | Conn::Tracked(_))) => con,
      Ok(_) => {
        let all = items.iter().map(|r| self.release(r.name, r.token));
        return futures_util::future::join_all(all).await;
      }
      Err(err) => return items.iter().map(|_| Err(clone_error(&err))).collect(),
    };
    let mut pipe = batch_pipe(&self.scripts.release);
    for r in items {
      let keys = Keys::new(&self.prefix, r.name);
      pipe.invoke_script(&self.release_call(&keys, r.token));
    }
    self.run_batch(con, "release", &pipe, items.len()).await
  }

  /// Sends `pipe` in one write and reads one answer per lock (`1`: done).
  async fn run_batch(
    &self,
    mut con: Conn,
    what: &str,
    pipe: &Pipeline,
    n: usize,
  ) -> Vec<Result<bool>> {
    let replies: Vec<redis::RedisResult<Value>> = match pipe.query_async(&mut con).await {
      Ok(replies) => replies,
      Err(e) => {
        let err = self.error(what, e);
        return (0..n).map(|_| Err(clone_error(&err))).collect();
      }
    };
    let mut replies = replies.into_iter();
    (0..n)
      .map(|_| match replies.next() {
        Some(Ok(reply)) => Ok(as_i64(&reply) == Some(1)),
        Some(Err(e)) => Err(self.error(what, e)),
        None => Err(unexpected(what)),
      })
      .collect()
  }
}

/// A pipeline that first loads `script`: loading a cached script is a lookup, and it spares the
/// NOSCRIPT fallback a pipeline does not have. Each later command answers on its own.
fn batch_pipe(script: &Script) -> Pipeline {
  let mut pipe = redis::pipe();
  pipe.ignore_errors().load_script(script).ignore();
  pipe
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
