//! The lock record of one name and its on-disk form: a header line with the body's length
//! and checksum, then the body as JSON. A record that fails either check is torn (a crash of
//! the machine before the page cache reached the disk, or a foreign write) and is recovered
//! by the store, never trusted.

use serde_json::{json, Map, Value};

use crate::lease::Payload;

const MAGIC: &str = "ferrolock-file-record 1";

/// The holder of a lock, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
  pub token: String,
  pub owner: String,
  /// End of the lease on the host's shared clock (ms, see `clock::now_ms`).
  pub expires_ms: u64,
  pub data: Option<Payload>,
}

/// A waiter in the FIFO queue: its token, and until when it counts as alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiter {
  pub token: String,
  pub alive_until_ms: u64,
}

/// Everything the directory knows about one name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Record {
  /// The name itself, to tell a hash collision (never expected) from a match.
  pub name: String,
  /// The last fence handed out for this name; 0 before the first grant.
  pub fence: u64,
  pub holder: Option<Holder>,
  pub queue: Vec<Waiter>,
}

/// FNV-1a, 64 bit: a checksum against torn writes, not against an adversary.
fn checksum(bytes: &[u8]) -> u64 {
  let mut h: u64 = 0xcbf2_9ce4_8422_2325;
  for b in bytes {
    h ^= u64::from(*b);
    h = h.wrapping_mul(0x0100_0000_01b3);
  }
  h
}

fn hex(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
  if !text.len().is_multiple_of(2) {
    return None;
  }
  (0..text.len())
    .step_by(2)
    .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
    .collect()
}

impl Record {
  pub fn encode(&self) -> Vec<u8> {
    let holder = self.holder.as_ref().map(|h| {
      let mut obj = Map::new();
      obj.insert("token".into(), json!(h.token));
      obj.insert("owner".into(), json!(h.owner));
      obj.insert("expires".into(), json!(h.expires_ms));
      match &h.data {
        Some(Payload::Text(t)) => {
          obj.insert("text".into(), json!(t));
        }
        Some(Payload::Bytes(b)) => {
          obj.insert("bytes".into(), json!(hex(b)));
        }
        None => {}
      }
      Value::Object(obj)
    });
    let queue: Vec<Value> = self
      .queue
      .iter()
      .map(|w| json!([w.token, w.alive_until_ms]))
      .collect();
    let body = json!({
      "name": self.name,
      "fence": self.fence,
      "holder": holder,
      "queue": queue,
    })
    .to_string();
    let mut out = format!(
      "{MAGIC} {} {:016x}\n",
      body.len(),
      checksum(body.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
  }

  /// The record in `bytes`; `None` when they are not one whole record.
  pub fn decode(bytes: &[u8]) -> Option<Record> {
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(bytes.get(..newline)?).ok()?;
    let rest = header.strip_prefix(MAGIC)?;
    let mut parts = rest.split_whitespace();
    let len: usize = parts.next()?.parse().ok()?;
    let sum = u64::from_str_radix(parts.next()?, 16).ok()?;
    let body = bytes.get(newline + 1..)?;
    if body.len() != len || checksum(body) != sum {
      return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let holder = match v.get("holder")? {
      Value::Null => None,
      h => Some(Holder {
        token: h.get("token")?.as_str()?.to_owned(),
        owner: h.get("owner")?.as_str()?.to_owned(),
        expires_ms: h.get("expires")?.as_u64()?,
        data: match (h.get("text"), h.get("bytes")) {
          (Some(t), _) => Some(Payload::Text(t.as_str()?.to_owned())),
          (None, Some(b)) => Some(Payload::Bytes(unhex(b.as_str()?)?)),
          (None, None) => None,
        },
      }),
    };
    let queue = v
      .get("queue")?
      .as_array()?
      .iter()
      .map(|w| {
        Some(Waiter {
          token: w.get(0)?.as_str()?.to_owned(),
          alive_until_ms: w.get(1)?.as_u64()?,
        })
      })
      .collect::<Option<Vec<_>>>()?;
    Some(Record {
      name: v.get("name")?.as_str()?.to_owned(),
      fence: v.get("fence")?.as_u64()?,
      holder,
      queue,
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sample() -> Record {
    Record {
      name: "../x\0y".into(),
      fence: 42,
      holder: Some(Holder {
        token: "t".into(),
        owner: "o \"q\"".into(),
        expires_ms: 123,
        data: Some(Payload::Bytes(vec![0, 255, 7])),
      }),
      queue: vec![Waiter {
        token: "w".into(),
        alive_until_ms: 9,
      }],
    }
  }

  #[test]
  fn round_trip() {
    let r = sample();
    assert_eq!(Record::decode(&r.encode()), Some(r));
    let text = Record {
      holder: Some(Holder {
        data: Some(Payload::Text("héllo".into())),
        ..sample().holder.expect("holder")
      }),
      ..sample()
    };
    assert_eq!(Record::decode(&text.encode()), Some(text));
  }

  #[test]
  fn every_torn_prefix_and_flipped_byte_is_refused() {
    let bytes = sample().encode();
    for len in 0..bytes.len() {
      assert_eq!(Record::decode(&bytes[..len]), None, "prefix of {len} bytes");
    }
    let mut flipped = bytes.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 1;
    assert_eq!(Record::decode(&flipped), None);
  }
}
