//! The lock client as a JS object: one `LockManager` over the chosen store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrolock_core::{LockManager, MemoryStore, RedisStore, RedlockStore};
use napi::bindgen_prelude::BigInt;
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use crate::error::to_napi;
use crate::lock::NativeLock;
use crate::options::{NativeAcquireOptions, NativeRedisOptions, NativeRedlockOptions};

/// A read-only view of a lock.
#[napi(object)]
pub struct NativeLockInfo {
  pub owner: String,
  /// Milliseconds left, or null when the store does not know.
  pub remaining_ttl: Option<f64>,
  pub fence: BigInt,
  pub data: Option<String>,
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
    let store = RedisStore::new(options.into()).map_err(to_napi)?;
    Ok(Self::with(LockManager::new(Arc::new(store))))
  }

  /// Redlock over independent masters; connects on first use.
  #[napi(factory)]
  pub fn redlock(options: NativeRedlockOptions) -> napi::Result<Self> {
    let store = RedlockStore::new(options.into_core()?).map_err(to_napi)?;
    Ok(Self::with(LockManager::new(Arc::new(store))))
  }

  fn with(manager: LockManager) -> Self {
    NativeClient {
      manager: Arc::new(manager),
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
      data: i.data,
    }))
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
