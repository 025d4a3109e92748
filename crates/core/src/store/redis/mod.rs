//! Redis store, one server or a Redis Cluster: Lua scripts (EVALSHA with NOSCRIPT fallback),
//! one round trip per operation, on one multiplexed connection (a cluster connection routes each
//! script by its first key and follows MOVED/ASK); release notifications over pub/sub on a
//! second connection (RESP3 push), one channel per lock. On a cluster the scripts publish with
//! SPUBLISH and waiters SSUBSCRIBE (sharded pub/sub, Redis 7), falling back to classic
//! PUBLISH/SUBSCRIBE on servers without it.
//!
//! Layout (readable by dist-lock 2.x): a hash at `prefix + name` with `id` (our token),
//! `owner`, `fence`, optional `data` and `waiting` (set when someone waits, so the release
//! knows to wake them), expiring by PEXPIRE. Beside it, keys that share its hash slot, each only
//! while it is needed: `{prefix+name}:queue` and `:waiters` (the FIFO of waiters and their
//! liveness deadlines) expire at most a few seconds after the last waiter polled, and
//! `{prefix+name}:fence` (the fence counter) exists only in the rare case described in
//! [`RedisStore`]'s fence notes, at most `FENCE_KEEP` past that fence's time. No key outlives its
//! lock or its queue by more than 60 s; a free lock that nobody waits for leaves no key.
//!
//! Cost: on a free lock that nobody waits for, acquire is one script of four commands (EXISTS,
//! TIME, HSET, PEXPIRE); release is one script of three (HMGET, DEL, TIME) and publishes only
//! when the lock is marked `waiting`.
//!
//! Files: `options.rs` (options and URL parsing), `keys.rs` (the key layout), `scripts.rs` (the
//! Lua scripts and their replies), `connection.rs` (the kinds of command connection),
//! `object.rs` (the caller's client object), `tracked.rs` (a connection that reads the run id),
//! `pubsub.rs` (release notifications), `batch.rs` (pipelined batches; on a cluster one per
//! master, over connections of their own to the masters), `master.rs` (the per-master interface
//! Redlock uses).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{ConnectionInfo, Value};
use tokio::sync::{mpsc, Mutex as AsyncMutex, OnceCell};

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, Owned, Renewal, WakeHub, Watch};

mod batch;
mod connection;
mod keys;
pub(crate) mod master;
mod object;
mod options;
mod pubsub;
mod scripts;
mod tracked;

use connection::{ClusterConnect, Conn};
use keys::{hash_tag, Keys};
use options::{target, Target};
pub use options::{RedisOptions, DEFAULT_PREFIX};
use pubsub::SubCmd;
use scripts::{as_i64, as_string, as_u64, remaining, unexpected, Scripts};
use tracked::Incarnation;

/// How long past a fence's own time (its µs read as a server clock reading) the fence counter
/// keeps it, when it is kept at all (see [`RedisStore`]).
pub(crate) const FENCE_KEEP: Duration = Duration::from_secs(60);

/// The Redis store.
///
/// # Fences
///
/// A grant's fence is the server's clock (`TIME`) in microseconds, or one more than the fence
/// counter when the counter exists and is not below the clock. The counter is written only when
/// a later clock reading could otherwise be at or below the last fence: when a release, an
/// extend or a grant finds the clock not past that lock's fence (the clock did not advance or
/// was stepped back), and by Redlock's fence raise. It then keeps that fence until the server
/// clock has passed the fence by `FENCE_KEEP` (60 s). A lock that expires instead of being
/// released needs no counter: Redis expires it by the same clock, after the clock has passed
/// the fence.
///
/// Guarantee: per lock name on one server, every fence is strictly greater than every earlier
/// one, unless the server clock is set back, while no key of that lock exists, to a reading at
/// or before the last fence (more than the time since that lock was released or expired, when
/// the clock was right before). A clock set back while the lock is held or its counter exists is
/// covered (keys expire by that same clock, so they live on until it has caught up). A server
/// that loses its data (a restart without persistence, a failover to a replica that missed the
/// last writes) falls back to its clock the same way. `docs/fences.md` has the details.
pub struct RedisStore {
  target: Target,
  tls_ca: Option<Vec<u8>>,
  prefix: String,
  /// Removed from every message, in case a driver ever echoes it.
  secret: Option<String>,
  scripts: Scripts,
  /// The command connection, made on first use and dropped by `close`.
  cmd: std::sync::Mutex<Option<Conn>>,
  /// Serializes the (asynchronous) first connection to a cluster, and holds that connect while
  /// it runs: it is its own task, so a request cut by its timeout does not abort it.
  connecting: AsyncMutex<Option<ClusterConnect>>,
  /// Which master serves each slot, and connections to them, for cluster batches (learnt on the
  /// first batch, `connection.rs`).
  batching: std::sync::Mutex<connection::Batching>,
  /// Aborts a cluster connect still running when the store closes.
  connect_abort: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
  /// Set once the subscription task runs (it is started on first use).
  subs: OnceCell<()>,
  hub: WakeHub,
  sub_tx: mpsc::UnboundedSender<SubCmd>,
  sub_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<SubCmd>>>,
  closed: AtomicBool,
  /// How long past a fence's time the counter keeps it (`FENCE_KEEP`; shorter in tests).
  fence_keep: Duration,
  /// Whether waiters queue in FIFO order here (false for a Redlock master: its waiters are only
  /// listed as alive, so that a release wakes them).
  queue: bool,
  /// Set for a Redlock master: its connection reads the server's run id on every (re)connect
  /// and records restarts here (`store/redis/tracked.rs`).
  incarnation: Option<Arc<Incarnation>>,
}

