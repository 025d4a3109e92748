//! Transport seams: the stores can speak through the caller's own client object instead of a
//! connection ferrolock opens. The embedder (the N-API binding) implements these traits by
//! calling that object's methods at call time; the stores keep all the lock logic.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Cause, LockError};

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

/// The caller's own error behind a failure through a client object, opaque to the core: the
/// embedder records it while an operation runs (`record_original`) and finds it again on the
/// operation's error (`original_of`), to hand it back as the failure's cause. `text` is the
/// error's message as the store saw it.
#[derive(Clone)]
pub struct Original {
  text: String,
  value: Arc<dyn Any + Send + Sync>,
}

impl Original {
  pub fn new(text: String, value: Arc<dyn Any + Send + Sync>) -> Self {
    Original { text, value }
  }

  /// The error's message.
  pub fn text(&self) -> &str {
    &self.text
  }

  /// The embedder's value (for the N-API binding, a reference to the JS error object).
  pub fn value(&self) -> &(dyn Any + Send + Sync) {
    &*self.value
  }
}

impl fmt::Debug for Original {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Original")
      .field("text", &self.text)
      .finish_non_exhaustive()
  }
}

impl PartialEq for Original {
  fn eq(&self, other: &Self) -> bool {
    Arc::ptr_eq(&self.value, &other.value)
  }
}

impl Eq for Original {}

tokio::task_local! {
  /// The client error last recorded by the operation running in this task.
  static RECORDED: Mutex<Option<Original>>;
}

/// Records `original` as the error a client object just gave, for the operation running in this
/// task (inside `recording`; elsewhere nothing is kept).
pub fn record_original(original: Original) {
  let _ =
    RECORDED.try_with(|slot| *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(original));
}

/// Runs `future` (one operation, or one batch of renewals) and returns its output with the last
/// client error recorded meanwhile. The error stays with this one run: no table outlives it.
pub async fn recording<F: Future>(future: F) -> (F::Output, Option<Original>) {
  RECORDED
    .scope(Mutex::new(None), async move {
      let out = future.await;
      let original = RECORDED
        .try_with(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take())
        .ok()
        .flatten();
      (out, original)
    })
    .await
}

/// A backend failure whose cause is a client object's error: its text as before, and the
/// original behind it.
#[derive(Debug)]
struct ClientFailure {
  text: String,
  original: Original,
}

impl fmt::Display for ClientFailure {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&self.text)
  }
}

impl std::error::Error for ClientFailure {}

/// `err` with `original` attached when `err` is the failure it explains: a backend error whose
/// message or cause holds the client error's text (an earlier attempt's error that a retry got
/// past is not the cause of a later, different failure). Texts are unchanged.
pub fn attach(err: LockError, original: Option<&Original>) -> LockError {
  let Some(original) = original else {
    return err;
  };
  // An error with no text explains nothing (every message contains the empty text).
  if original.text().is_empty() {
    return err;
  }
  let explains = |message: &str, source: &Option<Cause>| {
    message.contains(original.text())
      || source
        .as_ref()
        .is_some_and(|s| s.to_string().contains(original.text()))
  };
  let wrap = |message: &str, source: Option<Cause>| -> Option<Cause> {
    let text = source.map_or_else(|| message.to_owned(), |s| s.to_string());
    Some(Box::new(ClientFailure {
      text,
      original: original.clone(),
    }))
  };
  match err {
    LockError::Backend { message, source } if explains(&message, &source) => {
      let source = wrap(&message, source);
      LockError::Backend { message, source }
    }
    LockError::Rejected { message, source } if explains(&message, &source) => {
      let source = wrap(&message, source);
      LockError::Rejected { message, source }
    }
    other => other,
  }
}

/// The client object's error that `err` carries (see `attach`), if any.
pub fn original_of(err: &LockError) -> Option<&Original> {
  std::error::Error::source(err)?
    .downcast_ref::<ClientFailure>()
    .map(|f| &f.original)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn a_recorded_client_error_goes_with_the_failure_it_explains_only() {
    // Outside a recording run, nothing is kept (and nothing fails).
    record_original(Original::new("stray".into(), Arc::new(0u32)));
    let (out, original) = recording(async {
      record_original(Original::new("boom".into(), Arc::new(7u32)));
      1
    })
    .await;
    assert_eq!(out, 1);
    let err = attach(
      LockError::backend(
        "redis: acquire failed: boom",
        "the client object failed: boom",
      ),
      original.as_ref(),
    );
    let kept = original_of(&err).and_then(|o| o.value().downcast_ref::<u32>());
    assert_eq!(kept, Some(&7));
    // The texts stay as they were.
    assert_eq!(err.to_string(), "redis: acquire failed: boom");
    assert_eq!(
      err.cause_message().as_deref(),
      Some("the client object failed: boom")
    );
    // A failure the error does not explain does not carry it.
    let other = attach(
      LockError::backend("redis: acquire timed out", "elapsed"),
      original.as_ref(),
    );
    assert!(original_of(&other).is_none());
    // An error without a text explains no failure (every message contains the empty text).
    let silent = Original::new(String::new(), Arc::new(9u32));
    let timed_out = attach(
      LockError::backend("redis: acquire timed out", "elapsed"),
      Some(&silent),
    );
    assert!(original_of(&timed_out).is_none());
    let (_, none) = recording(async {}).await;
    assert!(none.is_none());
  }
}
