//! JS option objects into core options. index.js and lib/ check shapes (types, unknown keys)
//! only; every range here, every relation between values in the core (`check_options`), each
//! once, with the option names a JS caller wrote.

use std::time::Duration;

use ferrolock_core::{
  AcquireExtras, AcquireOptions, Payload, RedisClientObject, RedisOptions, RedlockOptions,
  RestartQuarantine, Wait,
};
use std::ptr;

use napi::bindgen_prelude::{Buffer, Either, FromNapiValue, ValidateNapiValue};
use napi::{check_status, sys};
use napi_derive::napi;

use crate::error::invalid;

/// The longest duration in ms (2^31 - 1, about 24.8 days).
const MAX_MS: f64 = i32::MAX as f64;

/// Owner names: at most this many bytes.
const MAX_OWNER_BYTES: usize = 1024;

/// Acquire options as the caller gave them (all durations in ms); absent ones take the client's
/// defaults.
#[napi(object, object_from_js = false)]
pub struct NativeAcquireOptions {
  pub ttl: Option<f64>,
  /// `true` or absent: until acquired; `false` or 0: one attempt; otherwise a deadline in ms.
  pub wait: Option<Either<bool, f64>>,
  pub retry_delay: Option<f64>,
  pub retry_jitter: Option<f64>,
  /// Retries after the first attempt; absent or Infinity: unlimited.
  pub max_retries: Option<f64>,
  pub auto_extend: Option<bool>,
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
  /// Wait until the holder's lease could have run out, plus this (ms); excludes `wait`.
  pub additional_time_to_wait: Option<f64>,
}

// Read from the caller's own options object, key by key: an acquire usually gives one or two
// options, and looking up each of the fourteen names would cost more than the acquire.
impl FromNapiValue for NativeAcquireOptions {
  unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
    let mut out = NativeAcquireOptions::empty();
    // SAFETY: `env` and `value` are the arguments of this napi call, and every napi_value made
    // below is used within its handle scope; `name` is a stack buffer whose length is passed.
    unsafe {
      let mut keys = ptr::null_mut();
      check_status!(sys::napi_get_all_property_names(
        env,
        value,
        sys::KeyCollectionMode::own_only,
        sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
        sys::KeyConversion::numbers_to_strings,
        &mut keys,
      ))?;
      let mut len = 0;
      check_status!(sys::napi_get_array_length(env, keys, &mut len))?;
      let mut name = [0u8; 32];
      for i in 0..len {
        let mut key = ptr::null_mut();
        check_status!(sys::napi_get_element(env, keys, i, &mut key))?;
        let mut written = 0;
        check_status!(sys::napi_get_value_string_utf8(
          env,
          key,
          name.as_mut_ptr().cast(),
          name.len(),
          &mut written,
        ))?;
        let mut field = ptr::null_mut();
        check_status!(sys::napi_get_property(env, value, key, &mut field))?;
        let v = field;
        match &name[..written] {
          b"ttl" => out.ttl = FromNapiValue::from_napi_value(env, v)?,
          b"wait" => out.wait = FromNapiValue::from_napi_value(env, v)?,
          b"retryDelay" => out.retry_delay = FromNapiValue::from_napi_value(env, v)?,
          b"retryJitter" => out.retry_jitter = FromNapiValue::from_napi_value(env, v)?,
          b"maxRetries" => out.max_retries = FromNapiValue::from_napi_value(env, v)?,
          b"autoExtend" => out.auto_extend = FromNapiValue::from_napi_value(env, v)?,
          b"refreshInterval" => out.refresh_interval = FromNapiValue::from_napi_value(env, v)?,
          b"owner" => out.owner = FromNapiValue::from_napi_value(env, v)?,
          b"data" => out.data = FromNapiValue::from_napi_value(env, v)?,
          b"safeTime" => out.safe_time = FromNapiValue::from_napi_value(env, v)?,
          b"replaceData" => out.replace_data = FromNapiValue::from_napi_value(env, v)?,
          b"deleteOnRelease" => out.delete_on_release = FromNapiValue::from_napi_value(env, v)?,
          b"additionalAttributes" => {
            out.additional_attributes = FromNapiValue::from_napi_value(env, v)?
          }
          b"additionalTimeToWait" => {
            out.additional_time_to_wait = FromNapiValue::from_napi_value(env, v)?
          }
          _ => {} // not the binding's (signal), or longer than any of its names
        }
      }
    }
    Ok(out)
  }
}

