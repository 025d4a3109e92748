//! Redlock: one lock over N independent Redis masters (the algorithm described at
//! redis.io/docs/latest/develop/use/patterns/distributed-locks/). Each master runs the
//! single-server scripts through its own [`RedisStore`]; this store only adds the quorum.
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
//!   fence exceeds every fence recorded there (see [`RedisStore`]'s fence notes; a raised fence
//!   ahead of that master's clock is kept in its counter until the clock has passed it). This
//!   holds while masters keep their data; a master restarted empty falls back to its clock
//!   (microseconds), so fences then also depend on the masters' clocks.
//! - Every request has its own timeout: a master that stalls counts as down.
//! - Restart quarantine (`redlock/quarantine.rs`): a master whose run id changed grants no
//!   vote until the longest lease a client may hold there has passed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireExtras, AcquireRequest, Grant, Holder, LockInfo, Payload};
use crate::store::redis::{RedisOptions, RedisStore, SubCmd};
use crate::store::redlock_identity::{check_addresses, Identities};
use crate::store::{unsupported_extras, LockStore, Renewal, WakeHub, Watch};

mod quarantine;
use quarantine::Quarantine;
pub use quarantine::RestartQuarantine;

/// Redlock passes no backend-specific settings to its masters.
static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

/// Options of a Redlock store.
#[derive(Debug, Clone)]
pub struct RedlockOptions {
  /// One entry per independent master (a single server each, no cluster). At least 2.
  pub masters: Vec<RedisOptions>,
  /// Clock drift allowance as a fraction of the ttl, 0 to < 0.5. Default 0.01.
  pub drift_factor: f64,
  /// Fixed drift allowance added to `drift_factor × ttl`. Default 2 ms.
  pub clock_drift: Duration,
  /// How long one request to one master may take before that master counts as down for this
  /// operation. Default 500 ms.
  pub request_timeout: Duration,
  /// Prefix of every lock key on every master; default `lock:`.
  pub key_prefix: Option<String>,
  /// How long a master whose run id changed (a restart) grants no vote; default: the longest
  /// ttl this client has asked for.
  pub restart_quarantine: RestartQuarantine,
}

impl Default for RedlockOptions {
  fn default() -> Self {
    RedlockOptions {
      masters: Vec::new(),
      drift_factor: 0.01,
      clock_drift: Duration::from_millis(2),
      request_timeout: Duration::from_millis(500),
      key_prefix: None,
      restart_quarantine: RestartQuarantine::default(),
    }
  }
}

/// Requests to every master: each yields the master's index and its answer (`None`: it failed
/// or did not answer in time).
type Calls<T> = FuturesUnordered<BoxFuture<'static, (usize, Option<T>)>>;

/// Requests sent after a grant without waiting for them: the rest of the acquire requests, and
/// the fence raises.
type Late = JoinHandle<()>;

/// The Redlock store.
pub struct RedlockStore {
  masters: Vec<Arc<RedisStore>>,
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
  /// The masters' run_ids: two that match are one server (see `redlock_identity`).
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
    // Every master's unsubscribe queue, filled below; the hub's idle hook tells them all.
    let senders: Arc<OnceLock<Vec<mpsc::UnboundedSender<SubCmd>>>> = Arc::new(OnceLock::new());
    let idle = senders.clone();
    let hub = WakeHub::new(Some(Box::new(move |channel: &str| {
      for tx in idle.get().into_iter().flatten() {
        let _ = tx.send(SubCmd::Unsubscribe(channel.to_owned()));
      }
    })));
    let mut masters = Vec::with_capacity(n);
    let mut txs = Vec::with_capacity(n);
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
      let (tx, rx) = mpsc::unbounded_channel();
      let store = RedisStore::with_hub(master, hub.clone(), tx.clone(), rx)
        .map(RedisStore::without_queue)
        .map(RedisStore::tracked)
        .map_err(|e| match e {
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
      txs.push(tx);
      masters.push(Arc::new(store));
    }
    check_addresses(&masters)?;
    let _ = senders.set(txs);
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
      .is_some_and(|m| self.quarantine.excludes(m))
  }

