//! Batches: many locks in as few round trips as the connection allows. On one server (also a
//! Redlock master), one pipelined write: SCRIPT LOAD, then one script per lock, each reply its
//! own lock's result. On a Redis Cluster, the same pipeline once per master, holding the locks
//! whose slots that master serves, over a connection of the store's own to that master
//! (`cluster_batch`); a lock whose slot moved meanwhile is sent again on its own through the
//! cluster connection (which follows MOVED and ASK). The caller's client object sends every
//! lock's script at once, one call each.

use std::collections::HashMap;
use std::future::Future;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Pipeline, RedisError, RetryMethod, Script, Value};

use super::connection::Conn;
use super::keys::{self, Keys};
use super::scripts::{as_i64, unexpected};
use super::{millis, RedisStore};
use crate::error::{LockError, Result};
use crate::store::{LockStore, Owned, Renewal};

impl RedisStore {
  /// `extend_many`: each lock renewed by the `extend` script.
  pub(super) async fn extend_batch(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    let single = |i: usize| {
      let r = &items[i];
      self.extend(r.name, r.token, r.ttl)
    };
    let con = match self.con().await {
      Ok(con @ (Conn::Single(_) | Conn::Tracked(_))) => con,
      Ok(Conn::Cluster(con)) => {
        let names: Vec<&str> = items.iter().map(|r| r.name).collect();
        let add = |pipe: &mut Pipeline, i: usize| self.add_extend(pipe, &items[i]);
        let answers = self
          .cluster_batch(con, "extend", &self.scripts.extend, &names, add)
          .await;
        return settle(answers, single).await;
      }
      Ok(Conn::Client(_)) => return settle(items.iter().map(|_| None).collect(), single).await,
      Err(err) => return items.iter().map(|_| Err(clone_error(&err))).collect(),
    };
    let mut pipe = batch_pipe(&self.scripts.extend);
    for r in items {
      self.add_extend(&mut pipe, r);
    }
    self.run_batch(con, "extend", &pipe, items.len()).await
  }

  /// Adds `r`'s renewal (the `extend` script) to `pipe`.
  fn add_extend(&self, pipe: &mut Pipeline, r: &Renewal<'_>) {
    let (lock, fence) = Keys::lock_and_fence(&self.prefix, r.name);
    pipe.invoke_script(
      self
        .scripts
        .extend
        .key(&lock)
        .key(&fence)
        .arg(r.token)
        .arg(millis(r.ttl))
        .arg(millis(self.fence_keep)),
    );
  }

  /// `release_many`: each lock deleted by the `release` script, exactly as `release` does it
  /// (only while it is ours; a waiter is woken).
  pub(super) async fn release_batch(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    let single = |i: usize| {
      let r = &items[i];
      self.release(r.name, r.token)
    };
    let con = match self.con().await {
      Ok(con @ (Conn::Single(_) | Conn::Tracked(_))) => con,
      Ok(Conn::Cluster(con)) => {
        let names: Vec<&str> = items.iter().map(|r| r.name).collect();
        let add = |pipe: &mut Pipeline, i: usize| self.add_release(pipe, &items[i]);
        let answers = self
          .cluster_batch(con, "release", &self.scripts.release, &names, add)
          .await;
        return settle(answers, single).await;
      }
      Ok(Conn::Client(_)) => return settle(items.iter().map(|_| None).collect(), single).await,
      Err(err) => return items.iter().map(|_| Err(clone_error(&err))).collect(),
    };
    let mut pipe = batch_pipe(&self.scripts.release);
    for r in items {
      self.add_release(&mut pipe, r);
    }
    self.run_batch(con, "release", &pipe, items.len()).await
  }

  /// Adds `r`'s release (the `release` script, as `release` sends it) to `pipe`.
  fn add_release(&self, pipe: &mut Pipeline, r: &Owned<'_>) {
    let keys = Keys::new(&self.prefix, r.name);
    pipe.invoke_script(&self.release_call(&keys, r.token));
  }

