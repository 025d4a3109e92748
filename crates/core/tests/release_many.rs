//! Batched release (`LockStore::release_many`, what `close()` sends for many held locks) against
//! real redis-server processes, on one server and on Redlock masters: the locks that are ours
//! are deleted and answer `true`, exactly those deleted behind our back or taken by another
//! owner answer `false`, the other owner's lock stays untouched, a waiter of a released name is
//! woken, and each server gets the whole batch in one pipelined write. On a Redis Cluster (every
//! release at once, each routed to its slot's master) the same answers.

mod support;

use std::pin::pin;
use std::time::Duration;

use ferrolock_core::store::Owned;
use ferrolock_core::{
  Acquire, AcquireExtras, AcquireRequest, LockStore, RedisOptions, RedisStore, Watch,
};
use support::{within, RedisCluster, RedisServer};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

fn req(token: &str, queue_for: Option<Duration>) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: token,
    ttl: Duration::from_secs(30),
    data: None,
    queue_for,
    extras: &NO_EXTRAS,
  }
}

async fn grant(store: &dyn LockStore, name: &str, token: &str) {
  match store.try_acquire(name, &req(token, None)).await {
    Ok(Acquire::Granted(_)) => {}
    other => panic!("{name} not granted to {token}: {other:?}"),
  }
}

fn redis_store(server: &RedisServer) -> RedisStore {
  RedisStore::new(RedisOptions {
    url: Some(server.url()),
    ..Default::default()
  })
  .expect("valid options")
}

/// `field` of `INFO stats`.
fn stat(server: &RedisServer, field: &str) -> u64 {
  let info = server.cli(&["info", "stats"]);
  info
    .lines()
    .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
    .and_then(|v| v.trim().parse().ok())
    .unwrap_or_else(|| panic!("no {field} in INFO stats"))
}

/// How often `cmd` ran, from `INFO commandstats` (0 when never).
fn calls(server: &RedisServer, cmd: &str) -> u64 {
  let info = server.cli(&["info", "commandstats"]);
  info
    .lines()
    .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))
    .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("calls=")))
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

/// What a server received: read events and script runs. Reading them costs read events of its
/// own (the redis-cli connections), measured once with nothing in between and taken off.
struct Counters {
  reads: u64,
  evalsha: u64,
  eval: u64,
  overhead: u64,
}

impl Counters {
  fn take(server: &RedisServer) -> (u64, u64, u64) {
    let evalsha = calls(server, "evalsha");
    let eval = calls(server, "eval");
    (stat(server, "total_reads_processed"), evalsha, eval)
  }

  fn start(server: &RedisServer) -> Counters {
    let (before, _, _) = Counters::take(server);
    let (reads, evalsha, eval) = Counters::take(server);
    Counters {
      reads,
      evalsha,
      eval,
      overhead: reads - before,
    }
  }

  /// (read events, EVALSHA runs, EVAL runs) since `start`.
  fn since(&self, server: &RedisServer) -> (u64, u64, u64) {
    let (reads, evalsha, eval) = Counters::take(server);
    (
      (reads - self.reads).saturating_sub(self.overhead),
      evalsha - self.evalsha,
      eval - self.eval,
    )
  }
}

/// A watch of `name` that has registered for its next wake-up, on `store`.
async fn watch(store: &dyn LockStore, name: &str) -> Watch {
  store
    .watch(name)
    .await
    .expect("watch")
    .expect("redis pushes release notifications")
}

