//! Real servers for the tests: started on free ports, stopped by PID on drop.

#![allow(dead_code)]

mod bounded;
#[allow(unused_imports)] // each test binary uses some of them
pub use bounded::{bounded, scaled, slack, wait_until, within, HANG};

use std::net::TcpListener;
use std::sync::Arc;

use ferrolock_core::{RedisOptions, RedlockOptions, RedlockStore};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now. Ports come from 20000-31999, below the kernel's
/// ephemeral range, and each process counts through a window of its own: parallel tests never
/// receive the same port (a port the kernel hands out for bind(0) can be handed out again
/// before the server that was meant to get it has started).
pub fn free_port() -> u16 {
  use std::sync::atomic::{AtomicU32, Ordering};
  static NEXT: AtomicU32 = AtomicU32::new(0);
  let base = 20_000 + (std::process::id() % 50) * 240;
  for _ in 0..240 {
    let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 240) as u16;
    if TcpListener::bind(("127.0.0.1", port)).is_ok() {
      return port;
    }
  }
  panic!("no free port on 127.0.0.1 in {base}..{}", base + 240);
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
  (0..n).map(|_| free_port()).collect()
}

/// One `redis-server` process on a free port, without persistence.
pub struct RedisServer {
  pub port: u16,
  child: Child,
}

impl RedisServer {
  pub fn start() -> RedisServer {
    Self::start_on(free_port())
  }

  pub fn start_on(port: u16) -> RedisServer {
    Self::start_with(port, &[])
  }

  /// Starts redis-server on `port` with extra arguments.
  pub fn start_with(port: u16, extra: &[String]) -> RedisServer {
    let child = Command::new("redis-server")
      .args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ])
      .args(extra)
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .spawn()
      .expect("redis-server not found: install it (apt-get install redis-server)");
    let server = RedisServer { port, child };
    server.wait_ready();
    server
  }

  pub fn url(&self) -> String {
    format!("redis://127.0.0.1:{}", self.port)
  }

  fn wait_ready(&self) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
      let ok = Command::new("redis-cli")
        .args(["-p", &self.port.to_string(), "ping"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
        .unwrap_or(false);
      if ok {
        return;
      }
      std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {} did not start", self.port);
  }

  /// Runs one redis-cli command and returns its output.
  pub fn cli(&self, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
      .arg("-p")
      .arg(self.port.to_string())
      .args(args)
      .output()
      .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
  }

  /// Stops the server (SIGKILL) and waits for it.
  pub fn kill(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
  }

  /// Sends `sig` (`-STOP`: it keeps accepting requests and answers none; `-CONT`) to the server.
  pub fn signal(&self, sig: &str) {
    let ok = Command::new("kill")
      .args([sig, &self.child.id().to_string()])
      .status()
      .expect("kill")
      .success();
    assert!(ok, "kill {sig} {}", self.child.id());
  }

  /// Whether the process still runs (a killed server is waited for, so it is gone).
  pub fn alive(&self) -> bool {
    std::path::Path::new(&format!("/proc/{}", self.child.id())).exists()
  }

  /// Starts a killed server again on the same port, empty.
  pub fn restart(&mut self) {
    self.kill();
    *self = RedisServer::start_on(self.port);
  }
}

impl Drop for RedisServer {
  fn drop(&mut self) {
    self.kill();
  }
}

/// One in-memory `dynalite` (a DynamoDB-compatible server, an npm devDependency of the
/// project) on a free port.
pub struct Dynalite {
  pub port: u16,
  child: Child,
  /// Its output, kept open while it runs.
  _out: std::io::BufReader<std::process::ChildStdout>,
}

