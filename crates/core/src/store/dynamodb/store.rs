//! The DynamoDB `LockStore`: one conditional write per acquire, heartbeat and release (module
//! docs in `mod.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use tokio::sync::OnceCell;

use super::codec::{
  bool_attr, data_attr, from_json, lease_attr, millis, n_attr, payload_value, s_attr, Item,
};
use super::expr::Expr;
use super::options::check_attribute_name;
use super::record::Seen;
use super::{DynamoOptions, DATA, FENCE, LEASE, OWNER, RELEASED, RVN, TOKEN};
use crate::error::{LockError, Result};
use crate::lease::{
  Acquire, AcquireRequest, Attempt, Grant, Holder, LockInfo, Payload, ReleaseOptions,
};
use crate::store::wall_clock::{SystemClock, WallClock};
use crate::store::{LockStore, Watch};

/// How long after the lease the optional TTL attribute lets DynamoDB delete a record. It is
/// computed from this host's wall clock, so the margin also covers clocks that are off.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The DynamoDB store. The SDK client is made on first use.
pub struct DynamoStore {
  pub(super) opts: DynamoOptions,
  pub(super) client: OnceCell<Client>,
  pub(super) seen: Seen,
  pub(super) requests: Arc<AtomicU64>,
  pub(super) closed: AtomicBool,
  /// The wall clock, read only for the TTL attribute.
  clock: Arc<dyn WallClock>,
}

impl DynamoStore {
  /// A store over `opts.table`; checks the options, opens nothing yet.
  pub fn new(opts: DynamoOptions) -> Result<Self> {
    Self::with_clock(opts, Arc::new(SystemClock))
  }

  /// [`DynamoStore::new`] with another wall clock, which only the TTL attribute reads (lock
  /// timing runs on the monotonic clock whatever this says).
  pub fn with_clock(opts: DynamoOptions, clock: Arc<dyn WallClock>) -> Result<Self> {
    opts.validate()?;
    if let Some(c) = &opts.credentials {
      // Masked in every message from now on, whatever the server echoes.
      crate::redact::remember(&c.access_key_id);
      crate::redact::remember(&c.secret_access_key);
      if let Some(token) = &c.session_token {
        crate::redact::remember(token);
      }
    }
    Ok(DynamoStore {
      opts,
      client: OnceCell::new(),
      seen: Seen::default(),
      requests: Arc::new(AtomicU64::new(0)),
      closed: AtomicBool::new(false),
      clock,
    })
  }

  /// The table name.
  pub fn table(&self) -> &str {
    &self.opts.table
  }

  /// HTTP requests sent so far (every attempt of every operation).
  pub fn requests(&self) -> u64 {
    self.requests.load(Ordering::Relaxed)
  }

  fn key(&self, name: &str) -> HashMap<String, AttributeValue> {
    let mut key = HashMap::new();
    key.insert(
      self.opts.partition_key.clone(),
      AttributeValue::S(name.to_owned()),
    );
    if let Some((sk, value)) = &self.opts.sort_key {
      key.insert(sk.clone(), AttributeValue::S(value.clone()));
    }
    key
  }

  /// Epoch seconds at which DynamoDB's TTL may delete a record with this lease.
  fn ttl_value(&self, lease: Duration) -> AttributeValue {
    let now = self.clock.now_ms();
    let at = (now + (lease + TTL_GRACE).as_millis() as i64) / 1000;
    AttributeValue::N(at.to_string())
  }

  /// Reads a record with a consistent read.
  pub(super) async fn read(&self, name: &str) -> Result<Option<Item>> {
    let out = self
      .client()
      .await?
      .get_item()
      .table_name(&self.opts.table)
      .set_key(Some(self.key(name)))
      .consistent_read(true)
      .send()
      .await
      .map_err(|e| self.sdk_error("GetItem", e))?;
    Ok(out.item)
  }

  /// Applies `e` to the record of `name` if it is still ours (`#t` = `:t`, our token, must be
  /// in `e`); `false` when it is not.
  async fn update_if_ours(&self, client: &Client, name: &str, e: Expr) -> Result<bool> {
    let result = client
      .update_item()
      .table_name(&self.opts.table)
      .set_key(Some(self.key(name)))
      .update_expression(e.update())
      .condition_expression("#t = :t")
      .set_expression_attribute_names(Some(e.names))
      .set_expression_attribute_values(Some(e.values))
      .send()
      .await;
    match result {
      Ok(_) => Ok(true),
      Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
      Err(err) => Err(self.sdk_error("UpdateItem", err)),
    }
  }

