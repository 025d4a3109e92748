//! A held lock as a JS object. index.js wraps it in an EventEmitter; its events reach JS
//! through the thread's completion queue, addressed by `handle`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ferrolock_core::{LeaseEvent, Lock};
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;

use crate::completion::{run, Queue, Value};
use crate::error::to_napi;
use crate::options::{ms, payload};

/// One lease event for JS.
#[napi(object)]
pub struct NativeEvent {
  /// refreshed | error | expiring | lost | released | probe
  pub kind: String,
  pub ttl: Option<f64>,
  pub remaining: Option<f64>,
  pub reason: Option<String>,
  pub message: Option<String>,
  pub probe: Option<f64>,
}

#[napi]
pub struct NativeLock {
  lock: Lock,
  queue: Arc<Queue>,
  handle: u32,
  events: bool,
}

impl NativeLock {
  /// Wraps `lock`; with `events` (it has heartbeats or a session monitor), its lease events
  /// go to `queue` from now on.
  pub fn new(lock: Lock, queue: Arc<Queue>, events: bool) -> Self {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    if events {
      let sink_queue = queue.clone();
      let weak = lock.downgrade();
      lock.forward_events(Arc::new(move |ev| sink_queue.event(handle, &weak, ev)));
    }
    NativeLock {
      lock,
      queue,
      handle,
      events,
    }
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
  };
  match ev {
    LeaseEvent::Refreshed { ttl } => {
      out.kind = "refreshed".into();
      out.ttl = Some(ttl.as_millis() as f64);
    }
    LeaseEvent::Error { message } => {
      out.kind = "error".into();
      out.message = Some(message);
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
impl NativeLock {
  #[napi(getter)]
  pub fn name(&self) -> String {
    self.lock.name().to_owned()
  }

  #[napi(getter)]
  pub fn token(&self) -> String {
    self.lock.token().to_owned()
  }

  #[napi(getter)]
  pub fn owner(&self) -> String {
    self.lock.owner().to_owned()
  }

  #[napi(getter)]
  pub fn fence(&self) -> BigInt {
    BigInt::from(self.lock.fence())
  }

  #[napi(getter)]
  pub fn lost(&self) -> bool {
    self.lock.is_lost()
  }

  /// Milliseconds left on the lease as this process counts it.
  #[napi(getter)]
  pub fn valid_for(&self) -> f64 {
    self.lock.valid_for().as_millis() as f64
  }

  /// Whether the lock reports events of its own (heartbeats, the session monitor): then they
  /// come through the completion queue under `handle` until the lock is over.
  #[napi(getter)]
  pub fn events(&self) -> bool {
    self.events
  }

  /// The number its events carry in the completion queue.
  #[napi(getter)]
  pub fn handle(&self) -> u32 {
    self.handle
  }

  /// Renews the lease to `ttl` ms (default: the current ttl), optionally replacing the data;
  /// settles operation `op` with true, or false when the lock is no longer ours.
  #[napi]
  pub fn extend(
    &self,
    op: u32,
    ttl: Option<f64>,
    data: Option<Either<String, Buffer>>,
  ) -> napi::Result<()> {
    let ttl = match ttl {
      Some(t) => ms(t, "ttl", 1)?,
      None => self.lock.ttl(),
    };
    let data = data.map(payload);
    let lock = self.lock.clone();
    run(&self.queue, op, async move {
      let ok = lock.extend_with(ttl, data.as_ref()).await?;
      Ok(Value::Bool(ok))
    });
    Ok(())
  }

  /// Releases the lock, optionally leaving data in the released record, or deleting the record
  /// (DynamoDB); settles operation `op` with true, or false when it was already gone.
  #[napi]
  pub fn release(
    &self,
    op: u32,
    data: Option<Either<String, Buffer>>,
    delete_record: Option<bool>,
  ) {
    let lock = self.lock.clone();
    let data = data.map(payload);
    run(&self.queue, op, async move {
      let ok = lock.release_with(data, delete_record).await?;
      Ok(Value::Bool(ok))
    });
  }

  /// Releases at once where the store allows it (memory): true or false, as `release`
  /// settles; undefined when the store needs I/O (then call `release`).
  #[napi]
  pub fn release_now(&self) -> napi::Result<Option<bool>> {
    match self.lock.release_now() {
      None => Ok(None),
      Some(done) => done.map(Some).map_err(to_napi),
    }
  }
}
