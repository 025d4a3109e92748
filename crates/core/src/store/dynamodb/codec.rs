//! Attribute values to and from ferrolock's types: the readers of a record's attributes, the
//! lock's data, and the caller's additional attributes as JSON.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DATA, LEASE};
use crate::lease::{Payload, MAX_TTL};

/// An item as the SDK gives it.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn millis(d: Duration) -> u64 {
  d.as_millis().min(u64::MAX as u128) as u64
}

pub(super) fn s_attr(item: &Item, name: &str) -> Option<String> {
  match item.get(name) {
    Some(AttributeValue::S(s)) => Some(s.clone()),
    Some(AttributeValue::N(n)) => Some(n.clone()),
    _ => None,
  }
}

pub(super) fn n_attr(item: &Item, name: &str) -> u64 {
  match item.get(name) {
    Some(AttributeValue::N(n)) | Some(AttributeValue::S(n)) => n.trim().parse().unwrap_or(0),
    _ => 0,
  }
}

pub(super) fn bool_attr(item: &Item, name: &str) -> bool {
  matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// The holder's lease; a record without a readable one counts as the longest lease.
pub(super) fn lease_attr(item: &Item) -> Duration {
  match n_attr(item, LEASE) {
    0 => MAX_TTL,
    ms => Duration::from_millis(ms).min(MAX_TTL),
  }
}

pub(super) fn data_attr(item: &Item) -> Option<Payload> {
  match item.get(DATA) {
    Some(AttributeValue::S(s)) => Some(Payload::Text(s.clone())),
    Some(AttributeValue::B(b)) => Some(Payload::Bytes(b.as_ref().to_vec())),
    _ => None,
  }
}

pub(super) fn payload_value(p: &Payload) -> AttributeValue {
  match p {
    Payload::Text(t) => AttributeValue::S(t.clone()),
    Payload::Bytes(b) => AttributeValue::B(Blob::new(b.clone())),
  }
}

/// JSON to a DynamoDB value (additional attributes).
pub(super) fn from_json(v: &serde_json::Value) -> AttributeValue {
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
pub(super) fn to_json(v: &AttributeValue) -> serde_json::Value {
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
  fn json_round_trips_through_attribute_values() {
    let v = serde_json::json!({"a": [1, "two", true, null, {"b": 2.5}]});
    assert_eq!(to_json(&from_json(&v)), v);
  }
}
