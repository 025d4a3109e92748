//! The Redis store's server side: what a lock costs the server (commands per operation, from
//! INFO commandstats), that no key outlives its lock or its queue by more than 60 s, and that
//! fences keep increasing once the fence counter has expired. Every test runs against its own
//! redis-server.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  Acquire, AcquireExtras, AcquireOptions, AcquireRequest, LockError, LockManager, LockStore,
  RedisOptions, RedisStore, Wait,
};
use futures_util::StreamExt;
use support::RedisServer;
use tokio_util::sync::CancellationToken;

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

/// The longest any companion key may outlive its lock or queue.
const LIMIT_MS: i64 = 60_000;

/// How long the fence counter is kept past its fence's time in these tests (60 s in use).
const KEEP: Duration = Duration::from_millis(300);

fn store(server: &RedisServer) -> RedisStore {
  RedisStore::new(RedisOptions {
    url: Some(server.url()),
    ..Default::default()
  })
  .expect("options")
  .with_fence_keep(KEEP)
}

fn attempt(token: &str, queue_for: Option<Duration>) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: "owner",
    ttl: Duration::from_secs(10),
    data: None,
    queue_for,
    extras: &NO_EXTRAS,
  }
}

fn opts(ttl_ms: u64) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_millis(ttl_ms),
    auto_extend: false,
    retry_delay: Duration::from_millis(50),
    retry_jitter: Duration::ZERO,
    ..Default::default()
  }
}

async fn granted(store: &RedisStore, name: &str, token: &str) -> u64 {
  match store.try_acquire(name, &attempt(token, None)).await {
    Ok(Acquire::Granted(grant)) => grant.fence,
    other => panic!("expected a grant of {name}, got {other:?}"),
  }
}

/// Calls per command since the last CONFIG RESETSTAT (without the CONFIG and INFO calls).
fn commands(server: &RedisServer) -> BTreeMap<String, u64> {
  let info = server.cli(&["info", "commandstats"]);
  info
    .lines()
    .filter_map(|line| {
      let rest = line.strip_prefix("cmdstat_")?;
      let (name, stats) = rest.split_once(':')?;
      let calls = stats
        .strip_prefix("calls=")?
        .split(',')
        .next()?
        .parse()
        .ok()?;
      (!name.starts_with("config") && name != "info").then(|| (name.to_owned(), calls))
    })
    .collect()
}

fn expect_commands(server: &RedisServer, what: &str, expected: &[(&str, u64)]) {
  let expected: BTreeMap<String, u64> = expected
    .iter()
    .map(|(name, calls)| ((*name).to_owned(), *calls))
    .collect();
  assert_eq!(commands(server), expected, "{what}");
}

/// Every key with its remaining time in ms (-1: no expiry). A key that expired between KEYS and
/// its PTTL (-2: gone; one redis-cli call each, slow on a loaded machine) is left out.
fn keys_and_ttls(server: &RedisServer) -> BTreeMap<String, i64> {
  server
    .cli(&["keys", "*"])
    .lines()
    .filter(|key| !key.is_empty())
    .map(|key| {
      let pttl: i64 = server.cli(&["pttl", key]).parse().expect("pttl");
      (key.to_owned(), pttl)
    })
    .filter(|(_, pttl)| *pttl != -2)
    .collect()
}

/// Asserts that every key but `lock` (if given) expires within 60 s; returns those keys.
fn companions_expire_soon(server: &RedisServer, lock: Option<&str>) -> HashSet<String> {
  let keys = keys_and_ttls(server);
  for (key, pttl) in &keys {
    if Some(key.as_str()) != lock {
      assert!(
        *pttl > 0 && *pttl <= LIMIT_MS,
        "{key} expires in {pttl} ms (every key: {keys:?})"
      );
    }
  }
  keys
    .into_keys()
    .filter(|key| Some(key.as_str()) != lock)
    .collect()
}

/// Subscribes to the server's "expired" key events; `wait_expired` then awaits them.
async fn expiry_events(server: &RedisServer) -> redis::aio::PubSub {
  server.cli(&["config", "set", "notify-keyspace-events", "Ex"]);
  let client = redis::Client::open(server.url()).expect("client");
  let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
  pubsub
    .subscribe("__keyevent@0__:expired")
    .await
    .expect("subscribe");
  pubsub
}

