//! Update and condition expressions with placeholders for names (`#x`) and values (`:x`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Expression builder: placeholders for names and values.
#[derive(Default)]
pub(super) struct Expr {
  pub(super) names: HashMap<String, String>,
  pub(super) values: HashMap<String, AttributeValue>,
  pub(super) set: Vec<String>,
  pub(super) remove: Vec<String>,
}

impl Expr {
  pub(super) fn name(&mut self, placeholder: &str, attr: &str) -> &mut Self {
    self.names.insert(placeholder.to_owned(), attr.to_owned());
    self
  }
  pub(super) fn value(&mut self, placeholder: &str, v: AttributeValue) -> &mut Self {
    self.values.insert(placeholder.to_owned(), v);
    self
  }
  pub(super) fn update(&self) -> String {
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
