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

/// Sends one Redis command (name first, then its arguments) through a client object.
///
/// Ok is the reply as JSON: `null`, an integer, a string or an array of those. Err is the
/// client's error message as it gave it (a server error keeps its code first, e.g. `NOSCRIPT
/// ...`, so the store can tell a script cache miss from anything else).
pub trait CommandTransport: Send + Sync {
  fn call(&self, args: Vec<String>) -> BoxFuture<std::result::Result<serde_json::Value, String>>;
}

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
