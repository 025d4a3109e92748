//! A release the server does not confirm ends the lock for its holder, against a real
//! redis-server that goes away and comes back empty.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferrolock_core::{
  AcquireOptions, LeaseEvent, LockManager, LostReason, RedisOptions, RedisStore,
};
use support::RedisServer;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_ends_the_lock_and_a_second_release_tries_again() {
  let mut server = RedisServer::start();
  let store = Arc::new(
    RedisStore::new(RedisOptions {
      url: Some(server.url()),
      ..Default::default()
    })
    .expect("valid options"),
  );
  let manager = LockManager::new(store);
  let opts = AcquireOptions {
    ttl: Duration::from_secs(30),
    auto_extend: false,
    ..Default::default()
  };
  let lock = manager
    .acquire("unconfirmed", opts, CancellationToken::new())
    .await
    .expect("acquired")
    .expect("free");
  let mut events = lock.take_events().expect("events");
  assert_eq!(manager.stats().held, 1);

  server.kill();
  let first = timeout(Duration::from_secs(30), lock.release())
    .await
    .expect("the release settles");
  assert!(first.is_err(), "no server, no confirmed release: {first:?}");
  // Over for its holder at once: lost, no longer held, and the one event says why.
  assert!(lock.is_lost());
  assert_eq!(manager.stats().held, 0);
  assert_eq!(
    events.try_recv().ok(),
    Some(LeaseEvent::Lost {
      reason: LostReason::Unconfirmed
    })
  );

  // The server comes back empty: the second release tries the delete again and answers
  // false (the key is gone), with no more events.
  server.restart();
  let second = timeout(Duration::from_secs(30), async {
    loop {
      match lock.release().await {
        Ok(ok) => return ok,
        // Until the connection is back.
        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
      }
    }
  })
  .await
  .expect("the second release settles once the server is back");
  assert!(!second);
  assert!(
    events.recv().await.is_none(),
    "no event after the first Lost"
  );
  // Once confirmed, a third release does nothing.
  assert!(!lock
    .release()
    .await
    .expect("a finished lock answers at once"));
  manager.close().await;
}
