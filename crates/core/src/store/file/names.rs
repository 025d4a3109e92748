//! The open files of recently used names, so that an operation on a name costs a few system
//! calls on descriptors already open instead of opening, hashing and closing three files.
//!
//! One `Entry` per name, behind its own mutex: two operations of this store on one name take
//! turns in the process (they share one open file description, on which `flock` would not
//! exclude them) and then take the name's state lock against other processes. The cache is
//! bounded: while more than `CAP` names are cached, every operation closes its entry's files
//! when it ends, but a held lock's holder file (the kernel lock is on it), so holding many
//! locks costs one descriptor each, as before; idle entries leave the map when it is swept.
//!
//! A cached descriptor can outlive its file: the record is replaced by rename when a version
//! outgrows a slot or a torn one is rewritten, a holder file is replaced when a stopped holder
//! still locks it, and a cleaner may delete files. Each use checks, on the open descriptor
//! (fstat, no path lookup), that the file still has a name, and opens the path again if not.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::lease::Payload;

use super::os;
use super::paths::NamePaths;
use super::record::{self, Record};

/// Names whose files stay open while idle.
const CAP: usize = 128;

/// What this process keeps of a lock it holds: the token and what it needs to rewrite a
/// torn record. Its holder file, locked, is the entry's `hold`.
pub(crate) struct Held {
  pub token: String,
  pub owner: String,
  pub fence: u64,
  pub data: Option<Payload>,
}

/// The files of one name, and whether this store holds it.
pub(crate) struct Entry {
  pub paths: NamePaths,
  lk: Option<File>,
  rec: Option<File>,
  /// The holder file, opened for reading and writing (closing a file opened for writing is
  /// what inotify reports). Locked by us exactly while `held` is set, or for the moment a
  /// liveness check takes it.
  hold: Option<File>,
  pub held: Option<Held>,
  /// `rec` was opened since the directory was last synced (with fsync, a record file made
  /// here is durable only once its directory entry is too).
  rec_fresh: bool,
  /// `buf` holds the record as read by this operation's `lock_state` (no second read).
  read_ahead: bool,
  /// When `rec` was last found to still have its name (boot clock, ms; see `rec_current`).
  checked_ms: u64,
  /// The record's bytes as last read (reused, no allocation per read).
  buf: Vec<u8>,
  /// The record file's bytes as our last in-place write left them (the bytes read, with the
  /// version we wrote laid over its slot), and the record they decode to (`known`, the one
  /// we wrote). A read that finds exactly these bytes takes `known` instead of decoding them
  /// again: decoding is a function of the bytes alone, so equal bytes give an equal record,
  /// and the checksum pass over the body is skipped. Any other bytes (another process wrote,
  /// or a short read) are decoded as usual.
  written: Vec<u8>,
  known: Option<Record>,
}

/// The state lock of a name, taken: unlocked by `done`, or by closing the file if dropped
/// (an error or a panic on the way).
pub(crate) struct StateLock(File);

impl StateLock {
  /// Unlocks, and gives the descriptor back to the entry for the next operation.
  pub fn done(self, e: &mut Entry) {
    if rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock).is_ok() {
      e.lk = Some(self.0);
    }
  }
}

impl Entry {
  fn new(dir: &Path, name: &str) -> Self {
    Entry {
      paths: NamePaths::new(dir, name),
      lk: None,
      rec: None,
      hold: None,
      held: None,
      rec_fresh: false,
      read_ahead: false,
      checked_ms: 0,
      buf: Vec::new(),
      written: Vec::new(),
      known: None,
    }
  }

  /// Takes the name's state lock: at once or not at all (`wait` false: `None` when another
  /// open file description has it), or waiting a bounded time (`os::lock_state`).
  /// `verify`: check that the cached descriptors still name the files at their paths, whatever
  /// the record says (an operation that may grant: a directory made again under our
  /// descriptors must be seen before a grant, not within `RECHECK_MS`).
  pub fn lock_state(&mut self, wait: bool, verify: bool) -> Result<Option<StateLock>> {
    // Twice at most: a second time if the directory was replaced under our descriptors.
    for _ in 0..2 {
      let file = match self.lk.take() {
        Some(f) => f,
        None => os::open_rw(&self.paths.state, false)
          .map_err(|e| os::io_error("open", &self.paths.state, e))?,
      };
      let locked = if wait {
        os::lock_state(&file, &self.paths.state).map(|()| true)?
      } else {
        os::try_lock(&file, &self.paths.state)?
      };
      if !locked {
        self.lk = Some(file);
        return Ok(None);
      }
      if self.rec_current(verify)? || linked(&file, &self.paths.state)? {
        return Ok(Some(StateLock(file)));
      }
      // Every file of the name was removed (the directory deleted and made again): our
      // descriptors name files nobody else sees. Start again from the paths.
      drop(file);
      self.rec = None;
      if self.held.is_none() {
        self.hold = None;
      }
    }
    Err(crate::error::LockError::backend(
      format!(
        "file backend: the files of {} keep disappearing",
        self.paths.record.display()
      ),
      std::io::Error::from(ErrorKind::NotFound),
    ))
  }

