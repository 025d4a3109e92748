//! A held lock: its lease, its events, and the heartbeat task that keeps it alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex as AsyncMutex, Notify};
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::lease::{Payload, ReleaseOptions};
use crate::store::LockStore;

/// Why a lock was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
  /// The store no longer has our lock: deleted, or taken by another owner after it expired.
  Gone,
  /// The lease ran out before a heartbeat could renew it.
  Expired,
  /// `release()` failed: the server did not confirm the delete. The key expires by its lease
  /// (a later `release()` tries the delete again).
  Unconfirmed,
}

impl LostReason {
  /// A sentence for messages and logs.
  pub fn describe(self) -> &'static str {
    match self {
      LostReason::Gone => "the lock was deleted or taken by another owner",
      LostReason::Expired => "the lease ran out before it could be refreshed",
      LostReason::Unconfirmed => {
        "its release was not confirmed by the server; the key expires by its lease"
      }
    }
  }
}

/// What happens to a held lock, in order: any number of `Refreshed`/`Error`/`Expiring`, then
/// at most one of `Lost` or `Released`, after which the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
  /// The lease was renewed to `ttl` from the moment the request was sent.
  Refreshed { ttl: Duration },
  /// A heartbeat failed (backend error); the lock may still be ours.
  Error { message: String },
  /// Heartbeats are failing and less than the danger zone is left.
  Expiring { remaining: Duration },
  /// The lock is gone.
  Lost { reason: LostReason },
  /// `release()` deleted the lock.
  Released,
  /// The heartbeat asks the embedder to prove it is alive: call `ack_probe(n)`. Only sent
  /// when the lock was acquired with `probe: true`.
  Probe(u64),
}

/// Where a lock's events go once the embedder takes them over: one callback, called in event
/// order (for example, one queue shared by every lock of a process).
pub type EventSink = Arc<dyn Fn(LeaseEvent) + Send + Sync>;

/// Where a lock's events go: kept until someone takes them (most locks never have any, so
/// nothing is allocated for them up front), a stream, or the embedder's sink.
enum EventOut {
  Kept(Vec<LeaseEvent>),
  Channel(mpsc::UnboundedSender<LeaseEvent>),
  Sink(EventSink),
  /// Taken and ended: nothing more goes anywhere.
  Done,
}

impl EventOut {
  fn send(&mut self, event: LeaseEvent) {
    match self {
      EventOut::Kept(kept) => kept.push(event),
      EventOut::Channel(tx) => {
        let _ = tx.send(event);
      }
      EventOut::Sink(sink) => sink(event),
      EventOut::Done => {}
    }
  }
}

/// The locks a manager holds, strongly, so `close()` can release them all.
pub(crate) type Registry = Mutex<HashMap<u64, Arc<LockInner>>>;

struct State {
  ttl: Duration,
  refresh: Duration,
  /// Explicit refresh interval from the options (kept across `extend`).
  refresh_explicit: Option<Duration>,
  valid_until: Instant,
  last_refresh: Instant,
  finished: bool,
  events: EventOut,
}

pub(crate) struct LockInner {
  id: u64,
  name: String,
  token: String,
  owner: String,
  fence: u64,
  store: Arc<dyn LockStore>,
  state: Mutex<State>,
  stop: CancellationToken,
  /// Extends (heartbeat or manual) go one at a time, so the lease we record is the one the
  /// server applied last.
  extending: AsyncMutex<()>,
  /// Wakes the heartbeat to re-read its schedule after a manual `extend`.
  reschedule: Notify,
  probe: Option<watch::Sender<u64>>,
  registry: Weak<Registry>,
  lost_flag: AtomicBool,
  /// Set when a release failed: the lock is over for its holder, but a later release may still
  /// try the delete.
  unconfirmed: AtomicBool,
  auto_extend: bool,
  /// Report `Expiring` when less than this is left (default: one refresh interval).
  safe_time: Option<Duration>,
  delete_on_release: bool,
}

/// A lock this process holds. Cloning shares the same lock.
#[derive(Clone)]
pub struct Lock {
  inner: Arc<LockInner>,
}

/// The refresh interval used when none is given: a third of the ttl.
pub fn default_refresh(ttl: Duration) -> Duration {
  (ttl / 3).max(Duration::from_millis(1))
}

/// A lock that does not keep the lock's state alive (for event sinks, which the lock owns).
#[derive(Clone)]
pub struct WeakLock(Weak<LockInner>);

impl WeakLock {
  /// The lock, while anything else still holds it.
  pub fn upgrade(&self) -> Option<Lock> {
    self.0.upgrade().map(|inner| Lock { inner })
  }
}

