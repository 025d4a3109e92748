//! One Redis server as a member of a quorum (a Redlock master): the narrow interface Redlock
//! talks to each master through, and the single-server store's implementation of it.
//!
//! A master differs from a plain single-server store in three ways: its waiters are not queued
//! (only listed as waiting, so that a release wakes them; see `store/redlock/mod.rs`), its
//! release notifications wake the watchers of one hub shared by every master, and its
//! connection reads the server's run id on every (re)connect (`tracked.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::Conn;
use super::pubsub::SubCmd;
use super::scripts::as_string;
use super::tracked::parse_run_id;
use super::{RedisOptions, RedisStore};
use crate::error::Result;
use crate::lease::{Acquire, AcquireRequest, LockInfo};
use crate::store::{LockStore, Owned, Renewal, WakeHub};

/// What Redlock needs of one master. Each lock operation is the single-server one, on that
/// server only; Redlock adds the quorum.
#[async_trait]
pub(crate) trait Master: Send + Sync + 'static {
  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire>;
  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool>;
  /// One pipeline for the whole batch; one result per lock, in order.
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>>;
  async fn release(&self, name: &str, token: &str) -> Result<bool>;
  /// One pipeline for the whole batch; one result per lock, in order.
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>>;
  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>>;
  async fn leave_queue(&self, name: &str, token: &str) -> Result<()>;

  /// Records `fence` in our lock (the fence the majority agreed on) and makes sure the next
  /// fence of `name` on this master is higher. `false` when the lock is not ours here.
  async fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool>;

  /// The name under which the release notifications of lock `name` wake the shared hub (the
  /// same on every master of one Redlock: they share the key prefix).
  fn channel(&self, name: &str) -> String;
  /// Whether the master pushes release notifications (not through a client object: its
  /// waiters poll).
  fn pushes(&self) -> bool;
  /// Subscribes to `channel` and waits, boundedly, until the subscription is active.
  async fn subscribe(&self, channel: &str) -> Result<()>;
  /// Drops the subscription of `channel` unless the hub watches it again by then.
  fn unsubscribe(&self, channel: &str);

  /// `host:port/db` (or the client object), for the duplicate check at creation.
  fn address(&self) -> String;
  /// The server's run id, to tell two addresses of one server apart: read when the connection
  /// was made (connecting first if needed), so it costs no request of its own. `Ok(None)`: the
  /// server will not say.
  async fn run_id(&self) -> Result<Option<String>>;
  /// When a restart of the server (a new run id on a reconnect) was last noticed.
  fn restarted_at(&self) -> Option<Instant>;

  async fn close(&self);
}

impl RedisStore {
  /// A Redlock master: one server (not a cluster), no FIFO queue, its run id read on every
  /// connect; its release notifications wake the watchers of `hub`, shared by every master.
  /// Validates the options; connects lazily.
  pub(crate) fn master(opts: RedisOptions, hub: WakeHub) -> Result<Arc<dyn Master>> {
    let (sub_tx, sub_rx) = mpsc::unbounded_channel();
    let store = RedisStore::with_hub(opts, hub, sub_tx, sub_rx)?
      .without_queue()
      .tracked();
    Ok(Arc::new(store))
  }
}

#[async_trait]
impl Master for RedisStore {
  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    LockStore::try_acquire(self, name, req).await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    LockStore::extend(self, name, token, ttl).await
  }

  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    LockStore::extend_many(self, items).await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    LockStore::release(self, name, token).await
  }

  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    LockStore::release_many(self, items).await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    LockStore::inspect(self, name).await
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    LockStore::leave_queue(self, name, token).await
  }

  async fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
    RedisStore::raise_fence(self, name, token, fence).await
  }

  fn channel(&self, name: &str) -> String {
    RedisStore::channel(self, name)
  }

  fn pushes(&self) -> bool {
    !self.is_client()
  }

  async fn subscribe(&self, channel: &str) -> Result<()> {
    RedisStore::subscribe(self, channel).await
  }

  fn unsubscribe(&self, channel: &str) {
    let _ = self.sub_tx.send(SubCmd::Unsubscribe(channel.to_owned()));
  }

  fn address(&self) -> String {
    RedisStore::address(self)
  }

  async fn run_id(&self) -> Result<Option<String>> {
    let mut con = self.con().await?;
    if let (Conn::Tracked(tracked), Some(incarnation)) = (&con, &self.incarnation) {
      tracked
        .connect()
        .await
        .map_err(|e| self.error("connect", e))?;
      return Ok(incarnation.run_id());
    }
    // The caller's client object: no connection of ours to learn it from, so ask.
    let mut cmd = redis::cmd("INFO");
    cmd.arg("server");
    let reply = cmd.query_async::<Value>(&mut con).await;
    let text = match reply.map_err(|e| self.error("INFO server", e))? {
      Value::VerbatimString { text, .. } => text,
      other => as_string(&other).unwrap_or_default(),
    };
    Ok(parse_run_id(&text))
  }

  fn restarted_at(&self) -> Option<Instant> {
    self.incarnation.as_ref().and_then(|i| i.restarted_at())
  }

  async fn close(&self) {
    LockStore::close(self).await
  }
}
