//! Release notifications: one subscription connection (RESP3 push) per store, fed by a task
//! that applies subscribe and unsubscribe requests in order, and wakes the waiters of a
//! channel through the store's `WakeHub`. On a cluster, sharded channels (SSUBSCRIBE). Through
//! a caller's client object, the object's transport subscribes (a `duplicate()` of the object,
//! made on the first wait) when it can; otherwise its waiters poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionInfo, ErrorKind, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::{mpsc, oneshot};

use super::options::Target;
use super::scripts::{as_string, unexpected};
use super::RedisStore;
use crate::error::{LockError, Result};
use crate::store::WakeHub;
use crate::transport::{CommandTransport, Push};

/// How long `watch` waits for SUBSCRIBE before falling back to polling.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) enum SubCmd {
  Subscribe(String, oneshot::Sender<()>),
  Unsubscribe(String),
  Shutdown,
}

/// Receives the pub/sub messages of a subscription connection.
pub(super) type PushHandler = Box<dyn Fn(PushInfo) -> std::result::Result<(), ()> + Send + Sync>;

impl RedisStore {
  /// Starts the subscription task on first use and returns its command queue.
  async fn subscriber(&self) -> Result<&mpsc::UnboundedSender<SubCmd>> {
    self.start_subscriptions().await?;
    Ok(&self.sub_tx)
  }

  pub(super) async fn start_subscriptions(&self) -> Result<()> {
    self
      .subs
      .get_or_try_init(|| async {
        // The receiver is taken only once the connection exists: a failed connect (no cluster
        // node answered) leaves it for the next attempt.
        if self
          .sub_rx
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .is_none()
        {
          return Err(LockError::Closed);
        }
        let hub = self.hub.clone();
        let push = move |info: PushInfo| -> std::result::Result<(), ()> {
          match info.kind {
            PushKind::Message | PushKind::SMessage => {
              if let Some(Value::BulkString(ch)) = info.data.first() {
                let addressee = info.data.get(1).and_then(as_string);
                hub.wake(&String::from_utf8_lossy(ch), addressee.as_deref());
              }
            }
            // Messages may have been missed while the connection was down: let every waiter
            // look again.
            PushKind::Disconnection => hub.wake_all(),
            _ => {}
          }
          Ok(())
        };
        let con = match &self.target {
          Target::Single(info) => {
            let settings = info
              .redis_settings()
              .clone()
              .set_protocol(ProtocolVersion::RESP3);
            let info = ConnectionInfo::clone(info).set_redis_settings(settings);
            let client = self.client(info, "subscribe")?;
            let config = Self::manager_config()
              .set_push_sender(push)
              .set_automatic_resubscription();
            let con = ConnectionManager::new_lazy_with_config(client, config)
              .map_err(|e| self.error("subscribe", e))?;
            SubConn::Single(con)
          }
          Target::Client(client) if client.transport.pushes() => {
            let hub = self.hub.clone();
            client.transport.listen(Arc::new(move |push| match push {
              Push::Message { channel, payload } => hub.wake(&channel, Some(&payload)),
              Push::Reconnected => hub.wake_all(),
            }));
            SubConn::Client(client.transport.clone())
          }
          Target::Client(_) => return Err(unexpected("subscribe")),
          // The cluster connection resubscribes on its own after reconnects and slot moves.
          Target::Cluster(_) => SubConn::Cluster(
            self
              .cluster_connection(Some(Box::new(push)), "subscribe")
              .await?,
          ),
        };
        let rx = self
          .sub_rx
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .take()
          .ok_or(LockError::Closed)?;
        tokio::spawn(run_subscriptions(con, rx, self.hub.clone()));
        Ok(())
      })
      .await?;
    Ok(())
  }