pub(crate) struct NewLock {
  pub id: u64,
  pub name: String,
  pub token: String,
  pub owner: String,
  pub fence: u64,
  pub ttl: Duration,
  pub refresh: Option<Duration>,
  pub started: Instant,
  pub probe: bool,
  pub auto_extend: bool,
  pub safe_time: Option<Duration>,
  pub delete_on_release: bool,
}

impl Lock {
  pub(crate) fn start(new: NewLock, store: Arc<dyn LockStore>, registry: &Arc<Registry>) -> Lock {
    // Validity counts from before the request was sent: the server's lease started later.
    // The store may take off a margin for clock drift (Redlock).
    let valid_until = new.started + store.validity(new.ttl);
    let inner = Arc::new(LockInner {
      id: new.id,
      name: new.name,
      token: new.token,
      owner: new.owner,
      fence: new.fence,
      store,
      state: Mutex::new(State {
        ttl: new.ttl,
        refresh: new.refresh.unwrap_or_else(|| default_refresh(new.ttl)),
        refresh_explicit: new.refresh,
        valid_until,
        last_refresh: new.started,
        finished: false,
        events: EventOut::Kept(Vec::new()),
      }),
      stop: CancellationToken::new(),
      extending: AsyncMutex::new(()),
      reschedule: Notify::new(),
      probe: new.probe.then(|| watch::channel(0).0),
      registry: Arc::downgrade(registry),
      lost_flag: AtomicBool::new(false),
      unconfirmed: AtomicBool::new(false),
      auto_extend: new.auto_extend,
      safe_time: new.safe_time,
      delete_on_release: new.delete_on_release,
    });
    registry
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .insert(new.id, inner.clone());
    if new.auto_extend || new.safe_time.is_some() {
      tokio::spawn(heartbeat(inner.clone()));
    }
    Lock { inner }
  }

  pub(crate) fn from_inner(inner: Arc<LockInner>) -> Lock {
    Lock { inner }
  }

  /// The resource name.
  pub fn name(&self) -> &str {
    &self.inner.name
  }
  /// The owner token (uuid v4) that proves this acquisition.
  pub fn token(&self) -> &str {
    &self.inner.token
  }
  /// The owner name given at acquire.
  pub fn owner(&self) -> &str {
    &self.inner.owner
  }
  /// The fencing token of this acquisition.
  pub fn fence(&self) -> u64 {
    self.inner.fence
  }
  /// Whether the lock was lost.
  pub fn is_lost(&self) -> bool {
    self.inner.lost_flag.load(Ordering::Acquire)
  }
  /// Whether the lock is over (released or lost).
  pub fn is_finished(&self) -> bool {
    self.inner.state().finished
  }
  /// Time left on the lease as this process counts it (zero when over).
  pub fn valid_for(&self) -> Duration {
    let st = self.inner.state();
    if st.finished {
      return Duration::ZERO;
    }
    st.valid_until.saturating_duration_since(Instant::now())
  }
  /// The current lease length.
  pub fn ttl(&self) -> Duration {
    self.inner.state().ttl
  }

