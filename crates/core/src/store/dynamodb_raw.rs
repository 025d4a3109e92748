//! Plain DynamoDB requests in the wire JSON shape (binary as base64), sent with the store's SDK
//! client: the client the dynamo-lock drop-in builds when the caller gives it no `db`. No lock
//! logic here; the caller decides what to send.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
  AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
  ProvisionedThroughput, ScalarAttributeType, TableDescription,
};
use aws_smithy_types::base64;
use serde_json::{json, Map, Value as J};

use crate::error::LockError;
use crate::store::dynamodb::DynamoStore;

/// A failed request: the AWS error code (`ResourceInUseException`, ...) or, when the request
/// never got an answer, `NetworkingError` / `TimeoutError` / `ValidationException` (bad params).
#[derive(Debug)]
pub struct RawError {
  pub code: String,
  pub message: String,
}

type Raw<T> = std::result::Result<T, RawError>;

fn bad(message: impl Into<String>) -> RawError {
  RawError {
    code: "ValidationException".into(),
    message: message.into(),
  }
}

fn sdk<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
  err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> RawError {
  let code = match &err {
    SdkError::ServiceError(_) => err.code().unwrap_or("UnknownError").to_owned(),
    SdkError::TimeoutError(_) => "TimeoutError".into(),
    _ => "NetworkingError".into(),
  };
  let message = match err.message() {
    Some(m) => m.to_owned(),
    None => DisplayErrorContext(&err).to_string(),
  };
  RawError { code, message }
}

fn str_field<'a>(p: &'a J, key: &str) -> Raw<&'a str> {
  p.get(key)
    .and_then(J::as_str)
    .ok_or_else(|| bad(format!("{key} must be a string")))
}

fn opt_str(p: &J, key: &str) -> Option<String> {
  p.get(key).and_then(J::as_str).map(str::to_owned)
}

fn strings(v: &J, what: &str) -> Raw<Vec<String>> {
  v.as_array()
    .ok_or_else(|| bad(format!("{what} must be an array")))?
    .iter()
    .map(|s| {
      s.as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{what} must hold strings")))
    })
    .collect()
}

fn blob(v: &J) -> Raw<Blob> {
  let text = v.as_str().ok_or_else(|| bad("B must be base64 text"))?;
  base64::decode(text)
    .map(Blob::new)
    .map_err(|_| bad("B must be base64 text"))
}

/// An AttributeValue from its wire JSON (`{"S": "x"}`, `{"M": {...}}`, ...).
fn attribute(v: &J) -> Raw<AttributeValue> {
  let (kind, inner) = v
    .as_object()
    .filter(|o| o.len() == 1)
    .and_then(|o| o.iter().next())
    .ok_or_else(|| bad("an attribute value must be an object with one type key"))?;
  Ok(match kind.as_str() {
    "S" => AttributeValue::S(
      inner
        .as_str()
        .ok_or_else(|| bad("S must be a string"))?
        .into(),
    ),
    "N" => AttributeValue::N(
      inner
        .as_str()
        .ok_or_else(|| bad("N must be a string"))?
        .into(),
    ),
    "B" => AttributeValue::B(blob(inner)?),
    "BOOL" => AttributeValue::Bool(
      inner
        .as_bool()
        .ok_or_else(|| bad("BOOL must be a boolean"))?,
    ),
    "NULL" => AttributeValue::Null(true),
    "SS" => AttributeValue::Ss(strings(inner, "SS")?),
    "NS" => AttributeValue::Ns(strings(inner, "NS")?),
    "BS" => AttributeValue::Bs(
      inner
        .as_array()
        .ok_or_else(|| bad("BS must be an array"))?
        .iter()
        .map(blob)
        .collect::<Raw<_>>()?,
    ),
    "L" => AttributeValue::L(
      inner
        .as_array()
        .ok_or_else(|| bad("L must be an array"))?
        .iter()
        .map(attribute)
        .collect::<Raw<_>>()?,
    ),
    "M" => AttributeValue::M(attributes(inner)?),
    other => return Err(bad(format!("unknown attribute type {other}"))),
  })
}

fn attributes(v: &J) -> Raw<HashMap<String, AttributeValue>> {
  v.as_object()
    .ok_or_else(|| bad("expected a map of attribute values"))?
    .iter()
    .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
    .collect()
}

fn opt_attributes(p: &J, key: &str) -> Raw<Option<HashMap<String, AttributeValue>>> {
  p.get(key).map(attributes).transpose()
}

fn opt_names(p: &J, key: &str) -> Raw<Option<HashMap<String, String>>> {
  p.get(key)
    .map(|v| {
      v.as_object()
        .ok_or_else(|| bad(format!("{key} must be a map")))?
        .iter()
        .map(|(k, v)| {
          let v = v
            .as_str()
            .ok_or_else(|| bad(format!("{key} must map to strings")))?;
          Ok((k.clone(), v.to_owned()))
        })
        .collect()
    })
    .transpose()
}

/// The wire JSON of an AttributeValue.
fn wire(av: &AttributeValue) -> J {
  match av {
    AttributeValue::S(s) => json!({ "S": s }),
    AttributeValue::N(n) => json!({ "N": n }),
    AttributeValue::B(b) => json!({ "B": base64::encode(b.as_ref()) }),
    AttributeValue::Bool(b) => json!({ "BOOL": b }),
    AttributeValue::Null(_) => json!({ "NULL": true }),
    AttributeValue::Ss(v) => json!({ "SS": v }),
    AttributeValue::Ns(v) => json!({ "NS": v }),
    AttributeValue::Bs(v) => {
      json!({ "BS": v.iter().map(|b| base64::encode(b.as_ref())).collect::<Vec<_>>() })
    }
    AttributeValue::L(v) => json!({ "L": v.iter().map(wire).collect::<Vec<_>>() }),
    AttributeValue::M(m) => json!({ "M": wire_map(m) }),
    _ => J::Null,
  }
}

