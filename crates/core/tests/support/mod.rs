//! Real servers for the tests: started on free ports, stopped by PID on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
  TcpListener::bind("127.0.0.1:0")
    .and_then(|l| l.local_addr())
    .map(|a| a.port())
    .expect("no free port on 127.0.0.1")
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
}

impl Dynalite {
  pub fn start() -> Dynalite {
    let port = free_port();
    let bin =
      std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/dynalite/cli.js");
    assert!(
      bin.exists(),
      "dynalite is missing: run `npm install` in the project root ({})",
      bin.display()
    );
    let child = Command::new("node")
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
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .spawn()
      .expect("node not found");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
      assert!(
        Instant::now() < deadline,
        "dynalite on port {port} did not start"
      );
      std::thread::sleep(Duration::from_millis(20));
    }
    Dynalite { port, child }
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
