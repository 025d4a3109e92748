//! A held lock: its lease, its events, and what its heartbeat decides. The heartbeats of all
//! locks of a manager run in one scheduler (`renewer.rs`); nothing here runs per lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::Result;
use crate::lease::{Payload, ReleaseOptions};
use crate::renewer::Renewer;

mod closing;
mod heartbeat;
pub(crate) use closing::close_all;
pub(crate) use heartbeat::Step;

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
  /// A heartbeat failed (backend error); the lock may still be ours. `original`: the caller's
  /// client object's error behind it, when the renewal went through one (`crate::transport`).
  Error {
    message: String,
    original: Option<crate::transport::Original>,
  },
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

/// Where the events of every lock of a manager go, each with the tag its lock was given
/// (`Lock::forward_events_tagged`): one callback for all of them, so a held lock carries no
/// callback of its own.
pub type TaggedSink = Arc<dyn Fn(u32, LeaseEvent) + Send + Sync>;

/// Where a lock's events go: kept until someone takes them (most locks never have any, so
/// nothing is allocated for them up front), a stream, or the embedder's sink.
enum EventOut {
  Kept(Vec<LeaseEvent>),
  Channel(mpsc::UnboundedSender<LeaseEvent>),
  Sink(EventSink),
  /// The manager's tagged sink (`Renewer::sink`), with this tag.
  Tagged(u32),
  /// Taken and ended: nothing more goes anywhere.
  Done,
}

impl EventOut {
  fn send(&mut self, renewer: &Renewer, event: LeaseEvent) {
    match self {
      EventOut::Kept(kept) => kept.push(event),
      EventOut::Channel(tx) => {
        let _ = tx.send(event);
      }
      EventOut::Sink(sink) => sink(event),
      EventOut::Tagged(tag) => {
        if let Some(sink) = renewer.sink.get() {
          sink(*tag, event);
        }
      }
      EventOut::Done => {}
    }
  }
}

/// An owner token kept in the lock itself: the 36 characters of a hyphenated uuid (every token
/// this crate makes) inline, any other on the heap.
enum Token {
  Uuid([u8; 36]),
  Other(Box<str>),
}

impl Token {
  fn new(token: &str) -> Token {
    match <[u8; 36]>::try_from(token.as_bytes()) {
      Ok(bytes) => Token::Uuid(bytes),
      Err(_) => Token::Other(token.into()),
    }
  }

