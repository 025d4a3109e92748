//! JS option objects (validated in index.js first; checked again here where it matters).

use std::time::Duration;

use ferrolock_core::{AcquireOptions, RedisOptions, RedlockOptions, Wait};
use napi_derive::napi;

use crate::error::invalid;

/// Acquire options as index.js passes them (all durations in ms).
#[napi(object)]
pub struct NativeAcquireOptions {
  pub ttl: f64,
  /// Absent: wait until acquired; 0: one attempt; otherwise the deadline in ms.
  pub wait: Option<f64>,
  pub retry_delay: f64,
  pub retry_jitter: f64,
  /// Absent: unlimited.
  pub max_retries: Option<f64>,
  pub auto_extend: bool,
  pub refresh_interval: Option<f64>,
  pub owner: Option<String>,
  pub data: Option<String>,
}

/// Redis connection options.
#[napi(object)]
pub struct NativeRedisOptions {
  pub url: Option<String>,
  pub host: Option<String>,
  pub port: Option<u32>,
  pub username: Option<String>,
  pub password: Option<String>,
  pub db: Option<u32>,
  pub key_prefix: Option<String>,
  /// Use TLS (also implied by rediss://).
  pub tls: Option<bool>,
  /// PEM certificate(s) to trust instead of the system roots.
  pub tls_ca: Option<String>,
  /// Redis Cluster: URLs of some of its nodes (instead of url/host/port).
  pub cluster: Option<Vec<String>>,
}

/// Redlock over independent masters.
#[napi(object)]
pub struct NativeRedlockOptions {
  /// One entry per master (a single server each).
  pub masters: Vec<NativeRedisOptions>,
  /// Drift allowance as a fraction of the ttl (default 0.01).
  pub drift_factor: Option<f64>,
  /// Fixed drift allowance in ms, added to driftFactor x ttl (default 2).
  pub clock_drift_ms: Option<f64>,
  /// Timeout of one request to one master in ms (default 500).
  pub request_timeout: Option<f64>,
  /// Prefix of every lock key on every master (default `lock:`).
  pub key_prefix: Option<String>,
}

fn ms(value: f64, what: &str) -> napi::Result<Duration> {
  if !value.is_finite() || value < 0.0 || value.fract() != 0.0 || value > i32::MAX as f64 {
    return Err(invalid(format!(
      "{what} must be a whole number of milliseconds from 0 to 2147483647"
    )));
  }
  Ok(Duration::from_millis(value as u64))
}

impl NativeAcquireOptions {
  pub fn into_core(self) -> napi::Result<AcquireOptions> {
    Ok(AcquireOptions {
      ttl: ms(self.ttl, "options.ttl")?,
      wait: match self.wait {
        None => Wait::Forever,
        Some(0.0) => Wait::No,
        Some(w) => Wait::For(ms(w, "options.wait")?),
      },
      retry_delay: ms(self.retry_delay, "options.retryDelay")?,
      retry_jitter: ms(self.retry_jitter, "options.retryJitter")?,
      max_retries: match self.max_retries {
        None => None,
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => Some(n as u64),
        Some(_) => return Err(invalid("options.maxRetries must be a non-negative integer")),
      },
      auto_extend: self.auto_extend,
      refresh_interval: self
        .refresh_interval
        .map(|r| ms(r, "options.refreshInterval"))
        .transpose()?,
      owner: self.owner,
      data: self.data,
      // Heartbeats wait for the JS thread: a blocked event loop must lose the lock.
      probe: true,
    })
  }
}

impl From<NativeRedisOptions> for RedisOptions {
  fn from(o: NativeRedisOptions) -> Self {
    RedisOptions {
      url: o.url,
      host: o.host,
      port: o.port.and_then(|p| u16::try_from(p).ok()),
      username: o.username,
      password: o.password,
      db: o.db.map(i64::from),
      key_prefix: o.key_prefix,
      tls: o.tls.unwrap_or(false),
      tls_ca: o.tls_ca.map(String::into_bytes),
      cluster: o.cluster,
    }
  }
}

impl NativeRedlockOptions {
  pub fn into_core(self) -> napi::Result<RedlockOptions> {
    let defaults = RedlockOptions::default();
    Ok(RedlockOptions {
      masters: self.masters.into_iter().map(RedisOptions::from).collect(),
      drift_factor: self.drift_factor.unwrap_or(defaults.drift_factor),
      clock_drift: match self.clock_drift_ms {
        Some(d) => ms(d, "options.clockDriftMs")?,
        None => defaults.clock_drift,
      },
      request_timeout: match self.request_timeout {
        Some(t) => ms(t, "options.requestTimeout")?,
        None => defaults.request_timeout,
      },
      key_prefix: self.key_prefix,
    })
  }
}

/// A duration argument in ms (for `extend`).
pub fn ms_arg(value: f64, what: &str) -> napi::Result<Duration> {
  ms(value, what)
}
