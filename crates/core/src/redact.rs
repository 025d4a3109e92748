//! Masks secrets in text that leaves the library (error messages, their causes, heartbeat
//! error events), whatever a server or a driver echoes: the secrets this process was given
//! (passwords, AWS secret keys and session tokens, remembered when a store is made), AWS access
//! key ids (`AKIA…`, `ASIA…`), long credential-like strings, and the password of any URL.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Secrets shorter than this are not remembered process-wide (masking every "ab" in every
/// message would garble them); the store that owns one still masks it in its own messages.
const MIN_REMEMBERED: usize = 6;

/// A run of token characters at least this long is taken for a credential (an AWS secret key
/// is 40, a session token hundreds, a signature 64).
const LONG_TOKEN: usize = 40;

static SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Remembers `secret` so that `redact` masks it from now on.
pub fn remember(secret: &str) {
  if secret.len() >= MIN_REMEMBERED {
    SECRETS
      .lock()
      .unwrap_or_else(|e| e.into_inner())
      .insert(secret.to_owned());
  }
}

/// `text` with every secret masked.
pub fn redact(text: &str) -> String {
  let mut out = text.to_owned();
  {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    // Longest first, so a secret that contains another is masked whole.
    let mut by_len: Vec<&String> = secrets.iter().collect();
    by_len.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in by_len {
      if out.contains(secret.as_str()) {
        out = out.replace(secret.as_str(), MASK);
      }
    }
  }
  mask_url_passwords(&mask_tokens(&out))
}

fn token_char(c: char) -> bool {
  // Not '=': it separates a name from its value (`Credential=...`); base64 padding is left.
  c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-' | '%')
}

/// Masks access key ids and long credential-like runs.
fn mask_tokens(text: &str) -> String {
  let mut out = String::with_capacity(text.len());
  let mut rest = text;
  while let Some(start) = rest.find(token_char) {
    out.push_str(&rest[..start]);
    let len = rest[start..]
      .find(|c: char| !token_char(c))
      .unwrap_or(rest.len() - start);
    let word = &rest[start..start + len];
    out.push_str(&mask_word(word));
    rest = &rest[start + len..];
  }
  out.push_str(rest);
  out
}

fn mask_word(word: &str) -> String {
  if word.len() >= LONG_TOKEN {
    return MASK.to_owned();
  }
  // AKIA/ASIA (and AWS's other id prefixes) followed by upper-case letters and digits.
  let mut out = String::new();
  let mut rest = word;
  while let Some(at) = find_key_id(rest) {
    out.push_str(&rest[..at]);
    let tail = &rest[at + 4..];
    let len = tail
      .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
      .unwrap_or(tail.len());
    out.push_str(MASK);
    rest = &tail[len..];
  }
  out.push_str(rest);
  out
}

/// Where an access key id starts in `word`: a prefix followed by at least 12 id characters.
fn find_key_id(word: &str) -> Option<usize> {
  [
    "AKIA", "ASIA", "AIDA", "AROA", "AGPA", "ANPA", "ANVA", "AIPA", "APKA",
  ]
  .iter()
  .filter_map(|prefix| {
    word.match_indices(prefix).map(|(i, _)| i).find(|i| {
      let tail = &word[i + 4..];
      tail
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .count()
        >= 12
    })
  })
  .min()
}

/// `scheme://user:password@host` becomes `scheme://user:***@host`.
fn mask_url_passwords(text: &str) -> String {
  let mut out = String::with_capacity(text.len());
  let mut rest = text;
  while let Some(at) = rest.find("://") {
    let (head, tail) = rest.split_at(at + 3);
    out.push_str(head);
    let authority_end = tail
      .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
      .unwrap_or(tail.len());
    let authority = &tail[..authority_end];
    match authority.rfind('@') {
      Some(userinfo_end) => {
        let userinfo = &authority[..userinfo_end];
        match userinfo.find(':') {
          Some(colon) => {
            out.push_str(&userinfo[..=colon]);
            out.push_str(MASK);
          }
          None => out.push_str(userinfo),
        }
        out.push_str(&authority[userinfo_end..]);
      }
      None => out.push_str(authority),
    }
    rest = &tail[authority_end..];
  }
  out.push_str(rest);
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn masks_key_ids_long_tokens_and_url_passwords() {
    let echo = "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/dynamodb/aws4_request";
    let masked = redact(echo);
    assert!(!masked.contains("AKIAIOSFODNN7EXAMPLE"), "{masked}");
    assert!(masked.contains("Credential=***"), "{masked}");
    assert_eq!(redact("id ASIAY34FZKBOKMUTVV7A."), "id ***.");
    let token = "FwoGZXIvYXdzEJr//////////wEaDOZ9example".repeat(3);
    assert_eq!(
      redact(&format!("x-amz-security-token: {token}")),
      "x-amz-security-token: ***"
    );
    assert_eq!(
      redact("connect to redis://app:hunter2@db.local:6379/0 failed"),
      "connect to redis://app:***@db.local:6379/0 failed"
    );
    assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
    // Ordinary text stays as it is.
    let plain = "lock \"job-1\" was not acquired: still held after 3 attempts (AKIA short)";
    assert_eq!(redact(plain), plain);
  }

  #[test]
  fn masks_remembered_secrets() {
    remember("s3cr3t-pass");
    remember("abc"); // too short to remember process-wide
    assert_eq!(
      redact("AUTH s3cr3t-pass failed; abc"),
      "AUTH *** failed; abc"
    );
  }
}
