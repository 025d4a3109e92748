//! Redlock: one lock over N independent Redis masters (the algorithm described at
//! redis.io/docs/latest/develop/use/patterns/distributed-locks/). Each master runs the
//! single-server scripts through its own Redis store, which Redlock talks to only through the
//! per-master interface `Master` (`store/redis/master.rs`); this store only adds the quorum.
//!
//! Files: `acquire.rs` (the quorum acquire and its fence), `batch.rs` (batched renewals and
//! releases), `identity.rs` (one server listed twice), `quarantine.rs` (restarted masters),
//! `options.rs`.
//!
//! - Acquire asks every master at once. It holds when a majority (N/2+1) granted and the
//!   validity, ttl − elapsed − drift, is still positive; otherwise it releases on every master
//!   at once and reports `Held` (the manager retries after its jittered delay).
//! - No FIFO queue: independent per-master queues can disagree on who is first and block each
//!   other for ever, so waiters are never queued. A waiting attempt (`queue_for`) is only
//!   listed on each master as alive and waiting, so that the release there wakes it.
//! - Fence: the largest per-master fence among the granting masters. Before the grant is
//!   reported, granting masters with a lower counter are raised to it, and the grant counts
//!   only when a majority's counters reached it (else it is undone): the next owner's majority
//!   shares at least one master with ours, so it gets a larger fence there: each master's next
//!   fence exceeds every fence recorded there (see `RedisStore`'s fence notes; a raised fence
//!   ahead of that master's clock is kept in its counter until the clock has passed it). This
//!   holds while masters keep their data; a master restarted empty falls back to its clock
//!   (microseconds), so fences then also depend on the masters' clocks.
//! - Every request has its own timeout: a master that stalls counts as down.
//! - Restart quarantine (`redlock/quarantine.rs`): a master whose run id changed grants no
//!   vote until the longest lease a client may hold there has passed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, LockInfo};
use crate::store::redis::master::Master;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::{LockStore, Owned, Renewal, WakeHub, Watch};

mod acquire;
mod batch;
mod identity;
mod options;
mod quarantine;

use identity::{check_addresses, Identities};
pub use options::RedlockOptions;
use quarantine::Quarantine;
pub use quarantine::RestartQuarantine;

/// Requests to every master: each yields the master's index and its answer (`None`: it failed
/// or did not answer in time).
type Calls<T> = FuturesUnordered<BoxFuture<'static, (usize, Option<T>)>>;

/// Requests sent after a grant without waiting for them: the rest of the acquire requests, and
/// the fence raises.
type Late = JoinHandle<()>;

/// The Redlock store.
pub struct RedlockStore {
  masters: Vec<Arc<dyn Master>>,
  quorum: usize,
  drift_factor: f64,
  clock_drift: Duration,
  request_timeout: Duration,
  /// Release notifications of every master wake the same waiters.
  hub: WakeHub,
  /// Requests still in flight after a grant, by lock name: a release or inspect of that name
  /// waits for them first (so it cannot overtake them).
  late: Mutex<HashMap<String, Vec<Late>>>,
  quarantine: Quarantine,
  /// The masters' run_ids: two that match are one server (see `identity.rs`).
  identities: Arc<Identities>,
}

