//! Redlock restart quarantine (issue 16, finding 3), against real servers: a master restarted
//! empty grants no vote until the longest lease a client may hold there has passed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::store::Renewal;
use ferrolock_core::{
  Acquire, AcquireExtras, AcquireRequest, LockStore, RedisOptions, RedlockOptions, RedlockStore,
  RestartQuarantine,
};
use support::RedisServer;
use tokio::time::{sleep, Instant};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

const TTL: Duration = Duration::from_secs(4);

fn attempt(token: &str) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: token,
    ttl: TTL,
    data: None,
    extras: &NO_EXTRAS,
    queue_for: None,
  }
}

/// A Redlock client of its own (its own connections) over `servers`.
fn client(servers: &[RedisServer], quarantine: RestartQuarantine) -> Arc<RedlockStore> {
  let opts = RedlockOptions {
    masters: servers
      .iter()
      .map(|s| RedisOptions {
        url: Some(s.url()),
        ..Default::default()
      })
      .collect(),
    request_timeout: Duration::from_millis(300),
    restart_quarantine: quarantine,
    ..Default::default()
  };
  Arc::new(RedlockStore::new(opts).expect("valid options"))
}

/// Whether the attempt won the lock (held, or no majority answered: not won).
async fn granted(store: &RedlockStore, name: &str, token: &str) -> bool {
  matches!(
    store.try_acquire(name, &attempt(token)).await,
    Ok(Acquire::Granted(_))
  )
}

