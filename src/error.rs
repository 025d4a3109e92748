//! Core errors as JS errors. Async functions can only reject with a message, so the message
//! carries the code, text and cause as JSON; index.js lifts it into a typed Error subclass.

use ferrolock_core::LockError;

/// Converts a core error into a napi error whose reason is `{"code","message","cause"}`.
pub fn to_napi(err: LockError) -> napi::Error {
  let payload = serde_json::json!({
    "code": err.code(),
    "message": err.to_string(),
    "cause": err.cause_message(),
  });
  napi::Error::from_reason(payload.to_string())
}

/// An `ERR_INVALID_ARG` for bad input caught in the binding.
pub fn invalid(message: impl Into<String>) -> napi::Error {
  to_napi(LockError::InvalidArg(message.into()))
}
