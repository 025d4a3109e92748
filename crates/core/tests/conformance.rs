//! The shared conformance suite: the same tests against every store.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  Acquire, AcquireExtras, AcquireOptions, AcquireRequest, Attempt, DynamoOptions, DynamoStore,
  LeaseEvent, LockError, LockManager, LockStore, LostReason, MemoryStore, Payload, RedisOptions,
  RedisStore, StaticCredentials, TableOptions, Wait,
};
use ferrolock_core::{FileOptions, FileStore};
use support::{Dynalite, RedisCluster, RedisServer};
use tokio_util::sync::CancellationToken;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
  format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

static PAYLOAD: std::sync::LazyLock<Payload> =
  std::sync::LazyLock::new(|| Payload::Text("payload".into()));
static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

fn req<'a>(token: &'a str, ttl_ms: u64) -> AcquireRequest<'a> {
  AcquireRequest {
    token,
    owner: "owner-a",
    ttl: Duration::from_millis(ttl_ms),
    data: Some(&PAYLOAD),
    queue_for: None,
    extras: &NO_EXTRAS,
  }
}

/// One attempt, reduced to "granted", "held" or "error" for compact assertions.
async fn outcome<S: LockStore + ?Sized>(
  store: &S,
  name: &str,
  req: &AcquireRequest<'_>,
) -> &'static str {
  match store.try_acquire(name, req).await {
    Ok(Acquire::Granted(_)) => "granted",
    Ok(Acquire::Held(_)) => "held",
    Err(_) => "error",
  }
}

fn redis_store(server: &RedisServer) -> Arc<RedisStore> {
  Arc::new(
    RedisStore::new(RedisOptions {
      url: Some(server.url()),
      ..Default::default()
    })
    .expect("valid options"),
  )
}

/// A test DynamoDB table on its own dynalite.
async fn dynamo_store(server: &Dynalite) -> Arc<DynamoStore> {
  let store = DynamoStore::new(dynamo_options(server, &unique("locks"))).expect("valid options");
  assert!(store
    .create_table(&TableOptions::default())
    .await
    .expect("create table"));
  Arc::new(store)
}

fn dynamo_options(server: &Dynalite, table: &str) -> DynamoOptions {
  DynamoOptions {
    endpoint: Some(server.endpoint()),
    region: Some("us-east-1".into()),
    credentials: Some(StaticCredentials {
      access_key_id: "test".into(),
      secret_access_key: "test".into(),
      session_token: None,
    }),
    ..DynamoOptions::new(table)
  }
}