impl RedisStore {
  /// Validates the options; connects lazily on first use (so this needs no runtime).
  pub fn new(opts: RedisOptions) -> Result<Self> {
    let (sub_tx, sub_rx) = mpsc::unbounded_channel();
    let idle_tx = sub_tx.clone();
    let hub = WakeHub::new(Some(Box::new(move |channel: &str| {
      let _ = idle_tx.send(SubCmd::Unsubscribe(channel.to_owned()));
    })));
    Self::with_hub(opts, hub, sub_tx, sub_rx)
  }

  /// A store whose release notifications go to `hub` (shared by the masters of a Redlock), fed
  /// by the subscription task that reads `sub_rx`.
  fn with_hub(
    opts: RedisOptions,
    hub: WakeHub,
    sub_tx: mpsc::UnboundedSender<SubCmd>,
    sub_rx: mpsc::UnboundedReceiver<SubCmd>,
  ) -> Result<Self> {
    let target = target(&opts)?;
    let first = match &target {
      Target::Single(info) => Some(&**info),
      Target::Cluster(infos) => Some(infos.first().ok_or_else(|| {
        LockError::InvalidArg("options.redis.cluster must list at least one node URL".into())
      })?),
      Target::Client(_) => None,
    };
    if first.is_some_and(|f| matches!(f.addr(), redis::ConnectionAddr::TcpTls { .. })) {
      // rustls needs one process-wide crypto provider; an embedder may have installed its own.
      let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let secret = first.and_then(|f| f.redis_settings().password().map(str::to_owned));
    if let Some(secret) = &secret {
      crate::redact::remember(secret);
    }
    Ok(RedisStore {
      target,
      tls_ca: opts.tls_ca,
      prefix: opts.key_prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
      secret,
      scripts: Scripts::new(),
      cmd: std::sync::Mutex::new(None),
      connecting: AsyncMutex::new(None),
      batching: std::sync::Mutex::default(),
      connect_abort: std::sync::Mutex::new(None),
      subs: OnceCell::new(),
      hub,
      sub_tx,
      sub_rx: std::sync::Mutex::new(Some(sub_rx)),
      closed: AtomicBool::new(false),
      fence_keep: FENCE_KEEP,
      queue: true,
      incarnation: None,
    })
  }

  /// Internal (tests): keep a fence counter this long past its fence's time instead of
  /// `FENCE_KEEP` (60 s), so that its expiry can be observed quickly. At least 1 ms.
  #[doc(hidden)]
  pub fn with_fence_keep(mut self, keep: Duration) -> Self {
    self.fence_keep = keep.max(Duration::from_millis(1));
    self
  }

  /// A Redlock master: waiters are not queued (see `redlock.rs`), only listed as waiting.
  fn without_queue(mut self) -> Self {
    self.queue = false;
    self
  }

  /// A Redlock master's connection: reads the server's run id on every (re)connect, so that
  /// restart quarantine knows when it restarted (`Master::restarted_at`). No effect on a client
  /// object.
  fn tracked(mut self) -> Self {
    if matches!(self.target, Target::Single(_)) {
      self.incarnation = Some(Arc::default());
    }
    self
  }

  /// The wait argument of the acquire script: 0 when the caller does not wait, `queue` ms when
  /// it waits in the FIFO queue, minus that when it waits without a queue (Redlock).
  fn wait_arg(&self, queue_for: Option<Duration>) -> i64 {
    let ms = queue_for.map_or(0, |d| millis(d).min(60_000) as i64);
    if self.queue {
      ms
    } else {
      -ms
    }
  }

  fn error(&self, what: &str, err: redis::RedisError) -> LockError {
    let mut cause = err.to_string();
    if let Some(secret) = self.secret.as_deref().filter(|s| !s.is_empty()) {
      cause = cause.replace(secret, "***");
    }
    LockError::backend(format!("redis: {what} failed: {cause}"), cause)
  }

  /// `host:port/db` of a single server, or the node list of a cluster (for duplicate checks;
  /// never includes a password).
  fn address(&self) -> String {
    fn one(info: &ConnectionInfo) -> String {
      let db = info.redis_settings().db();
      match info.addr() {
        redis::ConnectionAddr::Tcp(h, p) => format!("{}:{p}/{db}", h.to_lowercase()),
        redis::ConnectionAddr::TcpTls { host, port, .. } => {
          format!("{}:{port}/{db}", host.to_lowercase())
        }
        other => format!("{other:?}"),
      }
    }
    match &self.target {
      Target::Single(info) => one(info),
      Target::Cluster(infos) => infos.iter().map(one).collect::<Vec<_>>().join(","),
      // Two stores over one object are the same master; two objects may be too (unknowable).
      Target::Client(client) => format!("client object {:p}", Arc::as_ptr(&client.transport)),
    }
  }

  /// On a cluster, a lock key with a `}` but no hash tag cannot share its slot with its
  /// companion keys (`{key}:fence` would hash only up to that `}`): refused before any I/O.
  fn check_cluster_key(&self, name: &str) -> Result<()> {
    if !self.is_cluster() {
      return Ok(()); // no slots: nothing to check on the hot path
    }
    let key = format!("{}{name}", self.prefix);
    if hash_tag(&key).is_none() && key.contains('}') {
      return Err(LockError::InvalidArg(format!(
        "name: on a Redis Cluster, a lock key with '}}' needs a hash tag ({{tag}}), got {key:?}"
      )));
    }
    Ok(())
  }

  /// Whether this store talks to a Redis Cluster.
  pub fn is_cluster(&self) -> bool {
    match &self.target {
      Target::Cluster(_) => true,
      Target::Client(client) => client.cluster,
      Target::Single(_) => false,
    }
  }

  /// Whether commands go through the caller's client object.
  fn is_client(&self) -> bool {
    matches!(self.target, Target::Client(_))
  }

  /// The release script for `token`'s lock at `keys`: the one call `release` and
  /// `release_many` send (only while it is ours; a waiter is woken).
  fn release_call(&self, keys: &Keys, token: &str) -> redis::ScriptInvocation<'_> {
    let mut inv = self.scripts.release.prepare_invoke();
    inv
      .key(&keys.lock)
      .key(&keys.fence)
      .key(&keys.queue)
      .arg(token)
      .arg(millis(self.fence_keep))
      .arg(&keys.channel)
      .arg(self.sharded());
    inv
  }

