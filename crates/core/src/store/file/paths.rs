//! Where the files of one lock name live: names are hashed, never used as file names.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The files of one lock name inside the lock directory. The file stem is the SHA-256 of the
/// name in lowercase hex, so no name (`../x`, `/`, NUL, 1024 bytes, `A` beside `a`) can leave
/// the directory, exceed a file name limit or meet another name, even on a case-insensitive
/// file system.
#[derive(Debug, Clone)]
pub(crate) struct NamePaths {
  /// Locked for the few microseconds of one read-modify-write of the record.
  pub state: PathBuf,
  /// The lock record: holder, lease end, fence, data, waiters. Replaced by rename only.
  pub record: PathBuf,
  /// Where the next record is written before it is renamed over `record`.
  pub record_tmp: PathBuf,
  /// Locked by the holder for as long as it holds the lock; reused, or replaced by a fresh
  /// file when a stopped holder still locks the old one.
  pub hold: PathBuf,
  pub hold_tmp: PathBuf,
}

/// File name suffix of the holder's file, which wake-ups watch for.
pub(crate) const HOLD_SUFFIX: &str = ".hold";

/// The hash of a lock name as 64 lowercase hex digits.
pub(crate) fn stem(name: &str) -> String {
  let digest = Sha256::digest(name.as_bytes());
  let mut out = String::with_capacity(64);
  for byte in digest.iter() {
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
  }
  out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl NamePaths {
  pub fn new(dir: &Path, name: &str) -> Self {
    let stem = stem(name);
    let file = |suffix: &str| dir.join(format!("{stem}{suffix}"));
    NamePaths {
      state: file(".lk"),
      record: file(".rec"),
      record_tmp: file(".rec.tmp"),
      hold: file(HOLD_SUFFIX),
      hold_tmp: file(".hold.tmp"),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_become_fixed_length_lowercase_hex() {
    let dir = Path::new("/locks");
    for name in ["../x", "/", "a\0b", "A", "a", &"x".repeat(1024)] {
      let p = NamePaths::new(dir, name);
      let stem = stem(name);
      assert_eq!(stem.len(), 64);
      assert!(stem
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
      assert_eq!(p.record.parent(), Some(dir));
    }
    assert_ne!(stem("A"), stem("a"));
    assert_eq!(
      stem("abc"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
  }
}
