//! DynamoDB: one item per lock, kept alive by heartbeats that change its record version
//! number (rvn), the lease model of Amazon's DynamoDB Lock Client and cirello's dynamolock.
//!
//! Item attributes: the partition key (the lock name; plus a fixed sort key when the table
//! has one), `owner`, `recordVersionNumber` (random per acquisition and per heartbeat),
//! `leaseDuration` (ms), `fence`, `token` (the acquisition's own id, removed on release),
//! `isReleased`, optional `data` (S or B), an optional TTL attribute (epoch seconds, for
//! DynamoDB's own cleanup), and any additional attributes the caller asked for.
//!
//! Takeover never compares clocks of different hosts: a waiter remembers the rvn it saw and
//! when it saw it, on its own monotonic clock. Only once the same rvn has been there for a
//! whole lease does it write, conditional on that rvn; a heartbeat in between changes the rvn
//! and the write fails.
//!
//! Every operation is one request: acquire is one conditional `UpdateItem` that also
//! increments the fence and returns it; a heartbeat is one conditional `UpdateItem`; a release
//! is one conditional `UpdateItem` (or `DeleteItem`). A contended attempt that failed reads
//! the holder from the failed write itself where the server returns it, with a `GetItem`
//! otherwise. The SDK's own retries are off: retrying is the manager's job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
  AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
  ProvisionedThroughput, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
  TableStatus, Tag, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::error::{LockError, Result};
use crate::lease::{
  Acquire, AcquireRequest, Grant, Holder, LockInfo, Payload, ReleaseOptions, MAX_TTL,
};
use crate::store::wall_clock::{SystemClock, WallClock};
use crate::store::{LockStore, Watch};
use crate::transport::dynamo_http::ObjectHttp;
use crate::transport::DynamoClientObject;

const OWNER: &str = "owner";
const RVN: &str = "recordVersionNumber";
const LEASE: &str = "leaseDuration";
const FENCE: &str = "fence";
const TOKEN: &str = "token";
const RELEASED: &str = "isReleased";
const DATA: &str = "data";
/// Attribute names the store writes itself; none of the user's names may be one of these.
const RESERVED: [&str; 7] = [OWNER, RVN, LEASE, FENCE, TOKEN, RELEASED, DATA];

/// How long after the lease the optional TTL attribute lets DynamoDB delete a record. It is
/// computed from this host's wall clock, so the margin also covers clocks that are off.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Forget takeover observations this long after they became useful.
const OBSERVATION_KEEP: Duration = Duration::from_secs(60);

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

fn check_attribute_name(name: &str, what: &str) -> Result<()> {
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

/// A lock record as stored, released or not (`get`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
  pub owner: String,
  pub fence: u64,
  pub data: Option<Payload>,
  /// The holder's lease length.
  pub lease: Duration,
  pub released: bool,
  /// This client has seen the same rvn for a whole lease: the holder stopped heartbeating.
  pub expired: bool,
  pub record_version: String,
  /// Attributes other than the store's own, as JSON.
  pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// What a waiter saw of a held lock: its rvn, since when (monotonic), and its lease.
#[derive(Debug, Clone)]
struct Observation {
  rvn: String,
  since: Instant,
  lease: Duration,
}

impl Observation {
  fn waited(&self) -> Duration {
    self.since.elapsed()
  }
  fn ripe(&self) -> bool {
    self.waited() >= self.lease
  }
  fn left(&self) -> Duration {
    self.lease.saturating_sub(self.waited())
  }
}

/// Counts the HTTP requests the SDK sends (every attempt).
#[derive(Debug)]
struct RequestCounter(Arc<AtomicU64>);

impl Intercept for RequestCounter {
  fn name(&self) -> &'static str {
    "ferrolock-request-counter"
  }
  fn read_before_transmit(
    &self,
    _ctx: &BeforeTransmitInterceptorContextRef<'_>,
    _rc: &RuntimeComponents,
    _cfg: &mut ConfigBag,
  ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    self.0.fetch_add(1, Ordering::Relaxed);
    Ok(())
  }
}

