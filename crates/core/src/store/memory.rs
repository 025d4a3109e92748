//! In-process store: the embedded default. Same semantics as the network stores (TTL, fences,
//! FIFO waiters, wake-ups), kept in one mutex-protected map.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::Result;
use crate::lease::{Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, Owned, Renewal, WakeHub, Watch};

struct Held {
  token: String,
  owner: String,
  fence: u64,
  data: Option<Payload>,
  expires: Instant,
}

struct Waiter {
  token: String,
  alive_until: Instant,
}

#[derive(Default)]
struct Entry {
  held: Option<Held>,
  queue: VecDeque<Waiter>,
}

impl Entry {
  /// Drops an expired lease and waiters that stopped polling.
  fn purge(&mut self, now: Instant) {
    if self.held.as_ref().is_some_and(|h| h.expires <= now) {
      self.held = None;
    }
    self.queue.retain(|w| w.alive_until > now);
  }

  fn enqueue(&mut self, token: &str, alive_until: Instant) {
    match self.queue.iter_mut().find(|w| w.token == token) {
      Some(w) => w.alive_until = alive_until,
      None => self.queue.push_back(Waiter {
        token: token.to_owned(),
        alive_until,
      }),
    }
  }

  fn is_idle(&self) -> bool {
    self.held.is_none() && self.queue.is_empty()
  }
}

/// The memory store. Fences come from one counter for the whole store, so they increase
/// strictly per resource without keeping an entry per name forever. Closing is the manager's
/// business: several managers may share one store (all clients of a process do).
#[derive(Default)]
pub struct MemoryStore {
  entries: Mutex<HashMap<String, Entry>>,
  fence: AtomicU64,
  hub: WakeHub,
}

static SHARED: OnceLock<Arc<MemoryStore>> = OnceLock::new();

impl MemoryStore {
  /// An empty store of its own.
  pub fn new() -> Self {
    Self::default()
  }

  /// The store of this process, shared by every memory client so they exclude each other.
  pub fn shared() -> Arc<MemoryStore> {
    SHARED.get_or_init(|| Arc::new(MemoryStore::new())).clone()
  }

  fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
    self.entries.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// Runs `f` on the purged entry of `name` and drops the entry when it holds nothing.
  fn with_entry<T>(&self, name: &str, f: impl FnOnce(&mut Entry, Instant) -> T) -> Result<T> {
    let now = Instant::now();
    let mut entries = self.entries();
    let entry = entries.entry(name.to_owned()).or_default();
    entry.purge(now);
    let out = f(entry, now);
    if entry.is_idle() {
      entries.remove(name);
    }
    Ok(out)
  }

  /// `with_entry` for operations that change nothing when `name` has no entry: `None` then,
  /// and nothing is made (the name is not copied).
  fn with_existing<T>(&self, name: &str, f: impl FnOnce(&mut Entry, Instant) -> T) -> Option<T> {
    let now = Instant::now();
    let mut entries = self.entries();
    let entry = entries.get_mut(name)?;
    entry.purge(now);
    let out = f(entry, now);
    if entry.is_idle() {
      entries.remove(name);
    }
    Some(out)
  }

  fn extend_sync(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    let extended = self.with_existing(name, |entry, now| match &mut entry.held {
      Some(held) if held.token == token => {
        held.expires = now + ttl;
        true
      }
      _ => false,
    });
    Ok(extended.unwrap_or(false))
  }

  /// Number of names with a lock or waiters (for leak tests).
  pub fn len(&self) -> usize {
    self.entries.lock().map(|e| e.len()).unwrap_or(0)
  }

  /// Whether the store holds nothing.
  pub fn is_empty(&self) -> bool {
    self.len() == 0
  }

  /// Names with at least one watcher (for leak tests).
  pub fn watched(&self) -> usize {
    self.hub.len()
  }

  fn acquire_sync(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    if !req.extras.is_default() {
      return Err(unsupported_extras("memory"));
    }
    self.with_entry(name, |entry, now| {
      if let Some(held) = &entry.held {
        let holder = Holder {
          owner: Some(held.owner.clone()),
          remaining: Some(held.expires - now),
        };
        if let Some(q) = req.queue_for {
          entry.enqueue(req.token, now + q);
        }
        return Acquire::Held(holder);
      }
      if let Some(head) = entry.queue.front() {
        if head.token != req.token {
          if let Some(q) = req.queue_for {
            entry.enqueue(req.token, now + q);
          }
          return Acquire::Held(Holder::default());
        }
        entry.queue.pop_front();
      }
      let fence = self.fence.fetch_add(1, Ordering::AcqRel) + 1;
      entry.held = Some(Held {
        token: req.token.to_owned(),
        owner: req.owner.to_owned(),
        fence,
        data: req.data.cloned(),
        expires: now + req.ttl,
      });
      Acquire::Granted(Grant { fence })
    })
  }

