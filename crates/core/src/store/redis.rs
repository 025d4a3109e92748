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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
  ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Script, Value,
};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex, OnceCell};

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, Renewal, WakeHub, Watch};
use crate::transport::{ClientConn, RedisClientObject};

mod tracked;
pub(crate) use tracked::Incarnation;
use tracked::TrackedConn;

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
  /// Redis Cluster: URLs of some of its nodes (the others are discovered). `url`, `host`, `port`
  /// and `db` must not be given then; `username`, `password` and TLS apply to every node.
  pub cluster: Option<Vec<String>>,
  /// The caller's own client object (the transport seam): every command goes through it, and
  /// none of the connection settings above may be given then. No pub/sub: waiters poll.
  pub client: Option<RedisClientObject>,
}

/// Default key prefix, the same as dist-lock's.
pub const DEFAULT_PREFIX: &str = "lock:";

/// How long a command may take before the backend counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `watch` waits for SUBSCRIBE before falling back to polling.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long past a fence's own time (its µs read as a server clock reading) the fence counter
/// keeps it, when it is kept at all (see [`RedisStore`]).
pub(crate) const FENCE_KEEP: Duration = Duration::from_secs(60);

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
  /// The start of the companion keys of `lock`. They must hash to the lock's slot, and must
  /// not be the key of another lock: they start with `{tag}` (a key without a tag hashes as a
  /// whole, so `{key}` lands in its slot), where lock keys start with the prefix.
  fn base(lock: &str) -> String {
    match hash_tag(lock) {
      Some(tag) => format!("{{{tag}}}:{lock}"),
      None => format!("{{{lock}}}"),
    }
  }

  /// Only the lock key and its fence counter (what a renewal needs), named as by `new`.
  fn lock_and_fence(prefix: &str, name: &str) -> (String, String) {
    let lock = format!("{prefix}{name}");
    let fence = format!("{}:fence", Keys::base(&lock));
    (lock, fence)
  }

  fn new(prefix: &str, name: &str) -> Self {
    let lock = format!("{prefix}{name}");
    let base = Keys::base(&lock);
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
  raise: Script,
}

const ACQUIRE: &str = include_str!("redis/acquire.lua");
const EXTEND: &str = include_str!("redis/extend.lua");
const RELEASE: &str = include_str!("redis/release.lua");
const LEAVE: &str = include_str!("redis/leave.lua");
const INSPECT: &str = include_str!("redis/inspect.lua");
const RAISE: &str = include_str!("redis/raise.lua");

impl Scripts {
  fn new() -> Self {
    Scripts {
      acquire: Script::new(ACQUIRE),
      extend: Script::new(EXTEND),
      release: Script::new(RELEASE),
      leave: Script::new(LEAVE),
      inspect: Script::new(INSPECT),
      raise: Script::new(RAISE),
    }
  }

  fn all(&self) -> [&Script; 6] {
    [
      &self.acquire,
      &self.extend,
      &self.release,
      &self.leave,
      &self.inspect,
      &self.raise,
    ]
  }

  /// Every script's source by its SHA1.
  fn sources(&self) -> HashMap<String, String> {
    [
      (&self.acquire, ACQUIRE),
      (&self.extend, EXTEND),
      (&self.release, RELEASE),
      (&self.leave, LEAVE),
      (&self.inspect, INSPECT),
      (&self.raise, RAISE),
    ]
    .into_iter()
    .map(|(script, source)| (script.get_hash().to_owned(), source.to_owned()))
    .collect()
  }
}

pub(crate) enum SubCmd {
  Subscribe(String, oneshot::Sender<()>),
  Unsubscribe(String),
  Shutdown,
}

/// Receives the pub/sub messages of a subscription connection.
type PushHandler = Box<dyn Fn(PushInfo) -> std::result::Result<(), ()> + Send + Sync>;

/// Where the store connects: one server, or a cluster through some of its nodes.
enum Target {
  Single(Box<ConnectionInfo>),
  Cluster(Vec<ConnectionInfo>),
  Client(RedisClientObject),
}

