//! Batched release on Redlock masters (`release_many`, what `close()` sends) with one master
//! stopped (SIGSTOP: it accepts the requests and never answers), against real redis-server
//! processes: the batch settles once the other masters' majority decided each lock, not after
//! the stopped master's timeout, and never reports a release a majority did not confirm.

mod support;

use std::time::{Duration, Instant};

use ferrolock_core::store::Owned;
use ferrolock_core::{Acquire, AcquireExtras, AcquireRequest, LockStore, RedlockStore};
use support::{bounded, scaled, within, RedisServer};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

/// The per-master request timeout of these tests: long, so that one timeout and two are far
/// apart on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(3);

fn req(token: &str) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: token,
    ttl: Duration::from_secs(30),
    data: None,
    queue_for: None,
    extras: &NO_EXTRAS,
  }
}

async fn grant_all(store: &RedlockStore, names: &[String], tokens: &[String]) {
  for (name, token) in names.iter().zip(tokens) {
    match store.try_acquire(name, &req(token)).await {
      Ok(Acquire::Granted(_)) => {}
      other => panic!("{name} not granted: {other:?}"),
    }
  }
}

/// The process id of `server` (read while it runs: a stopped server answers nothing).
fn pid(server: &RedisServer) -> String {
  let info = server.cli(&["info", "server"]);
  info
    .lines()
    .find_map(|l| l.strip_prefix("process_id:"))
    .expect("process_id")
    .trim()
    .to_owned()
}

/// Sends `sig` (`-STOP`, `-CONT`) to process `pid`.
fn signal(pid: &str, sig: &str) {
  let ok = std::process::Command::new("kill")
    .args([sig, pid])
    .status()
    .expect("kill")
    .success();
  assert!(ok, "kill {sig} {pid}");
}

/// Releases every lock in one batch; the answers and how long the batch took.
async fn release_all(
  store: &RedlockStore,
  names: &[String],
  tokens: &[String],
) -> (Vec<ferrolock_core::Result<bool>>, Duration) {
  let items: Vec<Owned> = names
    .iter()
    .zip(tokens)
    .map(|(name, token)| Owned { name, token })
    .collect();
  let started = Instant::now();
  let results = bounded("the release batch", store.release_many(&items)).await;
  (results, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_master_does_not_hold_up_a_release_batch_its_majority_decided() {
  let servers = support::masters(3);
  let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
  let store = support::redlock_store(&urls, Some(TIMEOUT));
  let n = 50;
  let names: Vec<String> = (0..n).map(|i| format!("hung-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  grant_all(&store, &names, &tokens).await;
  // One lock not ours on the two live masters: no majority can confirm its release.
  for server in &servers[1..] {
    assert_eq!(server.cli(&["del", &format!("lock:{}", names[7])]), "1");
  }

  let stopped = pid(&servers[0]);
  signal(&stopped, "-STOP");
  let (results, took) = release_all(&store, &names, &tokens).await;
  signal(&stopped, "-CONT");
  eprintln!("release batch with a stopped master: {took:?}");

  for (i, result) in results.iter().enumerate() {
    let expected = i != 7;
    assert!(
      matches!(result, Ok(r) if *r == expected),
      "{}: {result:?}",
      names[i]
    );
  }
  for server in &servers[1..] {
    assert_eq!(server.cli(&["dbsize"]), "0");
  }
  // Decided by the two live masters' answers: well before the stopped one's 3 s timeout (the
  // batch waited for it before).
  assert!(took < scaled(1_500), "the batch took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_batch_after_grants_a_stopped_master_never_answered_settles_in_one_timeout() {
  let servers = support::masters(3);
  let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
  let store = support::redlock_store(&urls, Some(TIMEOUT));
  let n = 20;
  let names: Vec<String> = (0..n).map(|i| format!("late-{i}")).collect();
  let tokens: Vec<String> = (0..n).map(|i| format!("ours-{i}")).collect();
  // Connected to every master first (a first request waits for each master's identity).
  grant_all(&store, &["warm".to_owned()], &["warm".to_owned()]).await;
  assert_eq!(store.release("warm", "warm").await.ok(), Some(true));
  // Granted by the two live masters; the stopped one's acquire requests are still in flight
  // (each until its timeout) when the batch starts.
  let stopped = pid(&servers[0]);
  signal(&stopped, "-STOP");
  grant_all(&store, &names, &tokens).await;
  let (results, took) = release_all(&store, &names, &tokens).await;
  signal(&stopped, "-CONT");
  eprintln!("release batch with a stopped master: {took:?}");

  for (i, result) in results.iter().enumerate() {
    assert!(matches!(result, Ok(true)), "{}: {result:?}", names[i]);
  }
  for server in &servers[1..] {
    assert_eq!(server.cli(&["dbsize"]), "0");
  }
  // The releases wait for the late acquires (at most one timeout from the grants), then are
  // decided by the live majority: about one timeout in all, not two (the late acquires, then a
  // whole timeout more for the stopped master's release answers).
  assert!(
    took < within(TIMEOUT.as_millis() as u64),
    "the release batch took {took:?}"
  );
  // The stopped master, resumed, ran the late acquires and then the releases behind them.
  support::wait_until("the resumed master to drop the late grants", || {
    servers[0].cli(&["dbsize"]) == "0"
  })
  .await;
}
