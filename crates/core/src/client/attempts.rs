//! The attempt loop of one acquire call, in named steps: subscribing to wake-ups once the lock
//! turned out to be held, one attempt cut short at the deadline or on close, the DynamoDB
//! takeover sighting, giving up, the backoff with jitter, the sleep that only a wake-up
//! addressed to us ends (FIFO), and the grant-versus-cancel race.

use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use tokio::sync::futures::Notified;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{Cut, LockManager, ATTEMPT_GRACE};
use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Attempt, MAX_TTL};
use crate::options::{AcquireOptions, Wait};
use crate::store::bounded::timed_out;
use crate::store::Watch;
use crate::takeover::Sighting;
use crate::watchdog::Lock;

/// While waiting, look again at least this often (the fallback when a wake-up is missed).
const POLL_CAP: Duration = Duration::from_secs(1);

/// What the attempts of one call have learnt so far.
struct Progress<'a> {
  name: &'a str,
  opts: &'a AcquireOptions,
  waiting: bool,
  /// The wait deadline; set by the first busy answer under `Wait::AfterLease`.
  deadline: Option<Instant>,
  attempt: u64,
  /// The lock was seen held (a slow last attempt then ends as "not acquired", not a fault).
  seen_held: bool,
  /// The failure of the last attempt, when it was worth another try.
  last_error: Option<LockError>,
  /// Time left on the holder's lease, from the last busy answer.
  hint: Option<Duration>,
  /// The holder's record version this waiter saw and since when (stores whose takeover the
  /// manager times, DynamoDB): once ripe, the next attempt may take that version over.
  sighting: Option<Sighting>,
}

/// A granted attempt: the fence, and when the attempt was sent (the lease counts from then).
struct Granted {
  fence: u64,
  started: Instant,
}

impl LockManager {
  /// Attempts until granted, or until the wait ends. `uncertain` is set when an attempt's
  /// outcome is unknown (a timeout, a dropped connection, an attempt cut short): it may have
  /// taken the lock under our token, and the caller's clean-up releases it.
  pub(super) async fn attempts(
    &self,
    name: &str,
    opts: &AcquireOptions,
    token: &str,
    waiting: bool,
    cancel: &CancellationToken,
    uncertain: &mut bool,
  ) -> Result<Option<Lock>> {
    let owner = opts.owner.clone().unwrap_or_else(|| token.to_owned());
    let req = AcquireRequest {
      token,
      owner: &owner,
      ttl: opts.ttl,
      data: opts.data.as_ref(),
      queue_for: waiting.then(|| queue_for(opts)),
      extras: &opts.extras,
    };
    let mut p = Progress {
      name,
      opts,
      waiting,
      deadline: match opts.wait {
        Wait::For(d) => Some(Instant::now() + d),
        _ => None,
      },
      attempt: 0,
      seen_held: false,
      last_error: None,
      hint: None,
      sighting: None,
    };
    // Subscribed only once the lock turned out to be held, so an uncontended acquire is one
    // round trip; the attempt right after subscribing catches a release in between.
    let mut watch = None;
    let mut subscribe = false;
    let mut subscribed = false;
    loop {
      if subscribe {
        (subscribe, subscribed) = (false, true);
        watch = self.subscribe(name, p.deadline).await?;
      }
      // Armed before the attempt, so a release between the attempt and the sleep is not missed.
      let notified = watch.as_ref().map(Watch::notified);
      tokio::pin!(notified);
      if let Some(n) = notified.as_mut().as_pin_mut() {
        n.enable();
      }
      if let Some(g) = self.attempt(&req, &mut p, uncertain).await? {
        let lock = self.granted(name, &req, g, opts, cancel).await?;
        return Ok(Some(lock));
      }
      if !waiting {
        return Ok(None);
      }
      if cancel.is_cancelled() || self.is_closed() {
        return Err(self.stop_error(name, cancel));
      }
      let now = Instant::now();
      p.give_up(now)?;
      if !subscribed && p.last_error.is_none() {
        subscribe = true;
        continue;
      }
      let wake_at = p.poll_at(now);
      self
        .sleep(name, wake_at, notified.as_mut(), &watch, token, cancel)
        .await?;
    }
  }