/// A cluster connect running as its own task (see `RedisStore::cluster_connect`).
type ClusterConnect = tokio::task::JoinHandle<
  std::result::Result<redis::RedisResult<ClusterConnection>, tokio::time::error::Elapsed>,
>;

/// A command connection of either kind (both are cheap clones of one multiplexed connection).
#[derive(Clone)]
enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Client(ClientConn),
  /// One server, run id read on every (re)connect (a Redlock master).
  Tracked(TrackedConn),
}

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

/// The message for a URL that does not parse; never includes the URL (it may hold a password).
const BAD_URL: &str =
  "options.redis: invalid Redis URL (expected redis://[user:password@]host[:port][/db] or rediss://...)";

/// The message for a cluster node URL that does not parse.
const BAD_NODE: &str =
  "options.redis.cluster: invalid node URL (expected redis://[user:password@]host[:port] or rediss://...)";

fn target(opts: &RedisOptions) -> Result<Target> {
  if let Some(client) = &opts.client {
    let settings = opts.url.is_some()
      || opts.host.is_some()
      || opts.port.is_some()
      || opts.username.is_some()
      || opts.password.is_some()
      || opts.db.is_some()
      || opts.tls
      || opts.tls_ca.is_some()
      || opts.cluster.is_some();
    if settings {
      return Err(LockError::InvalidArg(
        "options.redis: a client object brings its own connection; do not also give url, host, port, username, password, db, tls or cluster".into(),
      ));
    }
    return Ok(Target::Client(client.clone()));
  }
  if let Some(ca) = &opts.tls_ca {
    check_ca(ca)?;
  }
  let Some(nodes) = &opts.cluster else {
    let info = connection_info(opts, opts.url.as_deref(), BAD_URL)?;
    return Ok(Target::Single(Box::new(info)));
  };
  if nodes.is_empty() {
    return Err(LockError::InvalidArg(
      "options.redis.cluster must list at least one node URL".into(),
    ));
  }
  if opts.url.is_some() || opts.host.is_some() || opts.port.is_some() {
    return Err(LockError::InvalidArg(
      "options.redis: give either cluster (node URLs) or url/host/port, not both".into(),
    ));
  }
  if opts.db.is_some_and(|db| db != 0) {
    return Err(LockError::InvalidArg(
      "options.redis.db: a Redis Cluster has only database 0".into(),
    ));
  }
  let infos = nodes
    .iter()
    .map(|node| connection_info(opts, Some(node), BAD_NODE))
    .collect::<Result<Vec<_>>>()?;
  if infos.iter().any(|i| i.redis_settings().db() != 0) {
    return Err(LockError::InvalidArg(
      "options.redis.cluster: a Redis Cluster has only database 0".into(),
    ));
  }
  Ok(Target::Cluster(infos))
}

/// A private CA must be at least one PEM certificate that parses.
fn check_ca(ca: &[u8]) -> Result<()> {
  use rustls::pki_types::pem::PemObject;
  use rustls::pki_types::CertificateDer;
  let certs = CertificateDer::pem_slice_iter(ca).collect::<std::result::Result<Vec<_>, _>>();
  match certs {
    Ok(certs) if !certs.is_empty() => Ok(()),
    _ => Err(LockError::InvalidArg(
      "options.redis.tls.ca must hold at least one PEM certificate".into(),
    )),
  }
}

