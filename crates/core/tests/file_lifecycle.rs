//! The file store's own resources and late outcomes: an attempt whose clean-up release came
//! first never grants afterwards, a store dropped without close() ends its watch thread, and
//! files a store keeps open are not trusted once replaced.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolock_core::{
  Acquire, AcquireExtras, AcquireRequest, FileOptions, FileStore, LockStore, Payload,
};

/// These tests count the process's descriptors and threads: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
  let _serial = SERIAL.lock().await;
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
  let _serial = SERIAL.lock().await;
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

fn granted(a: Acquire) -> bool {
  matches!(a, Acquire::Granted(_))
}

#[tokio::test]
async fn a_holder_file_replaced_by_another_store_is_not_trusted_from_the_cache() {
  let _serial = SERIAL.lock().await;
  let dir = Dir::new("replaced-hold");
  let (a, b, c) = (
    FileStore::new(FileOptions::new(&dir.0)).expect("a"),
    FileStore::new(FileOptions::new(&dir.0)).expect("b"),
    FileStore::new(FileOptions::new(&dir.0)).expect("c"),
  );
  let short = AcquireRequest {
    ttl: Duration::from_millis(100),
    ..req("a1")
  };
  // A holds with a short lease and stops renewing (a stopped process keeps its kernel lock).
  assert!(granted(a.try_acquire("job", &short).await.expect("a1")));
  tokio::time::sleep(Duration::from_millis(250)).await;
  // B takes over after the lease: its fresh holder file replaces the one A has open.
  assert!(granted(b.try_acquire("job", &req("b1")).await.expect("b1")));
  assert!(!a.release("job", "a1").await.expect("a1 release"));
  assert!(b.release("job", "b1").await.expect("b1 release"));
  // A takes it again: on the file now at the path, not on the one it had open, so C sees a
  // live holder and stays out.
  assert!(granted(a.try_acquire("job", &req("a2")).await.expect("a2")));
  assert!(
    !granted(c.try_acquire("job", &req("c1")).await.expect("c1")),
    "C got the lock A holds: A locked a replaced holder file"
  );
  assert!(a.release("job", "a2").await.expect("a2 release"));
  assert!(granted(
    c.try_acquire("job", &req("c1")).await.expect("c1 again")
  ));
  for s in [a, b, c] {
    s.close().await;
  }
}

#[tokio::test]
async fn a_record_replaced_by_another_store_is_not_trusted_from_the_cache() {
  let _serial = SERIAL.lock().await;
  let dir = Dir::new("replaced-record");
  let (a, b) = (
    FileStore::new(FileOptions::new(&dir.0)).expect("a"),
    FileStore::new(FileOptions::new(&dir.0)).expect("b"),
  );
  // A works the name, so it keeps the record (in slots) open and skips the stat of it.
  for token in ["a1", "a2"] {
    assert!(granted(a.try_acquire("job", &req(token)).await.expect("a")));
    assert!(a.release("job", token).await.expect("a release"));
  }
  // B holds it with data larger than a slot: the record is written whole and renamed over the
  // file A has open.
  let big = Payload::Text("x".repeat(5000));
  let with_data = AcquireRequest {
    data: Some(&big),
    ..req("b1")
  };
  let fence_b = match b.try_acquire("job", &with_data).await.expect("b1") {
    Acquire::Granted(g) => g.fence,
    Acquire::Held(h) => panic!("B waits: {h:?}"),
  };
  // A must read the record B wrote, not the one it had open (which says the name is free).
  assert!(
    !granted(a.try_acquire("job", &req("a3")).await.expect("a3")),
    "A got the lock B holds: it trusted a replaced record"
  );
  let info = a.inspect("job").await.expect("inspect").expect("held");
  assert_eq!(info.owner, "b1");
  assert_eq!(info.data, Some(big.clone()));
  assert!(b.release("job", "b1").await.expect("b1 release"));
  match a.try_acquire("job", &req("a4")).await.expect("a4") {
    Acquire::Granted(g) => assert_eq!(g.fence, fence_b + 1),
    Acquire::Held(h) => panic!("A waits for a released lock: {h:?}"),
  }
  assert!(a.release("job", "a4").await.expect("a4 release"));
  for s in [a, b] {
    s.close().await;
  }
}

