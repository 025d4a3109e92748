//! One renewal scheduler per manager: a deadline heap in one task instead of a task per lock.
//!
//! Every lock with a heartbeat (auto-extend) or a session monitor (`safe_time`) has one entry
//! in the heap, at its next point of interest: its renewal, its `Expiring` warning or the end of
//! its lease. The task sleeps until the earliest entry, takes every renewal due within one tick
//! (`TICK`, at most an eighth of the lock's refresh interval early), and sends them to the store
//! as one batch (`LockStore::extend_many`), in a task of its own so that a slow server never
//! holds up the schedule. Each lock still gets its own result.
//!
//! A renewal waits at most until less than `safe_time` (default: one refresh interval) is left
//! on the lease; one that starts with less than that left waits at most 7/8 of what is left.
//! So under a hung server the holder hears `Error`, then `Expiring`, before `Lost`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::LockError;
use crate::store::{LockStore, Renewal};
use crate::watchdog::{LockInner, Step, TaggedSink};

/// Renewals due within this much of each other go in one batch (a lock is renewed at most an
/// eighth of its refresh interval early).
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// How long the task waits after a wake-up for more locks that are due now.
const COALESCE: Duration = Duration::from_millis(1);
/// The most locks in one batch (a pipeline of this many scripts is a few hundred KB).
const BATCH_MAX: usize = 1024;

/// A point of interest of lock `id`; stale once the lock's generation moved on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
  at: Instant,
  id: u64,
  gen: u32,
}

/// The locks a manager holds, strongly, so `close()` can release them all.
pub(crate) type Registry = Mutex<HashMap<u64, Arc<LockInner>>>;

pub(crate) struct Renewer {
  pub(crate) store: Arc<dyn LockStore>,
  pub(crate) held: Registry,
  heap: Mutex<Heap>,
  wake: Arc<Notify>,
  /// Batches sent (one `extend_many` each), for stats.
  batches: AtomicU64,
  /// Renewals sent, for stats.
  renewals: AtomicU64,
  /// Set by `close()`: no more heartbeats.
  stopped: AtomicBool,
  /// Requests of held locks still on their way (renewal batches, releases, deletes after an
  /// expiry): `close()` waits for them, so nothing is sent once it resolved.
  pub(crate) tasks: TaskTracker,
  /// Cancelled once `close()` ended every lock it released (a `release()` called meanwhile
  /// waits for that and reports its outcome).
  pub(crate) closed: CancellationToken,
  /// Where the events of locks forwarded with a tag go (`Lock::forward_events_tagged`).
  pub(crate) sink: OnceLock<TaggedSink>,
  /// Wakes manual extends waiting for their lock's turn (`LockInner::extend_turn`).
  pub(crate) extend_done: Notify,
  /// The owner name of the last lock started: the next lock of the same owner shares it.
  last_owner: Mutex<Option<Arc<str>>>,
}

#[derive(Default)]
struct Heap {
  entries: BinaryHeap<Reverse<Due>>,
  running: bool,
}

impl Renewer {
  pub(crate) fn new(store: Arc<dyn LockStore>) -> Arc<Self> {
    Arc::new(Renewer {
      store,
      held: Mutex::new(HashMap::new()),
      heap: Mutex::new(Heap::default()),
      wake: Arc::new(Notify::new()),
      batches: AtomicU64::new(0),
      renewals: AtomicU64::new(0),
      stopped: AtomicBool::new(false),
      tasks: TaskTracker::new(),
      closed: CancellationToken::new(),
      sink: OnceLock::new(),
      extend_done: Notify::new(),
      last_owner: Mutex::new(None),
    })
  }

  /// `owner` as a shared string: the same one as the last lock's when the name is the same
  /// (most locks of a client have the client's owner name), so it is kept once, not per lock.
  pub(crate) fn owner(&self, owner: &str) -> Arc<str> {
    let mut last = self.last_owner.lock().unwrap_or_else(|e| e.into_inner());
    match &*last {
      Some(kept) if **kept == *owner => kept.clone(),
      _ => {
        let kept: Arc<str> = owner.into();
        *last = Some(kept.clone());
        kept
      }
    }
  }

