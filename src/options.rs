//! JS option objects (validated in index.js first; checked again here where it matters).

use std::time::Duration;

use ferrolock_core::{
  AcquireExtras, AcquireOptions, Billing, DynamoClientObject, DynamoOptions, Payload,
  RedisClientObject, RedisOptions, RedlockOptions, StaticCredentials, TableOptions, Wait,
};
use napi::bindgen_prelude::{Buffer, Either};
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
  pub data: Option<Either<String, Buffer>>,
  /// Warn ('expiring') when less than this is left without a renewal.
  pub safe_time: Option<f64>,
  /// DynamoDB only.
  pub replace_data: Option<bool>,
  /// DynamoDB only.
  pub delete_on_release: Option<bool>,
  /// DynamoDB only: a JSON object of more attributes to store.
  pub additional_attributes: Option<String>,
  /// Wait until the holder's lease could have run out, plus this (ms); `wait` is then absent.
  pub additional_time_to_wait: Option<f64>,
}

/// DynamoDB client options.
#[napi(object)]
pub struct NativeDynamoOptions {
  pub table: String,
  pub region: Option<String>,
  pub endpoint: Option<String>,
  pub access_key_id: Option<String>,
  pub secret_access_key: Option<String>,
  pub session_token: Option<String>,
  pub partition_key: Option<String>,
  pub sort_key_name: Option<String>,
  pub sort_key_value: Option<String>,
  pub ttl_attribute: Option<String>,
  pub request_timeout: Option<f64>,
  /// A caller's client object, by the number `registerTransport` gave its send function.
  pub client: Option<u32>,
}

/// Options of `createLockTable`.
#[napi(object)]
pub struct NativeTableOptions {
  /// Provisioned capacity; absent: on-demand.
  pub read_capacity: Option<f64>,
  pub write_capacity: Option<f64>,
  /// [key, value] pairs.
  pub tags: Option<Vec<Vec<String>>>,
  pub ttl: Option<bool>,
  pub timeout: Option<f64>,
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
  /// A caller's client object, by the number `registerTransport` gave its send function.
  pub client: Option<u32>,
  /// That client object is a Redis Cluster client.
  pub client_cluster: Option<bool>,
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
      wait: match (self.wait, self.additional_time_to_wait) {
        (None, Some(extra)) => Wait::AfterLease(ms(extra, "options.additionalTimeToWait")?),
        (w, _) => match w {
          None => Wait::Forever,
          Some(0.0) => Wait::No,
          Some(w) => Wait::For(ms(w, "options.wait")?),
        },
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
      data: self.data.map(payload),
      safe_time: self
        .safe_time
        .map(|s| ms(s, "options.safeTime"))
        .transpose()?,
      extras: AcquireExtras {
        replace_data: self.replace_data.unwrap_or(false),
        delete_on_release: self.delete_on_release.unwrap_or(false),
        attributes: match self.additional_attributes {
          None => None,
          Some(json) => match serde_json::from_str(&json) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => {
              return Err(invalid(
                "options.additionalAttributes must be a plain object of JSON values",
              ))
            }
          },
        },
      },
      // Heartbeats wait for the JS thread: a blocked event loop must lose the lock.
      probe: true,
    })
  }
}

impl NativeRedisOptions {
  pub fn into_core(self) -> napi::Result<RedisOptions> {
    let o = self;
    let client = match o.client {
      Some(id) => Some(RedisClientObject {
        transport: crate::transport::take_transport(id)?,
        cluster: o.client_cluster.unwrap_or(false),
      }),
      None => None,
    };
    Ok(RedisOptions {
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
      client,
    })
  }
}

impl NativeRedlockOptions {
  pub fn into_core(self) -> napi::Result<RedlockOptions> {
    let defaults = RedlockOptions::default();
    Ok(RedlockOptions {
      masters: self
        .masters
        .into_iter()
        .map(NativeRedisOptions::into_core)
        .collect::<napi::Result<_>>()?,
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

/// A string or a Buffer as lock data.
pub fn payload(data: Either<String, Buffer>) -> Payload {
  match data {
    Either::A(text) => Payload::Text(text),
    Either::B(bytes) => Payload::Bytes(bytes.to_vec()),
  }
}

/// Lock data back to JS as it was given.
pub fn to_js(data: Payload) -> Either<String, Buffer> {
  match data {
    Payload::Text(text) => Either::A(text),
    Payload::Bytes(bytes) => Either::B(bytes.into()),
  }
}

impl NativeDynamoOptions {
  pub fn into_core(self) -> napi::Result<DynamoOptions> {
    let o = self;
    let mut out = DynamoOptions::new(o.table);
    if let Some(id) = o.client {
      out.client = Some(DynamoClientObject {
        transport: crate::transport::take_transport(id)?,
      });
    }
    out.region = o.region;
    out.endpoint = o.endpoint;
    if let (Some(id), Some(secret)) = (o.access_key_id, o.secret_access_key) {
      out.credentials = Some(StaticCredentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token: o.session_token,
      });
    }
    if let Some(pk) = o.partition_key {
      out.partition_key = pk;
    }
    if let (Some(name), Some(value)) = (o.sort_key_name, o.sort_key_value) {
      out.sort_key = Some((name, value));
    }
    out.ttl_attribute = o.ttl_attribute;
    if let Some(t) = o.request_timeout.filter(|t| t.is_finite() && *t >= 1.0) {
      out.request_timeout = Duration::from_millis(t as u64);
    }
    Ok(out)
  }
}

impl NativeTableOptions {
  pub fn into_core(self) -> napi::Result<TableOptions> {
    let capacity = |v: f64, what: &str| {
      if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= 1e12 {
        Ok(v as i64)
      } else {
        Err(invalid(format!("{what} must be a positive integer")))
      }
    };
    let billing = match (self.read_capacity, self.write_capacity) {
      (None, None) => Billing::OnDemand,
      (Some(r), Some(w)) => Billing::Provisioned {
        read: capacity(r, "options.readCapacity")?,
        write: capacity(w, "options.writeCapacity")?,
      },
      _ => {
        return Err(invalid(
          "options.readCapacity and options.writeCapacity go together",
        ))
      }
    };
    let mut tags = Vec::new();
    for pair in self.tags.unwrap_or_default() {
      match <[String; 2]>::try_from(pair) {
        Ok([k, v]) => tags.push((k, v)),
        Err(_) => return Err(invalid("options.tags must map strings to strings")),
      }
    }
    let mut out = TableOptions {
      billing,
      tags,
      enable_ttl: self.ttl.unwrap_or(false),
      ..TableOptions::default()
    };
    if let Some(t) = self.timeout {
      out.timeout = ms(t, "options.timeout")?;
    }
    Ok(out)
  }
}
