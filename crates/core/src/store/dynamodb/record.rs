//! `get`: a lock record as stored, released or not, with this client's view of its expiry.
//!
//! That view is the one state the store keeps: the versions its `get` calls saw, so that a
//! client polling `get` on a dead holder's record learns it expired (cirello's `Get`). Takeover
//! does not read it (the manager's attempt loop keeps its own), and `inspect` leaves it alone.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::codec::{bool_attr, data_attr, lease_attr, n_attr, s_attr, to_json};
use super::{DynamoStore, FENCE, OWNER, RELEASED, RESERVED, RVN};
use crate::error::Result;
use crate::lease::Payload;
use crate::takeover::Sighting;

/// How many records' versions `get` remembers.
const SEEN_CAP: usize = 4096;
/// Forget a sighting this long after it became ripe.
const SEEN_KEEP: Duration = Duration::from_secs(60);

/// A lock record as stored, released or not (`get`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
  pub owner: String,
  pub fence: u64,
  pub data: Option<Payload>,
  /// The holder's lease length.
  pub lease: Duration,
  pub released: bool,
  /// This store's `get` calls have seen the same rvn for a whole lease: the holder stopped
  /// heartbeating.
  pub expired: bool,
  pub record_version: String,
  /// Attributes other than the store's own, as JSON.
  pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// The versions `get` saw, per name.
#[derive(Default)]
pub(super) struct Seen(Mutex<HashMap<String, Sighting>>);

impl Seen {
  fn map(&self) -> MutexGuard<'_, HashMap<String, Sighting>> {
    // A poisoned map is still a valid map: the holder panicked between complete updates.
    self.0.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// Records the version of a held record, just read; returns the time left before it counts
  /// as expired.
  fn see(&self, name: &str, version: &str, lease: Duration) -> Duration {
    let mut seen = self.map();
    if let Some(s) = seen.get_mut(name) {
      return s.update(version, lease);
    }
    if seen.len() >= SEEN_CAP {
      seen.retain(|_, s| s.waited() < s.lease() + SEEN_KEEP);
      if seen.len() >= SEEN_CAP {
        // Still full: forget one (that name's clock merely starts again when it is looked at).
        if let Some(k) = seen.keys().next().cloned() {
          seen.remove(&k);
        }
      }
    }
    let s = Sighting::new(version, lease);
    let left = s.left();
    seen.insert(name.to_owned(), s);
    left
  }

  pub(super) fn clear(&self) {
    self.map().clear();
  }
}

impl DynamoStore {
  /// Reads a record including released ones, with this client's view of its expiry.
  pub async fn get(&self, name: &str) -> Result<Option<Record>> {
    let Some(item) = self.read(name).await? else {
      return Ok(None);
    };
    let released = bool_attr(&item, RELEASED);
    let rvn = s_attr(&item, RVN).unwrap_or_default();
    let lease = lease_attr(&item);
    let expired = if released {
      false
    } else {
      self.seen.see(name, &rvn, lease).is_zero()
    };
    let mut own: Vec<&str> = RESERVED.to_vec();
    own.push(&self.opts.partition_key);
    if let Some((sk, _)) = &self.opts.sort_key {
      own.push(sk);
    }
    if let Some(ttl) = &self.opts.ttl_attribute {
      own.push(ttl);
    }
    let attributes = item
      .iter()
      .filter(|(k, _)| !own.contains(&k.as_str()))
      .map(|(k, v)| (k.clone(), to_json(v)))
      .collect();
    Ok(Some(Record {
      owner: s_attr(&item, OWNER).unwrap_or_default(),
      fence: n_attr(&item, FENCE),
      data: data_attr(&item),
      lease,
      released,
      expired,
      record_version: rvn,
      attributes,
    }))
  }
}
