//! Plain item operations on a table named per call: a read of one item, a put conditional on
//! one attribute, and a hash-keyed table's create, describe and delete, as DynamoDB's wire JSON.
//! They serve the dynamo-lock drop-in's own client when the caller gives it no `db` (its
//! read-then-put is dynamo-lock's contract and lives in compat/dynamo-lock.js). No lock logic
//! here, and no request other than these can be expressed.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
  AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
  TableDescription,
};
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value as J};

use super::wire::{attribute, attributes, bad, wire_map};
use super::DynamoStore;
use crate::error::LockError;

/// A failed request: the AWS error code (`ResourceInUseException`, ...) or, when the request
/// never got an answer, `NetworkingError` / `TimeoutError` / `ValidationException` (bad params).
#[derive(Debug)]
pub struct ItemError {
  pub code: String,
  pub message: String,
}

type Done<T> = std::result::Result<T, ItemError>;

/// The condition of a put.
#[derive(Debug, Clone)]
pub enum PutCondition {
  /// `attribute_not_exists(name)`.
  Absent(String),
  /// `name = value` (the value as wire JSON).
  Equals(String, J),
}

fn sdk<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
  err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> ItemError {
  let code = match &err {
    SdkError::ServiceError(_) => err.code().unwrap_or("UnknownError").to_owned(),
    SdkError::TimeoutError(_) => "TimeoutError".into(),
    _ => "NetworkingError".into(),
  };
  let message = match err.message() {
    Some(m) => m.to_owned(),
    None => DisplayErrorContext(&err).to_string(),
  };
  ItemError { code, message }
}

fn table_wire(t: Option<&TableDescription>) -> J {
  let Some(t) = t else { return json!({}) };
  json!({
    "TableName": t.table_name(),
    "TableStatus": t.table_status().map(|s| s.as_str()),
  })
}

impl DynamoStore {
  async fn item_client(&self) -> Done<&Client> {
    self.client().await.map_err(|e| ItemError {
      code: match e {
        LockError::Closed => "ClientClosed".into(),
        _ => "ConfigError".into(),
      },
      message: e.to_string(),
    })
  }

  /// `GetItem`: the item (`{"Item": ...}`) or `{}`; only `attributes` when given.
  pub async fn get_item(
    &self,
    table: &str,
    key: &J,
    attributes_to_get: Option<Vec<String>>,
    consistent: bool,
  ) -> Done<J> {
    let client = self.item_client().await?;
    let out = client
      .get_item()
      .table_name(table)
      .set_key(Some(attributes(key)?))
      .set_attributes_to_get(attributes_to_get)
      .consistent_read(consistent)
      .send()
      .await
      .map_err(sdk)?;
    Ok(match out.item() {
      Some(item) => json!({ "Item": wire_map(item) }),
      None => json!({}),
    })
  }

  /// `PutItem` of `item` (wire JSON), under `condition`.
  pub async fn put_item(&self, table: &str, item: &J, condition: Option<PutCondition>) -> Done<()> {
    let client = self.item_client().await?;
    let mut req = client
      .put_item()
      .table_name(table)
      .set_item(Some(attributes(item)?));
    req = match condition {
      None => req,
      Some(PutCondition::Absent(name)) => req
        .condition_expression("attribute_not_exists(#a)")
        .expression_attribute_names("#a", name),
      Some(PutCondition::Equals(name, value)) => req
        .condition_expression("#a = :v")
        .expression_attribute_names("#a", name)
        .expression_attribute_values(":v", attribute(&value)?),
    };
    req.send().await.map_err(sdk)?;
    Ok(())
  }

  /// `CreateTable` with one string hash key and provisioned capacity; answers when DynamoDB
  /// accepted it (before the table is ACTIVE), with `{"TableDescription": ...}`.
  pub async fn create_hash_table(&self, table: &str, key: &str, read: i64, write: i64) -> Done<J> {
    let client = self.item_client().await?;
    let def = AttributeDefinition::builder()
      .attribute_name(key)
      .attribute_type(ScalarAttributeType::S)
      .build()
      .map_err(|e| bad(e.to_string()))?;
    let schema = KeySchemaElement::builder()
      .attribute_name(key)
      .key_type(KeyType::Hash)
      .build()
      .map_err(|e| bad(e.to_string()))?;
    let throughput = ProvisionedThroughput::builder()
      .read_capacity_units(read)
      .write_capacity_units(write)
      .build()
      .map_err(|e| bad(e.to_string()))?;
    let out = client
      .create_table()
      .table_name(table)
      .attribute_definitions(def)
      .key_schema(schema)
      .provisioned_throughput(throughput)
      .send()
      .await
      .map_err(sdk)?;
    Ok(json!({ "TableDescription": table_wire(out.table_description()) }))
  }

  /// `DeleteTable`; answers when DynamoDB accepted it, with `{"TableDescription": ...}`.
  pub async fn drop_table(&self, table: &str) -> Done<J> {
    let client = self.item_client().await?;
    let out = client
      .delete_table()
      .table_name(table)
      .send()
      .await
      .map_err(sdk)?;
    Ok(json!({ "TableDescription": table_wire(out.table_description()) }))
  }

  /// `DescribeTable`: `{"Table": {"TableName", "TableStatus"}}`.
  pub async fn describe(&self, table: &str) -> Done<J> {
    let client = self.item_client().await?;
    let out = client
      .describe_table()
      .table_name(table)
      .send()
      .await
      .map_err(sdk)?;
    Ok(json!({ "Table": table_wire(out.table()) }))
  }
}