  /// Reads the record through the cached descriptor, and says whether that descriptor still
  /// names the file at its path (no descriptor: nothing to check). Peers replace a record by
  /// rename only under the state lock, and mark the file they replace past its two slots
  /// first (`mark_replaced`): bytes that are a record in slots with no mark are the file at
  /// the path, with no stat. Anything else (a mark, a whole-file or torn record, an empty
  /// file) is checked on the descriptor (its link count), and so is every record once
  /// `RECHECK_MS` passed since the last check, and on every operation that `verify`s (those
  /// that may grant): files removed by something else than ferrolock (the directory deleted and
  /// made again while in use) are noticed before any grant, and by the others within that.
  fn rec_current(&mut self, verify: bool) -> Result<bool> {
    self.read_ahead = false;
    if self.rec.is_none() {
      return Ok(true);
    }
    self.read_record()?;
    self.read_ahead = true;
    let now = os::now_ms();
    if !verify && now.saturating_sub(self.checked_ms) < RECHECK_MS && record::in_slots(&self.buf) {
      return Ok(true);
    }
    self.rec_linked(now)
  }

  /// Whether the cached record descriptor still has a name (only we and our peers rename,
  /// under the state lock); forgets it if not. No descriptor: nothing to check.
  fn rec_linked(&mut self, now: u64) -> Result<bool> {
    let Some(f) = &self.rec else {
      return Ok(true);
    };
    let (links, _) = os::links_and_len(f, &self.paths.record)?;
    if links == 0 {
      self.rec = None;
      self.read_ahead = false;
      return Ok(false);
    }
    self.checked_ms = now;
    Ok(true)
  }