  /// A batch on a Redis Cluster: the locks grouped by the master that serves their slot (as the
  /// store last learnt it, `slot_owners`), and one pipeline per master (SCRIPT LOAD, then `add`
  /// of each of its locks) over the store's own connection to it, all masters at once. Each
  /// lock's answer in order: `Some` as its own script answered, or an error of its master only
  /// (a master that fails or does not answer in time fails only its locks); `None` for a lock to
  /// send again on its own: its slot is not served there (MOVED, ASK, TRYAGAIN: the script did
  /// not run, and the single call through the cluster connection follows the redirect), or the
  /// store could not learn the slots.
  async fn cluster_batch(
    &self,
    mut con: ClusterConnection,
    what: &str,
    script: &Script,
    names: &[&str],
    add: impl Fn(&mut Pipeline, usize),
  ) -> Vec<Option<Result<bool>>> {
    let mut answers: Vec<Option<Result<bool>>> = names.iter().map(|_| None).collect();
    let Some(owners) = self.slot_owners(&mut con).await else {
      return answers;
    };
    let mut groups: HashMap<u16, (ConnectionManager, Vec<usize>)> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
      let slot = keys::slot(&format!("{}{name}", self.prefix));
      if let Some((owner, node)) = owners.owner(slot) {
        let group = groups
          .entry(owner)
          .or_insert_with(|| (node.clone(), Vec::new()));
        group.1.push(i);
      }
    }
    let sends = groups.into_values().map(|(mut node, locks)| {
      let mut pipe = batch_pipe(script);
      for &i in &locks {
        add(&mut pipe, i);
      }
      async move {
        let count = locks.len() + 1; // with the SCRIPT LOAD
        let replies = node.req_packed_commands(&pipe, 0, count).await;
        (locks, replies)
      }
    });
    let mut changed = false;
    for (locks, replies) in futures_util::future::join_all(sends).await {
      match replies {
        Ok(replies) => {
          let mut replies = replies.into_iter().skip(1); // the SCRIPT LOAD's
          for i in locks {
            answers[i] = match replies.next() {
              Some(Value::ServerError(e)) => {
                let e = RedisError::from(e);
                if redirected(&e) {
                  changed = true;
                  None
                } else {
                  Some(Err(self.error(what, e)))
                }
              }
              Some(reply) => Some(Ok(as_i64(&reply) == Some(1))),
              None => Some(Err(unexpected(what))),
            };
          }
        }
        Err(e) => {
          // The master failed or did not answer in time: maybe a failover, so the slots are
          // asked again next time.
          changed = true;
          let err = self.error(what, e);
          for i in locks {
            answers[i] = Some(Err(clone_error(&err)));
          }
        }
      }
    }
    if changed {
      self.forget_slot_owners();
    }
    answers
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

/// The answers of a batch, with each `None` replaced by `single(i)` (sent all at once).
async fn settle<F: Future<Output = Result<bool>>>(
  answers: Vec<Option<Result<bool>>>,
  single: impl Fn(usize) -> F,
) -> Vec<Result<bool>> {
  let again = answers
    .iter()
    .enumerate()
    .filter(|(_, a)| a.is_none())
    .map(|(i, _)| single(i));
  let mut again = futures_util::future::join_all(again).await.into_iter();
  answers
    .into_iter()
    .map(|a| match a {
      Some(answer) => answer,
      None => again.next().unwrap_or_else(|| Err(unexpected("batch"))),
    })
    .collect()
}

/// Whether a script's error means it did not run because its slot is not served (or not
/// writable) where it went: moved, being migrated, or the cluster reconfiguring.
fn redirected(e: &RedisError) -> bool {
  e.is_cluster_error() || matches!(e.retry_method(), RetryMethod::RefreshSlotsAndRetry)
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
