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

mod os;
mod paths;
mod record;
mod wake;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::{unsupported_extras, LockStore, WakeHub, Watch};

use paths::NamePaths;
use record::{Record, Waiter};
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

/// What this process keeps of a lock it holds: the open, locked holder file (closing it is
/// what frees the kernel lock) and what it needs to rewrite a torn record.
struct HeldFile {
  token: String,
  owner: String,
  fence: u64,
  data: Option<Payload>,
  file: File,
}

struct Inner {
  opts: FileOptions,
  ready: AtomicBool,
  holds: Mutex<HashMap<String, HeldFile>>,
  hub: WakeHub,
  stems: Stems,
  watch: Mutex<Option<DirWatch>>,
  closed: AtomicBool,
}

/// The file store.
pub struct FileStore {
  inner: Arc<Inner>,
}

/// A record as loaded: whole, or torn (unreadable) with what could be recovered.
struct Loaded {
  rec: Record,
  /// The record was torn: `rec` has the recovered fence and no holder or waiters.
  torn: bool,
}

/// One owned acquire request, for the blocking thread.
struct Request {
  token: String,
  owner: String,
  ttl_ms: u64,
  data: Option<Payload>,
  queue_for_ms: Option<u64>,
}

/// The longest a waiter's place in the queue is kept without a refresh: the manager asks for
/// at most a few seconds (`queue_for`); anything longer is from before a reboot.
const MAX_QUEUE_FOR_MS: u64 = 60_000;