  /// The record's bytes into `buf` (empty for a new or emptied record), unless `lock_state`
  /// read them for this operation already. Under the state lock.
  fn read_record(&mut self) -> Result<()> {
    if std::mem::take(&mut self.read_ahead) {
      return Ok(());
    }
    if self.rec.is_none() {
      let f = os::open_record(&self.paths.record)
        .map_err(|e| os::io_error("open", &self.paths.record, e))?;
      self.rec = Some(f);
      self.rec_fresh = true;
      // Opened by its path just now: the file at the path.
      self.checked_ms = os::now_ms();
    }
    let path = &self.paths.record;
    let Some(f) = &self.rec else {
      self.buf.clear();
      return Ok(());
    };
    // The whole file from its start, without asking its size: a read that returns less than
    // it was offered reached the end (a regular file on a local file system reads short only
    // there), except one that stops at a page boundary, which is read on from to be sure.
    let mut got = 0;
    loop {
      if self.buf.len() - got < READ_ROOM {
        if self.buf.len() > MAX_RECORD {
          break;
        }
        let room = (got + READ_ROOM).max(self.buf.len() * 2);
        self.buf.resize(room, 0);
      }
      let offered = self.buf.len() - got;
      match f.read_at(&mut self.buf[got..], got as u64) {
        Ok(0) => break,
        Ok(n) => {
          got += n;
          if n < offered && !got.is_multiple_of(PAGE) {
            break;
          }
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => {}
        Err(e) => return Err(os::io_error("read", path, e)),
      }
    }
    self.buf.truncate(got);
    Ok(())
  }

  /// The record as read now: `None` for a new or emptied file, `Some(None)` when no version
  /// in it is valid (torn). Under the state lock.
  pub fn read_decoded(&mut self) -> Result<Option<Option<Record>>> {
    let known = self.known.take();
    self.read_record()?;
    if self.buf.is_empty() {
      return Ok(None);
    }
    if let Some(rec) = known {
      if self.buf == self.written {
        return Ok(Some(Some(rec)));
      }
    }
    let decoded = Record::decode_file(&self.buf);
    if decoded.is_none() && !self.rec_linked(os::now_ms())? {
      // Torn, and replaced meanwhile (a peer rewrote it whole): the file at the path.
      self.read_record()?;
      if self.buf.is_empty() {
        return Ok(None);
      }
      return Ok(Some(Record::decode_file(&self.buf)));
    }
    Ok(Some(decoded))
  }

  /// After `rec` was written in place as `bytes` at `offset` (`write_record`, right after the
  /// read of this operation): the file's bytes are those read with `bytes` laid over them,
  /// which decode to `rec` (the newer version, whole, in the other slot: see
  /// `record::Record::decode_file`), placed where it now sits.
  pub fn wrote(&mut self, offset: usize, bytes: &[u8], rec: &Record) {
    std::mem::swap(&mut self.buf, &mut self.written);
    let end = offset + bytes.len();
    if self.written.len() < end {
      // A write past the end leaves zeros (a hole) before it.
      self.written.resize(end, 0);
    }
    self.written[offset..end].copy_from_slice(bytes);
    let known = Record {
      place: record::Place {
        seq: rec.place.seq + 1,
        slot: Some(offset / record::SLOT),
        whole: false,
      },
      ..rec.clone()
    };
    debug_assert_eq!(
      Record::decode_file(&self.written).as_ref(),
      Some(&known),
      "the bytes written decode to the record written"
    );
    self.known = Some(known);
  }

  /// Writes `bytes` at `offset` of the record, in place.
  pub fn write_record(&mut self, offset: usize, bytes: &[u8], sync: bool) -> Result<()> {
    let path = &self.paths.record;
    let f = match &self.rec {
      Some(f) => f,
      None => {
        let f = os::open_record(path).map_err(|e| os::io_error("open", path, e))?;
        self.rec_fresh = true;
        self.rec.insert(f)
      }
    };
    f.write_all_at(bytes, offset as u64)
      .map_err(|e| os::io_error("write", path, e))?;
    if sync {
      f.sync_data().map_err(|e| os::io_error("sync", path, e))?;
      if self.rec_fresh {
        os::sync_parent(path)?;
        self.rec_fresh = false;
      }
    }
    Ok(())
  }

  /// The record was replaced by rename: the cached descriptor names the old file.
  pub fn record_replaced(&mut self) {
    self.rec = None;
  }

  /// Marks the record file, about to be replaced by rename, past its two slots: a peer that
  /// keeps it open then checks it and finds it replaced (see `rec_current`). A crash before
  /// the rename leaves the mark on the file at the path, which then only costs a stat per
  /// operation. Under the state lock.
  pub fn mark_replaced(&self) -> std::io::Result<()> {
    match &self.rec {
      Some(f) => f.write_all_at(REPLACED, (2 * record::SLOT) as u64),
      None => Ok(()),
    }
  }

  /// Whether a live holder has the kernel lock of the name's holder file. This store's own
  /// holding counts as live. When nobody has it, the check leaves it locked by us (`true`
  /// in the second field): the caller grants on it or calls `unlock_hold`.
  pub fn hold_alive(&mut self) -> Result<(bool, bool)> {
    if self.held.is_some() {
      return Ok((true, false));
    }
    self.open_hold()?;
    let Some(f) = &self.hold else {
      return Ok((false, false));
    };
    if os::try_lock(f, &self.paths.hold)? {
      Ok((false, true))
    } else {
      Ok((true, false))
    }
  }

  /// Undoes a lock `hold_alive` left on the holder file.
  pub fn unlock_hold(&mut self) {
    if let Some(f) = &self.hold {
      if rustix::fs::flock(f, rustix::fs::FlockOperation::Unlock).is_err() {
        self.hold = None;
      }
    }
  }

  /// Opens (not makes) the holder file at the path into `hold` if needed; `hold` stays
  /// `None` if there is none.
  fn open_hold(&mut self) -> Result<()> {
    let path = &self.paths.hold;
    if let Some(f) = &self.hold {
      if self.held.is_none() && !linked(f, path)? {
        self.hold = None;
      }
    }
    if self.hold.is_none() {
      match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => self.hold = Some(f),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(os::io_error("open", path, e)),
      }
    }
    Ok(())
  }

  /// The holder file, locked by us, for a grant (`locked`: `hold_alive` locked it already).
  /// The file at the path is reused when nobody has its lock; otherwise (a stopped holder
  /// whose lease ended keeps it) a fresh one is made beside it and renamed over it. A file
  /// made here gets `copy` (a copy of the fences granted, `None` for a reused file).
  pub fn take_hold(&mut self, locked: bool, copy: u64) -> Result<Option<u64>> {
    if locked || self.held.is_some() {
      return Ok(None);
    }
    self.open_hold()?;
    if let Some(f) = &self.hold {
      if os::try_lock(f, &self.paths.hold)? {
        return Ok(None);
      }
    }
    self.hold = Some(os::new_hold(&self.paths.hold, &self.paths.hold_tmp, copy)?);
    Ok(Some(copy))
  }