  /// Whether the attribute names of `extras` are allowed.
  fn check_extra_names(&self, attrs: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for name in attrs.keys() {
      check_attribute_name(name, "options.additionalAttributes")?;
      let key_or_ttl = name == &self.opts.partition_key
        || self
          .opts
          .sort_key
          .as_ref()
          .is_some_and(|(sk, _)| sk == name)
        || self.opts.ttl_attribute.as_deref() == Some(name.as_str());
      if key_or_ttl {
        return Err(LockError::InvalidArg(format!(
          "options.additionalAttributes: \"{name}\" is a key or TTL attribute of the table"
        )));
      }
    }
    Ok(())
  }

  /// The update of an acquisition: owner, a new record version, our token, the lease, not
  /// released, the next fence; the data, the TTL attribute and the caller's attributes.
  fn acquire_update(&self, req: &AcquireRequest<'_>) -> Expr {
    let mut e = Expr::default();
    e.name("#pk", &self.opts.partition_key)
      .name("#o", OWNER)
      .name("#r", RVN)
      .name("#t", TOKEN)
      .name("#l", LEASE)
      .name("#rel", RELEASED)
      .name("#f", FENCE)
      .value(":o", AttributeValue::S(req.owner.to_owned()))
      .value(":r", AttributeValue::S(uuid::Uuid::new_v4().to_string()))
      .value(":t", AttributeValue::S(req.token.to_owned()))
      .value(":l", AttributeValue::N(millis(req.ttl).to_string()))
      .value(":false", AttributeValue::Bool(false))
      .value(":true", AttributeValue::Bool(true))
      .value(":zero", AttributeValue::N("0".into()))
      .value(":one", AttributeValue::N("1".into()));
    e.set.extend(
      [
        "#o = :o",
        "#r = :r",
        "#t = :t",
        "#l = :l",
        "#rel = :false",
        "#f = if_not_exists(#f, :zero) + :one",
      ]
      .map(String::from),
    );
    match (req.data, req.extras.replace_data) {
      (Some(data), replace) => {
        e.name("#d", DATA).value(":d", payload_value(data));
        e.set.push(if replace {
          "#d = :d".into()
        } else {
          "#d = if_not_exists(#d, :d)".into()
        });
      }
      (None, true) => {
        e.name("#d", DATA);
        e.remove.push("#d".into());
      }
      (None, false) => {}
    }
    if let Some(ttl) = &self.opts.ttl_attribute {
      e.name("#ttl", ttl).value(":ttl", self.ttl_value(req.ttl));
      e.set.push("#ttl = :ttl".into());
    }
    if let Some(attrs) = &req.extras.attributes {
      for (i, (k, v)) in attrs.iter().enumerate() {
        e.name(&format!("#a{i}"), k)
          .value(&format!(":a{i}"), from_json(v));
        e.set.push(format!("#a{i} = :a{i}"));
      }
    }
    e
  }

  /// The answer to an acquisition whose condition failed, from the record as it is (`item`;
  /// `None`: deleted since our write).
  async fn busy(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
    item: Option<Item>,
  ) -> Result<Attempt> {
    // Free again (deleted or released since our write), or ours and not renewable: try again
    // at once.
    let again = Attempt {
      outcome: Acquire::Held(Holder {
        owner: None,
        remaining: Some(Duration::ZERO),
      }),
      version: None,
    };
    let Some(item) = item else {
      return Ok(again);
    };
    if s_attr(&item, TOKEN).as_deref() == Some(req.token) {
      // Our own earlier attempt took it and its reply was lost. Waiters may have been timing
      // that attempt's record version since then: renew it, so the lease counts from now.
      if self.extend(name, req.token, req.ttl).await? {
        let fence = n_attr(&item, FENCE);
        return Ok(granted(fence));
      }
      return Ok(again);
    }
    if bool_attr(&item, RELEASED) {
      return Ok(again);
    }
    Ok(Attempt {
      outcome: Acquire::Held(Holder {
        owner: s_attr(&item, OWNER),
        remaining: Some(lease_attr(&item)),
      }),
      version: Some(s_attr(&item, RVN).unwrap_or_default()),
    })
  }
}

fn granted(fence: u64) -> Attempt {
  Attempt {
    outcome: Acquire::Granted(Grant { fence }),
    version: None,
  }
}

