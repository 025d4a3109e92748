//! The lock client as a JS object: one `LockManager` over the chosen store.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use ferrolock_core::{AcquireOptions, LockError};
use ferrolock_core::{DynamoStore, FileStore, LockManager, MemoryStore, RedisStore, RedlockStore};
use napi::bindgen_prelude::{BigInt, Buffer, Either, Float64ArraySlice};
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use crate::completion::{run, Completions, Queue, Value};
use crate::dynamo_options::{NativeDynamoOptions, NativeTableOptions};
use crate::error::to_napi;
use crate::file_options::NativeFileOptions;
use crate::lock::Held;
use crate::options::{
  ms, packed, to_js, AcquireDefaults, NativeAcquireOptions, NativeClientOptions,
  NativeRedisOptions, NativeRedlockOptions,
};

/// A read-only view of a lock.
#[napi(object)]
pub struct NativeLockInfo {
  pub owner: String,
  /// Milliseconds left, or null when the store does not know.
  pub remaining_ttl: Option<f64>,
  pub fence: BigInt,
  pub data: Option<Either<String, Buffer>>,
}

/// A DynamoDB lock record, released or not.
#[napi(object)]
pub struct NativeRecord {
  pub owner: String,
  pub fence: BigInt,
  pub data: Option<Either<String, Buffer>>,
  pub lease_duration: f64,
  pub released: bool,
  pub expired: bool,
  pub record_version_number: String,
  /// More attributes, as a JSON object.
  pub attributes: String,
}

/// What a client's store can do, so that JS never compares backend names.
#[napi(object)]
#[derive(Clone, Copy)]
pub struct NativeCapabilities {
  /// Lock data may be a Buffer (else only a string).
  pub binary_data: bool,
  /// The DynamoDB acquire, heartbeat and release options apply.
  pub dynamo_options: bool,
  /// The lock table methods apply: `createLockTable`, `deleteLockTable`, `get`.
  pub tables: bool,
  /// A free lock is taken and released inside the JS call (`acquireNow`, `releaseNow`).
  pub immediate: bool,
}

/// Leak-check counters.
#[napi(object)]
pub struct NativeStats {
  pub pending: u32,
  pub held: u32,
  pub watched: u32,
  pub cancellable: u32,
}

/// Redis, Redis Cluster and Redlock: text data, no tables, every decision over the network.
const REDIS: NativeCapabilities = NativeCapabilities {
  binary_data: false,
  dynamo_options: false,
  tables: false,
  immediate: false,
};

#[napi]
pub struct NativeClient {
  manager: Arc<LockManager>,
  /// The DynamoDB store, for its table and record operations.
  dynamo: Option<Arc<DynamoStore>>,
  /// Cancellation handles of acquires in progress, by operation number.
  cancels: Arc<Mutex<HashMap<u32, CancellationToken>>>,
  /// Where results and lock events go (the JS thread that made this client).
  pub(crate) queue: Arc<Queue>,
  /// The locks held through this client, by handle.
  pub(crate) held: Held,
  /// What acquires default to.
  pub(crate) defaults: AcquireDefaults,
  capabilities: NativeCapabilities,
  /// Its number for `immediateAcquire` and `immediateRelease` (0: its store has no
  /// immediate path).
  immediate: u32,
}

/// What the immediate path of one client needs, shared with its `NativeClient`.
#[cfg_attr(test, allow(dead_code))] // read by the immediate calls, called from JS only
struct Immediate {
  manager: Arc<LockManager>,
  queue: Arc<Queue>,
  held: Held,
  defaults: AcquireDefaults,
}

thread_local! {
  /// The clients of this JS thread with an immediate path, by number - 1 (a freed slot is
  /// reused). The immediate calls are free functions that find their client here: a method
  /// call of a class instance costs more than the acquire itself (napi-rs unwraps `this`,
  /// checks its type tag and registers the borrow in a global table, each call).
  static IMMEDIATE: RefCell<Vec<Option<Rc<Immediate>>>> = const { RefCell::new(Vec::new()) };
}

/// Registers `client` for the immediate calls: its number.
fn register_immediate(client: Immediate) -> u32 {
  IMMEDIATE.with_borrow_mut(|all| {
    let entry = Some(Rc::new(client));
    let index = match all.iter().position(Option::is_none) {
      Some(free) => {
        all[free] = entry;
        free
      }
      None => {
        all.push(entry);
        all.len() - 1
      }
    };
    index as u32 + 1
  })
}

