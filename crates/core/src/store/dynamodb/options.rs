//! Where the lock table is and how to reach it, and the table's own options; every name is
//! checked against DynamoDB's rules and the store's attribute names before any request.

use std::time::Duration;

use super::RESERVED;
use crate::error::{LockError, Result};
use crate::store::dynamodb::DynamoClientObject;

/// Static AWS credentials.
#[derive(Clone)]
pub struct StaticCredentials {
  pub access_key_id: String,
  pub secret_access_key: String,
  pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    // Never print the secret (nor the key id: it names the account's user).
    f.write_str("StaticCredentials { .. }")
  }
}

/// Where the lock table is and how to reach it. Unset fields come from the standard AWS
/// chain (environment, shared config and credentials files, profiles).
#[derive(Debug, Clone)]
pub struct DynamoOptions {
  pub table: String,
  pub region: Option<String>,
  /// e.g. `http://127.0.0.1:8000` for a local server.
  pub endpoint: Option<String>,
  pub credentials: Option<StaticCredentials>,
  /// Partition key attribute name; default `key`.
  pub partition_key: String,
  /// Sort key attribute name and the value every lock record uses, for tables that have one.
  pub sort_key: Option<(String, String)>,
  /// Attribute that DynamoDB's TTL feature reads (epoch seconds), if the table uses it.
  pub ttl_attribute: Option<String>,
  /// Per-request timeout. Default 2 s (`DEFAULT_REQUEST_TIMEOUT`).
  pub request_timeout: Duration,
  /// The caller's own client object (the transport seam): every request goes through it, with
  /// its credentials, region and endpoint; `region`, `endpoint` and `credentials` must be unset.
  pub client: Option<DynamoClientObject>,
}

impl DynamoOptions {
  /// Options for `table` with every other field at its default.
  pub fn new(table: impl Into<String>) -> Self {
    DynamoOptions {
      table: table.into(),
      region: None,
      endpoint: None,
      credentials: None,
      partition_key: "key".into(),
      sort_key: None,
      ttl_attribute: None,
      request_timeout: crate::store::bounded::DEFAULT_REQUEST_TIMEOUT,
      client: None,
    }
  }

  /// Checks names against DynamoDB's rules and the store's own attribute names.
  pub fn validate(&self) -> Result<()> {
    check_table_name(&self.table)?;
    if self.client.is_some()
      && (self.region.is_some() || self.endpoint.is_some() || self.credentials.is_some())
    {
      return Err(LockError::InvalidArg(
        "options.dynamodb: a client object brings its own region, endpoint and credentials; do not also give them".into(),
      ));
    }
    check_attribute_name(&self.partition_key, "options.dynamodb.partitionKey")?;
    let mut own = vec![self.partition_key.as_str()];
    if let Some((name, value)) = &self.sort_key {
      check_attribute_name(name, "options.dynamodb.sortKey.name")?;
      if value.is_empty() || value.len() > 1024 {
        return Err(LockError::InvalidArg(
          "options.dynamodb.sortKey.value must be a non-empty string of at most 1024 bytes".into(),
        ));
      }
      own.push(name);
    }
    if let Some(ttl) = &self.ttl_attribute {
      check_attribute_name(ttl, "options.dynamodb.ttlAttribute")?;
      own.push(ttl);
    }
    for (i, a) in own.iter().enumerate() {
      if own[..i].contains(a) {
        return Err(LockError::InvalidArg(format!(
          "options.dynamodb: the attribute name \"{a}\" is used twice"
        )));
      }
    }
    if let Some(region) = &self.region {
      let ok = !region.is_empty()
        && region.len() <= 64
        && region
          .bytes()
          .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
      if !ok {
        return Err(LockError::InvalidArg(
          "options.dynamodb.region must look like \"us-east-1\"".into(),
        ));
      }
    }
    if let Some(endpoint) = &self.endpoint {
      if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(LockError::InvalidArg(
          "options.dynamodb.endpoint must be an http:// or https:// URL".into(),
        ));
      }
    }
    if let Some(c) = &self.credentials {
      if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
        return Err(LockError::InvalidArg(
          "options.dynamodb.credentials needs a non-empty accessKeyId and secretAccessKey".into(),
        ));
      }
    }
    if self.request_timeout.is_zero() {
      return Err(LockError::InvalidArg(
        "options.dynamodb.requestTimeout must be positive".into(),
      ));
    }
    Ok(())
  }
}

