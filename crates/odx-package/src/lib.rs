//! odxflt's driver package, made on Linux (`cargo make package`, docs/driver.md "Building,
//! signing and deploying on Windows"):
//!
//! - [`inf`]: `odxflt.inf` stamped from `inf/odxflt.inx` the way the WDK's stampinf does it
//!   (`DriverVer`, `CatalogFile`, `$ARCH$`), and the INF facts a catalog needs;
//! - [`hash`]: the SHA-1 and SHA-256 hashes Windows looks a file up by in a catalog: the PE
//!   Authenticode digest for images, the plain digest for every other file;
//! - [`catalog`]: the driver catalog (`odxflt.cat`) as inf2cat writes one for Windows 8 and
//!   later — a PKCS #7 SignedData around a certificate trust list with a SHA-256 and a SHA-1
//!   entry per file — written unsigned (osslsigncode signs it) and parsed back;
//! - [`check`]: a package folder parsed back: every file the INF names and the INF itself are in
//!   the catalog under both hashes, and nothing else is.
//!
//! Never shipped; no part of the driver or of odx-core.

pub mod catalog;
pub mod check;
pub mod hash;
pub mod inf;
pub mod oid;

use der::DateTime;

/// Seconds since 1970 as a calendar date and time (UTC).
///
/// # Errors
/// Outside what DER's `DateTime` represents (years 1970–9999).
pub fn date_time(epoch_seconds: u64) -> anyhow::Result<DateTime> {
    DateTime::from_unix_duration(std::time::Duration::from_secs(epoch_seconds))
        .map_err(|e| anyhow::anyhow!("time {epoch_seconds}: {e}"))
}

/// Lower-case hexadecimal.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
