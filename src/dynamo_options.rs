//! The DynamoDB backend's options (`createClient({ dynamodb })`, `createLockTable(options)`)
//! into core options.

use ferrolock_core::{Billing, DynamoClientObject, DynamoOptions, StaticCredentials, TableOptions};
use napi_derive::napi;

use crate::error::invalid;
use crate::options::{js_number, ms, AcquireDefaults};

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
  /// The lease of every lock (ms, default 20000: cirello's and Amazon's).
  pub lease_duration: Option<f64>,
  /// Heartbeats renew the lease this often (ms, default 5000); 0: no automatic heartbeats.
  pub heartbeat_period: Option<f64>,
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

impl NativeDynamoOptions {
  /// The acquire defaults of a DynamoDB client over `base`: a lease of `leaseDuration`,
  /// renewed every `heartbeatPeriod` (0: only by hand, `sendHeartbeat`).
  pub fn defaults(&self, base: AcquireDefaults) -> napi::Result<AcquireDefaults> {
    let lease = ms(
      self.lease_duration.unwrap_or(20_000.0),
      "options.dynamodb.leaseDuration",
      1,
    )?;
    let heartbeat = ms(
      self.heartbeat_period.unwrap_or(5_000.0),
      "options.dynamodb.heartbeatPeriod",
      0,
    )?;
    if heartbeat >= lease {
      return Err(invalid(format!(
        "options.dynamodb.heartbeatPeriod ({}) must be less than options.dynamodb.leaseDuration ({})",
        heartbeat.as_millis(),
        lease.as_millis()
      )));
    }
    Ok(AcquireDefaults {
      ttl: lease,
      refresh_interval: (!heartbeat.is_zero()).then_some(heartbeat),
      auto_extend: !heartbeat.is_zero(),
      ..base
    })
  }

  pub fn into_core(self) -> napi::Result<DynamoOptions> {
    let o = self;
    let mut out = DynamoOptions::new(o.table);
    if let Some(t) = o.request_timeout {
      out.request_timeout = ms(t, "options.dynamodb.requestTimeout", 1)?;
    }
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
    Ok(out)
  }
}

impl NativeTableOptions {
  pub fn into_core(self) -> napi::Result<TableOptions> {
    let capacity = |v: f64, what: &str| {
      if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= 1e12 {
        Ok(v as i64)
      } else {
        Err(invalid(format!(
          "createLockTable options.{what} must be a positive integer (got {})",
          js_number(v)
        )))
      }
    };
    let billing = match (self.read_capacity, self.write_capacity) {
      (None, None) => Billing::OnDemand,
      (Some(r), Some(w)) => Billing::Provisioned {
        read: capacity(r, "readCapacity")?,
        write: capacity(w, "writeCapacity")?,
      },
      (r, w) => {
        r.map(|r| capacity(r, "readCapacity")).transpose()?;
        w.map(|w| capacity(w, "writeCapacity")).transpose()?;
        return Err(invalid(
          "createLockTable options.readCapacity and options.writeCapacity go together",
        ));
      }
    };
    let mut tags = Vec::new();
    for pair in self.tags.unwrap_or_default() {
      match <[String; 2]>::try_from(pair) {
        Ok([k, v]) => tags.push((k, v)),
        Err(_) => {
          return Err(invalid(
            "createLockTable options.tags must map strings to strings",
          ))
        }
      }
    }
    let mut out = TableOptions {
      billing,
      tags,
      enable_ttl: self.ttl.unwrap_or(false),
      ..TableOptions::default()
    };
    if let Some(t) = self.timeout {
      out.timeout = ms(t, "createLockTable options.timeout", 1)?;
    }
    Ok(out)
  }
}
