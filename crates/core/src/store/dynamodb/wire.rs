//! DynamoDB's wire JSON of attribute values (`{"S": "x"}`, `{"M": {...}}`, binary as base64) to
//! and from the SDK's `AttributeValue`, for the plain item operations (`items.rs`).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::base64;
use serde_json::{json, Map, Value as J};

use super::items::ItemError;

type Raw<T> = std::result::Result<T, ItemError>;

/// A request the caller shaped wrongly.
pub(super) fn bad(message: impl Into<String>) -> ItemError {
  ItemError {
    code: "ValidationException".into(),
    message: message.into(),
  }
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
pub(super) fn attribute(v: &J) -> Raw<AttributeValue> {
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

pub(super) fn attributes(v: &J) -> Raw<HashMap<String, AttributeValue>> {
  v.as_object()
    .ok_or_else(|| bad("expected a map of attribute values"))?
    .iter()
    .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
    .collect()
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

pub(super) fn wire_map(m: &HashMap<String, AttributeValue>) -> Map<String, J> {
  m.iter().map(|(k, v)| (k.clone(), wire(v))).collect()
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
