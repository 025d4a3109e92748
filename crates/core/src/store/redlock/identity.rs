//! Redlock's masters must be distinct servers: one server listed twice would cast two votes.
//! Two checks: at creation, by the addresses the host names resolve to (`localhost` and
//! `127.0.0.1` are one server), and at connect, by each server's `run_id` (read by the master's
//! connection when it is made, `store/redis/tracked.rs`), which also catches two addresses of
//! one server (a second interface, a port forward). A duplicate is `InvalidArg`.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::error::{LockError, Result};
use crate::store::redis::master::Master;

/// How long creation waits for host names to resolve; a name that takes longer is compared
/// as written (the run_id check at connect still applies).
const RESOLVE_WAIT: Duration = Duration::from_secs(1);

/// `host` and `port` of a master's `address()` (`host:port/db`); `None` for a client object.
fn host_port(address: &str) -> Option<(String, u16)> {
  let (host_port, _db) = address.rsplit_once('/')?;
  let (host, port) = host_port.rsplit_once(':')?;
  let host = host.trim_start_matches('[').trim_end_matches(']');
  Some((host.to_owned(), port.parse().ok()?))
}

/// Every address `host:port` resolves to, IPv4-mapped IPv6 read as IPv4. Empty when it does
/// not resolve in time.
fn resolve_all(targets: Vec<(String, u16)>) -> Vec<HashSet<SocketAddr>> {
  let receivers: Vec<_> = targets
    .into_iter()
    .map(|target| {
      let (tx, rx) = mpsc::channel();
      std::thread::spawn(move || {
        let found: HashSet<SocketAddr> = target
          .to_socket_addrs()
          .map(|addrs| {
            addrs
              .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
              .collect()
          })
          .unwrap_or_default();
        let _ = tx.send(found);
      });
      rx
    })
    .collect();
  let until = std::time::Instant::now() + RESOLVE_WAIT;
  receivers
    .into_iter()
    .map(|rx| {
      let left = until.saturating_duration_since(std::time::Instant::now());
      rx.recv_timeout(left).unwrap_or_default()
    })
    .collect()
}

/// Refuses two masters whose host names resolve to a common address and port.
pub(super) fn check_addresses(masters: &[Arc<dyn Master>]) -> Result<()> {
  let parsed: Vec<Option<(String, u16)>> =
    masters.iter().map(|m| host_port(&m.address())).collect();
  let resolved = resolve_all(parsed.iter().flatten().cloned().collect());
  let mut resolved = resolved.into_iter();
  let mut seen: Vec<(usize, HashSet<SocketAddr>)> = Vec::new();
  for (i, target) in parsed.iter().enumerate() {
    let Some((host, port)) = target else { continue };
    let addrs = resolved.next().unwrap_or_default();
    if let Some((j, _)) = seen.iter().find(|(_, other)| !other.is_disjoint(&addrs)) {
      return Err(LockError::InvalidArg(format!(
        "options.redlock[{i}]: {host}:{port} is the same server as options.redlock[{j}] (one server would vote twice)"
      )));
    }
    seen.push((i, addrs));
  }
  Ok(())
}

/// The masters' run_ids as they become known, and the verdict once two are the same.
#[derive(Default)]
pub(super) struct Identities {
  /// Per master: `None` until it told its run_id; `Some(None)` when it would not say.
  ids: Mutex<Vec<Option<Option<String>>>>,
  first: OnceCell<()>,
  busy: AtomicBool,
  duplicate: Mutex<Option<String>>,
}

impl Identities {
  pub(super) fn new(n: usize) -> Arc<Self> {
    Arc::new(Identities {
      ids: Mutex::new(vec![None; n]),
      ..Default::default()
    })
  }

  fn verdict(&self) -> Result<()> {
    match &*self.duplicate.lock().unwrap_or_else(|e| e.into_inner()) {
      Some(msg) => Err(LockError::InvalidArg(msg.clone())),
      None => Ok(()),
    }
  }

  fn unknown(&self) -> Vec<usize> {
    let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
    (0..ids.len()).filter(|i| ids[*i].is_none()).collect()
  }

  /// Before a new operation: `InvalidArg` once two masters turned out to be one server. The
  /// first call asks every master (bounded by `limit`); later calls ask the masters that did
  /// not answer yet in the background.
  pub(super) async fn check(
    self: &Arc<Self>,
    masters: &[Arc<dyn Master>],
    limit: Duration,
  ) -> Result<()> {
    self.verdict()?;
    if self.first.initialized() {
      if !self.unknown().is_empty() && !self.busy.swap(true, Ordering::AcqRel) {
        let (me, masters) = (self.clone(), masters.to_vec());
        tokio::spawn(async move {
          me.identify(&masters, limit).await;
          me.busy.store(false, Ordering::Release);
        });
      }
      return Ok(());
    }
    self
      .first
      .get_or_init(|| self.identify(masters, limit))
      .await;
    self.verdict()
  }

  /// Asks the masters not identified yet for their run_id, then compares.
  async fn identify(&self, masters: &[Arc<dyn Master>], limit: Duration) {
    let asks = self.unknown().into_iter().map(|i| async move {
      let id = tokio::time::timeout(limit, masters[i].run_id()).await;
      (i, id)
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
    for (i, answer) in answers {
      if let Ok(Ok(id)) = answer {
        ids[i] = Some(id);
      }
    }
    for i in 0..ids.len() {
      for j in 0..i {
        if let (Some(Some(a)), Some(Some(b))) = (&ids[j], &ids[i]) {
          if a == b {
            *self.duplicate.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
              "options.redlock[{i}] is the same Redis server as options.redlock[{j}] (same run_id): one server would vote twice"
            ));
            return;
          }
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn addresses_are_read() {
    assert_eq!(
      host_port("localhost:6379/0"),
      Some(("localhost".into(), 6379))
    );
    assert_eq!(host_port("::1:7000/2"), Some(("::1".into(), 7000)));
    assert_eq!(host_port("client object 0x1"), None);
  }
}
