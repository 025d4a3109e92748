//! A single-server command connection that knows which server process answers it (used by
//! Redlock masters, for the restart quarantine in `redlock/quarantine.rs`).
//!
//! redis-rs's `ConnectionManager` reconnects on its own and offers no hook on (re)connect, so a
//! master's connection is kept here instead: one multiplexed connection, replaced after it
//! breaks. Every new connection first asks `INFO server` for the server's `run_id`, before any
//! other command goes over it, and tells the [`Incarnation`]. A TCP connection never outlives
//! the server process it reached, so every reply that arrives over a connection comes from the
//! process whose run id was read when it was made: the hot path pays nothing, and a reply from
//! a restarted server is only ever seen after the restart was recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, RedisResult, Value};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

/// What a store knows of the server processes it has talked to.
#[derive(Default)]
pub(crate) struct Incarnation {
  state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
  /// The run id read on the last connection (`None`: never connected, or INFO was refused).
  run_id: Option<String>,
  /// Connections made so far.
  connections: u64,
  /// When a restart was last noticed.
  restarted: Option<Instant>,
}

impl Incarnation {
  /// Records a new connection to the server whose run id is `run_id` (`None`: the server would
  /// not say). A run id other than the last one is a restart; without run ids, every reconnect
  /// counts as one (the safe side). The first connection is trusted: nothing was seen before.
  pub(crate) fn connected(&self, run_id: Option<String>) {
    let mut seen = self.state.lock().unwrap_or_else(|e| e.into_inner());
    let restarted = match (&seen.run_id, &run_id) {
      _ if seen.connections == 0 => false,
      (Some(old), Some(new)) => old != new,
      _ => true,
    };
    if restarted {
      seen.restarted = Some(Instant::now());
    }
    seen.connections += 1;
    seen.run_id = run_id;
  }

  /// The run id read on the last connection (`None`: not connected yet, or INFO was refused).
  pub(crate) fn run_id(&self) -> Option<String> {
    let seen = self.state.lock().unwrap_or_else(|e| e.into_inner());
    seen.run_id.clone()
  }

  /// When this store last noticed that the server restarted (a new run id), if ever.
  pub(crate) fn restarted_at(&self) -> Option<Instant> {
    self
      .state
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .restarted
  }
}

/// Reads `run_id` from `INFO server`. `Ok(None)` when the server refuses INFO (an ACL without
/// it, a renamed command); an error only when the connection failed.
async fn run_id(con: &mut MultiplexedConnection) -> RedisResult<Option<String>> {
  match redis::cmd("INFO")
    .arg("server")
    .query_async::<String>(con)
    .await
  {
    Ok(info) => Ok(parse_run_id(&info)),
    Err(e) if broken(&e) || e.is_timeout() => Err(e),
    Err(_) => Ok(None),
  }
}

/// The `run_id` in the text of INFO server.
pub(super) fn parse_run_id(info: &str) -> Option<String> {
  info
    .lines()
    .find_map(|l| l.trim().strip_prefix("run_id:"))
    .map(|id| id.trim().to_owned())
    .filter(|id| !id.is_empty())
}

