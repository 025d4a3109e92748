//! The command connection, of one of four kinds: one server (a reconnecting multiplexed
//! connection), a Redis Cluster, the caller's client object, or one server whose run id is read
//! on every (re)connect (a Redlock master, `tracked.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
  Cmd, ConnectionAddr, ConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, Value,
};

use super::object::ClientConn;
use super::options::Target;
use super::pubsub::PushHandler;
use super::scripts::unexpected;
use super::tracked::TrackedConn;
use super::RedisStore;
use crate::error::{LockError, Result};

/// How long a command may take before the backend counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A cluster connect running as its own task (see `RedisStore::cluster_connect`).
pub(super) type ClusterConnect = tokio::task::JoinHandle<
  std::result::Result<redis::RedisResult<ClusterConnection>, tokio::time::error::Elapsed>,
>;

/// A command connection of either kind (both are cheap clones of one multiplexed connection).
#[derive(Clone)]
pub(super) enum Conn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Client(ClientConn),
  /// One server, run id read on every (re)connect (a Redlock master).
  Tracked(TrackedConn),
}

/// The one `ConnectionLike` of the store: scripts, pipelines and commands run over any kind of
/// connection alike. The client object and the tracked connection answer through their own
/// `send` (one command) and pipeline methods.
impl ConnectionLike for Conn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    match self {
      Conn::Single(con) => con.req_packed_command(cmd),
      Conn::Cluster(con) => con.req_packed_command(cmd),
      Conn::Client(con) => Box::pin(con.send(cmd)),
      Conn::Tracked(con) => Box::pin(con.send(cmd)),
    }
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    match self {
      Conn::Single(con) => con.req_packed_commands(pipeline, offset, count),
      Conn::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
      Conn::Client(con) => Box::pin(con.send_each(pipeline, offset, count)),
      Conn::Tracked(con) => Box::pin(con.send_pipeline(pipeline, offset, count)),
    }
  }

  fn get_db(&self) -> i64 {
    match self {
      Conn::Single(con) => con.get_db(),
      Conn::Cluster(con) => con.get_db(),
      Conn::Client(_) => 0,
      Conn::Tracked(con) => con.db(),
    }
  }
}

