//! The file store's own resources and late outcomes: an attempt whose clean-up release came
//! first never grants afterwards, and a store dropped without close() ends its watch thread.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolock_core::{Acquire, AcquireExtras, AcquireRequest, FileOptions, FileStore, LockStore};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

fn req(token: &str) -> AcquireRequest<'_> {
  AcquireRequest {
    token,
    owner: token,
    ttl: Duration::from_secs(30),
    data: None,
    queue_for: None,
    extras: &NO_EXTRAS,
  }
}

struct Dir(PathBuf);

impl Dir {
  fn new(what: &str) -> Self {
    let dir = std::env::temp_dir().join(format!("ferrolock-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Dir(dir)
  }
}

impl Drop for Dir {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.0);
  }
}

#[tokio::test]
async fn an_attempt_whose_clean_up_release_came_first_does_not_grant() {
  let dir = Dir::new("late-grant");
  let store = FileStore::new(FileOptions::new(&dir.0)).expect("options");
  // The manager cut the attempt at its deadline and released its token at once, before the
  // attempt's blocking thread got to run: the release found nothing.
  assert!(!store.release("job", "cut").await.expect("clean-up release"));
  // The attempt runs now: it must not take the lock (nobody would ever release it).
  let late = store.try_acquire("job", &req("cut")).await;
  assert!(
    !matches!(late, Ok(Acquire::Granted(_))),
    "the late attempt was granted: {late:?}"
  );
  assert!(
    store.inspect("job").await.expect("inspect").is_none(),
    "nothing holds the lock"
  );
  // Any other attempt gets it at once.
  let next = store.try_acquire("job", &req("next")).await.expect("next");
  assert!(matches!(next, Acquire::Granted(_)), "{next:?}");
  store.close().await;
}

/// Threads of this process named like the directory watch (comm keeps 15 bytes).
fn watch_threads() -> usize {
  std::fs::read_dir("/proc/self/task")
    .expect("/proc/self/task")
    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
    .filter(|comm| comm.trim_end() == "ferrolock-file-")
    .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_store_dropped_without_close_ends_its_watch_thread() {
  let dir = Dir::new("dropped-watch");
  let before = watch_threads();
  let store = FileStore::new(FileOptions::new(&dir.0)).expect("options");
  let watch = store.watch("job").await.expect("watch");
  assert!(watch.is_some(), "inotify is there on Linux");
  assert_eq!(watch_threads(), before + 1, "the watch thread runs");
  drop(watch);
  drop(store);
  // The thread ends as soon as the kernel reports the removed watch; bounded.
  let until = Instant::now() + Duration::from_secs(10);
  while watch_threads() > before {
    assert!(
      Instant::now() < until,
      "the watch thread still runs 10 s after its store was dropped"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
}
