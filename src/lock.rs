//! Held locks: each stays in its client's table under a handle, which JS names in every lock
//! method (index.js wraps it in an EventEmitter); its events reach JS through the thread's
//! completion queue, addressed by the same handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ferrolock_core::{LeaseEvent, Lock, TaggedSink};
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;

use crate::client::NativeClient;
use crate::completion::{run, Queue, Value};
use crate::error::to_napi;
use crate::options::{data as checked_data, ms};

/// One lease event for JS.
#[napi(object, object_from_js = false)]
pub struct NativeEvent {
  /// refreshed | error | expiring | lost | released | probe
  pub kind: String,
  pub ttl: Option<f64>,
  pub remaining: Option<f64>,
  pub reason: Option<String>,
  pub message: Option<String>,
  pub probe: Option<f64>,
  /// For `error`: the caller's client object's own error behind it, if any.
  #[napi(ts_type = "unknown")]
  pub original: Option<crate::transport::JsOriginal>,
}

/// A lock just taken, as JS first sees it. The lock itself stays here, in its client's
/// table of held locks, under `handle` (also the address of its events).
#[napi(object)]
pub struct NativeGrant {
  pub handle: u32,
  pub token: String,
  pub owner: String,
  pub fence: BigInt,
  /// Whether the lock reports events of its own (heartbeats, the session monitor).
  pub events: bool,
}

/// The held locks of one client, by handle. A lock leaves the table when its release
/// succeeded, or when JS forgets it (lost, or ended by the client's close).
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<HashMap<u32, Lock>>>);

impl Held {
  /// Keeps `lock` and returns what JS needs of it; with `events`, its lease events go to
  /// `queue` from now on.
  pub fn add(&self, lock: Lock, queue: &Arc<Queue>, events: bool) -> NativeGrant {
    let grant = NativeGrant {
      handle: 0,
      token: lock.token().to_owned(),
      owner: lock.owner().to_owned(),
      fence: BigInt::from(lock.fence()),
      events,
    };
    NativeGrant {
      handle: self.keep(lock, queue, events),
      ..grant
    }
  }

  /// Keeps `lock` as `add` does, and returns only its handle (`acquireNow` passes the rest
  /// back without building an object).
  pub fn keep(&self, lock: Lock, queue: &Arc<Queue>, events: bool) -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    // In the table before its events flow: a probe's answer finds the lock there by handle.
    self.table().insert(handle, lock.clone());
    if events {
      // One sink for every lock of this client (made with its first lock), addressed by handle:
      // nothing per lock.
      lock.forward_events_tagged(handle, || {
        // Weak: the sink lives in the manager, which the locks in this table keep alive.
        let (queue, held) = (queue.clone(), self.downgrade());
        let sink: TaggedSink = Arc::new(move |handle, ev| queue.event(handle, &held, ev));
        sink
      });
    }
    handle
  }

  /// The table without keeping it alive.
  pub fn downgrade(&self) -> WeakHeld {
    WeakHeld(Arc::downgrade(&self.0))
  }

  fn table(&self) -> MutexGuard<'_, HashMap<u32, Lock>> {
    self.0.lock().unwrap_or_else(|e| e.into_inner())
  }

  pub fn get(&self, handle: u32) -> Option<Lock> {
    self.table().get(&handle).cloned()
  }

  pub fn remove(&self, handle: u32) {
    self.table().remove(&handle);
  }

  /// Releases lock `handle` at once where the store allows it (`lockReleaseNow`).
  pub fn release_now(&self, handle: u32) -> napi::Result<Option<bool>> {
    let Some(lock) = self.get(handle) else {
      return Ok(Some(false));
    };
    match lock.release_now() {
      None => Ok(None),
      Some(done) => {
        let ok = done.map_err(to_napi)?;
        self.remove(handle);
        Ok(Some(ok))
      }
    }
  }
}

/// A client's table of held locks, not kept alive by this handle (`Held::downgrade`).
#[derive(Clone)]
pub struct WeakHeld(Weak<Mutex<HashMap<u32, Lock>>>);