  /// The event stream; `None` after the first call (or once `forward_events` took them).
  pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<LeaseEvent>> {
    let mut st = self.inner.state();
    let EventOut::Kept(kept) = &mut st.events else {
      return None;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    for event in kept.drain(..) {
      let _ = tx.send(event);
    }
    // A finished lock's stream ends after what it kept.
    st.events = if st.finished {
      EventOut::Done
    } else {
      EventOut::Channel(tx)
    };
    Some(rx)
  }

  /// Answers the heartbeat's liveness probe `n`.
  pub fn ack_probe(&self, n: u64) {
    if let Some(probe) = &self.inner.probe {
      probe.send_if_modified(|v| {
        let newer = n > *v;
        if newer {
          *v = n;
        }
        newer
      });
    }
  }

  /// A handle that does not keep this lock alive.
  pub fn downgrade(&self) -> WeakLock {
    WeakLock(Arc::downgrade(&self.inner))
  }

  /// Sends every event from now on to `sink` instead of the stream of `take_events`. Events
  /// kept until now are passed on first, in order. Does nothing once the events were taken.
  pub fn forward_events(&self, sink: EventSink) {
    let mut st = self.inner.state();
    let EventOut::Kept(kept) = &mut st.events else {
      return;
    };
    for event in kept.drain(..) {
      sink(event);
    }
    st.events = if st.finished {
      EventOut::Done
    } else {
      EventOut::Sink(sink)
    };
  }

  /// `release` done at once on the caller's thread, where the store can (memory); `None`
  /// otherwise (then call `release`).
  pub fn release_now(&self) -> Option<Result<bool>> {
    if self.is_finished() && !self.inner.unconfirmed.load(Ordering::Acquire) {
      return Some(Ok(false));
    }
    let done = self
      .inner
      .store
      .release_now(&self.inner.name, &self.inner.token)?;
    self.inner.stop.cancel();
    if let Ok(ok) = done {
      self.inner.finish((!ok).then_some(LostReason::Gone));
    }
    Some(done)
  }

  /// Sets the lease to `ttl` from now. `Ok(false)` (and a `Lost` event) when the lock is no
  /// longer ours; never touches another owner's lock.
  pub async fn extend(&self, ttl: Duration) -> Result<bool> {
    self.extend_with(ttl, None).await
  }

  /// `extend`, also replacing the lock's data where the store supports it (DynamoDB's
  /// `sendHeartbeat` with data).
  pub async fn extend_with(&self, ttl: Duration, data: Option<&Payload>) -> Result<bool> {
    crate::client::check_ttl(ttl, "ttl")?;
    if self.is_finished() {
      return Ok(false);
    }
    let _one_at_a_time = self.inner.extending.lock().await;
    let started = Instant::now();
    let ok = self
      .inner
      .store
      .extend_with(&self.inner.name, &self.inner.token, ttl, data)
      .await?;
    if ok {
      self.inner.refreshed(started, ttl);
      self.inner.reschedule.notify_one();
    } else {
      self.inner.finish(Some(LostReason::Gone));
    }
    Ok(ok)
  }

  /// Stops the heartbeat and deletes the lock if it is still ours. `Ok(false)` when it was
  /// already gone (expired, deleted, taken by another owner, or released before).
  pub async fn release(&self) -> Result<bool> {
    self.release_with(None, None).await
  }

  /// `release`, leaving `data` in the released record where the store keeps one (DynamoDB),
  /// and deleting the record or not (default: as acquired, `delete_on_release`).
  ///
  /// A release the server does not confirm (an error) ends the lock for its holder all the
  /// same: `Lost` with `Unconfirmed`, and the key expires by its lease. A later release tries
  /// the delete once more, with no more events.
  pub async fn release_with(&self, data: Option<Payload>, delete: Option<bool>) -> Result<bool> {
    let retry = self.inner.unconfirmed.load(Ordering::Acquire);
    if self.is_finished() && !retry {
      return Ok(false);
    }
    self.inner.stop.cancel();
    let opts = ReleaseOptions {
      delete: delete.unwrap_or(self.inner.delete_on_release),
      data,
    };
    let done = self
      .inner
      .store
      .release_with(&self.inner.name, &self.inner.token, &opts)
      .await;
    match done {
      Ok(ok) => {
        self.inner.unconfirmed.store(false, Ordering::Release);
        self.inner.finish((!ok).then_some(LostReason::Gone));
        Ok(ok)
      }
      Err(err) => {
        self.inner.unconfirmed.store(true, Ordering::Release);
        self.inner.finish(Some(LostReason::Unconfirmed));
        Err(err)
      }
    }
  }
}

impl LockInner {
  fn state(&self) -> MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn emit(&self, event: LeaseEvent) {
    let mut st = self.state();
    if !st.finished {
      st.events.send(event);
    }
  }

  /// Records a lease of `ttl` renewed by a request sent at `started`.
  fn refreshed(&self, started: Instant, ttl: Duration) {
    {
      let mut st = self.state();
      if st.finished {
        return;
      }
      if ttl != st.ttl {
        st.ttl = ttl;
        st.refresh = st
          .refresh_explicit
          .filter(|r| *r < ttl)
          .unwrap_or_else(|| default_refresh(ttl));
      }
      st.valid_until = started + self.store.validity(ttl);
      st.last_refresh = started;
    }
    self.emit(LeaseEvent::Refreshed { ttl });
  }

  /// Ends the lock once: `Lost` with a reason, or `Released` with none.
  fn finish(&self, lost: Option<LostReason>) {
    {
      let mut st = self.state();
      if st.finished {
        return;
      }
      st.finished = true;
      if lost.is_some() {
        self.lost_flag.store(true, Ordering::Release);
      }
      st.events.send(match lost {
        Some(reason) => LeaseEvent::Lost { reason },
        None => LeaseEvent::Released,
      });
      // The stream ends here; kept events wait for whoever takes them.
      if !matches!(st.events, EventOut::Kept(_)) {
        st.events = EventOut::Done;
      }
    }
    self.stop.cancel();
    if let Some(registry) = self.registry.upgrade() {
      registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&self.id);
    }
  }
}