/// Whether `err` means the connection is no longer usable.
fn broken(err: &redis::RedisError) -> bool {
  err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

/// A connection to one server that reads the server's run id on every (re)connect. Cheap to
/// clone: the clones share one connection.
#[derive(Clone)]
pub(crate) struct TrackedConn {
  inner: Arc<Inner>,
}

struct Inner {
  client: redis::Client,
  config: AsyncConnectionConfig,
  /// The live connection and its number.
  current: Mutex<Option<(u64, MultiplexedConnection)>>,
  /// Serializes connecting, so that concurrent callers share one new connection.
  connecting: AsyncMutex<()>,
  made: AtomicU64,
  incarnation: Arc<Incarnation>,
}

impl TrackedConn {
  pub(crate) fn new(
    client: redis::Client,
    config: AsyncConnectionConfig,
    incarnation: Arc<Incarnation>,
  ) -> Self {
    TrackedConn {
      inner: Arc::new(Inner {
        client,
        config,
        current: Mutex::new(None),
        connecting: AsyncMutex::new(()),
        made: AtomicU64::new(0),
        incarnation,
      }),
    }
  }

  fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
    self
      .inner
      .current
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .clone()
  }

  /// The live connection, connecting (and reading the run id) first when there is none.
  async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
    if let Some(live) = self.cached() {
      return Ok(live);
    }
    let _one = self.inner.connecting.lock().await;
    if let Some(live) = self.cached() {
      return Ok(live);
    }
    let mut con = self
      .inner
      .client
      .get_multiplexed_async_connection_with_config(&self.inner.config)
      .await?;
    let id = run_id(&mut con).await?;
    // Recorded before the connection is handed out: no reply over it can be seen earlier.
    self.inner.incarnation.connected(id);
    let number = self.inner.made.fetch_add(1, Ordering::Relaxed) + 1;
    let live = (number, con);
    *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
    Ok(live)
  }

  /// Drops connection `number` after `err` broke it (a later one is kept).
  fn failed(&self, number: u64, err: &redis::RedisError) {
    if !broken(err) {
      return;
    }
    let mut current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
    if current.as_ref().is_some_and(|(n, _)| *n == number) {
      *current = None;
    }
  }
}

impl TrackedConn {
  /// Connects now when there is no live connection (reading the run id first), so that the
  /// [`Incarnation`] knows the server's run id.
  pub(super) async fn connect(&self) -> RedisResult<()> {
    self.get().await.map(|_| ())
  }

  /// Sends one command over the live connection, connecting first when there is none.
  pub(super) async fn send(&self, cmd: &Cmd) -> RedisResult<Value> {
    let (number, mut con) = self.get().await?;
    let reply = con.req_packed_command(cmd).await;
    if let Err(e) = &reply {
      self.failed(number, e);
    }
    reply
  }

  /// Sends `count` commands of `pipeline` from `offset` in one write.
  pub(super) async fn send_pipeline(
    &self,
    pipeline: &redis::Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisResult<Vec<Value>> {
    let (number, mut con) = self.get().await?;
    let reply = con.req_packed_commands(pipeline, offset, count).await;
    if let Err(e) = &reply {
      self.failed(number, e);
    }
    reply
  }

  /// The database of this server the connection uses.
  pub(super) fn db(&self) -> i64 {
    self
      .inner
      .client
      .get_connection_info()
      .redis_settings()
      .db()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn run_ids_are_read_from_info_server() {
    let info = "# Server\r\nredis_version:7.2.4\r\nrun_id:abc123\r\ntcp_port:6379\r\n";
    assert_eq!(parse_run_id(info).as_deref(), Some("abc123"));
    assert_eq!(parse_run_id("# Server\r\n"), None);
    assert_eq!(parse_run_id("run_id:\r\n"), None);
  }

  #[test]
  fn a_new_run_id_is_a_restart_and_the_first_is_trusted() {
    let seen = Incarnation::default();
    seen.connected(Some("a".into()));
    assert!(seen.restarted_at().is_none(), "first sight");
    seen.connected(Some("a".into()));
    assert!(
      seen.restarted_at().is_none(),
      "a reconnect to the same process"
    );
    seen.connected(Some("b".into()));
    assert!(seen.restarted_at().is_some(), "a new process");
    assert_eq!(seen.run_id().as_deref(), Some("b"));
  }

  #[test]
  fn without_run_ids_every_reconnect_is_a_restart() {
    let seen = Incarnation::default();
    seen.connected(None);
    assert!(seen.restarted_at().is_none());
    seen.connected(None);
    assert!(seen.restarted_at().is_some());
    let seen = Incarnation::default();
    seen.connected(Some("a".into()));
    seen.connected(None);
    assert!(
      seen.restarted_at().is_some(),
      "INFO refused after a reconnect"
    );
  }
}
