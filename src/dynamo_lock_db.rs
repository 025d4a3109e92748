//! The requests of the dynamo-lock drop-in's own client (lib/dynamodb-adapter.js, used when the
//! caller gives dynamo-lock no `db`), from aws-sdk v2 params to the DynamoDB store's plain item
//! operations. Only what dynamo-lock sends passes: GetItem of a key, PutItem with no condition,
//! `attribute_not_exists(name)` or `name = :value`, and CreateTable / DeleteTable /
//! DescribeTable of a table with one string hash key. Anything else is a ValidationException.

use ferrolock_core::{DynamoStore, ItemError, PutCondition};
use serde_json::Value as J;

type Done<T> = std::result::Result<T, ItemError>;

fn bad(message: impl Into<String>) -> ItemError {
  ItemError {
    code: "ValidationException".into(),
    message: message.into(),
  }
}

fn text<'a>(p: &'a J, key: &str) -> Done<&'a str> {
  p.get(key)
    .and_then(J::as_str)
    .ok_or_else(|| bad(format!("{key} must be a string")))
}

/// Sends one request given as aws-sdk v2 params; answers the output as wire JSON.
pub async fn request(store: &DynamoStore, operation: &str, p: &J) -> Done<J> {
  let table = text(p, "TableName")?;
  match operation {
    "GetItem" => {
      let attributes = match p.get("AttributesToGet") {
        None => None,
        Some(list) => Some(strings(list)?),
      };
      let consistent = p.get("ConsistentRead").and_then(J::as_bool) == Some(true);
      let key = p.get("Key").unwrap_or(&J::Null);
      store.get_item(table, key, attributes, consistent).await
    }
    "PutItem" => {
      let item = p.get("Item").unwrap_or(&J::Null);
      store.put_item(table, item, condition(p)?).await?;
      Ok(J::Object(Default::default()))
    }
    "CreateTable" => {
      let (key, read, write) = hash_table(p)?;
      store.create_hash_table(table, &key, read, write).await
    }
    "DeleteTable" => store.drop_table(table).await,
    "DescribeTable" => store.describe(table).await,
    other => Err(bad(format!("{other} is not supported by this client"))),
  }
}

fn strings(v: &J) -> Done<Vec<String>> {
  let list = v
    .as_array()
    .ok_or_else(|| bad("AttributesToGet must be an array of strings"))?;
  list
    .iter()
    .map(|s| {
      s.as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad("AttributesToGet must be an array of strings"))
    })
    .collect()
}

/// A PutItem's condition: none, `attribute_not_exists(name)` or `name = :value`.
fn condition(p: &J) -> Done<Option<PutCondition>> {
  let Some(expr) = p.get("ConditionExpression") else {
    return Ok(None);
  };
  let expr = expr
    .as_str()
    .ok_or_else(|| bad("ConditionExpression must be a string"))?
    .trim();
  if let Some(name) = expr
    .strip_prefix("attribute_not_exists(")
    .and_then(|rest| rest.strip_suffix(')'))
  {
    return Ok(Some(PutCondition::Absent(name.trim().to_owned())));
  }
  if let Some((name, placeholder)) = expr.split_once('=') {
    let placeholder = placeholder.trim();
    let value = p
      .get("ExpressionAttributeValues")
      .and_then(|v| v.get(placeholder))
      .filter(|_| placeholder.starts_with(':'))
      .ok_or_else(|| bad(format!("ExpressionAttributeValues has no {placeholder}")))?;
    return Ok(Some(PutCondition::Equals(
      name.trim().to_owned(),
      value.clone(),
    )));
  }
  Err(bad(
    "ConditionExpression must be attribute_not_exists(name) or name = :value",
  ))
}

/// CreateTable params of a table with one string hash key and provisioned capacity.
fn hash_table(p: &J) -> Done<(String, i64, i64)> {
  let one = |key: &str| {
    p.get(key)
      .and_then(J::as_array)
      .filter(|a| a.len() == 1)
      .and_then(|a| a.first())
      .ok_or_else(|| bad(format!("{key} must list one attribute")))
  };
  let def = one("AttributeDefinitions")?;
  let schema = one("KeySchema")?;
  let name = text(def, "AttributeName")?;
  if text(def, "AttributeType")? != "S"
    || text(schema, "AttributeName")? != name
    || text(schema, "KeyType")? != "HASH"
  {
    return Err(bad("the table must have one string (S) HASH key"));
  }
  let units = |key: &str| {
    p.get("ProvisionedThroughput")
      .and_then(|t| t.get(key))
      .and_then(J::as_i64)
      .ok_or_else(|| bad(format!("ProvisionedThroughput.{key} must be an integer")))
  };
  Ok((
    name.to_owned(),
    units("ReadCapacityUnits")?,
    units("WriteCapacityUnits")?,
  ))
}

#[cfg(test)]
mod tests {
  use super::*;
  use serde_json::json;

  #[test]
  fn only_dynamo_locks_conditions_and_tables_pass() {
    let absent = condition(&json!({ "ConditionExpression": "attribute_not_exists(guid)" }));
    assert!(matches!(absent, Ok(Some(PutCondition::Absent(n))) if n == "guid"));
    let equals = condition(&json!({
      "ConditionExpression": "guid = :oldguid",
      "ExpressionAttributeValues": { ":oldguid": { "S": "g" } },
    }));
    assert!(
      matches!(equals, Ok(Some(PutCondition::Equals(n, v))) if n == "guid" && v == json!({ "S": "g" }))
    );
    assert!(matches!(condition(&json!({})), Ok(None)));
    for refused in [
      json!({ "ConditionExpression": "guid = :missing" }),
      json!({ "ConditionExpression": "attribute_exists(guid)" }),
      json!({ "ConditionExpression": 7 }),
    ] {
      let err = condition(&refused).err().map(|e| e.code);
      assert_eq!(err.as_deref(), Some("ValidationException"), "{refused}");
    }
    let table = json!({
      "AttributeDefinitions": [{ "AttributeName": "name", "AttributeType": "S" }],
      "KeySchema": [{ "AttributeName": "name", "KeyType": "HASH" }],
      "ProvisionedThroughput": { "ReadCapacityUnits": 1, "WriteCapacityUnits": 2 },
    });
    assert_eq!(hash_table(&table).ok(), Some(("name".to_owned(), 1, 2)));
    let mut range = table.clone();
    range["KeySchema"][0]["KeyType"] = json!("RANGE");
    assert!(hash_table(&range).is_err());
  }
}
