//! Batched renewals and releases on a Redis Cluster (`extend_many` / `release_many`, what the
//! heartbeat and `close()` send), against a real 6-node cluster: one pipelined write per master
//! for the locks whose slots it serves, each lock's script run against its own keys with its
//! own answer. A lock deleted or taken behind our back answers `false` without hiding another's
//! renewal; a lock whose slot moved since the batch was grouped is retried on its new master
//! (never reported lost because of a redirect); a stopped master fails only its own locks.

mod support;

use std::time::{Duration, Instant};

use ferrolock_core::store::{Owned, Renewal};
use ferrolock_core::{
  Acquire, AcquireExtras, AcquireRequest, LockError, LockStore, RedisOptions, RedisStore,
};
use support::{bounded, within, RedisCluster, RedisServer};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

const TTL: Duration = Duration::from_secs(30);

fn req(token: &str) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: token,
    ttl: TTL,
    data: None,
    queue_for: None,
    extras: &NO_EXTRAS,
  }
}

fn cluster_store(cluster: &RedisCluster) -> RedisStore {
  RedisStore::new(RedisOptions {
    cluster: Some(cluster.urls()),
    ..Default::default()
  })
  .expect("valid options")
}

/// Grants every name to its token, 64 at a time.
async fn grant_all(store: &RedisStore, names: &[String], tokens: &[String]) {
  use futures_util::stream::{self, StreamExt};
  let granted: Vec<bool> = stream::iter(names.iter().zip(tokens))
    .map(|(name, token)| async move {
      matches!(
        store.try_acquire(name, &req(token)).await,
        Ok(Acquire::Granted(_))
      )
    })
    .buffered(64)
    .collect()
    .await;
  assert!(granted.iter().all(|g| *g), "every lock granted");
}

/// A plain cluster connection of the test's own, to look at and change keys behind the store.
fn peek(cluster: &RedisCluster) -> redis::cluster::ClusterConnection {
  redis::cluster::ClusterClient::new(cluster.urls())
    .expect("cluster client")
    .get_connection()
    .expect("cluster connection")
}

fn run<T: redis::FromRedisValue>(con: &mut redis::cluster::ClusterConnection, args: &[&str]) -> T {
  let mut cmd = redis::cmd(args[0]);
  for a in &args[1..] {
    cmd.arg(*a);
  }
  cmd.query(con).expect("command")
}

/// `field` of `INFO <section>` on `server`.
fn info(server: &RedisServer, section: &str, field: &str) -> u64 {
  server
    .cli(&["info", section])
    .lines()
    .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
    .and_then(|v| v.trim().parse().ok())
    .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

/// How often `cmd` ran on `server`, from `INFO commandstats` (0 when never).
fn calls(server: &RedisServer, cmd: &str) -> u64 {
  server
    .cli(&["info", "commandstats"])
    .lines()
    .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))
    .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("calls=")))
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

/// The nodes that are masters now.
fn masters(cluster: &RedisCluster) -> Vec<&RedisServer> {
  let masters: Vec<&RedisServer> = cluster
    .nodes
    .iter()
    .filter(|n| n.alive() && n.cli(&["role"]).lines().next() == Some("master"))
    .collect();
  assert_eq!(masters.len(), 3, "3 masters");
  masters
}

/// What one master received since `start`: read events (one per socket read: a pipelined
/// batch is a few, one script per lock sent separately is about one each) and script runs.
/// Reading the counters costs read events of its own (the redis-cli connections), measured
/// once with nothing in between and taken off.
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
    (
      info(server, "stats", "total_reads_processed"),
      evalsha,
      eval,
    )
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

/// Which locks of a batch are not ours any more: every seventh from 3 was deleted behind our
/// back, every seventh from 5 was then taken by another owner.
fn fate(i: usize) -> &'static str {
  match i % 7 {
    3 => "deleted",
    5 => "taken",
    _ => "ours",
  }
}

