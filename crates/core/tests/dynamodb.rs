//! DynamoDB store: takeover by record version, request counts, tables, data and attributes.
//! Runs against dynalite started on a free port.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferrolock_core::{
  Acquire, AcquireExtras, AcquireOptions, AcquireRequest, Billing, DynamoOptions, DynamoStore,
  LeaseEvent, LockError, LockInfo, LockManager, LockStore, Payload, StaticCredentials,
  TableOptions, Wait, Watch,
};
use support::{free_port, Dynalite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
  format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

fn options(server: &Dynalite, table: &str) -> DynamoOptions {
  DynamoOptions {
    endpoint: Some(server.endpoint()),
    region: Some("us-east-1".into()),
    credentials: Some(StaticCredentials {
      access_key_id: "test".into(),
      secret_access_key: "test-secret-value".into(),
      session_token: None,
    }),
    ..DynamoOptions::new(table)
  }
}

/// Two clients (as if in two processes) over one new table.
async fn two_clients(server: &Dynalite) -> (Arc<DynamoStore>, Arc<DynamoStore>) {
  let table = unique("locks");
  let a = DynamoStore::new(options(server, &table)).expect("options");
  assert!(a
    .create_table(&TableOptions::default())
    .await
    .expect("create"));
  let b = DynamoStore::new(options(server, &table)).expect("options");
  (Arc::new(a), Arc::new(b))
}

fn opts(ttl_ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_millis(ttl_ms),
    retry_delay: Duration::from_millis(50),
    retry_jitter: Duration::ZERO,
    ..Default::default()
  }
}