  async fn eval(&self, what: &str, inv: &mut redis::ScriptInvocation<'_>) -> Result<Value> {
    let reply = inv.invoke_async(&mut self.con().await?).await;
    reply.map_err(|e| self.error(what, e))
  }

  /// Records `fence` in our lock (Redlock: the fence the majority agreed on) and makes sure the
  /// next fence of `name` here is higher: when `fence` is not below this server's clock, the
  /// counter keeps it. `false` when the lock is not ours here.
  async fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
    let keys = Keys::new(&self.prefix, name);
    let keep = millis(self.fence_keep);
    let reply = self
      .eval(
        "raise fence",
        self
          .scripts
          .raise
          .key(&keys.lock)
          .key(&keys.fence)
          .arg(token)
          .arg(fence)
          .arg(keep),
      )
      .await?;
    Ok(as_i64(&reply) == Some(1))
  }

  /// The notification channel of `name` (for a hub shared by several stores).
  fn channel(&self, name: &str) -> String {
    Keys::new(&self.prefix, name).channel
  }

  /// `'1'` when the scripts should publish with SPUBLISH (sharded pub/sub, on a cluster).
  fn sharded(&self) -> &'static str {
    // Also through a cluster client object: native waiters of a mixed fleet listen with
    // SSUBSCRIBE, and the script falls back to PUBLISH where the server has no SPUBLISH.
    if self.is_cluster() {
      "1"
    } else {
      "0"
    }
  }
}

fn millis(d: Duration) -> u64 {
  d.as_millis().min(u64::MAX as u128) as u64
}