  /// Registers for release notifications; `None` when the store has none now (then we poll).
  async fn subscribe(&self, name: &str, deadline: Option<Instant>) -> Result<Option<Watch>> {
    let limit = deadline.map(|d| d + ATTEMPT_GRACE);
    match self.cut(self.store.watch(name), limit).await {
      Ok(Ok(w)) => Ok(w),
      Ok(Err(LockError::Closed)) | Err(Cut::Closed) => Err(LockError::Closed),
      Ok(Err(_)) | Err(Cut::Deadline) => Ok(None), // no push now: poll
    }
  }

  /// One attempt. An attempt still in flight at the wait deadline (plus a little) or on close
  /// is cut short: its outcome is unknown then, so the clean-up releases our token. A busy
  /// answer or a failure worth another try is recorded in `p`; other failures end the call.
  async fn attempt(
    &self,
    req: &AcquireRequest<'_>,
    p: &mut Progress<'_>,
    uncertain: &mut bool,
  ) -> Result<Option<Granted>> {
    p.attempt += 1;
    p.hint = None;
    let started = Instant::now();
    let limit = p.deadline.map(|d| d.max(started) + ATTEMPT_GRACE);
    let take_over = p
      .sighting
      .as_ref()
      .and_then(Sighting::ripe)
      .map(str::to_owned);
    let request = self
      .store
      .try_acquire_over(p.name, req, take_over.as_deref());
    let outcome = match self.cut(request, limit).await {
      Ok(done) => done.map(|a| see(&mut p.sighting, a)),
      Err(cut) => {
        *uncertain = true;
        match cut {
          Cut::Closed => return Err(LockError::Closed),
          Cut::Deadline if p.seen_held => {
            return Err(LockError::NotAcquired {
              name: p.name.to_owned(),
              reason: "the wait deadline passed while another owner held it (the last attempt was still in flight)".into(),
            })
          }
          Cut::Deadline => Err(timed_out(
            self.store.kind(),
            "acquire before the wait deadline",
            limit.map_or(Duration::ZERO, |l| l - started),
          )),
        }
      }
    };
    match outcome {
      Ok(Acquire::Granted(grant)) => {
        return Ok(Some(Granted {
          fence: grant.fence,
          started,
        }))
      }
      Ok(Acquire::Held(holder)) => {
        p.last_error = None;
        p.seen_held = true;
        p.hint = holder.remaining;
        if let (Wait::AfterLease(extra), None) = (p.opts.wait, p.deadline) {
          let lease = holder.remaining.unwrap_or(p.opts.ttl);
          // A little beyond the lease, so the attempt that may take it over still fits.
          p.deadline = Some(Instant::now() + lease + extra + Duration::from_millis(50));
        }
      }
      Err(err) => {
        // Only a fault (a timeout, a dropped connection) can hide a write that happened.
        *uncertain |= err.is_retryable();
        if !(p.waiting && err.is_retryable()) {
          return Err(err);
        }
        p.last_error = Some(err);
      }
    }
    Ok(None)
  }

  /// A granted attempt becomes a held lock. A close or a cancel that came while the attempt
  /// was in flight wins: the lock is given back (on close, with the others).
  async fn granted(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
    g: Granted,
    opts: &AcquireOptions,
    cancel: &CancellationToken,
  ) -> Result<Lock> {
    let lock = self.start_lock(name, req.token, req.owner, g.fence, opts, g.started);
    if self.is_closed() {
      // Held in the registry: close() releases it with the others.
      return Err(LockError::Closed);
    }
    if cancel.is_cancelled() {
      let _ = lock.release().await;
      return Err(self.stop_error(name, cancel));
    }
    Ok(lock)
  }

