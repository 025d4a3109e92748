//! Single-node Redis store: Lua scripts (EVALSHA with NOSCRIPT fallback), one round trip per
//! operation, on one multiplexed connection; release notifications over pub/sub on a second
//! connection (RESP3 push), one channel per lock.
//!
//! Layout (readable by dist-lock 2.x): a hash at `prefix + name` with `id` (our token),
//! `owner`, `fence` and optional `data`, expiring by PEXPIRE. Beside it, keys that share its
//! hash slot: `{prefix+name}:fence` (counter), `:queue` and `:waiters` (FIFO of waiters).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
  ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Script, Value,
};
use tokio::sync::{mpsc, oneshot, OnceCell};

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, WakeHub, Watch};

/// How ferrolock connects to one Redis server.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
  /// `redis://[user:password@]host[:port][/db]` (or `rediss://`). When given, the fields
  /// below override its parts.
  pub url: Option<String>,
  pub host: Option<String>,
  pub port: Option<u16>,
  pub username: Option<String>,
  pub password: Option<String>,
  pub db: Option<i64>,
  /// Prefix of every lock key; default `lock:` (dist-lock's).
  pub key_prefix: Option<String>,
  /// Use TLS (also implied by a `rediss://` URL).
  pub tls: bool,
  /// PEM certificate(s) to trust instead of the system's roots (a private CA).
  pub tls_ca: Option<Vec<u8>>,
}

/// Default key prefix, the same as dist-lock's.
pub const DEFAULT_PREFIX: &str = "lock:";

/// How long a command may take before the backend counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `watch` waits for SUBSCRIBE before falling back to polling.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The fence counter is kept at least this long after the last acquisition.
const FENCE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Redis key names of one lock.
struct Keys {
  lock: String,
  fence: String,
  queue: String,
  waiters: String,
  channel: String,
}

/// The hash tag Redis Cluster would use for `key`: the text inside the first `{...}`, when
/// it is not empty.
fn hash_tag(key: &str) -> Option<&str> {
  let open = key.find('{')?;
  let len = key[open + 1..].find('}')?;
  (len > 0).then(|| &key[open + 1..open + 1 + len])
}

impl Keys {
  fn new(prefix: &str, name: &str) -> Self {
    let lock = format!("{prefix}{name}");
    // The companion keys must hash to the lock's slot, and must not be the key of another
    // lock: they start with `{tag}` (a key without a tag hashes as a whole, so `{key}` lands in
    // its slot), where lock keys start with the prefix.
    let base = match hash_tag(&lock) {
      Some(tag) => format!("{{{tag}}}:{lock}"),
      None => format!("{{{lock}}}"),
    };
    Keys {
      fence: format!("{base}:fence"),
      queue: format!("{base}:queue"),
      waiters: format!("{base}:waiters"),
      channel: format!("{base}:released"),
      lock,
    }
  }
}

struct Scripts {
  acquire: Script,
  extend: Script,
  release: Script,
  leave: Script,
  inspect: Script,
}

enum SubCmd {
  Subscribe(String, oneshot::Sender<()>),
  Unsubscribe(String),
  Shutdown,
}

/// The Redis store.
pub struct RedisStore {
  info: ConnectionInfo,
  tls_ca: Option<Vec<u8>>,
  prefix: String,
  /// Removed from every message, in case a driver ever echoes it.
  secret: Option<String>,
  scripts: Scripts,
  /// The command connection, made on first use and dropped by `close`.
  cmd: std::sync::Mutex<Option<ConnectionManager>>,
  /// Set once the subscription task runs (it is started on first use).
  subs: OnceCell<()>,
  hub: WakeHub,
  sub_tx: mpsc::UnboundedSender<SubCmd>,
  sub_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<SubCmd>>>,
  closed: AtomicBool,
}

/// The message for a URL that does not parse; never includes the URL (it may hold a password).
const BAD_URL: &str =
  "options.redis: invalid Redis URL (expected redis://[user:password@]host[:port][/db] or rediss://...)";

