//! The operations of the file store on one name, each one read-modify-write of the record
//! under the name's state lock, on the name's cached files (`names`).

use std::time::Duration;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, Grant, Holder, LockInfo, Payload};

use super::names::{Entry, Held};
use super::record::{self, Record, Waiter};
use super::{os, paths, Inner};

/// A record as loaded: whole, or torn (unreadable) with what could be recovered.
struct Loaded {
  rec: Record,
  /// The record was torn: `rec` has the recovered fence and no holder or waiters.
  torn: bool,
}

/// One acquire request, borrowed from the caller (the JS thread's path) or from an owned copy
/// (the blocking thread's).
pub(crate) struct Request<'a> {
  pub token: &'a str,
  pub owner: &'a str,
  pub ttl_ms: u64,
  pub data: Option<&'a Payload>,
  pub queue_for_ms: Option<u64>,
}

/// The longest a waiter's place in the queue is kept without a refresh: the manager asks for
/// at most a few seconds (`queue_for`); anything longer is from before a reboot.
const MAX_QUEUE_FOR_MS: u64 = 60_000;

/// The holder file keeps a number at least as large as every fence granted, for recovering a
/// torn or deleted record. It is written this far ahead, so most grants need not write it
/// (the record says how far it goes); a recovered record's fences then jump by at most this.
const FENCE_COPY_AHEAD: u64 = 1000;

/// The fence a record starts from when nothing of it is left: above every fence a counter
/// from 1 could have reached, the wall clock in microseconds.
fn fence_floor_from_clock() -> u64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
    .unwrap_or(0)
}

impl Inner {
  fn load(&self, e: &mut Entry, name: &str) -> Result<Loaded> {
    let Some(decoded) = e.read_decoded()? else {
      // No version yet: a new name, or a record made whose first write never happened (a
      // full disk), or one deleted behind our back. A holder file left from earlier keeps
      // the last fence granted: fences go on from there, never back to 1.
      let loaded = Loaded {
        rec: Record {
          name: name.to_owned(),
          fence: os::hold_fence(&e.paths.hold).unwrap_or(0),
          ..Record::default()
        },
        torn: false,
      };
      self.reconcile(e, &loaded.rec);
      return Ok(loaded);
    };
    match decoded {
      Some(rec) if rec.name == name => {
        self.reconcile(e, &rec);
        Ok(Loaded { rec, torn: false })
      }
      Some(rec) => Err(LockError::Rejected {
        message: format!(
          "file backend: {} belongs to another name ({} bytes long): a hash collision",
          e.paths.record.display(),
          rec.name.len()
        ),
        source: None,
      }),
      None => {
        // Torn. The holder file keeps a copy of the last fence granted (or more).
        let floor = os::hold_fence(&e.paths.hold).unwrap_or_else(fence_floor_from_clock);
        Ok(Loaded {
          rec: Record {
            name: name.to_owned(),
            fence: floor,
            // Rewritten whole, not in a slot next to the torn bytes.
            place: record::Place {
              whole: true,
              ..record::Place::default()
            },
            ..Record::default()
          },
          torn: true,
        })
      }
    }
  }

  /// A holding of ours that the record no longer names (taken over after our lease ended,
  /// or released by token elsewhere) is given up: its holder file unlocked, waiters told.
  fn reconcile(&self, e: &mut Entry, rec: &Record) {
    let Some(held) = e.held.as_ref() else {
      return;
    };
    if rec.holder.as_ref().is_some_and(|h| h.token == held.token) {
      return;
    }
    // Not ours any more: as `drop_held` of our token (no copy of it made).
    e.held = None;
    e.unlock_hold();
    if !rec.queue.is_empty() {
      os::ping(&e.paths.hold);
    }
  }