  fn as_str(&self) -> &str {
    match self {
      // Made from a `&str` above: always UTF-8.
      Token::Uuid(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
      Token::Other(token) => token,
    }
  }
}

struct State {
  ttl: Duration,
  refresh: Duration,
  /// Explicit refresh interval from the options (kept across `extend`).
  refresh_explicit: Option<Duration>,
  valid_until: Instant,
  last_refresh: Instant,
  finished: bool,
  events: EventOut,
  /// Heap entries of another generation are stale (see `renewer.rs`).
  gen: u32,
  /// A renewal of this lock is in a batch on its way.
  in_flight: bool,
  /// After a failed renewal: when to try again (four times as often).
  retry_at: Option<Instant>,
  expiring_sent: bool,
  /// The last liveness probe sent, and whether its answer is awaited.
  probe_n: u64,
  probe_wait: bool,
  /// `close()` took the release of this lock over (see `closing.rs`).
  closing: bool,
  /// Releases by the holder on their way: `close()` leaves such a lock to them.
  releasing: u16,
}

pub(crate) struct LockInner {
  id: u64,
  name: Box<str>,
  token: Token,
  /// `None` when the owner name is the token (no owner was given); most locks of a manager
  /// share one owner name, so it is kept once (`Renewer::owner`).
  owner: Option<Arc<str>>,
  fence: u64,
  renewer: Arc<Renewer>,
  state: Mutex<State>,
  /// Set by `release` (and when the lock is over): a renewal answer that comes later is dropped.
  stopped: AtomicBool,
  /// Extends (heartbeat or manual) go one at a time, so the lease we record is the one the
  /// server applied last: set while one is on its way (`ExtendTurn`).
  extending: AtomicBool,
  /// Heartbeats wait for the embedder's answer to each probe (`ack_probe`).
  probe: bool,
  probe_acked: AtomicU64,
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

pub(crate) struct NewLock<'a> {
  pub id: u64,
  pub name: &'a str,
  pub token: &'a str,
  pub owner: &'a str,
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
  pub(crate) fn start(new: NewLock<'_>, renewer: &Arc<Renewer>) -> Lock {
    // Validity counts from before the request was sent: the server's lease started later.
    // The store may take off a margin for clock drift (Redlock).
    let valid_until = new.started + renewer.store.validity(new.ttl);
    let inner = Arc::new(LockInner {
      id: new.id,
      name: new.name.into(),
      token: Token::new(new.token),
      owner: (new.owner != new.token).then(|| renewer.owner(new.owner)),
      fence: new.fence,
      renewer: renewer.clone(),
      state: Mutex::new(State {
        ttl: new.ttl,
        refresh: new.refresh.unwrap_or_else(|| default_refresh(new.ttl)),
        refresh_explicit: new.refresh,
        valid_until,
        last_refresh: new.started,
        finished: false,
        events: EventOut::Kept(Vec::new()),
        gen: 0,
        in_flight: false,
        retry_at: None,
        expiring_sent: false,
        probe_n: 0,
        probe_wait: false,
        closing: false,
        releasing: 0,
      }),
      stopped: AtomicBool::new(false),
      extending: AtomicBool::new(false),
      probe: new.probe,
      probe_acked: AtomicU64::new(0),
      lost_flag: AtomicBool::new(false),
      unconfirmed: AtomicBool::new(false),
      auto_extend: new.auto_extend,
      safe_time: new.safe_time,
      delete_on_release: new.delete_on_release,
    });
    renewer.held().insert(new.id, inner.clone());
    if new.auto_extend || new.safe_time.is_some() {
      inner.reschedule(None);
    }
    Lock { inner }
  }

