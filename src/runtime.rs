//! The one tokio runtime of the addon: a lock library waits on the network and on timers, so
//! one I/O thread is enough. `FERROLOCK_RUNTIME=multi` picks a multi-thread runtime (one
//! worker per core) instead, for measuring the difference.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

fn handle() -> &'static Handle {
  static HANDLE: OnceLock<Handle> = OnceLock::new();
  HANDLE.get_or_init(|| {
    if std::env::var("FERROLOCK_RUNTIME").as_deref() == Ok("multi") {
      let rt = Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrolock-io")
        .build()
        .unwrap_or_else(|e| panic!("ferrolock: cannot start the tokio runtime: {e}"));
      let handle = rt.handle().clone();
      // Lives as long as the process, like the thread below.
      std::mem::forget(rt);
      return handle;
    }
    let rt: Runtime = Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap_or_else(|e| panic!("ferrolock: cannot start the tokio runtime: {e}"));
    let handle = rt.handle().clone();
    std::thread::Builder::new()
      .name("ferrolock-io".into())
      .spawn(move || rt.block_on(std::future::pending::<()>()))
      .unwrap_or_else(|e| panic!("ferrolock: cannot start the I/O thread: {e}"));
    handle
  })
}

/// Runs `future` on the I/O thread.
pub fn spawn<F>(future: F)
where
  F: Future<Output = ()> + Send + 'static,
{
  handle().spawn(future);
}

/// Runs `f` inside the runtime's context (what spawns a task from the JS thread needs).
#[cfg_attr(test, allow(dead_code))] // used by a call from JS only
pub fn enter<T>(f: impl FnOnce() -> T) -> T {
  let _guard = handle().enter();
  f()
}
