//! The file backend where it is not built yet (Windows: planned, over LockFileEx; see
//! docs/file.md). Its options exist so that the binding compiles; making a store fails.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, LockInfo};
use crate::store::{LockStore, Watch};

/// Settings of a file store (see the Unix implementation).
#[derive(Debug, Clone)]
pub struct FileOptions {
  pub dir: PathBuf,
  pub mode: u32,
  pub fsync: bool,
}

impl FileOptions {
  pub fn new(dir: impl Into<PathBuf>) -> Self {
    FileOptions {
      dir: dir.into(),
      mode: 0o700,
      fsync: false,
    }
  }
}

/// No file store on this OS: `new` always fails, so no value of this type exists.
pub struct FileStore {
  never: std::convert::Infallible,
}

impl FileStore {
  pub fn new(_opts: FileOptions) -> Result<Self> {
    Err(LockError::Rejected {
      message: "the file backend is not available on this OS yet (Linux and macOS only)".into(),
      source: None,
    })
  }
}

#[async_trait]
impl LockStore for FileStore {
  fn kind(&self) -> &'static str {
    "file"
  }

  async fn try_acquire(&self, _name: &str, _req: &AcquireRequest<'_>) -> Result<Acquire> {
    match self.never {}
  }

  async fn extend(&self, _name: &str, _token: &str, _ttl: Duration) -> Result<bool> {
    match self.never {}
  }

  async fn release(&self, _name: &str, _token: &str) -> Result<bool> {
    match self.never {}
  }

  async fn inspect(&self, _name: &str) -> Result<Option<LockInfo>> {
    match self.never {}
  }

  async fn leave_queue(&self, _name: &str, _token: &str) -> Result<()> {
    match self.never {}
  }

  async fn watch(&self, _name: &str) -> Result<Option<Watch>> {
    match self.never {}
  }

  async fn close(&self) {
    match self.never {}
  }
}
