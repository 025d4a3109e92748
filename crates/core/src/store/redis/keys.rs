//! The key layout of one lock: the hash dist-lock reads, and companion keys that share its
//! Redis Cluster slot.

/// The Redis key names of one lock.
pub(super) struct Keys {
  pub(super) lock: String,
  pub(super) fence: String,
  pub(super) queue: String,
  pub(super) waiters: String,
  pub(super) channel: String,
}

/// The hash tag Redis Cluster would use for `key`: the text inside the first `{...}`, when
/// it is not empty.
pub(super) fn hash_tag(key: &str) -> Option<&str> {
  let open = key.find('{')?;
  let len = key[open + 1..].find('}')?;
  (len > 0).then(|| &key[open + 1..open + 1 + len])
}

/// The number of Redis Cluster hash slots.
pub(super) const SLOTS: u16 = 16_384;

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM: polynomial 0x1021, start 0) of its
/// hash tag, or of the whole key when it has none, modulo 16384 (the cluster specification).
pub(super) fn slot(key: &str) -> u16 {
  let hashed = hash_tag(key).unwrap_or(key);
  let mut crc: u16 = 0;
  for byte in hashed.bytes() {
    crc ^= u16::from(byte) << 8;
    for _ in 0..8 {
      crc = if crc & 0x8000 != 0 {
        (crc << 1) ^ 0x1021
      } else {
        crc << 1
      };
    }
  }
  crc % SLOTS
}

impl Keys {
  /// The start of the companion keys of `lock`. They must hash to the lock's slot, and must
  /// not be the key of another lock: they start with `{tag}` (a key without a tag hashes as a
  /// whole, so `{key}` lands in its slot), where lock keys start with the prefix.
  fn base(lock: &str) -> String {
    match hash_tag(lock) {
      Some(tag) => format!("{{{tag}}}:{lock}"),
      None => format!("{{{lock}}}"),
    }
  }

  /// Only the lock key and its fence counter (what a renewal needs), named as by `new`.
  pub(super) fn lock_and_fence(prefix: &str, name: &str) -> (String, String) {
    let lock = format!("{prefix}{name}");
    let fence = format!("{}:fence", Keys::base(&lock));
    (lock, fence)
  }

  pub(super) fn new(prefix: &str, name: &str) -> Self {
    let lock = format!("{prefix}{name}");
    let base = Keys::base(&lock);
    Keys {
      fence: format!("{base}:fence"),
      queue: format!("{base}:queue"),
      waiters: format!("{base}:waiters"),
      channel: format!("{base}:released"),
      lock,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn companion_keys_share_the_lock_slot() {
    let k = Keys::new("lock:", "job");
    assert_eq!(k.lock, "lock:job");
    assert_eq!(k.fence, "{lock:job}:fence");
    assert_eq!(k.channel, "{lock:job}:released");
    let tagged = Keys::new("lock:", "{tenant}job");
    assert_eq!(tagged.fence, "{tenant}:lock:{tenant}job:fence");
    // Not the key of the lock named "{tenant}job:fence".
    assert_ne!(tagged.fence, Keys::new("lock:", "{tenant}job:fence").lock);
    assert_eq!(hash_tag("a{}b{c}"), None);
    assert_eq!(hash_tag("x{ab}y"), Some("ab"));
  }

  #[test]
  fn slots_are_those_of_redis_cluster() {
    // CLUSTER KEYSLOT answers, and the CRC16 check value of "123456789" (0x31C3).
    assert_eq!(slot("foo"), 12_182);
    assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
    assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_eq!(slot("{}x"), slot("{}x")); // empty tag: the whole key
                                          // Every companion key of a lock shares its slot, and redis-rs routes them there too.
    for name in ["job", "{tenant}job", "a:b:c", "\u{e9}t\u{e9}"] {
      let k = Keys::new("lock:", name);
      let s = slot(&k.lock);
      for other in [&k.fence, &k.queue, &k.waiters, &k.channel] {
        assert_eq!(slot(other), s, "{other}");
      }
      use redis::cluster_routing::{Route, SlotAddr};
      assert_eq!(
        Route::with_key(&k.lock, SlotAddr::Master),
        Route::new(s, SlotAddr::Master),
        "{name}"
      );
    }
  }
}