/// Waits (at most 10 s) until every key of `keys` has expired.
async fn wait_expired(
  pubsub: &mut redis::aio::PubSub,
  server: &RedisServer,
  keys: HashSet<String>,
) {
  let mut left = keys;
  // Keys that expired before this call was made: already gone.
  left.retain(|key| server.cli(&["exists", key]) == "1");
  let mut messages = pubsub.on_message();
  let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
  while !left.is_empty() {
    let message = tokio::time::timeout_at(deadline, messages.next())
      .await
      .unwrap_or_else(|_| panic!("these keys did not expire within 10 s: {left:?}"))
      .expect("the subscription ended");
    let key: String = message.get_payload().expect("payload");
    left.remove(&key);
  }
}

#[tokio::test]
async fn a_free_lock_costs_one_script_and_its_release_wakes_nobody() {
  let server = RedisServer::start();
  let store = store(&server);
  // Scripts loaded, connection made.
  let warm = granted(&store, "warm", "t0").await;
  assert!(warm > 0);
  assert!(store.release("warm", "t0").await.expect("release"));

  server.cli(&["config", "resetstat"]);
  granted(&store, "job", "t1").await;
  expect_commands(
    &server,
    "acquire of a free lock",
    &[
      ("evalsha", 1),
      ("exists", 1),
      ("time", 1),
      ("hset", 1),
      ("pexpire", 1),
    ],
  );

  server.cli(&["config", "resetstat"]);
  assert!(store.release("job", "t1").await.expect("release"));
  expect_commands(
    &server,
    "release with nobody waiting (no PUBLISH)",
    &[("evalsha", 1), ("hmget", 1), ("del", 1), ("time", 1)],
  );
  assert_eq!(
    server.cli(&["dbsize"]),
    "0",
    "a released lock leaves no key"
  );

  // A counter below the clock (an older version kept them for 7 days) is dropped by the next
  // grant, and the one after that takes the short path again.
  server.cli(&["set", "{lock:job}:fence", "1000", "ex", "604800"]);
  let fence = granted(&store, "job", "old").await;
  assert!(fence > 1000);
  assert!(store.release("job", "old").await.expect("release"));
  assert_eq!(server.cli(&["dbsize"]), "0");
  server.cli(&["config", "resetstat"]);
  granted(&store, "job", "t1").await;
  assert_eq!(commands(&server).get("evalsha"), Some(&1));
  assert_eq!(commands(&server).len(), 5, "{:?}", commands(&server));
  assert!(store.release("job", "t1").await.expect("release"));

  // With a waiter in the queue, the release wakes it (one PUBLISH, to the queue's head).
  granted(&store, "job", "t2").await;
  let waiting = store
    .try_acquire("job", &attempt("t3", Some(Duration::from_secs(2))))
    .await;
  assert!(matches!(waiting, Ok(Acquire::Held(_))), "{waiting:?}");
  server.cli(&["config", "resetstat"]);
  assert!(store.release("job", "t2").await.expect("release"));
  assert_eq!(commands(&server).get("publish"), Some(&1));
  // The head takes it; the queue is gone with it.
  granted(&store, "job", "t3").await;
  assert_eq!(server.cli(&["exists", "{lock:job}:queue"]), "0");
  assert!(store.release("job", "t3").await.expect("release"));
  assert_eq!(server.cli(&["dbsize"]), "0");
}