async fn acquire(mgr: &LockManager, name: &str, o: AcquireOptions) -> ferrolock_core::Lock {
  mgr
    .acquire(name, o, CancellationToken::new())
    .await
    .expect("acquire")
    .expect("a lock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_acquire_heartbeat_and_release() {
  let srv = Dynalite::start();
  let (store, _) = two_clients(&srv).await;
  let mgr = LockManager::new(store.clone());
  let name = unique("count");
  let before = store.requests();
  let lock = acquire(
    &mgr,
    &name,
    AcquireOptions {
      auto_extend: false,
      ..opts(5_000)
    },
  )
  .await;
  assert_eq!(store.requests() - before, 1, "uncontended acquire");
  let before = store.requests();
  assert!(lock
    .extend(Duration::from_secs(5))
    .await
    .expect("heartbeat"));
  assert_eq!(store.requests() - before, 1, "manual heartbeat");
  let before = store.requests();
  assert!(lock.release().await.expect("release"));
  assert_eq!(store.requests() - before, 1, "release");

  // Automatic heartbeats: one request each.
  let lock = acquire(
    &mgr,
    &name,
    AcquireOptions {
      refresh_interval: Some(Duration::from_millis(100)),
      ..opts(5_000)
    },
  )
  .await;
  let mut events = lock.take_events().expect("events");
  let before = store.requests();
  for _ in 0..3 {
    assert!(matches!(
      events.recv().await,
      Some(LeaseEvent::Refreshed { .. })
    ));
  }
  assert_eq!(store.requests() - before, 3, "three heartbeats");
  assert!(lock.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_holder_is_taken_over_after_one_lease() {
  let srv = Dynalite::start();
  let (a, b) = two_clients(&srv).await;
  let (holder, waiter) = (LockManager::new(a), LockManager::new(b));
  let name = unique("takeover");
  // No heartbeats: the holder is as good as dead.
  let old = acquire(
    &holder,
    &name,
    AcquireOptions {
      auto_extend: false,
      ..opts(600)
    },
  )
  .await;
  let started = Instant::now();
  let new = acquire(&waiter, &name, opts(5_000)).await;
  let took = started.elapsed();
  // Not before the lease (as the waiter counts it), and within one poll period after it.
  assert!(
    took >= Duration::from_millis(600),
    "took over after {took:?}"
  );
  assert!(
    took < Duration::from_millis(600 + 50 + 150),
    "took over after {took:?}"
  );
  assert!(new.fence() > old.fence());
  // The old holder's heartbeat fails: lost, and the new holder is untouched.
  assert!(!old.extend(Duration::from_secs(5)).await.expect("extend"));
  assert!(old.is_lost());
  assert!(!old.release().await.expect("release"));
  let info = waiter.inspect(&name).await.expect("inspect").expect("held");
  assert_eq!(info.fence, new.fence());
  assert!(new.release().await.expect("release"));
}

/// The takeover clock is each waiter's own: neither `inspect` nor an earlier single attempt
/// starts it, so a waiter that arrives late still waits a whole lease from its first look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_waiter_itself_starts_its_takeover_clock() {
  let srv = Dynalite::start();
  let (a, b) = two_clients(&srv).await;
  let (holder, waiter) = (LockManager::new(a), LockManager::new(b));
  let name = unique("own-clock");
  let dead = acquire(
    &holder,
    &name,
    AcquireOptions {
      auto_extend: false,
      ..opts(600)
    },
  )
  .await;
  assert!(waiter.inspect(&name).await.expect("inspect").is_some());
  let single = AcquireOptions {
    wait: Wait::No,
    ..opts(5_000)
  };
  let none = waiter
    .acquire(&name, single, CancellationToken::new())
    .await
    .expect("one attempt");
  assert!(none.is_none(), "held");
  // A whole lease after those looks: a waiter starting now still counts its own lease.
  tokio::time::sleep(Duration::from_millis(650)).await;
  let started = Instant::now();
  let lock = acquire(&waiter, &name, opts(5_000)).await;
  let took = started.elapsed();
  assert!(
    took >= Duration::from_millis(600),
    "took over after {took:?}"
  );
  assert!(lock.fence() > dead.fence());
  assert!(lock.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_holder_is_never_taken_over() {
  let srv = Dynalite::start();
  let (a, b) = two_clients(&srv).await;
  let (holder, waiter) = (LockManager::new(a), LockManager::new(b));
  let name = unique("live");
  // Heartbeats every 200 ms for a 1 s lease: a loaded machine may delay a few.
  let lock = acquire(
    &holder,
    &name,
    AcquireOptions {
      refresh_interval: Some(Duration::from_millis(200)),
      ..opts(1_000)
    },
  )
  .await;
  let err = waiter
    .acquire(
      &name,
      AcquireOptions {
        wait: Wait::For(Duration::from_millis(3_500)),
        ..opts(1_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect_err("three and a half leases of waiting");
  assert_eq!(err.code(), "ERR_LOCK_NOT_ACQUIRED");
  assert!(!lock.is_lost());
  assert!(lock.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_fails_at_once() {
  let srv = Dynalite::start();
  let store = Arc::new(DynamoStore::new(options(&srv, "no-such-table")).expect("options"));
  let mgr = LockManager::new(store.clone());
  let started = Instant::now();
  // Waiting forever must not turn a missing table into a hang.
  let err = mgr
    .acquire("x", opts(1_000), CancellationToken::new())
    .await
    .expect_err("no table");
  assert!(matches!(err, LockError::TableNotFound(ref t) if t == "no-such-table"));
  assert_eq!(err.code(), "ERR_TABLE_NOT_FOUND");
  assert!(started.elapsed() < Duration::from_secs(2));
  assert_eq!(store.requests(), 1);
  assert_eq!(
    mgr.inspect("x").await.expect_err("no table").code(),
    "ERR_TABLE_NOT_FOUND"
  );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_created_once_and_deleted() {
  let srv = Dynalite::start();
  let table = unique("tbl");
  let mut o = options(&srv, &table);
  o.partition_key = "lockName".into();
  o.sort_key = Some(("kind".into(), "lock".into()));
  let store = Arc::new(DynamoStore::new(o).expect("options"));
  let provisioned = TableOptions {
    billing: Billing::Provisioned { read: 2, write: 3 },
    tags: vec![("team".into(), "locks".into())],
    ..Default::default()
  };
  assert!(store.create_table(&provisioned).await.expect("create"));
  assert!(!store.create_table(&provisioned).await.expect("exists"));
  let mgr = LockManager::new(store.clone());
  let lock = acquire(&mgr, "a", opts(5_000)).await;
  assert!(lock.release().await.expect("release"));
  // TTL needs the attribute on the client.
  let err = store
    .create_table(&TableOptions {
      enable_ttl: true,
      ..Default::default()
    })
    .await
    .expect_err("no ttl attribute");
  assert_eq!(err.code(), "ERR_INVALID_ARG");
  assert!(store
    .delete_table(Duration::from_secs(10))
    .await
    .expect("delete"));
  assert!(!store
    .delete_table(Duration::from_secs(10))
    .await
    .expect("gone"));
  assert_eq!(
    mgr
      .acquire("a", opts(1_000), CancellationToken::new())
      .await
      .expect_err("gone")
      .code(),
    "ERR_TABLE_NOT_FOUND"
  );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_attributes_heartbeat_data_and_release_modes() {
  let srv = Dynalite::start();
  let (store, _) = two_clients(&srv).await;
  let mgr = LockManager::new(store.clone());
  let name = unique("data");
  let bytes = Payload::Bytes(vec![0, 159, 146, 150, 255]);
  let mut attributes = serde_json::Map::new();
  attributes.insert("job".into(), serde_json::json!({"id": 7, "tags": ["a"]}));
  let lock = acquire(
    &mgr,
    &name,
    AcquireOptions {
      data: Some(bytes.clone()),
      extras: AcquireExtras {
        attributes: Some(attributes.clone()),
        ..Default::default()
      },
      auto_extend: false,
      ..opts(5_000)
    },
  )
  .await;
  let rec = store.get(&name).await.expect("get").expect("record");
  assert_eq!(rec.data.as_ref(), Some(&bytes));
  assert_eq!(rec.attributes, attributes);
  assert_eq!(rec.lease, Duration::from_secs(5));
  assert!(!rec.released && !rec.expired);
  assert_eq!(rec.fence, lock.fence());

  // A heartbeat can replace the data, and changes the record version.
  let text = Payload::Text("step 2".into());
  assert!(lock
    .extend_with(Duration::from_secs(5), Some(&text))
    .await
    .expect("heartbeat"));
  let after = store.get(&name).await.expect("get").expect("record");
  assert_eq!(after.data.as_ref(), Some(&text));
  assert_ne!(after.record_version, rec.record_version);

  // Release with data: the record stays, released, with the fence.
  let done = Payload::Text("done".into());
  assert!(lock
    .release_with(Some(done.clone()), None)
    .await
    .expect("release"));
  let released = store.get(&name).await.expect("get").expect("kept");
  assert!(released.released);
  assert_eq!(released.data.as_ref(), Some(&done));
  assert_eq!(released.fence, lock.fence());
  assert_eq!(mgr.inspect(&name).await.expect("inspect"), None);

  // Without replaceData the stored data is kept; with it, replaced.
  let other = Payload::Text("other".into());
  let kept = acquire(
    &mgr,
    &name,
    AcquireOptions {
      data: Some(other.clone()),
      auto_extend: false,
      ..opts(5_000)
    },
  )
  .await;
  assert!(kept.fence() > lock.fence());
  let rec = store.get(&name).await.expect("get").expect("record");
  assert_eq!(rec.data.as_ref(), Some(&done));
  assert!(kept.release().await.expect("release"));
  let replaced = acquire(
    &mgr,
    &name,
    AcquireOptions {
      data: Some(other.clone()),
      extras: AcquireExtras {
        replace_data: true,
        delete_on_release: true,
        ..Default::default()
      },
      auto_extend: false,
      ..opts(5_000)
    },
  )
  .await;
  let rec = store.get(&name).await.expect("get").expect("record");
  assert_eq!(rec.data.as_ref(), Some(&other));
  // deleteOnRelease: the record is gone.
  assert!(replaced.release().await.expect("release"));
  assert_eq!(store.get(&name).await.expect("get"), None);

  // Reserved or key attribute names are refused before any request.
  let mut bad = serde_json::Map::new();
  bad.insert("fence".into(), serde_json::json!(1));
  let before = store.requests();
  let extras = AcquireExtras {
    attributes: Some(bad),
    ..Default::default()
  };
  let err = store
    .try_acquire(
      &name,
      &AcquireRequest {
        token: "t",
        owner: "o",
        ttl: Duration::from_secs(1),
        data: None,
        queue_for: None,
        extras: &extras,
      },
    )
    .await
    .expect_err("reserved");
  assert_eq!(err.code(), "ERR_INVALID_ARG");
  assert_eq!(store.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_still_grants_our_own_lock() {
  let srv = Dynalite::start();
  let (store, _) = two_clients(&srv).await;
  let name = unique("reply");
  let extras = AcquireExtras::default();
  let req = AcquireRequest {
    token: "same-token",
    owner: "o",
    ttl: Duration::from_secs(5),
    data: None,
    queue_for: None,
    extras: &extras,
  };
  let Acquire::Granted(first) = store.try_acquire(&name, &req).await.expect("acquire") else {
    panic!("not granted");
  };
  // The retry of an attempt whose reply was lost finds our own token: granted, same fence.
  assert_eq!(
    store.try_acquire(&name, &req).await.expect("retry"),
    Acquire::Granted(first)
  );
  assert!(store.release(&name, "same-token").await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_backend_error_without_secrets() {
  let port = free_port();
  let mut o = DynamoOptions::new("locks");
  o.endpoint = Some(format!("http://127.0.0.1:{port}"));
  o.region = Some("eu-west-1".into());
  o.credentials = Some(StaticCredentials {
    access_key_id: "AKIDSECRETID".into(),
    secret_access_key: "very-secret-key".into(),
    session_token: Some("session-secret".into()),
  });
  o.request_timeout = Duration::from_millis(500);
  let store = Arc::new(DynamoStore::new(o).expect("options"));
  let mgr = LockManager::new(store);
  let err = mgr
    .acquire(
      "x",
      AcquireOptions {
        wait: Wait::No,
        ..opts(1_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect_err("unreachable");
  assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE");
  assert!(err.is_retryable());
  let shown = format!(
    "{err} {:?} {}",
    err,
    err.cause_message().unwrap_or_default()
  );
  for secret in ["very-secret-key", "AKIDSECRETID", "session-secret"] {
    assert!(!shown.contains(secret), "{shown}");
  }
}

/// A store whose acquire replies get lost: the write happens, then the caller sees a fault
/// (after `delay`), as after a timeout. `then` is the error of the following attempts, if any.
struct LostReplies {
  inner: Arc<DynamoStore>,
  lost: AtomicU64,
  delay: Duration,
  then: Option<fn() -> LockError>,
  /// The record version the lost write left.
  first_rvn: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl LockStore for LostReplies {
  fn kind(&self) -> &'static str {
    "lost-replies"
  }
  async fn try_acquire(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
  ) -> ferrolock_core::Result<Acquire> {
    if self.lost.fetch_add(1, Ordering::SeqCst) == 0 {
      self.inner.try_acquire(name, req).await?;
      let rvn = self.inner.get(name).await?.map(|r| r.record_version);
      *self.first_rvn.lock().unwrap_or_else(|e| e.into_inner()) = rvn;
      tokio::time::sleep(self.delay).await;
      return Err(LockError::Backend {
        message: "timed out".into(),
        source: None,
      });
    }
    match self.then {
      Some(err) => Err(err()),
      None => self.inner.try_acquire(name, req).await,
    }
  }
  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> ferrolock_core::Result<bool> {
    self.inner.extend(name, token, ttl).await
  }
  async fn release(&self, name: &str, token: &str) -> ferrolock_core::Result<bool> {
    self.inner.release(name, token).await
  }
  async fn inspect(&self, name: &str) -> ferrolock_core::Result<Option<LockInfo>> {
    self.inner.inspect(name).await
  }
  async fn leave_queue(&self, name: &str, token: &str) -> ferrolock_core::Result<()> {
    self.inner.leave_queue(name, token).await
  }
  async fn watch(&self, name: &str) -> ferrolock_core::Result<Option<Watch>> {
    self.inner.watch(name).await
  }
  async fn close(&self) {
    self.inner.close().await
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acquire_reply_is_reclaimed_with_a_fresh_record_version() {
  let srv = Dynalite::start();
  let (store, _) = two_clients(&srv).await;
  let flaky = Arc::new(LostReplies {
    inner: store.clone(),
    lost: AtomicU64::new(0),
    delay: Duration::from_millis(400),
    then: None,
    first_rvn: Default::default(),
  });
  let mgr = LockManager::new(flaky.clone());
  let name = unique("lost-reply");
  let lock = acquire(
    &mgr,
    &name,
    AcquireOptions {
      auto_extend: false,
      ..opts(1_000)
    },
  )
  .await;
  // The retry found our own token and renewed the record version, so waiters that timed the
  // lost write start again: the lease counts from the retry, not from the lost write.
  let first = flaky
    .first_rvn
    .lock()
    .unwrap_or_else(|e| e.into_inner())
    .clone();
  let now = store.get(&name).await.expect("get").expect("record");
  assert!(first.is_some());
  assert_ne!(Some(now.record_version), first);
  assert_eq!(now.fence, lock.fence());
  assert!(lock.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_cleaned_up_even_when_a_later_attempt_fails_for_good() {
  let srv = Dynalite::start();
  let (store, _) = two_clients(&srv).await;
  let flaky = Arc::new(LostReplies {
    inner: store.clone(),
    lost: AtomicU64::new(0),
    delay: Duration::ZERO,
    then: Some(|| LockError::TableNotFound("locks".into())),
    first_rvn: Default::default(),
  });
  let mgr = LockManager::new(flaky);
  let name = unique("cleanup");
  let err = mgr
    .acquire(&name, opts(60_000), CancellationToken::new())
    .await
    .expect_err("table gone");
  assert_eq!(err.code(), "ERR_TABLE_NOT_FOUND");
  // The write of the first attempt was undone: nobody holds the lock.
  assert_eq!(store.inspect(&name).await.expect("inspect"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_holders_lease_plus_extra_time() {
  let srv = Dynalite::start();
  let (a, b) = two_clients(&srv).await;
  let (holder, waiter) = (LockManager::new(a), LockManager::new(b));
  let after_lease = |extra| AcquireOptions {
    wait: Wait::AfterLease(Duration::from_millis(extra)),
    ..opts(100)
  };
  // A dead holder with a longer lease than ours is taken over, even with no extra time.
  let name = unique("after-lease");
  let dead = acquire(
    &holder,
    &name,
    AcquireOptions {
      auto_extend: false,
      ..opts(500)
    },
  )
  .await;
  let lock = acquire(&waiter, &name, after_lease(0)).await;
  assert!(lock.fence() > dead.fence());
  assert!(lock.release().await.expect("release"));
  // A live holder: given up after its lease plus the extra time.
  let name = unique("after-lease-live");
  let live = acquire(&holder, &name, opts(400)).await;
  let started = Instant::now();
  let err = waiter
    .acquire(&name, after_lease(200), CancellationToken::new())
    .await
    .expect_err("live holder");
  assert_eq!(err.code(), "ERR_LOCK_NOT_ACQUIRED");
  let waited = started.elapsed();
  assert!(waited >= Duration::from_millis(600), "{waited:?}");
  assert!(live.release().await.expect("release"));
}