  /// Subscribes to `channel` (the caller registered it in the hub) and waits, at most
  /// `SUBSCRIBE_TIMEOUT`, until the subscription is active. Without one in time the waiter
  /// still works: it polls.
  pub(super) async fn subscribe(&self, channel: &str) -> Result<()> {
    if !self.wakes_waiters() {
      return Ok(()); // a client object that cannot subscribe: the waiters poll
    }
    let subscriber = self.subscriber().await?;
    let (done_tx, done_rx) = oneshot::channel();
    if subscriber
      .send(SubCmd::Subscribe(channel.to_owned(), done_tx))
      .is_ok()
    {
      let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, done_rx).await;
    }
    Ok(())
  }

  /// Whether release notifications wake the waiters here: always over ferrolock's own
  /// connections; through a client object, when its transport can subscribe.
  pub(super) fn wakes_waiters(&self) -> bool {
    match &self.target {
      Target::Client(client) => client.transport.pushes(),
      _ => true,
    }
  }

  /// Closes a client object's subscriber connection, if one was made (ferrolock's own
  /// subscription connection ends with its task).
  pub(super) async fn close_subscriber(&self) {
    if let Target::Client(client) = &self.target {
      client.transport.close().await;
    }
  }
}

/// The subscription connection: one server, the cluster (sharded channels), or a client
/// object's subscriber.
enum SubConn {
  Single(ConnectionManager),
  Cluster(ClusterConnection),
  Client(Arc<dyn CommandTransport>),
}

impl SubConn {
  /// Subscribes; returns whether the channel is sharded (SSUBSCRIBE) or classic.
  async fn subscribe(&mut self, channel: &str) -> redis::RedisResult<bool> {
    match self {
      SubConn::Single(con) => con.subscribe(channel).await.map(|_| false),
      SubConn::Cluster(con) => match con.ssubscribe(channel).await {
        Ok(()) => Ok(true),
        // A server without sharded pub/sub (Redis 6): the scripts fall back to PUBLISH. Any
        // other failure (a timeout or slot move during a failover) is reported instead, so the
        // next watch tries SSUBSCRIBE again rather than listening on the wrong kind of channel.
        Err(e)
          if e
            .to_string()
            .to_ascii_lowercase()
            .contains("unknown command") =>
        {
          con.subscribe(channel).await.map(|_| false)
        }
        Err(e) => Err(e),
      },
      SubConn::Client(transport) => match transport.subscribe(channel.to_owned()).await {
        true => Ok(false),
        false => Err(RedisError::from((
          ErrorKind::Client,
          "the client object did not subscribe",
        ))),
      },
    }
  }

  async fn unsubscribe(&mut self, channel: &str, sharded: bool) {
    let _ = match self {
      SubConn::Single(con) => con.unsubscribe(channel).await,
      SubConn::Cluster(con) if sharded => con.sunsubscribe(channel).await,
      SubConn::Cluster(con) => con.unsubscribe(channel).await,
      SubConn::Client(transport) => {
        transport.unsubscribe(channel.to_owned()).await;
        Ok(())
      }
    };
  }
}

/// Applies subscribe/unsubscribe requests in order on the subscription connection, so an
/// unsubscribe of an idle channel can never overtake a newer subscribe of the same channel.
async fn run_subscriptions(
  mut con: SubConn,
  mut rx: mpsc::UnboundedReceiver<SubCmd>,
  hub: WakeHub,
) {
  // Channel -> whether it is sharded.
  let mut subscribed = HashMap::new();
  while let Some(cmd) = rx.recv().await {
    match cmd {
      SubCmd::Subscribe(channel, done) => {
        if let std::collections::hash_map::Entry::Vacant(entry) = subscribed.entry(channel) {
          if let Ok(sharded) = con.subscribe(entry.key()).await {
            entry.insert(sharded);
          }
        }
        let _ = done.send(());
      }
      SubCmd::Unsubscribe(channel) => {
        if !hub.is_watched(&channel) {
          if let Some(sharded) = subscribed.remove(&channel) {
            con.unsubscribe(&channel, sharded).await;
          }
        }
      }
      SubCmd::Shutdown => break,
    }
  }
}