impl ValidateNapiValue for NativeAcquireOptions {}

/// Acquire options packed into a `Float64Array` for `acquireNow` (lib/options/acquire.js
/// `packAcquire` writes them, in the same layout): no property of an options object is read
/// here, and no object is built for the lock taken. Slot `FLAGS` holds one bit per option
/// given (bit n: the option in slot n), `WAIT_IS_BOOL` and `TRY_ONLY`; each number is in its
/// own slot, booleans as 0 or 1. `owner` and `data` cross as arguments of their own.
#[cfg_attr(test, allow(dead_code))] // the slots written back are read by a call from JS only
pub mod packed {
  pub const FLAGS: usize = 0;
  pub const TTL: usize = 1;
  pub const WAIT: usize = 2;
  pub const RETRY_DELAY: usize = 3;
  pub const RETRY_JITTER: usize = 4;
  pub const MAX_RETRIES: usize = 5;
  pub const AUTO_EXTEND: usize = 6;
  pub const REFRESH_INTERVAL: usize = 7;
  pub const SAFE_TIME: usize = 8;
  /// Out: the handle of the lock taken.
  pub const HANDLE: usize = 9;
  /// Out: its fence, as the bits of a u64 (JS reads it through a BigUint64Array).
  pub const FENCE: usize = 10;
  /// Out: 1 when the lock reports events of its own, else 0.
  pub const EVENTS: usize = 11;
  /// The length of the array.
  pub const LEN: usize = 12;
  /// `wait` is a boolean (0 or 1 in its slot), not a number of ms.
  pub const WAIT_IS_BOOL: u32 = 1 << 12;
  /// One attempt (`tryAcquire`).
  pub const TRY_ONLY: u32 = 1 << 13;
}

impl NativeAcquireOptions {
  /// The options packed in `slots` (see `packed`), and whether it is one attempt.
  pub fn from_packed(
    slots: &[f64],
    owner: Option<String>,
    data: Option<Either<String, Buffer>>,
  ) -> napi::Result<(Self, bool)> {
    use packed::*;
    if slots.len() < LEN {
      return Err(invalid(format!("packed options must have {LEN} slots")));
    }
    let flags = slots[FLAGS] as u32;
    let get = |slot: usize| (flags & (1 << slot) != 0).then_some(slots[slot]);
    let mut out = NativeAcquireOptions::empty();
    out.ttl = get(TTL);
    out.wait = get(WAIT).map(|w| {
      if flags & WAIT_IS_BOOL != 0 {
        Either::A(w != 0.0)
      } else {
        Either::B(w)
      }
    });
    out.retry_delay = get(RETRY_DELAY);
    out.retry_jitter = get(RETRY_JITTER);
    out.max_retries = get(MAX_RETRIES);
    out.auto_extend = get(AUTO_EXTEND).map(|v| v != 0.0);
    out.refresh_interval = get(REFRESH_INTERVAL);
    out.safe_time = get(SAFE_TIME);
    out.owner = owner;
    out.data = data;
    Ok((out, flags & TRY_ONLY != 0))
  }
}

/// Settings of a client that every acquire starts from: `owner`, and Redlock's `retryCount`,
/// `retryDelay` and `retryJitter` (DynamoDB's lease and heartbeat are in its own options).
#[napi(object)]
pub struct NativeClientOptions {
  pub owner: Option<String>,
  /// The most bytes of lock data an acquire, heartbeat or release may carry (default 1 MiB).
  pub max_data_bytes: Option<f64>,
  /// The bound of one request in ms (default 2000); not Redlock's (its own is per master).
  pub request_timeout: Option<f64>,
  pub retry_count: Option<f64>,
  pub retry_delay: Option<f64>,
  pub retry_jitter: Option<f64>,
}

