//! The renewal scheduler against real redis-server processes: thousands of held locks renewed
//! in batches, per-lock results inside a batch, a batch cut by a restart, a hung server.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  AcquireOptions, LeaseEvent, Lock, LockManager, LostReason, RedisOptions, RedisStore, Wait,
};
use futures_util::future::join_all;
use support::RedisServer;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// A manager with the default request timeout (2 s).
fn manager(server: &RedisServer) -> LockManager {
  let store = RedisStore::new(RedisOptions {
    url: Some(server.url()),
    ..Default::default()
  })
  .expect("store");
  LockManager::new(Arc::new(store))
}

fn opts(ttl_ms: u64, refresh_ms: Option<u64>) -> AcquireOptions {
  AcquireOptions {
    ttl: Duration::from_millis(ttl_ms),
    refresh_interval: refresh_ms.map(Duration::from_millis),
    wait: Wait::No,
    ..Default::default()
  }
}

/// Acquires `names`, 500 at a time; every one must be granted.
async fn acquire_all(mgr: &LockManager, names: &[String], o: &AcquireOptions) -> Vec<Lock> {
  let mut locks = Vec::with_capacity(names.len());
  for chunk in names.chunks(500) {
    let got = join_all(
      chunk
        .iter()
        .map(|n| mgr.acquire(n, o.clone(), CancellationToken::new())),
    )
    .await;
    for (name, lock) in chunk.iter().zip(got) {
      locks.push(
        lock
          .expect("acquire")
          .unwrap_or_else(|| panic!("{name} not granted")),
      );
    }
  }
  locks
}

/// The next event of a lock, or a failure naming what hung.
async fn next(events: &mut UnboundedReceiver<LeaseEvent>, what: &str) -> LeaseEvent {
  timeout(Duration::from_secs(20), events.recv())
    .await
    .unwrap_or_else(|_| panic!("no event within 20 s: {what}"))
    .unwrap_or_else(|| panic!("event stream ended: {what}"))
}

/// The number of keys in db 0.
fn dbsize(server: &RedisServer) -> usize {
  server.cli(&["dbsize"]).parse().expect("dbsize")
}