impl WeakHeld {
  /// Lock `handle`, while the table and the lock in it are still there.
  pub fn get(&self, handle: u32) -> Option<Lock> {
    self.0.upgrade().and_then(|table| Held(table).get(handle))
  }
}

pub fn event(ev: LeaseEvent) -> NativeEvent {
  let mut out = NativeEvent {
    kind: String::new(),
    ttl: None,
    remaining: None,
    reason: None,
    message: None,
    probe: None,
    original: None,
  };
  match ev {
    LeaseEvent::Refreshed { ttl } => {
      out.kind = "refreshed".into();
      out.ttl = Some(ttl.as_millis() as f64);
    }
    LeaseEvent::Error { message, original } => {
      out.kind = "error".into();
      out.original = crate::transport::js_original(original.as_ref());
      out.message = Some(ferrolock_core::redact::redact(&message));
    }
    LeaseEvent::Expiring { remaining } => {
      out.kind = "expiring".into();
      out.remaining = Some(remaining.as_millis() as f64);
    }
    LeaseEvent::Lost { reason } => {
      out.kind = "lost".into();
      out.reason = Some(reason.describe().into());
    }
    LeaseEvent::Released => out.kind = "released".into(),
    LeaseEvent::Probe(n) => {
      out.kind = "probe".into();
      out.probe = Some(n as f64);
    }
  }
  out
}

#[napi]
impl NativeClient {
  /// Whether lock `handle` was lost (false once it left the table).
  #[napi]
  pub fn lock_lost(&self, handle: u32) -> bool {
    self.held.get(handle).is_some_and(|l| l.is_lost())
  }

  /// Milliseconds left on the lease of lock `handle` as this process counts it.
  #[napi]
  pub fn lock_valid_for(&self, handle: u32) -> f64 {
    self
      .held
      .get(handle)
      .map_or(0.0, |l| l.valid_for().as_millis() as f64)
  }

  /// Lock `handle` is over for JS (lost): it leaves the table.
  #[napi]
  pub fn lock_forget(&self, handle: u32) {
    self.held.remove(handle);
  }

  /// Renews lock `handle` to `ttl` ms (default: the current ttl), optionally replacing the
  /// data; settles operation `op` with true, or false when the lock is no longer ours.
  #[napi]
  pub fn lock_extend(
    &self,
    op: u32,
    handle: u32,
    ttl: Option<f64>,
    data: Option<Either<String, Buffer>>,
  ) -> napi::Result<()> {
    let max = self.defaults.max_data_bytes;
    let data = data
      .map(|d| checked_data(d, "sendHeartbeat options.data", max))
      .transpose()?;
    let Some(lock) = self.held.get(handle) else {
      run(&self.queue, op, async { Ok(Value::Bool(false)) });
      return Ok(());
    };
    let ttl = match ttl {
      Some(t) => ms(t, "ttl", 1)?,
      None => lock.ttl(),
    };
    run(&self.queue, op, async move {
      let ok = lock.extend_with(ttl, data.as_ref()).await?;
      Ok(Value::Bool(ok))
    });
    Ok(())
  }

  /// Releases lock `handle`, optionally leaving data in the released record, or deleting the
  /// record (DynamoDB); settles operation `op` with true, or false when it was already gone.
  #[napi]
  pub fn lock_release(
    &self,
    op: u32,
    handle: u32,
    data: Option<Either<String, Buffer>>,
    delete_record: Option<bool>,
  ) -> napi::Result<()> {
    let max = self.defaults.max_data_bytes;
    let data = data
      .map(|d| checked_data(d, "release options.data", max))
      .transpose()?;
    let held = self.held.clone();
    let lock = held.get(handle);
    run(&self.queue, op, async move {
      let Some(lock) = lock else {
        return Ok(Value::Bool(false));
      };
      let ok = lock.release_with(data, delete_record).await?;
      held.remove(handle);
      Ok(Value::Bool(ok))
    });
    Ok(())
  }

  /// Releases lock `handle` at once where the store allows it (memory): true or false, as
  /// `lockRelease` settles; undefined when the store needs I/O (then call `lockRelease`).
  #[napi]
  pub fn lock_release_now(&self, handle: u32) -> napi::Result<Option<bool>> {
    self.held.release_now(handle)
  }
}
