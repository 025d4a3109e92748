//! One error type for the whole core, with a stable code per variant.

use std::error::Error as StdError;

/// The boxed cause of a backend failure (the driver's own error).
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in the core. Expected outcomes (a held lock, a release of a
/// lock that is already gone) are values, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
  /// Bad input, detected before any I/O. The message names the argument.
  #[error("{0}")]
  InvalidArg(String),
  /// The lock could not be acquired before the deadline or the retries ran out.
  #[error("lock \"{name}\" was not acquired: {reason}")]
  NotAcquired { name: String, reason: String },
  /// The lock was lost (expired, deleted or taken by another owner).
  #[error("lock \"{0}\" was lost")]
  Lost(String),
  /// The backend could not be reached or answered with an error.
  #[error("{message}")]
  Backend {
    message: String,
    #[source]
    source: Option<Cause>,
  },
  /// The backend refused the request in a way a retry cannot fix (credentials,
  /// permissions, a request the backend considers invalid).
  #[error("{message}")]
  Rejected {
    message: String,
    #[source]
    source: Option<Cause>,
  },
  /// The DynamoDB table does not exist (or is not visible with these credentials).
  #[error("DynamoDB table \"{0}\" was not found")]
  TableNotFound(String),
  /// The client was closed.
  #[error("the lock client is closed")]
  Closed,
  /// The caller cancelled the operation (AbortSignal).
  #[error("acquiring lock \"{0}\" was aborted")]
  Aborted(String),
}

impl LockError {
  /// The stable error code shown to JavaScript as `err.code`.
  pub fn code(&self) -> &'static str {
    match self {
      LockError::InvalidArg(_) => "ERR_INVALID_ARG",
      LockError::NotAcquired { .. } => "ERR_LOCK_NOT_ACQUIRED",
      LockError::Lost(_) => "ERR_LOCK_LOST",
      LockError::Backend { .. } | LockError::Rejected { .. } => "ERR_BACKEND_UNAVAILABLE",
      LockError::TableNotFound(_) => "ERR_TABLE_NOT_FOUND",
      LockError::Closed => "ERR_CLIENT_CLOSED",
      LockError::Aborted(_) => "ERR_ABORTED",
    }
  }

  /// Whether trying again later may succeed (backend faults only).
  pub fn is_retryable(&self) -> bool {
    matches!(self, LockError::Backend { .. })
  }

  /// A backend error with a message and its cause.
  pub fn backend(message: impl Into<String>, source: impl Into<Cause>) -> Self {
    LockError::Backend {
      message: message.into(),
      source: Some(source.into()),
    }
  }

  /// The message of the underlying cause, if any.
  pub fn cause_message(&self) -> Option<String> {
    self.source().map(|c| c.to_string())
  }
}

/// Result alias used across the core.
pub type Result<T, E = LockError> = std::result::Result<T, E>;