/// Runs every conformance test against one store. `poll` stores have no release
/// notifications: waiters poll. Stores without a FIFO queue say so through `fifo()`.
macro_rules! conformance {
  ($modname:ident, $setup:expr) => {
    conformance!($modname, $setup, push: true, {
      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn fifo_queue() {
        let (_srv, store) = $setup;
        fifo(store).await;
      }
    });
  };
  ($modname:ident, $setup:expr, poll) => {
    conformance!($modname, $setup, push: false, {
      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn fifo_queue() {
        let (_srv, store) = $setup;
        fifo(store).await;
      }
    });
  };
  ($modname:ident, $setup:expr, push: $push:expr, { $($extra:item)* }) => {
    mod $modname {
      use super::*;

      $($extra)*

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn acquire_release_and_fences() {
        let (_srv, store) = $setup;
        store_contract(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn manager_waits_and_wakes() {
        let (_srv, store) = $setup;
        waits_and_wakes(store, $push).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn manager_deadlines_and_cancel() {
        let (_srv, store) = $setup;
        deadlines_and_cancel(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn lost_when_deleted_behind_our_back() {
        let (_srv, store) = $setup;
        lost_detection(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn heartbeat_keeps_lock_past_ttl() {
        let (_srv, store) = $setup;
        heartbeat(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn session_monitor_without_auto_extend() {
        let (_srv, store) = $setup;
        session_monitor(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn mutual_exclusion_under_load() {
        let (_srv, store) = $setup;
        exclusion(store).await;
      }

      #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
      async fn close_releases_everything() {
        let (_srv, store) = $setup;
        close(store).await;
      }
    }
  };
}

conformance!(memory, ((), Arc::new(MemoryStore::new())));
conformance!(file, {
  let dir = TempDir::new("conformance");
  let store = Arc::new(FileStore::new(FileOptions::new(&dir.0)).expect("valid options"));
  (dir, store)
});
conformance!(redis, {
  let srv = RedisServer::start();
  let store = redis_store(&srv);
  (srv, store)
});
conformance!(
  dynamodb,
  {
    let srv = Dynalite::start();
    let store = dynamo_store(&srv).await;
    (srv, store)
  },
  poll
);
conformance!(redis_cluster, {
  let cluster = RedisCluster::start();
  let store = cluster_store(&cluster);
  (cluster, store)
});
conformance!(redlock, {
  let masters = support::masters(3);
  let store = support::redlock_store(
    &masters.iter().map(RedisServer::url).collect::<Vec<_>>(),
    None,
  );
  (masters, store)
});

/// A lock directory of its own under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
  fn new(prefix: &str) -> Self {
    let dir = std::env::temp_dir().join(format!(
      "ferrolock-{}-{}",
      unique(prefix),
      std::process::id()
    ));
    TempDir(dir)
  }
}

impl Drop for TempDir {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.0);
  }
}

fn cluster_store(cluster: &RedisCluster) -> Arc<RedisStore> {
  Arc::new(
    RedisStore::new(RedisOptions {
      cluster: Some(cluster.urls()),
      ..Default::default()
    })
    .expect("valid options"),
  )
}

async fn store_contract<S: LockStore>(store: Arc<S>) {
  let name = unique("contract");
  let first = match store
    .try_acquire(&name, &req("t1", 5_000))
    .await
    .expect("acquire")
  {
    Acquire::Granted(g) => g.fence,
    other => panic!("expected a grant, got {other:?}"),
  };
  assert!(first > 0);
  match store
    .try_acquire(&name, &req("t2", 5_000))
    .await
    .expect("acquire")
  {
    Acquire::Held(h) => {
      assert_eq!(h.owner.as_deref(), Some("owner-a"));
      let left = h.remaining.expect("remaining ttl");
      assert!(left <= Duration::from_millis(5_000) && left > Duration::from_millis(4_000));
    }
    other => panic!("expected held, got {other:?}"),
  }
  let info = store
    .inspect(&name)
    .await
    .expect("inspect")
    .expect("a lock");
  assert_eq!(info.owner, "owner-a");
  assert_eq!(info.fence, first);
  assert_eq!(
    info.data.as_ref().and_then(Payload::as_text),
    Some("payload")
  );

  // Another owner's token neither extends nor releases.
  assert!(!store
    .extend(&name, "t2", Duration::from_secs(9))
    .await
    .expect("extend"));
  assert!(!store.release(&name, "t2").await.expect("release"));
  assert!(store.inspect(&name).await.expect("inspect").is_some());

  assert!(store
    .extend(&name, "t1", Duration::from_millis(60))
    .await
    .expect("extend"));
  let left = store
    .inspect(&name)
    .await
    .expect("inspect")
    .and_then(|i| i.remaining);
  assert!(left.is_some_and(|l| l <= Duration::from_millis(60)));

  assert!(store.release(&name, "t1").await.expect("release"));
  assert!(!store.release(&name, "t1").await.expect("release twice"));
  assert_eq!(store.inspect(&name).await.expect("inspect"), None);

  // Fences keep increasing, also after a lock expired on its own. The lease is long enough
  // for a Redlock majority to answer within its validity on a loaded machine.
  let second = match store
    .try_acquire(&name, &req("t3", 300))
    .await
    .expect("acquire")
  {
    Acquire::Granted(g) => g.fence,
    other => panic!("expected a grant, got {other:?}"),
  };
  assert!(second > first);
  tokio::time::sleep(Duration::from_millis(600)).await;
  // A store without server-side expiry (DynamoDB) grants only once the waiter has seen the
  // same record version for the holder's whole lease and says which version to take over (the
  // manager's attempt loop keeps that clock): a busy answer reports the version and the lease.
  let mut attempt = store
    .try_acquire_over(&name, &req("t4", 1_000), None)
    .await
    .expect("acquire");
  if let Attempt {
    outcome: Acquire::Held(h),
    version: Some(version),
  } = &attempt
  {
    assert_eq!(
      h.remaining,
      Some(Duration::from_millis(300)),
      "the holder's lease"
    );
    let version = version.clone();
    tokio::time::sleep(Duration::from_millis(350)).await;
    attempt = store
      .try_acquire_over(&name, &req("t4", 1_000), Some(&version))
      .await
      .expect("acquire");
  }
  let third = match attempt.outcome {
    Acquire::Granted(g) => g.fence,
    other => panic!("expected a grant after expiry, got {other:?}"),
  };
  assert!(third > second);
  assert!(!store
    .extend(&name, "t3", Duration::from_secs(1))
    .await
    .expect("extend expired"));
  assert!(store.release(&name, "t4").await.expect("release"));
}

async fn fifo<S: LockStore>(store: Arc<S>) {
  let name = unique("fifo");
  let queued = |token: &'static str| AcquireRequest {
    queue_for: Some(Duration::from_secs(5)),
    ..req(token, 5_000)
  };
  assert_eq!(
    outcome(&*store, &name, &req("holder", 5_000)).await,
    "granted"
  );
  if !store.fifo() {
    // No queue (Redlock): after the release, whoever asks first gets the lock.
    assert_eq!(outcome(&*store, &name, &queued("w1")).await, "held");
    assert_eq!(outcome(&*store, &name, &queued("w2")).await, "held");
    assert!(store.release(&name, "holder").await.expect("release"));
    assert_eq!(outcome(&*store, &name, &queued("w2")).await, "granted");
    assert!(store.release(&name, "w2").await.expect("release"));
    store.leave_queue(&name, "w1").await.expect("leave");
    return;
  }
  assert_eq!(outcome(&*store, &name, &queued("w1")).await, "held");
  assert_eq!(outcome(&*store, &name, &queued("w2")).await, "held");
  assert!(store.release(&name, "holder").await.expect("release"));
  // Free, but w1 came first: w2 and a non-waiter are turned away.
  assert_eq!(outcome(&*store, &name, &queued("w2")).await, "held");
  assert_eq!(outcome(&*store, &name, &req("x", 5_000)).await, "held");
  assert_eq!(outcome(&*store, &name, &queued("w1")).await, "granted");
  assert!(store.release(&name, "w1").await.expect("release"));
  // A waiter that gives up lets the next one through.
  store.leave_queue(&name, "w2").await.expect("leave");
  assert_eq!(outcome(&*store, &name, &req("x", 5_000)).await, "granted");
  assert!(store.release(&name, "x").await.expect("release"));
}

fn opts(ttl_ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_millis(ttl_ms),
    retry_delay: Duration::from_secs(5), // wake-ups must come from the release itself
    retry_jitter: Duration::ZERO,
    ..Default::default()
  }
}

async fn waits_and_wakes<S: LockStore>(store: Arc<S>, push: bool) {
  let mgr = Arc::new(LockManager::new(store));
  let name = unique("wake");
  let held = mgr
    .acquire(&name, opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let busy = mgr
    .acquire(
      &name,
      AcquireOptions {
        wait: Wait::No,
        ..opts(1_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect("try");
  assert!(busy.is_none());

  // With push, the poll period is 5 s: only the release notification can explain a fast
  // handoff. Without, the waiter polls every 50 ms.
  let wait_opts = AcquireOptions {
    retry_delay: if push {
      Duration::from_secs(5)
    } else {
      Duration::from_millis(50)
    },
    ..opts(10_000)
  };
  let waiter = {
    let (mgr, name) = (mgr.clone(), name.clone());
    tokio::spawn(async move {
      mgr
        .acquire(&name, wait_opts, CancellationToken::new())
        .await
    })
  };
  // Give the waiter time to subscribe and queue.
  support::wait_until("a pending waiter", || mgr.stats().pending > 0).await;
  tokio::time::sleep(Duration::from_millis(50)).await;
  let released_at = tokio::time::Instant::now();
  assert!(held.release().await.expect("release"));
  let next = waiter.await.expect("join").expect("acquire").expect("lock");
  let gap = released_at.elapsed();
  assert!(gap < Duration::from_secs(2), "handoff took {gap:?}");
  assert!(next.fence() > held.fence());
  assert!(next.release().await.expect("release"));
  assert_eq!(mgr.stats(), ferrolock_core::Stats::default());
}

async fn deadlines_and_cancel<S: LockStore>(store: Arc<S>) {
  let mgr = Arc::new(LockManager::new(store.clone()));
  let name = unique("deadline");
  let held = mgr
    .acquire(&name, opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let quick = AcquireOptions {
    wait: Wait::For(Duration::from_millis(100)),
    retry_delay: Duration::from_millis(20),
    ..opts(1_000)
  };
  let err = mgr
    .acquire(&name, quick.clone(), CancellationToken::new())
    .await
    .expect_err("deadline");
  assert_eq!(err.code(), "ERR_LOCK_NOT_ACQUIRED");
  let err = mgr
    .acquire(
      &name,
      AcquireOptions {
        max_retries: Some(2),
        ..quick
      },
      CancellationToken::new(),
    )
    .await
    .expect_err("retries");
  assert_eq!(err.code(), "ERR_LOCK_NOT_ACQUIRED");

  let cancel = CancellationToken::new();
  let waiter = {
    let (mgr, name, cancel) = (mgr.clone(), name.clone(), cancel.clone());
    tokio::spawn(async move { mgr.acquire(&name, opts(1_000), cancel).await })
  };
  support::wait_until("a pending waiter", || mgr.stats().pending > 0).await;
  cancel.cancel();
  let err = waiter.await.expect("join").expect_err("aborted");
  assert!(matches!(err, LockError::Aborted(_)), "{err:?}");
  // The cancelled waiter left the queue: a non-waiter gets the lock right after release.
  assert!(held.release().await.expect("release"));
  assert_eq!(
    outcome(&*store, &name, &req("after", 1_000)).await,
    "granted"
  );
  assert_eq!(mgr.stats().pending, 0);
  assert_eq!(mgr.stats().watched, 0);
}

async fn lost_detection<S: LockStore>(store: Arc<S>) {
  let mgr = LockManager::new(store.clone());
  let name = unique("lost");
  let lock = mgr
    .acquire(
      &name,
      AcquireOptions {
        refresh_interval: Some(Duration::from_millis(50)),
        ..opts(1_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let mut events = lock.take_events().expect("events");
  // Someone deletes it behind our back (an operator, or a buggy peer with our token).
  assert!(store.release(&name, lock.token()).await.expect("delete"));
  let deleted_at = tokio::time::Instant::now();
  let mut seen = Vec::new();
  while let Some(ev) = events.recv().await {
    seen.push(ev);
  }
  // The next renewal (every 50 ms) finds it gone; a liveness bound, with slack for a loaded
  // machine (one CI run took 299 ms).
  assert!(
    deleted_at.elapsed() < support::within(200),
    "lost after {:?}",
    deleted_at.elapsed()
  );
  assert_eq!(
    seen.last(),
    Some(&LeaseEvent::Lost {
      reason: LostReason::Gone
    })
  );
  assert!(lock.is_lost());
  assert!(!lock.release().await.expect("release"));
  assert!(!lock.extend(Duration::from_secs(1)).await.expect("extend"));
}

async fn heartbeat<S: LockStore>(store: Arc<S>) {
  let mgr = LockManager::new(store.clone());
  let name = unique("heartbeat");
  // A renewal every ttl/3 must land within the ttl, on a loaded machine too: 1.3 s (x slack).
  let ttl = support::within(300);
  let ttl_ms = ttl.as_millis() as u64;
  let lock = mgr
    .acquire(&name, opts(ttl_ms), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let mut events = lock.take_events().expect("events");
  let mut refreshed = 0;
  while refreshed < 7 {
    match events.recv().await {
      Some(LeaseEvent::Refreshed { ttl: renewed }) => {
        assert_eq!(renewed, ttl);
        refreshed += 1;
      }
      other => panic!("unexpected {other:?}"),
    }
  }
  // Seven refreshes at ttl/3 span more than two ttls: still ours.
  assert!(!lock.is_lost());
  assert_eq!(outcome(&*store, &name, &req("other", 1_000)).await, "held");
  assert!(lock.release().await.expect("release"));
  assert_eq!(events.recv().await, Some(LeaseEvent::Released));
  assert_eq!(events.recv().await, None);

  // A refresh interval close to the ttl is no reason to warn: healthy renewals only.
  let lock = mgr
    .acquire(
      &name,
      AcquireOptions {
        refresh_interval: Some(Duration::from_millis(ttl_ms * 2 / 3)),
        ..opts(ttl_ms)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let mut events = lock.take_events().expect("events");
  for _ in 0..3 {
    assert!(matches!(
      events.recv().await,
      Some(LeaseEvent::Refreshed { .. })
    ));
  }
  assert!(lock.release().await.expect("release"));
  assert_eq!(events.recv().await, Some(LeaseEvent::Released));
}

async fn session_monitor<S: LockStore>(store: Arc<S>) {
  let mgr = LockManager::new(store);
  let name = unique("monitor");
  // One unit is 400 ms (x slack): the manual extend after one unit comes with three units of
  // lease left, so a loaded machine cannot make it late.
  let unit = support::scaled(400);
  let ttl = unit * 4;
  let safe = unit * 3 / 2;
  let lock = mgr
    .acquire(
      &name,
      AcquireOptions {
        auto_extend: false,
        safe_time: Some(safe),
        ..opts(ttl.as_millis() as u64)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let started = tokio::time::Instant::now();
  let mut events = lock.take_events().expect("events");
  // A manual heartbeat renews the lease: the warning comes ttl - safeTime after it.
  tokio::time::sleep(unit).await;
  assert!(lock.extend(ttl).await.expect("extend"));
  assert!(matches!(
    events.recv().await,
    Some(LeaseEvent::Refreshed { .. })
  ));
  // Never early: 10 ms for timer granularity, plus Redlock's default clock-drift margin
  // (1 % of the ttl + 2 ms), which it takes off the lease; how late is up to the machine.
  let tick = Duration::from_millis(12) + ttl / 100;
  match events.recv().await {
    Some(LeaseEvent::Expiring { remaining }) => {
      assert!(remaining <= safe, "{remaining:?}");
      let at = started.elapsed();
      assert!(at + tick >= unit + ttl - safe, "expiring after {at:?}");
    }
    other => panic!("expected expiring, got {other:?}"),
  }
  assert_eq!(
    events.recv().await,
    Some(LeaseEvent::Lost {
      reason: LostReason::Expired
    })
  );
  assert!(started.elapsed() + tick >= unit + ttl);
  assert!(lock.is_lost());
}

async fn exclusion<S: LockStore>(store: Arc<S>) {
  let mgr = Arc::new(LockManager::new(store));
  let name = unique("exclusion");
  let counter = Arc::new(AtomicU64::new(0));
  let inside = Arc::new(AtomicU64::new(0));
  let mut tasks = Vec::new();
  for _ in 0..50 {
    let (mgr, name, counter, inside) = (mgr.clone(), name.clone(), counter.clone(), inside.clone());
    tasks.push(tokio::spawn(async move {
      for _ in 0..10 {
        let lock = mgr
          .acquire(
            &name,
            AcquireOptions {
              retry_delay: Duration::from_millis(20),
              ..opts(5_000)
            },
            CancellationToken::new(),
          )
          .await
          .expect("acquire")
          .expect("lock");
        assert_eq!(
          inside.fetch_add(1, Ordering::SeqCst),
          0,
          "two holders at once"
        );
        let read = counter.load(Ordering::SeqCst);
        tokio::task::yield_now().await;
        counter.store(read + 1, Ordering::SeqCst);
        inside.fetch_sub(1, Ordering::SeqCst);
        assert!(lock.release().await.expect("release"));
      }
    }));
  }
  for t in tasks {
    t.await.expect("worker");
  }
  assert_eq!(counter.load(Ordering::SeqCst), 500);
}

async fn close<S: LockStore>(store: Arc<S>) {
  let mgr = Arc::new(LockManager::new(store.clone()));
  let name = unique("close");
  let lock = mgr
    .acquire(&name, opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let waiter = {
    let (mgr, name) = (mgr.clone(), name.clone());
    tokio::spawn(async move {
      mgr
        .acquire(&name, opts(1_000), CancellationToken::new())
        .await
    })
  };
  support::wait_until("a pending waiter", || mgr.stats().pending > 0).await;
  mgr.close().await;
  assert!(matches!(
    waiter.await.expect("join"),
    Err(LockError::Closed)
  ));
  assert!(lock.is_finished());
  assert!(!lock.is_lost());
  let again = mgr
    .acquire(&name, opts(1_000), CancellationToken::new())
    .await;
  assert!(matches!(again, Err(LockError::Closed)));
  assert_eq!(mgr.stats(), ferrolock_core::Stats::default());
}
