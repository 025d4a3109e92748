//! DynamoDB and wall clocks: two clients whose wall clocks are an hour apart neither steal a
//! live lock nor wait an hour for a dead one. The clocks are injected through
//! `DynamoStore::with_clock`; only the TTL attribute reads them. Runs against dynalite.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  Acquire, AcquireExtras, AcquireOptions, AcquireRequest, DynamoOptions, DynamoStore, LockManager,
  LockStore, StaticCredentials, SystemClock, TableOptions, Wait, WallClock,
};
use serde_json::json;
use support::Dynalite;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const HOUR_MS: i64 = 3_600_000;

/// The system clock shifted by a fixed amount, as on a host whose clock is off.
struct Skewed(i64);

impl WallClock for Skewed {
  fn now_ms(&self) -> i64 {
    SystemClock.now_ms() + self.0
  }
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
    ttl_attribute: Some("expiresAt".into()),
    ..DynamoOptions::new(table)
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_wall_clock_skew_neither_steals_a_live_lock_nor_waits_an_hour() {
  let srv = Dynalite::start();
  let lease = Duration::from_millis(1_200);
  // The holder's clock is an hour ahead, the taker's an hour behind.
  let holder =
    DynamoStore::with_clock(options(&srv, "locks"), Arc::new(Skewed(HOUR_MS))).expect("options");
  assert!(holder
    .create_table(&TableOptions::default())
    .await
    .expect("create"));
  let holder = Arc::new(holder);
  let taker =
    DynamoStore::with_clock(options(&srv, "locks"), Arc::new(Skewed(-HOUR_MS))).expect("options");
  let taker = LockManager::new(Arc::new(taker));

  // The holder takes the lock and renews it every 200 ms until it "dies" (the task is aborted).
  let extras = AcquireExtras::default();
  let req = AcquireRequest {
    token: "holder-token",
    owner: "holder",
    ttl: lease,
    data: None,
    queue_for: None,
    extras: &extras,
  };
  let granted = holder.try_acquire("skew", &req).await.expect("acquire");
  assert!(matches!(granted, Acquire::Granted(_)), "{granted:?}");
  let heartbeat = {
    let holder = holder.clone();
    tokio::spawn(async move {
      loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A failed renewal (a loaded machine) is tried again at the next beat.
        let _ = holder.extend("skew", "holder-token", lease).await;
      }
    })
  };

  // The skew is real: the TTL attribute is an hour (plus the 24 h grace) ahead of this host.
  let item = holder
    .get_item("locks", &json!({ "key": { "S": "skew" } }), None, true)
    .await
    .expect("GetItem");
  let ttl: i64 = item["Item"]["expiresAt"]["N"]
    .as_str()
    .and_then(|n| n.parse().ok())
    .unwrap_or_else(|| panic!("no TTL attribute in {item}"));
  let ahead = ttl - SystemClock.now_ms() / 1000 - 24 * 3600;
  assert!(
    (ahead - HOUR_MS / 1000).abs() < 10,
    "TTL {ahead} s ahead, not an hour"
  );

  // Three leases of waiting: the live holder keeps its lock, whatever the taker's clock says.
  let opts = |wait_ms: u64| AcquireOptions {
    ttl: Duration::from_secs(5),
    wait: Wait::For(Duration::from_millis(wait_ms)),
    retry_delay: Duration::from_millis(50),
    retry_jitter: Duration::ZERO,
    ..Default::default()
  };
  let err = taker
    .acquire("skew", opts(3 * 1_200), CancellationToken::new())
    .await
    .expect_err("a skewed clock stole a live lock");
  assert_eq!(err.code(), "ERR_LOCK_NOT_ACQUIRED");

  // The holder dies: the taker gets the lock one lease (plus a poll) later, not an hour later.
  heartbeat.abort();
  let died = Instant::now();
  let bound = support::within(1_200 + 100);
  let lock = taker
    .acquire(
      "skew",
      opts(bound.as_millis() as u64),
      CancellationToken::new(),
    )
    .await
    .expect("the taker gets the dead holder's lock")
    .expect("a lock");
  let after = died.elapsed();
  // (The taker may have seen the holder's last renewal before it died, so no lower bound here:
  // a takeover of a live lock is what the three leases of waiting above rule out.)
  assert!(after < bound, "taken {after:?} after the holder died");
  assert!(lock.release().await.expect("release"));
  taker.close().await;
}