impl Dynalite {
  /// Starts dynalite and waits for its own "listening" line, so a port another process took in
  /// the meantime (dynalite then exits) is never mistaken for ours: it tries another port.
  pub fn start() -> Dynalite {
    use std::io::BufRead;
    let bin =
      std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/dynalite/cli.js");
    assert!(
      bin.exists(),
      "dynalite is missing: run `npm install` in the project root ({})",
      bin.display()
    );
    for _ in 0..5 {
      let port = free_port();
      let mut child = Command::new("node")
        .arg(&bin)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .args([
          "--createTableMs",
          "0",
          "--deleteTableMs",
          "0",
          "--updateTableMs",
          "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node not found");
      let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
      let mut line = String::new();
      // Blocks until dynalite prints that it listens, or exits (end of output).
      if out.read_line(&mut line).unwrap_or(0) > 0 && line.contains("listening") {
        return Dynalite {
          port,
          child,
          _out: out,
        };
      }
      let _ = child.kill();
      let _ = child.wait();
    }
    panic!("dynalite did not start");
  }

  pub fn endpoint(&self) -> String {
    format!("http://127.0.0.1:{}", self.port)
  }
}

impl Drop for Dynalite {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
  }
}

/// A Redis Cluster of 3 masters with one replica each, on free ports (`redis-cli --cluster
/// create`). Fails over within about a second (`cluster-node-timeout 500`).
pub struct RedisCluster {
  pub nodes: Vec<RedisServer>,
  dir: std::path::PathBuf,
}