fn connection_info(opts: &RedisOptions, url: Option<&str>, bad: &str) -> Result<ConnectionInfo> {
  let url = url.unwrap_or("redis://127.0.0.1:6379");
  if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
    return Err(LockError::InvalidArg(bad.into()));
  }
  let mut info = url
    .into_connection_info()
    .map_err(|_| LockError::InvalidArg(bad.into()))?;
  let (host, port, tls) = match info.addr() {
    redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p, false),
    redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
    _ => return Err(LockError::InvalidArg(bad.into())),
  };
  let host = opts.host.clone().unwrap_or(host);
  let port = opts.port.unwrap_or(port);
  // Caught here, before any connection attempt (messages never repeat the URL).
  let what = bad.split(':').next().unwrap_or("options.redis");
  if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
    return Err(LockError::InvalidArg(format!(
      "{what}: the host must be a host name or an IP address"
    )));
  }
  if port == 0 {
    return Err(LockError::InvalidArg(format!(
      "{what}: the port must be from 1 to 65535"
    )));
  }
  let db = opts.db.unwrap_or_else(|| info.redis_settings().db());
  if !(0..=i64::from(i32::MAX)).contains(&db) {
    return Err(LockError::InvalidArg(format!(
      "{what}: the database number must be from 0 to {}",
      i32::MAX
    )));
  }
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
    let (sub_tx, sub_rx) = mpsc::unbounded_channel();
    let idle_tx = sub_tx.clone();
    let hub = WakeHub::new(Some(Box::new(move |channel: &str| {
      let _ = idle_tx.send(SubCmd::Unsubscribe(channel.to_owned()));
    })));
    Self::with_hub(opts, hub, sub_tx, sub_rx)
  }

  /// A store whose release notifications go to `hub` (shared by the masters of a Redlock), fed
  /// by the subscription task that reads `sub_rx`.
  pub(crate) fn with_hub(
    opts: RedisOptions,
    hub: WakeHub,
    sub_tx: mpsc::UnboundedSender<SubCmd>,
    sub_rx: mpsc::UnboundedReceiver<SubCmd>,
  ) -> Result<Self> {
    let target = target(&opts)?;
    let first = match &target {
      Target::Single(info) => Some(&**info),
      Target::Cluster(infos) => Some(
        infos
          .first()
          .ok_or_else(|| LockError::InvalidArg(BAD_NODE.into()))?,
      ),
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
  pub(crate) fn without_queue(mut self) -> Self {
    self.queue = false;
    self
  }

  /// A Redlock master's connection: reads the server's run id on every (re)connect, so that
  /// [`RedisStore::incarnation`] knows when it restarted. No effect on a client object.
  pub(crate) fn tracked(mut self) -> Self {
    if matches!(self.target, Target::Single(_)) {
      self.incarnation = Some(Arc::default());
    }
    self
  }

  /// What the connection learnt of the server's restarts (only for [`RedisStore::tracked`]).
  pub(crate) fn incarnation(&self) -> Option<&Incarnation> {
    self.incarnation.as_deref()
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

  /// `host:port/db` of a single server, or the node list of a cluster (for duplicate checks;
  /// never includes a password).
  pub(crate) fn address(&self) -> String {
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

  /// Whether this store talks to a Redis Cluster.
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

  pub fn is_cluster(&self) -> bool {
    match &self.target {
      Target::Cluster(_) => true,
      Target::Client(client) => client.cluster,
      Target::Single(_) => false,
    }
  }

  /// Whether commands go through the caller's client object.
  pub(crate) fn is_client(&self) -> bool {
    matches!(self.target, Target::Client(_))
  }

  fn cached(&self) -> Result<Option<Conn>> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    Ok(self.cmd.lock().unwrap_or_else(|e| e.into_inner()).clone())
  }

  async fn con(&self) -> Result<Conn> {
    if let Some(con) = self.cached()? {
      return Ok(con);
    }
    let con = match &self.target {
      Target::Single(info) => {
        // Lazy: this connects on the first command, not here.
        let client = self.client(ConnectionInfo::clone(info), "connect")?;
        if let Some(incarnation) = &self.incarnation {
          let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
          Conn::Tracked(TrackedConn::new(client, config, incarnation.clone()))
        } else {
          let con = ConnectionManager::new_lazy_with_config(client, Self::manager_config())
            .map_err(|e| self.error("connect", e))?;
          Conn::Single(con)
        }
      }
      Target::Client(client) => Conn::Client(ClientConn {
        transport: client.transport.clone(),
        scripts: Arc::new(self.scripts.sources()),
      }),
      Target::Cluster(_) => Conn::Cluster(self.cluster_connect().await?),
    };
    {
      let mut cmd = self.cmd.lock().unwrap_or_else(|e| e.into_inner());
      // A racing single-server caller may have stored one first: keep one connection.
      if let Some(first) = cmd.as_ref() {
        return Ok(first.clone());
      }
      *cmd = Some(con.clone());
    }
    // The cluster's connect loaded them already (`load_scripts`); a client object's server is
    // the caller's.
    if let Conn::Single(c) = &con {
      self.load_scripts_on(c.clone()).await;
    } else if let Conn::Tracked(c) = &con {
      self.load_scripts_on(c.clone()).await;
    }
    Ok(con)
  }

  /// Loads every script on a new single-server connection (one pipelined round trip, best
  /// effort), for the reason `load_scripts` gives.
  async fn load_scripts_on<C: redis::aio::ConnectionLike + Send>(&self, mut con: C) {
    let mut pipe = redis::pipe();
    for script in self.scripts.all() {
      pipe.load_script(script).ignore();
    }
    let _ = pipe.query_async::<()>(&mut con).await;
  }

  /// A cluster client for the configured nodes; with a push handler, on RESP3.
  fn cluster_client(&self, push: Option<PushHandler>, what: &str) -> Result<ClusterClient> {
    let Target::Cluster(nodes) = &self.target else {
      return Err(unexpected(what));
    };
    let mut builder = ClusterClientBuilder::new(nodes.clone())
      .connection_timeout(CONNECT_TIMEOUT)
      .response_timeout(RESPONSE_TIMEOUT)
      .retries(3)
      .min_retry_wait(20)
      .max_retry_wait(500);
    if let Some(ca) = &self.tls_ca {
      builder = builder.certs(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.clone()),
      });
    }
    if let Some(push) = push {
      builder = builder
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(move |info: PushInfo| push(info));
    }
    builder.build().map_err(|e| self.error(what, e))
  }

  /// The command connection to a cluster. Connecting reaches every node, and a node that
  /// accepts but never answers (a stopped replica) holds it up for the connect timeouts: longer
  /// than one `requestTimeout` may be. The connect therefore runs as its own task; a request
  /// cut meanwhile leaves it running, and the next request waits for the same connect.
  async fn cluster_connect(&self) -> Result<ClusterConnection> {
    let mut pending = self.connecting.lock().await;
    if let Some(Conn::Cluster(con)) = self.cached()? {
      return Ok(con);
    }
    let task = match pending.as_mut() {
      Some(task) => task,
      None => {
        let client = self.cluster_client(None, "connect")?;
        let sources: Vec<String> = self.scripts.sources().into_values().collect();
        let task = tokio::spawn(async move {
          let con = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection()).await;
          if let Ok(Ok(con)) = &con {
            load_scripts(con.clone(), sources).await;
          }
          con
        });
        *self.connect_abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        pending.insert(task)
      }
    };
    let joined = task.await;
    *pending = None;
    match joined {
      Ok(Ok(Ok(con))) => Ok(con),
      Ok(Ok(Err(e))) => Err(self.error("connect", e)),
      Ok(Err(_)) => Err(LockError::Backend {
        message: "redis: connect failed: no cluster node answered in time".into(),
        source: None,
      }),
      Err(_) => Err(LockError::Closed),
    }
  }

  async fn cluster_connection(
    &self,
    push: Option<PushHandler>,
    what: &str,
  ) -> Result<ClusterConnection> {
    let client = self.cluster_client(push, what)?;
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection()).await {
      Ok(Ok(con)) => Ok(con),
      Ok(Err(e)) => Err(self.error(what, e)),
      Err(_) => Err(LockError::Backend {
        message: format!("redis: {what} failed: no cluster node answered in time"),
        source: None,
      }),
    }
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
        // The receiver is taken only once the connection exists: a failed connect (no cluster
        // node answered) leaves it for the next attempt.
        if self
          .sub_rx
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .is_none()
        {
          return Err(LockError::Closed);
        }
        let hub = self.hub.clone();
        let push = move |info: PushInfo| -> std::result::Result<(), ()> {
          match info.kind {
            PushKind::Message | PushKind::SMessage => {
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
        let con = match &self.target {
          Target::Single(info) => {
            let settings = info
              .redis_settings()
              .clone()
              .set_protocol(ProtocolVersion::RESP3);
            let info = ConnectionInfo::clone(info).set_redis_settings(settings);
            let client = self.client(info, "subscribe")?;
            let config = Self::manager_config()
              .set_push_sender(push)
              .set_automatic_resubscription();
            let con = ConnectionManager::new_lazy_with_config(client, config)
              .map_err(|e| self.error("subscribe", e))?;
            SubConn::Single(con)
          }
          Target::Client(_) => return Err(unexpected("subscribe")),
          // The cluster connection resubscribes on its own after reconnects and slot moves.
          Target::Cluster(_) => SubConn::Cluster(
            self
              .cluster_connection(Some(Box::new(push)), "subscribe")
              .await?,
          ),
        };
        let rx = self
          .sub_rx
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .take()
          .ok_or(LockError::Closed)?;
        tokio::spawn(run_subscriptions(con, rx, self.hub.clone()));
        Ok(())
      })
      .await?;
    Ok(())
  }

  /// Subscribes to `channel` (the caller registered it in the hub) and waits, at most
  /// `SUBSCRIBE_TIMEOUT`, until the subscription is active. Without one in time the waiter
  /// still works: it polls.
  pub(crate) async fn subscribe(&self, channel: &str) -> Result<()> {
    if self.is_client() {
      return Ok(()); // no subscription through a client object: the waiters poll
    }
    let subscriber = self.subscriber().await?;
    let (done_tx, done_rx) = oneshot::channel();
    if subscriber
      .send(SubCmd::Subscribe(channel.to_owned(), done_tx))
      .is_ok()
    {
      let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, done_rx).await;
    }
    Ok(())
  }

  async fn eval(&self, what: &str, inv: &mut redis::ScriptInvocation<'_>) -> Result<Value> {
    let reply = match self.con().await? {
      Conn::Single(mut con) => inv.invoke_async(&mut con).await,
      Conn::Cluster(mut con) => inv.invoke_async(&mut con).await,
      Conn::Client(mut con) => inv.invoke_async(&mut con).await,
      Conn::Tracked(mut con) => inv.invoke_async(&mut con).await,
    };
    reply.map_err(|e| self.error(what, e))
  }

  /// `extend_many` on one server: one pipelined write. Each reply is its lock's own result.
  async fn extend_pipelined<C: redis::aio::ConnectionLike + Send>(
    &self,
    mut con: C,
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

  /// The text of `INFO server` (Redlock tells its masters apart by the `run_id` in it).
  pub(crate) async fn info_server(&self) -> Result<String> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("server");
    let reply = match self.con().await? {
      Conn::Single(mut con) => cmd.query_async::<Value>(&mut con).await,
      Conn::Cluster(mut con) => cmd.query_async::<Value>(&mut con).await,
      Conn::Client(mut con) => cmd.query_async::<Value>(&mut con).await,
      Conn::Tracked(mut con) => cmd.query_async::<Value>(&mut con).await,
    };
    Ok(match reply.map_err(|e| self.error("INFO server", e))? {
      Value::VerbatimString { text, .. } => text,
      other => as_string(&other).unwrap_or_default(),
    })
  }

  /// Records `fence` in our lock (Redlock: the fence the majority agreed on) and makes sure the
  /// next fence of `name` here is higher: when `fence` is not below this server's clock, the
  /// counter keeps it. `false` when the lock is not ours here.
  pub(crate) async fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
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
  pub(crate) fn channel(&self, name: &str) -> String {
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

/// Loads every script on every master, best effort (within `CONNECT_TIMEOUT`), so that a
/// command waiting in a hung server's socket runs whole when the server resumes: a cut
/// attempt's clean-up (a release) must not need the NOSCRIPT fallback, whose caller is gone by
/// then, while the attempt itself (whose script was cached) took the lock.
async fn load_scripts(mut con: ClusterConnection, sources: Vec<String>) {
  use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
  let load = async {
    for source in sources {
      let mut cmd = redis::cmd("SCRIPT");
      cmd.arg("LOAD").arg(source);
      let route = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
      ));
      if con.route_command(cmd, route).await.is_err() {
        return;
      }
    }
  };
  let _ = tokio::time::timeout(CONNECT_TIMEOUT, load).await;
}

