//! The transport seam on the JS side: a caller's client object, reached through a thread-safe
//! JS function that index.js builds around it (the function calls the object's own methods at
//! call time). Registered here by number, then named in the store options.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrolock_core::{BoxFuture, CommandTransport};
use napi::bindgen_prelude::{Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;

use crate::error::invalid;

/// `send(args) -> Promise<string>`: the JSON `{"ok": reply}` or `{"err": "message"}`. Weak: it
/// does not keep the process alive (the caller's client does, while it has work).
type SendFn = ThreadsafeFunction<Vec<String>, Promise<String>, Vec<String>, Status, false, true>;

/// One client object's send function.
pub struct JsTransport {
  send: Arc<SendFn>,
}

impl CommandTransport for JsTransport {
  fn call(&self, args: Vec<String>) -> BoxFuture<std::result::Result<serde_json::Value, String>> {
    let send = self.send.clone();
    Box::pin(async move {
      let reply = match send.call_async(args).await {
        Ok(promise) => promise.await,
        Err(e) => Err(e),
      }
      .map_err(|e| format!("the client object's send failed: {}", e.reason))?;
      let mut reply: serde_json::Value = serde_json::from_str(&reply)
        .map_err(|_| "the client object's send gave no JSON reply".to_owned())?;
      if let Some(message) = reply.get("err") {
        return Err(message.as_str().unwrap_or("error").to_owned());
      }
      Ok(
        reply
          .get_mut("ok")
          .map(serde_json::Value::take)
          .unwrap_or_default(),
      )
    })
  }
}

fn registry() -> &'static Mutex<HashMap<u32, Arc<JsTransport>>> {
  static REGISTRY: OnceLock<Mutex<HashMap<u32, Arc<JsTransport>>>> = OnceLock::new();
  REGISTRY.get_or_init(Default::default)
}

/// Registers `send` for a client object; the returned number goes into the store options
/// (`client`), which take it out of the registry.
#[napi]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn register_transport(send: Function<Vec<String>, Promise<String>>) -> napi::Result<u32> {
  static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
  let tsfn = send
    .build_threadsafe_function::<Vec<String>>()
    .callee_handled::<false>()
    .weak::<true>()
    .build()?;
  let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
  registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
    id,
    Arc::new(JsTransport {
      send: Arc::new(tsfn),
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