/// The client registered under `id` on this thread.
#[cfg_attr(test, allow(dead_code))] // called from JS only
fn immediate(id: u32) -> napi::Result<Rc<Immediate>> {
  let found = IMMEDIATE.with_borrow(|all| {
    let index = (id as usize).checked_sub(1)?;
    all.get(index).cloned().flatten()
  });
  found.ok_or_else(|| crate::error::invalid("not a client with an immediate path"))
}

impl Drop for NativeClient {
  fn drop(&mut self) {
    if self.immediate == 0 {
      return;
    }
    let index = self.immediate as usize - 1;
    // Finalized on the thread that made it; `try_` as the thread may be exiting.
    let _ = IMMEDIATE.try_with(|all| {
      if let Ok(mut all) = all.try_borrow_mut() {
        if let Some(slot) = all.get_mut(index) {
          *slot = None;
        }
      }
    });
  }
}

struct CancelGuard {
  id: u32,
  cancels: Arc<Mutex<HashMap<u32, CancellationToken>>>,
}

impl Drop for CancelGuard {
  fn drop(&mut self) {
    self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .remove(&self.id);
  }
}

/// Whether a lock acquired with `options` reports events of its own: heartbeats, or the
/// session monitor of `safeTime`.
fn has_events(options: &AcquireOptions) -> bool {
  options.auto_extend || options.safe_time.is_some()
}

/// Operations of this client that a closed client refuses.
fn open(manager: &LockManager) -> Result<(), LockError> {
  if manager.is_closed() {
    return Err(LockError::Closed);
  }
  Ok(())
}

/// The bound of a request through a caller's Redis client object when no `requestTimeout` is
/// given: above the transport's own 10 s, whose error names the client object.
const CLIENT_OBJECT_TIMEOUT: Duration = Duration::from_secs(11);

#[napi]
impl NativeClient {
  /// The in-process store, shared by every memory client of this process.
  /// `defaults`: the client's own acquire defaults (`owner`, Redlock's retry settings).
  #[napi(factory)]
  pub fn memory(
    completions: &Completions,
    defaults: Option<NativeClientOptions>,
  ) -> napi::Result<Self> {
    let capabilities = NativeCapabilities {
      binary_data: true,
      dynamo_options: false,
      tables: false,
      immediate: true,
    };
    let defaults = AcquireDefaults::from_options(defaults)?;
    Ok(Self::with(
      LockManager::with_request_timeout(MemoryStore::shared(), defaults.request_timeout),
      completions,
      defaults,
      capabilities,
    ))
  }

  /// One Redis server, or a Redis Cluster (`options.cluster`); connects on first use.
  #[napi(factory)]
  pub fn redis(
    completions: &Completions,
    options: NativeRedisOptions,
    defaults: Option<NativeClientOptions>,
  ) -> napi::Result<Self> {
    let options = options.into_core("options.redis")?;
    let defaults = AcquireDefaults::from_options(defaults)?;
    // A caller's client object answers within its own 10 s unless requestTimeout says less
    // (the drop-in entries keep their old packages' behaviour).
    let limit = if options.client.is_some() && !defaults.request_timeout_given {
      CLIENT_OBJECT_TIMEOUT
    } else {
      defaults.request_timeout
    };
    let store = RedisStore::new(options).map_err(to_napi)?;
    Ok(Self::with(
      LockManager::with_request_timeout(Arc::new(store), limit),
      completions,
      defaults,
      REDIS,
    ))
  }

  /// Redlock over independent masters; connects on first use.
  #[napi(factory)]
  pub fn redlock(
    completions: &Completions,
    options: NativeRedlockOptions,
    defaults: Option<NativeClientOptions>,
  ) -> napi::Result<Self> {
    let options = options.into_core()?;
    // Redlock's requestTimeout is per master; one operation takes up to a few rounds of it
    // (an attempt, the fence raise, undoing a minority), so it is bounded by four.
    let limit = options.request_timeout * 4;
    let store = RedlockStore::new(options).map_err(to_napi)?;
    Ok(Self::with(
      LockManager::with_request_timeout(Arc::new(store), limit),
      completions,
      AcquireDefaults::from_options(defaults)?,
      REDIS,
    ))
  }

