//! The lock table: created (waiting for ACTIVE, checking an existing table's key schema) and
//! deleted (waiting until it is gone).

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
  AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput,
  ScalarAttributeType, TableDescription, TableStatus, Tag, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use tokio::time::Instant;

use super::{Billing, DynamoStore, TableOptions};
use crate::error::{LockError, Result};

impl DynamoStore {
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
    self.await_active(client, created, opts.timeout).await?;
    if created && opts.enable_ttl {
      self.enable_ttl(client).await?;
    }
    Ok(created)
  }

  /// Waits until the table is ACTIVE; an existing table (`created` false) must have our keys.
  async fn await_active(&self, client: &Client, created: bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
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
        return Ok(());
      }
      if Instant::now() >= deadline {
        return Err(LockError::Backend {
          message: format!(
            "DynamoDB table \"{}\" did not become ACTIVE within {} s",
            self.opts.table,
            timeout.as_secs()
          ),
          source: None,
        });
      }
      tokio::time::sleep(Duration::from_millis(200)).await;
    }
  }

  /// Turns on DynamoDB's TTL for the store's TTL attribute.
  async fn enable_ttl(&self, client: &Client) -> Result<()> {
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
    Ok(())
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
  fn check_key_schema(&self, table: &TableDescription) -> Result<()> {
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
