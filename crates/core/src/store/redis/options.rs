//! Redis options: the URL, host, port, credentials, TLS, cluster nodes or a client object, and
//! where they lead (`Target`). Every check runs here, before any I/O; no message repeats a URL
//! (it may hold a password).

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::{LockError, Result};
use crate::transport::RedisClientObject;

/// How ferrolock connects to one Redis server.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
  /// `redis://[user:password@]host[:port][/db]` (or `rediss://`). When given, the fields
  /// below override its parts.
  pub url: Option<String>,
  pub host: Option<String>,
  pub port: Option<u16>,
  pub username: Option<String>,
  pub password: Option<String>,
  pub db: Option<i64>,
  /// Prefix of every lock key; default `lock:` (dist-lock's).
  pub key_prefix: Option<String>,
  /// Use TLS (also implied by a `rediss://` URL).
  pub tls: bool,
  /// PEM certificate(s) to trust instead of the system's roots (a private CA).
  pub tls_ca: Option<Vec<u8>>,
  /// Redis Cluster: URLs of some of its nodes (the others are discovered). `url`, `host`, `port`
  /// and `db` must not be given then; `username`, `password` and TLS apply to every node.
  pub cluster: Option<Vec<String>>,
  /// The caller's own client object (the transport seam): every command goes through it, and
  /// none of the connection settings above may be given then. No pub/sub: waiters poll.
  pub client: Option<RedisClientObject>,
}

/// Default key prefix, the same as dist-lock's.
pub const DEFAULT_PREFIX: &str = "lock:";

/// Where the store connects: one server, or a cluster through some of its nodes.
pub(super) enum Target {
  Single(Box<ConnectionInfo>),
  Cluster(Vec<ConnectionInfo>),
  Client(RedisClientObject),
}

/// Checks a URL's shape, as the JS layer's parser (`lib/options/redis.js`) does, with the same
/// messages (`url-messages.json` pins both): it parses (WHATWG rules, as Node's `URL`), its
/// scheme is redis: or rediss:, it names a host. `what` names the option; the URL itself is never
/// repeated (it may hold a password).
pub(super) fn check_url(url: &str, what: &str) -> Result<()> {
  let parsed = url::Url::parse(url).map_err(|_| {
    LockError::InvalidArg(format!(
      "{what}: invalid Redis URL (expected redis://[user:password@]host[:port][/db])"
    ))
  })?;
  let scheme = parsed.scheme();
  if scheme != "redis" && scheme != "rediss" {
    let shown = serde_json::to_string(&format!("{scheme}:")).unwrap_or_default();
    return Err(LockError::InvalidArg(format!(
      "{what}: unsupported URL scheme {shown} (expected redis: or rediss:)"
    )));
  }
  if parsed.host_str().is_none_or(str::is_empty) {
    return Err(LockError::InvalidArg(format!(
      "{what}: the Redis URL has no host"
    )));
  }
  Ok(())
}

pub(super) fn target(opts: &RedisOptions) -> Result<Target> {
  if let Some(client) = &opts.client {
    let settings = opts.url.is_some()
      || opts.host.is_some()
      || opts.port.is_some()
      || opts.username.is_some()
      || opts.password.is_some()
      || opts.db.is_some()
      || opts.tls
      || opts.tls_ca.is_some()
      || opts.cluster.is_some();
    if settings {
      return Err(LockError::InvalidArg(
        "options.redis: a client object brings its own connection; do not also give url, host, port, username, password, db, tls or cluster".into(),
      ));
    }
    return Ok(Target::Client(client.clone()));
  }
  if let Some(ca) = &opts.tls_ca {
    check_ca(ca)?;
  }
  let Some(nodes) = &opts.cluster else {
    let info = connection_info(opts, opts.url.as_deref(), "options.redis")?;
    return Ok(Target::Single(Box::new(info)));
  };
  if nodes.is_empty() {
    return Err(LockError::InvalidArg(
      "options.redis.cluster must list at least one node URL".into(),
    ));
  }
  if opts.url.is_some() || opts.host.is_some() || opts.port.is_some() {
    return Err(LockError::InvalidArg(
      "options.redis: give either cluster (node URLs) or url/host/port, not both".into(),
    ));
  }
  if opts.db.is_some_and(|db| db != 0) {
    return Err(LockError::InvalidArg(
      "options.redis.db: a Redis Cluster has only database 0".into(),
    ));
  }
  let infos = nodes
    .iter()
    .enumerate()
    .map(|(i, node)| connection_info(opts, Some(node), &format!("options.redis.cluster[{i}]")))
    .collect::<Result<Vec<_>>>()?;
  if infos.iter().any(|i| i.redis_settings().db() != 0) {
    return Err(LockError::InvalidArg(
      "options.redis.cluster: a Redis Cluster has only database 0".into(),
    ));
  }
  Ok(Target::Cluster(infos))
}