  /// Writes `copy` into our locked holder file.
  pub fn write_hold(&mut self, copy: u64) -> Result<()> {
    match &self.hold {
      Some(f) => os::write_fence(f, &self.paths.hold, copy),
      None => Ok(()),
    }
  }

  /// Whether our holder file is still the one at the path (a holder whose lease ended may
  /// have had a fresh one renamed over it).
  pub fn hold_is_current(&self) -> Result<bool> {
    match &self.hold {
      Some(f) => os::is_file_at(f, &self.paths.hold),
      None => Ok(false),
    }
  }

  /// Gives up our holding of the name if it is `token`'s: unlocks the holder file (kept open
  /// for the next grant; a waiter elsewhere is told by the caller). True if it was.
  pub fn drop_held(&mut self, token: &str) -> bool {
    if self.held.as_ref().is_none_or(|h| h.token != token) {
      return false;
    }
    self.held = None;
    self.unlock_hold();
    true
  }

  /// Gives up the holding and its file whatever the token (close(), a late grant given up):
  /// closing the file frees the kernel lock and wakes waiters elsewhere.
  pub fn forget(&mut self) {
    self.held = None;
    self.hold = None;
  }

  /// Closes what an idle entry need not keep: all of it, or all but a held lock's holder file.
  /// False when nothing of it stays (the entry can go).
  pub fn trim(&mut self) -> bool {
    self.lk = None;
    self.rec = None;
    self.read_ahead = false;
    self.buf = Vec::new();
    self.written = Vec::new();
    self.known = None;
    if self.held.is_none() {
      self.hold = None;
      return false;
    }
    true
  }
}

/// A record longer than this is not ours (two slots, or one large version with its data).
const MAX_RECORD: usize = 64 << 20;

/// What a read offers at least: a record in slots, with a mark past them, in one read.
const READ_ROOM: usize = 2 * record::SLOT + 64;

/// Page size of the reads' page-boundary rule (a multiple of every page size in use is fine).
const PAGE: usize = 4096;

/// How long a record descriptor that shows no sign of replacement is trusted without a stat.
const RECHECK_MS: u64 = 1000;

/// The mark written past the slots of a record about to be replaced.
const REPLACED: &[u8] = b"\nreplaced by rename\n";

/// Whether the open `file` still has a name in the file system (not unlinked nor replaced).
fn linked(file: &File, path: &Path) -> Result<bool> {
  Ok(os::links_and_len(file, path)?.0 > 0)
}

/// The entries of one store.
#[derive(Default)]
pub(crate) struct Names {
  map: Mutex<Map>,
}

#[derive(Default)]
struct Map {
  entries: HashMap<String, Arc<Mutex<Entry>>>,
  /// Size at which idle entries are closed next.
  sweep_at: usize,
}

impl Names {
  fn map(&self) -> MutexGuard<'_, Map> {
    self.map.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// The entry of `name`, made if missing, and whether the cache is crowded (more than `CAP`
  /// names): then the caller trims the entry after its operation (`Entry::trim`), so that the
  /// names held or used at once cost one descriptor per held lock, not three per name.
  pub fn get(&self, dir: &Path, name: &str) -> (Arc<Mutex<Entry>>, bool) {
    let mut map = self.map();
    let crowded = map.entries.len() > CAP;
    if let Some(e) = map.entries.get(name) {
      return (e.clone(), crowded);
    }
    if map.entries.len() >= map.sweep_at.max(CAP) {
      // Idle entries (nobody but the map has them: every user clones under this lock) close
      // their files; held ones keep the holder file only. Held ones may be many: sweep again
      // only when the map has doubled.
      map.entries.retain(|_, e| {
        if Arc::strong_count(e) > 1 {
          return true;
        }
        e.lock().unwrap_or_else(|p| p.into_inner()).trim()
      });
      map.sweep_at = map.entries.len() * 2;
    }
    let e = Arc::new(Mutex::new(Entry::new(dir, name)));
    map.entries.insert(name.to_owned(), e.clone());
    (e, crowded)
  }

  /// Every entry, for close(): their holdings are given up and their files closed.
  pub fn clear(&self) -> Vec<Arc<Mutex<Entry>>> {
    let mut map = self.map();
    map.sweep_at = 0;
    map.entries.drain().map(|(_, e)| e).collect()
  }
}

/// Locks an entry (a poisoned one is still consistent: every field is set in one step).
pub(crate) fn lock(e: &Mutex<Entry>) -> MutexGuard<'_, Entry> {
  e.lock().unwrap_or_else(|p| p.into_inner())
}