fn connection_info(opts: &RedisOptions) -> Result<ConnectionInfo> {
  let url = opts.url.as_deref().unwrap_or("redis://127.0.0.1:6379");
  if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
    return Err(LockError::InvalidArg(BAD_URL.into()));
  }
  let mut info = url
    .into_connection_info()
    .map_err(|_| LockError::InvalidArg(BAD_URL.into()))?;
  let (host, port, tls) = match info.addr() {
    redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p, false),
    redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
    _ => return Err(LockError::InvalidArg(BAD_URL.into())),
  };
  let host = opts.host.clone().unwrap_or(host);
  let port = opts.port.unwrap_or(port);
  info = info.set_addr(if tls || opts.tls || opts.tls_ca.is_some() {
    redis::ConnectionAddr::TcpTls {
      host,
      port,
      insecure: false,
      tls_params: None,
    }
  } else {
    redis::ConnectionAddr::Tcp(host, port)
  });
  let mut settings = info.redis_settings().clone();
  if let Some(user) = &opts.username {
    settings = settings.set_username(user);
  }
  if let Some(password) = &opts.password {
    settings = settings.set_password(password);
  }
  if let Some(db) = opts.db {
    settings = settings.set_db(db);
  }
  Ok(info.set_redis_settings(settings))
}

impl RedisStore {
  /// Validates the options; connects lazily on first use (so this needs no runtime).
  pub fn new(opts: RedisOptions) -> Result<Self> {
    let info = connection_info(&opts)?;
    if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
      // rustls needs one process-wide crypto provider; an embedder may have installed its own.
      let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let secret = info.redis_settings().password().map(str::to_owned);
    let (sub_tx, sub_rx) = mpsc::unbounded_channel();
    let idle_tx = sub_tx.clone();
    let hub = WakeHub::new(Some(Box::new(move |channel: &str| {
      let _ = idle_tx.send(SubCmd::Unsubscribe(channel.to_owned()));
    })));
    Ok(RedisStore {
      info,
      tls_ca: opts.tls_ca,
      prefix: opts.key_prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
      secret,
      scripts: Scripts {
        acquire: Script::new(include_str!("redis/acquire.lua")),
        extend: Script::new(include_str!("redis/extend.lua")),
        release: Script::new(include_str!("redis/release.lua")),
        leave: Script::new(include_str!("redis/leave.lua")),
        inspect: Script::new(include_str!("redis/inspect.lua")),
      },
      cmd: std::sync::Mutex::new(None),
      subs: OnceCell::new(),
      hub,
      sub_tx,
      sub_rx: std::sync::Mutex::new(Some(sub_rx)),
      closed: AtomicBool::new(false),
    })
  }

  fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
      .set_connection_timeout(Some(CONNECT_TIMEOUT))
      .set_response_timeout(Some(RESPONSE_TIMEOUT))
      .set_number_of_retries(1)
      .set_min_delay(Duration::from_millis(50))
      .set_max_delay(Duration::from_millis(500))
  }

  fn error(&self, what: &str, err: redis::RedisError) -> LockError {
    let mut cause = err.to_string();
    if let Some(secret) = self.secret.as_deref().filter(|s| !s.is_empty()) {
      cause = cause.replace(secret, "***");
    }
    LockError::backend(format!("redis: {what} failed: {cause}"), cause)
  }

  /// A driver client for `info`, trusting `tls_ca` when given.
  fn client(&self, info: ConnectionInfo, what: &str) -> Result<redis::Client> {
    let client = match &self.tls_ca {
      Some(ca) => redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
          client_tls: None,
          root_cert: Some(ca.clone()),
        },
      ),
      None => redis::Client::open(info),
    };
    client.map_err(|e| self.error(what, e))
  }

  async fn con(&self) -> Result<ConnectionManager> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    let mut cmd = self.cmd.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(con) = cmd.as_ref() {
      return Ok(con.clone());
    }
    // Lazy: this connects on the first command, not here.
    let client = self.client(self.info.clone(), "connect")?;
    let con = ConnectionManager::new_lazy_with_config(client, Self::manager_config())
      .map_err(|e| self.error("connect", e))?;
    *cmd = Some(con.clone());
    Ok(con)
  }

  /// Starts the subscription task on first use and returns its command queue.
  async fn subscriber(&self) -> Result<&mpsc::UnboundedSender<SubCmd>> {
    self.start_subscriptions().await?;
    Ok(&self.sub_tx)
  }

  async fn start_subscriptions(&self) -> Result<()> {
    self
      .subs
      .get_or_try_init(|| async {
        let rx = self
          .sub_rx
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .take()
          .ok_or(LockError::Closed)?;
        let hub = self.hub.clone();
        let push = move |info: PushInfo| -> std::result::Result<(), ()> {
          match info.kind {
            PushKind::Message => {
              if let Some(Value::BulkString(ch)) = info.data.first() {
                let addressee = info.data.get(1).and_then(as_string);
                hub.wake(&String::from_utf8_lossy(ch), addressee.as_deref());
              }
            }
            // Messages may have been missed while the connection was down: let every waiter
            // look again.
            PushKind::Disconnection => hub.wake_all(),
            _ => {}
          }
          Ok(())
        };
        let settings = self
          .info
          .redis_settings()
          .clone()
          .set_protocol(ProtocolVersion::RESP3);
        let client = self.client(self.info.clone().set_redis_settings(settings), "subscribe")?;
        let config = Self::manager_config()
          .set_push_sender(push)
          .set_automatic_resubscription();
        let con = ConnectionManager::new_lazy_with_config(client, config)
          .map_err(|e| self.error("subscribe", e))?;
        tokio::spawn(run_subscriptions(con, rx, self.hub.clone()));
        Ok(())
      })
      .await?;
    Ok(())
  }

  async fn eval(&self, what: &str, inv: &mut redis::ScriptInvocation<'_>) -> Result<Value> {
    let mut con = self.con().await?;
    inv
      .invoke_async(&mut con)
      .await
      .map_err(|e| self.error(what, e))
  }
}

/// Applies subscribe/unsubscribe requests in order on the subscription connection, so an
/// unsubscribe of an idle channel can never overtake a newer subscribe of the same channel.
async fn run_subscriptions(
  mut con: ConnectionManager,
  mut rx: mpsc::UnboundedReceiver<SubCmd>,
  hub: WakeHub,
) {
  let mut subscribed = HashSet::new();
  while let Some(cmd) = rx.recv().await {
    match cmd {
      SubCmd::Subscribe(channel, done) => {
        if !subscribed.contains(&channel) && con.subscribe(&channel).await.is_ok() {
          subscribed.insert(channel);
        }
        let _ = done.send(());
      }
      SubCmd::Unsubscribe(channel) => {
        if !hub.is_watched(&channel) && subscribed.remove(&channel) {
          let _ = con.unsubscribe(&channel).await;
        }
      }
      SubCmd::Shutdown => break,
    }
  }
}

fn as_i64(v: &Value) -> Option<i64> {
  match v {
    Value::Int(i) => Some(*i),
    Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    Value::SimpleString(s) => s.parse().ok(),
    _ => None,
  }
}

fn as_string(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    _ => None,
  }
}

fn remaining(pttl: Option<i64>) -> Option<Duration> {
  pttl
    .filter(|ms| *ms >= 0)
    .map(|ms| Duration::from_millis(ms as u64))
}

fn unexpected(what: &str) -> LockError {
  LockError::Backend {
    message: format!("redis: unexpected reply to {what}"),
    source: None,
  }
}

fn millis(d: Duration) -> u64 {
  d.as_millis().min(u64::MAX as u128) as u64
}