  /// Internal (tests): how long until master `i` votes again after a restart (zero: it votes).
  #[doc(hidden)]
  pub fn quarantine_left(&self, i: usize) -> Duration {
    self
      .masters
      .get(i)
      .map_or(Duration::ZERO, |m| self.quarantine.left(m))
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
    F: Fn(Arc<RedisStore>) -> Fut,
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

/// The answers of the masters to one acquire attempt.
#[derive(Default)]
struct Tally {
  /// (master, its fence)
  granted: Vec<(usize, u64)>,
  /// Masters that granted while in restart quarantine: their grant is ours but no vote.
  benched: Vec<usize>,
  held: Vec<Holder>,
  /// Masters that failed or did not answer in time.
  failed: Vec<usize>,
}

impl Tally {
  /// Adds master `i`'s answer; `benched`: that master is in restart quarantine (asked once
  /// its answer arrived, so that a restart noticed on the way counts).
  fn add(&mut self, (i, answer): (usize, Option<Acquire>), benched: impl Fn(usize) -> bool) {
    match answer {
      Some(Acquire::Granted(_)) if benched(i) => self.benched.push(i),
      Some(Acquire::Granted(g)) => self.granted.push((i, g.fence)),
      Some(Acquire::Held(h)) => self.held.push(h),
      None => self.failed.push(i),
    }
  }
}

/// A request to one master, as owned data (it may outlive the call that sent it).
struct OwnedRequest {
  name: String,
  token: String,
  owner: String,
  ttl: Duration,
  data: Option<Payload>,
  queue_for: Option<Duration>,
}

#[async_trait]
impl LockStore for RedlockStore {
  fn kind(&self) -> &'static str {
    "redlock"
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    self
      .identities
      .check(&self.masters, self.request_timeout)
      .await?;
    let started = Instant::now();
    if !req.extras.is_default() {
      return Err(unsupported_extras("redlock"));
    }
    self.quarantine.lease(req.ttl);
    let drift = self.drift(req.ttl);
    let Some(validity) = req.ttl.checked_sub(drift).filter(|v| !v.is_zero()) else {
      return Err(LockError::InvalidArg(format!(
        "options.ttl ({} ms) is too short for the Redlock drift allowance ({} ms)",
        req.ttl.as_millis(),
        drift.as_millis()
      )));
    };
    let owned = Arc::new(OwnedRequest {
      name: name.to_owned(),
      token: req.token.to_owned(),
      owner: req.owner.to_owned(),
      ttl: req.ttl,
      data: req.data.cloned(),
      queue_for: req.queue_for,
    });
    let limit = self.request_timeout.min(validity);
    let mut calls = self.spawn_all(limit, |m| {
      let r = owned.clone();
      async move {
        // No queue under Redlock (see the module docs): a master without a queue only lists
        // a waiting caller as waiting.
        let single = AcquireRequest {
          token: &r.token,
          owner: &r.owner,
          ttl: r.ttl,
          data: r.data.as_ref(),
          queue_for: r.queue_for,
          extras: &NO_EXTRAS,
        };
        m.try_acquire(&r.name, &single).await
      }
    });
    let n = self.masters.len();
    let mut t = Tally::default();
    // Decide as soon as a majority granted, or other owners hold so many masters that no
    // majority is possible. Failures alone do not decide early: whether the lock is held or the
    // backend unavailable depends on the other answers.
    while t.granted.len() < self.quorum && t.held.len() <= n - self.quorum {
      match calls.next().await {
        Some(answer) => t.add(answer, |i| self.benched(i)),
        None => break,
      }
    }
    if t.granted.len() >= self.quorum && started.elapsed() < validity {
      // The slower masters' requests run on: a late grant is ours, and our release waits for
      // it (so it cannot overtake it).
      if !calls.is_empty() {
        self.in_background(name, async move {
          calls.collect::<Vec<_>>().await;
        });
      }
      let fence = t.granted.iter().map(|(_, f)| *f).max().unwrap_or(0);
      // The fence counts only once a majority's counters are at least this high: the next
      // owner's majority shares a master with it, so its fence is higher. Granting masters
      // with a lower counter are raised now (one more round trip, in parallel, only when the
      // masters' fences differ); without a majority in time, the attempt is undone.
      let mut confirmed = t.granted.iter().filter(|(_, f)| *f >= fence).count();
      let lower: Vec<_> = t
        .granted
        .iter()
        .filter(|(_, f)| *f < fence)
        .filter_map(|(i, _)| self.masters.get(*i).cloned())
        .collect();
      if confirmed < self.quorum && !lower.is_empty() {
        let limit = self
          .request_timeout
          .min(validity.saturating_sub(started.elapsed()));
        let raises = lower.into_iter().map(|m| {
          let (name, token) = (name.to_owned(), req.token.to_owned());
          async move {
            matches!(
              tokio::time::timeout(limit, m.raise_fence(&name, &token, fence)).await,
              Ok(Ok(_))
            )
          }
        });
        confirmed += futures_util::future::join_all(raises)
          .await
          .into_iter()
          .filter(|raised| *raised)
          .count();
      }
      if confirmed >= self.quorum && started.elapsed() < validity {
        return Ok(Acquire::Granted(Grant { fence }));
      }
      self.release(name, req.token).await?;
      return Ok(Acquire::Held(Holder::default()));
    }
    // No majority in time. Collect every answer first (each is bounded by the timeout), so the
    // undo cannot overtake a grant still on its way; then undo on the masters that granted or
    // did not answer (theirs may still land), all at once. Masters that said "held" hold
    // another owner's lock: nothing of ours is there.
    while let Some(answer) = calls.next().await {
      t.add(answer, |i| self.benched(i));
    }
    let Tally {
      granted,
      benched,
      held,
      failed,
    } = t;
    let undo: Vec<usize> = granted
      .iter()
      .map(|(i, _)| *i)
      .chain(benched.iter().copied())
      .chain(failed.iter().copied())
      .collect();
    let undos = undo
      .iter()
      .filter_map(|i| self.masters.get(*i))
      .map(|m| tokio::time::timeout(self.request_timeout, m.release(name, req.token)));
    futures_util::future::join_all(undos).await;
    if held.len() > n - self.quorum || failed.is_empty() {
      let remaining = held.iter().filter_map(|h| h.remaining).min();
      let owner = held.iter().find_map(|h| h.owner.clone());
      return Ok(Acquire::Held(Holder { owner, remaining }));
    }
    Err(self.unavailable("acquire", n - failed.len()))
  }

  /// One batch per master (each one pipeline), every master at once; then each lock is
  /// decided on its own by the same majority rule as `extend`.
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    let started = Instant::now();
    let mut out: Vec<Option<Result<bool>>> = Vec::with_capacity(items.len());
    let mut limit = self.request_timeout;
    for r in items {
      let drift = self.drift(r.ttl);
      if r.ttl <= drift {
        out.push(Some(Err(LockError::InvalidArg(format!(
          "ttl ({} ms) is too short for the Redlock drift allowance ({} ms)",
          r.ttl.as_millis(),
          drift.as_millis()
        )))));
      } else {
        limit = limit.min((r.ttl - drift).max(Duration::from_millis(1)));
        out.push(None);
      }
    }
    let per_master = self.masters.iter().map(|m| async move {
      tokio::time::timeout(limit, m.extend_many(items))
        .await
        .unwrap_or_default()
    });
    let answers = futures_util::future::join_all(per_master).await;
    let n = self.masters.len();
    let mut late = Vec::new();
    for (i, r) in items.iter().enumerate() {
      if out[i].is_some() {
        continue;
      }
      let (mut yes, mut no) = (0, 0);
      for answer in &answers {
        match answer.get(i) {
          Some(Ok(true)) => yes += 1,
          Some(Ok(false)) => no += 1,
          _ => {}
        }
      }
      out[i] = Some(if yes >= self.quorum {
        if started.elapsed() < r.ttl - self.drift(r.ttl) {
          Ok(true)
        } else {
          // Renewed too late to count: do not leave it blocking others for a whole ttl.
          late.push(*r);
          Ok(false)
        }
      } else if no > n - self.quorum {
        Ok(false)
      } else {
        Err(self.unavailable("extend", yes + no))
      });
    }
    futures_util::future::join_all(late.iter().map(|r| self.release(r.name, r.token))).await;
    out
      .into_iter()
      .map(|r| r.unwrap_or_else(|| Err(self.unavailable("extend", 0))))
      .collect()
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
    if yes >= self.quorum {
      return Ok(true);
    }
    if yes + failed >= self.quorum {
      return Err(self.unavailable("release", self.masters.len() - failed));
    }
    Ok(false)
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
    if self.masters.iter().all(|m| m.is_client()) {
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