/// What a client's acquires default to.
#[derive(Debug, Clone)]
pub struct AcquireDefaults {
  pub(crate) ttl: Duration,
  pub(crate) retry_delay: Duration,
  pub(crate) retry_jitter: Duration,
  pub(crate) max_retries: Option<u64>,
  pub(crate) auto_extend: bool,
  /// Used where the ttl is longer (DynamoDB's heartbeat period).
  pub(crate) refresh_interval: Option<Duration>,
  pub(crate) owner: Option<String>,
  /// The most bytes of lock data (`maxDataBytes`).
  pub max_data_bytes: usize,
  /// The bound of one request (`requestTimeout`).
  pub request_timeout: Duration,
  /// Whether `requestTimeout` was given (a client object otherwise keeps its own 10 s).
  pub request_timeout_given: bool,
}

/// The default of `maxDataBytes`: lock data is for a little context, not for payloads.
pub const MAX_DATA_BYTES: usize = 1 << 20;

impl Default for AcquireDefaults {
  fn default() -> Self {
    let core = AcquireOptions::default();
    AcquireDefaults {
      ttl: core.ttl,
      retry_delay: core.retry_delay,
      retry_jitter: core.retry_jitter,
      max_retries: core.max_retries,
      auto_extend: core.auto_extend,
      refresh_interval: None,
      owner: None,
      max_data_bytes: MAX_DATA_BYTES,
      request_timeout: ferrolock_core::DEFAULT_REQUEST_TIMEOUT,
      request_timeout_given: false,
    }
  }
}

impl AcquireDefaults {
  /// The defaults of a client made with `options` (absent: the built-in ones).
  pub fn from_options(options: Option<NativeClientOptions>) -> napi::Result<Self> {
    let mut out = AcquireDefaults::default();
    let Some(o) = options else {
      return Ok(out);
    };
    if let Some(d) = o.retry_delay {
      out.retry_delay = ms(d, "options.retryDelay", 0)?;
    }
    if let Some(j) = o.retry_jitter {
      out.retry_jitter = ms(j, "options.retryJitter", 0)?;
    }
    if let Some(t) = o.request_timeout {
      out.request_timeout = ms(t, "options.requestTimeout", 1)?;
      out.request_timeout_given = true;
    }
    if let Some(n) = o.retry_count {
      out.max_retries = retries(n, "options.retryCount")?;
    }
    if let Some(n) = o.max_data_bytes {
      if n.fract() != 0.0 || !(1.0..=f64::from(i32::MAX)).contains(&n) {
        return Err(invalid(format!(
          "options.maxDataBytes must be an integer from 1 to {} (got {})",
          i32::MAX,
          js_number(n)
        )));
      }
      out.max_data_bytes = n as usize;
    }
    out.owner = o
      .owner
      .map(|owner| check_owner(owner, "options.owner"))
      .transpose()?;
    Ok(out)
  }
}

/// A number as JavaScript's `String(n)` shows it, for messages.
pub fn js_number(n: f64) -> String {
  if n.is_nan() {
    return "NaN".into();
  }
  if n.is_infinite() {
    return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
  }
  if n == 0.0 {
    return "0".into();
  }
  if n.abs() >= 1e21 || n.abs() < 1e-6 {
    let s = format!("{n:e}");
    return match s.split_once('e') {
      Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
      _ => s,
    };
  }
  format!("{n}")
}

/// A duration in whole ms from `min` to 2^31-1; `what` names it in the message.
pub fn ms(value: f64, what: &str, min: u32) -> napi::Result<Duration> {
  if !(value.is_finite() && value.fract() == 0.0 && value >= f64::from(min) && value <= MAX_MS) {
    return Err(invalid(format!(
      "{what} must be an integer number of milliseconds from {min} to {} (got {})",
      MAX_MS,
      js_number(value)
    )));
  }
  Ok(Duration::from_millis(value as u64))
}

