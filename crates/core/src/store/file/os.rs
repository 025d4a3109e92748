//! The operating system side: the lock directory, kernel file locks (flock, which belong to
//! an open file description, so two opens in one process exclude each other as two processes
//! do), the clock every process on the host shares, atomic record writes, and errors that say
//! what is wrong with the directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::error::{LockError, Result};

/// A backend error about the lock directory, naming what went wrong in words a user can act
/// on. The path is the user's own setting, so it is safe to show. What a retry cannot fix
/// (not a directory, no permission, read-only, full) is refused at once, so a waiting acquire
/// rejects instead of retrying into its deadline; other I/O errors may pass and are retried.
pub(crate) fn io_error(what: &str, path: &Path, err: std::io::Error) -> LockError {
  let (why, lasting) = match err.kind() {
    ErrorKind::NotADirectory => ("a path component is not a directory", true),
    ErrorKind::PermissionDenied => ("permission denied", true),
    ErrorKind::ReadOnlyFilesystem => ("the file system is read-only", true),
    ErrorKind::StorageFull | ErrorKind::QuotaExceeded => ("no space left on the device", true),
    ErrorKind::NotFound => ("it does not exist", false),
    _ => ("I/O error", false),
  };
  let message = format!("file backend: cannot {what} {}: {why}", path.display());
  if lasting {
    LockError::Rejected {
      message,
      source: Some(Box::new(err)),
    }
  } else {
    LockError::backend(message, err)
  }
}

/// Creates the lock directory if it is missing (with `mode`), and checks that it is a
/// directory we may write to, on a local file system.
pub(crate) fn prepare_dir(dir: &Path, mode: u32) -> Result<()> {
  match std::fs::metadata(dir) {
    Ok(meta) if !meta.is_dir() => {
      return Err(LockError::Rejected {
        message: format!("file backend: {} is not a directory", dir.display()),
        source: None,
      })
    }
    Ok(_) => {}
    Err(err) if err.kind() == ErrorKind::NotFound => {
      let made = DirBuilder::new().recursive(true).mode(mode).create(dir);
      made.map_err(|e| io_error("create the lock directory", dir, e))?;
      // The umask may have narrowed the mode: set exactly what was asked for.
      std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("set the mode of the lock directory", dir, e))?;
    }
    Err(err) => return Err(io_error("open the lock directory", dir, err)),
  }
  // Root passes permission checks but not a read-only mount: access(2) reports both.
  rustix::fs::access(
    dir,
    rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
  )
  .map_err(|e| io_error("write to the lock directory", dir, e.into()))?;
  if let Some(fs) = network_fs(dir) {
    return Err(LockError::Rejected {
      message: format!(
        "file backend: {} is on {fs}, a network file system; file locks there are not reliable, use a local directory",
        dir.display()
      ),
      source: None,
    });
  }
  Ok(())
}

/// The name of the network file system `dir` is on, where the OS tells (Linux statfs).
#[cfg(target_os = "linux")]
fn network_fs(dir: &Path) -> Option<&'static str> {
  let st = rustix::fs::statfs(dir).ok()?;
  // Magic numbers from linux/magic.h; f_type's width differs between architectures.
  #[allow(clippy::unnecessary_cast)]
  match st.f_type as u64 & 0xffff_ffff {
    0x6969 => Some("NFS"),
    0x517b => Some("SMB"),
    0xff53_4d42 => Some("CIFS"),
    0xfe53_4d42 => Some("SMB2"),
    0x6b41_4653 => Some("AFS"),
    0x0102_1997 => Some("9P"),
    _ => None,
  }
}

#[cfg(not(target_os = "linux"))]
fn network_fs(_dir: &Path) -> Option<&'static str> {
  None
}