  /// The resource name.
  pub fn name(&self) -> &str {
    &self.inner.name
  }
  /// The owner token (uuid v4) that proves this acquisition.
  pub fn token(&self) -> &str {
    self.inner.token.as_str()
  }
  /// The owner name given at acquire.
  pub fn owner(&self) -> &str {
    match &self.inner.owner {
      Some(owner) => owner,
      None => self.inner.token.as_str(),
    }
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
    if !self.inner.probe || self.inner.probe_acked.fetch_max(n, Ordering::AcqRel) >= n {
      return;
    }
    // The renewal waited for this answer: it is due now.
    if self.inner.state().probe_wait {
      self.inner.reschedule(Some(Instant::now()));
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

  /// Sends every event from now on to the manager's tagged sink, with `tag`: the sink `make`
  /// returns on the first call of any lock of this manager serves every lock of it from then
  /// on (one callback per manager, not one per lock). Events kept until now are passed on
  /// first, in order. Does nothing once the events were taken.
  pub fn forward_events_tagged(&self, tag: u32, make: impl FnOnce() -> TaggedSink) {
    let sink = self.inner.renewer.sink.get_or_init(make);
    let mut st = self.inner.state();
    let EventOut::Kept(kept) = &mut st.events else {
      return;
    };
    for event in kept.drain(..) {
      sink(tag, event);
    }
    st.events = if st.finished {
      EventOut::Done
    } else {
      EventOut::Tagged(tag)
    };
  }

  /// `release` done at once on the caller's thread, where the store can (memory); `None`
  /// otherwise (then call `release`).
  pub fn release_now(&self) -> Option<Result<bool>> {
    match self.inner.begin_release() {
      Begin::Send => {}
      Begin::Over => return Some(Ok(false)),
      // `close()` is releasing it: `release` waits for its outcome.
      Begin::Closing => return None,
    }
    let done = self
      .inner
      .store()
      .release_now(&self.inner.name, self.inner.token.as_str());
    match done {
      None => {
        self.inner.end_release(None);
        None
      }
      Some(done) => {
        self.inner.stopped.store(true, Ordering::Release);
        if let Ok(ok) = done {
          self.inner.finish((!ok).then_some(LostReason::Gone));
        }
        self.inner.end_release(None);
        Some(done)
      }
    }
  }

  /// Sets the lease to `ttl` from now. `Ok(false)` (and a `Lost` event) when the lock is no
  /// longer ours; never touches another owner's lock.
  pub async fn extend(&self, ttl: Duration) -> Result<bool> {
    self.extend_with(ttl, None).await
  }

  /// `extend`, also replacing the lock's data where the store supports it (DynamoDB's
  /// `sendHeartbeat` with data).
  pub async fn extend_with(&self, ttl: Duration, data: Option<&Payload>) -> Result<bool> {
    crate::options::check_ttl(ttl, "ttl")?;
    if self.is_finished() {
      return Ok(false);
    }
    let _one_at_a_time = self.inner.extend_turn().await;
    // Checked again now that it is this call's turn: a release or close() that began meanwhile
    // owns the lock's end, and nothing more is sent for it.
    if self.inner.ending() {
      return Ok(false);
    }
    let started = Instant::now();
    let ok = self
      .inner
      .store()
      .extend_with(&self.inner.name, self.inner.token.as_str(), ttl, data)
      .await;
    match ok {
      // A release or close() that began meanwhile ends the lock: no event for this renewal.
      Ok(true) if self.inner.ending() => {}
      Ok(true) => {
        self.inner.refreshed(started, ttl);
        // The schedule counts from this renewal now.
        self.inner.reschedule(None);
      }
      // Gone, unless a release or close() began meanwhile: its answer ends the lock then.
      Ok(false) if !self.inner.ending() => self.inner.finish(Some(LostReason::Gone)),
      Ok(false) => {}
      // The heartbeat may have skipped its turn while this ran: it takes it again.
      Err(_) => self.inner.reschedule(None),
    }
    ok
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
    match self.inner.begin_release() {
      Begin::Send => {}
      Begin::Over => return Ok(false),
      Begin::Closing => return self.inner.closed_outcome().await,
    }
    self.inner.stopped.store(true, Ordering::Release);
    let opts = ReleaseOptions {
      delete: delete.unwrap_or(self.inner.delete_on_release),
      data,
    };
    let request =
      self
        .inner
        .store()
        .release_with(&self.inner.name, self.inner.token.as_str(), &opts);
    // `close()` waits for it: nothing is sent after close() resolved.
    let done = self.inner.renewer.tasks.track_future(request).await;
    self.inner.end_release(Some(&done));
    done
  }
}

/// A lock's turn to extend: its extends go one at a time. Given back when dropped.
pub(crate) struct ExtendTurn<'a>(&'a LockInner);

impl Drop for ExtendTurn<'_> {
  fn drop(&mut self) {
    self.0.extending.store(false, Ordering::Release);
    // Manual extends waiting for their turn (rare) look again.
    self.0.renewer.extend_done.notify_waiters();
  }
}

/// How a release starts (`LockInner::begin_release`).
enum Begin {
  /// Send it.
  Send,
  /// The lock is over: `Ok(false)`.
  Over,
  /// `close()` is releasing it: wait for its outcome.
  Closing,
}

impl LockInner {
  fn state(&self) -> MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// The turn to extend, when no other extend of this lock is on its way.
  pub(crate) fn try_extend_turn(&self) -> Option<ExtendTurn<'_>> {
    (!self.extending.swap(true, Ordering::AcqRel)).then_some(ExtendTurn(self))
  }

