//! Failures of Redlock masters and Redis Cluster nodes, against real servers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  Acquire, AcquireOptions, AcquireRequest, LeaseEvent, LockManager, LockStore, RedisOptions,
  RedisStore, RedlockStore, Wait,
};
use support::{RedisCluster, RedisServer, StallProxy};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// Redlock over `urls`, with a short per-request timeout (stalled masters in these tests).
fn redlock(urls: &[String]) -> Arc<RedlockStore> {
  support::redlock_store(urls, Some(Duration::from_millis(300)))
}

fn urls(servers: &[RedisServer]) -> Vec<String> {
  servers.iter().map(RedisServer::url).collect()
}

fn opts(ttl_ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_millis(ttl_ms),
    retry_delay: Duration::from_millis(20),
    retry_jitter: Duration::from_millis(10),
    ..Default::default()
  }
}

static NO_EXTRAS: ferrolock_core::AcquireExtras = ferrolock_core::AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

fn attempt(token: &str) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: "probe",
    ttl: Duration::from_secs(5),
    data: None,
    extras: &NO_EXTRAS,
    queue_for: None,
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_one_of_three_down_still_grants() {
  let mut masters = support::masters(3);
  let store = redlock(&urls(&masters));
  masters[0].kill();
  let mgr = LockManager::new(store.clone());
  let lock = mgr
    .acquire("one-down", opts(2_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let info = store
    .inspect("one-down")
    .await
    .expect("inspect")
    .expect("held");
  assert_eq!(info.fence, lock.fence());
  // A second owner is turned away by the two live masters.
  assert!(matches!(
    store.try_acquire("one-down", &attempt("other")).await,
    Ok(Acquire::Held(_))
  ));
  assert!(lock.release().await.expect("release"));
  assert_eq!(masters[1].cli(&["exists", "lock:one-down"]), "0");
  assert_eq!(masters[2].cli(&["exists", "lock:one-down"]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_two_of_three_down_fails_and_leaves_nothing() {
  let mut masters = support::masters(3);
  let store = redlock(&urls(&masters));
  masters[0].kill();
  masters[1].kill();
  let mgr = LockManager::new(store.clone());
  let err = mgr
    .acquire(
      "two-down",
      AcquireOptions {
        wait: Wait::For(Duration::from_millis(300)),
        ..opts(2_000)
      },
      CancellationToken::new(),
    )
    .await
    .map(|_| ())
    .expect_err("no majority");
  assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE", "{err}");
  assert!(err.to_string().contains("majority of 2"), "{err}");
  // The live master granted each attempt, and each was undone: no lock is left behind.
  assert_eq!(masters[2].cli(&["exists", "lock:two-down"]), "0");
  assert_eq!(mgr.stats().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_master_restarted_empty_mid_lease() {
  let mut masters = support::masters(3);
  let store = redlock(&urls(&masters));
  let mgr = LockManager::new(store.clone());
  let lock = mgr
    .acquire(
      "restart",
      AcquireOptions {
        refresh_interval: Some(Duration::from_millis(100)),
        ..opts(1_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let mut events = lock.take_events().expect("events");
  masters[0].restart();
  assert_eq!(masters[0].cli(&["exists", "lock:restart"]), "0");
  // The restarted master grants a newcomer, the other two do not: still ours.
  let other = store.try_acquire("restart", &attempt("other")).await;
  assert!(matches!(other, Ok(Acquire::Held(_))), "{other:?}");
  assert_eq!(
    masters[0].cli(&["exists", "lock:restart"]),
    "0",
    "the failed attempt was undone"
  );
  // Heartbeats keep a majority (2 of 3) and the lock past its ttl.
  let mut refreshed = 0;
  while refreshed < 12 {
    match events.recv().await {
      Some(LeaseEvent::Refreshed { .. }) => refreshed += 1,
      other => panic!("unexpected {other:?}"),
    }
  }
  assert!(!lock.is_lost());
  assert!(lock.release().await.expect("release"));
  // The next fence is still higher: the two masters that kept their counters are a majority.
  let next = mgr
    .acquire("restart", opts(1_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(next.fence() > lock.fence());
  assert!(next.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_stalled_master_counts_as_down() {
  let masters = support::masters(3);
  let proxies = [
    StallProxy::start(masters[0].port),
    StallProxy::start(masters[1].port),
  ];
  let store = redlock(&[proxies[0].url(), proxies[1].url(), masters[2].url()]);
  let mgr = LockManager::new(store.clone());
  // Connections are made while everything forwards.
  let warm = mgr
    .acquire("warm", opts(2_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(warm.release().await.expect("release"));

  proxies[0].stall(true);
  let lock = timeout(
    Duration::from_secs(5),
    mgr.acquire("stalled", opts(2_000), CancellationToken::new()),
  )
  .await
  .expect("not waited on for ever")
  .expect("acquire")
  .expect("lock");
  assert!(lock.extend(Duration::from_secs(2)).await.expect("extend"));
  assert!(lock.release().await.expect("release"));

  // Two of three stalled: no majority; the attempt gives up at its deadline.
  proxies[1].stall(true);
  let started = Instant::now();
  let err = timeout(
    Duration::from_secs(5),
    mgr.acquire(
      "stalled-2",
      AcquireOptions {
        wait: Wait::For(Duration::from_millis(500)),
        ..opts(2_000)
      },
      CancellationToken::new(),
    ),
  )
  .await
  .expect("not waited on for ever")
  .map(|_| ())
  .expect_err("no majority");
  assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE", "{err}");
  assert!(started.elapsed() >= Duration::from_millis(500));
  assert_eq!(masters[2].cli(&["exists", "lock:stalled-2"]), "0");
  proxies[0].stall(false);
  proxies[1].stall(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_master_killed_while_held_and_awaited() {
  let mut cluster = RedisCluster::start();
  let store = Arc::new(
    RedisStore::new(RedisOptions {
      cluster: Some(cluster.urls()),
      ..Default::default()
    })
    .expect("valid options"),
  );
  let holder = Arc::new(LockManager::new(store.clone()));
  let waiters = Arc::new(LockManager::new(store.clone()));
  let lock = holder
    .acquire(
      "failover",
      AcquireOptions {
        refresh_interval: Some(Duration::from_millis(200)),
        ..opts(3_000)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let mut events = lock.take_events().expect("events");
  let waiter = {
    let waiters = waiters.clone();
    tokio::spawn(async move {
      waiters
        .acquire("failover", opts(3_000), CancellationToken::new())
        .await
    })
  };
  support::wait_until("the waiter to be pending", || waiters.stats().pending > 0).await;
  // Let the replica copy the lock, as it usually has before a crash.
  let port = cluster.master_of("lock:failover").port;
  cluster.wait_replicated(port);
  cluster.master_of("lock:failover").kill();
  cluster.wait_ok();

  // The holder either keeps its lock through the replica, or learns it lost it; it never hangs.
  // Events from before the failover do not count.
  while events.try_recv().is_ok() {}
  let mut lost = false;
  let mut refreshed_after = 0;
  while refreshed_after < 3 && !lost {
    match timeout(Duration::from_secs(10), events.recv())
      .await
      .expect("the heartbeat recovers or reports lost")
    {
      Some(LeaseEvent::Refreshed { .. }) => refreshed_after += 1,
      Some(LeaseEvent::Lost { .. }) => lost = true,
      Some(_) => {}
      None => break,
    }
  }
  let held_by_holder = !lost && !lock.is_lost();
  let released = lock.release().await;
  eprintln!(
    "release: {released:?}, waiter done: {}",
    waiter.is_finished()
  );
  let released = released.unwrap_or(false);
  let next = timeout(Duration::from_secs(15), waiter)
    .await
    .expect("the waiter gets the lock after the failover")
    .expect("join")
    .expect("acquire")
    .expect("lock");
  // Record what the failover did, and check the fence orders the two holders either way.
  eprintln!(
    "cluster failover: holder kept the lock: {held_by_holder}, released: {released}, lost: {lost}, fences {} -> {}",
    lock.fence(),
    next.fence()
  );
  assert!(next.fence() > lock.fence());
  // Either way, release tells the truth: a lock the holder kept is releasable, a lost one is not.
  assert_eq!(
    released, held_by_holder,
    "release() after the failover (holder kept the lock: {held_by_holder})"
  );
  assert!(next.release().await.expect("release"));
  holder.close().await;
  waiters.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_fence_is_on_a_majority_before_the_grant_is_reported() {
  let masters = support::masters(3);
  let store = redlock(&urls(&masters));
  // Two masters' counters are far ahead of the third (clocks ahead, or more history): every
  // majority includes one of them, so the grant's fence is always above `high`, whichever
  // majority answers first.
  let high: u64 = 9_000_000_000_000_000;
  masters[0].cli(&["set", "{lock:fenced}:fence", &high.to_string()]);
  masters[1].cli(&["set", "{lock:fenced}:fence", &high.to_string()]);
  let mgr = LockManager::new(store.clone());
  let lock = mgr
    .acquire("fenced", opts(5_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(
    lock.fence() > high,
    "fence {} from a majority",
    lock.fence()
  );
  // The fence is the highest granting counter, and a majority already holds it when the grant is
  // reported, so any next owner's majority meets a counter at least this high.
  let at_least = masters
    .iter()
    .filter(|m| {
      m.cli(&["get", "{lock:fenced}:fence"])
        .parse::<u64>()
        .is_ok_and(|c| c >= lock.fence())
    })
    .count();
  assert!(at_least >= 2, "only {at_least} masters have the fence");
  assert!(lock.release().await.expect("release"));
  let next = mgr
    .acquire("fenced", opts(5_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(next.fence() > lock.fence());
  assert!(next.release().await.expect("release"));
}