impl RedisCluster {
  pub fn start() -> RedisCluster {
    let dir = std::env::temp_dir().join(format!(
      "ferrolock-cluster-{}-{}",
      std::process::id(),
      free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // 6 client ports and 6 cluster bus ports.
    let ports = free_ports(12);
    let nodes: Vec<RedisServer> = (0..6)
      .map(|i| {
        let port = ports[i];
        let extra = vec![
          "--cluster-enabled".to_owned(),
          "yes".to_owned(),
          "--cluster-port".to_owned(),
          ports[6 + i].to_string(),
          "--cluster-config-file".to_owned(),
          dir.join(format!("nodes-{i}.conf")).display().to_string(),
          "--cluster-node-timeout".to_owned(),
          "500".to_owned(),
          "--cluster-replica-validity-factor".to_owned(),
          "0".to_owned(),
          // Replicas write the snapshot they receive: into the temp dir, never the cwd (where
          // any server started later would load it).
          "--dir".to_owned(),
          dir.display().to_string(),
          "--dbfilename".to_owned(),
          format!("dump-{i}.rdb"),
        ];
        RedisServer::start_with(port, &extra)
      })
      .collect();
    let addrs: Vec<String> = nodes
      .iter()
      .map(|n| format!("127.0.0.1:{}", n.port))
      .collect();
    let out = Command::new("redis-cli")
      .args(["--cluster", "create"])
      .args(&addrs)
      .args(["--cluster-replicas", "1", "--cluster-yes"])
      .output()
      .expect("redis-cli");
    assert!(
      out.status.success(),
      "redis-cli --cluster create failed: {}{}",
      String::from_utf8_lossy(&out.stdout),
      String::from_utf8_lossy(&out.stderr)
    );
    let cluster = RedisCluster { nodes, dir };
    cluster.wait_ok();
    cluster
  }

  /// Waits until every live node reports `cluster_state:ok` and agrees on 3 masters.
  pub fn wait_ok(&self) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
      let ok = self.nodes.iter().filter(|n| n.alive()).all(|n| {
        n.cli(&["cluster", "info"]).contains("cluster_state:ok")
          && n.cli(&["cluster", "nodes"]).matches("master").count() >= 3
      });
      if ok {
        return;
      }
      std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the cluster did not reach cluster_state:ok");
  }

  /// Waits until every replica of the master on `port` has received all its writes.
  pub fn wait_replicated(&self, port: u16) {
    let master = self.nodes.iter().find(|n| n.port == port).expect("node");
    // Replication waits on the machine's load: 20 s x slack (a hang is still named).
    let deadline = Instant::now() + scaled(20_000).min(HANG);
    while Instant::now() < deadline {
      let info = master.cli(&["info", "replication"]);
      let offset = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .unwrap_or("-1")
        .trim()
        .to_owned();
      let replicas: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
      if !replicas.is_empty()
        && replicas
          .iter()
          .all(|r| r.contains("state=online") && r.contains(&format!("offset={offset},")))
      {
        return;
      }
      std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the replicas of port {port} did not catch up");
  }

  /// Node URLs for a client.
  pub fn urls(&self) -> Vec<String> {
    self.nodes.iter().map(RedisServer::url).collect()
  }

  /// The node that serves `key` as master.
  pub fn master_of(&mut self, key: &str) -> &mut RedisServer {
    let slot = self.nodes[0].cli(&["cluster", "keyslot", key]);
    let slot: u16 = slot.parse().expect("slot");
    let shards = self
      .nodes
      .iter()
      .find(|n| n.alive())
      .expect("a live node")
      .cli(&["cluster", "nodes"]);
    let port = shards
      .lines()
      .filter(|l| l.contains("master") && !l.contains("fail"))
      .find(|l| {
        l.split_whitespace().skip(8).any(|range| {
          let mut ends = range.split('-');
          let lo: u16 = ends.next().and_then(|x| x.parse().ok()).unwrap_or(u16::MAX);
          let hi: u16 = ends.next().and_then(|x| x.parse().ok()).unwrap_or(lo);
          lo <= slot && slot <= hi
        })
      })
      .and_then(|l| l.split_whitespace().nth(1))
      .and_then(|a| a.split('@').next())
      .and_then(|a| a.rsplit(':').next())
      .and_then(|p| p.parse::<u16>().ok())
      .expect("a master for the slot");
    self
      .nodes
      .iter_mut()
      .find(|n| n.port == port)
      .expect("node")
  }
}

impl Drop for RedisCluster {
  fn drop(&mut self) {
    for n in &mut self.nodes {
      n.kill();
    }
    let _ = std::fs::remove_dir_all(&self.dir);
  }
}

/// `n` independent Redis masters (for Redlock).
pub fn masters(n: usize) -> Vec<RedisServer> {
  free_ports(n)
    .into_iter()
    .map(RedisServer::start_on)
    .collect()
}

/// A TCP proxy in front of `target` that can stop forwarding (a stalled network path: bytes
/// are read and dropped, connections stay open) and resume.
pub struct StallProxy {
  pub port: u16,
  stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallProxy {
  /// Starts forwarding 127.0.0.1:`port` to 127.0.0.1:`target` on a background thread.
  pub fn start(target: u16) -> StallProxy {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
    let port = listener.local_addr().expect("addr").port();
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    std::thread::spawn(move || {
      for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
          continue;
        };
        for (mut from, mut to) in [
          (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
          ),
          (server, client),
        ] {
          let flag = flag.clone();
          std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
              match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                  // Stalled: hold the bytes (the peer waits for an answer) until resumed.
                  while flag.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                  }
                  if to.write_all(&buf[..n]).is_err() {
                    break;
                  }
                }
              }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
          });
        }
      }
    });
    StallProxy { port, stalled }
  }

  pub fn url(&self) -> String {
    format!("redis://127.0.0.1:{}", self.port)
  }

  /// Stops (true) or resumes (false) forwarding.
  pub fn stall(&self, on: bool) {
    self.stalled.store(on, std::sync::atomic::Ordering::Release);
  }
}

/// A Redlock store over `urls`; `request_timeout` overrides the default per-request timeout.
pub fn redlock_store(urls: &[String], request_timeout: Option<Duration>) -> Arc<RedlockStore> {
  let mut opts = RedlockOptions {
    masters: urls
      .iter()
      .map(|u| RedisOptions {
        url: Some(u.clone()),
        ..Default::default()
      })
      .collect(),
    ..Default::default()
  };
  if let Some(t) = request_timeout {
    opts.request_timeout = t;
  }
  Arc::new(RedlockStore::new(opts).expect("valid options"))
}