fn wire_map(m: &HashMap<String, AttributeValue>) -> Map<String, J> {
  m.iter().map(|(k, v)| (k.clone(), wire(v))).collect()
}

fn table_wire(t: Option<&TableDescription>) -> J {
  let Some(t) = t else { return json!({}) };
  json!({
    "TableName": t.table_name(),
    "TableStatus": t.table_status().map(|s| s.as_str()),
  })
}

impl DynamoStore {
  /// Sends one request (`GetItem`, `PutItem`, `CreateTable`, `DeleteTable`, `DescribeTable`)
  /// given as the wire JSON; answers the output as wire JSON.
  pub async fn raw(&self, operation: &str, p: &J) -> Raw<J> {
    let client = self.client().await.map_err(|e| RawError {
      code: match e {
        LockError::Closed => "ClientClosed".into(),
        _ => "ConfigError".into(),
      },
      message: e.to_string(),
    })?;
    let table = str_field(p, "TableName")?;
    match operation {
      "GetItem" => {
        let out = client
          .get_item()
          .table_name(table)
          .set_key(Some(attributes(p.get("Key").unwrap_or(&J::Null))?))
          .set_attributes_to_get(
            p.get("AttributesToGet")
              .map(|v| strings(v, "AttributesToGet"))
              .transpose()?,
          )
          .set_consistent_read(p.get("ConsistentRead").and_then(J::as_bool))
          .set_projection_expression(opt_str(p, "ProjectionExpression"))
          .set_expression_attribute_names(opt_names(p, "ExpressionAttributeNames")?)
          .send()
          .await
          .map_err(sdk)?;
        Ok(match out.item() {
          Some(item) => json!({ "Item": wire_map(item) }),
          None => json!({}),
        })
      }
      "PutItem" => {
        client
          .put_item()
          .table_name(table)
          .set_item(Some(attributes(p.get("Item").unwrap_or(&J::Null))?))
          .set_condition_expression(opt_str(p, "ConditionExpression"))
          .set_expression_attribute_values(opt_attributes(p, "ExpressionAttributeValues")?)
          .set_expression_attribute_names(opt_names(p, "ExpressionAttributeNames")?)
          .send()
          .await
          .map_err(sdk)?;
        Ok(json!({}))
      }
      "CreateTable" => {
        let defs = p
          .get("AttributeDefinitions")
          .and_then(J::as_array)
          .ok_or_else(|| bad("AttributeDefinitions must be an array"))?
          .iter()
          .map(|d| {
            AttributeDefinition::builder()
              .attribute_name(str_field(d, "AttributeName")?)
              .attribute_type(ScalarAttributeType::from(str_field(d, "AttributeType")?))
              .build()
              .map_err(|e| bad(e.to_string()))
          })
          .collect::<Raw<Vec<_>>>()?;
        let keys = p
          .get("KeySchema")
          .and_then(J::as_array)
          .ok_or_else(|| bad("KeySchema must be an array"))?
          .iter()
          .map(|k| {
            KeySchemaElement::builder()
              .attribute_name(str_field(k, "AttributeName")?)
              .key_type(KeyType::from(str_field(k, "KeyType")?))
              .build()
              .map_err(|e| bad(e.to_string()))
          })
          .collect::<Raw<Vec<_>>>()?;
        let throughput = match p.get("ProvisionedThroughput") {
          Some(t) => {
            let units = |key: &str| t.get(key).and_then(J::as_i64);
            Some(
              ProvisionedThroughput::builder()
                .set_read_capacity_units(units("ReadCapacityUnits"))
                .set_write_capacity_units(units("WriteCapacityUnits"))
                .build()
                .map_err(|e| bad(e.to_string()))?,
            )
          }
          None => None,
        };
        let out = client
          .create_table()
          .table_name(table)
          .set_attribute_definitions(Some(defs))
          .set_key_schema(Some(keys))
          .set_provisioned_throughput(throughput)
          .set_billing_mode(opt_str(p, "BillingMode").map(|m| BillingMode::from(m.as_str())))
          .send()
          .await
          .map_err(sdk)?;
        Ok(json!({ "TableDescription": table_wire(out.table_description()) }))
      }
      "DeleteTable" => {
        let out = client
          .delete_table()
          .table_name(table)
          .send()
          .await
          .map_err(sdk)?;
        Ok(json!({ "TableDescription": table_wire(out.table_description()) }))
      }
      "DescribeTable" => {
        let out = client
          .describe_table()
          .table_name(table)
          .send()
          .await
          .map_err(sdk)?;
        Ok(json!({ "Table": table_wire(out.table()) }))
      }
      other => Err(bad(format!("{other} is not supported by this client"))),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn attribute_values_round_trip_through_wire_json() {
    let v = json!({"M": {"a": {"S": "x"}, "b": {"B": "aGk="}, "c": {"L": [{"N": "1"}, {"BOOL": true}, {"NULL": true}]}, "d": {"SS": ["p"]}}});
    let av = attribute(&v).expect("valid");
    assert_eq!(wire(&av), v);
    assert!(attribute(&json!({"S": 1})).is_err());
    assert!(attribute(&json!({"S": "a", "N": "1"})).is_err());
    assert!(attribute(&json!({"B": "not base64!"})).is_err());
  }
}