/// How many of the lock keys of `names` exist (EXISTS of 1,000 keys at a time).
fn existing(server: &RedisServer, names: &[String]) -> usize {
  names
    .chunks(1000)
    .map(|chunk| {
      let keys: Vec<String> = chunk.iter().map(|n| format!("lock:{n}")).collect();
      let mut args = vec!["exists"];
      args.extend(keys.iter().map(String::as_str));
      server.cli(&args).parse::<usize>().expect("exists")
    })
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_held_locks_renew_in_batches_and_close_releases_them() {
  let server = RedisServer::start();
  let mgr = manager(&server);
  let names: Vec<String> = (0..20_000).map(|i| format!("held-{i}")).collect();
  // A lease long enough for 20,000 acquires in a debug build on a busy 2-core machine.
  let o = opts(10_000, None);
  let locks = acquire_all(&mgr, &names, &o).await;
  assert_eq!(dbsize(&server), 20_000);
  let before = mgr.stats();
  // Longer than a whole lease: a lock that was not renewed would be over by now.
  let held_from = Instant::now();
  tokio::time::sleep(Duration::from_millis(10_500)).await;
  let lost: Vec<&Lock> = locks.iter().filter(|l| l.is_lost()).collect();
  if !lost.is_empty() {
    let mut ev = lost[0].take_events().expect("events");
    let mut all = Vec::new();
    while let Ok(e) = ev.try_recv() {
      all.push(e);
    }
    eprintln!("stats {:?} events of the first lost: {all:?}", mgr.stats());
  }
  assert!(
    lost.is_empty(),
    "{} locks were lost: {:?}",
    lost.len(),
    lost.first()
  );
  assert!(locks.iter().all(|l| !l.is_finished()));
  let stats = mgr.stats();
  assert_eq!(stats.held, 20_000);
  let renewals = stats.renewals - before.renewals;
  let batches = stats.renewal_batches - before.renewal_batches;
  // A whole lease since the last acquire: every lock renewed at least once.
  assert!(
    renewals >= 20_000,
    "{renewals} renewals in {:?}",
    held_from.elapsed()
  );
  // Batched: locks due in the same tick share one round trip (at most 1024 per batch).
  assert!(
    batches * 20 <= renewals,
    "{batches} batches for {renewals} renewals: not batched"
  );
  // Every key is still ours, with a lease renewed within the last refresh interval or so.
  let pttl: i64 = server.cli(&["pttl", "lock:held-0"]).parse().expect("pttl");
  assert!(pttl > 3_000, "pttl {pttl}");
  assert_eq!(existing(&server, &names), 20_000);
  // close() releases them in batches (`release_many`), all within one request timeout.
  let closing = Instant::now();
  timeout(Duration::from_secs(60), mgr.close())
    .await
    .expect("close() with 20,000 held locks did not finish within 60 s");
  let took = closing.elapsed();
  eprintln!("close() of 20,000 held locks took {took:?}");
  let limit = support::within(ferrolock_core::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64);
  assert!(took <= limit, "close() took {took:?} (limit {limit:?})");
  // Every key is gone from the server, each one checked by name.
  assert_eq!(existing(&server, &names), 0, "close() left lock keys");
  assert_eq!(dbsize(&server), 0, "close() left keys behind");
  assert_eq!(mgr.stats().held, 0);
  let lost = locks.iter().filter(|l| l.is_lost()).count();
  assert_eq!(lost, 0, "{lost} locks ended lost in close() ({took:?})");
  assert!(locks.iter().all(|l| l.is_finished()));
}

/// Script calls the server ran so far (EVALSHA and EVAL).
fn script_calls(server: &RedisServer) -> u64 {
  let stats = server.cli(&["info", "commandstats"]);
  stats
    .lines()
    .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
    .map(|l| {
      let calls = l.split("calls=").nth(1).expect("calls=");
      calls[..calls.find(',').expect(",")]
        .parse::<u64>()
        .expect("calls")
    })
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_during_close_is_sent_once_and_answers_as_the_delete_went() {
  let server = RedisServer::start();
  let mgr = manager(&server);
  let names: Vec<String> = (0..2_000).map(|i| format!("closing-{i}")).collect();
  // No heartbeats: every script call after the acquires is a release.
  let o = AcquireOptions {
    auto_extend: false,
    ..opts(60_000, None)
  };
  let locks = acquire_all(&mgr, &names, &o).await;
  let mut events: Vec<_> = locks[..2]
    .iter()
    .map(|l| l.take_events().expect("events"))
    .collect();
  // The release script is loaded on its first use (a NOSCRIPT reply, then EVAL): not counted.
  let warm = mgr
    .acquire("warm", o.clone(), CancellationToken::new())
    .await;
  assert!(warm
    .expect("warm")
    .expect("granted")
    .release()
    .await
    .expect("release"));
  let before = script_calls(&server);
  // Lock 0's release starts before close(): close() leaves it to that release. Lock 1's starts
  // once close() took it over: it waits for close()'s answer instead of sending its own. The
  // server is stopped until lock 1's release has started, so close() cannot have ended first
  // (its release would then answer false, as after close()).
  server.signal("-STOP");
  let (first, (), second) = tokio::join!(locks[0].release(), mgr.close(), async {
    tokio::task::yield_now().await;
    let mut release = Box::pin(locks[1].release());
    let early = futures_util::FutureExt::now_or_never(&mut release);
    assert!(
      early.is_none(),
      "the release during close() waits for close()'s answer"
    );
    server.signal("-CONT");
    release.await
  });
  assert!(first.expect("release before close"));
  assert!(second.expect("release during close"));
  assert_eq!(
    script_calls(&server) - before,
    2_000,
    "one release per lock, none twice"
  );
  assert_eq!(dbsize(&server), 0);
  for rx in &mut events {
    assert_eq!(
      next(rx, "the end of a lock released in close()").await,
      LeaseEvent::Released
    );
  }
  assert!(locks.iter().all(|l| l.is_finished() && !l.is_lost()));
  // After close() nothing is sent, not even by a release of a lock that was held.
  let after = script_calls(&server);
  assert!(!locks[2].release().await.expect("release after close"));
  assert_eq!(script_calls(&server), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extend_during_close_sends_nothing_and_the_lock_ends_released() {
  let server = RedisServer::start();
  let mgr = manager(&server);
  let names: Vec<String> = (0..2_000).map(|i| format!("extending-{i}")).collect();
  let o = AcquireOptions {
    auto_extend: false,
    ..opts(60_000, None)
  };
  let locks = acquire_all(&mgr, &names, &o).await;
  let mut events = locks[1].take_events().expect("events");
  let warm = mgr
    .acquire("warm", o.clone(), CancellationToken::new())
    .await;
  assert!(warm
    .expect("warm")
    .expect("granted")
    .release()
    .await
    .expect("release"));
  let before = script_calls(&server);
  // Lock 1's extend comes once close() took the lock over: nothing is sent for it, and the lock
  // ends as close()'s delete went (an extend that reached the server after the delete made it
  // 'lost').
  let ((), extended) = tokio::join!(mgr.close(), async {
    tokio::task::yield_now().await;
    locks[1].extend(Duration::from_secs(60)).await
  });
  assert!(!extended.expect("extend during close"));
  assert_eq!(
    script_calls(&server) - before,
    2_000,
    "one release per lock, no extend"
  );
  assert_eq!(
    next(&mut events, "the end of a lock extended during close()").await,
    LeaseEvent::Released
  );
  assert!(!locks[1].is_lost());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_deleted_in_a_batch_are_lost_and_only_those() {
  let server = RedisServer::start();
  let mgr = manager(&server);
  let names: Vec<String> = (0..300).map(|i| format!("batch-{i}")).collect();
  let locks = acquire_all(&mgr, &names, &opts(6_000, Some(2_000))).await;
  let mut events: Vec<_> = locks
    .iter()
    .map(|l| l.take_events().expect("events"))
    .collect();
  // Every third key goes behind its holder's back, in one command.
  let deleted: Vec<bool> = (0..names.len()).map(|i| i % 3 == 0).collect();
  let mut del = vec!["del".to_owned()];
  del.extend(
    names
      .iter()
      .zip(&deleted)
      .filter(|(_, d)| **d)
      .map(|(n, _)| format!("lock:{n}")),
  );
  let del: Vec<&str> = del.iter().map(String::as_str).collect();
  assert_eq!(server.cli(&del), "100");
  let before = mgr.stats();
  // The next round: each deleted lock reports `Lost` (gone), every other one `Refreshed`.
  for (i, (rx, gone)) in events.iter_mut().zip(&deleted).enumerate() {
    let what = format!("lock {} after the deletion", names[i]);
    let event = loop {
      match next(rx, &what).await {
        // A deleted lock may have been renewed once before the deletion (a slow acquire).
        LeaseEvent::Refreshed { .. } if *gone => continue,
        other => break other,
      }
    };
    if *gone {
      assert_eq!(
        event,
        LeaseEvent::Lost {
          reason: LostReason::Gone
        },
        "{what}"
      );
    } else {
      assert!(
        matches!(event, LeaseEvent::Refreshed { ttl } if ttl == Duration::from_millis(6_000)),
        "{what}: {event:?}"
      );
    }
  }
  for (i, lock) in locks.iter().enumerate() {
    assert_eq!(lock.is_lost(), deleted[i], "lock {}", names[i]);
  }
  let stats = mgr.stats();
  let batches = stats.renewal_batches - before.renewal_batches;
  let renewals = stats.renewals - before.renewals;
  assert!(renewals >= 300, "{renewals} renewals");
  assert!(
    batches * 10 <= renewals,
    "{batches} batches for {renewals}: the round was not batched"
  );
  // The survivors still hold their keys; nothing re-created the deleted ones.
  assert_eq!(dbsize(&server), 200);
  mgr.close().await;
  assert_eq!(dbsize(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_by_a_server_restart_retries_and_grants_nobody_else() {
  let dir = std::env::temp_dir().join(format!("ferrolock-restart-{}", std::process::id()));
  std::fs::create_dir_all(&dir).expect("dir");
  let extra: Vec<String> = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--dir",
    dir.to_str().expect("dir"),
  ]
  .iter()
  .map(|s| s.to_string())
  .collect();
  let mut server = RedisServer::start_with(support::free_port(), &extra);
  let mgr = manager(&server);
  let names: Vec<String> = (0..200).map(|i| format!("restart-{i}")).collect();
  let locks = acquire_all(&mgr, &names, &opts(8_000, Some(2_000))).await;
  let mut events: Vec<_> = locks
    .iter()
    .map(|l| l.take_events().expect("events"))
    .collect();
  // Every lock is in the AOF (appendfsync always) and no rewrite of it is under way: a server
  // killed during one keeps what its manifest named.
  support::wait_until("the AOF rewrite to end", || {
    let info = server.cli(&["info", "persistence"]);
    info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
  })
  .await;
  // Down for longer than one refresh interval: every lock's next renewal hits the outage.
  server.kill();
  tokio::time::sleep(Duration::from_millis(2_500)).await;
  let port = server.port;
  server = RedisServer::start_with(port, &extra);
  assert_eq!(dbsize(&server), 200, "the AOF kept every lock");
  // Each lock: one or more `Error` for the cut renewals, then `Refreshed` once it is back;
  // never `Lost`.
  for (i, rx) in events.iter_mut().enumerate() {
    let what = format!("lock {} across the restart", names[i]);
    let mut errors = 0;
    loop {
      match next(rx, &what).await {
        LeaseEvent::Error { .. } => errors += 1,
        LeaseEvent::Expiring { .. } => {}
        LeaseEvent::Refreshed { .. } if errors > 0 => break,
        LeaseEvent::Refreshed { .. } => {}
        other => panic!("{what}: unexpected {other:?}"),
      }
    }
  }
  assert!(locks.iter().all(|l| !l.is_lost()));
  // No double grant: another owner is refused every name.
  let other = manager(&server);
  let tries = join_all(
    names
      .iter()
      .map(|n| other.acquire(n, opts(8_000, None), CancellationToken::new())),
  )
  .await;
  for (name, got) in names.iter().zip(tries) {
    assert!(
      matches!(got, Ok(None)),
      "{name} was granted to another owner"
    );
  }
  mgr.close().await;
  other.close().await;
  assert_eq!(dbsize(&server), 0);
  drop(server);
  let _ = std::fs::remove_dir_all(&dir);
}

/// The process id of a redis-server, as it reports it.
fn pid_of(server: &RedisServer) -> String {
  let info = server.cli(&["info", "server"]);
  info
    .lines()
    .find_map(|l| l.strip_prefix("process_id:"))
    .expect("process_id")
    .trim()
    .to_owned()
}

fn signal(pid: &str, sig: &str) {
  let ok = Command::new("kill")
    .args([sig, pid])
    .status()
    .expect("kill")
    .success();
  assert!(ok, "kill {sig} {pid}");
}

/// Events of a lock held while its server hangs, each with when it came (from the acquire).
async fn events_while_hung(safe_time: Option<u64>) -> Vec<(LeaseEvent, Duration)> {
  let server = RedisServer::start();
  let pid = pid_of(&server);
  let mgr = manager(&server);
  let started = Instant::now();
  let lock = mgr
    .acquire(
      "hung",
      AcquireOptions {
        safe_time: safe_time.map(Duration::from_millis),
        ..opts(3_000, None)
      },
      CancellationToken::new(),
    )
    .await
    .expect("acquire")
    .expect("lock");
  let mut rx = lock.take_events().expect("events");
  signal(&pid, "-STOP");
  let mut seen = Vec::new();
  loop {
    let event = next(&mut rx, "a lock on a hung server").await;
    let end = matches!(event, LeaseEvent::Lost { .. });
    seen.push((event, started.elapsed()));
    if end {
      break;
    }
  }
  signal(&pid, "-CONT");
  mgr.close().await;
  seen
}

/// Asserts `Error`, `Expiring`, `Lost(Expired)` in that order, `Error` and `Expiring` from
/// `error_at` (the lease left minus safeTime) on and before `Lost` (the lease end, 3 s).
fn assert_hung_events(seen: &[(LeaseEvent, Duration)], error_at: Duration) {
  let kinds: Vec<&str> = seen
    .iter()
    .map(|(e, _)| match e {
      LeaseEvent::Refreshed { .. } => "refreshed",
      LeaseEvent::Error { .. } => "error",
      LeaseEvent::Expiring { .. } => "expiring",
      LeaseEvent::Lost { .. } => "lost",
      _ => "other",
    })
    .collect();
  // Then an `error` for each retry that got no answer, and `lost` at the end.
  assert_eq!(kinds[..2], ["error", "expiring"], "{seen:?}");
  assert_eq!(kinds.last(), Some(&"lost"), "{seen:?}");
  assert!(
    kinds[2..kinds.len() - 1].iter().all(|k| *k == "error"),
    "{seen:?}"
  );
  let (error, expiring, lost) = (&seen[0], &seen[1], &seen[seen.len() - 1]);
  assert!(
    error.1 >= error_at,
    "error at {:?}, before {error_at:?}",
    error.1
  );
  assert!(expiring.1 >= error.1, "{seen:?}");
  assert!(lost.1 >= Duration::from_millis(3_000), "{seen:?}");
  assert!(error.1 < lost.1 && expiring.1 < lost.1, "{seen:?}");
  match &expiring.0 {
    LeaseEvent::Expiring { remaining } => {
      assert!(
        *remaining <= Duration::from_millis(3_000) - error_at,
        "{seen:?}"
      )
    }
    other => panic!("{other:?}"),
  }
  assert_eq!(
    lost.0,
    LeaseEvent::Lost {
      reason: LostReason::Expired
    }
  );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_gives_error_then_expiring_before_lost() {
  // ttl 3 s, safeTime 1.5 s: the renewal at 1 s is given up at 1.5 s.
  let seen = events_while_hung(Some(1_500)).await;
  assert_hung_events(&seen, Duration::from_millis(1_500));
  // Default safe time (one refresh interval, 1 s): given up at 2 s.
  let seen = events_while_hung(None).await;
  assert_hung_events(&seen, Duration::from_millis(2_000));
}
