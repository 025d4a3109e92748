//! The file backend's options (`createClient({ file })`) into core options.

use ferrolock_core::FileOptions;
use napi_derive::napi;

use crate::error::invalid;
use crate::options::js_number;

/// `options.file` as an object (lib/options/file.js turns the string form into `{ dir }`).
#[napi(object)]
pub struct NativeFileOptions {
  /// The lock directory.
  pub dir: String,
  /// Mode of the directory when it is created (default 0o700).
  pub mode: Option<f64>,
  /// fsync every record write (default false).
  pub fsync: Option<bool>,
}

impl NativeFileOptions {
  pub fn into_core(self) -> napi::Result<FileOptions> {
    if self.dir.is_empty() {
      return Err(invalid("options.file.dir must be a non-empty path"));
    }
    if self.dir.contains('\0') {
      return Err(invalid("options.file.dir must not contain a NUL character"));
    }
    let mut out = FileOptions::new(self.dir);
    if let Some(mode) = self.mode {
      if mode.fract() != 0.0 || !(0.0..=f64::from(0o7777)).contains(&mode) {
        return Err(invalid(format!(
          "options.file.mode must be an integer from 0 to 0o7777 (got {})",
          js_number(mode)
        )));
      }
      out.mode = mode as u32;
    }
    out.fsync = self.fsync.unwrap_or(false);
    Ok(out)
  }
}