impl RedisStore {
  pub(super) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
      .set_connection_timeout(Some(CONNECT_TIMEOUT))
      .set_response_timeout(Some(RESPONSE_TIMEOUT))
      .set_number_of_retries(1)
      .set_min_delay(Duration::from_millis(50))
      .set_max_delay(Duration::from_millis(500))
  }

  /// A driver client for `info`, trusting `tls_ca` when given.
  pub(super) fn client(&self, info: ConnectionInfo, what: &str) -> Result<redis::Client> {
    let client = match &self.tls_ca {
      Some(ca) => redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
          client_tls: None,
          root_cert: Some(ca.clone()),
        },
      ),
      None => redis::Client::open(info),
    };
    client.map_err(|e| self.error(what, e))
  }
  pub(super) fn cached(&self) -> Result<Option<Conn>> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    Ok(self.cmd.lock().unwrap_or_else(|e| e.into_inner()).clone())
  }

  pub(super) async fn con(&self) -> Result<Conn> {
    if let Some(con) = self.cached()? {
      return Ok(con);
    }
    let con = match &self.target {
      Target::Single(info) => {
        // Lazy: this connects on the first command, not here.
        let client = self.client(ConnectionInfo::clone(info), "connect")?;
        if let Some(incarnation) = &self.incarnation {
          let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
          Conn::Tracked(TrackedConn::new(client, config, incarnation.clone()))
        } else {
          let con = ConnectionManager::new_lazy_with_config(client, Self::manager_config())
            .map_err(|e| self.error("connect", e))?;
          Conn::Single(con)
        }
      }
      Target::Client(client) => Conn::Client(ClientConn {
        transport: client.transport.clone(),
        scripts: Arc::new(self.scripts.sources()),
      }),
      Target::Cluster(_) => Conn::Cluster(self.cluster_connect().await?),
    };
    {
      let mut cmd = self.cmd.lock().unwrap_or_else(|e| e.into_inner());
      // A racing single-server caller may have stored one first: keep one connection.
      if let Some(first) = cmd.as_ref() {
        return Ok(first.clone());
      }
      *cmd = Some(con.clone());
    }
    // The cluster's connect loaded them already (`load_scripts`); a client object's server is
    // the caller's.
    if matches!(con, Conn::Single(_) | Conn::Tracked(_)) {
      self.load_scripts_on(con.clone()).await;
    }
    Ok(con)
  }

  /// Loads every script on a new single-server connection (one pipelined round trip, best
  /// effort), for the reason `load_scripts` gives.
  async fn load_scripts_on<C: ConnectionLike + Send>(&self, mut con: C) {
    let mut pipe = redis::pipe();
    for script in self.scripts.all() {
      pipe.load_script(script).ignore();
    }
    let _ = pipe.query_async::<()>(&mut con).await;
  }

  /// A cluster client for the configured nodes; with a push handler, on RESP3.
  pub(super) fn cluster_client(
    &self,
    push: Option<PushHandler>,
    what: &str,
  ) -> Result<ClusterClient> {
    let Target::Cluster(nodes) = &self.target else {
      return Err(unexpected(what));
    };
    let mut builder = ClusterClientBuilder::new(nodes.clone())
      .connection_timeout(CONNECT_TIMEOUT)
      .response_timeout(RESPONSE_TIMEOUT)
      .retries(3)
      .min_retry_wait(20)
      .max_retry_wait(500);
    if let Some(ca) = &self.tls_ca {
      builder = builder.certs(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.clone()),
      });
    }
    if let Some(push) = push {
      builder = builder
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(move |info: PushInfo| push(info));
    }
    builder.build().map_err(|e| self.error(what, e))
  }

  /// The command connection to a cluster. Connecting reaches every node, and a node that
  /// accepts but never answers (a stopped replica) holds it up for the connect timeouts: longer
  /// than one `requestTimeout` may be. The connect therefore runs as its own task; a request
  /// cut meanwhile leaves it running, and the next request waits for the same connect.
  pub(super) async fn cluster_connect(&self) -> Result<ClusterConnection> {
    let mut pending = self.connecting.lock().await;
    if let Some(Conn::Cluster(con)) = self.cached()? {
      return Ok(con);
    }
    let task = match pending.as_mut() {
      Some(task) => task,
      None => {
        let client = self.cluster_client(None, "connect")?;
        let sources: Vec<String> = self.scripts.sources().into_values().collect();
        let task = tokio::spawn(async move {
          let con = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection()).await;
          if let Ok(Ok(con)) = &con {
            load_scripts(con.clone(), sources).await;
          }
          con
        });
        *self.connect_abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        pending.insert(task)
      }
    };
    let joined = task.await;
    *pending = None;
    match joined {
      Ok(Ok(Ok(con))) => Ok(con),
      Ok(Ok(Err(e))) => Err(self.error("connect", e)),
      Ok(Err(_)) => Err(LockError::Backend {
        message: "redis: connect failed: no cluster node answered in time".into(),
        source: None,
      }),
      Err(_) => Err(LockError::Closed),
    }
  }

  pub(super) async fn cluster_connection(
    &self,
    push: Option<PushHandler>,
    what: &str,
  ) -> Result<ClusterConnection> {
    let client = self.cluster_client(push, what)?;
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection()).await {
      Ok(Ok(con)) => Ok(con),
      Ok(Err(e)) => Err(self.error(what, e)),
      Err(_) => Err(LockError::Backend {
        message: format!("redis: {what} failed: no cluster node answered in time"),
        source: None,
      }),
    }
  }
}

