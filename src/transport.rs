//! The transport seam on the JS side: a caller's client object, reached through a thread-safe
//! JS function that index.js builds around it (the function calls the object's own methods at
//! call time). Registered here by number, then named in the store options.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrolock_core::transport::record_original;
use ferrolock_core::{BoxFuture, CommandTransport, Original, Push, PushSink, Reply};
use napi::bindgen_prelude::{FromNapiValue, Function, Promise, ToNapiValue, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Status};
use napi_derive::napi;

use crate::error::invalid;

/// `send(args) -> Promise<reply>`: the reply as the client gave it (null, an integer, a string or
/// Buffer, an array of those), or a rejection with the client's error. Weak: it does not keep the
/// process alive (the caller's client does, while it has work).
type SendFn = ThreadsafeFunction<Vec<String>, Promise<JsReply>, Vec<String>, Status, false, true>;

/// A reply read straight from its JS value, on the JS thread (no JSON in between). A DynamoDB
/// object's service error answers `{ answer, original }`: the HTTP answer's JSON text, and the
/// client's error object behind it (kept as the failure's cause).
pub struct JsReply(Reply, Option<napi::Error>);

impl FromNapiValue for JsReply {
  unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
    let mut kind = 0;
    check(sys::napi_typeof(env, value, &mut kind))?;
    if kind == sys::ValueType::napi_object {
      let (mut is_array, mut is_buffer) = (false, false);
      check(sys::napi_is_array(env, value, &mut is_array))?;
      check(sys::napi_is_buffer(env, value, &mut is_buffer))?;
      if !is_array && !is_buffer {
        let mut answer = std::ptr::null_mut();
        check(sys::napi_get_named_property(
          env,
          value,
          c"answer".as_ptr(),
          &mut answer,
        ))?;
        let mut original = std::ptr::null_mut();
        check(sys::napi_get_named_property(
          env,
          value,
          c"original".as_ptr(),
          &mut original,
        ))?;
        let mut original_kind = 0;
        check(sys::napi_typeof(env, original, &mut original_kind))?;
        // Any other plain object is no service error: read as a reply (and refused there).
        if original_kind == sys::ValueType::napi_undefined {
          return reply(env, value, 0).map(|r| JsReply(r, None));
        }
        let original = Unknown::from_raw_unchecked(env, original);
        return Ok(JsReply(
          reply(env, answer, 0)?,
          Some(napi::Error::from_unknown_without_coercion(original)),
        ));
      }
    }
    reply(env, value, 0).map(|r| JsReply(r, None))
  }
}

/// The caller's error object, handed back to JS: the very object, when read on its own thread.
pub struct JsOriginal(napi::Error);

impl ToNapiValue for JsOriginal {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    napi::Error::to_napi_value(env, val.0)
  }
}

/// The JS error object behind `original` (recorded by a transport of this binding), if any.
pub fn js_original(original: Option<&Original>) -> Option<JsOriginal> {
  let err = original?.value().downcast_ref::<napi::Error>()?;
  err.try_clone().ok().map(JsOriginal)
}

/// Records a client error for the operation that is running (see `ferrolock_core::transport`).
fn record(err: napi::Error) -> String {
  let text = err.reason.clone();
  record_original(Original::new(text.clone(), Arc::new(err)));
  text
}

/// How deep replies nest at most (ours: two levels).
const MAX_DEPTH: u32 = 8;

fn check(status: sys::napi_status) -> napi::Result<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(napi::Error::from_reason(
      "the client object gave an unreadable reply",
    ))
  }
}

/// Reads one reply value. Anything else than a reply shape (an object, an error inside an
/// array) reads as nil, as it did through JSON.
unsafe fn reply(env: sys::napi_env, value: sys::napi_value, depth: u32) -> napi::Result<Reply> {
  let mut kind = 0;
  check(sys::napi_typeof(env, value, &mut kind))?;
  Ok(match kind {
    sys::ValueType::napi_string => Reply::Bytes(String::from_napi_value(env, value)?.into_bytes()),
    sys::ValueType::napi_number => {
      let n = f64::from_napi_value(env, value)?;
      if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Reply::Int(n as i64)
      } else {
        Reply::Bytes(n.to_string().into_bytes())
      }
    }
    sys::ValueType::napi_boolean => Reply::Int(bool::from_napi_value(env, value)?.into()),
    sys::ValueType::napi_object => {
      let mut is = false;
      check(sys::napi_is_buffer(env, value, &mut is))?;
      if is {
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        check(sys::napi_get_buffer_info(env, value, &mut data, &mut len))?;
        if data.is_null() || len == 0 {
          return Ok(Reply::Bytes(Vec::new()));
        }
        // SAFETY: napi hands out the Buffer's own bytes, alive while `value` is (this call).
        return Ok(Reply::Bytes(
          std::slice::from_raw_parts(data as *const u8, len).to_vec(),
        ));
      }
      check(sys::napi_is_array(env, value, &mut is))?;
      if !is || depth >= MAX_DEPTH {
        return Ok(Reply::Nil);
      }
      let mut len = 0;
      check(sys::napi_get_array_length(env, value, &mut len))?;
      let mut items = Vec::with_capacity(len as usize);
      for i in 0..len {
        let mut item = std::ptr::null_mut();
        check(sys::napi_get_element(env, value, i, &mut item))?;
        items.push(reply(env, item, depth + 1)?);
      }
      Reply::Array(items)
    }
    _ => Reply::Nil,
  })
}

