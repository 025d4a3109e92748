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
}