#[tokio::test]
async fn a_directory_deleted_and_made_again_is_noticed_before_a_grant() {
  let _serial = SERIAL.lock().await;
  let dir = Dir::new("remade-dir");
  let a = FileStore::new(FileOptions::new(&dir.0)).expect("a");
  assert!(granted(a.try_acquire("job", &req("a1")).await.expect("a1")));
  assert!(a.release("job", "a1").await.expect("a1 release"));
  // Deleted and made again while A keeps the old files open (not supported while in use, but
  // it must not split the name in two for good): B works on the new files.
  std::fs::remove_dir_all(&dir.0).expect("remove the directory");
  let b = FileStore::new(FileOptions::new(&dir.0)).expect("b");
  assert!(granted(b.try_acquire("job", &req("b1")).await.expect("b1")));
  // At once (an acquire checks its cached files against the paths) A sees B's lock.
  assert!(
    !granted(a.try_acquire("job", &req("a2")).await.expect("a2")),
    "A got the lock B holds: it kept using the deleted files"
  );
  assert!(b.release("job", "b1").await.expect("b1 release"));
  assert!(granted(a.try_acquire("job", &req("a3")).await.expect("a3")));
  assert!(a.release("job", "a3").await.expect("a3 release"));
  for s in [a, b] {
    s.close().await;
  }
}

/// Open descriptors of this process.
fn open_fds() -> usize {
  std::fs::read_dir("/proc/self/fd")
    .expect("/proc/self/fd")
    .count()
}

#[tokio::test]
async fn cached_files_are_bounded_and_closed_by_close() {
  let _serial = SERIAL.lock().await;
  let dir = Dir::new("bounded-fds");
  let store = FileStore::new(FileOptions::new(&dir.0)).expect("options");
  let before = open_fds();
  for i in 0..1000 {
    let (name, token) = (format!("n{i}"), format!("t{i}"));
    assert!(granted(
      store
        .try_acquire(&name, &req(&token))
        .await
        .expect("acquire")
    ));
    assert!(store.release(&name, &token).await.expect("release"));
  }
  // At most 3 files for each of 128 idle names (and a sweep's worth more), whatever the
  // number of names used; the other tests of this file open a few too.
  let used = open_fds().saturating_sub(before);
  assert!(
    used <= 2 * 3 * 128 + 32,
    "{used} descriptors open for idle names"
  );
  store.close().await;
  let left = open_fds().saturating_sub(before);
  assert!(left <= 32, "{left} descriptors still open after close()");
}

#[tokio::test]
async fn many_held_names_cost_one_descriptor_each_and_none_once_released() {
  let _serial = SERIAL.lock().await;
  let dir = Dir::new("held-fds");
  let store = FileStore::new(FileOptions::new(&dir.0)).expect("options");
  let before = open_fds();
  let n = 1000;
  for i in 0..n {
    let (name, token) = (format!("h{i}"), format!("t{i}"));
    assert!(granted(
      store
        .try_acquire(&name, &req(&token))
        .await
        .expect("acquire")
    ));
  }
  // One holder file per held lock, plus the files of at most 128 names kept whole (and a
  // margin for the other tests of this file).
  let held = open_fds().saturating_sub(before);
  assert!(
    held <= n + 3 * 128 + 32,
    "{held} descriptors open for {n} held names"
  );
  for i in 0..n {
    let (name, token) = (format!("h{i}"), format!("t{i}"));
    assert!(store.release(&name, &token).await.expect("release"));
  }
  let idle = open_fds().saturating_sub(before);
  assert!(
    idle <= 3 * 128 + 32,
    "{idle} descriptors open once all {n} were released"
  );
  store.close().await;
}
