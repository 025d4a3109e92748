//! The lock record of one name and its on-disk form. A version is a header line (length,
//! sequence number, checksum) and the body as JSON. The file has two slots of `SLOT` bytes,
//! written in place in turn, so an update is one write and no file is created or renamed: a
//! write cut short (a process killed in it, a full disk) spoils only the slot being written,
//! and the other one still holds the previous version, which is then the truth (the cut
//! operation never returned). A version larger than a slot is written as the whole file
//! instead (beside it, then renamed). A file with no valid version is torn and is recovered
//! by the store, never trusted.

use serde_json::Value;

use crate::lease::Payload;

const MAGIC: &str = "ferrolock-file-record 3";

/// Size of one slot: a version that fits is written in place.
pub(crate) const SLOT: usize = 4096;

/// Where the version a record was read from sits, so the next write goes to the other slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Place {
  /// Sequence number of the version read (0: none).
  pub seq: u64,
  /// Its slot; `None`: no valid version (a new or torn file).
  pub slot: Option<usize>,
  /// The file holds one version larger than a slot, or must be rewritten whole (torn).
  pub whole: bool,
}

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
  /// The number the holder file keeps (at least every fence granted, written ahead so
  /// most grants need not write it); 0: unknown, the next grant writes it.
  pub copy: u64,
  pub holder: Option<Holder>,
  pub queue: Vec<Waiter>,
  /// Where it was read from (not stored).
  pub place: Place,
}

/// The checksum of a version: its sequence number, then its body 8 bytes at a time (the last
/// word zero-padded, then the length), each word folded in by a multiply and a shift. Every
/// step is a bijection of the state for a given word, so a version that differs from the one
/// written in any one word (a flipped byte) never passes, and a write cut short fails on the
/// length in its header first. A checksum against torn writes, not against an adversary; one
/// multiply per 8 bytes instead of FNV's one per byte, which was the most of encoding a record.
fn sum(seq: u64, body: &[u8]) -> u64 {
  fn mix(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
  }
  let mut h = mix(0xcbf2_9ce4_8422_2325, seq);
  let mut words = body.chunks_exact(8);
  let mut word = [0u8; 8];
  for chunk in &mut words {
    word.copy_from_slice(chunk);
    h = mix(h, u64::from_le_bytes(word));
  }
  let rest = words.remainder();
  word = [0u8; 8];
  word[..rest.len()].copy_from_slice(rest);
  h = mix(h, u64::from_le_bytes(word));
  mix(h, body.len() as u64)
}

/// Appends `n` in decimal (the header and numbers of a body: no `fmt` machinery per write).
fn push_num(out: &mut Vec<u8>, n: u64) {
  out.extend_from_slice(&num(n));
}

/// `n` in decimal, in a small vector on the stack.
fn num(mut n: u64) -> Digits {
  let mut d = Digits {
    bytes: [0; 20],
    start: 20,
  };
  loop {
    d.start -= 1;
    // A digit, 0 to 9.
    d.bytes[d.start] = b'0' + (n % 10) as u8;
    n /= 10;
    if n == 0 {
      return d;
    }
  }
}

struct Digits {
  bytes: [u8; 20],
  start: usize,
}

impl std::ops::Deref for Digits {
  type Target = [u8];
  fn deref(&self) -> &[u8] {
    &self.bytes[self.start..]
  }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `text` as a JSON string. Writing into a Vec cannot fail.
fn push_str(out: &mut Vec<u8>, text: &str) {
  let _ = serde_json::to_writer(&mut *out, text);
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

/// A reader over a body written by `encode`.
struct Cursor<'a> {
  b: &'a [u8],
  i: usize,
}

impl Cursor<'_> {
  /// Skips `text` if it comes next.
  fn lit(&mut self, text: &[u8]) -> Option<()> {
    if self.b.get(self.i..)?.starts_with(text) {
      self.i += text.len();
      Some(())
    } else {
      None
    }
  }

  fn number(&mut self) -> Option<u64> {
    let start = self.i;
    let mut n: u64 = 0;
    while let Some(d) = self.b.get(self.i).filter(|b| b.is_ascii_digit()) {
      n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
      self.i += 1;
    }
    (self.i > start).then_some(n)
  }