/// DynamoDB table names: 3 to 255 characters from `a-z A-Z 0-9 _ - .`.
pub fn check_table_name(table: &str) -> Result<()> {
  let ok = (3..=255).contains(&table.len())
    && table
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
  if ok {
    Ok(())
  } else {
    Err(LockError::InvalidArg(format!(
      "options.dynamodb.table must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.' (got {table:?})"
    )))
  }
}

pub(super) fn check_attribute_name(name: &str, what: &str) -> Result<()> {
  if name.is_empty() || name.len() > 255 {
    return Err(LockError::InvalidArg(format!(
      "{what} must be a non-empty attribute name of at most 255 bytes"
    )));
  }
  if RESERVED.contains(&name) {
    return Err(LockError::InvalidArg(format!(
      "{what}: \"{name}\" is an attribute ferrolock writes itself"
    )));
  }
  Ok(())
}

/// How the lock table is billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Billing {
  /// On-demand (pay per request), the default.
  OnDemand,
  /// Provisioned read and write capacity units.
  Provisioned { read: i64, write: i64 },
}

/// Options of `create_table`.
#[derive(Debug, Clone)]
pub struct TableOptions {
  pub billing: Billing,
  pub tags: Vec<(String, String)>,
  /// Enable DynamoDB's TTL on the store's TTL attribute (needs `ttl_attribute`).
  pub enable_ttl: bool,
  /// Give up waiting for ACTIVE (or for the table to be gone) after this long.
  pub timeout: Duration,
}

impl Default for TableOptions {
  fn default() -> Self {
    TableOptions {
      billing: Billing::OnDemand,
      tags: Vec::new(),
      enable_ttl: false,
      timeout: Duration::from_secs(300),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::store::dynamodb::DynamoStore;

  #[test]
  fn options_are_checked_before_any_request() {
    assert!(DynamoStore::new(DynamoOptions::new("locks")).is_ok());
    for bad in ["", "ab", "has space", "ü-table", &"x".repeat(256)] {
      let err = DynamoStore::new(DynamoOptions::new(bad)).err();
      assert!(matches!(err, Some(LockError::InvalidArg(_))), "{bad:?}");
    }
    let mut o = DynamoOptions::new("locks");
    o.partition_key = "owner".into();
    assert!(matches!(o.validate(), Err(LockError::InvalidArg(_))));
    o.partition_key = String::new();
    assert!(matches!(o.validate(), Err(LockError::InvalidArg(_))));
    let mut o = DynamoOptions::new("locks");
    o.sort_key = Some(("key".into(), "x".into()));
    assert!(matches!(o.validate(), Err(LockError::InvalidArg(_))));
    let mut o = DynamoOptions::new("locks");
    o.endpoint = Some("localhost:8000".into());
    assert!(matches!(o.validate(), Err(LockError::InvalidArg(_))));
  }

  #[test]
  fn credentials_never_print() {
    let c = StaticCredentials {
      access_key_id: "AKIDEXAMPLE".into(),
      secret_access_key: "s3cr3t".into(),
      session_token: None,
    };
    let mut o = DynamoOptions::new("locks");
    o.credentials = Some(c);
    let shown = format!("{o:?}");
    assert!(
      !shown.contains("s3cr3t") && !shown.contains("AKIDEXAMPLE"),
      "{shown}"
    );
  }
}