  /// Writes `rec` as the next version: in place into the slot it was not read from, or as
  /// the whole file when it is larger than a slot (or the file must be rewritten whole).
  fn save(&self, e: &mut Entry, rec: &Record) -> Result<()> {
    let bytes = rec.encode(rec.place.seq + 1);
    if rec.place.whole || bytes.len() > record::SLOT {
      // Peers that keep a record in slots open must not trust it once it is replaced: it is
      // marked first. A whole-file or torn record is checked by every reader anyway (and a
      // mark past its slots would cut into a whole-file version).
      let in_slots = rec.place.slot.is_some() && !rec.place.whole;
      let written = os::write_atomic(
        &e.paths.record,
        &e.paths.record_tmp,
        &bytes,
        self.opts.fsync,
        || if in_slots { e.mark_replaced() } else { Ok(()) },
      );
      e.record_replaced();
      return written;
    }
    let slot = match rec.place.slot {
      Some(0) => 1,
      _ => 0,
    };
    e.write_record(slot * record::SLOT, &bytes, self.opts.fsync)?;
    e.wrote(slot * record::SLOT, &bytes, rec);
    Ok(())
  }

  /// What we kept of the name held under `token` (fence, owner, data), only while our locked
  /// holder file is still the one at its path. A torn record is recovered from this: a
  /// holder whose lease ended and whose file was replaced by the next holder's must not
  /// claim it.
  fn owned(&self, e: &Entry, token: &str) -> Result<Option<(u64, String, Option<Payload>)>> {
    let Some(h) = e.held.as_ref().filter(|h| h.token == token) else {
      return Ok(None);
    };
    if !e.hold_is_current()? {
      return Ok(None);
    }
    Ok(Some((h.fence, h.owner.clone(), h.data.clone())))
  }

  pub(crate) fn try_acquire(&self, e: &mut Entry, name: &str, req: &Request) -> Result<Acquire> {
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(e, name)?;
    // Whether a liveness check below left the holder file locked by us (nobody had it).
    let mut locked = false;
    if torn {
      if let Some((fence, _, _)) = self.owned(e, req.token)? {
        // Ours, by the kernel lock we hold on the current holder file: renew it in a whole
        // record again.
        rec.fence = rec.fence.max(fence);
        return self.grant(e, name, rec, req, now, Some(fence), false);
      }
      let (alive, l) = e.hold_alive()?;
      if alive {
        // A live holder we cannot read: wait for it to go.
        return Ok(Acquire::Held(Holder::default()));
      }
      locked = l;
    }
    let queued = rec.queue.len();
    // A place lasts a few seconds (`queue_for`); one that claims more was written before a
    // reboot restarted the clock, and its waiter is long gone.
    rec
      .queue
      .retain(|w| w.alive_until_ms > now && w.alive_until_ms - now <= MAX_QUEUE_FOR_MS);
    let pruned = rec.queue.len() != queued;
    if let Some(h) = &rec.holder {
      if h.token == req.token && h.expires_ms > now {
        // An earlier attempt of ours took it: renew within this attempt.
        let fence = rec.fence;
        return self.grant(e, name, rec, req, now, Some(fence), locked);
      }
      // The kernel says whether the holder lives; its lease, whether it may still hold.
      if h.expires_ms > now {
        let (alive, l) = e.hold_alive()?;
        if alive {
          let holder = Holder {
            owner: Some(h.owner.clone()),
            remaining: Some(Duration::from_millis(h.expires_ms - now)),
          };
          self.enqueue(e, &mut rec, pruned, req, now)?;
          return Ok(Acquire::Held(holder));
        }
        locked = l;
      }
      rec.holder = None;
    }
    if let Some(head) = rec.queue.first() {
      if head.token != req.token {
        if locked {
          e.unlock_hold();
        }
        self.enqueue(e, &mut rec, pruned, req, now)?;
        return Ok(Acquire::Held(Holder::default()));
      }
      rec.queue.remove(0);
    }
    self.grant(e, name, rec, req, now, None, locked)
  }

