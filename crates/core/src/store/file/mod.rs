//! The file store: locks shared by the processes of one host through files in one
//! directory, with no server. Per lock name (hashed, see `paths`):
//!
//! - `<hash>.rec`, the record: holder, lease end, fence, data and FIFO waiters, in two
//!   checksummed slots written in place in turn (`record`), so a crash or a full disk
//!   mid-write spoils only the slot being written and the previous version stays readable.
//! - `<hash>.lk`, locked (flock) for the microseconds of one read-modify-write of the record.
//! - `<hash>.hold`, locked by the holder for as long as it holds the lock. The kernel drops
//!   that lock when the holder exits or is killed, so a dead holder's lease is void at once;
//!   a stopped one keeps its kernel lock but loses the lease when it ends (the next holder
//!   renames a fresh `.hold` over the old one; otherwise the file is reused).
//!
//! The record is the truth about leases, the kernel lock the truth about liveness.

mod names;
mod ops;
mod os;
mod paths;
mod record;
mod wake;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, WakeHub, Watch};

use names::{Entry, Names};
use ops::Request;
use wake::{DirWatch, Stems};

/// Settings of a file store.
#[derive(Debug, Clone)]
pub struct FileOptions {
  /// The lock directory; created (with `mode`) on first use if missing.
  pub dir: PathBuf,
  /// Mode of a directory this store creates. Default 0o700: only this user.
  pub mode: u32,
  /// fsync every record write and the directory, so fences survive a power loss too
  /// (a crash of a process never loses a write either way). Default false.
  pub fsync: bool,
}

impl FileOptions {
  pub fn new(dir: impl Into<PathBuf>) -> Self {
    FileOptions {
      dir: dir.into(),
      mode: 0o700,
      fsync: false,
    }
  }
}

struct Inner {
  opts: FileOptions,
  ready: AtomicBool,
  /// The open files of recently used names, and the locks this store holds.
  names: Names,
  hub: WakeHub,
  stems: Stems,
  watch: Mutex<Option<DirWatch>>,
  closed: AtomicBool,
  /// Tokens released while this store held nothing under them, with when to forget them:
  /// an attempt cut short by a deadline may still be running on a blocking thread after the
  /// manager's clean-up release; if it then grants, the grant is given up at once.
  cancelled: Mutex<HashMap<String, (String, u64)>>,
}

/// The file store.
pub struct FileStore {
  inner: Arc<Inner>,
}

/// One owned acquire request, for the blocking thread.
struct OwnedRequest {
  token: String,
  owner: String,
  ttl_ms: u64,
  data: Option<Payload>,
  queue_for_ms: Option<u64>,
}

impl OwnedRequest {
  fn new(req: &AcquireRequest<'_>) -> Self {
    OwnedRequest {
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      ttl_ms: ms(req.ttl),
      data: req.data.cloned(),
      queue_for_ms: req.queue_for.map(ms),
    }
  }

  fn get(&self) -> Request<'_> {
    Request {
      token: &self.token,
      owner: &self.owner,
      ttl_ms: self.ttl_ms,
      data: self.data.as_ref(),
      queue_for_ms: self.queue_for_ms,
    }
  }
}

fn ms(d: Duration) -> u64 {
  u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long a cancelled token is remembered: longer than any blocking attempt can lag (the
/// state lock is waited for 5 s at most).
const CANCELLED_FOR_MS: u64 = 60_000;
/// At most this many are remembered (the oldest go first past it).
const CANCELLED_MAX: usize = 4096;

impl FileStore {
  /// A store over `opts.dir`. Nothing is touched before the first operation.
  pub fn new(opts: FileOptions) -> Result<Self> {
    if opts.dir.as_os_str().is_empty() {
      return Err(LockError::InvalidArg(
        "options.file.dir must be a non-empty path".into(),
      ));
    }
    if opts.mode > 0o7777 {
      return Err(LockError::InvalidArg(format!(
        "options.file.mode must be a file mode from 0 to 0o7777 (got 0o{:o})",
        opts.mode
      )));
    }
    let stems = Stems::default();
    let idle_stems = stems.clone();
    let hub = WakeHub::new(Some(Box::new(move |name: &str| {
      idle_stems.map().remove(&paths::stem(name));
    })));
    Ok(FileStore {
      inner: Arc::new(Inner {
        opts,
        ready: AtomicBool::new(false),
        names: Names::default(),
        hub,
        stems,
        watch: Mutex::new(None),
        closed: AtomicBool::new(false),
        cancelled: Mutex::new(HashMap::new()),
      }),
    })
  }

  /// The lock directory.
  pub fn dir(&self) -> &std::path::Path {
    &self.inner.opts.dir
  }

  /// Runs `f` on a blocking thread, on the entry of `name` under its state lock: file locks
  /// and file I/O never stall the runtime.
  async fn run<T: Send + 'static>(
    &self,
    name: &str,
    f: impl FnOnce(&Inner, &mut Entry, &str) -> Result<T> + Send + 'static,
  ) -> Result<T> {
    if self.inner.closed() {
      return Err(LockError::Closed);
    }
    let inner = self.inner.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
      inner
        .with_state(&name, true, true, |e| f(&inner, e, &name))?
        .ok_or_else(|| {
          LockError::backend(
            "file backend: the state lock was not taken",
            std::io::Error::from(std::io::ErrorKind::WouldBlock),
          )
        })
    })
    .await
    .map_err(|e| LockError::backend("file backend: the I/O task failed", e))?
  }
}

impl Inner {
  fn ready(&self) -> Result<()> {
    if !self.ready.load(Ordering::Acquire) {
      os::prepare_dir(&self.opts.dir, self.opts.mode)?;
      self.ready.store(true, Ordering::Release);
    }
    Ok(())
  }