/// A retry count: a non-negative integer, or Infinity (`None`: unlimited).
fn retries(value: f64, what: &str) -> napi::Result<Option<u64>> {
  if value == f64::INFINITY {
    return Ok(None);
  }
  if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 2f64.powi(53) {
    return Ok(Some(value as u64));
  }
  Err(invalid(format!(
    "{what} must be a non-negative integer or Infinity (got {})",
    js_number(value)
  )))
}

fn check_owner(owner: String, what: &str) -> napi::Result<String> {
  if owner.len() > MAX_OWNER_BYTES {
    return Err(invalid(format!(
      "{what} must be a string of at most {MAX_OWNER_BYTES} bytes (got {} bytes)",
      owner.len()
    )));
  }
  Ok(owner)
}

impl NativeAcquireOptions {
  /// Absent options: every value from `defaults`.
  pub fn empty() -> Self {
    NativeAcquireOptions {
      ttl: None,
      wait: None,
      retry_delay: None,
      retry_jitter: None,
      max_retries: None,
      auto_extend: None,
      refresh_interval: None,
      owner: None,
      data: None,
      safe_time: None,
      replace_data: None,
      delete_on_release: None,
      additional_attributes: None,
      additional_time_to_wait: None,
    }
  }

  /// Core options over `defaults`; `try_only` makes one attempt whatever `wait` says. Checks
  /// every range here and every relation (`check_options`), before any I/O.
  pub fn into_core(
    self,
    defaults: &AcquireDefaults,
    try_only: bool,
  ) -> napi::Result<AcquireOptions> {
    let ttl = match self.ttl {
      Some(t) => ms(t, "options.ttl", 1)?,
      None => defaults.ttl,
    };
    let retry_delay = match self.retry_delay {
      Some(d) => ms(d, "options.retryDelay", 0)?,
      None => defaults.retry_delay,
    };
    let retry_jitter = match self.retry_jitter {
      Some(j) => ms(j, "options.retryJitter", 0)?,
      None => defaults.retry_jitter,
    };
    let wait = self.wait_of(try_only)?;
    let max_retries = match self.max_retries {
      Some(n) => retries(n, "options.maxRetries")?,
      None => defaults.max_retries,
    };
    let refresh_interval = match self.refresh_interval {
      Some(r) => Some(ms(r, "options.refreshInterval", 1)?),
      // The client's period, where this ttl leaves room for it.
      None => defaults.refresh_interval.filter(|r| *r < ttl),
    };
    let safe_time = self
      .safe_time
      .map(|s| ms(s, "options.safeTime", 1))
      .transpose()?;
    let owner = match self.owner {
      Some(owner) => Some(check_owner(owner, "options.owner")?),
      None => defaults.owner.clone(),
    };
    let attributes = attributes(self.additional_attributes)?;
    let options = AcquireOptions {
      ttl,
      wait,
      retry_delay,
      retry_jitter,
      max_retries,
      auto_extend: self.auto_extend.unwrap_or(defaults.auto_extend),
      refresh_interval,
      owner,
      data: self
        .data
        .map(|d| data(d, "options.data", defaults.max_data_bytes))
        .transpose()?,
      safe_time,
      extras: AcquireExtras {
        replace_data: self.replace_data.unwrap_or(false),
        delete_on_release: self.delete_on_release.unwrap_or(false),
        attributes,
      },
      // Heartbeats wait for the JS thread: a blocked event loop must lose the lock.
      probe: true,
    };
    ferrolock_core::client::check_options(&options).map_err(crate::error::to_napi)?;
    Ok(options)
  }

