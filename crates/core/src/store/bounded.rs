//! A store whose every request is bounded by the client's `requestTimeout`: a server that
//! accepts a request and never answers fails it with a retryable backend error after that long,
//! whatever the driver's own timeouts are. The request future is dropped then; its outcome is
//! unknown, as after any timeout (the manager treats an acquire cut so as uncertain).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{LockError, Result};
use crate::lease::{Acquire, AcquireRequest, Attempt, LockInfo, Payload, ReleaseOptions};
use crate::store::{LockStore, Owned, Renewal, Watch};

/// The default bound of one request as the caller sees it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The error of a request that did not finish in time.
pub(crate) fn timed_out(kind: &str, what: &str, limit: Duration) -> LockError {
  LockError::Backend {
    message: format!(
      "{kind}: {what} did not complete within {} ms (requestTimeout)",
      limit.as_millis()
    ),
    source: None,
  }
}

/// `inner` with a timeout on every request.
pub struct Bounded {
  inner: Arc<dyn LockStore>,
  limit: Duration,
}

impl Bounded {
  pub fn new(inner: Arc<dyn LockStore>, limit: Duration) -> Self {
    Bounded { inner, limit }
  }

  /// The bound of one request.
  pub fn limit(&self) -> Duration {
    self.limit
  }

  async fn run<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(self.limit, fut).await {
      Ok(done) => done,
      Err(_) => Err(timed_out(self.inner.kind(), what, self.limit)),
    }
  }
}

#[async_trait]
impl LockStore for Bounded {
  fn kind(&self) -> &'static str {
    self.inner.kind()
  }

  async fn try_acquire(&self, name: &str, req: &AcquireRequest<'_>) -> Result<Acquire> {
    self.run("acquire", self.inner.try_acquire(name, req)).await
  }

  async fn try_acquire_over(
    &self,
    name: &str,
    req: &AcquireRequest<'_>,
    take_over: Option<&str>,
  ) -> Result<Attempt> {
    let attempt = self.inner.try_acquire_over(name, req, take_over);
    self.run("acquire", attempt).await
  }

  async fn extend(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
    self
      .run("extend", self.inner.extend(name, token, ttl))
      .await
  }

  async fn release(&self, name: &str, token: &str) -> Result<bool> {
    self.run("release", self.inner.release(name, token)).await
  }

  /// The whole batch within one request timeout (it is one round trip per server where the
  /// backend batches); a batch cut short fails every lock of it, each with the same error.
  async fn extend_many(&self, items: &[Renewal<'_>]) -> Vec<Result<bool>> {
    match tokio::time::timeout(self.limit, self.inner.extend_many(items)).await {
      Ok(done) => done,
      Err(_) => {
        let kind = self.inner.kind();
        let error = || Err(timed_out(kind, "extend", self.limit));
        items.iter().map(|_| error()).collect()
      }
    }
  }

  /// The whole batch within one request timeout, as `extend_many`.
  async fn release_many(&self, items: &[Owned<'_>]) -> Vec<Result<bool>> {
    match tokio::time::timeout(self.limit, self.inner.release_many(items)).await {
      Ok(done) => done,
      Err(_) => {
        let kind = self.inner.kind();
        let error = || Err(timed_out(kind, "release", self.limit));
        items.iter().map(|_| error()).collect()
      }
    }
  }

  async fn extend_with(
    &self,
    name: &str,
    token: &str,
    ttl: Duration,
    data: Option<&Payload>,
  ) -> Result<bool> {
    let call = self.inner.extend_with(name, token, ttl, data);
    self.run("extend", call).await
  }

  async fn release_with(&self, name: &str, token: &str, opts: &ReleaseOptions) -> Result<bool> {
    let call = self.inner.release_with(name, token, opts);
    self.run("release", call).await
  }

  async fn inspect(&self, name: &str) -> Result<Option<LockInfo>> {
    self.run("inspect", self.inner.inspect(name)).await
  }

  async fn leave_queue(&self, name: &str, token: &str) -> Result<()> {
    self
      .run("leave queue", self.inner.leave_queue(name, token))
      .await
  }

  async fn watch(&self, name: &str) -> Result<Option<Watch>> {
    self.run("subscribe", self.inner.watch(name)).await
  }

  fn validity(&self, ttl: Duration) -> Duration {
    self.inner.validity(ttl)
  }

  fn fifo(&self) -> bool {
    self.inner.fifo()
  }

  async fn close(&self) {
    // Closing only drops connections; bounded all the same, so close() always settles.
    let _ = tokio::time::timeout(self.limit, self.inner.close()).await;
  }

  fn watched(&self) -> usize {
    self.inner.watched()
  }

  fn try_acquire_now(&self, name: &str, req: &AcquireRequest<'_>) -> Option<Result<Acquire>> {
    self.inner.try_acquire_now(name, req)
  }

  fn release_now(&self, name: &str, token: &str) -> Option<Result<bool>> {
    self.inner.release_now(name, token)
  }
}
