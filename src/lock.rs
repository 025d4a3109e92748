//! A held lock as a JS object. index.js wraps it in an EventEmitter.

use ferrolock_core::{LeaseEvent, Lock};
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Mutex;

use crate::error::to_napi;
use crate::options::{ms_arg, payload};

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
  events: Mutex<Option<UnboundedReceiver<LeaseEvent>>>,
}

impl NativeLock {
  pub fn new(lock: Lock) -> Self {
    let events = Mutex::new(lock.take_events());
    NativeLock { lock, events }
  }
}

fn event(ev: LeaseEvent) -> NativeEvent {
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

  /// The next lease event, or null when the lock is over. Calling it again with the number of
  /// the last probe answers that probe (proof that the JS thread is alive).
  #[napi]
  pub async fn next_event(&self, ack: f64) -> Option<NativeEvent> {
    if ack > 0.0 {
      self.lock.ack_probe(ack as u64);
    }
    let mut events = self.events.lock().await;
    events.as_mut()?.recv().await.map(event)
  }

  /// Renews the lease to `ttl` ms (default: the current ttl), optionally replacing the data.
  #[napi]
  pub async fn extend(
    &self,
    ttl: Option<f64>,
    data: Option<Either<String, Buffer>>,
  ) -> napi::Result<bool> {
    let ttl = match ttl {
      Some(t) => ms_arg(t, "ttl")?,
      None => self.lock.ttl(),
    };
    let data = data.map(payload);
    self
      .lock
      .extend_with(ttl, data.as_ref())
      .await
      .map_err(to_napi)
  }

  /// Releases the lock, optionally leaving data in the released record, or deleting the record
  /// (DynamoDB).
  #[napi]
  pub async fn release(
    &self,
    data: Option<Either<String, Buffer>>,
    delete_record: Option<bool>,
  ) -> napi::Result<bool> {
    self
      .lock
      .release_with(data.map(payload), delete_record)
      .await
      .map_err(to_napi)
  }
}
