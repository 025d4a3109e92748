//! The lock manager: waiting, retry with jitter, FIFO wake-ups, cancellation and close.
//! Generic over the store; knows nothing about any wire protocol.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::RwLock;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireExtras, AcquireRequest, LockInfo};
use crate::renewer::Renewer;
use crate::store::bounded::{Bounded, DEFAULT_REQUEST_TIMEOUT};
use crate::store::LockStore;
use crate::watchdog::{close_all, Lock, NewLock};

mod attempts;

pub use crate::options::{check_name, check_options, check_ttl, AcquireOptions, Wait};

/// A fresh owner token: a uuid v4 from the thread's CSPRNG (seeded once from the OS, so no
/// system call per lock).
fn new_token() -> String {
  uuid::Builder::from_random_bytes(rand::rng().random())
    .into_uuid()
    .to_string()
}

/// Counters for leak checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
  /// Acquire calls in progress.
  pub pending: usize,
  /// Locks held (not yet released or lost).
  pub held: usize,
  /// Names with a release subscription.
  pub watched: usize,
  /// Heartbeat batches sent so far (one `extend_many` each: one round trip per server where
  /// the backend batches).
  pub renewal_batches: u64,
  /// Heartbeat renewals sent so far.
  pub renewals: u64,
}

/// How far past a `wait` deadline an attempt in flight may still finish (a call settles by
/// its deadline plus less than 500 ms).
const ATTEMPT_GRACE: Duration = Duration::from_millis(200);
/// How far past its deadline a call may wait for its clean-up (a release of an attempt whose
/// outcome is unknown, leaving the queue) before that goes on in the background.
const SETTLE_GRACE: Duration = Duration::from_millis(250);

/// Why a request was cut short.
enum Cut {
  Deadline,
  Closed,
}

/// Hands out locks of one store.
pub struct LockManager {
  /// The store, with every request bounded by the request timeout.
  store: Arc<dyn LockStore>,
  request_timeout: Duration,
  /// Clean-ups still running after their acquire settled; `close` waits for them.
  cleanups: TaskTracker,
  closed: CancellationToken,
  /// Acquires hold it shared; `close` takes it exclusively, so the store closes only after
  /// every acquire in flight has settled (and released what it got too late).
  gate: RwLock<()>,
  /// The heartbeats of every lock, and the locks held.
  renewer: Arc<Renewer>,
  next_id: AtomicU64,
  pending: AtomicUsize,
  watched: Box<dyn Fn() -> usize + Send + Sync>,
}

struct PendingGuard<'a>(&'a AtomicUsize);
impl Drop for PendingGuard<'_> {
  fn drop(&mut self) {
    self.0.fetch_sub(1, Ordering::AcqRel);
  }
}

impl LockManager {
  /// A manager over `store`, every request bounded by `DEFAULT_REQUEST_TIMEOUT` (2 s).
  pub fn new<S: LockStore>(store: Arc<S>) -> Self {
    Self::with_request_timeout(store, DEFAULT_REQUEST_TIMEOUT)
  }

  /// A manager over `store` whose every request (an attempt, an extend, a release, an
  /// inspect) fails after `limit` without an answer. At least 1 ms.
  pub fn with_request_timeout<S: LockStore>(store: Arc<S>, limit: Duration) -> Self {
    let limit = limit.max(Duration::from_millis(1));
    let store: Arc<dyn LockStore> = Arc::new(Bounded::new(store, limit));
    let for_stats = store.clone();
    let watched = Box::new(move || for_stats.watched());
    LockManager {
      renewer: Renewer::new(store.clone()),
      store,
      request_timeout: limit,
      cleanups: TaskTracker::new(),
      closed: CancellationToken::new(),
      gate: RwLock::new(()),
      next_id: AtomicU64::new(1),
      pending: AtomicUsize::new(0),
      watched,
    }
  }

