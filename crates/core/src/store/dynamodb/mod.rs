//! DynamoDB: one item per lock, kept alive by heartbeats that change its record version
//! number (rvn), the lease model of Amazon's DynamoDB Lock Client and cirello's dynamolock.
//!
//! Item attributes: the partition key (the lock name; plus a fixed sort key when the table
//! has one), `owner`, `recordVersionNumber` (random per acquisition and per heartbeat),
//! `leaseDuration` (ms), `fence`, `token` (the acquisition's own id, removed on release),
//! `isReleased`, optional `data` (S or B), an optional TTL attribute (epoch seconds, for
//! DynamoDB's own cleanup), and any additional attributes the caller asked for.
//!
//! Takeover never compares clocks of different hosts: a waiter remembers the rvn it saw and
//! when it saw it, on its own monotonic clock. Only once the same rvn has been there for a
//! whole lease does it write, conditional on that rvn; a heartbeat in between changes the rvn
//! and the write fails. That observation is the waiter's own, kept by the manager's attempt
//! loop (`crate::takeover`): this store reports the holder's rvn with a busy answer
//! (`try_acquire_over`) and writes over the rvn it is told to; `inspect` only reads.
//!
//! Every operation is one request: acquire is one conditional `UpdateItem` that also
//! increments the fence and returns it; a heartbeat is one conditional `UpdateItem`; a release
//! is one conditional `UpdateItem` (or `DeleteItem`). A contended attempt that failed reads
//! the holder from the failed write itself where the server returns it, with a `GetItem`
//! otherwise. The SDK's own retries are off: retrying is the manager's job.
//!
//! The files of this folder, one concept each:
//! - `options.rs`: where the table is and how to reach it, checked before any request;
//! - `sdk.rs`: the AWS SDK client (native HTTP, or through the caller's client object);
//! - `http.rs`: the caller's client object as the SDK's HTTP client (the transport seam);
//! - `errors.rs`: SDK failures as `LockError`s, retryable or not, with no secret in them;
//! - `table.rs`: creating and deleting the lock table;
//! - `expr.rs`: update and condition expressions with placeholders;
//! - `codec.rs`: attribute values to and from ferrolock's types and JSON;
//! - `record.rs`: `get`, a record as stored, with this client's view of its expiry;
//! - `items.rs`, `wire.rs`: plain item operations in DynamoDB's wire JSON (the dynamo-lock
//!   drop-in's own client);
//! - `store.rs`: the `LockStore` operations.

mod codec;
mod errors;
mod expr;
mod http;
mod items;
mod options;
mod record;
mod sdk;
mod store;
mod table;
mod wire;

pub use http::DynamoClientObject;
pub use items::{ItemError, PutCondition};
pub use options::{check_table_name, Billing, DynamoOptions, StaticCredentials, TableOptions};
pub use record::Record;
pub use store::DynamoStore;

const OWNER: &str = "owner";
const RVN: &str = "recordVersionNumber";
const LEASE: &str = "leaseDuration";
const FENCE: &str = "fence";
const TOKEN: &str = "token";
const RELEASED: &str = "isReleased";
const DATA: &str = "data";
/// Attribute names the store writes itself; none of the user's names may be one of these.
const RESERVED: [&str; 7] = [OWNER, RVN, LEASE, FENCE, TOKEN, RELEASED, DATA];