/// Connects `store` to every master (it learns their run ids) with a lock of another name.
async fn connect(store: &RedlockStore, token: &str) {
  assert!(granted(store, "warm-up", token).await, "{token} warm-up");
  assert!(store.release("warm-up", token).await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_grants_no_vote_while_the_first_lease_is_valid() {
  let mut masters = support::masters(3);
  let a = client(&masters, RestartQuarantine::default());
  let b = client(&masters, RestartQuarantine::default());
  let unguarded = client(&masters, RestartQuarantine::Off);
  connect(&b, "b").await;
  connect(&unguarded, "c").await;

  // A holds the lock on masters 0 and 1 only (a bare majority: master 2 missed it).
  assert!(granted(&a, "q", "a").await);
  let held_from = Instant::now();
  assert_eq!(masters[2].cli(&["del", "lock:q"]), "1");
  masters[0].restart();
  assert_eq!(masters[0].cli(&["exists", "lock:q"]), "0");

  // B's first attempt finds master 0's connection broken and reconnects (reading the new run
  // id); every later attempt reaches the restarted master, which grants: no vote.
  for i in 0..10 {
    assert!(!granted(&b, "q", "b").await, "attempt {i}: a double grant");
  }
  let left = b.quarantine_left(0);
  assert!(
    left > TTL - Duration::from_secs(2) && left <= TTL,
    "quarantine left {left:?}"
  );
  assert_eq!(b.quarantine_left(1), Duration::ZERO);
  assert_eq!(b.quarantine_left(2), Duration::ZERO);
  assert!(
    held_from.elapsed() < TTL - Duration::from_millis(500),
    "A's lease must still be valid for this check to mean anything"
  );

  // The same scenario without the quarantine is the double grant (so the check above can fail).
  let mut tries = 0;
  while !granted(&unguarded, "q", "c").await {
    tries += 1;
    assert!(
      tries < 5,
      "without quarantine the restarted master should vote"
    );
  }
  assert!(held_from.elapsed() < TTL, "A's lease was still valid");
  assert!(unguarded.release("q", "c").await.expect("release"));

  // Once A's lease is over and the quarantine has passed, master 0 votes again for B.
  let deadline = Instant::now() + TTL + Duration::from_secs(10);
  while b.quarantine_left(0) > Duration::ZERO || held_from.elapsed() < TTL {
    assert!(Instant::now() < deadline, "the quarantine never ended");
    sleep(Duration::from_millis(100)).await;
  }
  // With master 1 down, only masters 0 and 2 can make the majority: 0 votes again.
  masters[1].kill();
  assert!(granted(&b, "q", "b").await, "B after the quarantine");
  assert!(b.release("q", "b").await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_to_the_same_server_is_no_restart() {
  let masters = support::masters(3);
  let b = client(&masters, RestartQuarantine::default());
  connect(&b, "b").await;
  // Cut every client connection of master 0: the server (and its run id) stays.
  masters[0].cli(&["client", "kill", "type", "normal"]);
  let mut votes = 0;
  for i in 0..3 {
    let token = format!("b{i}");
    if granted(&b, "same", &token).await {
      votes += 1;
      assert!(b.release("same", &token).await.expect("release"));
    }
  }
  assert!(votes >= 2, "granted {votes} of 3 times");
  assert_eq!(b.quarantine_left(0), Duration::ZERO);
  // The reconnected master votes: it and one other make a majority.
  let mut masters = masters;
  masters[1].kill();
  assert!(granted(&b, "same", "b-last").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_quarantine_lasts_its_length() {
  let mut masters = support::masters(3);
  let b = client(&masters, RestartQuarantine::For(Duration::from_secs(30)));
  connect(&b, "b").await;
  masters[0].restart();
  // The first request finds master 0's connection broken; the next one (an inspect waits for
  // every master) reconnects and reads the new run id: master 0 is out for 30 s, whatever the
  // ttls.
  let _ = granted(&b, "fixed", "b").await;
  let _ = b.release("fixed", "b").await;
  let _ = b.inspect("fixed").await;
  let left = b.quarantine_left(0);
  assert!(
    left > Duration::from_secs(28) && left <= Duration::from_secs(30),
    "{left:?}"
  );
  masters[1].kill();
  // Masters 0 (out) and 2 (in) answer: no majority of votes, so no grant.
  let answer = b.try_acquire("fixed", &attempt("b2")).await;
  assert!(
    matches!(&answer, Err(e) if e.code() == "ERR_BACKEND_UNAVAILABLE"),
    "{answer:?}"
  );
  assert_eq!(
    masters[2].cli(&["exists", "lock:fixed"]),
    "0",
    "the attempt was undone"
  );
}

/// Puts `token`'s lock `name` back on a restarted (empty) master, as a write of ours that
/// reached it after the restart would have left it.
fn put_back(master: &RedisServer, name: &str, token: &str) {
  let key = format!("lock:{name}");
  assert_eq!(master.cli(&["hset", &key, "id", token]), "1");
  assert_eq!(master.cli(&["pexpire", &key, "4000"]), "1");
}

/// A batched renewal counts votes as `extend` does: a master in restart quarantine renews our
/// key there, but that is no vote. Two of three masters restarted: one vote is no majority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_renewal_counts_no_vote_of_a_restarted_master() {
  let mut masters = support::masters(3);
  let a = client(&masters, RestartQuarantine::default());
  let unguarded = client(&masters, RestartQuarantine::Off);
  connect(&a, "a").await;
  connect(&unguarded, "u").await;
  assert!(granted(&a, "q", "a").await);
  assert!(granted(&unguarded, "r", "u").await);
  for m in &mut masters[..2] {
    m.restart();
  }
  for m in &masters[..2] {
    put_back(m, "q", "a");
    put_back(m, "r", "u");
  }
  let renew = |name: &'static str, token: &'static str| {
    [Renewal {
      name,
      token,
      ttl: TTL,
    }]
  };
  // The first rounds find the old connections broken and reconnect (reading the new run ids).
  let mut benched = false;
  for i in 0..10 {
    let got = a.extend_many(&renew("q", "a")).await;
    assert!(
      !matches!(got.as_slice(), [Ok(true)]),
      "round {i}: renewed by votes of restarted masters"
    );
    benched = a.quarantine_left(0) > Duration::ZERO && a.quarantine_left(1) > Duration::ZERO;
    if benched {
      break;
    }
  }
  assert!(benched, "the restarts were never seen");
  let got = a.extend_many(&renew("q", "a")).await;
  assert!(!matches!(got.as_slice(), [Ok(true)]), "{got:?}");
  assert!(!matches!(a.extend("q", "a", TTL).await, Ok(true)));

  // Without the quarantine the same renewal counts all three masters (so the check can fail).
  let mut renewed = false;
  for _ in 0..10 {
    if matches!(
      unguarded.extend_many(&renew("r", "u")).await.as_slice(),
      [Ok(true)]
    ) {
      renewed = true;
      break;
    }
  }
  assert!(
    renewed,
    "without quarantine the restarted masters should vote"
  );
}