  fn heap(&self) -> MutexGuard<'_, Heap> {
    self.heap.lock().unwrap_or_else(|e| e.into_inner())
  }

  pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<u64, Arc<LockInner>>> {
    self.held.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// `(batches, renewals)` sent so far.
  pub(crate) fn counts(&self) -> (u64, u64) {
    (
      self.batches.load(Ordering::Relaxed),
      self.renewals.load(Ordering::Relaxed),
    )
  }

  /// Whether `stop` was called.
  pub(crate) fn is_stopped(&self) -> bool {
    self.stopped.load(Ordering::Acquire)
  }

  /// Stops every heartbeat for good (`close()`): nothing is scheduled or sent from now on.
  pub(crate) fn stop(&self) {
    self.stopped.store(true, Ordering::Release);
    let mut heap = self.heap();
    heap.entries = BinaryHeap::new();
    drop(heap);
    self.wake.notify_one();
  }

  /// Puts lock `id` (generation `gen`) in the heap at `at`. Starts the task on first use
  /// (callers are inside the runtime then: a lock is started there).
  pub(crate) fn schedule(self: &Arc<Self>, id: u64, gen: u32, at: Instant) {
    let mut heap = self.heap();
    if self.is_stopped() {
      return;
    }
    let earliest = heap.entries.peek().map(|Reverse(d)| d.at);
    heap.entries.push(Reverse(Due { at, id, gen }));
    if !heap.running {
      heap.running = true;
      tokio::spawn(run(Arc::downgrade(self), self.wake.clone()));
    } else if earliest.is_none_or(|e| at < e) {
      self.wake.notify_one();
    }
  }

  /// Handles what is due; the time of the next entry.
  fn tick(self: &Arc<Self>) -> Option<Instant> {
    let now = Instant::now();
    let mut due = Vec::new();
    {
      let mut heap = self.heap();
      while let Some(Reverse(d)) = heap.entries.peek() {
        if d.at > now + TICK {
          break;
        }
        due.push(*d);
        heap.entries.pop();
      }
    }
    let found: Vec<(Due, Arc<LockInner>)> = {
      let held = self.held();
      due
        .into_iter()
        .filter_map(|d| held.get(&d.id).map(|l| (d, l.clone())))
        .collect()
    };
    let mut renew = Vec::new();
    let mut later = Vec::new();
    for (d, lock) in found {
      match lock.step(d.gen, now) {
        Step::Renew => renew.push(lock),
        Step::At(at) => later.push(Due { at, ..d }),
        Step::Done => {}
      }
    }
    let next = {
      let mut heap = self.heap();
      heap.entries.extend(later.into_iter().map(Reverse));
      heap.entries.peek().map(|Reverse(d)| d.at)
    };
    self.compact();
    while !renew.is_empty() {
      let rest = renew.split_off(renew.len().min(BATCH_MAX));
      self.tasks.spawn(self.clone().renew(renew));
      renew = rest;
    }
    next
  }

  /// Drops stale entries once they outnumber the live ones (each probe answer and each renewal
  /// leaves its lock's older entry behind until its time comes): the heap stays within twice
  /// the locks watched.
  fn compact(&self) {
    let held = self.held();
    let mut heap = self.heap();
    if heap.entries.len() <= 2 * held.len() + 1024 {
      return;
    }
    let entries = std::mem::take(&mut heap.entries).into_vec();
    let live: Vec<_> = entries
      .into_iter()
      .filter(|Reverse(d)| held.get(&d.id).is_some_and(|l| l.gen() == d.gen))
      .collect();
    heap.entries = BinaryHeap::from(live);
    heap.entries.shrink_to_fit();
  }

  /// Renews one batch and hands each lock its own result.
  async fn renew(self: Arc<Self>, locks: Vec<Arc<LockInner>>) {
    let now = Instant::now();
    if self.is_stopped() {
      // `close()` releases them: no renewal goes out any more.
      for lock in &locks {
        lock.skipped(now);
      }
      return;
    }
    // A manual extend in progress renews that lock itself (and reschedules it after).
    let mut batch = Vec::with_capacity(locks.len());
    for lock in &locks {
      match lock.try_extend_turn() {
        Some(turn) => batch.push((lock, turn)),
        None => lock.skipped(now + TICK),
      }
    }
    if batch.is_empty() {
      return;
    }
    let plans: Vec<_> = batch.iter().map(|(lock, _)| lock.plan(now)).collect();
    let items: Vec<Renewal<'_>> = batch
      .iter()
      .zip(&plans)
      .map(|((lock, _), p)| Renewal {
        name: lock.name(),
        token: lock.token(),
        ttl: p.ttl,
      })
      .collect();
    self.batches.fetch_add(1, Ordering::Relaxed);
    self
      .renewals
      .fetch_add(items.len() as u64, Ordering::Relaxed);
    // One request is cut at the earliest bound of its locks. A lock retrying with little of
    // its lease left must not cut the healthy ones with it: locks whose bound comes before
    // half the latest one go in a request of their own, sent at the same time.
    let latest = plans.iter().map(|p| p.bound).max().unwrap_or(now);
    let cutoff = now + latest.saturating_duration_since(now) / 2;
    let (short, long): (Vec<usize>, Vec<usize>) =
      (0..items.len()).partition(|&i| plans[i].bound < cutoff);
    let started = Instant::now();
    let store = &self.store;
    let send = |group: Vec<usize>| {
      let bound = group.iter().map(|&i| plans[i].bound).min().unwrap_or(now);
      let part: Vec<Renewal<'_>> = group.iter().map(|&i| items[i]).collect();
      async move {
        if part.is_empty() {
          return Vec::new();
        }
        // A client object's error behind a failure goes with it (crate::transport).
        let (results, original) =
          crate::transport::recording(timeout_at(bound, store.extend_many(&part))).await;
        let results = match results {
          Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(|e| crate::transport::attach(e, original.as_ref())))
            .collect::<Vec<_>>(),
          Err(_) => {
            let waited = bound.saturating_duration_since(started);
            (0..part.len()).map(|_| Err(timed_out(waited))).collect()
          }
        };
        group.into_iter().zip(results).collect::<Vec<_>>()
      }
    };
    let (a, b) = futures_util::future::join(send(short), send(long)).await;
    let mut results: Vec<Option<crate::error::Result<bool>>> =
      (0..items.len()).map(|_| None).collect();
    for (i, result) in a.into_iter().chain(b) {
      results[i] = Some(result);
    }
    for (((lock, guard), plan), result) in batch.into_iter().zip(plans).zip(results) {
      let result = result.unwrap_or_else(|| Err(timed_out(Duration::ZERO)));
      lock.renewed(started, plan.ttl, result);
      drop(guard);
    }
  }
}

