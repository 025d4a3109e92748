//! Transport seams: the stores can speak through the caller's own client object instead of a
//! connection ferrolock opens. The embedder (the N-API binding) implements these traits by
//! calling that object's methods at call time; the stores keep all the lock logic.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A reply through a client object, as its JS value was: null (or undefined), an integer, a
/// string or Buffer (bytes), or an array of those. A DynamoDB object answers one string (the
/// JSON of its HTTP answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
  Nil,
  Int(i64),
  Bytes(Vec<u8>),
  Array(Vec<Reply>),
}

/// Sends one Redis command (name first, then its arguments) through a client object.
///
/// Ok is the reply. Err is the client's error message as it gave it (a server error keeps its
/// code first, e.g. `NOSCRIPT ...`, so the store can tell a script cache miss from anything else).
///
/// Release notifications (optional): a transport that can subscribe (through a second connection
/// of the caller's client, for example its `duplicate()`) delivers each message of a subscribed
/// channel to the sink given to `listen`, so that waiters are woken instead of polling. The
/// defaults subscribe nothing: the waiters then poll.
pub trait CommandTransport: Send + Sync {
  fn call(&self, args: Vec<String>) -> BoxFuture<std::result::Result<Reply, String>>;

  /// Whether this transport can subscribe at all (when false, `subscribe` is never called).
  fn pushes(&self) -> bool {
    false
  }

  /// Where the messages of subscribed channels go from now on (set once, before the first
  /// `subscribe`).
  fn listen(&self, _sink: PushSink) {}

  /// Subscribes to `channel`; resolves whether the subscription is active.
  fn subscribe(&self, _channel: String) -> BoxFuture<bool> {
    Box::pin(async { false })
  }

  /// Drops the subscription of `channel`.
  fn unsubscribe(&self, _channel: String) -> BoxFuture<()> {
    Box::pin(async {})
  }

  /// Closes the subscriber connection, if one was made; no message is delivered after this.
  fn close(&self) -> BoxFuture<()> {
    Box::pin(async {})
  }
}

/// What a transport's subscriber delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
  /// A message on a subscribed channel (the release notifications carry the token of the
  /// waiter first in line, or an empty payload for everyone).
  Message { channel: String, payload: String },
  /// The subscriber connection was re-established: messages may have been missed meanwhile.
  Reconnected,
}

/// Receives a transport's pushes (on whatever thread the transport delivers them).
pub type PushSink = Arc<dyn Fn(Push) + Send + Sync>;

/// A caller's Redis client object, as a store option.
#[derive(Clone)]
pub struct RedisClientObject {
  pub transport: Arc<dyn CommandTransport>,
  /// The object is a Redis Cluster client (it routes each command by its first key).
  pub cluster: bool,
}

impl fmt::Debug for RedisClientObject {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisClientObject")
      .field("cluster", &self.cluster)
      .finish_non_exhaustive()
  }
}

/// How long a command through a client object may take before it counts as failed. Generous:
/// the caller's client may queue commands while it (re)connects.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