  /// Locks shared by the processes of one host through files in a directory; the directory
  /// is made and checked on first use.
  #[napi(factory)]
  pub fn file(
    completions: &Completions,
    options: NativeFileOptions,
    defaults: Option<NativeClientOptions>,
  ) -> napi::Result<Self> {
    let store = FileStore::new(options.into_core()?).map_err(to_napi)?;
    let capabilities = NativeCapabilities {
      binary_data: true,
      dynamo_options: false,
      tables: false,
      immediate: true,
    };
    Ok(Self::with(
      LockManager::new(Arc::new(store)),
      completions,
      AcquireDefaults::from_options(defaults)?,
      capabilities,
    ))
  }

  /// One DynamoDB table; the SDK client is made on first use. Locks default to its
  /// `leaseDuration` and `heartbeatPeriod`.
  #[napi(factory)]
  pub fn dynamodb(
    completions: &Completions,
    options: NativeDynamoOptions,
    defaults: Option<NativeClientOptions>,
  ) -> napi::Result<Self> {
    let defaults = options.defaults(AcquireDefaults::from_options(defaults)?)?;
    let options = options.into_core()?;
    let limit = options.request_timeout;
    let store = Arc::new(DynamoStore::new(options).map_err(to_napi)?);
    let capabilities = NativeCapabilities {
      binary_data: true,
      dynamo_options: true,
      tables: true,
      immediate: false,
    };
    let mut client = Self::with(
      LockManager::with_request_timeout(store.clone(), limit),
      completions,
      defaults,
      capabilities,
    );
    client.dynamo = Some(store);
    Ok(client)
  }

  fn dynamo(&self) -> napi::Result<Arc<DynamoStore>> {
    self
      .dynamo
      .clone()
      .ok_or_else(|| crate::error::invalid("this method is only available on a dynamodb client"))
  }