/// Loads every script on every master, best effort (within `CONNECT_TIMEOUT`), so that a
/// command waiting in a hung server's socket runs whole when the server resumes: a cut
/// attempt's clean-up (a release) must not need the NOSCRIPT fallback, whose caller is gone by
/// then, while the attempt itself (whose script was cached) took the lock.
async fn load_scripts(mut con: ClusterConnection, sources: Vec<String>) {
  use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
  let load = async {
    for source in sources {
      let mut cmd = redis::cmd("SCRIPT");
      cmd.arg("LOAD").arg(source);
      let route = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
      ));
      if con.route_command(cmd, route).await.is_err() {
        return;
      }
    }
  };
  let _ = tokio::time::timeout(CONNECT_TIMEOUT, load).await;
}

/// What cluster batches go by: which master serves each hash slot, as a node answered
/// `CLUSTER SLOTS`, and a connection of the store's own to each of those masters. A batch sends
/// each master the locks of its slots over that connection, which answers each script as the
/// server did. (Through the cluster connection, a pipeline with one MOVED or ASK reply among its
/// answers is sent again whole, to the node named in it: scripts that already ran would run
/// twice, and the others meet redirects of their own there.) A lock whose slot is served
/// elsewhere by then answers MOVED or ASK without running, and is sent again on its own through
/// the cluster connection, which follows the redirect.
pub(super) struct SlotOwners {
  /// Per slot, the index of its master in `masters`; `NO_OWNER` where none is known.
  by_slot: Vec<u16>,
  masters: Vec<ConnectionManager>,
}

const NO_OWNER: u16 = u16::MAX;

/// The state of cluster batches: the slot owners (until a batch sees the cluster change), and
/// the connections to masters made so far, by address (kept across refreshes of the owners).
#[derive(Default)]
pub(super) struct Batching {
  owners: Option<Arc<SlotOwners>>,
  nodes: std::collections::HashMap<(String, u16), ConnectionManager>,
}

impl SlotOwners {
  /// The master of `slot`: its index (the same for every slot it serves) and its connection.
  pub(super) fn owner(&self, slot: u16) -> Option<(u16, &ConnectionManager)> {
    let index = *self.by_slot.get(usize::from(slot))?;
    Some((index, self.masters.get(usize::from(index))?))
  }
}

/// The slot ranges of a `CLUSTER SLOTS` reply, `[[first, last, [host, port, ...], replicas...],
/// ...]`, each with its master's address. `None` for a reply of another shape; a master without
/// a usable address (`""` or `"?"`: unknown to the node) is left out, so its slots have no owner.
fn slot_ranges(reply: &Value) -> Option<Vec<(usize, usize, String, u16)>> {
  let Value::Array(ranges) = reply else {
    return None;
  };
  let mut out = Vec::with_capacity(ranges.len());
  for range in ranges {
    let Value::Array(fields) = range else {
      return None;
    };
    let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
      (fields.first(), fields.get(1), fields.get(2))
    else {
      return None;
    };
    let host = match master.first() {
      Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
      Some(Value::SimpleString(s)) => s.clone(),
      _ => return None,
    };
    let Some(Value::Int(port)) = master.get(1) else {
      return None;
    };
    let (Ok(first), Ok(last), Ok(port)) = (
      usize::try_from(*first),
      usize::try_from(*last),
      u16::try_from(*port),
    ) else {
      return None;
    };
    if first > last || last >= usize::from(super::keys::SLOTS) {
      return None;
    }
    if !host.is_empty() && host != "?" {
      out.push((first, last, host, port));
    }
  }
  Some(out)
}