  /// Sleeps until the poll time, a wake-up addressed to us, cancellation or close.
  async fn sleep<'w>(
    &self,
    name: &str,
    wake_at: Instant,
    mut notified: Pin<&mut Option<Notified<'w>>>,
    watch: &'w Option<Watch>,
    token: &str,
    cancel: &CancellationToken,
  ) -> Result<()> {
    loop {
      tokio::select! {
        _ = sleep_until(wake_at) => return Ok(()),
        _ = async { match notified.as_mut().as_pin_mut() { Some(n) => n.await, None => std::future::pending().await } } => {
          // Arm the next wake-up before looking at this one, so none slips in between.
          notified.set(watch.as_ref().map(Watch::notified));
          if let Some(n) = notified.as_mut().as_pin_mut() {
            n.enable();
          }
          if watch.as_ref().is_none_or(|w| w.addressed_to(token)) {
            return Ok(());
          }
          // Another waiter is first in line: keep waiting.
        }
        _ = cancel.cancelled() => return Err(self.stop_error(name, cancel)),
        _ = self.closed.cancelled() => return Err(LockError::Closed),
      }
    }
  }
}

impl Progress<'_> {
  /// `Err` once the wait deadline passed or the tries ran out: the last failure, or "not
  /// acquired".
  fn give_up(&mut self, now: Instant) -> Result<()> {
    let out_of_time = self.deadline.is_some_and(|d| now >= d);
    let out_of_tries = self.opts.max_retries.is_some_and(|m| self.attempt > m);
    if !(out_of_time || out_of_tries) {
      return Ok(());
    }
    Err(match self.last_error.take() {
      Some(err) => err,
      None => LockError::NotAcquired {
        name: self.name.to_owned(),
        reason: if out_of_time {
          "the wait deadline passed while another owner held it".into()
        } else {
          format!("still held after {} attempts", self.attempt)
        },
      },
    })
  }

  /// When to look again: the retry delay plus jitter (at most `POLL_CAP`), sooner when the
  /// holder's lease ends, never past the deadline.
  fn poll_at(&self, now: Instant) -> Instant {
    let opts = self.opts;
    let jitter = if opts.retry_jitter.is_zero() {
      Duration::ZERO
    } else {
      rand::rng().random_range(Duration::ZERO..=opts.retry_jitter)
    };
    let mut delay = (opts.retry_delay + jitter).min(POLL_CAP);
    if let Some(left) = self.hint {
      // Look again right when the holder's lease ends.
      delay = delay.min(left + Duration::from_millis(1));
    }
    let wake_at = now + delay.max(Duration::from_millis(1));
    match self.deadline {
      Some(d) => wake_at.min(d),
      None => wake_at,
    }
  }
}

/// How long the store keeps a waiter's place in the FIFO queue after an attempt: three poll
/// periods, so a waiter that crashed holds up a free lock for at most that long.
fn queue_for(opts: &AcquireOptions) -> Duration {
  (opts.retry_delay + opts.retry_jitter).min(POLL_CAP) * 3 + Duration::from_millis(250)
}

/// An attempt's outcome, with the time left on a versioned holder's lease counted on this
/// waiter's own clock (`crate::takeover`): the same version seen again keeps its clock running.
fn see(sighting: &mut Option<Sighting>, attempt: Attempt) -> Acquire {
  match attempt {
    Attempt {
      outcome: Acquire::Held(mut holder),
      version: Some(version),
    } => {
      let lease = holder.remaining.unwrap_or(MAX_TTL);
      let left = match sighting {
        Some(s) => s.update(&version, lease),
        None => sighting.insert(Sighting::new(&version, lease)).left(),
      };
      holder.remaining = Some(left);
      Acquire::Held(holder)
    }
    other => other.outcome,
  }
}