#[async_trait]
impl LockStore for DynamoStore {
  fn kind(&self) -> &'static str {
    "dynamodb"
  }

  /// Without a takeover instruction: only a free (missing or released) record is taken.
  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    let attempt = self.try_acquire_over(name, req, None).await?;
    Ok(attempt.outcome)
  }

  /// One conditional `UpdateItem`: the record is missing or released, or (`take_over`) still
  /// has the version the waiter saw for a whole lease.
  async fn try_acquire_over(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
    take_over: Option<&str>,
  ) -> Result<Attempt> {
    if let Some(attrs) = &req.extras.attributes {
      self.check_extra_names(attrs)?;
    }
    let client = self.client().await?;
    let mut e = self.acquire_update(req);
    let mut condition = String::from("attribute_not_exists(#pk) OR #rel = :true");
    if let Some(rvn) = take_over {
      e.value(":seen", AttributeValue::S(rvn.to_owned()));
      condition.push_str(" OR #r = :seen");
    }
    let result = client
      .update_item()
      .table_name(&self.opts.table)
      .set_key(Some(self.key(name)))
      .update_expression(e.update())
      .condition_expression(condition)
      .set_expression_attribute_names(Some(e.names))
      .set_expression_attribute_values(Some(e.values))
      .return_values(ReturnValue::UpdatedNew)
      .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
      .send()
      .await;
    let current = match result {
      Ok(out) => {
        let fence = out.attributes().map(|a| n_attr(a, FENCE)).unwrap_or(0);
        return Ok(granted(fence));
      }
      Err(err) => match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(ccf)) => match ccf.item() {
          Some(item) => Some(item.clone()),
          // Servers that do not return the item: read it.
          None => self.read(name).await?,
        },
        _ => return Err(self.sdk_error("UpdateItem", err)),
      },
    };
    self.busy(name, req, current).await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    self.extend_with(name, token, ttl, None).await
  }

  async fn extend_with(
    &self,
    name: &str,
    token: &str,
    ttl: Duration,
    data: Option<&Payload>,
  ) -> Result<bool> {
    let client = self.client().await?;
    let mut e = Expr::default();
    e.name("#r", RVN)
      .name("#t", TOKEN)
      .name("#l", LEASE)
      .value(":r", AttributeValue::S(uuid::Uuid::new_v4().to_string()))
      .value(":t", AttributeValue::S(token.to_owned()))
      .value(":l", AttributeValue::N(millis(ttl).to_string()));
    e.set.extend(["#r = :r", "#l = :l"].map(String::from));
    if let Some(data) = data {
      e.name("#d", DATA).value(":d", payload_value(data));
      e.set.push("#d = :d".into());
    }
    if let Some(attr) = &self.opts.ttl_attribute {
      e.name("#ttl", attr).value(":ttl", self.ttl_value(ttl));
      e.set.push("#ttl = :ttl".into());
    }
    self.update_if_ours(client, name, e).await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    self
      .release_with(name, token, &ReleaseOptions::default())
      .await
  }

  async fn release_with(&self, name: &str, token: &str, opts: &ReleaseOptions) -> Result<bool> {
    let client = self.client().await?;
    let mut names = HashMap::new();
    names.insert("#t".to_owned(), TOKEN.to_owned());
    let mut values = HashMap::new();
    values.insert(":t".to_owned(), AttributeValue::S(token.to_owned()));
    let failed = |code: Option<&str>| code == Some("ConditionalCheckFailedException");
    if opts.delete {
      return match client
        .delete_item()
        .table_name(&self.opts.table)
        .set_key(Some(self.key(name)))
        .condition_expression("#t = :t")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await
      {
        Ok(_) => Ok(true),
        Err(err) if failed(err.code()) => Ok(false),
        Err(err) => Err(self.sdk_error("DeleteItem", err)),
      };
    }
    let mut e = Expr {
      names,
      values,
      ..Expr::default()
    };
    // The fence stays, so the next acquisition continues the sequence.
    e.name("#rel", RELEASED)
      .value(":true", AttributeValue::Bool(true));
    e.set.push("#rel = :true".into());
    e.remove.push("#t".into());
    if let Some(data) = &opts.data {
      e.name("#d", DATA).value(":d", payload_value(data));
      e.set.push("#d = :d".into());
    }
    self.update_if_ours(client, name, e).await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    let Some(item) = self.read(name).await? else {
      return Ok(None);
    };
    if bool_attr(&item, RELEASED) {
      return Ok(None);
    }
    // Reads only: the time left is at most the holder's lease (the waiters' own clocks count
    // it down, `crate::takeover`).
    Ok(Some(LockInfo {
      owner: s_attr(&item, OWNER).unwrap_or_default(),
      remaining: Some(lease_attr(&item)),
      fence: n_attr(&item, FENCE),
      data: data_attr(&item),
    }))
  }

  async fn leave_queue(&self, _name: &str, _token: &str) -> Result<()> {
    // No queue.
    Ok(())
  }

  fn fifo(&self) -> bool {
    false // no queue: whoever asks first after the lock is free gets it
  }

  async fn watch(&self, _name: &str) -> Result<Option<Watch>> {
    Ok(None) // no push: the manager polls, and wakes right when a takeover becomes possible
  }

  async fn close(&self) {
    self.closed.store(true, Ordering::Release);
    self.seen.clear();
  }
}
