//! The lock client as a JS object: one `LockManager` over the chosen store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use ferrolock_core::{DynamoStore, LockManager, MemoryStore, RedisStore, RedlockStore};
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use crate::error::to_napi;
use crate::lock::NativeLock;
use crate::options::{
  ms_arg, to_js, NativeAcquireOptions, NativeDynamoOptions, NativeRedisOptions,
  NativeRedlockOptions, NativeTableOptions,
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

/// Leak-check counters.
#[napi(object)]
pub struct NativeStats {
  pub pending: u32,
  pub held: u32,
  pub watched: u32,
  pub cancellable: u32,
}

#[napi]
pub struct NativeClient {
  manager: Arc<LockManager>,
  /// The DynamoDB store, for its table and record operations.
  dynamo: Option<Arc<DynamoStore>>,
  /// Cancellation handles of acquires in progress, by the id index.js gave them.
  cancels: Arc<Mutex<HashMap<u32, CancellationToken>>>,
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

#[napi]
impl NativeClient {
  /// The in-process store, shared by every memory client of this process.
  #[napi(factory)]
  pub fn memory() -> Self {
    Self::with(LockManager::new(MemoryStore::shared()))
  }

  /// One Redis server, or a Redis Cluster (`options.cluster`); connects on first use.
  #[napi(factory)]
  pub fn redis(options: NativeRedisOptions) -> napi::Result<Self> {
    let store = RedisStore::new(options.into_core()?).map_err(to_napi)?;
    Ok(Self::with(LockManager::new(Arc::new(store))))
  }

  /// Redlock over independent masters; connects on first use.
  #[napi(factory)]
  pub fn redlock(options: NativeRedlockOptions) -> napi::Result<Self> {
    let store = RedlockStore::new(options.into_core()?).map_err(to_napi)?;
    Ok(Self::with(LockManager::new(Arc::new(store))))
  }

  /// One DynamoDB table; the SDK client is made on first use.
  #[napi(factory)]
  pub fn dynamodb(options: NativeDynamoOptions) -> napi::Result<Self> {
    let store = Arc::new(DynamoStore::new(options.into_core()?).map_err(to_napi)?);
    let mut client = Self::with(LockManager::new(store.clone()));
    client.dynamo = Some(store);
    Ok(client)
  }

  fn dynamo(&self) -> napi::Result<&Arc<DynamoStore>> {
    self
      .dynamo
      .as_ref()
      .ok_or_else(|| crate::error::invalid("this method is only available on a dynamodb client"))
  }

  /// Creates the lock table and waits until it is ACTIVE; false when it existed.
  #[napi]
  pub async fn create_lock_table(&self, options: NativeTableOptions) -> napi::Result<bool> {
    let options = options.into_core()?;
    let store = self.dynamo()?;
    if self.manager.is_closed() {
      return Err(to_napi(ferrolock_core::LockError::Closed));
    }
    store.create_table(&options).await.map_err(to_napi)
  }

  /// Deletes the lock table and waits until it is gone; false when there was none.
  #[napi]
  pub async fn delete_lock_table(&self, timeout: Option<f64>) -> napi::Result<bool> {
    let timeout = match timeout {
      Some(t) => crate::options::ms_arg(t, "options.timeout")?,
      None => Duration::from_secs(300),
    };
    let store = self.dynamo()?;
    if self.manager.is_closed() {
      return Err(to_napi(ferrolock_core::LockError::Closed));
    }
    store.delete_table(timeout).await.map_err(to_napi)
  }

  /// The record of `name`, released or not (DynamoDB).
  #[napi]
  pub async fn get(&self, name: String) -> napi::Result<Option<NativeRecord>> {
    ferrolock_core::client::check_name(&name).map_err(to_napi)?;
    let store = self.dynamo()?;
    if self.manager.is_closed() {
      return Err(to_napi(ferrolock_core::LockError::Closed));
    }
    let record = store.get(&name).await.map_err(to_napi)?;
    Ok(record.map(|r| NativeRecord {
      owner: r.owner,
      fence: BigInt::from(r.fence),
      data: r.data.map(to_js),
      lease_duration: r.lease.as_millis() as f64,
      released: r.released,
      expired: r.expired,
      record_version_number: r.record_version,
      attributes: serde_json::Value::Object(r.attributes).to_string(),
    }))
  }

  fn with(manager: LockManager) -> Self {
    NativeClient {
      manager: Arc::new(manager),
      dynamo: None,
      cancels: Arc::new(Mutex::new(HashMap::new())),
    }
  }

  #[napi(getter)]
  pub fn kind(&self) -> String {
    self.manager.kind().to_owned()
  }

  /// Acquires `name`; null only for a single attempt (`wait` 0) that found the lock held.
  /// `id` names this call for `cancel`.
  #[napi]
  pub async fn acquire(
    &self,
    name: String,
    options: NativeAcquireOptions,
    id: u32,
  ) -> napi::Result<Option<NativeLock>> {
    let cancel = self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .entry(id)
      .or_default()
      .clone();
    let _guard = CancelGuard {
      id,
      cancels: self.cancels.clone(),
    };
    let options = options.into_core()?;
    let lock = self
      .manager
      .acquire(&name, options, cancel)
      .await
      .map_err(to_napi)?;
    Ok(lock.map(NativeLock::new))
  }

  /// Registers the cancellation handle of acquire `id` before the acquire starts, so a
  /// `cancel(id)` right after the call is never missed.
  #[napi]
  pub fn prepare(&self, id: u32) {
    self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .entry(id)
      .or_default();
  }

  /// Cancels the acquire with this id (it rejects with ERR_ABORTED).
  #[napi]
  pub fn cancel(&self, id: u32) {
    if let Some(token) = self
      .cancels
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .get(&id)
    {
      token.cancel();
    }
  }

  #[napi]
  pub async fn inspect(&self, name: String) -> napi::Result<Option<NativeLockInfo>> {
    let info = self.manager.inspect(&name).await.map_err(to_napi)?;
    Ok(info.map(|i| NativeLockInfo {
      owner: i.owner,
      remaining_ttl: i.remaining.map(|d| d.as_millis() as f64),
      fence: BigInt::from(i.fence),
      data: i.data.map(to_js),
    }))
  }

  /// One attempt under the caller's `token`, no lease kept (compat entries): the fence, or null
  /// when another owner holds the lock.
  #[napi]
  pub async fn claim(
    &self,
    name: String,
    token: String,
    owner: String,
    ttl: f64,
  ) -> napi::Result<Option<BigInt>> {
    let ttl = ms_arg(ttl, "ttl")?;
    let fence = self.manager.claim(&name, &token, &owner, ttl).await;
    Ok(fence.map_err(to_napi)?.map(BigInt::from))
  }

  /// Renews `name` if held under `token`.
  #[napi]
  pub async fn extend_token(&self, name: String, token: String, ttl: f64) -> napi::Result<bool> {
    let ttl = ms_arg(ttl, "ttl")?;
    let done = self.manager.extend_token(&name, &token, ttl).await;
    done.map_err(to_napi)
  }

  /// Releases `name` if held under `token`.
  #[napi]
  pub async fn release_token(&self, name: String, token: String) -> napi::Result<bool> {
    let done = self.manager.release_token(&name, &token).await;
    done.map_err(to_napi)
  }

  /// One plain DynamoDB request as wire JSON (the dynamo-lock drop-in's own client): resolves
  /// `{"ok": output}` or `{"err": {"code", "message"}}`.
  #[napi]
  pub async fn raw(&self, operation: String, params: String) -> napi::Result<String> {
    let store = self.dynamo()?.clone();
    let params: serde_json::Value =
      serde_json::from_str(&params).map_err(|_| crate::error::invalid("params must be JSON"))?;
    Ok(
      match store.raw(&operation, &params).await {
        Ok(out) => serde_json::json!({ "ok": out }),
        Err(e) => serde_json::json!({ "err": { "code": e.code, "message": e.message } }),
      }
      .to_string(),
    )
  }

  #[napi]
  pub async fn close(&self) {
    self.manager.close().await;
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
