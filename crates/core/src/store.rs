//! The store contract: one backend's wire protocol, nothing about waiting or heartbeats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Attempt, LockInfo, Payload, ReleaseOptions};

pub mod bounded;
pub mod dynamodb;
#[cfg(unix)]
pub mod file;
#[cfg(not(unix))]
#[path = "store/file_unsupported.rs"]
pub mod file;
pub mod memory;
pub mod redis;
pub mod redlock;
pub mod wall_clock;

/// One backend. Every method is one atomic round trip where the backend allows it; no method
/// sleeps, retries or starts timers (that is the manager's job).
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
  /// Short backend name for messages and logs ("memory", "redis").
  fn kind(&self) -> &'static str;

  /// Takes the lock when it is free (and no older waiter is queued for it). If it is already
  /// ours (an earlier attempt with this token whose reply was lost), the store renews its
  /// lease within this attempt, so the lease never counts from before the attempt started.
  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire>;

  /// `try_acquire` under the takeover rule of stores whose records carry a version that every
  /// acquisition and heartbeat changes (DynamoDB; `crate::takeover`), which the manager's
  /// attempt loop times. `take_over`: a version this waiter has seen unchanged for a whole
  /// lease; the store takes the lock if the record still has it. A busy answer carries the
  /// holder's current version. The default ignores `take_over` and reports no version: the
  /// other stores end leases themselves.
  async fn try_acquire_over(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
    take_over: Option<&str>,
  ) -> Result<Attempt> {
    let _ = take_over;
    Ok(Attempt {
      outcome: self.try_acquire(name, req).await?,
      version: None,
    })
  }

  /// Sets the lease to `ttl` from now; `false` when the lock is no longer ours.
  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool>;

  /// Renews every lock of `items` (one heartbeat round), each to its own ttl from now, in as
  /// few round trips as the backend allows. One result per item, in order: a lost lock or a
  /// failure of one item never hides another's renewal. The default runs the `extend`s
  /// concurrently, up to `EXTEND_CONCURRENCY` at a time (DynamoDB has no batched conditional
  /// write: its per-item writes overlap instead of going one after another).
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    let calls: Vec<_> = items
      .iter()
      .map(|r| self.extend(r.name, r.token, r.ttl))
      .collect();
    in_flight(calls).await
  }

  /// Deletes the lock if it is ours and wakes waiters; `false` when it was gone or another
  /// owner's (which stays untouched).
  async fn release(&self, name: &str, token: &str) -> Result<bool>;

  /// Releases every lock of `items` (`close()` with many held locks) in as few round trips as
  /// the backend allows. One result per item, in order, each as `release` would answer it: a
  /// failure of one item never hides another's release, and a lock of another owner is never
  /// touched. The default runs the `release`s concurrently, `EXTEND_CONCURRENCY` at a time.
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    let calls: Vec<_> = items
      .iter()
      .map(|r| self.release(r.name, r.token))
      .collect();
    in_flight(calls).await
  }

  /// `extend`, also replacing the lock's data (DynamoDB's `sendHeartbeat` with data).
  async fn extend_with(
    &self,
    name: &str,
    token: &str,
    ttl: Duration,
    data: Option<&Payload>,
  ) -> Result<bool> {
    match data {
      None => self.extend(name, token, ttl).await,
      Some(_) => Err(LockError::InvalidArg(format!(
        "replacing data on a heartbeat is not supported by the {} backend",
        self.kind()
      ))),
    }
  }

  /// `release` with options (DynamoDB: delete the record, or leave data in it).
  async fn release_with(&self, name: &str, token: &str, opts: &ReleaseOptions) -> Result<bool> {
    if opts.data.is_some() {
      return Err(LockError::InvalidArg(format!(
        "data on release is not supported by the {} backend",
        self.kind()
      )));
    }
    self.release(name, token).await
  }

  /// Reads the lock without changing it.
  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>>;

  /// Removes a waiter that gave up from the queue of `name`, waking the next one if the lock
  /// is free.
  async fn leave_queue(&self, name: &str, token: &str) -> Result<()>;

  /// Registers interest in release notifications of `name`. `None`: the backend has no push,
  /// the manager polls. The returned watch is active when this resolves.
  async fn watch(&self, name: &str) -> Result<Option<Watch>>;

  /// How long a lease of `ttl` counts as ours, from the moment the request was sent: the ttl
  /// less any margin the backend needs for clock drift between servers (Redlock).
  fn validity(&self, ttl: Duration) -> Duration {
    ttl
  }

  /// Whether waiters queue in FIFO order (`AcquireRequest::queue_for` is honoured).
  fn fifo(&self) -> bool {
    true
  }

  /// Closes connections; later calls fail with `Closed`.
  async fn close(&self);

  /// Names with a live release subscription (for leak checks).
  fn watched(&self) -> usize {
    0
  }

  /// `try_acquire` done at once on the caller's thread, with no I/O, where the store can
  /// (memory). `None`: it cannot; use `try_acquire`.
  fn try_acquire_now(&self, _name: &str, _req: &AcquireRequest<'_>) -> Option<Result<Acquire>> {
    None
  }

  /// `release` done at once on the caller's thread, where the store can (memory).
  fn release_now(&self, _name: &str, _token: &str) -> Option<Result<bool>> {
    None
  }
}

/// How many per-lock requests the default `extend_many` and `release_many` keep in flight at
/// once.
pub const EXTEND_CONCURRENCY: usize = 64;