  /// Creates the lock table and waits until it is ACTIVE; settles `op` with false when it
  /// existed.
  #[napi]
  pub fn create_lock_table(&self, op: u32, options: NativeTableOptions) -> napi::Result<()> {
    let options = options.into_core()?;
    let store = self.dynamo()?;
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      open(&manager)?;
      Ok(Value::Bool(store.create_table(&options).await?))
    });
    Ok(())
  }

  /// Deletes the lock table and waits until it is gone; settles `op` with false when there
  /// was none.
  #[napi]
  pub fn delete_lock_table(&self, op: u32, timeout: Option<f64>) -> napi::Result<()> {
    let timeout = match timeout {
      Some(t) => ms(t, "deleteLockTable options.timeout", 1)?,
      None => Duration::from_secs(300),
    };
    let store = self.dynamo()?;
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      open(&manager)?;
      Ok(Value::Bool(store.delete_table(timeout).await?))
    });
    Ok(())
  }

  /// The record of `name`, released or not (DynamoDB).
  #[napi]
  pub fn get(&self, op: u32, name: String) -> napi::Result<()> {
    ferrolock_core::client::check_name(&name).map_err(to_napi)?;
    let store = self.dynamo()?;
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      open(&manager)?;
      Ok(match store.get(&name).await? {
        None => Value::Null,
        Some(r) => Value::Record(NativeRecord {
          owner: r.owner,
          fence: BigInt::from(r.fence),
          data: r.data.map(to_js),
          lease_duration: r.lease.as_millis() as f64,
          released: r.released,
          expired: r.expired,
          record_version_number: r.record_version,
          attributes: serde_json::Value::Object(r.attributes).to_string(),
        }),
      })
    });
    Ok(())
  }

  fn with(
    manager: LockManager,
    completions: &Completions,
    defaults: AcquireDefaults,
    capabilities: NativeCapabilities,
  ) -> Self {
    let manager = Arc::new(manager);
    let queue = completions.queue();
    let held = Held::default();
    let immediate = if capabilities.immediate {
      register_immediate(Immediate {
        manager: manager.clone(),
        queue: queue.clone(),
        held: held.clone(),
        defaults: defaults.clone(),
      })
    } else {
      0
    };
    NativeClient {
      manager,
      dynamo: None,
      cancels: Arc::new(Mutex::new(HashMap::new())),
      queue,
      held,
      defaults,
      capabilities,
      immediate,
    }
  }

  /// The number of this client for `immediateAcquire` and `immediateRelease`; 0 when its
  /// store has no immediate path.
  #[napi(getter)]
  pub fn immediate_id(&self) -> u32 {
    self.immediate
  }

  /// `name` and `options` checked and resolved against this client's defaults.
  fn options(
    &self,
    name: &str,
    options: Option<NativeAcquireOptions>,
    try_only: bool,
  ) -> napi::Result<AcquireOptions> {
    ferrolock_core::client::check_name(name).map_err(to_napi)?;
    options
      .unwrap_or_else(NativeAcquireOptions::empty)
      .into_core(&self.defaults, try_only)
  }

  /// What this client's store can do.
  #[napi(getter)]
  pub fn capabilities(&self) -> NativeCapabilities {
    self.capabilities
  }

  #[napi(getter)]
  pub fn kind(&self) -> String {
    self.manager.kind().to_owned()
  }

  /// Acquires `name` (`tryOnly`: one attempt); settles `op` with the lock, or null only for a
  /// single attempt that found the lock held. `cancel(op)` aborts it. Bad input throws at
  /// once.
  #[napi]
  pub fn acquire(
    &self,
    op: u32,
    name: String,
    options: Option<NativeAcquireOptions>,
    try_only: bool,
  ) -> napi::Result<()> {
    let options = self.options(&name, options, try_only)?;
    let events = has_events(&options);
    let cancel = self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .entry(op)
      .or_default()
      .clone();
    let guard = CancelGuard {
      id: op,
      cancels: self.cancels.clone(),
    };
    let manager = self.manager.clone();
    let queue = self.queue.clone();
    let held = self.held.clone();
    run(&self.queue, op, async move {
      let _guard = guard;
      let lock = manager.acquire(&name, options, cancel).await?;
      Ok(match lock {
        Some(lock) => Value::Grant(held.add(lock, &queue, events)),
        None => Value::Null,
      })
    });
    Ok(())
  }

  /// Checks `name` and `options` as `acquire` would, and does nothing else: throws what
  /// `acquire` would throw for them.
  #[napi]
  pub fn check(
    &self,
    name: String,
    options: Option<NativeAcquireOptions>,
    try_only: bool,
  ) -> napi::Result<()> {
    self.options(&name, options, try_only).map(drop)
  }

  /// Registers the cancellation handle of acquire `op` before the acquire starts, so a
  /// `cancel(op)` right after the call is never missed.
  #[napi]
  pub fn prepare(&self, op: u32) {
    self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .entry(op)
      .or_default();
  }

  /// Cancels the acquire `op` (it rejects with ERR_ABORTED).
  #[napi]
  pub fn cancel(&self, op: u32) {
    if let Some(token) = self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .get(&op)
    {
      token.cancel();
    }
  }

  /// Reads `name`: settles `op` with its info, or null when it is free.
  #[napi]
  pub fn inspect(&self, op: u32, name: String) {
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      Ok(match manager.inspect(&name).await? {
        None => Value::Null,
        Some(i) => Value::Info(NativeLockInfo {
          owner: i.owner,
          remaining_ttl: i.remaining.map(|d| d.as_millis() as f64),
          fence: BigInt::from(i.fence),
          data: i.data.map(to_js),
        }),
      })
    });
  }

  /// One attempt under the caller's `token`, no lease kept (compat entries): settles `op`
  /// with the fence, or null when another owner holds the lock.
  #[napi]
  pub fn claim(
    &self,
    op: u32,
    name: String,
    token: String,
    owner: String,
    ttl: f64,
  ) -> napi::Result<()> {
    let ttl = ms(ttl, "ttl", 1)?;
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      Ok(match manager.claim(&name, &token, &owner, ttl).await? {
        Some(fence) => Value::Fence(fence),
        None => Value::Null,
      })
    });
    Ok(())
  }

  /// Renews `name` if held under `token`.
  #[napi]
  pub fn extend_token(&self, op: u32, name: String, token: String, ttl: f64) -> napi::Result<()> {
    let ttl = ms(ttl, "ttl", 1)?;
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      Ok(Value::Bool(manager.extend_token(&name, &token, ttl).await?))
    });
    Ok(())
  }

  /// Releases `name` if held under `token`.
  #[napi]
  pub fn release_token(&self, op: u32, name: String, token: String) {
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      Ok(Value::Bool(manager.release_token(&name, &token).await?))
    });
  }

  /// One plain DynamoDB request as wire JSON (the dynamo-lock drop-in's own client): settles
  /// `op` with `{"ok": output}` or `{"err": {"code", "message"}}`.
  #[napi]
  pub fn raw(&self, op: u32, operation: String, params: String) -> napi::Result<()> {
    let store = self.dynamo()?;
    let params: serde_json::Value =
      serde_json::from_str(&params).map_err(|_| crate::error::invalid("params must be JSON"))?;
    run(&self.queue, op, async move {
      let reply = match crate::dynamo_lock_db::request(&store, &operation, &params).await {
        Ok(out) => serde_json::json!({ "ok": out }),
        Err(e) => serde_json::json!({ "err": { "code": e.code, "message": e.message } }),
      };
      Ok(Value::Str(reply.to_string()))
    });
    Ok(())
  }

  /// Rejects pending acquires, releases every held lock and closes the store; settles `op`.
  #[napi]
  pub fn close(&self, op: u32) {
    let manager = self.manager.clone();
    run(&self.queue, op, async move {
      manager.close().await;
      Ok(Value::Undefined)
    });
  }

  #[napi]
  pub fn stats(&self) -> NativeStats {
    let s = self.manager.stats();
    NativeStats {
      pending: s.pending as u32,
      held: s.held as u32,
      watched: s.watched as u32,
      cancellable: self.cancels.lock().map(|c| c.len() as u32).unwrap_or(0),
    }
  }
}

