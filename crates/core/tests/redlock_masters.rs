//! Redlock refuses one server listed as two masters: by the address its host names resolve to
//! (at creation), and by the server's run_id (at connect), with `InvalidArg`.

mod support;

use std::time::Duration;

use ferrolock_core::{
  AcquireOptions, LockManager, RedisOptions, RedlockOptions, RedlockStore, Wait,
};
use support::{RedisServer, StallProxy};
use tokio_util::sync::CancellationToken;

fn options(urls: &[String]) -> RedlockOptions {
  RedlockOptions {
    masters: urls
      .iter()
      .map(|u| RedisOptions {
        url: Some(u.clone()),
        ..Default::default()
      })
      .collect(),
    ..Default::default()
  }
}

#[test]
fn a_host_name_and_its_address_are_one_master() {
  let port = support::free_port();
  for (a, b) in [
    (format!("localhost:{port}"), format!("127.0.0.1:{port}")),
    (format!("127.0.0.1:{port}"), format!("LOCALHOST:{port}")),
    (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}/3")),
  ] {
    let urls = [format!("redis://{a}"), format!("redis://{b}")];
    let err = RedlockStore::new(options(&urls)).err();
    let err = err.unwrap_or_else(|| panic!("{urls:?} accepted as two masters"));
    assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}");
    assert!(err.to_string().contains("options.redlock[1]"), "{err}");
  }
  // Distinct ports are distinct masters.
  let other = support::free_port();
  let urls = [
    format!("redis://localhost:{port}"),
    format!("redis://127.0.0.1:{other}"),
  ];
  assert!(RedlockStore::new(options(&urls)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_addresses_of_one_server_are_refused_at_connect() {
  let servers = [RedisServer::start(), RedisServer::start()];
  // A second way to the first server: different address, same run_id.
  let proxy = StallProxy::start(servers[0].port);
  let urls = [servers[0].url(), servers[1].url(), proxy.url()];
  let store = RedlockStore::new(options(&urls)).expect("distinct addresses");
  let manager = LockManager::new(std::sync::Arc::new(store));
  let opts = AcquireOptions {
    wait: Wait::For(Duration::from_millis(500)),
    ..Default::default()
  };
  let result = tokio::time::timeout(
    Duration::from_secs(60),
    manager.acquire("dup", opts, CancellationToken::new()),
  )
  .await
  .expect("acquire hung");
  let err = result.expect_err("one server must not vote twice");
  assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}");
  assert!(err.to_string().contains("run_id"), "{err}");
  // Nothing was written on any master.
  for server in &servers {
    assert_eq!(server.cli(&["EXISTS", "lock:dup"]).trim(), "0");
  }
  // Three distinct servers work.
  let third = RedisServer::start();
  let urls = [servers[0].url(), servers[1].url(), third.url()];
  let manager = LockManager::new(std::sync::Arc::new(
    RedlockStore::new(options(&urls)).expect("options"),
  ));
  let opts = AcquireOptions {
    wait: Wait::For(Duration::from_millis(2000)),
    ..Default::default()
  };
  let lock = manager
    .acquire("dup", opts, CancellationToken::new())
    .await
    .expect("distinct masters")
    .expect("granted");
  lock.release().await.expect("release");
}