#[tokio::test]
async fn redlock_releases_wake_only_when_someone_waits() {
  let masters = support::masters(3);
  let urls: Vec<String> = masters.iter().map(RedisServer::url).collect();
  let store = support::redlock_store(&urls, None);
  let mgr = Arc::new(LockManager::new(store));
  let warm = mgr
    .acquire("warm", opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(warm.release().await.expect("release"));

  for m in &masters {
    m.cli(&["config", "resetstat"]);
  }
  let lock = mgr
    .acquire("quiet", opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(lock.release().await.expect("release"));
  for m in &masters {
    assert_eq!(commands(m).get("publish"), None, "no waiter, no PUBLISH");
    assert_eq!(m.cli(&["dbsize"]), "0");
  }

  // A waiter (Redlock does not queue) is woken by the release: its poll period is far longer
  // than the wait below allows.
  let held = mgr
    .acquire("busy", opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  let waiter = {
    let mgr = mgr.clone();
    tokio::spawn(async move {
      let wait = AcquireOptions {
        retry_delay: Duration::from_secs(30),
        wait: Wait::For(Duration::from_secs(20)),
        ..opts(10_000)
      };
      mgr.acquire("busy", wait, CancellationToken::new()).await
    })
  };
  // Listed as waiting on a majority and subscribed.
  let listed = async {
    while mgr.stats().watched == 0
      || masters
        .iter()
        .filter(|m| m.cli(&["exists", "{lock:busy}:waiters"]) == "1")
        .count()
        < 2
    {
      tokio::task::yield_now().await;
    }
  };
  tokio::time::timeout(Duration::from_secs(10), listed)
    .await
    .expect("the waiter was listed on a majority within 10 s");
  assert!(held.release().await.expect("release"));
  let next = tokio::time::timeout(Duration::from_secs(10), waiter)
    .await
    .expect("the release woke the waiter")
    .expect("join")
    .expect("acquire")
    .expect("lock");
  assert!(next.fence() > held.fence());
  assert!(next.release().await.expect("release"));
  for m in &masters {
    companions_expire_soon(m, None);
  }
}

#[tokio::test]
async fn every_companion_key_expires_and_fences_still_increase() {
  let server = RedisServer::start();
  let mut expired = expiry_events(&server).await;
  let store = Arc::new(store(&server));
  let mgr = Arc::new(LockManager::new(store.clone()));

  // A counter ahead of the server clock: what a clock stepped back by 200 ms leaves behind.
  let now_us: u64 = {
    let time = server.cli(&["time"]);
    let mut parts = time.lines().map(|l| l.trim().parse::<u64>().expect("time"));
    let (secs, micros) = (parts.next().expect("s"), parts.next().expect("µs"));
    secs * 1_000_000 + micros
  };
  let ahead = now_us + 200_000;
  server.cli(&["set", "{lock:job}:fence", &ahead.to_string()]);

  let holder = mgr
    .acquire("job", opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert_eq!(holder.fence(), ahead + 1, "one more than the counter");
  // The counter now expires (at 200 ms + keep), where the test left it without an expiry.
  companions_expire_soon(&server, Some("lock:job"));

  // A waiter that gives up leaves the queue; one that crashed (it never says so) stays listed
  // for its poll period only.
  let gave_up = mgr
    .acquire(
      "job",
      AcquireOptions {
        wait: Wait::For(Duration::from_millis(300)),
        ..opts(10_000)
      },
      CancellationToken::new(),
    )
    .await;
  assert!(
    matches!(gave_up, Err(LockError::NotAcquired { .. })),
    "{gave_up:?}"
  );
  let crashed = store
    .try_acquire("job", &attempt("crashed", Some(Duration::from_millis(400))))
    .await;
  assert!(matches!(crashed, Ok(Acquire::Held(_))), "{crashed:?}");
  let companions = companions_expire_soon(&server, Some("lock:job"));
  assert!(companions.contains("{lock:job}:queue"), "{companions:?}");
  assert!(companions.contains("{lock:job}:waiters"), "{companions:?}");
  let lock_ttl = keys_and_ttls(&server)["lock:job"];
  assert!(lock_ttl > 0 && lock_ttl <= 10_000, "{lock_ttl}");

  assert!(holder.release().await.expect("release"));
  let left = companions_expire_soon(&server, None);
  assert!(!left.contains("lock:job"));
  wait_expired(&mut expired, &server, left).await;
  assert_eq!(server.cli(&["dbsize"]), "0", "{:?}", keys_and_ttls(&server));

  // The counter is gone: the next fence is the clock's, which has passed it.
  let next = mgr
    .acquire("job", opts(10_000), CancellationToken::new())
    .await
    .expect("acquire")
    .expect("lock");
  assert!(
    next.fence() > holder.fence(),
    "{} after {}",
    next.fence(),
    holder.fence()
  );
  assert!(next.release().await.expect("release"));
  assert_eq!(server.cli(&["dbsize"]), "0", "{:?}", keys_and_ttls(&server));
}

#[tokio::test]
async fn a_clock_behind_the_fence_at_release_extend_or_expiry_keeps_fences_increasing() {
  let server = RedisServer::start();
  let mut expired = expiry_events(&server).await;
  let store = store(&server);
  // Ahead of the clock by 1 s plus 1 s of slack (x FERROLOCK_TEST_SLACK): the counter must outlive
  // the redis-cli round trips between the grant and the checks (it once did not, at load 9).
  let ahead_us = support::within(1_000).as_micros() as u64;
  let far = |fence: u64| fence + ahead_us;

  // Release while the clock is behind the lock's fence (it was stepped back): the counter
  // keeps the fence, so the next grant at once is still higher.
  let f1 = granted(&store, "r", "a").await;
  let ahead = far(f1);
  server.cli(&["hset", "lock:r", "fence", &ahead.to_string()]);
  assert!(store.release("r", "a").await.expect("release"));
  assert_eq!(server.cli(&["get", "{lock:r}:fence"]), ahead.to_string());
  companions_expire_soon(&server, None);
  let f2 = granted(&store, "r", "b").await;
  assert_eq!(f2, ahead + 1);
  assert!(store.release("r", "b").await.expect("release"));
  // The counter expires once the clock has passed it (plus the keep); the fence after that,
  // from the clock, is higher still.
  wait_expired(&mut expired, &server, companions_expire_soon(&server, None)).await;
  assert_eq!(server.cli(&["dbsize"]), "0");
  let f3 = granted(&store, "r", "c").await;
  assert!(f3 > f2, "{f3} after {f2}");
  assert!(store.release("r", "c").await.expect("release"));

  // Extend while the clock is behind the fence, then the lease runs out (no release): the
  // counter written by the extend keeps the next fence higher.
  let f4 = granted(&store, "e", "a").await;
  let ahead = far(f4);
  server.cli(&["hset", "lock:e", "fence", &ahead.to_string()]);
  assert!(store
    .extend("e", "a", Duration::from_millis(50))
    .await
    .expect("extend"));
  assert_eq!(server.cli(&["get", "{lock:e}:fence"]), ahead.to_string());
  wait_expired(&mut expired, &server, HashSet::from(["lock:e".to_owned()])).await;
  let f5 = granted(&store, "e", "b").await;
  assert_eq!(f5, ahead + 1);
  assert!(store.release("e", "b").await.expect("release"));
  wait_expired(&mut expired, &server, companions_expire_soon(&server, None)).await;
  assert_eq!(server.cli(&["dbsize"]), "0");
}

#[tokio::test]
async fn a_key_of_another_type_is_held_and_never_touched() {
  let server = RedisServer::start();
  let store = store(&server);
  server.cli(&["set", "lock:theirs", "their-token", "px", "5000"]);
  for queue_for in [None, Some(Duration::from_secs(1))] {
    match store
      .try_acquire("theirs", &attempt("ours", queue_for))
      .await
    {
      Ok(Acquire::Held(holder)) => {
        assert_eq!(holder.owner, None);
        assert!(holder
          .remaining
          .is_some_and(|r| r <= Duration::from_secs(5)));
      }
      other => panic!("expected held, got {other:?}"),
    }
  }
  assert!(!store
    .release("theirs", "their-token")
    .await
    .expect("release"));
  assert!(!store
    .extend("theirs", "their-token", Duration::from_secs(60))
    .await
    .expect("extend"));
  assert_eq!(server.cli(&["get", "lock:theirs"]), "their-token");
  let pttl: i64 = server.cli(&["pttl", "lock:theirs"]).parse().expect("pttl");
  assert!(pttl > 0 && pttl <= 5000, "{pttl}");
  companions_expire_soon(&server, Some("lock:theirs"));
  store.leave_queue("theirs", "ours").await.expect("leave");
  assert_eq!(server.cli(&["keys", "*"]), "lock:theirs");
}