/// Renews the lease every refresh interval; after a failure, retries four times as often.
/// Reports `Expiring` once less than the safe time (default: one interval) is left without a
/// renewal, and `Lost` when the store says the lock is not ours or the lease runs out first.
/// Without auto-extend (but with a safe time) it only watches the lease: manual extends move
/// it.
async fn heartbeat(inner: Arc<LockInner>) {
  let mut failing = false;
  let mut expiring_sent = false;
  let mut probe_n = 0u64;
  loop {
    let (valid_until, refresh, last) = {
      let st = inner.state();
      (st.valid_until, st.refresh, st.last_refresh)
    };
    let safe = inner.safe_time.unwrap_or(refresh);
    let next = if !inner.auto_extend {
      valid_until
    } else if failing {
      Instant::now() + (refresh / 4).max(Duration::from_millis(5))
    } else {
      last + refresh
    };
    let due = next.min(valid_until);
    let warn_at = valid_until.checked_sub(safe).unwrap_or(valid_until);
    // Only an explicit safe time warns on a timer; by default `Expiring` follows failed renewals.
    let warn = inner.safe_time.is_some() && !expiring_sent && warn_at < due;
    tokio::select! {
      _ = inner.stop.cancelled() => return,
      _ = inner.reschedule.notified() => {
        // A manual extend renewed the lease and changed the schedule.
        expiring_sent = false;
        continue;
      }
      _ = sleep_until(warn_at), if warn => {
        expiring_sent = true;
        let remaining = valid_until.saturating_duration_since(Instant::now());
        inner.emit(LeaseEvent::Expiring { remaining });
        continue;
      }
      _ = sleep_until(due) => {}
    }
    if Instant::now() >= valid_until {
      lost_by_expiry(&inner);
      return;
    }
    if !inner.auto_extend {
      continue;
    }
    if let Some(probe) = &inner.probe {
      // The lock belongs to the embedder's thread, not to ours: renew only when it answers.
      probe_n += 1;
      inner.emit(LeaseEvent::Probe(probe_n));
      let mut acked = probe.subscribe();
      tokio::select! {
        _ = inner.stop.cancelled() => return,
        _ = sleep_until(valid_until) => { lost_by_expiry(&inner); return; }
        _ = acked.wait_for(|v| *v >= probe_n) => {}
      }
    }
    let extend = async {
      let guard = inner.extending.lock().await;
      // Read the lease after waiting our turn: a manual extend may have changed it.
      let (ttl, valid_until) = {
        let st = inner.state();
        (st.ttl, st.valid_until)
      };
      let started = Instant::now();
      let r = inner.store.extend(&inner.name, &inner.token, ttl).await;
      (r, started, ttl, valid_until, guard)
    };
    let result = tokio::select! {
      _ = inner.stop.cancelled() => return,
      r = timeout_at(valid_until, extend) => r,
    };
    match result {
      Err(_) => {
        lost_by_expiry(&inner);
        return;
      }
      Ok((Ok(true), started, ttl, _, _guard)) => {
        failing = false;
        expiring_sent = false;
        inner.refreshed(started, ttl);
      }
      Ok((Ok(false), ..)) => {
        if !inner.stop.is_cancelled() {
          inner.finish(Some(LostReason::Gone));
        }
        return;
      }
      Ok((Err(err), _, _, valid_until, _)) => {
        failing = true;
        inner.emit(LeaseEvent::Error {
          message: err.to_string(),
        });
        let remaining = valid_until.saturating_duration_since(Instant::now());
        if remaining < safe && !expiring_sent {
          expiring_sent = true;
          inner.emit(LeaseEvent::Expiring { remaining });
        }
      }
    }
  }
}

/// The lease ran out: report it, and delete the lock in the background in case a late
/// heartbeat renewed it after all (the delete only matches our own token).
fn lost_by_expiry(inner: &Arc<LockInner>) {
  if inner.stop.is_cancelled() {
    return;
  }
  inner.finish(Some(LostReason::Expired));
  let inner = inner.clone();
  tokio::spawn(async move {
    let opts = ReleaseOptions {
      delete: inner.delete_on_release,
      data: None,
    };
    let _ = inner
      .store
      .release_with(&inner.name, &inner.token, &opts)
      .await;
  });
}

/// Used by `close()`: the locks still held.
pub(crate) fn held_locks(registry: &Registry) -> Vec<Lock> {
  registry
    .lock()
    .unwrap_or_else(|e| e.into_inner())
    .values()
    .cloned()
    .map(Lock::from_inner)
    .collect()
}

impl std::fmt::Debug for Lock {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_struct("Lock")
      .field("name", &self.inner.name)
      .field("fence", &self.inner.fence)
      .field("lost", &self.is_lost())
      .finish_non_exhaustive()
  }
}