/// One attempt done at once by client `client` (its `immediateId`), where the store allows it
/// (memory, file), with the options packed in `slots` (see `crate::options::packed`): the
/// lock's token, with its handle, fence and whether it reports events written to `slots`; null
/// when it is held and it is a single attempt; undefined when it cannot be decided now (then
/// call `acquire`). Bad input throws.
#[napi]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn immediate_acquire(
  client: u32,
  name: String,
  mut slots: Float64ArraySlice<'_>,
  owner: Option<String>,
  data: Option<Either<String, Buffer>>,
) -> napi::Result<Value> {
  let client = immediate(client)?;
  // SAFETY: the array is lib/options/acquire.js's own scratch; JS runs nothing while this
  // call does, so nothing else reads or writes it meanwhile.
  let slots = unsafe { slots.as_mut() };
  let (options, try_only) = NativeAcquireOptions::from_packed(slots, owner, data)?;
  ferrolock_core::client::check_name(&name).map_err(to_napi)?;
  let options = options.into_core(&client.defaults, try_only)?;
  let events = has_events(&options);
  // Only a heartbeat or a session monitor spawns a task: enter the runtime for them alone.
  let outcome = if events {
    crate::runtime::enter(|| client.manager.acquire_now(&name, &options))
  } else {
    client.manager.acquire_now(&name, &options)
  };
  match outcome {
    None => Ok(Value::Undefined),
    Some(Err(err)) => Err(to_napi(err)),
    Some(Ok(None)) => Ok(Value::Null),
    Some(Ok(Some(lock))) => {
      let token = lock.token().to_owned();
      let fence = lock.fence();
      slots[packed::HANDLE] = f64::from(client.held.keep(lock, &client.queue, events));
      slots[packed::EVENTS] = if events { 1.0 } else { 0.0 };
      // SAFETY: `FENCE` is inside the slice (`from_packed` checked its length), and a u64
      // has the size and alignment of an f64. Written as an integer, so its bits stay as
      // they are (an f64 store could change the bits of a NaN).
      unsafe {
        slots
          .as_mut_ptr()
          .cast::<u64>()
          .add(packed::FENCE)
          .write(fence)
      };
      Ok(Value::Str(token))
    }
  }
}

/// Releases lock `handle` of client `client` (its `immediateId`) at once where the store
/// allows it, as `lockReleaseNow` does: true or false; undefined when the store needs I/O.
#[napi]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn immediate_release(client: u32, handle: u32) -> napi::Result<Option<bool>> {
  immediate(client)?.held.release_now(handle)
}
