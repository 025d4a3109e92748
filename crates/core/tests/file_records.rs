//! The file store's records under damage: a torn record never lets a holder whose lease ended
//! take the lock back, a deleted record never restarts fences, and waiters' places from before
//! a reboot do not block a name. Two stores over one directory stand for two processes (their
//! `flock`s exclude each other as two processes' do).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolock_core::{
  Acquire, AcquireExtras, AcquireRequest, FileOptions, FileStore, LockStore, Payload,
};

static NO_EXTRAS: AcquireExtras = AcquireExtras {
  replace_data: false,
  delete_on_release: false,
  attributes: None,
};

fn req<'a>(token: &'a str, ttl_ms: u64, data: Option<&'a Payload>) -> AcquireRequest<'a> {
  AcquireRequest {
    token,
    owner: token,
    ttl: Duration::from_millis(ttl_ms),
    data,
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
  /// The one file of this directory ending in `ext` (each test uses one lock name).
  fn only(&self, ext: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(&self.0)
      .expect("read dir")
      .map(|e| e.expect("entry").path())
      .filter(|p| p.extension().is_some_and(|e| e == ext))
      .collect();
    assert_eq!(found.len(), 1, "one .{ext} file in {}", self.0.display());
    found[0].clone()
  }
}

impl Drop for Dir {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.0);
  }
}

fn store(dir: &Path) -> FileStore {
  FileStore::new(FileOptions::new(dir)).expect("options")
}

fn fence(a: Acquire) -> u64 {
  match a {
    Acquire::Granted(g) => g.fence,
    Acquire::Held(h) => panic!("expected a grant, the lock is held: {h:?}"),
  }
}

fn tear(record: &Path) {
  std::fs::write(record, b"FLR1 garbage that is no record at all").expect("tear the record");
}

#[tokio::test]
async fn a_torn_record_never_gives_the_lock_back_to_a_holder_whose_lease_ended() {
  let dir = Dir::new("torn-stale");
  let (a, b, c) = (store(&dir.0), store(&dir.0), store(&dir.0));
  // A holds, then stops renewing (a stopped process keeps its kernel lock); its lease ends.
  let fa = fence(
    a.try_acquire("job", &req("token-a", 150, None))
      .await
      .expect("a"),
  );
  tokio::time::sleep(Duration::from_millis(300)).await;
  // B takes over after the lease: a fresh holder file replaces A's.
  let fb = fence(
    b.try_acquire("job", &req("token-b", 30_000, None))
      .await
      .expect("b"),
  );
  assert!(fb > fa, "{fb} > {fa}");
  tear(&dir.only("rec"));

  // A runs again: its kernel lock is on a file nobody looks at any more. Nothing of the torn
  // record is A's to rewrite.
  assert!(!a
    .extend("job", "token-a", Duration::from_secs(30))
    .await
    .expect("a extend"));
  assert!(!a.release("job", "token-a").await.expect("a release"));
  let again = a
    .try_acquire("job", &req("token-a", 30_000, None))
    .await
    .expect("a again");
  assert!(
    matches!(again, Acquire::Held(_)),
    "B's live holder file keeps A out"
  );
  // B, whose holder file is the current one, still holds it and renews it whole again.
  assert!(b
    .extend("job", "token-b", Duration::from_secs(30))
    .await
    .expect("b extend"));
  let third = c
    .try_acquire("job", &req("token-c", 30_000, None))
    .await
    .expect("c");
  assert!(matches!(third, Acquire::Held(_)), "nobody else gets it");
  assert!(b.release("job", "token-b").await.expect("b release"));
  let fc = fence(
    c.try_acquire("job", &req("token-c", 30_000, None))
      .await
      .expect("c"),
  );
  assert!(fc > fb, "fences still increase: {fc} > {fb}");
  for s in [a, b, c] {
    s.close().await;
  }
}

#[tokio::test]
async fn a_deleted_record_does_not_restart_fences() {
  let dir = Dir::new("deleted-record");
  let s = store(&dir.0);
  let mut last = 0;
  for i in 0..3 {
    let token = format!("t{i}");
    last = fence(
      s.try_acquire("job", &req(&token, 30_000, None))
        .await
        .expect("acquire"),
    );
    assert!(s.release("job", &token).await.expect("release"));
  }
  // Removed behind our back (a tmp cleaner); the holder file keeps the last fence.
  std::fs::remove_file(dir.only("rec")).expect("remove the record");
  let next = fence(
    s.try_acquire("job", &req("t9", 30_000, None))
      .await
      .expect("acquire"),
  );
  assert!(next > last, "{next} > {last}");
  s.close().await;
}