fn ms(d: Duration) -> u64 {
  u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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
        holds: Mutex::new(HashMap::new()),
        hub,
        stems,
        watch: Mutex::new(None),
        closed: AtomicBool::new(false),
      }),
    })
  }

  /// The lock directory.
  pub fn dir(&self) -> &std::path::Path {
    &self.inner.opts.dir
  }

  /// Runs `f` on a blocking thread: file locks and file I/O never stall the runtime.
  async fn run<T: Send + 'static>(
    &self,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
  ) -> Result<T> {
    if self.inner.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    let inner = self.inner.clone();
    tokio::task::spawn_blocking(move || {
      inner.ready()?;
      f(&inner)
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

  fn holds(&self) -> MutexGuard<'_, HashMap<String, HeldFile>> {
    self.holds.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// The fence of the lock `name` this process holds under `token`, if it does.
  fn held_fence(&self, name: &str, token: &str) -> Option<u64> {
    self
      .holds()
      .get(name)
      .filter(|h| h.token == token)
      .map(|h| h.fence)
  }

  /// What we kept of `name` held under `token` (fence, owner, data), only while our locked
  /// holder file is still the one at `p.hold`. A torn record is recovered from this: a holder
  /// whose lease ended and whose file was replaced by the next holder's must not claim it.
  fn owned(
    &self,
    name: &str,
    token: &str,
    p: &NamePaths,
  ) -> Result<Option<(u64, String, Option<Payload>)>> {
    let holds = self.holds();
    let Some(h) = holds.get(name).filter(|h| h.token == token) else {
      return Ok(None);
    };
    if !os::is_file_at(&h.file, &p.hold)? {
      return Ok(None);
    }
    Ok(Some((h.fence, h.owner.clone(), h.data.clone())))
  }

  /// Closes our holder file of `name` if it is `token`'s: frees the kernel lock, and tells
  /// waiters elsewhere (inotify sees the close).
  fn drop_hold(&self, name: &str, token: &str) -> bool {
    let mut holds = self.holds();
    if holds.get(name).is_some_and(|h| h.token == token) {
      holds.remove(name);
      return true;
    }
    false
  }

  fn load(&self, name: &str, p: &NamePaths) -> Result<Loaded> {
    let bytes = os::read_file(&p.record)?.unwrap_or_default();
    if bytes.is_empty() {
      // No version yet: a new name, or a record made whose first write never happened (a
      // full disk), or one deleted behind our back. A holder file left from earlier keeps
      // the last fence granted: fences go on from there, never back to 1.
      return Ok(Loaded {
        rec: Record {
          name: name.to_owned(),
          fence: os::hold_fence(&p.hold).unwrap_or(0),
          ..Record::default()
        },
        torn: false,
      });
    }
    match Record::decode_file(&bytes) {
      Some(rec) if rec.name == name => Ok(Loaded { rec, torn: false }),
      Some(rec) => Err(LockError::Rejected {
        message: format!(
          "file backend: {} belongs to another name ({} bytes long): a hash collision",
          p.record.display(),
          rec.name.len()
        ),
        source: None,
      }),
      None => {
        // Torn. The holder file keeps a copy of the last fence granted; failing that, the
        // wall clock in microseconds is above any fence a counter from 1 could have reached.
        let floor = os::hold_fence(&p.hold).unwrap_or_else(|| {
          std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(0)
        });
        Ok(Loaded {
          rec: Record {
            name: name.to_owned(),
            fence: floor,
            holder: None,
            queue: Vec::new(),
            // Rewritten whole, not in a slot next to the torn bytes.
            place: record::Place {
              whole: true,
              ..record::Place::default()
            },
          },
          torn: true,
        })
      }
    }
  }

  /// Writes `rec` as the next version: in place into the slot it was not read from, or as
  /// the whole file when it is larger than a slot (or the file must be rewritten whole).
  fn save(&self, p: &NamePaths, rec: &Record) -> Result<()> {
    let bytes = rec.encode(rec.place.seq + 1);
    if rec.place.whole || bytes.len() > record::SLOT {
      return os::write_atomic(&p.record, &p.record_tmp, &bytes, self.opts.fsync);
    }
    let slot = match rec.place.slot {
      Some(0) => 1,
      _ => 0,
    };
    os::write_at(&p.record, slot * record::SLOT, &bytes, self.opts.fsync)
  }

  fn try_acquire(&self, name: &str, req: &Request) -> Result<Acquire> {
    let p = NamePaths::new(&self.opts.dir, name);
    let _state = os::lock_state(&p.state)?;
    self.try_acquire_locked(name, &p, req)
  }

  /// `try_acquire` done at once on this thread, or `None` when another process is inside
  /// the name's state lock right now (then the caller takes the async path).
  fn try_acquire_now(&self, name: &str, req: &Request) -> Result<Option<Acquire>> {
    self.ready()?;
    let p = NamePaths::new(&self.opts.dir, name);
    let Some(_state) = os::try_lock_state(&p.state)? else {
      return Ok(None);
    };
    self.try_acquire_locked(name, &p, req).map(Some)
  }

  fn try_acquire_locked(&self, name: &str, p: &NamePaths, req: &Request) -> Result<Acquire> {
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(name, p)?;
    if torn {
      if let Some((fence, _, _)) = self.owned(name, &req.token, p)? {
        // Ours, by the kernel lock we hold on the current holder file: renew it in a whole
        // record again.
        rec.fence = rec.fence.max(fence);
        return self.grant(name, p, rec, req, now, Some(fence));
      }
      if os::is_locked(&p.hold)? {
        // A live holder we cannot read: wait for it to go.
        return Ok(Acquire::Held(Holder::default()));
      }
    }
    let before = rec.clone();
    // A place lasts a few seconds (`queue_for`); one that claims more was written before a
    // reboot restarted the clock, and its waiter is long gone.
    rec
      .queue
      .retain(|w| w.alive_until_ms > now && w.alive_until_ms - now <= MAX_QUEUE_FOR_MS);
    if let Some(h) = &rec.holder {
      if h.token == req.token && h.expires_ms > now {
        // An earlier attempt of ours took it: renew within this attempt.
        let fence = rec.fence;
        return self.grant(name, p, rec, req, now, Some(fence));
      }
      // The kernel says whether the holder lives; its lease, whether it may still hold.
      if h.expires_ms > now && os::is_locked(&p.hold)? {
        let holder = Holder {
          owner: Some(h.owner.clone()),
          remaining: Some(Duration::from_millis(h.expires_ms - now)),
        };
        self.enqueue(p, &mut rec, &before, req, now)?;
        return Ok(Acquire::Held(holder));
      }
      rec.holder = None;
    }
    if let Some(head) = rec.queue.first() {
      if head.token != req.token {
        self.enqueue(p, &mut rec, &before, req, now)?;
        return Ok(Acquire::Held(Holder::default()));
      }
      rec.queue.remove(0);
    }
    self.grant(name, p, rec, req, now, None)
  }

  /// Keeps a waiting caller in the queue; writes the record only when that changes it
  /// enough to matter (a refresh is due at half its time), so waiters do not rewrite it on
  /// every look.
  fn enqueue(
    &self,
    p: &NamePaths,
    rec: &mut Record,
    before: &Record,
    req: &Request,
    now: u64,
  ) -> Result<()> {
    if let Some(q) = req.queue_for_ms {
      match rec.queue.iter_mut().find(|w| w.token == req.token) {
        Some(w) if w.alive_until_ms < now + q / 2 => w.alive_until_ms = now + q,
        Some(_) => {}
        None => rec.queue.push(Waiter {
          token: req.token.clone(),
          alive_until_ms: now + q,
        }),
      }
    }
    if rec != before {
      self.save(p, rec)?;
    }
    Ok(())
  }

  /// Grants `name` to `req`: a fresh holder file locked by us (unless `renew` says we hold
  /// it already, with that fence), then the record naming us.
  fn grant(
    &self,
    name: &str,
    p: &NamePaths,
    mut rec: Record,
    req: &Request,
    now: u64,
    renew: Option<u64>,
  ) -> Result<Acquire> {
    let fence = match renew {
      Some(f) => f,
      None => rec
        .fence
        .checked_add(1)
        .ok_or_else(|| LockError::Rejected {
          message: format!(
            "file backend: the fence of {} cannot grow any more",
            p.record.display()
          ),
          source: None,
        })?,
    };
    let file = match renew {
      Some(_) if self.held_fence(name, &req.token).is_some() => None,
      _ => Some(os::take_hold(&p.hold, &p.hold_tmp, fence)?),
    };
    rec.fence = rec.fence.max(fence);
    rec.holder = Some(record::Holder {
      token: req.token.clone(),
      owner: req.owner.clone(),
      expires_ms: now.saturating_add(req.ttl_ms),
      data: req.data.clone(),
    });
    // If this fails, `file` is dropped: the kernel lock goes with it, nothing was granted.
    self.save(p, &rec)?;
    if let Some(file) = file {
      let mut holds = self.holds();
      if self.closed.load(Ordering::Acquire) {
        // close() ran meanwhile: this late grant is given up at once (its file closes here);
        // the manager's clean-up of the cut attempt finds nothing of ours.
        drop(holds);
        drop(file);
        rec.holder = None;
        let _ = self.save(p, &rec);
        return Err(LockError::Closed);
      }
      holds.insert(
        name.to_owned(),
        HeldFile {
          token: req.token.clone(),
          owner: req.owner.clone(),
          fence,
          data: req.data.clone(),
          file,
        },
      );
    }
    Ok(Acquire::Granted(Grant { fence }))
  }

  fn extend(&self, name: &str, token: &str, ttl_ms: u64) -> Result<bool> {
    let p = NamePaths::new(&self.opts.dir, name);
    let _state = os::lock_state(&p.state)?;
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(name, &p)?;
    if torn {
      // Ours only if we hold the kernel lock of the current holder file: write it whole
      // again from what we kept.
      let Some((fence, owner, data)) = self.owned(name, token, &p)? else {
        return Ok(false);
      };
      rec.fence = rec.fence.max(fence);
      rec.holder = Some(record::Holder {
        token: token.to_owned(),
        owner,
        expires_ms: now.saturating_add(ttl_ms),
        data,
      });
      self.save(&p, &rec)?;
      return Ok(true);
    }
    match &mut rec.holder {
      Some(h) if h.token == token && h.expires_ms > now => {
        h.expires_ms = now.saturating_add(ttl_ms);
        self.save(&p, &rec)?;
        Ok(true)
      }
      _ => {
        self.drop_hold(name, token);
        Ok(false)
      }
    }
  }

  fn release(&self, name: &str, token: &str) -> Result<bool> {
    let p = NamePaths::new(&self.opts.dir, name);
    let _state = os::lock_state(&p.state)?;
    self.release_locked(name, &p, token)
  }

  /// `release` done at once on this thread, or `None` as for `try_acquire_now`.
  fn release_now(&self, name: &str, token: &str) -> Result<Option<bool>> {
    self.ready()?;
    let p = NamePaths::new(&self.opts.dir, name);
    let Some(_state) = os::try_lock_state(&p.state)? else {
      return Ok(None);
    };
    self.release_locked(name, &p, token).map(Some)
  }

  fn release_locked(&self, name: &str, p: &NamePaths, token: &str) -> Result<bool> {
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(name, p)?;
    let released = if torn {
      match self.owned(name, token, p)?.map(|(fence, _, _)| fence) {
        Some(fence) => {
          rec.fence = rec.fence.max(fence);
          self.save(p, &rec)?;
          true
        }
        None => false,
      }
    } else {
      match &rec.holder {
        Some(h) if h.token == token => {
          let live = h.expires_ms > now;
          rec.holder = None;
          self.save(p, &rec)?;
          live
        }
        _ => false,
      }
    };
    // Closing our holder file wakes waiters in other processes; a release with a token
    // held elsewhere (the compat entries) pings them instead.
    if !self.drop_hold(name, token) && released && !rec.queue.is_empty() {
      os::ping(&p.hold);
    }
    if released {
      self
        .hub
        .wake(name, rec.queue.first().map(|w| w.token.as_str()));
    }
    Ok(released)
  }

  fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    let p = NamePaths::new(&self.opts.dir, name);
    let _state = os::lock_state(&p.state)?;
    let now = os::now_ms();
    let Loaded { rec, torn } = self.load(name, &p)?;
    if torn {
      if !os::is_locked(&p.hold)? {
        return Ok(None);
      }
      let holds = self.holds();
      let ours = holds.get(name);
      return Ok(Some(LockInfo {
        owner: ours.map_or_else(|| "unknown".to_owned(), |h| h.owner.clone()),
        remaining: None,
        fence: rec.fence,
        data: ours.and_then(|h| h.data.clone()),
      }));
    }
    match rec.holder {
      Some(h) if h.expires_ms > now && os::is_locked(&p.hold)? => Ok(Some(LockInfo {
        owner: h.owner,
        remaining: Some(Duration::from_millis(h.expires_ms - now)),
        fence: rec.fence,
        data: h.data,
      })),
      _ => Ok(None),
    }
  }

  fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    let p = NamePaths::new(&self.opts.dir, name);
    let _state = os::lock_state(&p.state)?;
    let Loaded { mut rec, torn } = self.load(name, &p)?;
    if torn {
      return Ok(());
    }
    let was_head = rec.queue.first().is_some_and(|w| w.token == token);
    let before = rec.queue.len();
    rec.queue.retain(|w| w.token != token);
    if rec.queue.len() == before {
      return Ok(());
    }
    self.save(&p, &rec)?;
    if was_head && rec.holder.is_none() && !rec.queue.is_empty() {
      os::ping(&p.hold);
      self
        .hub
        .wake(name, rec.queue.first().map(|w| w.token.as_str()));
    }
    Ok(())
  }

  fn watch(&self, name: &str) -> Result<Watch> {
    let stem = paths::stem(name);
    let (watch, _) = self.hub.register(name);
    self.stems.map().insert(stem, name.to_owned());
    let mut dir_watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
    if dir_watch.is_none() {
      *dir_watch = Some(DirWatch::start(
        &self.opts.dir,
        self.stems.clone(),
        self.hub.clone(),
      )?);
    }
    Ok(watch)
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
    let name = name.to_owned();
    let req = Request {
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      ttl_ms: ms(req.ttl),
      data: req.data.cloned(),
      queue_for_ms: req.queue_for.map(ms),
    };
    self.run(move |s| s.try_acquire(&name, &req)).await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    let (name, token) = (name.to_owned(), token.to_owned());
    self.run(move |s| s.extend(&name, &token, ms(ttl))).await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    let (name, token) = (name.to_owned(), token.to_owned());
    self.run(move |s| s.release(&name, &token)).await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    let name = name.to_owned();
    self.run(move |s| s.inspect(&name)).await
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    let (name, token) = (name.to_owned(), token.to_owned());
    self.run(move |s| s.leave_queue(&name, &token)).await
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    let name = name.to_owned();
    self.run(move |s| s.watch(&name).map(Some)).await
  }

  fn watched(&self) -> usize {
    self.inner.hub.len()
  }

  /// Without `fsync`, a free lock is taken in the caller's call: a few system calls on a
  /// local file system, no thread hop. Contended (or with `fsync`), the async path.
  fn try_acquire_now(&self, name: &str, req: &AcquireRequest<'_>) -> Option<Result<Acquire>> {
    if self.inner.opts.fsync || self.inner.closed.load(Ordering::Acquire) {
      return None;
    }
    if !req.extras.is_default() {
      return Some(Err(unsupported_extras("file")));
    }
    let req = Request {
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      ttl_ms: ms(req.ttl),
      data: req.data.cloned(),
      queue_for_ms: req.queue_for.map(ms),
    };
    // An error is reported by the async path, which tries the same again (nothing happened).
    self
      .inner
      .try_acquire_now(name, &req)
      .ok()
      .flatten()
      .map(Ok)
  }

  fn release_now(&self, name: &str, token: &str) -> Option<Result<bool>> {
    if self.inner.opts.fsync || self.inner.closed.load(Ordering::Acquire) {
      return None;
    }
    self.inner.release_now(name, token).ok().flatten().map(Ok)
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
    // Locks still held (the manager released its own first) end with their files.
    self.inner.holds().clear();
  }
}
