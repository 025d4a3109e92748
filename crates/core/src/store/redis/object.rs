//! The caller's own Redis client object as a command connection (the transport seam,
//! `crate::transport::CommandTransport`): scripts (EVALSHA with the NOSCRIPT fallback) run
//! unchanged over it.

use std::collections::HashMap;
use std::sync::Arc;

use redis::{Cmd, ErrorKind, RedisError, Value};

use crate::transport::{CommandTransport, Reply, CLIENT_TIMEOUT};

/// The command connection through a client object (`Conn::Client`): each command is sent as
/// its name and arguments, and the reply (a JS value converted by the embedder) read back as a
/// Redis value.
///
/// A script missing from the server's cache is sent again at once as EVAL with its source
/// (`scripts`, by SHA1), on the same route: through a cluster client, a SCRIPT LOAD would go to
/// any node, not necessarily the one that owns the key.
#[derive(Clone)]
pub(super) struct ClientConn {
  pub(super) transport: Arc<dyn CommandTransport>,
  pub(super) scripts: Arc<HashMap<String, String>>,
}

impl ClientConn {
  /// Sends one command and reads its reply.
  pub(super) async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
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

  /// Sends `count` commands of `pipeline` from `offset`, one after another (a client object has
  /// no pipeline of its own; a cluster client may route each to another node).
  pub(super) async fn send_each(
    &self,
    pipeline: &redis::Pipeline,
    offset: usize,
    count: usize,
  ) -> redis::RedisResult<Vec<Value>> {
    let mut replies = Vec::with_capacity(count);
    for cmd in pipeline.cmd_iter().skip(offset).take(count) {
      replies.push(self.send(cmd).await?);
    }
    Ok(replies)
  }

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
  ) -> std::result::Result<std::result::Result<Reply, String>, tokio::time::error::Elapsed> {
    tokio::time::timeout(CLIENT_TIMEOUT, self.transport.call(args)).await
  }
}

fn one_line(s: &str) -> String {
  s.replace(['\r', '\n'], " ")
}

/// A client object's reply as a Redis value.
fn to_value(reply: Reply) -> Value {
  match reply {
    Reply::Nil => Value::Nil,
    Reply::Int(i) => Value::Int(i),
    Reply::Bytes(b) => Value::BulkString(b),
    Reply::Array(items) => Value::Array(items.into_iter().map(to_value).collect()),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::transport::BoxFuture;

  #[test]
  fn replies_become_redis_values() {
    let v = to_value(Reply::Array(vec![
      Reply::Int(1),
      Reply::Bytes(b"a".to_vec()),
      Reply::Nil,
      Reply::Array(vec![Reply::Int(2)]),
    ]));
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

  struct Fixed(std::result::Result<Reply, String>);
  impl CommandTransport for Fixed {
    fn call(&self, _: Vec<String>) -> BoxFuture<std::result::Result<Reply, String>> {
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
    let con = conn(Fixed(Err("boom".into())));
    let err = con.send(&redis::cmd("GET")).await.err();
    assert!(err.is_some_and(|e| e.to_string().contains("boom")));
  }
}