/// Runs `calls` with at most `EXTEND_CONCURRENCY` in flight; their results in order.
async fn in_flight<F: std::future::Future<Output = Result<bool>>>(
  calls: Vec<F>,
) -> Vec<Result<bool>> {
  use futures_util::stream::{self, StreamExt};
  stream::iter(calls)
    .buffered(EXTEND_CONCURRENCY)
    .collect()
    .await
}

/// One held lock of a batched release (`LockStore::release_many`).
#[derive(Debug, Clone, Copy)]
pub struct Owned<'a> {
  pub name: &'a str,
  pub token: &'a str,
}

/// One lock of a batched renewal (`LockStore::extend_many`).
#[derive(Debug, Clone, Copy)]
pub struct Renewal<'a> {
  pub name: &'a str,
  pub token: &'a str,
  pub ttl: Duration,
}

/// The error of a store that gets DynamoDB-only acquire settings.
pub(crate) fn unsupported_extras(kind: &str) -> LockError {
  LockError::InvalidArg(format!(
    "options.replaceData, options.deleteOnRelease and options.additionalAttributes are only supported by the dynamodb backend, not {kind}"
  ))
}

type IdleHook = Box<dyn Fn(&str) + Send + Sync>;

/// Wake-ups of one name: the notifier, and whom the last wake-up was addressed to.
struct Channel {
  notify: Notify,
  /// `None` or empty: everyone should look; otherwise the token of the waiter first in line.
  addressee: Mutex<Option<String>>,
}

struct HubInner {
  entries: Mutex<HashMap<String, (Arc<Channel>, usize)>>,
  on_idle: Option<IdleHook>,
}

impl HubInner {
  fn entries(&self) -> MutexGuard<'_, HashMap<String, (Arc<Channel>, usize)>> {
    // A poisoned map is still a valid map: the holder panicked between complete updates.
    self.entries.lock().unwrap_or_else(|e| e.into_inner())
  }
}

/// Wake-ups per resource name, shared by the waiters of one process. Stores with push
/// (Redis pub/sub, memory) call `wake` when a lock may have become free.
#[derive(Clone)]
pub struct WakeHub {
  inner: Arc<HubInner>,
}

impl Default for WakeHub {
  fn default() -> Self {
    Self::new(None)
  }
}

impl WakeHub {
  /// A hub; `on_idle` runs when the last watch of a name is dropped (to unsubscribe).
  pub fn new(on_idle: Option<IdleHook>) -> Self {
    WakeHub {
      inner: Arc::new(HubInner {
        entries: Mutex::new(HashMap::new()),
        on_idle,
      }),
    }
  }

  /// Registers one watcher of `name`; `true` when it is the first.
  pub fn register(&self, name: &str) -> (Watch, bool) {
    let mut entries = self.inner.entries();
    let entry = entries.entry(name.to_owned()).or_insert_with(|| {
      let channel = Channel {
        notify: Notify::new(),
        addressee: Mutex::new(None),
      };
      (Arc::new(channel), 0)
    });
    entry.1 += 1;
    let watch = Watch {
      channel: entry.0.clone(),
      name: name.to_owned(),
      hub: self.inner.clone(),
    };
    (watch, entry.1 == 1)
  }

  /// Wakes the waiters of `name`. With an addressee (the token first in line), only that
  /// waiter tries again; the others keep waiting.
  pub fn wake(&self, name: &str, addressee: Option<&str>) {
    if let Some((channel, _)) = self.inner.entries().get(name) {
      *channel.addressee.lock().unwrap_or_else(|e| e.into_inner()) = addressee.map(str::to_owned);
      channel.notify.notify_waiters();
    }
  }

  /// Wakes every waiter (after a reconnect, when messages may have been missed).
  pub fn wake_all(&self) {
    for (channel, _) in self.inner.entries().values() {
      *channel.addressee.lock().unwrap_or_else(|e| e.into_inner()) = None;
      channel.notify.notify_waiters();
    }
  }

  /// Number of names with at least one watcher.
  pub fn len(&self) -> usize {
    self.inner.entries().len()
  }

  /// Whether no name is watched.
  pub fn is_empty(&self) -> bool {
    self.len() == 0
  }

  /// Whether `name` has watchers.
  pub fn is_watched(&self, name: &str) -> bool {
    self.inner.entries().contains_key(name)
  }
}

/// One waiter's registration for release notifications; unregisters on drop.
pub struct Watch {
  channel: Arc<Channel>,
  name: String,
  hub: Arc<HubInner>,
}

impl Watch {
  /// A future that completes on the next wake-up. Call `enable()` on it before checking the
  /// lock, so a release between the check and the wait is not missed.
  pub fn notified(&self) -> Notified<'_> {
    self.channel.notify.notified()
  }

  /// Whether the last wake-up concerns the waiter with `token`.
  pub fn addressed_to(&self, token: &str) -> bool {
    match &*self
      .channel
      .addressee
      .lock()
      .unwrap_or_else(|e| e.into_inner())
    {
      Some(a) => a.is_empty() || a == token,
      None => true,
    }
  }
}

impl Drop for Watch {
  fn drop(&mut self) {
    let idle = {
      let mut entries = self.hub.entries();
      match entries.get_mut(&self.name) {
        Some(entry) if entry.1 > 1 => {
          entry.1 -= 1;
          false
        }
        Some(_) => {
          entries.remove(&self.name);
          true
        }
        None => false,
      }
    };
    if idle {
      if let Some(hook) = &self.hub.on_idle {
        hook(&self.name);
      }
    }
  }
}
