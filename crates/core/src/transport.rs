//! Transport seams: the stores can speak through the caller's own client object instead of a
//! connection ferrolock opens. The embedder (the N-API binding) implements these traits by
//! calling that object's methods at call time; the stores keep all the lock logic.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisError, RedisFuture, Value};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Sends one Redis command (name first, then its arguments) through a client object.
///
/// Ok is the reply as JSON: `null`, an integer, a string or an array of those. Err is the
/// client's error message as it gave it (a server error keeps its code first, e.g. `NOSCRIPT
/// ...`, so the store can tell a script cache miss from anything else).
pub trait CommandTransport: Send + Sync {
  fn call(&self, args: Vec<String>) -> BoxFuture<std::result::Result<serde_json::Value, String>>;
}

/// A caller's Redis client object, as a store option.
#[derive(Clone)]
pub struct RedisClientObject {
  pub transport: Arc<dyn CommandTransport>,
  /// The object is a Redis Cluster client (it routes each command by its first key).
  pub cluster: bool,
}

impl fmt::Debug for RedisClientObject {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("RedisClientObject")
      .field("cluster", &self.cluster)
      .finish_non_exhaustive()
  }
}

/// How long a command through a client object may take before it counts as failed. Generous:
/// the caller's client may queue commands while it (re)connects.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-rs connection whose commands go through a client object, so scripts (EVALSHA with
/// the NOSCRIPT fallback) run unchanged over it.
///
/// A script missing from the server's cache is sent again at once as EVAL with its source
/// (`scripts`, by SHA1), on the same route: through a cluster client, a SCRIPT LOAD would go to
/// any node, not necessarily the one that owns the key.
#[derive(Clone)]
pub(crate) struct ClientConn {
  pub(crate) transport: Arc<dyn CommandTransport>,
  pub(crate) scripts: Arc<HashMap<String, String>>,
}

impl ClientConn {
  async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
    let mut reply = self.call(Self::args(cmd)).await;
    if matches!(&reply, Ok(Err(m)) if m.starts_with("NOSCRIPT")) {
      // Sent again as EVAL with the source (rare: once per script and server).
      let mut args = Self::args(cmd);
      let source = args
        .first()
        .filter(|c| c.eq_ignore_ascii_case("EVALSHA"))
        .and_then(|_| args.get(1))
        .and_then(|sha| self.scripts.get(sha))
        .cloned();
      if let Some(source) = source {
        args[0] = "EVAL".to_owned();
        args[1] = source;
        reply = self.call(args).await;
      }
    }
    match reply {
      Ok(Ok(reply)) => Ok(to_value(reply)),
      Ok(Err(message)) if message.starts_with("NOSCRIPT") => {
        // A server error: parsed as the server would have sent it, so redis-rs sees NOSCRIPT.
        redis::parse_redis_value(format!("-{}\r\n", one_line(&message)).as_bytes())
      }
      Ok(Err(message)) => Err(RedisError::from((
        ErrorKind::Client,
        "the client object failed",
        message,
      ))),
      Err(_) => Err(RedisError::from((
        ErrorKind::Io,
        "the client object did not answer in time",
      ))),
    }
  }
}

impl ClientConn {
  /// The command's name and arguments as text (ours are all UTF-8).
  fn args(cmd: &Cmd) -> Vec<String> {
    cmd
      .args_iter()
      .map(|arg| match arg {
        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => "0".to_owned(), // a cursor placeholder: not used by the scripts
      })
      .collect()
  }

  async fn call(
    &self,
    args: Vec<String>,
  ) -> std::result::Result<
    std::result::Result<serde_json::Value, String>,
    tokio::time::error::Elapsed,
  > {
    tokio::time::timeout(CLIENT_TIMEOUT, self.transport.call(args)).await
  }
}

fn one_line(s: &str) -> String {
  s.replace(['\r', '\n'], " ")
}

/// A JSON reply as a Redis value.
fn to_value(reply: serde_json::Value) -> Value {
  use serde_json::Value as J;
  match reply {
    J::Null => Value::Nil,
    J::Bool(b) => Value::Int(b.into()),
    J::Number(n) => match n.as_i64() {
      Some(i) => Value::Int(i),
      None => Value::BulkString(n.to_string().into_bytes()),
    },
    J::String(s) => Value::BulkString(s.into_bytes()),
    J::Array(items) => Value::Array(items.into_iter().map(to_value).collect()),
    J::Object(_) => Value::Nil,
  }
}

impl redis::aio::ConnectionLike for ClientConn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    Box::pin(self.send(cmd))
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a redis::Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(async move {
      let mut replies = Vec::with_capacity(count);
      for cmd in pipeline.cmd_iter().skip(offset).take(count) {
        replies.push(self.send(cmd).await?);
      }
      Ok(replies)
    })
  }

  fn get_db(&self) -> i64 {
    0
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn json_replies_become_redis_values() {
    let v = to_value(serde_json::json!([1, "a", null, [2]]));
    assert_eq!(
      v,
      Value::Array(vec![
        Value::Int(1),
        Value::BulkString(b"a".to_vec()),
        Value::Nil,
        Value::Array(vec![Value::Int(2)]),
      ])
    );
  }

  struct Fixed(std::result::Result<serde_json::Value, String>);
  impl CommandTransport for Fixed {
    fn call(&self, _: Vec<String>) -> BoxFuture<std::result::Result<serde_json::Value, String>> {
      let reply = self.0.clone();
      Box::pin(async move { reply })
    }
  }

  fn conn(t: impl CommandTransport + 'static) -> ClientConn {
    ClientConn {
      transport: Arc::new(t),
      scripts: Arc::default(),
    }
  }

  #[tokio::test]
  async fn noscript_is_a_server_error_and_others_keep_their_text() {
    let con = conn(Fixed(Err("NOSCRIPT No matching script".into())));
    let err = con
      .send(&redis::cmd("EVALSHA"))
      .await
      .and_then(|v| v.extract_error())
      .err();
    assert_eq!(
      err.map(|e| e.kind()),
      Some(ErrorKind::Server(redis::ServerErrorKind::NoScript))
    );
    let con = conn(Fixed(Err("boom (js#7)".into())));
    let err = con.send(&redis::cmd("GET")).await.err();
    assert!(err.is_some_and(|e| e.to_string().contains("boom (js#7)")));
  }
}
