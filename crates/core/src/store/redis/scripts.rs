//! The Lua scripts (one round trip per operation) and how their replies read.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Script, Value};

use crate::error::LockError;

pub(super) struct Scripts {
  pub(super) acquire: Script,
  pub(super) extend: Script,
  pub(super) release: Script,
  pub(super) leave: Script,
  pub(super) inspect: Script,
  pub(super) raise: Script,
}

const ACQUIRE: &str = include_str!("acquire.lua");
const EXTEND: &str = include_str!("extend.lua");
const RELEASE: &str = include_str!("release.lua");
const LEAVE: &str = include_str!("leave.lua");
const INSPECT: &str = include_str!("inspect.lua");
const RAISE: &str = include_str!("raise.lua");

impl Scripts {
  pub(super) fn new() -> Self {
    Scripts {
      acquire: Script::new(ACQUIRE),
      extend: Script::new(EXTEND),
      release: Script::new(RELEASE),
      leave: Script::new(LEAVE),
      inspect: Script::new(INSPECT),
      raise: Script::new(RAISE),
    }
  }

  /// Every script, to load them all on a new connection.
  pub(super) fn all(&self) -> [&Script; 6] {
    [
      &self.acquire,
      &self.extend,
      &self.release,
      &self.leave,
      &self.inspect,
      &self.raise,
    ]
  }

  /// Every script's source by its SHA1.
  pub(super) fn sources(&self) -> HashMap<String, String> {
    [
      (&self.acquire, ACQUIRE),
      (&self.extend, EXTEND),
      (&self.release, RELEASE),
      (&self.leave, LEAVE),
      (&self.inspect, INSPECT),
      (&self.raise, RAISE),
    ]
    .into_iter()
    .map(|(script, source)| (script.get_hash().to_owned(), source.to_owned()))
    .collect()
  }
}

pub(super) fn as_i64(v: &Value) -> Option<i64> {
  match v {
    Value::Int(i) => Some(*i),
    Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    Value::SimpleString(s) => s.parse().ok(),
    _ => None,
  }
}

/// A fence: an integer reply, or a decimal string (counters beyond 2^53 stay strings in Lua).
pub(super) fn as_u64(v: &Value) -> Option<u64> {
  match v {
    Value::Int(i) => u64::try_from(*i).ok(),
    Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    Value::SimpleString(s) => s.parse().ok(),
    _ => None,
  }
}

pub(super) fn as_string(v: &Value) -> Option<String> {
  match v {
    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
    Value::SimpleString(s) => Some(s.clone()),
    _ => None,
  }
}

pub(super) fn remaining(pttl: Option<i64>) -> Option<Duration> {
  pttl
    .filter(|ms| *ms >= 0)
    .map(|ms| Duration::from_millis(ms as u64))
}

pub(super) fn unexpected(what: &str) -> LockError {
  LockError::Backend {
    message: format!("redis: unexpected reply to {what}"),
    source: None,
  }
}