/// A private CA must be at least one PEM certificate that parses.
fn check_ca(ca: &[u8]) -> Result<()> {
  use rustls::pki_types::pem::PemObject;
  use rustls::pki_types::CertificateDer;
  let certs = CertificateDer::pem_slice_iter(ca).collect::<std::result::Result<Vec<_>, _>>();
  match certs {
    Ok(certs) if !certs.is_empty() => Ok(()),
    _ => Err(LockError::InvalidArg(
      "options.redis.tls.ca must hold at least one PEM certificate".into(),
    )),
  }
}

fn connection_info(opts: &RedisOptions, url: Option<&str>, what: &str) -> Result<ConnectionInfo> {
  let url = url.unwrap_or("redis://127.0.0.1:6379");
  check_url(url, what)?;
  // What the WHATWG parser accepts but redis-rs does not (e.g. a db path that is no number).
  let bad = || {
    LockError::InvalidArg(format!(
      "{what}: invalid Redis URL (expected redis://[user:password@]host[:port][/db])"
    ))
  };
  let mut info = url.into_connection_info().map_err(|_| bad())?;
  let (host, port, tls) = match info.addr() {
    redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p, false),
    redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
    _ => return Err(bad()),
  };
  let host = opts.host.clone().unwrap_or(host);
  let port = opts.port.unwrap_or(port);
  // Caught here, before any connection attempt (messages never repeat the URL).
  if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
    return Err(LockError::InvalidArg(format!(
      "{what}: the host must be a host name or an IP address"
    )));
  }
  if port == 0 {
    return Err(LockError::InvalidArg(format!(
      "{what}: the port must be from 1 to 65535"
    )));
  }
  let db = opts.db.unwrap_or_else(|| info.redis_settings().db());
  if !(0..=i64::from(i32::MAX)).contains(&db) {
    return Err(LockError::InvalidArg(format!(
      "{what}: the database number must be from 0 to {}",
      i32::MAX
    )));
  }
  info = info.set_addr(if tls || opts.tls || opts.tls_ca.is_some() {
    redis::ConnectionAddr::TcpTls {
      host,
      port,
      insecure: false,
      tls_params: None,
    }
  } else {
    redis::ConnectionAddr::Tcp(host, port)
  });
  let mut settings = info.redis_settings().clone();
  if let Some(user) = &opts.username {
    settings = settings.set_username(user);
  }
  if let Some(password) = &opts.password {
    settings = settings.set_password(password);
  }
  if let Some(db) = opts.db {
    settings = settings.set_db(db);
  }
  Ok(info.set_redis_settings(settings))
}

#[cfg(test)]
mod tests {
  use crate::store::redis::{RedisOptions, RedisStore};

  #[test]
  fn bad_urls_get_the_js_layers_messages_without_echoing_them() {
    let cases: Vec<(String, String, String)> =
      serde_json::from_str(include_str!("url-messages.json")).expect("the fixture parses");
    for (what, url, message) in cases {
      let single = RedisStore::new(RedisOptions {
        url: Some(url.clone()),
        ..Default::default()
      })
      .err()
      .map(|e| e.to_string());
      assert_eq!(
        single.as_deref(),
        Some(message.replace("{what}", "options.redis").as_str()),
        "{what}"
      );
      let node = RedisStore::new(RedisOptions {
        cluster: Some(vec!["redis://127.0.0.1:7000".into(), url.clone()]),
        ..Default::default()
      })
      .err()
      .map(|e| e.to_string());
      assert_eq!(
        node.as_deref(),
        Some(
          message
            .replace("{what}", "options.redis.cluster[1]")
            .as_str()
        ),
        "{what} (cluster node)"
      );
      assert!(!single.unwrap_or_default().contains("s3cret"));
    }
  }
}
