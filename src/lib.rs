//! N-API binding of ferrolock-core: converts JS values to core types and back. No lock logic.

mod client;
mod completion;
mod dynamo_lock_db;
mod dynamo_options;
mod error;
mod file_options;
mod lock;
mod options;
mod runtime;
mod transport;
