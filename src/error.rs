//! Core errors as JS errors. Async functions can only reject with a message, so the message
//! carries the code, text and cause as JSON; index.js lifts it into a typed Error subclass.

use ferrolock_core::LockError;

/// Converts a core error into a napi error whose reason is `{"code","message","cause"}`.
pub fn to_napi(err: LockError) -> napi::Error {
  let (message, cause) = texts(&err);
  let payload = serde_json::json!({
    "code": err.code(),
    "message": message,
    "cause": cause,
  });
  napi::Error::from_reason(payload.to_string())
}

/// An `ERR_INVALID_ARG` for bad input caught in the binding.
pub fn invalid(message: impl Into<String>) -> napi::Error {
  to_napi(LockError::InvalidArg(message.into()))
}

/// The message and cause of `err`; a backend's with every secret masked (servers and drivers
/// may echo credentials). Bad input is reported as given: its messages never hold a secret.
pub fn texts(err: &LockError) -> (String, Option<String>) {
  let (message, cause) = (err.to_string(), err.cause_message());
  if err.code() == "ERR_BACKEND_UNAVAILABLE" {
    let redact = ferrolock_core::redact::redact;
    return (redact(&message), cause.as_deref().map(redact));
  }
  (message, cause)
}

/// `text` with every secret masked, as the core masks its own messages: for the caller's own
/// client objects' errors, which reach JS without passing through the core.
#[napi_derive::napi(js_name = "redactSecrets")]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn redact_secrets(text: String) -> String {
  ferrolock_core::redact::redact(&text)
}

/// Masks `secret` (a password or key of a caller's client object) in every message from now on.
#[napi_derive::napi(js_name = "rememberSecret")]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn remember_secret(secret: String) {
  ferrolock_core::redact::remember(&secret);
}