  /// A JSON string: its bytes as they are when it has no escape, else decoded by serde_json.
  fn string(&mut self) -> Option<String> {
    let start = self.i;
    self.lit(b"\"")?;
    let mut escaped = false;
    loop {
      match *self.b.get(self.i)? {
        b'"' => break,
        b'\\' => {
          escaped = true;
          self.i += 2;
        }
        _ => self.i += 1,
      }
    }
    self.i += 1;
    let quoted = self.b.get(start..self.i)?;
    if escaped {
      serde_json::from_slice(quoted).ok()
    } else {
      String::from_utf8(quoted.get(1..quoted.len() - 1)?.to_vec()).ok()
    }
  }
}

/// Whether `bytes` are a record file written in place: at most two slots long (a mark past
/// them says the file is being replaced), with a version header at its start that ends
/// within the first slot (not a whole-file version). The versions are not checked here.
pub(crate) fn in_slots(bytes: &[u8]) -> bool {
  bytes.len() <= 2 * SLOT && Record::header(bytes).is_some_and(|(_, end)| end <= SLOT)
}

impl Record {
  /// This record as version `seq`: the header line, then the body as JSON, written
  /// straight into one buffer (strings escaped by serde_json).
  pub fn encode(&self, seq: u64) -> Vec<u8> {
    // The header goes first: room is left for it, and the body is written after that room.
    const ROOM: usize = MAGIC.len() + 3 * 21 + 1;
    let mut out = Vec::with_capacity(ROOM + 256);
    out.resize(ROOM, 0);
    let body = &mut out;
    body.extend_from_slice(b"{\"name\":");
    push_str(body, &self.name);
    body.extend_from_slice(b",\"fence\":");
    push_num(body, self.fence);
    if self.copy != 0 {
      body.extend_from_slice(b",\"copy\":");
      push_num(body, self.copy);
    }
    body.extend_from_slice(b",\"holder\":");
    match &self.holder {
      None => body.extend_from_slice(b"null"),
      Some(h) => {
        body.extend_from_slice(b"{\"token\":");
        push_str(body, &h.token);
        body.extend_from_slice(b",\"owner\":");
        push_str(body, &h.owner);
        body.extend_from_slice(b",\"expires\":");
        push_num(body, h.expires_ms);
        match &h.data {
          Some(Payload::Text(t)) => {
            body.extend_from_slice(b",\"text\":");
            push_str(body, t);
          }
          Some(Payload::Bytes(b)) => {
            body.extend_from_slice(b",\"bytes\":\"");
            for byte in b {
              body.push(HEX[usize::from(byte >> 4)]);
              body.push(HEX[usize::from(byte & 0xf)]);
            }
            body.push(b'"');
          }
          None => {}
        }
        body.push(b'}');
      }
    }
    body.extend_from_slice(b",\"queue\":[");
    for (i, w) in self.queue.iter().enumerate() {
      if i > 0 {
        body.push(b',');
      }
      body.push(b'[');
      push_str(body, &w.token);
      body.push(b',');
      push_num(body, w.alive_until_ms);
      body.push(b']');
    }
    body.extend_from_slice(b"]}");
    // The header: magic, body length, sequence number, checksum in 16 hex digits, newline;
    // laid out at the end of the room, which is then cut off the front.
    let len = out.len() - ROOM;
    let checksum = sum(seq, &out[ROOM..]);
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
      *digit = HEX[((checksum >> ((15 - i) * 4)) & 0xf) as usize];
    }
    let mut header = [0u8; ROOM];
    let mut at = 0;
    for part in [
      MAGIC.as_bytes(),
      b" ",
      &num(len as u64),
      b" ",
      &num(seq),
      b" ",
      &hex,
      b"\n",
    ] {
      header[at..at + part.len()].copy_from_slice(part);
      at += part.len();
    }
    let start = ROOM - at;
    out[start..ROOM].copy_from_slice(&header[..at]);
    out.drain(..start);
    out
  }

  /// The newest valid version in the bytes of a record file, with its place; `None` when
  /// there is none (torn).
  pub fn decode_file(bytes: &[u8]) -> Option<Record> {
    let placed = |(mut rec, seq, _): (Record, u64, usize), slot: usize, whole: bool| {
      rec.place = Place {
        seq,
        slot: Some(slot),
        whole,
      };
      rec
    };
    // Headers first (cheap): only the newest version is checked and read, the other one
    // only if that fails.
    let h0 = Self::header(bytes);
    if h0.is_some_and(|(_, end)| end > SLOT) {
      if let Some(one) = Self::decode_one(bytes) {
        return Some(placed(one, 0, true));
      }
    }
    let h0 = h0.filter(|(_, end)| *end <= SLOT);
    let tail = bytes.get(SLOT..).unwrap_or(&[]);
    let h1 = Self::header(tail).filter(|(_, end)| *end <= SLOT);
    let second_first = match (h0, h1) {
      (Some((s0, _)), Some((s1, _))) => s1 > s0,
      (None, Some(_)) => true,
      (_, None) => false,
    };
    let try0 = || {
      h0.and_then(|_| Self::decode_one(bytes))
        .map(|v| placed(v, 0, false))
    };
    let try1 = || {
      h1.and_then(|_| Self::decode_one(tail))
        .map(|v| placed(v, 1, false))
    };
    if second_first {
      try1().or_else(try0)
    } else {
      try0().or_else(try1)
    }
  }

  /// The header of the version at the start of `bytes`: its sequence number and where it
  /// ends (not checked against its checksum yet).
  fn header(bytes: &[u8]) -> Option<(u64, usize)> {
    let (seq, _, newline, len) = Self::header_fields(bytes)?;
    Some((seq, newline.checked_add(1)?.checked_add(len)?))
  }

  /// Sequence number, checksum, position of the newline and body length of a header.
  fn header_fields(bytes: &[u8]) -> Option<(u64, u64, usize, usize)> {
    let newline = bytes.iter().take(256).position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(bytes.get(..newline)?).ok()?;
    let rest = header.strip_prefix(MAGIC)?;
    let mut parts = rest.split_whitespace();
    let len: usize = parts.next()?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    let expected = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some((seq, expected, newline, len))
  }

  /// One version at the start of `bytes`: the record, its sequence number and its length.
  fn decode_one(bytes: &[u8]) -> Option<(Record, u64, usize)> {
    let (seq, expected, newline, len) = Self::header_fields(bytes)?;
    // `len` comes from the file: a foreign or corrupt header must not overflow.
    let end = newline.checked_add(1)?.checked_add(len)?;
    let body = bytes.get(newline + 1..end)?;
    if sum(seq, body) != expected {
      return None;
    }
    let rec = Self::decode_ours(body).or_else(|| Self::decode_body(body))?;
    Some((rec, seq, end))
  }

  /// The body as `encode` writes it (fields in its order), read without building a JSON
  /// tree; `None` for anything else, which the general reader then reads.
  fn decode_ours(body: &[u8]) -> Option<Record> {
    let mut c = Cursor { b: body, i: 0 };
    c.lit(b"{\"name\":")?;
    let name = c.string()?;
    c.lit(b",\"fence\":")?;
    let fence = c.number()?;
    let copy = if c.lit(b",\"copy\":").is_some() {
      c.number()?
    } else {
      0
    };
    c.lit(b",\"holder\":")?;
    let holder = if c.lit(b"null").is_some() {
      None
    } else {
      c.lit(b"{\"token\":")?;
      let token = c.string()?;
      c.lit(b",\"owner\":")?;
      let owner = c.string()?;
      c.lit(b",\"expires\":")?;
      let expires_ms = c.number()?;
      let data = if c.lit(b",\"text\":").is_some() {
        Some(Payload::Text(c.string()?))
      } else if c.lit(b",\"bytes\":").is_some() {
        Some(Payload::Bytes(unhex(&c.string()?)?))
      } else {
        None
      };
      c.lit(b"}")?;
      Some(Holder {
        token,
        owner,
        expires_ms,
        data,
      })
    };
    c.lit(b",\"queue\":[")?;
    let mut queue = Vec::new();
    while c.lit(b"]").is_none() {
      if !queue.is_empty() {
        c.lit(b",")?;
      }
      c.lit(b"[")?;
      let token = c.string()?;
      c.lit(b",")?;
      let alive_until_ms = c.number()?;
      c.lit(b"]")?;
      queue.push(Waiter {
        token,
        alive_until_ms,
      });
    }
    c.lit(b"}")?;
    if c.i != body.len() {
      return None;
    }
    Some(Record {
      name,
      fence,
      copy,
      holder,
      queue,
      place: Place::default(),
    })
  }

  fn decode_body(body: &[u8]) -> Option<Record> {
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
      copy: v.get("copy").and_then(Value::as_u64).unwrap_or(0),
      holder,
      queue,
      place: Place::default(),
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_header_claiming_an_impossible_length_is_no_record() {
    let bytes = format!("{MAGIC} {} 1 0000000000000000\nbody", usize::MAX);
    assert!(Record::decode_file(bytes.as_bytes()).is_none());
  }

  fn sample() -> Record {
    Record {
      name: "../x\0y".into(),
      fence: 42,
      copy: 1042,
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
      place: Place::default(),
    }
  }

  fn placed(rec: &Record, seq: u64, slot: usize, whole: bool) -> Record {
    Record {
      place: Place {
        seq,
        slot: Some(slot),
        whole,
      },
      ..rec.clone()
    }
  }

  #[test]
  fn both_readers_agree_and_the_general_one_reads_other_field_orders() {
    let mut plain = sample();
    plain.holder = None;
    plain.copy = 0;
    for r in [sample(), plain] {
      let bytes = r.encode(1);
      let body = &bytes[bytes.iter().position(|b| *b == b'\n').expect("header") + 1..];
      assert_eq!(Record::decode_ours(body), Record::decode_body(body));
      assert!(Record::decode_ours(body).is_some());
    }
    // A body with its keys in another order (an older writer) is read by the general reader.
    let other = br#"{"fence":3,"holder":null,"name":"n","queue":[["w",9]]}"#;
    assert_eq!(Record::decode_ours(other), None);
    let rec = Record::decode_body(other).expect("general reader");
    assert_eq!((rec.fence, rec.name.as_str(), rec.queue.len()), (3, "n", 1));
  }

  #[test]
  fn round_trip() {
    let r = sample();
    assert_eq!(
      Record::decode_file(&r.encode(1)),
      Some(placed(&r, 1, 0, false))
    );
    let text = Record {
      holder: Some(Holder {
        data: Some(Payload::Text("héllo".into())),
        ..sample().holder.expect("holder")
      }),
      ..sample()
    };
    assert_eq!(
      Record::decode_file(&text.encode(7)),
      Some(placed(&text, 7, 0, false))
    );
    let big = Record {
      holder: Some(Holder {
        data: Some(Payload::Text("x".repeat(SLOT))),
        ..sample().holder.expect("holder")
      }),
      ..sample()
    };
    assert_eq!(
      Record::decode_file(&big.encode(3)),
      Some(placed(&big, 3, 0, true))
    );
  }

  #[test]
  fn every_torn_prefix_and_flipped_byte_is_refused() {
    let bytes = sample().encode(1);
    for len in 0..bytes.len() {
      assert_eq!(
        Record::decode_file(&bytes[..len]),
        None,
        "prefix of {len} bytes"
      );
    }
    // Any one bit of any byte after the header's checksum, flipped: the body's words and its
    // length are all in the checksum.
    let body_at = bytes.iter().position(|b| *b == b'\n').expect("header") + 1;
    for at in body_at..bytes.len() {
      for bit in 0..8 {
        let mut flipped = bytes.clone();
        flipped[at] ^= 1 << bit;
        assert_eq!(
          Record::decode_file(&flipped),
          None,
          "bit {bit} of byte {at}"
        );
      }
    }
  }

  #[test]
  fn the_header_is_magic_length_sequence_and_checksum() {
    let bytes = sample().encode(12_345);
    let newline = bytes.iter().position(|b| *b == b'\n').expect("header");
    let header = std::str::from_utf8(&bytes[..newline]).expect("text");
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(fields[..2], ["ferrolock-file-record", "3"]);
    assert_eq!(fields[2], (bytes.len() - newline - 1).to_string());
    assert_eq!(fields[3], "12345");
    assert_eq!(fields[4].len(), 16);
    assert_eq!(
      fields[4],
      format!("{:016x}", sum(12_345, &bytes[newline + 1..]))
    );
    assert_eq!(num(0).to_vec(), b"0");
    assert_eq!(num(u64::MAX).to_vec(), u64::MAX.to_string().into_bytes());
  }

  #[test]
  fn the_newest_whole_slot_wins_and_a_torn_one_falls_back() {
    let old = sample();
    let new = Record {
      fence: 43,
      ..sample()
    };
    let mut file = old.encode(1);
    file.resize(SLOT, 0);
    file.extend_from_slice(&new.encode(2));
    assert_eq!(Record::decode_file(&file), Some(placed(&new, 2, 1, false)));
    // The write of slot 1 was cut short: slot 0 is the truth.
    let cut = file.len() - 5;
    assert_eq!(
      Record::decode_file(&file[..cut]),
      Some(placed(&old, 1, 0, false))
    );
    // A newer version in slot 0 beats an older one in slot 1.
    let mut swapped = new.encode(3);
    swapped.resize(SLOT, 0);
    swapped.extend_from_slice(&old.encode(2));
    assert_eq!(
      Record::decode_file(&swapped),
      Some(placed(&new, 3, 0, false))
    );
  }
}