  /// Keeps a waiting caller in the queue; writes the record only when that changes it
  /// enough to matter (a refresh is due at half its time), so waiters do not rewrite it on
  /// every look.
  fn enqueue(
    &self,
    e: &mut Entry,
    rec: &mut Record,
    mut changed: bool,
    req: &Request,
    now: u64,
  ) -> Result<()> {
    if let Some(q) = req.queue_for_ms {
      match rec.queue.iter_mut().find(|w| w.token == req.token) {
        Some(w) if w.alive_until_ms < now + q / 2 => {
          w.alive_until_ms = now + q;
          changed = true;
        }
        Some(_) => {}
        None => {
          rec.queue.push(Waiter {
            token: req.token.to_owned(),
            alive_until_ms: now + q,
          });
          changed = true;
        }
      }
    }
    if changed {
      self.save(e, rec)?;
    }
    Ok(())
  }

  /// Grants the name to `req`: the holder file locked by us (unless `renew` says we hold it
  /// already, with that fence; `locked`: a liveness check locked it already), then the
  /// record naming us.
  #[allow(clippy::too_many_arguments)]
  fn grant(
    &self,
    e: &mut Entry,
    name: &str,
    mut rec: Record,
    req: &Request,
    now: u64,
    renew: Option<u64>,
    locked: bool,
  ) -> Result<Acquire> {
    let had = e.held.is_some();
    let renewed = e.held.as_ref().is_some_and(|h| h.token == req.token);
    let granted = self.grant_locked(e, &mut rec, req, now, renew, locked);
    let fence = match granted {
      Ok(fence) => fence,
      Err(err) => {
        // Nothing was granted: the kernel lock goes again.
        if !had {
          e.unlock_hold();
        }
        return Err(err);
      }
    };
    if !renewed && (self.closed() || self.take_cancelled(name, req.token)) {
      // close() ran meanwhile, or the manager gave this attempt up and its clean-up release
      // already came: this late grant is given up at once.
      e.forget();
      rec.holder = None;
      let _ = self.save(e, &rec);
      return Err(if self.closed() {
        LockError::Closed
      } else {
        LockError::backend(
          "file backend: the attempt was given up before it finished",
          std::io::Error::from(std::io::ErrorKind::Interrupted),
        )
      });
    }
    e.held = Some(Held {
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      fence,
      data: req.data.cloned(),
    });
    Ok(Acquire::Granted(Grant { fence }))
  }

  fn grant_locked(
    &self,
    e: &mut Entry,
    rec: &mut Record,
    req: &Request,
    now: u64,
    renew: Option<u64>,
    locked: bool,
  ) -> Result<u64> {
    let fence = match renew {
      Some(f) => f,
      None => rec
        .fence
        .checked_add(1)
        .ok_or_else(|| LockError::Rejected {
          message: format!(
            "file backend: the fence of {} cannot grow any more",
            e.paths.record.display()
          ),
          source: None,
        })?,
    };
    let ahead = fence.saturating_add(FENCE_COPY_AHEAD);
    match e.take_hold(locked, ahead)? {
      Some(copy) => rec.copy = copy,
      None if fence > rec.copy => {
        e.write_hold(ahead)?;
        rec.copy = ahead;
      }
      None => {}
    }
    rec.fence = rec.fence.max(fence);
    rec.holder = Some(record::Holder {
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      expires_ms: now.saturating_add(req.ttl_ms),
      data: req.data.cloned(),
    });
    self.save(e, rec)?;
    Ok(fence)
  }

  pub(crate) fn extend(&self, e: &mut Entry, name: &str, token: &str, ttl_ms: u64) -> Result<bool> {
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(e, name)?;
    if torn {
      // Ours only if we hold the kernel lock of the current holder file: write it whole
      // again from what we kept.
      let Some((fence, owner, data)) = self.owned(e, token)? else {
        return Ok(false);
      };
      rec.fence = rec.fence.max(fence);
      rec.holder = Some(record::Holder {
        token: token.to_owned(),
        owner,
        expires_ms: now.saturating_add(ttl_ms),
        data,
      });
      self.save(e, &rec)?;
      return Ok(true);
    }
    match &mut rec.holder {
      Some(h) if h.token == token && h.expires_ms > now => {
        h.expires_ms = now.saturating_add(ttl_ms);
        self.save(e, &rec)?;
        Ok(true)
      }
      _ => {
        if e.drop_held(token) && !rec.queue.is_empty() {
          os::ping(&e.paths.hold);
        }
        Ok(false)
      }
    }
  }