  fn closed(&self) -> bool {
    self.closed.load(Ordering::Acquire)
  }

  /// Runs `f` on the entry of `name` under the name's state lock. With `wait` false (the JS
  /// thread, which must not block) `None` when another operation of this store or another
  /// process is inside right now. `verify`: the operation may grant, so the cached descriptors
  /// are checked against the paths first (`Entry::lock_state`); a release or an extend of our
  /// own lock trusts a record in slots.
  fn with_state<T>(
    &self,
    name: &str,
    wait: bool,
    verify: bool,
    f: impl FnOnce(&mut Entry) -> Result<T>,
  ) -> Result<Option<T>> {
    self.ready()?;
    let (slot, crowded) = self.names.get(&self.opts.dir, name);
    let mut e = if wait {
      names::lock(&slot)
    } else {
      match slot.try_lock() {
        Ok(e) => e,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return Ok(None),
      }
    };
    let Some(state) = e.lock_state(wait, verify)? else {
      return Ok(None);
    };
    let out = f(&mut e);
    state.done(&mut e);
    if crowded {
      e.trim();
    }
    out.map(Some)
  }

  /// Remembers that `token` was released while nothing of it was held here.
  fn cancel(&self, name: &str, token: &str) {
    let now = os::now_ms();
    let mut cancelled = self.cancelled.lock().unwrap_or_else(|e| e.into_inner());
    if cancelled.len() >= CANCELLED_MAX {
      cancelled.retain(|_, (_, until)| *until > now);
      if cancelled.len() >= CANCELLED_MAX {
        let oldest = cancelled
          .iter()
          .min_by_key(|(_, (_, until))| *until)
          .map(|(t, _)| t.clone());
        if let Some(t) = oldest {
          cancelled.remove(&t);
        }
      }
    }
    cancelled.insert(
      token.to_owned(),
      (name.to_owned(), now.saturating_add(CANCELLED_FOR_MS)),
    );
  }

  /// Whether an attempt of `token` on `name` was given up (its clean-up release came first);
  /// forgets it.
  fn take_cancelled(&self, name: &str, token: &str) -> bool {
    let mut cancelled = self.cancelled.lock().unwrap_or_else(|e| e.into_inner());
    if cancelled.is_empty() {
      return false;
    }
    match cancelled.get(token) {
      Some((n, until)) if n == name && *until > os::now_ms() => {
        cancelled.remove(token);
        true
      }
      _ => false,
    }
  }
}

impl Drop for Inner {
  /// A store dropped without close() (a client that was never closed) still ends its
  /// directory watch thread.
  fn drop(&mut self) {
    let watch = self
      .watch
      .get_mut()
      .unwrap_or_else(|e| e.into_inner())
      .take();
    if let Some(w) = watch {
      w.stop();
    }
  }
}

#[async_trait]
impl LockStore for FileStore {
  fn kind(&self) -> &'static str {
    "file"
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    if !req.extras.is_default() {
      return Err(unsupported_extras("file"));
    }
    let req = OwnedRequest::new(req);
    self
      .run(name, move |s, e, name| s.try_acquire(e, name, &req.get()))
      .await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    let token = token.to_owned();
    self
      .run(name, move |s, e, name| s.extend(e, name, &token, ms(ttl)))
      .await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    let token = token.to_owned();
    self
      .run(name, move |s, e, name| s.release(e, name, &token))
      .await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    self.run(name, |s, e, name| s.inspect(e, name)).await
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    let token = token.to_owned();
    self
      .run(name, move |s, e, name| s.leave_queue(e, name, &token))
      .await
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    if self.inner.closed() {
      return Err(LockError::Closed);
    }
    let inner = self.inner.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
      inner.ready()?;
      inner.watch(&name).map(Some)
    })
    .await
    .map_err(|e| LockError::backend("file backend: the I/O task failed", e))?
  }

  fn watched(&self) -> usize {
    self.inner.hub.len()
  }

  /// Without `fsync`, a free lock is taken in the caller's call: a few system calls on
  /// descriptors already open, no thread hop. Contended (or with `fsync`), the async path.
  fn try_acquire_now(&self, name: &str, req: &AcquireRequest<'_>) -> Option<Result<Acquire>> {
    if self.inner.opts.fsync || self.inner.closed() {
      return None;
    }
    if !req.extras.is_default() {
      return Some(Err(unsupported_extras("file")));
    }
    let req = Request {
      token: req.token,
      owner: req.owner,
      ttl_ms: ms(req.ttl),
      data: req.data,
      queue_for_ms: req.queue_for.map(ms),
    };
    // An error is reported by the async path, which tries the same again (nothing happened).
    let inner = &self.inner;
    inner
      .with_state(name, false, true, |e| inner.try_acquire(e, name, &req))
      .ok()
      .flatten()
      .map(Ok)
  }

  fn release_now(&self, name: &str, token: &str) -> Option<Result<bool>> {
    if self.inner.opts.fsync || self.inner.closed() {
      return None;
    }
    let inner = &self.inner;
    inner
      .with_state(name, false, false, |e| inner.release(e, name, token))
      .ok()
      .flatten()
      .map(Ok)
  }

  async fn close(&self) {
    self.inner.closed.store(true, Ordering::Release);
    let watch = self
      .inner
      .watch
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .take();
    if let Some(w) = watch {
      w.stop();
    }
    // Locks still held (the manager released its own first) end with their files: every
    // entry closes its files when the last operation on it (if any is running) lets go.
    drop(self.inner.names.clear());
  }
}