/// Read events per master allowed for one batch of `scripts` scripts: a pipelined write of
/// about 150 bytes per script is read in 16 KB chunks (about 100 scripts each), plus a few
/// for the counters' own noise. One script per lock sent separately (the old cluster path)
/// took far more (see the tests).
fn read_bound(scripts: u64) -> u64 {
  4 + scripts / 40
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_renews_a_batch_in_one_pipeline_per_master_each_lock_its_own_answer() {
  let cluster = RedisCluster::start();
  let (ours, other) = (cluster_store(&cluster), cluster_store(&cluster));
  let n = 2_000;
  let names: Vec<String> = (0..n).map(|i| format!("cb-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  grant_all(&ours, &names, &tokens).await;
  let mut con = peek(&cluster);
  for (i, name) in names.iter().enumerate() {
    if fate(i) != "ours" {
      let key = format!("lock:{name}");
      assert_eq!(run::<i64>(&mut con, &["del", &key]), 1, "{key}");
    }
    if fate(i) == "taken" {
      let token = format!("other-{i}");
      assert!(matches!(
        other.try_acquire(name, &req(&token)).await,
        Ok(Acquire::Granted(_))
      ));
    }
  }
  // A first, small batch: the store learns which master serves which slot (one CLUSTER SLOTS),
  // as the first heartbeat after connecting does.
  let warm = [Renewal {
    name: &names[0],
    token: &tokens[0],
    ttl: TTL,
  }];
  assert_eq!(ours.extend_many(&warm).await[0].as_ref().ok(), Some(&true));

  // The renewal asks for a longer lease than the grant: a renewed lock's PTTL shows it.
  let longer = Duration::from_secs(90);
  let items: Vec<Renewal> = names
    .iter()
    .zip(&tokens)
    .map(|(name, token)| Renewal {
      name,
      token,
      ttl: longer,
    })
    .collect();
  let masters = masters(&cluster);
  let counters: Vec<Counters> = masters.iter().map(|m| Counters::start(m)).collect();
  let results = bounded("the batch", ours.extend_many(&items)).await;
  let seen: Vec<(u64, u64, u64)> = masters
    .iter()
    .zip(&counters)
    .map(|(m, c)| c.since(m))
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
    match fate(i) {
      "deleted" => assert_eq!(run::<i64>(&mut con, &["exists", &key]), 0, "{key}"),
      "taken" => {
        // The other owner's lock: its token and its own 30 s lease, not our 90 s.
        let id: String = run(&mut con, &["hget", &key, "id"]);
        assert_eq!(id, format!("other-{i}"));
        let pttl: i64 = run(&mut con, &["pttl", &key]);
        assert!((1..=30_000).contains(&pttl), "{key}: pttl {pttl}");
      }
      _ => {
        let pttl: i64 = run(&mut con, &["pttl", &key]);
        assert!(pttl > 60_000, "{key} renewed: pttl {pttl}");
      }
    }
  }
  // One script per lock on the master that serves it, none sent twice, without the NOSCRIPT
  // fallback, and each master read its share in a few socket reads.
  let total: u64 = seen.iter().map(|s| s.1).sum();
  assert_eq!(total, n as u64, "script runs over all masters: {seen:?}");
  for (m, (reads, evalsha, _)) in seen.iter().enumerate() {
    eprintln!("master {m}: {evalsha} renewals in {reads} read events");
  }
  for (m, (reads, evalsha, eval)) in seen.iter().enumerate() {
    assert!(
      *evalsha > 0,
      "master {m} serves some of {n} locks: {seen:?}"
    );
    assert_eq!(*eval, 0, "no NOSCRIPT fallback on master {m}");
    assert!(
      *reads <= read_bound(*evalsha),
      "master {m}: {reads} read events for {evalsha} renewals"
    );
  }
  ours.close().await;
  other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_releases_a_batch_in_one_pipeline_per_master_and_only_our_locks() {
  let cluster = RedisCluster::start();
  let (ours, other) = (cluster_store(&cluster), cluster_store(&cluster));
  let n = 1_000;
  let names: Vec<String> = (0..n).map(|i| format!("cr-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  grant_all(&ours, &names, &tokens).await;
  let mut con = peek(&cluster);
  for (i, name) in names.iter().enumerate() {
    if fate(i) != "ours" {
      let key = format!("lock:{name}");
      assert_eq!(run::<i64>(&mut con, &["del", &key]), 1, "{key}");
    }
    if fate(i) == "taken" {
      let token = format!("other-{i}");
      assert!(matches!(
        other.try_acquire(name, &req(&token)).await,
        Ok(Acquire::Granted(_))
      ));
    }
  }
  let warm = [Owned {
    name: "warm",
    token: "warm",
  }];
  assert_eq!(
    ours.release_many(&warm).await[0].as_ref().ok(),
    Some(&false)
  );

  let items: Vec<Owned> = names
    .iter()
    .zip(&tokens)
    .map(|(name, token)| Owned { name, token })
    .collect();
  let masters = masters(&cluster);
  let counters: Vec<Counters> = masters.iter().map(|m| Counters::start(m)).collect();
  let results = bounded("the batch", ours.release_many(&items)).await;
  let seen: Vec<(u64, u64, u64)> = masters
    .iter()
    .zip(&counters)
    .map(|(m, c)| c.since(m))
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
    if fate(i) == "taken" {
      let id: String = run(&mut con, &["hget", &key, "id"]);
      assert_eq!(id, format!("other-{i}"), "{key} kept");
    } else {
      assert_eq!(run::<i64>(&mut con, &["exists", &key]), 0, "{key}");
    }
  }
  let total: u64 = seen.iter().map(|s| s.1).sum();
  assert_eq!(total, n as u64, "script runs over all masters: {seen:?}");
  for (m, (reads, evalsha, _)) in seen.iter().enumerate() {
    eprintln!("master {m}: {evalsha} releases in {reads} read events");
  }
  for (m, (reads, evalsha, eval)) in seen.iter().enumerate() {
    assert_eq!(*eval, 0, "no NOSCRIPT fallback on master {m}");
    assert!(
      *reads <= read_bound(*evalsha),
      "master {m}: {reads} read events for {evalsha} releases"
    );
  }
  ours.close().await;
  other.close().await;
}

/// Renews `names` (each with its token) for 90 s in one batch.
async fn renew_all(
  store: &RedisStore,
  names: &[String],
  tokens: &[String],
) -> Vec<Result<bool, LockError>> {
  let items: Vec<Renewal> = names
    .iter()
    .zip(tokens)
    .map(|(name, token)| Renewal {
      name,
      token,
      ttl: Duration::from_secs(90),
    })
    .collect();
  bounded("the batch", store.extend_many(&items)).await
}

/// The cluster's id of `node`.
fn node_id(node: &RedisServer) -> String {
  node.cli(&["cluster", "myid"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_slot_moved_since_the_last_batch_is_renewed_on_its_new_master() {
  let mut cluster = RedisCluster::start();
  let store = cluster_store(&cluster);
  let n = 300;
  let names: Vec<String> = (0..n).map(|i| format!("mv-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  grant_all(&store, &names, &tokens).await;
  // The store learns the slots with this batch.
  let first = renew_all(&store, &names, &tokens).await;
  assert!(first.iter().all(|r| matches!(r, Ok(true))), "{first:?}");

  // The last lock's slot moves to another master, keys and all (as `redis-cli --cluster
  // reshard` moves it): the store's grouping is stale now.
  let key = format!("lock:{}", names[n - 1]);
  let slot = cluster.nodes[0].cli(&["cluster", "keyslot", &key]);
  let from_port = cluster.master_of(&key).port;
  let (from, to) = {
    let masters = masters(&cluster);
    let from = *masters.iter().find(|m| m.port == from_port).expect("owner");
    let to = *masters
      .iter()
      .find(|m| m.port != from_port)
      .expect("another master");
    (from, to)
  };
  let (from_id, to_id) = (node_id(from), node_id(to));
  assert_eq!(
    to.cli(&["cluster", "setslot", &slot, "importing", &from_id]),
    "OK"
  );
  assert_eq!(
    from.cli(&["cluster", "setslot", &slot, "migrating", &to_id]),
    "OK"
  );
  let keys = from.cli(&["cluster", "getkeysinslot", &slot, "100"]);
  let keys: Vec<&str> = keys.lines().collect();
  assert!(keys.contains(&key.as_str()), "{keys:?}");
  let port = to.port.to_string();
  let mut migrate = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
  migrate.extend(&keys);
  assert_eq!(from.cli(&migrate), "OK");
  for node in [to, from] {
    assert_eq!(
      node.cli(&["cluster", "setslot", &slot, "node", &to_id]),
      "OK"
    );
  }
  let moved = from.cli(&["hget", &key, "id"]);
  assert!(
    moved.starts_with("MOVED"),
    "{key} served elsewhere now: {moved}"
  );

  // Redirected, not lost: every lock renewed, the moved one on its new master.
  let results = renew_all(&store, &names, &tokens).await;
  for (i, result) in results.iter().enumerate() {
    assert!(matches!(result, Ok(true)), "{}: {result:?}", names[i]);
  }
  let pttl: i64 = to.cli(&["pttl", &key]).parse().expect("pttl");
  assert!(
    pttl > 60_000,
    "{key} renewed on its new master: pttl {pttl}"
  );
  // And the next batch groups by the new layout again.
  let again = renew_all(&store, &names, &tokens).await;
  assert!(again.iter().all(|r| matches!(r, Ok(true))), "{again:?}");
  store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_master_fails_only_its_own_locks_of_a_batch() {
  let cluster = RedisCluster::start();
  let store = cluster_store(&cluster);
  let n = 300;
  let names: Vec<String> = (0..n).map(|i| format!("st-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  grant_all(&store, &names, &tokens).await;
  let first = renew_all(&store, &names, &tokens).await;
  assert!(first.iter().all(|r| matches!(r, Ok(true))), "{first:?}");

  let stopped = masters(&cluster)[0];
  let on_stopped = stopped.cli(&["keys", "lock:*"]);
  let on_stopped: std::collections::HashSet<&str> = on_stopped.lines().collect();
  assert!(!on_stopped.is_empty() && on_stopped.len() < n);
  let pid = info(stopped, "server", "process_id").to_string();
  let signal = |sig: &str| {
    let ok = std::process::Command::new("kill")
      .args([sig, &pid])
      .status()
      .expect("kill")
      .success();
    assert!(ok, "kill {sig} {pid}");
  };
  signal("-STOP");
  let started = Instant::now();
  let results = renew_all(&store, &names, &tokens).await;
  let took = started.elapsed();
  signal("-CONT");

  for (i, result) in results.iter().enumerate() {
    let key = format!("lock:{}", names[i]);
    if on_stopped.contains(key.as_str()) {
      assert!(
        matches!(result, Err(LockError::Backend { .. })),
        "{key}: {result:?}"
      );
    } else {
      assert!(matches!(result, Ok(true)), "{key}: {result:?}");
    }
  }
  // Within the connection's response timeout (3 s), not one per lock.
  assert!(took < within(3_000), "the batch took {took:?}");
  store.close().await;
}
