//! Deadlines and close() while a server hangs (a TCP stall between client and a real server):
//! a `wait` deadline settles by deadline + 500 ms, single requests by the request timeout,
//! close() rejects waiters at once and reports only confirmed releases.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  AcquireOptions, DynamoOptions, DynamoStore, LeaseEvent, LockError, LockManager, LostReason,
  RedisOptions, RedisStore, StaticCredentials, TableOptions, Wait,
};
use support::{Dynalite, RedisServer, StallProxy};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// The promise of a `wait` deadline: settled by the deadline plus this.
const PAST_DEADLINE: Duration = Duration::from_millis(500);

fn redis(url: String) -> Arc<RedisStore> {
  let opts = RedisOptions {
    url: Some(url),
    ..Default::default()
  };
  Arc::new(RedisStore::new(opts).expect("valid options"))
}

fn wait_for(ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_secs(10),
    wait: Wait::For(Duration::from_millis(ms)),
    ..Default::default()
  }
}

/// `wait_for` with a short lease: an attempt that lands after the stall ends, unanswered and
/// so not undone in time, keeps the lock no longer than that.
fn short(ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_secs(3),
    ..wait_for(ms)
  }
}

/// Runs `fut`, failing after 60 s with `what`; returns its output and how long it took.
async fn timed<T>(what: &str, fut: impl std::future::Future<Output = T>) -> (T, Duration) {
  let start = Instant::now();
  let out = timeout(Duration::from_secs(60), fut)
    .await
    .unwrap_or_else(|_| panic!("{what} hung for 60 s"));
  (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_deadlines_hold_while_redis_hangs() {
  let server = RedisServer::start();
  let proxy = StallProxy::start(server.port);
  let manager = LockManager::new(redis(proxy.url()));
  // Connected and healthy first, so the stall hits requests in flight, not the connect.
  let lock = manager
    .acquire("warm", wait_for(1000), CancellationToken::new())
    .await
    .expect("acquire on a healthy server")
    .expect("granted");
  lock.release().await.expect("release");
  proxy.stall(true);
  for ms in [50, 500, 1500] {
    let (result, took) = timed(
      "acquire with a wait deadline",
      manager.acquire("job", wait_for(ms), CancellationToken::new()),
    )
    .await;
    let err = result.expect_err("nothing can be granted through a stalled server");
    assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE", "{err}");
    assert!(
      took <= Duration::from_millis(ms) + PAST_DEADLINE,
      "wait {ms} ms settled after {took:?}"
    );
  }
  proxy.stall(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_requests_are_bounded_by_the_request_timeout() {
  let server = RedisServer::start();
  let proxy = StallProxy::start(server.port);
  let limit = Duration::from_millis(700);
  let manager = LockManager::with_request_timeout(redis(proxy.url()), limit);
  let lock = manager
    .acquire("held", wait_for(1000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("granted");
  proxy.stall(true);
  let try_once = AcquireOptions {
    wait: Wait::No,
    ..Default::default()
  };
  let (result, took) = timed(
    "tryAcquire",
    manager.acquire("other", try_once, CancellationToken::new()),
  )
  .await;
  assert_eq!(
    result.expect_err("stalled").code(),
    "ERR_BACKEND_UNAVAILABLE"
  );
  // A request is cut at the limit; a little more for the timer under load.
  let bound = limit + Duration::from_millis(500);
  assert!(took <= bound, "tryAcquire took {took:?}");
  let (result, took) = timed("inspect", manager.inspect("held")).await;
  assert!(
    result.is_err() && took <= bound,
    "inspect: {result:?} after {took:?}"
  );
  let (result, took) = timed("extend", lock.extend(Duration::from_secs(10))).await;
  assert!(
    result.is_err() && took <= bound,
    "extend: {result:?} after {took:?}"
  );
  let (result, took) = timed("release", lock.release()).await;
  let err = result.expect_err("release through a stall is not confirmed");
  assert!(
    err.to_string().contains("requestTimeout"),
    "the message names the timeout: {err}"
  );
  assert!(took <= bound, "release took {took:?}");
  // Not confirmed: the lock ends lost, and says why.
  let mut events = lock.take_events().expect("events");
  let mut last = None;
  while let Ok(ev) = events.try_recv() {
    last = Some(ev);
  }
  assert_eq!(
    last,
    Some(LeaseEvent::Lost {
      reason: LostReason::Unconfirmed
    })
  );
  proxy.stall(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_rejects_waiters_at_once_and_reports_only_confirmed_releases() {
  let server = RedisServer::start();
  let proxy = StallProxy::start(server.port);
  let limit = Duration::from_millis(800);
  let hung = Arc::new(LockManager::with_request_timeout(redis(proxy.url()), limit));
  let healthy = LockManager::new(redis(server.url()));
  let held = hung
    .acquire("a", wait_for(1000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("granted");
  let mut held_events = held.take_events().expect("events");
  // A waiter on a lock another client holds, polling through the proxy.
  let other = healthy
    .acquire("b", wait_for(1000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("granted");
  let waiting = {
    let hung = hung.clone();
    tokio::spawn(async move {
      let forever = AcquireOptions {
        wait: Wait::Forever,
        ..Default::default()
      };
      let result = hung.acquire("b", forever, CancellationToken::new()).await;
      (result.map(|l| l.is_some()), Instant::now())
    })
  };
  // Let the waiter get into its polling, then hang the server with requests in flight.
  tokio::time::sleep(Duration::from_millis(300)).await;
  proxy.stall(true);
  tokio::time::sleep(Duration::from_millis(100)).await;
  let closing = Instant::now();
  let ((), took) = timed("close", hung.close()).await;
  let (result, rejected_at) = timeout(Duration::from_secs(60), waiting)
    .await
    .expect("the waiter hung")
    .expect("task");
  assert!(
    matches!(result, Err(LockError::Closed)),
    "waiter: {result:?}"
  );
  assert!(
    rejected_at.saturating_duration_since(closing) <= Duration::from_millis(100),
    "the waiter was rejected {:?} after close()",
    rejected_at - closing
  );
  assert!(
    took <= limit + Duration::from_millis(500),
    "close() took {took:?}"
  );
  let mut last = None;
  while let Ok(ev) = held_events.try_recv() {
    last = Some(ev);
  }
  assert_eq!(
    last,
    Some(LeaseEvent::Lost {
      reason: LostReason::Unconfirmed
    }),
    "a release the server did not confirm is not `released`"
  );
  // The key is still there: other clients see it held until its lease ends.
  assert!(healthy.inspect("a").await.expect("inspect").is_some());
  // A healthy close releases for real.
  let mut other_events = other.take_events().expect("events");
  healthy.close().await;
  let mut last = None;
  while let Ok(ev) = other_events.try_recv() {
    last = Some(ev);
  }
  assert_eq!(last, Some(LeaseEvent::Released));
  proxy.stall(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_deadlines_hold_while_dynamodb_hangs() {
  let dynalite = Dynalite::start();
  let proxy = StallProxy::start(dynalite.port);
  let opts = |endpoint: String| {
    let mut o = DynamoOptions::new("deadlines");
    o.region = Some("us-east-1".into());
    o.endpoint = Some(endpoint);
    o.credentials = Some(StaticCredentials {
      access_key_id: "AKIDLOCAL".into(),
      secret_access_key: "local-secret".into(),
      session_token: None,
    });
    o
  };
  let direct = DynamoStore::new(opts(dynalite.endpoint())).expect("options");
  direct
    .create_table(&TableOptions::default())
    .await
    .expect("create table");
  let store =
    Arc::new(DynamoStore::new(opts(format!("http://127.0.0.1:{}", proxy.port))).expect("options"));
  let manager = LockManager::new(store);
  let lock = manager
    .acquire("warm", wait_for(2000), CancellationToken::new())
    .await
    .expect("acquire on a healthy server")
    .expect("granted");
  lock.release().await.expect("release");
  proxy.stall(true);
  for ms in [50, 500] {
    let (result, took) = timed(
      "acquire with a wait deadline",
      manager.acquire("job", short(ms), CancellationToken::new()),
    )
    .await;
    let err = result.expect_err("nothing can be granted through a stalled server");
    assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE", "{err}");
    assert!(
      took <= Duration::from_millis(ms) + PAST_DEADLINE,
      "wait {ms} ms settled after {took:?}"
    );
  }
  proxy.stall(false);
  // Healthy again: the lock that no attempt got is free for the next caller.
  let again = manager
    .acquire("job", short(8000), CancellationToken::new())
    .await
    .expect("acquire after the stall");
  assert!(again.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_deadlines_hold_while_every_redlock_master_hangs() {
  let servers = support::masters(3);
  let proxies: Vec<StallProxy> = servers.iter().map(|s| StallProxy::start(s.port)).collect();
  let urls: Vec<String> = proxies.iter().map(StallProxy::url).collect();
  // The binding bounds a Redlock operation by 4 x the per-master timeout (500 ms).
  let store = support::redlock_store(&urls, Some(Duration::from_millis(500)));
  let manager = LockManager::with_request_timeout(store, Duration::from_secs(2));
  let lock = manager
    .acquire("warm", wait_for(2000), CancellationToken::new())
    .await
    .expect("acquire on healthy masters")
    .expect("granted");
  lock.release().await.expect("release");
  for p in &proxies {
    p.stall(true);
  }
  for ms in [50, 500, 1500] {
    let (result, took) = timed(
      "acquire with a wait deadline",
      manager.acquire("job", wait_for(ms), CancellationToken::new()),
    )
    .await;
    let err = result.expect_err("no master answers");
    assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE", "{err}");
    assert!(
      took <= Duration::from_millis(ms) + PAST_DEADLINE,
      "wait {ms} ms settled after {took:?}"
    );
  }
  for p in &proxies {
    p.stall(false);
  }
}
