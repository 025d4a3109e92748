//! The transport seam on the JS side: a caller's client object, reached through a thread-safe
//! JS function that index.js builds around it (the function calls the object's own methods at
//! call time). Registered here by number, then named in the store options.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrolock_core::{BoxFuture, CommandTransport, Push, PushSink};
use napi::bindgen_prelude::{Function, Promise};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::error::invalid;

/// `send(args) -> Promise<string>`: the JSON `{"ok": reply}` or `{"err": "message"}`. Weak: it
/// does not keep the process alive (the caller's client does, while it has work).
type SendFn = ThreadsafeFunction<Vec<String>, Promise<String>, Vec<String>, Status, false, true>;

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
#[napi]
#[cfg_attr(test, allow(dead_code))] // called from JS only
pub fn register_transport(
  send: Function<Vec<String>, Promise<String>>,
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