impl RedlockStore {
  /// Validates the options; connects lazily on first use.
  pub fn new(opts: RedlockOptions) -> Result<Self> {
    let n = opts.masters.len();
    if n < 2 {
      return Err(LockError::InvalidArg(format!(
        "options.redlock must list at least 2 masters (got {n}); for one server use options.redis"
      )));
    }
    if !(opts.drift_factor.is_finite() && (0.0..0.5).contains(&opts.drift_factor)) {
      return Err(LockError::InvalidArg(
        "options.driftFactor must be a number from 0 to less than 0.5".into(),
      ));
    }
    if opts.request_timeout.is_zero() {
      return Err(LockError::InvalidArg(
        "options.requestTimeout must be positive".into(),
      ));
    }
    // Every master, filled below; the hub's idle hook tells them all to unsubscribe. Weak: the
    // masters hold the hub, which must not keep them alive.
    let all: Arc<OnceLock<Vec<Weak<dyn Master>>>> = Arc::new(OnceLock::new());
    let idle = all.clone();
    let hub = WakeHub::new(Some(Box::new(move |channel: &str| {
      for master in idle.get().into_iter().flatten() {
        if let Some(master) = master.upgrade() {
          master.unsubscribe(channel);
        }
      }
    })));
    let mut masters = Vec::with_capacity(n);
    let mut seen = HashSet::new();
    for (i, master) in opts.masters.into_iter().enumerate() {
      if master.cluster.is_some() {
        return Err(LockError::InvalidArg(format!(
          "options.redlock[{i}]: a Redlock master is one server, not a cluster"
        )));
      }
      let master = RedisOptions {
        key_prefix: opts.key_prefix.clone().or(master.key_prefix),
        ..master
      };
      let store = RedisStore::master(master, hub.clone()).map_err(|e| match e {
        LockError::InvalidArg(msg) => {
          LockError::InvalidArg(msg.replace("options.redis", &format!("options.redlock[{i}]")))
        }
        other => other,
      })?;
      if !seen.insert(store.address()) {
        return Err(LockError::InvalidArg(format!(
          "options.redlock[{i}]: the same master ({}) is listed twice",
          store.address()
        )));
      }
      masters.push(store);
    }
    check_addresses(&masters)?;
    let _ = all.set(masters.iter().map(Arc::downgrade).collect());
    Ok(RedlockStore {
      identities: Identities::new(n),
      quorum: n / 2 + 1,
      masters,
      drift_factor: opts.drift_factor,
      clock_drift: opts.clock_drift,
      request_timeout: opts.request_timeout,
      hub,
      late: Mutex::new(HashMap::new()),
      quarantine: Quarantine::new(opts.restart_quarantine),
    })
  }

  /// Number of masters that must agree.
  pub fn quorum(&self) -> usize {
    self.quorum
  }

  /// Whether master `i`'s answers are no votes now (restart quarantine).
  fn benched(&self, i: usize) -> bool {
    self
      .masters
      .get(i)
      .is_some_and(|m| self.quarantine.excludes(m.as_ref()))
  }

  /// Internal (tests): how long until master `i` votes again after a restart (zero: it votes).
  #[doc(hidden)]
  pub fn quarantine_left(&self, i: usize) -> Duration {
    self
      .masters
      .get(i)
      .map_or(Duration::ZERO, |m| self.quarantine.left(m.as_ref()))
  }

  /// The drift allowance for a lease of `ttl`: driftFactor × ttl + clockDrift.
  pub fn drift(&self, ttl: Duration) -> Duration {
    ttl.mul_f64(self.drift_factor) + self.clock_drift
  }

  /// Sends `op` to every master at once, each request bounded by `limit`, as tasks of their
  /// own: the caller may decide on the first answers, and the rest still run to completion
  /// (so a lock lands on every live master, not only on the first majority). Each answer is
  /// `None` when that master failed or did not answer in time.
  fn spawn_all<T, F, Fut>(&self, limit: Duration, op: F) -> Calls<T>
  where
    F: Fn(Arc<dyn Master>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
  {
    self
      .masters
      .iter()
      .enumerate()
      .map(|(i, m)| {
        let call = op(m.clone());
        let task = tokio::spawn(async move {
          match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => Some(v),
            _ => None,
          }
        });
        // A task that panicked or was cancelled counts as a master that did not answer.
        async move { (i, task.await.ok().flatten()) }.boxed()
      })
      .collect()
  }

  /// Runs `work` for `name` in the background; a later release or inspect of `name` waits for
  /// it (every request in it is bounded by its timeout).
  fn in_background(&self, name: &str, work: impl Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(work);
    let mut late = self.late.lock().unwrap_or_else(|e| e.into_inner());
    late.retain(|_, pending| {
      pending.retain(|t| !t.is_finished());
      !pending.is_empty()
    });
    late.entry(name.to_owned()).or_default().push(handle);
  }

  /// Waits for the background requests of `name`.
  async fn settle_late(&self, name: &str) {
    let pending = self
      .late
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .remove(name);
    if let Some(pending) = pending {
      futures_util::future::join_all(pending).await;
    }
  }

  fn unavailable(&self, what: &str, answered: usize) -> LockError {
    LockError::Backend {
      message: format!(
        "redlock: {what} failed: only {answered} of {} masters answered (a majority of {} is needed)",
        self.masters.len(),
        self.quorum
      ),
      source: None,
    }
  }

