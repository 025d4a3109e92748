//! Wake-ups across processes: one inotify watch on the lock directory. A holder keeps its
//! holder file open for writing while it holds the lock; when that file is closed, by a
//! release or by the kernel when the holder dies (SIGKILL included), inotify reports
//! IN_CLOSE_WRITE with the file's name, and the waiters of that name in this process look
//! again. No polling: the thread sleeps in read(2). Linux only; elsewhere waiters poll.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{LockError, Result};
use crate::store::WakeHub;

use super::paths::HOLD_SUFFIX;

/// Lock names with a waiter here, by the hash their files are named with.
#[derive(Clone, Default)]
pub(crate) struct Stems(Arc<Mutex<HashMap<String, String>>>);

impl Stems {
  pub fn map(&self) -> MutexGuard<'_, HashMap<String, String>> {
    self.0.lock().unwrap_or_else(|e| e.into_inner())
  }
}

#[cfg(target_os = "linux")]
pub(crate) struct DirWatch {
  fd: Arc<rustix::fd::OwnedFd>,
  wd: i32,
  stop: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(target_os = "linux")]
impl DirWatch {
  /// Starts the watch of `dir` and the thread that turns its events into wake-ups.
  pub fn start(dir: &Path, stems: Stems, hub: WakeHub) -> Result<DirWatch> {
    use rustix::fs::inotify;
    let fail = |e: rustix::io::Errno| {
      LockError::backend(
        format!("file backend: cannot watch {} for releases", dir.display()),
        std::io::Error::from(e),
      )
    };
    let fd = Arc::new(inotify::init(inotify::CreateFlags::CLOEXEC).map_err(fail)?);
    let wd = inotify::add_watch(&*fd, dir, inotify::WatchFlags::CLOSE_WRITE).map_err(fail)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (thread_fd, thread_stop) = (fd.clone(), stop.clone());
    std::thread::Builder::new()
      .name("ferrolock-file-watch".into())
      .spawn(move || read_events(&thread_fd, &thread_stop, &stems, &hub))
      .map_err(|e| LockError::backend("file backend: cannot start the watch thread", e))?;
    Ok(DirWatch { fd, wd, stop })
  }

  /// Ends the thread: removing the watch makes the kernel send IN_IGNORED, which wakes it.
  pub fn stop(&self) {
    self.stop.store(true, std::sync::atomic::Ordering::Release);
    let _ = rustix::fs::inotify::remove_watch(&*self.fd, self.wd);
  }
}

#[cfg(target_os = "linux")]
fn read_events(
  fd: &rustix::fd::OwnedFd,
  stop: &std::sync::atomic::AtomicBool,
  stems: &Stems,
  hub: &WakeHub,
) {
  use rustix::fs::inotify::{ReadFlags, Reader};
  let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
  let mut reader = Reader::new(fd, &mut buf);
  loop {
    let event = match reader.next() {
      Ok(ev) => ev,
      Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
      // The descriptor is unusable: waiters fall back to polling.
      Err(_) => return,
    };
    if event.events().contains(ReadFlags::IGNORED) {
      // The watch is gone (stop(), or the directory was removed).
      return;
    }
    if stop.load(std::sync::atomic::Ordering::Acquire) {
      return;
    }
    let Some(file) = event.file_name().and_then(|n| n.to_str().ok()) else {
      continue;
    };
    if let Some(stem) = file.strip_suffix(HOLD_SUFFIX) {
      let name = stems.map().get(stem).cloned();
      if let Some(name) = name {
        hub.wake(&name, None);
      }
    }
  }
}

/// Without inotify there is no watch: waiters poll (the manager's retry delay, at most 1 s).
#[cfg(not(target_os = "linux"))]
pub(crate) struct DirWatch;

#[cfg(not(target_os = "linux"))]
impl DirWatch {
  pub fn start(_dir: &Path, _stems: Stems, _hub: WakeHub) -> Result<DirWatch> {
    Err(LockError::backend(
      "file backend: no release notifications on this OS",
      std::io::Error::from(std::io::ErrorKind::Unsupported),
    ))
  }

  pub fn stop(&self) {}
}