/// The DynamoDB store. The SDK client is made on first use.
pub struct DynamoStore {
  opts: DynamoOptions,
  client: OnceCell<Client>,
  observed: Mutex<HashMap<String, Observation>>,
  requests: Arc<AtomicU64>,
  closed: AtomicBool,
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
      observed: Mutex::new(HashMap::new()),
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

  pub(crate) async fn client(&self) -> Result<&Client> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    self.client.get_or_try_init(|| self.connect()).await
  }

  async fn connect(&self) -> Result<Client> {
    if let Some(object) = &self.opts.client {
      return Ok(self.through_object(object));
    }
    let http = aws_smithy_http_client::Builder::new()
      .tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::Ring,
      ))
      .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
      .connect_timeout(self.opts.request_timeout.min(Duration::from_secs(2)))
      .operation_attempt_timeout(self.opts.request_timeout)
      .operation_timeout(self.opts.request_timeout)
      .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
      .http_client(http)
      .retry_config(aws_config::retry::RetryConfig::disabled())
      .timeout_config(timeouts);
    if let Some(region) = &self.opts.region {
      loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &self.opts.endpoint {
      loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some(c) = &self.opts.credentials {
      loader = loader.credentials_provider(Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        c.session_token.clone(),
        None,
        "ferrolock",
      ));
    }
    let shared = loader.load().await;
    let mut conf = aws_sdk_dynamodb::config::Builder::from(&shared)
      .interceptor(RequestCounter(self.requests.clone()));
    if shared.region().is_none() && shared.endpoint_url().is_some() {
      // A local server needs some region to sign with; any will do.
      conf = conf.region(Region::new("us-east-1"));
    }
    Ok(Client::from_conf(conf.build()))
  }

  /// An SDK client whose HTTP exchanges go through the caller's client object, which signs and
  /// sends them its own way: what the SDK signs here with placeholder credentials is never sent.
  fn through_object(&self, object: &DynamoClientObject) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
      .operation_attempt_timeout(self.opts.request_timeout)
      .operation_timeout(self.opts.request_timeout)
      .build();
    let conf = aws_sdk_dynamodb::Config::builder()
      .behavior_version(BehaviorVersion::latest())
      .http_client(ObjectHttp(object.transport.clone()))
      .region(Region::new("us-east-1"))
      .endpoint_url("http://client-object.invalid")
      .credentials_provider(Credentials::new(
        "client-object",
        "unused",
        None,
        None,
        "ferrolock",
      ))
      .retry_config(aws_config::retry::RetryConfig::disabled())
      .timeout_config(timeouts)
      .interceptor(RequestCounter(self.requests.clone()));
    Client::from_conf(conf.build())
  }

  fn observed(&self) -> MutexGuard<'_, HashMap<String, Observation>> {
    self.observed.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// The rvn we may take over: seen unchanged for a whole lease.
  fn ripe_rvn(&self, name: &str) -> Option<String> {
    self
      .observed()
      .get(name)
      .filter(|o| o.ripe())
      .map(|o| o.rvn.clone())
  }

  /// Records the rvn of a held lock, just read; returns the time left before takeover.
  fn observe(&self, name: &str, rvn: &str, lease: Duration) -> Duration {
    let mut observed = self.observed();
    if let Some(o) = observed.get_mut(name) {
      if o.rvn == rvn {
        o.lease = lease;
        return o.left();
      }
    }
    if observed.len() >= 4096 {
      observed.retain(|_, o| o.waited() < o.lease + OBSERVATION_KEEP);
      if observed.len() >= 4096 {
        // Still full: forget one (that name's clock merely starts again when it is looked at).
        if let Some(k) = observed.keys().next().cloned() {
          observed.remove(&k);
        }
      }
    }
    // Counted from after the read: the holder wrote this rvn no later than that.
    let o = Observation {
      rvn: rvn.to_owned(),
      since: Instant::now(),
      lease,
    };
    let left = o.left();
    observed.insert(name.to_owned(), o);
    left
  }

  fn forget(&self, name: &str) {
    self.observed().remove(name);
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
  async fn read(&self, name: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
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

  /// Turns an SDK failure into a `LockError` without leaking anything secret: AWS error
  /// messages carry codes and request ids, never credentials.
  fn sdk_error<E>(&self, op: &str, err: SdkError<E, HttpResponse>) -> LockError
  where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
  {
    let code = err.code().unwrap_or("").to_owned();
    let detail = err.message().unwrap_or("").to_owned();
    match &err {
      SdkError::ServiceError(_) => {
        if code == "ResourceNotFoundException" {
          return LockError::TableNotFound(self.opts.table.clone());
        }
        let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let message = if code.is_empty() {
          format!("DynamoDB {op} failed: HTTP {status}")
        } else {
          format!("DynamoDB {op} failed: {code}: {detail}")
        };
        // Server-side trouble (5xx), throttling (429 and its named codes) and credentials
        // that a provider may refresh are worth another try; other client errors are not.
        let retry = status >= 500
          || status == 429
          || (code.is_empty() && !(400..500).contains(&status))
          || matches!(
            code.as_str(),
            "ProvisionedThroughputExceededException"
              | "ThrottlingException"
              | "RequestLimitExceeded"
              | "TransactionConflictException"
              | "ReplicatedWriteConflictException"
              | "LimitExceededException"
              | "ExpiredTokenException"
          );
        if retry {
          LockError::backend(message, err)
        } else {
          LockError::Rejected {
            message,
            source: Some(Box::new(err)),
          }
        }
      }
      SdkError::TimeoutError(_) => LockError::backend(
        format!(
          "DynamoDB {op} timed out after {} ms",
          self.opts.request_timeout.as_millis()
        ),
        err,
      ),
      SdkError::DispatchFailure(failure) => {
        let context = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        let io = failure
          .as_connector_error()
          .is_some_and(|c| c.is_io() || c.is_timeout());
        if !io && context.contains("credentials") {
          // Nothing in the AWS chain gave credentials: retrying will not find any.
          return LockError::Rejected {
            message: format!(
              "DynamoDB {op} failed: no AWS credentials (give options.dynamodb.credentials, or set them in the environment, shared files or profile)"
            ),
            source: Some(context.into()),
          };
        }
        LockError::backend(
          format!("DynamoDB {op} failed: endpoint unreachable"),
          context,
        )
      }
      SdkError::ConstructionFailure(_) => LockError::Rejected {
        message: format!(
          "DynamoDB {op} could not be sent (missing region or credentials?): {}",
          aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        ),
        source: Some(Box::new(err)),
      },
      _ => LockError::backend(format!("DynamoDB {op} failed"), err),
    }
  }

  /// Reads a record including released ones, with this client's view of its expiry.
  pub async fn get(&self, name: &str) -> Result<Option<Record>> {
    let Some(item) = self.read(name).await? else {
      return Ok(None);
    };
    let released = bool_attr(&item, RELEASED);
    let rvn = s_attr(&item, RVN).unwrap_or_default();
    let lease = lease_attr(&item);
    let expired = if released {
      false
    } else {
      self.observe(name, &rvn, lease).is_zero()
    };
    let mut own: Vec<&str> = RESERVED.to_vec();
    own.push(&self.opts.partition_key);
    if let Some((sk, _)) = &self.opts.sort_key {
      own.push(sk);
    }
    if let Some(ttl) = &self.opts.ttl_attribute {
      own.push(ttl);
    }
    let attributes = item
      .iter()
      .filter(|(k, _)| !own.contains(&k.as_str()))
      .map(|(k, v)| (k.clone(), to_json(v)))
      .collect();
    Ok(Some(Record {
      owner: s_attr(&item, OWNER).unwrap_or_default(),
      fence: n_attr(&item, FENCE),
      data: data_attr(&item),
      lease,
      released,
      expired,
      record_version: rvn,
      attributes,
    }))
  }

  /// Creates the lock table and waits until it is ACTIVE. `Ok(false)`: it existed already.
  pub async fn create_table(&self, opts: &TableOptions) -> Result<bool> {
    if opts.enable_ttl && self.opts.ttl_attribute.is_none() {
      return Err(LockError::InvalidArg(
        "createLockTable: ttl needs options.dynamodb.ttlAttribute on the client".into(),
      ));
    }
    if let Billing::Provisioned { read, write } = opts.billing {
      if read < 1 || write < 1 {
        return Err(LockError::InvalidArg(
          "createLockTable: provisioned read and write capacity must be at least 1".into(),
        ));
      }
    }
    let client = self.client().await?;
    let mut req = client
      .create_table()
      .table_name(&self.opts.table)
      .attribute_definitions(attr_def(&self.opts.partition_key)?)
      .key_schema(key_elem(&self.opts.partition_key, KeyType::Hash)?);
    if let Some((sk, _)) = &self.opts.sort_key {
      req = req
        .attribute_definitions(attr_def(sk)?)
        .key_schema(key_elem(sk, KeyType::Range)?);
    }
    req = match opts.billing {
      Billing::OnDemand => req.billing_mode(BillingMode::PayPerRequest),
      Billing::Provisioned { read, write } => req
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
          ProvisionedThroughput::builder()
            .read_capacity_units(read)
            .write_capacity_units(write)
            .build()
            .map_err(|e| LockError::InvalidArg(format!("createLockTable: {e}")))?,
        ),
    };
    for (k, v) in &opts.tags {
      req = req.tags(
        Tag::builder()
          .key(k)
          .value(v)
          .build()
          .map_err(|e| LockError::InvalidArg(format!("createLockTable tags: {e}")))?,
      );
    }
    let created = match req.send().await {
      Ok(_) => true,
      Err(err) if err.code() == Some("ResourceInUseException") => false,
      Err(err) => return Err(self.sdk_error("CreateTable", err)),
    };
    let deadline = Instant::now() + opts.timeout;
    loop {
      let described = client
        .describe_table()
        .table_name(&self.opts.table)
        .send()
        .await;
      let table = match described {
        Ok(out) => out.table,
        // Right after CreateTable, DescribeTable may not see the table yet.
        Err(err) if created && err.code() == Some("ResourceNotFoundException") => None,
        Err(err) => return Err(self.sdk_error("DescribeTable", err)),
      };
      let status = table.as_ref().and_then(|t| t.table_status().cloned());
      if status == Some(TableStatus::Deleting) {
        return Err(LockError::Backend {
          message: format!("DynamoDB table \"{}\" is being deleted", self.opts.table),
          source: None,
        });
      }
      if let (Some(t), false) = (&table, created) {
        self.check_key_schema(t)?;
      }
      if status == Some(TableStatus::Active) {
        break;
      }
      if Instant::now() >= deadline {
        return Err(LockError::Backend {
          message: format!(
            "DynamoDB table \"{}\" did not become ACTIVE within {} s",
            self.opts.table,
            opts.timeout.as_secs()
          ),
          source: None,
        });
      }
      tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if created && opts.enable_ttl {
      if let Some(attr) = &self.opts.ttl_attribute {
        let spec = TimeToLiveSpecification::builder()
          .attribute_name(attr)
          .enabled(true)
          .build()
          .map_err(|e| LockError::InvalidArg(format!("createLockTable ttl: {e}")))?;
        client
          .update_time_to_live()
          .table_name(&self.opts.table)
          .time_to_live_specification(spec)
          .send()
          .await
          .map_err(|e| self.sdk_error("UpdateTimeToLive", e))?;
      }
    }
    Ok(created)
  }

  /// Deletes the lock table and waits until it is gone. `Ok(false)`: there was none.
  pub async fn delete_table(&self, timeout: Duration) -> Result<bool> {
    let client = self.client().await?;
    match client
      .delete_table()
      .table_name(&self.opts.table)
      .send()
      .await
    {
      Ok(_) => {}
      Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok(false),
      Err(err) => return Err(self.sdk_error("DeleteTable", err)),
    }
    let deadline = Instant::now() + timeout;
    loop {
      match client
        .describe_table()
        .table_name(&self.opts.table)
        .send()
        .await
      {
        Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok(true),
        Err(err) => return Err(self.sdk_error("DescribeTable", err)),
        Ok(_) if Instant::now() >= deadline => {
          return Err(LockError::Backend {
            message: format!(
              "DynamoDB table \"{}\" was still there {} s after DeleteTable",
              self.opts.table,
              timeout.as_secs()
            ),
            source: None,
          })
        }
        Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
      }
    }
  }

  /// An existing table must have the key schema this client uses.
  fn check_key_schema(&self, table: &aws_sdk_dynamodb::types::TableDescription) -> Result<()> {
    let keys: Vec<(String, KeyType)> = table
      .key_schema()
      .iter()
      .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
      .collect();
    let mut want = vec![(self.opts.partition_key.clone(), KeyType::Hash)];
    if let Some((sk, _)) = &self.opts.sort_key {
      want.push((sk.clone(), KeyType::Range));
    }
    if keys.len() == want.len() && want.iter().all(|w| keys.contains(w)) {
      return Ok(());
    }
    let shown: Vec<String> = keys.iter().map(|(n, t)| format!("{n} ({t})")).collect();
    Err(LockError::InvalidArg(format!(
      "DynamoDB table \"{}\" exists with the key schema [{}], not the one this client uses (partitionKey, sortKey)",
      self.opts.table,
      shown.join(", ")
    )))
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
}

/// Expression builder: placeholders for names and values.
#[derive(Default)]
struct Expr {
  names: HashMap<String, String>,
  values: HashMap<String, AttributeValue>,
  set: Vec<String>,
  remove: Vec<String>,
}

impl Expr {
  fn name(&mut self, placeholder: &str, attr: &str) -> &mut Self {
    self.names.insert(placeholder.to_owned(), attr.to_owned());
    self
  }
  fn value(&mut self, placeholder: &str, v: AttributeValue) -> &mut Self {
    self.values.insert(placeholder.to_owned(), v);
    self
  }
  fn update(&self) -> String {
    let mut out = String::new();
    if !self.set.is_empty() {
      out.push_str("SET ");
      out.push_str(&self.set.join(", "));
    }
    if !self.remove.is_empty() {
      out.push_str(" REMOVE ");
      out.push_str(&self.remove.join(", "));
    }
    out
  }
}

#[async_trait]
impl LockStore for DynamoStore {
  fn kind(&self) -> &'static str {
    "dynamodb"
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    if let Some(attrs) = &req.extras.attributes {
      self.check_extra_names(attrs)?;
    }
    let client = self.client().await?;
    let ripe = self.ripe_rvn(name);
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
    let mut condition = String::from("attribute_not_exists(#pk) OR #rel = :true");
    if let Some(rvn) = &ripe {
      e.value(":seen", AttributeValue::S(rvn.clone()));
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
        self.forget(name);
        let fence = out.attributes().map(|a| n_attr(a, FENCE)).unwrap_or(0);
        return Ok(Acquire::Granted(Grant { fence }));
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
    let Some(item) = current else {
      // Deleted since our write: try again at once.
      return Ok(Acquire::Held(Holder {
        owner: None,
        remaining: Some(Duration::ZERO),
      }));
    };
    if s_attr(&item, TOKEN).as_deref() == Some(req.token) {
      // Our own earlier attempt took it and its reply was lost. Waiters may have been timing
      // that attempt's record version since then: renew it, so the lease counts from now.
      self.forget(name);
      if self.extend(name, req.token, req.ttl).await? {
        return Ok(Acquire::Granted(Grant {
          fence: n_attr(&item, FENCE),
        }));
      }
      return Ok(Acquire::Held(Holder {
        owner: None,
        remaining: Some(Duration::ZERO),
      }));
    }
    if bool_attr(&item, RELEASED) {
      return Ok(Acquire::Held(Holder {
        owner: None,
        remaining: Some(Duration::ZERO),
      }));
    }
    let rvn = s_attr(&item, RVN).unwrap_or_default();
    let left = self.observe(name, &rvn, lease_attr(&item));
    Ok(Acquire::Held(Holder {
      owner: s_attr(&item, OWNER),
      remaining: Some(left),
    }))
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
    let rvn = s_attr(&item, RVN).unwrap_or_default();
    let left = self.observe(name, &rvn, lease_attr(&item));
    Ok(Some(LockInfo {
      owner: s_attr(&item, OWNER).unwrap_or_default(),
      remaining: Some(left),
      fence: n_attr(&item, FENCE),
      data: data_attr(&item),
    }))
  }

  async fn leave_queue(&self, _name: &str, _token: &str) -> Result<()> {
    // No queue. The observation stays: another attempt may use it.
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
    self.observed().clear();
  }
}

fn millis(d: Duration) -> u64 {
  d.as_millis().min(u64::MAX as u128) as u64
}

fn attr_def(name: &str) -> Result<AttributeDefinition> {
  AttributeDefinition::builder()
    .attribute_name(name)
    .attribute_type(ScalarAttributeType::S)
    .build()
    .map_err(|e| LockError::InvalidArg(format!("createLockTable: {e}")))
}

fn key_elem(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
  KeySchemaElement::builder()
    .attribute_name(name)
    .key_type(kind)
    .build()
    .map_err(|e| LockError::InvalidArg(format!("createLockTable: {e}")))
}

fn s_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
  match item.get(name) {
    Some(AttributeValue::S(s)) => Some(s.clone()),
    Some(AttributeValue::N(n)) => Some(n.clone()),
    _ => None,
  }
}

fn n_attr(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
  match item.get(name) {
    Some(AttributeValue::N(n)) | Some(AttributeValue::S(n)) => n.trim().parse().unwrap_or(0),
    _ => 0,
  }
}

fn bool_attr(item: &HashMap<String, AttributeValue>, name: &str) -> bool {
  matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// The holder's lease; a record without a readable one counts as the longest lease.
fn lease_attr(item: &HashMap<String, AttributeValue>) -> Duration {
  match n_attr(item, LEASE) {
    0 => MAX_TTL,
    ms => Duration::from_millis(ms).min(MAX_TTL),
  }
}

fn data_attr(item: &HashMap<String, AttributeValue>) -> Option<Payload> {
  match item.get(DATA) {
    Some(AttributeValue::S(s)) => Some(Payload::Text(s.clone())),
    Some(AttributeValue::B(b)) => Some(Payload::Bytes(b.as_ref().to_vec())),
    _ => None,
  }
}

fn payload_value(p: &Payload) -> AttributeValue {
  match p {
    Payload::Text(t) => AttributeValue::S(t.clone()),
    Payload::Bytes(b) => AttributeValue::B(Blob::new(b.clone())),
  }
}

/// JSON to a DynamoDB value (additional attributes).
fn from_json(v: &serde_json::Value) -> AttributeValue {
  use serde_json::Value;
  match v {
    Value::Null => AttributeValue::Null(true),
    Value::Bool(b) => AttributeValue::Bool(*b),
    Value::Number(n) => AttributeValue::N(n.to_string()),
    Value::String(s) => AttributeValue::S(s.clone()),
    Value::Array(items) => AttributeValue::L(items.iter().map(from_json).collect()),
    Value::Object(map) => {
      AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
    }
  }
}

/// A DynamoDB value as JSON (numbers that do not fit a double stay strings; bytes become
/// arrays of numbers).
fn to_json(v: &AttributeValue) -> serde_json::Value {
  use serde_json::Value;
  let number = |n: &String| {
    n.parse::<i64>()
      .map(Value::from)
      .ok()
      .or_else(|| {
        n.parse::<f64>()
          .ok()
          .and_then(serde_json::Number::from_f64)
          .map(Value::Number)
      })
      .unwrap_or_else(|| Value::String(n.clone()))
  };
  match v {
    AttributeValue::S(s) => Value::String(s.clone()),
    AttributeValue::N(n) => number(n),
    AttributeValue::Bool(b) => Value::Bool(*b),
    AttributeValue::Null(_) => Value::Null,
    AttributeValue::B(b) => Value::Array(b.as_ref().iter().map(|x| Value::from(*x)).collect()),
    AttributeValue::L(items) => Value::Array(items.iter().map(to_json).collect()),
    AttributeValue::M(map) => {
      Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
    }
    AttributeValue::Ss(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
    AttributeValue::Ns(items) => Value::Array(items.iter().map(number).collect()),
    AttributeValue::Bs(items) => Value::Array(
      items
        .iter()
        .map(|b| Value::Array(b.as_ref().iter().map(|x| Value::from(*x)).collect()))
        .collect(),
    ),
    _ => Value::Null,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

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

  #[test]
  fn json_round_trips_through_attribute_values() {
    let v = serde_json::json!({"a": [1, "two", true, null, {"b": 2.5}]});
    assert_eq!(to_json(&from_json(&v)), v);
  }
}