  /// The answer to a release that `yes` masters confirmed and `failed` did not answer: released
  /// by a majority; unknown (an error) while the failed ones could still make one; else not
  /// ours.
  fn release_verdict(&self, yes: usize, failed: usize) -> Result<bool> {
    if yes >= self.quorum {
      return Ok(true);
    }
    if yes + failed >= self.quorum {
      return Err(self.unavailable("release", self.masters.len() - failed));
    }
    Ok(false)
  }

  /// Releases `token` on every master at once; `(released, failed)` counts, once decided.
  async fn release_all(&self, name: &str, token: &str) -> (usize, usize) {
    let (name, token) = (Arc::<str>::from(name), Arc::<str>::from(token));
    let mut calls = self.spawn_all(self.request_timeout, |m| {
      let (name, token) = (name.clone(), token.clone());
      async move { m.release(&name, &token).await }
    });
    let (mut yes, mut no, mut failed) = (0, 0, 0);
    let n = self.masters.len();
    while yes < self.quorum && no <= n - self.quorum {
      match calls.next().await {
        Some((_, Some(true))) => yes += 1,
        Some((_, Some(false))) => no += 1,
        Some((_, None)) => failed += 1,
        None => break,
      }
    }
    (yes, failed)
  }
}

#[async_trait]
impl LockStore for RedlockStore {
  fn kind(&self) -> &'static str {
    "redlock"
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    self.acquire_quorum(name, req).await
  }

  /// One pipeline per master, every master at once; then each lock is decided on its own by
  /// the same majority rule as `extend` (`batch.rs`).
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    self.extend_batch(items).await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    let started = Instant::now();
    let drift = self.drift(ttl);
    if ttl <= drift {
      return Err(LockError::InvalidArg(format!(
        "ttl ({} ms) is too short for the Redlock drift allowance ({} ms)",
        ttl.as_millis(),
        drift.as_millis()
      )));
    }
    let validity = ttl - drift;
    self.quarantine.lease(ttl);
    let limit = self
      .request_timeout
      .min(validity.max(Duration::from_millis(1)));
    let (name, token) = (Arc::<str>::from(name), Arc::<str>::from(token));
    let mut calls = self.spawn_all(limit, |m| {
      let (name, token) = (name.clone(), token.clone());
      async move { m.extend(&name, &token, ttl).await }
    });
    let n = self.masters.len();
    let (mut yes, mut no) = (0, 0);
    while yes < self.quorum && no <= n - self.quorum {
      match calls.next().await {
        // A master in restart quarantine renews our key there, but that is no vote.
        Some((i, Some(true))) if self.benched(i) => {}
        Some((_, Some(true))) => yes += 1,
        Some((_, Some(false))) => no += 1,
        Some((_, None)) => {}
        None => break,
      }
    }
    if yes >= self.quorum {
      if started.elapsed() < validity {
        return Ok(true);
      }
      // Renewed too late to count: do not leave it blocking others for a whole ttl.
      let _ = self.release(&name, &token).await;
      return Ok(false);
    }
    if no > n - self.quorum {
      return Ok(false);
    }
    Err(self.unavailable("extend", yes + no))
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    self.settle_late(name).await;
    let (yes, failed) = self.release_all(name, token).await;
    self.release_verdict(yes, failed)
  }

  /// One pipeline per master, every master at once; each lock decided on its own, as `release`
  /// decides it (`batch.rs`).
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    self.release_batch(items).await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    self.settle_late(name).await;
    let name = Arc::<str>::from(name);
    let calls = self.spawn_all(self.request_timeout, |m| {
      let name = name.clone();
      async move { m.inspect(&name).await }
    });
    let answers: Vec<Option<Option<LockInfo>>> = calls.map(|(_, a)| a).collect().await;
    let answered = answers.iter().filter(|a| a.is_some()).count();
    if answered < self.quorum {
      return Err(self.unavailable("inspect", answered));
    }
    let infos: Vec<LockInfo> = answers.into_iter().flatten().flatten().collect();
    // The lock exists when a majority shows the same owner. Its fence is the agreed one, which
    // the granting majority records (a master that granted late keeps its own).
    for info in &infos {
      let same: Vec<&LockInfo> = infos.iter().filter(|i| i.owner == info.owner).collect();
      if same.len() >= self.quorum {
        let agreed = same
          .iter()
          .map(|i| i.fence)
          .find(|f| same.iter().filter(|i| i.fence == *f).count() >= self.quorum);
        // The lock lasts while a majority still has it: the quorum-th longest lease.
        let mut left: Vec<Duration> = same.iter().filter_map(|i| i.remaining).collect();
        left.sort_unstable_by(|a, b| b.cmp(a));
        return Ok(Some(LockInfo {
          owner: info.owner.clone(),
          remaining: left.get(self.quorum - 1).copied(),
          fence: agreed.unwrap_or_else(|| same.iter().map(|i| i.fence).max().unwrap_or(0)),
          data: info.data.clone(),
        }));
      }
    }
    Ok(None)
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    // Never queued, but listed as waiting on the masters: say we are gone (best effort; the
    // entries also lapse by themselves within a few seconds).
    let (name, token) = (Arc::<str>::from(name), Arc::<str>::from(token));
    let calls = self.spawn_all(self.request_timeout, |m| {
      let (name, token) = (name.clone(), token.clone());
      async move { m.leave_queue(&name, &token).await }
    });
    calls.collect::<Vec<_>>().await;
    Ok(())
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    let Some(first) = self.masters.first() else {
      return Ok(None);
    };
    if !self.masters.iter().any(|m| m.pushes()) {
      return Ok(None); // client objects carry no subscriptions: the waiters poll
    }
    let channel: Arc<str> = first.channel(name).into();
    let (watch, _) = self.hub.register(&channel);
    // A release published by any master wakes the waiters. Wait until a majority subscribed;
    // the others finish on their own (a stalled one never does: the waiters also poll).
    let mut calls = self.spawn_all(self.request_timeout, |m| {
      let channel = channel.clone();
      async move { m.subscribe(&channel).await }
    });
    let mut done = 0;
    while done < self.quorum && calls.next().await.is_some() {
      done += 1;
    }
    Ok(Some(watch))
  }

  fn validity(&self, ttl: Duration) -> Duration {
    ttl.saturating_sub(self.drift(ttl))
  }

  fn fifo(&self) -> bool {
    false
  }

  fn watched(&self) -> usize {
    self.hub.len()
  }

  async fn close(&self) {
    futures_util::future::join_all(self.masters.iter().map(|m| m.close())).await;
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn masters(urls: &[&str]) -> RedlockOptions {
    RedlockOptions {
      masters: urls
        .iter()
        .map(|u| RedisOptions {
          url: Some((*u).to_owned()),
          ..Default::default()
        })
        .collect(),
      ..Default::default()
    }
  }

  #[test]
  fn bad_options_are_rejected() {
    let err = |o: RedlockOptions| {
      RedlockStore::new(o)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(err(masters(&[])).contains("at least 2 masters"));
    assert!(err(masters(&["redis://a:1"])).contains("at least 2 masters"));
    assert!(err(masters(&["redis://a:1", "redis://a:1/0"])).contains("listed twice"));
    assert!(err(masters(&["redis://a:1", "http://b"])).contains("options.redlock[1]"));
    for bad in [-0.1, 0.5, f64::NAN, f64::INFINITY] {
      let o = RedlockOptions {
        drift_factor: bad,
        ..masters(&["redis://a:1", "redis://b:1"])
      };
      assert!(err(o).contains("driftFactor"), "{bad}");
    }
    let ok = RedlockStore::new(masters(&["redis://a:1", "redis://a:2", "redis://b:1"]));
    assert_eq!(ok.map(|s| s.quorum()).ok(), Some(2));
  }

  #[test]
  fn drift_is_a_fraction_of_the_ttl_plus_a_constant() {
    let store = RedlockStore::new(masters(&["redis://a:1", "redis://b:1"]));
    let Ok(store) = store else {
      panic!("valid options")
    };
    assert_eq!(
      store.drift(Duration::from_secs(10)),
      Duration::from_millis(102)
    );
    assert_eq!(
      store.validity(Duration::from_secs(10)),
      Duration::from_millis(9_898)
    );
    assert_eq!(store.validity(Duration::from_millis(1)), Duration::ZERO);
  }
}