/// Milliseconds on a clock all processes of this host share and nobody sets: the time since
/// boot (Linux counts suspend too). Leases are compared on it, never on the wall clock.
pub(crate) fn now_ms() -> u64 {
  #[cfg(any(target_os = "linux", target_os = "android"))]
  let id = rustix::time::ClockId::Boottime;
  #[cfg(not(any(target_os = "linux", target_os = "android")))]
  let id = rustix::time::ClockId::Monotonic;
  let t = rustix::time::clock_gettime(id);
  u64::try_from(t.tv_sec).unwrap_or(0) * 1000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000_000
}

/// Opens (creating) a file of the lock directory for reading and writing, mode 0600.
pub(crate) fn open_rw(path: &Path, truncate: bool) -> std::io::Result<File> {
  OpenOptions::new()
    .read(true)
    .write(true)
    .create(true)
    .truncate(truncate)
    .mode(0o600)
    .open(path)
}

/// Opens (creating) a record file like `open_rw`, without access-time updates where the OS
/// allows it (Linux `O_NOATIME`, for files we own): every operation reads the record right
/// after the last one wrote it, so with `relatime` each read would otherwise write a new
/// access time into the inode (and the file system journal). A file of another user refuses
/// the flag (EPERM): it is then opened plainly.
pub(crate) fn open_record(path: &Path) -> std::io::Result<File> {
  #[cfg(any(target_os = "linux", target_os = "android"))]
  {
    // O_NOATIME is a small positive flag; the cast only changes the type.
    #[allow(clippy::cast_possible_wrap)]
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    let opened = OpenOptions::new()
      .read(true)
      .write(true)
      .create(true)
      .mode(0o600)
      .custom_flags(noatime)
      .open(path);
    match opened {
      Err(e) if e.kind() == ErrorKind::PermissionDenied => {}
      other => return other,
    }
  }
  open_rw(path, false)
}

/// Link count and size of the open `file`. On Linux only these two are asked for: a stat
/// that asks for the file's times marks them as seen (multigrain timestamps, Linux 6.13),
/// after which the next write must take a fine-grained time and dirty the inode, so every
/// write of the record would update its inode (and the file system journal) instead of once
/// per clock tick.
pub(crate) fn links_and_len(file: &File, path: &Path) -> Result<(u64, u64)> {
  #[cfg(any(target_os = "linux", target_os = "android"))]
  {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    match statx(
      file,
      "",
      AtFlags::EMPTY_PATH,
      StatxFlags::NLINK | StatxFlags::SIZE,
    ) {
      Ok(st) => return Ok((u64::from(st.stx_nlink), st.stx_size)),
      // A kernel or sandbox without statx: fstat below.
      Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {}
      Err(e) => return Err(io_error("stat", path, e.into())),
    }
  }
  let st = rustix::fs::fstat(file).map_err(|e| io_error("stat", path, e.into()))?;
  // st_nlink and st_size are of different widths between platforms.
  #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
  Ok((
    u64::from(st.st_nlink as u32),
    u64::try_from(st.st_size).unwrap_or(0),
  ))
}

/// Takes the exclusive state lock of one name on its open `.lk` file, held while its record
/// is read and rewritten. Kept for microseconds, so waiting for it is a short back-off,
/// bounded: a process stopped inside this window (SIGSTOP) must not hang every other one.
pub(crate) fn lock_state(file: &File, path: &Path) -> Result<()> {
  let started = Instant::now();
  let mut pause = Duration::from_micros(50);
  loop {
    if try_lock(file, path)? {
      return Ok(());
    }
    if started.elapsed() > STATE_WAIT {
      return Err(LockError::backend(
        format!(
          "file backend: the state lock {} stayed taken for {} s (a stopped process?)",
          path.display(),
          STATE_WAIT.as_secs()
        ),
        std::io::Error::from(ErrorKind::TimedOut),
      ));
    }
    std::thread::sleep(pause);
    pause = (pause * 2).min(Duration::from_millis(2));
  }
}