  /// The backend's name.
  pub fn kind(&self) -> &'static str {
    self.store.kind()
  }

  /// Whether `close` was called.
  pub fn is_closed(&self) -> bool {
    self.closed.is_cancelled()
  }

  /// Leak-check counters.
  pub fn stats(&self) -> Stats {
    let (renewal_batches, renewals) = self.renewer.counts();
    Stats {
      pending: self.pending.load(Ordering::Acquire),
      held: self.renewer.held().len(),
      watched: (self.watched)(),
      renewal_batches,
      renewals,
    }
  }

  /// Acquires `name`. `Ok(None)` only when `wait` is `No` and the lock is held. Waiting ends
  /// with `NotAcquired` at the deadline or after `max_retries`, `Aborted` when `cancel`
  /// fires, `Closed` on `close()`; none of them leaves anything behind in the store.
  pub async fn acquire(
    &self,
    name: &str,
    opts: AcquireOptions,
    cancel: CancellationToken,
  ) -> Result<Option<Lock>> {
    check_name(name)?;
    check_options(&opts)?;
    let _gate = self.gate.read().await;
    if self.is_closed() {
      return Err(LockError::Closed);
    }
    self.pending.fetch_add(1, Ordering::AcqRel);
    let _pending = PendingGuard(&self.pending);

    let token = new_token();
    let waiting = opts.wait != Wait::No && opts.wait != Wait::For(Duration::ZERO);
    // When the call must have settled: its wait deadline plus a little, or one request
    // timeout for a single attempt.
    let called = Instant::now();
    let settle_by = match opts.wait {
      Wait::For(d) => Some(called + d + SETTLE_GRACE),
      Wait::No => Some(called + self.request_timeout),
      _ => None,
    };
    // Set when an attempt's outcome is unknown (a timeout, a dropped connection, an attempt
    // cut short): it may have taken the lock under our token.
    let mut uncertain = false;
    let result = self
      .attempts(name, &opts, &token, waiting, &cancel, &mut uncertain)
      .await;
    if !matches!(result, Ok(Some(_))) && (uncertain || waiting) {
      self
        .clean_up(name, &token, uncertain, waiting, settle_by)
        .await;
    }
    result
  }

  /// After an acquire that did not get the lock: releases what an attempt with an unknown
  /// outcome may have taken (only our token matches), and leaves the FIFO queue so the next
  /// waiter is not held up by our stale place. Waited for until `settle_by` at most (not at
  /// all once closing); the rest goes on in the background, where `close` waits for it.
  async fn clean_up(
    &self,
    name: &str,
    token: &str,
    uncertain: bool,
    waiting: bool,
    settle_by: Option<Instant>,
  ) {
    let store = self.store.clone();
    let (name, token) = (name.to_owned(), token.to_owned());
    let task = self.cleanups.spawn(async move {
      if uncertain {
        let _ = store.release(&name, &token).await;
      }
      if waiting {
        let _ = store.leave_queue(&name, &token).await;
      }
    });
    if self.is_closed() {
      return;
    }
    match settle_by {
      Some(at) => {
        let _ = tokio::time::timeout_at(at, task).await;
      }
      // No deadline: wait for it (each request in it is bounded by the request timeout).
      None => {
        let _ = task.await;
      }
    }
  }

  /// Runs one request, cut short at `limit` and on `close()`.
  async fn cut<T>(
    &self,
    request: impl std::future::Future<Output = Result<T>>,
    limit: Option<Instant>,
  ) -> std::result::Result<Result<T>, Cut> {
    let at_limit = async {
      match limit {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
      }
    };
    // An abort does not cut a request (it is seen right after it): only close and deadlines do.
    tokio::select! {
      done = request => Ok(done),
      _ = at_limit => Err(Cut::Deadline),
      _ = self.closed.cancelled() => Err(Cut::Closed),
    }
  }

  /// One attempt done at once on the caller's thread, for stores that can (memory):
  /// `Some(Ok(Some(lock)))` when it was free, `Some(Ok(None))` when it is held and `opts.wait`
  /// is `No`. `None` when it cannot be decided now (the store needs I/O, or the lock is held
  /// and the caller waits): then call `acquire`. Must run inside a tokio runtime context (the
  /// heartbeat is spawned there).
  pub fn acquire_now(&self, name: &str, opts: &AcquireOptions) -> Option<Result<Option<Lock>>> {
    if let Err(err) = check_name(name).and_then(|_| check_options(opts)) {
      return Some(Err(err));
    }
    if self.is_closed() {
      return Some(Err(LockError::Closed));
    }
    // `close` in progress holds the gate: let the async path report it.
    let _gate = self.gate.try_read().ok()?;
    let token = new_token();
    let owner = opts.owner.clone().unwrap_or_else(|| token.clone());
    let req = AcquireRequest {
      token: &token,
      owner: &owner,
      ttl: opts.ttl,
      data: opts.data.as_ref(),
      queue_for: None,
      extras: &opts.extras,
    };
    let started = Instant::now();
    match self.store.try_acquire_now(name, &req)? {
      Ok(Acquire::Granted(grant)) => Some(Ok(Some(self.start_lock(
        name,
        &token,
        &owner,
        grant.fence,
        opts,
        started,
      )))),
      Ok(Acquire::Held(_)) if opts.wait == Wait::No || opts.wait == Wait::For(Duration::ZERO) => {
        Some(Ok(None))
      }
      Ok(Acquire::Held(_)) => None,
      Err(err) => Some(Err(err)),
    }
  }

  fn start_lock(
    &self,
    name: &str,
    token: &str,
    owner: &str,
    fence: u64,
    opts: &AcquireOptions,
    started: Instant,
  ) -> Lock {
    Lock::start(
      NewLock {
        id: self.next_id.fetch_add(1, Ordering::Relaxed),
        name,
        token,
        owner,
        fence,
        ttl: opts.ttl,
        refresh: opts.refresh_interval,
        started,
        probe: opts.probe,
        auto_extend: opts.auto_extend,
        safe_time: opts.safe_time,
        delete_on_release: opts.extras.delete_on_release,
      },
      &self.renewer,
    )
  }

  fn stop_error(&self, name: &str, cancel: &CancellationToken) -> LockError {
    if cancel.is_cancelled() {
      LockError::Aborted(name.to_owned())
    } else {
      LockError::Closed
    }
  }

  /// One attempt under a token the caller chose, with no lease kept here (no heartbeat, no
  /// tracking): the fence, or `None` when another owner holds the lock. For the compat entries,
  /// whose old packages handed out bare ids (dist-lock).
  pub async fn claim(
    &self,
    name: &str,
    token: &str,
    owner: &str,
    ttl: Duration,
  ) -> Result<Option<u64>> {
    check_name(name)?;
    check_ttl(ttl, "ttl")?;
    if token.is_empty() {
      return Err(LockError::InvalidArg("token must not be empty".into()));
    }
    if self.is_closed() {
      return Err(LockError::Closed);
    }
    let req = AcquireRequest {
      token,
      owner,
      ttl,
      data: None,
      queue_for: None,
      extras: &AcquireExtras::default(),
    };
    match self.store.try_acquire(name, &req).await? {
      Acquire::Granted(grant) => Ok(Some(grant.fence)),
      Acquire::Held(_) => Ok(None),
    }
  }

  /// Renews the lease of `name` held under `token` to `ttl` from now; false when it is not held
  /// under that token (gone, expired or another owner's, which stays untouched).
  pub async fn extend_token(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    check_name(name)?;
    check_ttl(ttl, "ttl")?;
    if self.is_closed() {
      return Err(LockError::Closed);
    }
    self.store.extend(name, token, ttl).await
  }

  /// Releases `name` if it is held under `token`; false otherwise (another owner's lock stays).
  pub async fn release_token(&self, name: &str, token: &str) -> Result<bool> {
    check_name(name)?;
    if self.is_closed() {
      return Err(LockError::Closed);
    }
    self.store.release(name, token).await
  }

  /// Reads `name` without changing it.
  pub async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    check_name(name)?;
    if self.is_closed() {
      return Err(LockError::Closed);
    }
    self.store.inspect(name).await
  }

  /// Rejects pending acquires with `Closed`, stops heartbeats, releases every held lock and
  /// closes the store. Idempotent.
  ///
  /// Waiters and attempts in flight end at once; then the held locks are released in batches
  /// (`LockStore::release_many`, sent together, see `watchdog/closing.rs`) while the clean-ups
  /// run, each bounded by the request timeout, so this settles within about one request
  /// timeout. A lock whose delete the server did not confirm ends with `Lost` (`Unconfirmed`),
  /// not `Released`. Nothing is sent once this resolved.
  pub async fn close(&self) {
    self.closed.cancel();
    let _gate = self.gate.write().await;
    self.cleanups.close();
    // Clean-ups get as long as the releases; what is left of them then fails at once on the
    // closed store.
    let releases = close_all(&self.renewer, self.request_timeout);
    let cleanups = tokio::time::timeout(self.request_timeout, self.cleanups.wait());
    let _ = futures_util::future::join(releases, cleanups).await;
    self.store.close().await;
  }
}