/// Which locks of a batch of `n` are not ours any more at release time: every fifth from 1 was
/// deleted behind our back, every fifth from 2 was then taken by another owner.
fn fate(i: usize) -> &'static str {
  match i % 5 {
    1 => "deleted",
    2 => "taken",
    _ => "ours",
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_releases_a_batch_in_one_write_and_only_our_locks() {
  let server = RedisServer::start();
  let (ours, other) = (redis_store(&server), redis_store(&server));
  let n = 60;
  let names: Vec<String> = (0..n).map(|i| format!("many-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  for (name, token) in names.iter().zip(&tokens) {
    grant(&ours, name, token).await;
  }
  for (i, name) in names.iter().enumerate() {
    if fate(i) != "ours" {
      assert_eq!(server.cli(&["del", &format!("lock:{name}")]), "1");
    }
    if fate(i) == "taken" {
      grant(&other, name, &format!("other-{i}")).await;
    }
  }
  // A waiter of many-3 (ours), in the other process: listed in the queue, watching.
  let waited = &names[3];
  let waiter = watch(&other, waited).await;
  let mut woken = pin!(waiter.notified());
  woken.as_mut().enable();
  let queued = other
    .try_acquire(waited, &req("waiter", Some(Duration::from_secs(10))))
    .await;
  assert!(matches!(queued, Ok(Acquire::Held(_))), "{queued:?}");

  // The release script is in the server's cache already (as after any earlier release): what
  // is counted below is the batch itself.
  grant(&ours, "warm", "warm").await;
  assert_eq!(ours.release("warm", "warm").await.ok(), Some(true));
  let counters = Counters::start(&server);
  let items: Vec<Owned> = names
    .iter()
    .zip(&tokens)
    .map(|(name, token)| Owned { name, token })
    .collect();
  let results = ours.release_many(&items).await;
  let (reads, evalsha, eval) = counters.since(&server);

  assert_eq!(results.len(), n);
  for (i, result) in results.iter().enumerate() {
    let expected = fate(i) == "ours";
    assert!(
      matches!(result, Ok(r) if *r == expected),
      "{} ({}): {result:?}",
      names[i],
      fate(i)
    );
    let key = format!("lock:{}", names[i]);
    if fate(i) == "taken" {
      // The other owner's lock: its token and lease as they were.
      assert_eq!(server.cli(&["hget", &key, "id"]), format!("other-{i}"));
      let pttl: i64 = server.cli(&["pttl", &key]).parse().expect("pttl");
      assert!(pttl > 20_000, "{key}: pttl {pttl}");
    } else {
      assert_eq!(server.cli(&["exists", &key]), "0", "{key}");
    }
  }
  // One script per lock, none sent twice, in one write: the server read it in 0-1 read events
  // here; the same 60 releases sent one by one, even concurrently over the multiplexed
  // connection, took 12-36.
  assert_eq!(evalsha, n as u64, "script runs");
  assert_eq!(eval, 0, "no NOSCRIPT fallback");
  assert!(reads <= 4, "{reads} read events for one batch");

  tokio::time::timeout(within(1_000), woken)
    .await
    .expect("the waiter of a released name was not woken");
  assert!(waiter.addressed_to("waiter"), "woken as first in line");
  grant(&other, waited, "waiter").await;
  ours.close().await;
  other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_releases_a_batch_in_one_write_per_master_each_lock_by_its_majority() {
  let servers = support::masters(3);
  let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
  let (ours, other) = (
    support::redlock_store(&urls, None),
    support::redlock_store(&urls, None),
  );
  let n = 60;
  let names: Vec<String> = (0..n).map(|i| format!("rl-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  for (name, token) in names.iter().zip(&tokens) {
    grant(&*ours, name, token).await;
  }
  for (i, name) in names.iter().enumerate() {
    if fate(i) != "ours" {
      for server in &servers {
        server.cli(&["del", &format!("lock:{name}")]);
      }
    }
    if fate(i) == "taken" {
      grant(&*other, name, &format!("other-{i}")).await;
    }
  }
  // Another owner on one master only: a minority, so the lock is still ours (majority) and is
  // released where it is ours; the other owner's key on that master stays.
  let split = &names[5];
  assert_eq!(servers[0].cli(&["del", &format!("lock:{split}")]), "1");
  assert_eq!(
    servers[0].cli(&["hset", &format!("lock:{split}"), "id", "intruder"]),
    "1"
  );
  let waited = &names[3];
  let waiter = watch(&*other, waited).await;
  let mut woken = pin!(waiter.notified());
  woken.as_mut().enable();
  let queued = other
    .try_acquire(waited, &req("waiter", Some(Duration::from_secs(10))))
    .await;
  assert!(matches!(queued, Ok(Acquire::Held(_))), "{queued:?}");

  grant(&*ours, "warm", "warm").await;
  assert_eq!(ours.release("warm", "warm").await.ok(), Some(true));
  let counters: Vec<Counters> = servers.iter().map(Counters::start).collect();
  let items: Vec<Owned> = names
    .iter()
    .zip(&tokens)
    .map(|(name, token)| Owned { name, token })
    .collect();
  let results = ours.release_many(&items).await;
  let seen: Vec<(u64, u64, u64)> = servers
    .iter()
    .zip(&counters)
    .map(|(s, c)| c.since(s))
    .collect();

  assert_eq!(results.len(), n);
  for (i, result) in results.iter().enumerate() {
    let expected = fate(i) == "ours";
    assert!(
      matches!(result, Ok(r) if *r == expected),
      "{} ({}): {result:?}",
      names[i],
      fate(i)
    );
    let key = format!("lock:{}", names[i]);
    for (m, server) in servers.iter().enumerate() {
      if fate(i) == "taken" {
        assert_eq!(
          server.cli(&["hget", &key, "id"]),
          format!("other-{i}"),
          "{key} on master {m}"
        );
      } else if names[i] == *split && m == 0 {
        assert_eq!(server.cli(&["hget", &key, "id"]), "intruder", "{key}");
      } else {
        assert_eq!(server.cli(&["exists", &key]), "0", "{key} on master {m}");
      }
    }
  }
  for (m, (reads, evalsha, eval)) in seen.into_iter().enumerate() {
    assert_eq!(evalsha, n as u64, "script runs on master {m}");
    assert_eq!(eval, 0, "no NOSCRIPT fallback on master {m}");
    assert!(
      reads <= 4,
      "{reads} read events for one batch on master {m}"
    );
  }

  tokio::time::timeout(within(1_000), woken)
    .await
    .expect("the waiter of a released name was not woken");
  grant(&*other, waited, "waiter").await;
  ours.close().await;
  other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_releases_a_batch_across_its_masters_and_only_our_locks() {
  let mut cluster = RedisCluster::start();
  let store = || {
    RedisStore::new(RedisOptions {
      cluster: Some(cluster.urls()),
      ..Default::default()
    })
    .expect("valid options")
  };
  let (ours, other) = (store(), store());
  let n = 30;
  let names: Vec<String> = (0..n).map(|i| format!("cl-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  for (name, token) in names.iter().zip(&tokens) {
    grant(&ours, name, token).await;
  }
  for (i, name) in names.iter().enumerate() {
    let key = format!("lock:{name}");
    if fate(i) != "ours" {
      assert_eq!(cluster.master_of(&key).cli(&["del", &key]), "1");
    }
    if fate(i) == "taken" {
      grant(&other, name, &format!("other-{i}")).await;
    }
  }
  let waited = &names[3];
  let waiter = watch(&other, waited).await;
  let mut woken = pin!(waiter.notified());
  woken.as_mut().enable();
  let queued = other
    .try_acquire(waited, &req("waiter", Some(Duration::from_secs(10))))
    .await;
  assert!(matches!(queued, Ok(Acquire::Held(_))), "{queued:?}");

  let items: Vec<Owned> = names
    .iter()
    .zip(&tokens)
    .map(|(name, token)| Owned { name, token })
    .collect();
  let results = ours.release_many(&items).await;
  assert_eq!(results.len(), n);
  for (i, result) in results.iter().enumerate() {
    let expected = fate(i) == "ours";
    assert!(
      matches!(result, Ok(r) if *r == expected),
      "{} ({}): {result:?}",
      names[i],
      fate(i)
    );
    let key = format!("lock:{}", names[i]);
    let node = cluster.master_of(&key);
    if fate(i) == "taken" {
      assert_eq!(node.cli(&["hget", &key, "id"]), format!("other-{i}"));
    } else {
      assert_eq!(node.cli(&["exists", &key]), "0", "{key}");
    }
  }
  tokio::time::timeout(within(1_000), woken)
    .await
    .expect("the waiter of a released name was not woken");
  assert!(waiter.addressed_to("waiter"), "woken as first in line");
  ours.close().await;
  other.close().await;
}