/// `control([op, channel]) -> Promise<boolean>`: the subscriber of a client object (`subscribe`,
/// `unsubscribe`, `close`); its messages come back through `transportPush`. Weak, as `send`.
type ControlFn = ThreadsafeFunction<Vec<String>, Promise<bool>, Vec<String>, Status, false, true>;

/// One client object's send function, and its subscriber's control function if it has one.
pub struct JsTransport {
  id: u32,
  send: Arc<SendFn>,
  control: Option<Arc<ControlFn>>,
}

impl JsTransport {
  /// Runs `op` on the subscriber; false when there is none or it failed.
  fn control(&self, op: &str, channel: String) -> BoxFuture<bool> {
    let control = self.control.clone();
    let args = vec![op.to_owned(), channel];
    Box::pin(async move {
      let Some(control) = control else {
        return false;
      };
      match control.call_async(args).await {
        Ok(promise) => promise.await.unwrap_or(false),
        Err(_) => false,
      }
    })
  }
}

/// The push sinks of the transports whose store listens, by transport number: `transportPush`
/// (called on the JS thread by the subscriber) looks its sink up here.
fn sinks() -> &'static Mutex<HashMap<u32, PushSink>> {
  static SINKS: OnceLock<Mutex<HashMap<u32, PushSink>>> = OnceLock::new();
  SINKS.get_or_init(Default::default)
}

/// Delivers a message of transport `id`'s subscriber: `channel` and `payload`, or (with no
/// channel) the news that the subscriber reconnected and may have missed messages.
#[napi]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn transport_push(id: u32, channel: Option<String>, payload: Option<String>) {
  let sink = sinks()
    .lock()
    .unwrap_or_else(|e| e.into_inner())
    .get(&id)
    .cloned();
  if let Some(sink) = sink {
    sink(match channel {
      Some(channel) => Push::Message {
        channel,
        payload: payload.unwrap_or_default(),
      },
      None => Push::Reconnected,
    });
  }
}

impl Drop for JsTransport {
  fn drop(&mut self) {
    sinks()
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .remove(&self.id);
    // A store dropped without close(): its subscriber goes too.
    if let Some(control) = &self.control {
      control.call(
        vec!["close".to_owned(), String::new()],
        ThreadsafeFunctionCallMode::NonBlocking,
      );
    }
  }
}

impl CommandTransport for JsTransport {
  fn call(&self, args: Vec<String>) -> BoxFuture<std::result::Result<Reply, String>> {
    let send = self.send.clone();
    Box::pin(async move {
      let promise = send.call_async(args).await.map_err(|e| e.reason)?;
      match promise.await {
        Ok(JsReply(reply, original)) => {
          if let Some(original) = original {
            record(original);
          }
          Ok(reply)
        }
        // A rejection: the client's error. Its message (or the rejected string) goes on as the
        // failure's text; the error itself is kept for the operation, as its cause.
        Err(err) => Err(record(err)),
      }
    })
  }

  fn pushes(&self) -> bool {
    self.control.is_some()
  }

  fn listen(&self, sink: PushSink) {
    sinks()
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .insert(self.id, sink);
  }

  fn subscribe(&self, channel: String) -> BoxFuture<bool> {
    self.control("subscribe", channel)
  }

  fn unsubscribe(&self, channel: String) -> BoxFuture<()> {
    let done = self.control("unsubscribe", channel);
    Box::pin(async move {
      done.await;
    })
  }

  fn close(&self) -> BoxFuture<()> {
    sinks()
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .remove(&self.id);
    let done = self.control("close", String::new());
    Box::pin(async move {
      done.await;
    })
  }
}

fn registry() -> &'static Mutex<HashMap<u32, Arc<JsTransport>>> {
  static REGISTRY: OnceLock<Mutex<HashMap<u32, Arc<JsTransport>>>> = OnceLock::new();
  REGISTRY.get_or_init(Default::default)
}

/// Registers `send` for a client object, with `control` when the object can subscribe (the
/// release notifications of its waiters); the returned number goes into the store options
/// (`client`), which take it out of the registry, and names the transport in `transportPush`.
#[napi(
  ts_args_type = "send: (args: Array<string>) => Promise<unknown>, control?: ((args: Array<string>) => Promise<boolean>) | undefined | null"
)]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn register_transport(
  send: Function<Vec<String>, Promise<JsReply>>,
  control: Option<Function<Vec<String>, Promise<bool>>>,
) -> napi::Result<u32> {
  static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
  let send = send
    .build_threadsafe_function::<Vec<String>>()
    .callee_handled::<false>()
    .weak::<true>()
    .build()?;
  let control = match control {
    Some(control) => Some(Arc::new(
      control
        .build_threadsafe_function::<Vec<String>>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?,
    )),
    None => None,
  };
  let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
  registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
    id,
    Arc::new(JsTransport {
      id,
      send: Arc::new(send),
      control,
    }),
  );
  Ok(id)
}

/// Takes transport `id` out of the registry.
pub fn take_transport(id: u32) -> napi::Result<Arc<JsTransport>> {
  registry()
    .lock()
    .unwrap_or_else(|e| e.into_inner())
    .remove(&id)
    .ok_or_else(|| invalid("unknown client object transport"))
}