  /// `wait` and `additionalTimeToWait` (which exclude each other) as one core `Wait`.
  fn wait_of(&self, try_only: bool) -> napi::Result<Wait> {
    let after_lease = match self.additional_time_to_wait {
      Some(extra) => {
        let extra = ms(extra, "options.additionalTimeToWait", 0)?;
        if self.wait.is_some() {
          return Err(invalid(
            "options.wait and options.additionalTimeToWait exclude each other",
          ));
        }
        Some(extra)
      }
      None => None,
    };
    let wait = match &self.wait {
      _ if try_only => Wait::No,
      Some(Either::A(false)) => Wait::No,
      Some(Either::A(true)) | None => match after_lease {
        Some(extra) => Wait::AfterLease(extra),
        None => Wait::Forever,
      },
      Some(Either::B(w)) => match ms(*w, "options.wait", 0)? {
        d if d.is_zero() => Wait::No,
        d => Wait::For(d),
      },
    };
    Ok(wait)
  }
}

/// `additionalAttributes` (JSON text from lib/) as a JSON object.
fn attributes(
  json: Option<String>,
) -> napi::Result<Option<serde_json::Map<String, serde_json::Value>>> {
  match json.map(|j| serde_json::from_str(&j)) {
    None => Ok(None),
    Some(Ok(serde_json::Value::Object(map))) => Ok(Some(map)),
    Some(_) => Err(invalid(
      "options.additionalAttributes must be a plain object of JSON values",
    )),
  }
}

/// Redis connection options.
#[napi(object)]
pub struct NativeRedisOptions {
  pub url: Option<String>,
  pub host: Option<String>,
  pub port: Option<f64>,
  pub username: Option<String>,
  pub password: Option<String>,
  pub db: Option<f64>,
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
  /// Restart quarantine in ms; 0 turns it off (JS `restartQuarantine: false`). Default: the
  /// longest ttl the client has asked for.
  pub restart_quarantine_ms: Option<f64>,
}

impl NativeRedisOptions {
  /// Core options; `what` names these options in messages (`options.redis`,
  /// `options.redlock[1]`).
  pub fn into_core(self, what: &str) -> napi::Result<RedisOptions> {
    let o = self;
    let port = match o.port {
      None => None,
      Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => Some(p as u16),
      Some(p) => {
        return Err(invalid(format!(
          "{what}.port must be an integer from 1 to 65535 (got {})",
          js_number(p)
        )))
      }
    };
    let db = match o.db {
      None => None,
      Some(d) if d.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&d) => Some(d as i64),
      Some(d) => {
        return Err(invalid(format!(
          "{what}.db must be a non-negative integer (got {})",
          js_number(d)
        )))
      }
    };
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
      port,
      username: o.username,
      password: o.password,
      db,
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
        .enumerate()
        .map(|(i, m)| m.into_core(&format!("options.redlock[{i}]")))
        .collect::<napi::Result<_>>()?,
      drift_factor: self.drift_factor.unwrap_or(defaults.drift_factor),
      clock_drift: match self.clock_drift_ms {
        Some(d) => ms(d, "options.clockDriftMs", 0)?,
        None => defaults.clock_drift,
      },
      request_timeout: match self.request_timeout {
        Some(t) => ms(t, "options.requestTimeout", 1)?,
        None => defaults.request_timeout,
      },
      key_prefix: self.key_prefix,
      restart_quarantine: match self.restart_quarantine_ms {
        None => RestartQuarantine::LongestLease,
        Some(q) => match ms(q, "options.restartQuarantine", 0)? {
          d if d.is_zero() => RestartQuarantine::Off,
          d => RestartQuarantine::For(d),
        },
      },
    })
  }
}

/// Lock data of at most `max` bytes; `what` names it in the message.
pub fn data(value: Either<String, Buffer>, what: &str, max: usize) -> napi::Result<Payload> {
  let len = match &value {
    Either::A(text) => text.len(),
    Either::B(bytes) => bytes.len(),
  };
  if len > max {
    return Err(invalid(format!(
      "{what} is {len} bytes; at most {max} are allowed (the client's maxDataBytes)"
    )));
  }
  Ok(payload(value))
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