/// The subscription connection: one server, or the cluster (sharded channels).
enum SubConn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
}

impl SubConn {
  /// Subscribes; returns whether the channel is sharded (SSUBSCRIBE) or classic.
  async fn subscribe(&mut self, channel: &str) -> redis::RedisResult<bool> {
    match self {
      SubConn::Single(con) => con.subscribe(channel).await.map(|_| false),
      SubConn::Cluster(con) => match con.ssubscribe(channel).await {
        Ok(()) => Ok(true),
        // A server without sharded pub/sub (Redis 6): the scripts fall back to PUBLISH. Any
        // other failure (a timeout or slot move during a failover) is reported instead, so the
        // next watch tries SSUBSCRIBE again rather than listening on the wrong kind of channel.
        Err(e)
          if e
            .to_string()
            .to_ascii_lowercase()
            .contains("unknown command") =>
        {
          con.subscribe(channel).await.map(|_| false)
        }
        Err(e) => Err(e),
      },
    }
  }

  async fn unsubscribe(&mut self, channel: &str, sharded: bool) {
    let _ = match self {
      SubConn::Single(con) => con.unsubscribe(channel).await,
      SubConn::Cluster(con) if sharded => con.sunsubscribe(channel).await,
      SubConn::Cluster(con) => con.unsubscribe(channel).await,
    };
  }
}