  fn release_sync(&self, name: &str, token: &str) -> Result<bool> {
    let released = self
      .with_existing(name, |entry, _| match &entry.held {
        Some(held) if held.token == token => {
          entry.held = None;
          Some(entry.queue.front().map(|w| w.token.clone()))
        }
        _ => None,
      })
      .flatten();
    match released {
      Some(head) => {
        self.hub.wake(name, head.as_deref());
        Ok(true)
      }
      None => Ok(false),
    }
  }
}

#[async_trait]
impl LockStore for MemoryStore {
  fn kind(&self) -> &'static str {
    "memory"
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    self.acquire_sync(name, req)
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    self.extend_sync(name, token, ttl)
  }

  /// One pass over the batch, on this thread.
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    items
      .iter()
      .map(|r| self.extend_sync(r.name, r.token, r.ttl))
      .collect()
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    self.release_sync(name, token)
  }

  /// One pass over the batch under one lock of the map; waiters are woken after it.
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    let now = Instant::now();
    let mut wake = Vec::new();
    let out = {
      let mut entries = self.entries();
      items
        .iter()
        .map(|item| {
          let Some(entry) = entries.get_mut(item.name) else {
            return Ok(false);
          };
          entry.purge(now);
          let ours = entry.held.as_ref().is_some_and(|h| h.token == item.token);
          if ours {
            entry.held = None;
            wake.push((item.name, entry.queue.front().map(|w| w.token.clone())));
          }
          if entry.is_idle() {
            entries.remove(item.name);
          }
          Ok(ours)
        })
        .collect()
    };
    for (name, head) in wake {
      self.hub.wake(name, head.as_deref());
    }
    out
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    let info = self.with_existing(name, |entry, now| {
      entry.held.as_ref().map(|held| LockInfo {
        owner: held.owner.clone(),
        remaining: Some(held.expires - now),
        fence: held.fence,
        data: held.data.clone(),
      })
    });
    Ok(info.flatten())
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    let free = self.with_entry(name, |entry, _| {
      entry.queue.retain(|w| w.token != token);
      entry
        .held
        .is_none()
        .then(|| entry.queue.front().map(|w| w.token.clone()))
    })?;
    if let Some(head) = free {
      self.hub.wake(name, head.as_deref());
    }
    Ok(())
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    Ok(Some(self.hub.register(name).0))
  }

  fn watched(&self) -> usize {
    self.hub.len()
  }

  async fn close(&self) {}

  fn try_acquire_now(&self, name: &str, req: &AcquireRequest<'_>) -> Option<Result<Acquire>> {
    Some(self.acquire_sync(name, req))
  }

  fn release_now(&self, name: &str, token: &str) -> Option<Result<bool>> {
    Some(self.release_sync(name, token))
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::lease::AcquireExtras;

  fn take(store: &MemoryStore, name: &str, token: &str) -> Acquire {
    let extras = AcquireExtras::default();
    let req = AcquireRequest {
      token,
      owner: token,
      ttl: Duration::from_secs(30),
      data: None,
      queue_for: Some(Duration::from_secs(5)),
      extras: &extras,
    };
    store.acquire_sync(name, &req).expect("acquire")
  }

  #[tokio::test]
  async fn release_many_deletes_only_our_locks_and_wakes_the_next_waiter() {
    let store = MemoryStore::new();
    assert!(matches!(take(&store, "a", "t1"), Acquire::Granted(_)));
    assert!(matches!(take(&store, "b", "other"), Acquire::Granted(_)));
    assert!(matches!(take(&store, "c", "t3"), Acquire::Granted(_)));
    // A waiter queued behind "c".
    assert!(matches!(take(&store, "c", "w"), Acquire::Held(_)));
    let (watch, _) = store.hub.register("c");
    let woken = watch.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let items = [
      Owned {
        name: "a",
        token: "t1",
      },
      Owned {
        name: "b",
        token: "t2",
      },
      Owned {
        name: "missing",
        token: "t4",
      },
      Owned {
        name: "c",
        token: "t3",
      },
    ];
    let out: Vec<bool> = store
      .release_many(&items)
      .await
      .into_iter()
      .map(|r| r.expect("release"))
      .collect();
    assert_eq!(out, [true, false, false, true]);
    // Another owner's lock stays; ours are gone; the waiter first in line is woken for "c".
    assert_eq!(
      store.inspect("b").await.expect("inspect").map(|i| i.owner),
      Some("other".into())
    );
    assert!(store.inspect("a").await.expect("inspect").is_none());
    tokio::time::timeout(Duration::from_secs(5), woken)
      .await
      .expect("the waiter of c was not woken");
    assert!(watch.addressed_to("w"));
    assert!(matches!(take(&store, "c", "w"), Acquire::Granted(_)));
    // Only "b" and "c" hold anything now: no entry left behind for "a" or "missing".
    assert_eq!(store.len(), 2);
  }
}
