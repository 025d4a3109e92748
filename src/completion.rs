//! The one way results reach JS: every finished operation and every lock event goes into one
//! queue per JS thread, and one weak threadsafe function wakes that thread. Wake-ups coalesce:
//! while one is on its way, more results only join the queue, and the JS callback settles all
//! of them in one turn. There is no threadsafe function, channel or promise per call.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ferrolock_core::{LeaseEvent, LockError};
use napi::bindgen_prelude::{BigInt, Function, Null, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Status};
use napi_derive::napi;

use crate::client::{NativeLockInfo, NativeRecord};
use crate::lock::{NativeEvent, NativeGrant, WeakHeld};

/// What an entry of the queue is: the settled value of operation `id`, its error, or an
/// event of the lock whose `handle` is `id`.
const RESOLVE: u32 = 0;
const REJECT: u32 = 1;
const EVENT: u32 = 2;

/// A core error as JS reads it: index.js lifts it into a typed Error subclass.
#[napi(object, object_from_js = false)]
pub struct NativeError {
  pub code: String,
  pub message: String,
  pub cause: Option<String>,
  /// The caller's client object's own error behind the failure (its `cause`), if any.
  #[napi(ts_type = "unknown")]
  pub original: Option<crate::transport::JsOriginal>,
}

impl From<LockError> for NativeError {
  fn from(err: LockError) -> Self {
    let (message, cause) = crate::error::texts(&err);
    NativeError {
      code: err.code().to_owned(),
      message,
      cause,
      original: crate::transport::js_original(ferrolock_core::transport::original_of(&err)),
    }
  }
}

/// Every kind of value an operation settles with.
pub enum Value {
  Undefined,
  Null,
  Number(u32),
  Bool(bool),
  Fence(u64),
  Str(String),
  Grant(NativeGrant),
  Info(NativeLockInfo),
  Record(NativeRecord),
  Event(NativeEvent),
  Error(NativeError),
}

impl ToNapiValue for Value {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    match val {
      Value::Undefined => <()>::to_napi_value(env, ()),
      Value::Null => Null::to_napi_value(env, Null),
      Value::Number(n) => u32::to_napi_value(env, n),
      Value::Bool(b) => bool::to_napi_value(env, b),
      Value::Fence(f) => BigInt::to_napi_value(env, BigInt::from(f)),
      Value::Str(s) => String::to_napi_value(env, s),
      Value::Grant(g) => NativeGrant::to_napi_value(env, g),
      Value::Info(i) => NativeLockInfo::to_napi_value(env, i),
      Value::Record(r) => NativeRecord::to_napi_value(env, r),
      Value::Event(e) => NativeEvent::to_napi_value(env, e),
      Value::Error(e) => NativeError::to_napi_value(env, e),
    }
  }
}

enum Entry {
  Settled(u32, u32, Value),
  /// A heartbeat asks whether the JS thread is alive: draining the queue is the answer (to
  /// probe `n` of the lock under `handle` in `held`).
  Probe(WeakHeld, u32, u64),
}

/// Wakes the JS thread; weak, so a queue with nothing in flight never keeps the process alive
/// (index.js keeps it alive while operations are pending or locks are held).
type WakeFn = ThreadsafeFunction<(), (), Vec<Value>, Status, false, true>;

pub struct Queue {
  items: Mutex<Vec<Entry>>,
  scheduled: AtomicBool,
  wake: Mutex<Option<WakeFn>>,
}

impl Queue {
  fn push(&self, entry: Entry) {
    self
      .items
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .push(entry);
    if !self.scheduled.swap(true, Ordering::AcqRel) {
      if let Some(wake) = &*self.wake.lock().unwrap_or_else(|e| e.into_inner()) {
        wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
      }
    }
  }

  /// Settles operation `op` with `result`.
  pub fn settle(&self, op: u32, result: Result<Value, LockError>) {
    self.push(match result {
      Ok(value) => Entry::Settled(op, RESOLVE, value),
      Err(err) => Entry::Settled(op, REJECT, Value::Error(err.into())),
    });
  }

  /// Passes on an event of the lock `handle`. `Released` is not passed on: JS ends a lock
  /// itself when its release (or the client's close) settles. `Refreshed`, the one event of
  /// every heartbeat, goes as its ttl alone (a number): no object per renewal.
  pub fn event(&self, handle: u32, held: &WeakHeld, event: LeaseEvent) {
    match event {
      LeaseEvent::Released => {}
      LeaseEvent::Refreshed { ttl } => self.push(Entry::Settled(
        handle,
        EVENT,
        Value::Number(ttl.as_millis().min(u32::MAX as u128) as u32),
      )),
      LeaseEvent::Probe(n) => self.push(Entry::Probe(held.clone(), handle, n)),
      event => self.push(Entry::Settled(
        handle,
        EVENT,
        Value::Event(crate::lock::event(event)),
      )),
    }
  }

  /// Takes everything queued, as the flat list `[id, kind, value, id, kind, value, ...]`.
  fn drain(&self) -> Vec<Value> {
    // Cleared before taking: a result pushed from now on schedules a new wake-up.
    self.scheduled.store(false, Ordering::Release);
    let items = std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()));
    let mut out = Vec::with_capacity(items.len() * 3);
    for entry in items {
      match entry {
        Entry::Settled(id, kind, value) => {
          out.push(Value::Number(id));
          out.push(Value::Number(kind));
          out.push(value);
        }
        Entry::Probe(held, handle, n) => {
          if let Some(lock) = held.get(handle) {
            lock.ack_probe(n);
          }
        }
      }
    }
    out
  }
}

/// The queue of one JS thread (one per Node.js environment: the main thread, each worker).
#[napi]
pub struct Completions {
  queue: Arc<Queue>,
}

#[napi]
impl Completions {
  /// `onReady(batch)` is called on this thread with `[id, kind, value, ...]` whenever results
  /// are waiting (kind 0: operation `id` resolved with value; 1: rejected with the error
  /// `{ code, message, cause }`; 2: an event of the lock whose handle is `id`).
  #[napi(constructor)]
  pub fn new(on_ready: Function<Vec<Value>, ()>) -> napi::Result<Self> {
    let queue = Arc::new(Queue {
      items: Mutex::new(Vec::new()),
      scheduled: AtomicBool::new(false),
      wake: Mutex::new(None),
    });
    let weak: Weak<Queue> = Arc::downgrade(&queue);
    let wake = on_ready
      .build_threadsafe_function::<()>()
      .callee_handled::<false>()
      .weak::<true>()
      .build_callback(move |_ctx| Ok(weak.upgrade().map(|q| q.drain()).unwrap_or_default()))?;
    *queue.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    Ok(Completions { queue })
  }
}

impl Completions {
  pub fn queue(&self) -> Arc<Queue> {
    self.queue.clone()
  }
}

/// Runs `future` on the I/O thread and settles operation `op` with its outcome.
pub fn run<F>(queue: &Arc<Queue>, op: u32, future: F)
where
  F: Future<Output = Result<Value, LockError>> + Send + 'static,
{
  let queue = queue.clone();
  crate::runtime::spawn(async move {
    // A client object's error behind a failure goes with it (ferrolock_core::transport).
    let (result, original) = ferrolock_core::transport::recording(future).await;
    let result = result.map_err(|e| ferrolock_core::transport::attach(e, original.as_ref()));
    queue.settle(op, result);
  });
}