/// Applies subscribe/unsubscribe requests in order on the subscription connection, so an
/// unsubscribe of an idle channel can never overtake a newer subscribe of the same channel.
async fn run_subscriptions(
  mut con: SubConn,
  mut rx: mpsc::UnboundedReceiver<SubCmd>,
  hub: WakeHub,
) {
  // Channel -> whether it is sharded.
  let mut subscribed = HashMap::new();
  while let Some(cmd) = rx.recv().await {
    match cmd {
      SubCmd::Subscribe(channel, done) => {
        if let std::collections::hash_map::Entry::Vacant(entry) = subscribed.entry(channel) {
          if let Ok(sharded) = con.subscribe(entry.key()).await {
            entry.insert(sharded);
          }
        }
        let _ = done.send(());
      }
      SubCmd::Unsubscribe(channel) => {
        if !hub.is_watched(&channel) {
          if let Some(sharded) = subscribed.remove(&channel) {
            con.unsubscribe(&channel, sharded).await;
          }
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

/// A fence: an integer reply, or a decimal string (counters beyond 2^53 stay strings in Lua).
fn as_u64(v: &Value) -> Option<u64> {
  match v {
    Value::Int(i) => u64::try_from(*i).ok(),
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

/// The same failure for each lock of a batch (the cause is kept as text).
fn clone_error(err: &LockError) -> LockError {
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
  /// the whole batch. A cluster or the caller's client object: every extend at once (the
  /// multiplexed connection writes them together per node).
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    match self.con().await {
      Ok(Conn::Single(con)) => self.extend_pipelined(con, items).await,
      Ok(Conn::Tracked(con)) => self.extend_pipelined(con, items).await,
      Ok(_) => {
        let all = items.iter().map(|r| self.extend(r.name, r.token, r.ttl));
        futures_util::future::join_all(all).await
      }
      Err(err) => items.iter().map(|_| Err(clone_error(&err))).collect(),
    }
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
          .key(&keys.fence)
          .key(&keys.queue)
          .arg(token)
          .arg(millis(self.fence_keep))
          .arg(&keys.channel)
          .arg(self.sharded()),
      )
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
    if self.is_client() {
      return Ok(None); // the waiters poll
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