#[async_trait]
impl LockStore for RedisStore {
  fn kind(&self) -> &'static str {
    "redis"
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
    let keys = Keys::new(&self.prefix, name);
    let queue_ms = req.queue_for.map(millis).unwrap_or(0);
    let keep = millis(FENCE_KEEP).max(millis(req.ttl).saturating_mul(2));
    let reply = self
      .eval(
        "acquire",
        self
          .scripts
          .acquire
          .key(&keys.lock)
          .key(&keys.fence)
          .key(&keys.queue)
          .key(&keys.waiters)
          .arg(req.token)
          .arg(req.owner)
          .arg(millis(req.ttl))
          .arg(if data.is_some() { "1" } else { "0" })
          .arg(data.unwrap_or(""))
          .arg(queue_ms)
          .arg(keep),
      )
      .await?;
    let Value::Array(items) = reply else {
      return Err(unexpected("acquire"));
    };
    match items.first().and_then(as_i64) {
      Some(1) => {
        let fence = items
          .get(1)
          .and_then(as_i64)
          .ok_or_else(|| unexpected("acquire"))?;
        Ok(Acquire::Granted(Grant {
          fence: fence as u64,
        }))
      }
      Some(0) => Ok(Acquire::Held(Holder {
        owner: items.get(1).and_then(as_string),
        remaining: remaining(items.get(2).and_then(as_i64)),
      })),
      _ => Err(unexpected("acquire")),
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
          .arg(token)
          .arg(millis(ttl)),
      )
      .await?;
    Ok(as_i64(&reply) == Some(1))
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    let keys = Keys::new(&self.prefix, name);
    let reply = self
      .eval(
        "release",
        self
          .scripts
          .release
          .key(&keys.lock)
          .key(&keys.queue)
          .arg(token)
          .arg(&keys.channel),
      )
      .await?;
    Ok(as_i64(&reply) == Some(1))
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
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
          .arg(&keys.channel),
      )
      .await?;
    Ok(())
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    let channel = Keys::new(&self.prefix, name).channel;
    let subscriber = self.subscriber().await?;
    let (watch, _) = self.hub.register(&channel);
    let (done_tx, done_rx) = oneshot::channel();
    if subscriber.send(SubCmd::Subscribe(channel, done_tx)).is_ok() {
      // Without a subscription in time the waiter still works: it polls.
      let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, done_rx).await;
    }
    Ok(Some(watch))
  }

  fn watched(&self) -> usize {
    self.hub.len()
  }

  async fn close(&self) {
    self.closed.store(true, Ordering::Release);
    self.cmd.lock().unwrap_or_else(|e| e.into_inner()).take();
    let _ = self.sub_tx.send(SubCmd::Shutdown);
    self.hub.wake_all();
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

  #[test]
  fn companion_keys_share_the_lock_slot() {
    let k = Keys::new("lock:", "job");
    assert_eq!(k.lock, "lock:job");
    assert_eq!(k.fence, "{lock:job}:fence");
    assert_eq!(k.channel, "{lock:job}:released");
    let tagged = Keys::new("lock:", "{tenant}job");
    assert_eq!(tagged.fence, "{tenant}:lock:{tenant}job:fence");
    // Not the key of the lock named "{tenant}job:fence".
    assert_ne!(tagged.fence, Keys::new("lock:", "{tenant}job:fence").lock);
    assert_eq!(hash_tag("a{}b{c}"), None);
    assert_eq!(hash_tag("x{ab}y"), Some("ab"));
  }

  #[test]
  fn bad_urls_are_rejected_without_echoing_them() {
    for url in ["http://x", "redis://user:s3cret@", "nonsense"] {
      let err = RedisStore::new(RedisOptions {
        url: Some(url.into()),
        ..Default::default()
      })
      .err();
      let msg = err.map(|e| e.to_string()).unwrap_or_default();
      assert!(msg.contains("invalid Redis URL"), "{url}: {msg}");
      assert!(!msg.contains("s3cret"));
    }
  }
}