  /// Waits for the turn to extend. The wake-up is shared by every lock of the manager (a field
  /// per lock would cost more than the rare wait): a waiter that was not next waits again.
  async fn extend_turn(&self) -> ExtendTurn<'_> {
    loop {
      let mut done = std::pin::pin!(self.renewer.extend_done.notified());
      // Registered before looking, so a turn given back in between is not missed.
      done.as_mut().enable();
      if let Some(turn) = self.try_extend_turn() {
        return turn;
      }
      done.await;
    }
  }

  fn store(&self) -> &Arc<dyn crate::store::LockStore> {
    &self.renewer.store
  }

  pub(crate) fn name(&self) -> &str {
    &self.name
  }

  pub(crate) fn token(&self) -> &str {
    self.token.as_str()
  }

  /// Whether the lock is over or its end has begun (a release of the holder's, or `close()`'s).
  fn ending(&self) -> bool {
    if self.stopped.load(Ordering::Acquire) {
      return true;
    }
    let st = self.state();
    st.finished || st.closing
  }

  /// A release by the holder begins: counted, so that `close()` leaves the lock to it. A lock
  /// whose release was not confirmed may try the delete again.
  fn begin_release(&self) -> Begin {
    let mut st = self.state();
    if st.finished && !self.unconfirmed.load(Ordering::Acquire) {
      return Begin::Over;
    }
    if st.closing {
      return Begin::Closing;
    }
    st.releasing += 1;
    Begin::Send
  }

  /// A release began with `begin_release` ended with `done` (`None`: nothing was sent, or its
  /// outcome was recorded already). A release the server did not confirm ends the lock all the
  /// same (`Unconfirmed`); a later release may try the delete again.
  fn end_release(&self, done: Option<&Result<bool>>) {
    if let Some(done) = done {
      self.released(done);
    }
    let mut st = self.state();
    st.releasing = st.releasing.saturating_sub(1);
  }

  /// Records the answer to a release of this lock.
  fn released(&self, done: &Result<bool>) {
    match done {
      Ok(ok) => {
        self.unconfirmed.store(false, Ordering::Release);
        self.finish((!ok).then_some(LostReason::Gone));
      }
      Err(_) => {
        self.unconfirmed.store(true, Ordering::Release);
        self.finish(Some(LostReason::Unconfirmed));
      }
    }
  }

  fn emit(&self, event: LeaseEvent) {
    let mut st = self.state();
    if !st.finished {
      st.events.send(&self.renewer, event);
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
      st.valid_until = started + self.store().validity(ttl);
      st.last_refresh = started;
      st.retry_at = None;
      st.expiring_sent = false;
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
      st.events.send(
        &self.renewer,
        match lost {
          Some(reason) => LeaseEvent::Lost { reason },
          None => LeaseEvent::Released,
        },
      );
      // The stream ends here; kept events wait for whoever takes them.
      if !matches!(st.events, EventOut::Kept(_)) {
        st.events = EventOut::Done;
      }
    }
    self.stopped.store(true, Ordering::Release);
    self.renewer.held().remove(&self.id);
  }
}

/// The lease ran out: report it, and delete the lock in the background in case a late
/// heartbeat renewed it after all (the delete only matches our own token).
fn lost_by_expiry(inner: &Arc<LockInner>) {
  if inner.stopped.load(Ordering::Acquire) {
    return;
  }
  inner.finish(Some(LostReason::Expired));
  let inner = inner.clone();
  let tasks = inner.renewer.tasks.clone();
  tasks.spawn(async move {
    let opts = ReleaseOptions {
      delete: inner.delete_on_release,
      data: None,
    };
    let _ = inner
      .store()
      .release_with(&inner.name, inner.token.as_str(), &opts)
      .await;
  });
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

#[cfg(test)]
mod tests {
  use super::*;

  /// Thousands of locks may be held at once: the state of one is paid per lock. It was 320
  /// bytes, with three heap strings, a tokio mutex and an event-sink closure of its own.
  #[test]
  fn a_held_lock_stays_small() {
    let size = std::mem::size_of::<LockInner>();
    println!(
      "LockInner: {size} bytes, State: {} bytes",
      std::mem::size_of::<State>()
    );
    assert!(size <= 280, "LockInner grew to {size} bytes");
  }

  #[test]
  fn tokens_keep_their_text() {
    let uuid = "0b5f3c2e-4a1d-4c8e-9f3a-2d6e8b7c1a90";
    assert!(matches!(Token::new(uuid), Token::Uuid(_)));
    assert_eq!(Token::new(uuid).as_str(), uuid);
    assert!(matches!(Token::new("short"), Token::Other(_)));
    assert_eq!(Token::new("short").as_str(), "short");
    assert_eq!(Token::new("").as_str(), "");
  }
}