#[async_trait]
impl LockStore for RedisStore {
  fn kind(&self) -> &'static str {
    if self.is_cluster() {
      "redis-cluster"
    } else {
      "redis"
    }
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    if !req.extras.is_default() {
      return Err(unsupported_extras("redis"));
    }
    let data = match req.data {
      None => None,
      Some(Payload::Text(text)) => Some(text.as_str()),
      Some(Payload::Bytes(_)) => {
        return Err(LockError::InvalidArg(
          "options.data: the redis backend stores text only (pass a string)".into(),
        ))
      }
    };
    self.check_cluster_key(name)?;
    let keys = Keys::new(&self.prefix, name);
    let mut inv = self.scripts.acquire.prepare_invoke();
    inv
      .key(&keys.lock)
      .key(&keys.fence)
      .key(&keys.queue)
      .key(&keys.waiters)
      .arg(req.token)
      .arg(req.owner)
      .arg(millis(req.ttl))
      .arg(self.wait_arg(req.queue_for))
      .arg(millis(self.fence_keep));
    if let Some(data) = data {
      inv.arg(data);
    }
    // Granted: the fence (a decimal string). Held: [owner or nil, remaining ms].
    match self.eval("acquire", &mut inv).await? {
      Value::Array(items) => Ok(Acquire::Held(Holder {
        owner: items.first().and_then(as_string),
        remaining: remaining(items.get(1).and_then(as_i64)),
      })),
      fence => match as_u64(&fence) {
        Some(fence) => Ok(Acquire::Granted(Grant { fence })),
        None => Err(unexpected("acquire")),
      },
    }
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    let keys = Keys::new(&self.prefix, name);
    let reply = self
      .eval(
        "extend",
        self
          .scripts
          .extend
          .key(&keys.lock)
          .key(&keys.fence)
          .arg(token)
          .arg(millis(ttl))
          .arg(millis(self.fence_keep)),
      )
      .await?;
    Ok(as_i64(&reply) == Some(1))
  }

  /// One server: one pipeline (SCRIPT LOAD, then one EVALSHA per lock), one round trip for
  /// the whole batch. A cluster: that pipeline once per master, for the locks of its slots
  /// (`batch.rs`). The caller's client object: every extend at once, one call each.
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    self.extend_batch(items).await
  }

  /// Like `extend_many`: one server, one pipelined write of the release script for the whole
  /// batch; a cluster, one per master; a client object, every release at once (`batch.rs`).
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    self.release_batch(items).await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    let keys = Keys::new(&self.prefix, name);
    let reply = self
      .eval("release", &mut self.release_call(&keys, token))
      .await?;
    Ok(as_i64(&reply) == Some(1))
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    self.check_cluster_key(name)?;
    let keys = Keys::new(&self.prefix, name);
    let reply = self
      .eval("inspect", &mut self.scripts.inspect.key(&keys.lock))
      .await?;
    let Value::Array(items) = reply else {
      return Err(unexpected("inspect"));
    };
    if items.is_empty() {
      return Ok(None);
    }
    Ok(Some(LockInfo {
      owner: items.first().and_then(as_string).unwrap_or_default(),
      fence: items.get(1).and_then(as_i64).unwrap_or(0).max(0) as u64,
      data: items.get(2).and_then(as_string).map(Payload::Text),
      remaining: remaining(items.get(3).and_then(as_i64)),
    }))
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    let keys = Keys::new(&self.prefix, name);
    self
      .eval(
        "leave",
        self
          .scripts
          .leave
          .key(&keys.lock)
          .key(&keys.queue)
          .key(&keys.waiters)
          .arg(token)
          .arg(&keys.channel)
          .arg(self.sharded()),
      )
      .await?;
    Ok(())
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    if !self.wakes_waiters() {
      return Ok(None); // a client object that cannot subscribe: the waiters poll
    }
    let channel = Keys::new(&self.prefix, name).channel;
    self.start_subscriptions().await?;
    let (watch, _) = self.hub.register(&channel);
    self.subscribe(&channel).await?;
    Ok(Some(watch))
  }

  fn watched(&self) -> usize {
    self.hub.len()
  }

  async fn close(&self) {
    self.closed.store(true, Ordering::Release);
    self.cmd.lock().unwrap_or_else(|e| e.into_inner()).take();
    self.drop_batching();
    if let Some(connect) = self
      .connect_abort
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .take()
    {
      connect.abort();
    }
    let _ = self.sub_tx.send(SubCmd::Shutdown);
    self.hub.wake_all();
    self.close_subscriber().await;
  }
}

impl Drop for RedisStore {
  fn drop(&mut self) {
    let _ = self.sub_tx.send(SubCmd::Shutdown);
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn cluster_refuses_keys_whose_companions_cannot_share_their_slot() {
    let store = RedisStore::new(RedisOptions {
      cluster: Some(vec!["redis://127.0.0.1:1".into()]),
      ..Default::default()
    })
    .expect("options");
    for bad in ["a}b", "{}x"] {
      assert!(matches!(
        store.inspect(bad).await,
        Err(LockError::InvalidArg(_))
      ));
    }
  }
}