/// One attempt at the exclusive kernel lock of the open `file`: false when another open file
/// description has it.
pub(crate) fn try_lock(file: &File, path: &Path) -> Result<bool> {
  match flock(file, FlockOperation::NonBlockingLockExclusive) {
    Ok(()) => Ok(true),
    Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => Ok(false),
    Err(e) => Err(io_error("lock", path, e.into())),
  }
}

const STATE_WAIT: Duration = Duration::from_secs(5);

/// Width of the fence copy in a holder file: any u64 in decimal, zero-padded, so a rewrite
/// covers the previous text and never needs a truncate.
const FENCE_WIDTH: usize = 20;

/// Writes `copy` (at least every fence granted so far) into the locked holder file.
pub(crate) fn write_fence(file: &File, path: &Path, copy: u64) -> Result<()> {
  let text = format!("{copy:0FENCE_WIDTH$}");
  file
    .write_all_at(text.as_bytes(), 0)
    .map_err(|e| io_error("write", path, e))
}

/// A fresh holder file, locked by us, with `copy` in it, renamed over `path` (a stopped
/// holder may keep its lock on the old one: it then locks a file nobody looks at any more).
/// Under the name's state lock, so nobody else makes or replaces one meanwhile.
pub(crate) fn new_hold(path: &Path, tmp: &Path, copy: u64) -> Result<File> {
  let made = (|| {
    let file = open_rw(tmp, true)?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)?;
    file.write_all_at(format!("{copy:0FENCE_WIDTH$}").as_bytes(), 0)?;
    Ok::<File, std::io::Error>(file)
  })();
  let file = match made {
    Ok(file) => file,
    Err(e) => {
      let _ = std::fs::remove_file(tmp);
      return Err(io_error("write", tmp, e));
    }
  };
  std::fs::rename(tmp, path).map_err(|e| io_error("rename", tmp, e))?;
  Ok(file)
}

/// The fence a holder file keeps, if it is readable.
pub(crate) fn hold_fence(path: &Path) -> Option<u64> {
  let mut text = String::new();
  File::open(path).ok()?.read_to_string(&mut text).ok()?;
  text.trim().parse().ok()
}

/// Replaces `path` with `bytes` atomically: write beside it, optionally fsync, rename. A full
/// disk or a crash mid-write leaves the old file whole.
pub(crate) fn write_atomic(
  path: &Path,
  tmp: &Path,
  bytes: &[u8],
  sync: bool,
  before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<()> {
  let written = (|| {
    let mut file = open_rw(tmp, true)?;
    file.write_all(bytes)?;
    if sync {
      file.sync_all()?;
    }
    Ok(())
  })();
  if let Err(e) = written.and_then(|()| before_rename()) {
    let _ = std::fs::remove_file(tmp);
    return Err(io_error("write", tmp, e));
  }
  std::fs::rename(tmp, path).map_err(|e| io_error("rename", tmp, e))?;
  if sync {
    sync_parent(path)?;
  }
  Ok(())
}

/// fsyncs the directory holding `path` (a create or rename in it is then on disk).
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
  if let Some(dir) = path.parent() {
    File::open(dir)
      .and_then(|d| d.sync_all())
      .map_err(|e| io_error("sync", dir, e))?;
  }
  Ok(())
}

/// Whether `file` (open) is the file now at `path`: a holder whose lease ended may keep a
/// locked holder file that the next holder has renamed a fresh one over.
pub(crate) fn is_file_at(file: &File, path: &Path) -> Result<bool> {
  use std::os::unix::fs::MetadataExt;
  let ours = file.metadata().map_err(|e| io_error("stat", path, e))?;
  match std::fs::metadata(path) {
    Ok(now) => Ok(ours.dev() == now.dev() && ours.ino() == now.ino()),
    Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
    Err(e) => Err(io_error("stat", path, e)),
  }
}

/// Makes waiters in other processes look at `path`'s name again: closing a file opened for
/// writing is what their inotify watch reports.
pub(crate) fn ping(path: &Path) {
  let _ = OpenOptions::new().write(true).open(path);
}