  pub(crate) fn release(&self, e: &mut Entry, name: &str, token: &str) -> Result<bool> {
    let now = os::now_ms();
    let Loaded { mut rec, torn } = self.load(e, name)?;
    let (released, freed) = if torn {
      match self.owned(e, token)?.map(|(fence, _, _)| fence) {
        Some(fence) => {
          rec.fence = rec.fence.max(fence);
          self.save(e, &rec)?;
          (true, true)
        }
        None => (false, false),
      }
    } else {
      match &rec.holder {
        Some(h) if h.token == token => {
          let live = h.expires_ms > now;
          rec.holder = None;
          self.save(e, &rec)?;
          (live, true)
        }
        _ => (false, false),
      }
    };
    let dropped = e.drop_held(token);
    if !freed && !dropped {
      // Nothing of ours: an attempt of this token still in flight must not grant after this.
      self.cancel(name, token);
    }
    // Waiters in other processes (and other clients here) hear of it through the holder
    // file: closing a file opened for writing is what their inotify watch reports.
    if (freed || dropped) && !rec.queue.is_empty() {
      os::ping(&e.paths.hold);
    }
    if released {
      self
        .hub
        .wake(name, rec.queue.first().map(|w| w.token.as_str()));
    }
    Ok(released)
  }

  pub(crate) fn inspect(&self, e: &mut Entry, name: &str) -> Result<Option<LockInfo>> {
    let now = os::now_ms();
    let Loaded { rec, torn } = self.load(e, name)?;
    let live = |e: &mut Entry| -> Result<bool> {
      let (alive, locked) = e.hold_alive()?;
      if locked {
        e.unlock_hold();
      }
      Ok(alive)
    };
    if torn {
      if !live(e)? {
        return Ok(None);
      }
      let ours = e.held.as_ref();
      return Ok(Some(LockInfo {
        owner: ours.map_or_else(|| "unknown".to_owned(), |h| h.owner.clone()),
        remaining: None,
        fence: rec.fence,
        data: ours.and_then(|h| h.data.clone()),
      }));
    }
    match rec.holder {
      Some(h) if h.expires_ms > now && live(e)? => Ok(Some(LockInfo {
        owner: h.owner,
        remaining: Some(Duration::from_millis(h.expires_ms - now)),
        fence: rec.fence,
        data: h.data,
      })),
      _ => Ok(None),
    }
  }

  pub(crate) fn leave_queue(&self, e: &mut Entry, name: &str, token: &str) -> Result<()> {
    let Loaded { mut rec, torn } = self.load(e, name)?;
    if torn {
      return Ok(());
    }
    let was_head = rec.queue.first().is_some_and(|w| w.token == token);
    let before = rec.queue.len();
    rec.queue.retain(|w| w.token != token);
    if rec.queue.len() == before {
      return Ok(());
    }
    self.save(e, &rec)?;
    if was_head && rec.holder.is_none() && !rec.queue.is_empty() {
      os::ping(&e.paths.hold);
      self
        .hub
        .wake(name, rec.queue.first().map(|w| w.token.as_str()));
    }
    Ok(())
  }

  pub(crate) fn watch(&self, name: &str) -> Result<crate::store::Watch> {
    let stem = paths::stem(name);
    let (watch, _) = self.hub.register(name);
    self.stems.map().insert(stem, name.to_owned());
    let mut dir_watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
    if dir_watch.is_none() {
      *dir_watch = Some(super::wake::DirWatch::start(
        &self.opts.dir,
        self.stems.clone(),
        self.hub.clone(),
      )?);
    }
    Ok(watch)
  }
}