impl Drop for Renewer {
  fn drop(&mut self) {
    // Ends the task (it finds no renewer when it wakes).
    self.wake.notify_one();
  }
}

/// The error of a renewal cut at its bound.
fn timed_out(waited: Duration) -> LockError {
  LockError::Backend {
    message: format!(
      "the renewal got no answer within {} ms (a renewal waits until less than safeTime is left on the lease)",
      waited.as_millis()
    ),
    source: None,
  }
}

/// The scheduler task: lives while its renewer does.
async fn run(renewer: Weak<Renewer>, wake: Arc<Notify>) {
  loop {
    let next = match renewer.upgrade() {
      Some(r) if !r.is_stopped() => r.tick(),
      _ => return,
    };
    let woken = match next {
      Some(at) => {
        tokio::select! {
          _ = wake.notified() => true,
          _ = sleep_until(at) => false,
        }
      }
      None => {
        wake.notified().await;
        true
      }
    };
    if woken {
      // Woken by a lock that is due now (a probe answered, a new lock): let the others that
      // come with it (one drain of the embedder's queue answers many probes) join its batch.
      tokio::time::sleep(COALESCE).await;
    }
  }
}

/// What a renewal needs to know of a lock when the batch is sent.
pub(crate) struct Plan {
  pub ttl: Duration,
  /// When the renewal is given up (an `Error`, then retried).
  pub bound: Instant,
}

/// The latest a renewal that starts at `now` may wait for its answer: until less than `safe`
/// is left, or, when that is already so (a retry, or a refresh interval close to the ttl),
/// seven eighths of what is left, so that its `Error` still comes before `Lost`.
pub(crate) fn bound(now: Instant, valid_until: Instant, safe: Duration) -> Instant {
  match valid_until.checked_sub(safe) {
    Some(warn_at) if warn_at > now => warn_at,
    _ => now + valid_until.saturating_duration_since(now) * 7 / 8,
  }
}