impl RedisStore {
  /// The slot owners a cluster batch groups by: known ones, or asked of one master (one round
  /// trip, on the first batch and after a batch saw the cluster change). `None` when they could
  /// not be learnt (the batch then sends each lock on its own).
  pub(super) async fn slot_owners(&self, con: &mut ClusterConnection) -> Option<Arc<SlotOwners>> {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    if let Some(owners) = self.batching().owners.clone() {
      return Some(owners);
    }
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
    let reply = con.route_command(cmd, route).await.ok()?;
    let ranges = slot_ranges(&reply)?;
    let Target::Cluster(infos) = &self.target else {
      return None;
    };
    // Every node is reached as the configured ones are (credentials, TLS), at its own address.
    let template = infos.first()?;
    let mut batching = self.batching();
    if self.closed.load(Ordering::Acquire) {
      return None;
    }
    let mut by_slot = vec![NO_OWNER; usize::from(super::keys::SLOTS)];
    let mut addrs: Vec<(String, u16)> = Vec::new();
    let mut masters: Vec<ConnectionManager> = Vec::new();
    for (first, last, host, port) in ranges {
      let addr = (host, port);
      let index = match addrs.iter().position(|a| *a == addr) {
        Some(i) => i,
        None => {
          let con = match batching.nodes.get(&addr) {
            Some(con) => con.clone(),
            None => {
              let con = self.node_connection(template, &addr)?;
              batching.nodes.insert(addr.clone(), con.clone());
              con
            }
          };
          addrs.push(addr);
          masters.push(con);
          addrs.len() - 1
        }
      };
      let index = u16::try_from(index).ok().filter(|i| *i != NO_OWNER)?;
      for owner in by_slot.get_mut(first..=last)? {
        *owner = index;
      }
    }
    let owners = Arc::new(SlotOwners { by_slot, masters });
    batching.owners = Some(owners.clone());
    Some(owners)
  }

  /// A connection to the cluster node at `addr`, with `template`'s settings (lazy: it connects
  /// on its first command).
  fn node_connection(
    &self,
    template: &ConnectionInfo,
    (host, port): &(String, u16),
  ) -> Option<ConnectionManager> {
    let addr = match template.addr() {
      ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.clone(), *port),
      ConnectionAddr::TcpTls {
        insecure,
        tls_params,
        ..
      } => ConnectionAddr::TcpTls {
        host: host.clone(),
        port: *port,
        insecure: *insecure,
        tls_params: tls_params.clone(),
      },
      _ => return None, // a Unix socket: no other node there
    };
    let client = self
      .client(template.clone().set_addr(addr), "connect")
      .ok()?;
    ConnectionManager::new_lazy_with_config(client, Self::manager_config()).ok()
  }

  /// Forgets the slot owners: the next cluster batch asks again.
  pub(super) fn forget_slot_owners(&self) {
    self.batching().owners.take();
  }

  /// Drops the slot owners and the connections to masters (`close`).
  pub(super) fn drop_batching(&self) {
    *self.batching() = Batching::default();
  }

  fn batching(&self) -> std::sync::MutexGuard<'_, Batching> {
    self.batching.lock().unwrap_or_else(|e| e.into_inner())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn node(host: &str, port: i64) -> Value {
    Value::Array(vec![
      Value::BulkString(host.as_bytes().to_vec()),
      Value::Int(port),
      Value::BulkString(b"id".to_vec()),
    ])
  }

  #[test]
  fn cluster_slots_replies_give_each_range_its_master() {
    let range = |first, last, master| {
      Value::Array(vec![
        Value::Int(first),
        Value::Int(last),
        master,
        node("10.0.0.9", 7000),
      ])
    };
    let reply = Value::Array(vec![
      range(0, 5460, node("10.0.0.1", 7000)),
      range(5461, 10922, node("?", 7001)),
      range(10923, 16383, node("10.0.0.1", 7000)),
    ]);
    assert_eq!(
      slot_ranges(&reply),
      Some(vec![
        (0, 5460, "10.0.0.1".to_owned(), 7000),
        (10923, 16383, "10.0.0.1".to_owned(), 7000),
      ])
    );
    for bad in [
      Value::Nil,
      Value::Array(vec![range(0, 16384, node("a", 1))]),
      Value::Array(vec![range(9, 8, node("a", 1))]),
      Value::Array(vec![range(0, 1, node("a", 70_000))]),
      Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])]),
    ] {
      assert_eq!(slot_ranges(&bad), None, "{bad:?}");
    }
  }
}
