//! ferrolock-core: distributed locks with leases, heartbeats and fencing tokens.
//!
//! A [`LockManager`] waits, retries and keeps leases alive over any [`LockStore`]; a store
//! speaks one backend's protocol ([`MemoryStore`], [`RedisStore`] for one server or a Redis Cluster,
//! [`RedlockStore`] for a quorum of independent masters, [`DynamoStore`], [`FileStore`] for the
//! processes of one host).

pub mod client;
pub mod error;
pub mod lease;
mod options;
pub mod redact;
mod renewer;
pub mod store;
mod takeover;
pub mod transport;
pub mod watchdog;

pub use client::{AcquireOptions, LockManager, Stats, Wait};
pub use error::{LockError, Result};
pub use lease::{
  Acquire, AcquireExtras, AcquireRequest, Attempt, Grant, Holder, LockInfo, Payload, ReleaseOptions,
};
pub use store::bounded::DEFAULT_REQUEST_TIMEOUT;
pub use store::dynamodb::{
  Billing, DynamoClientObject, DynamoOptions, DynamoStore, ItemError, PutCondition, Record,
  StaticCredentials, TableOptions,
};
pub use store::file::{FileOptions, FileStore};
pub use store::memory::MemoryStore;
pub use store::redis::{RedisOptions, RedisStore};
pub use store::redlock::{RedlockOptions, RedlockStore, RestartQuarantine};
pub use store::wall_clock::{SystemClock, WallClock};
pub use store::{LockStore, WakeHub, Watch};
pub use transport::{
  BoxFuture, CommandTransport, Original, Push, PushSink, RedisClientObject, Reply,
};
pub use watchdog::{EventSink, LeaseEvent, Lock, LostReason, TaggedSink};
