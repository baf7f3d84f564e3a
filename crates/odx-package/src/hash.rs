//! The hashes Windows looks a file up by in a catalog (`CryptCATAdminCalcHashFromFileHandle2`):
//! for a PE image the Authenticode digest (the image without its checksum, its certificate-table
//! directory entry and the certificate table, sections in file order — the `authenticode`
//! crate's `authenticode_digest`), for any other file the digest of all its bytes.

use anyhow::{Context, Result, bail};
use authenticode::{AttributeCertificateIterator, authenticode_digest};
use der::asn1::ObjectIdentifier;
use object::read::pe::{PeFile32, PeFile64};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::oid;

/// How a member is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A PE image: Authenticode digest.
    PeImage,
    /// Anything else: the digest of the whole file.
    Flat,
}

/// Both digests of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHashes {
    /// How they were computed.
    pub kind: Kind,
    /// SHA-1.
    pub sha1: [u8; 20],
    /// SHA-256.
    pub sha256: [u8; 32],
}

fn pe_digests(pe: &dyn authenticode::PeTrait) -> Result<([u8; 20], [u8; 32])> {
    let mut sha1 = Sha1::new();
    let mut sha256 = Sha256::new();
    authenticode_digest(pe, &mut sha1).map_err(|e| anyhow::anyhow!("{e}"))?;
    authenticode_digest(pe, &mut sha256).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((sha1.finalize().into(), sha256.finalize().into()))
}

/// Whether `bytes` look like a PE image (`MZ`, then `PE\0\0` at `e_lfanew`).
#[must_use]
pub fn is_pe(bytes: &[u8]) -> bool {
    let Some(lfanew) = bytes
        .get(0x3C..0x40)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
    else {
        return false;
    };
    let start = usize::try_from(lfanew).unwrap_or(usize::MAX);
    bytes.starts_with(b"MZ") && bytes.get(start..start.saturating_add(4)) == Some(b"PE\0\0")
}

/// The catalog hashes of a file's bytes.
///
/// # Errors
/// The bytes start like a PE image but are not a well-formed one.
pub fn file_hashes(bytes: &[u8]) -> Result<FileHashes> {
    if is_pe(bytes) {
        let (sha1, sha256) = match PeFile64::parse(bytes) {
            Ok(pe) => pe_digests(&pe)?,
            Err(_) => pe_digests(&PeFile32::parse(bytes).context("malformed PE image")?)?,
        };
        return Ok(FileHashes {
            kind: Kind::PeImage,
            sha1,
            sha256,
        });
    }
    Ok(FileHashes {
        kind: Kind::Flat,
        sha1: Sha1::digest(bytes).into(),
        sha256: Sha256::digest(bytes).into(),
    })
}

/// The digests recorded in a PE image's embedded Authenticode signatures (its certificate
/// table): `(digest algorithm, digest)` of each, in table order; empty when unsigned.
///
/// # Errors
/// A malformed image or certificate table.
pub fn embedded_digests(bytes: &[u8]) -> Result<Vec<(ObjectIdentifier, Vec<u8>)>> {
    let pe = PeFile64::parse(bytes).context("not a PE32+ image")?;
    let Some(table) = AttributeCertificateIterator::new(&pe)
        .map_err(|e| anyhow::anyhow!("certificate table: {e}"))?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in table {
        let entry = entry.map_err(|e| anyhow::anyhow!("certificate table: {e}"))?;
        let signature = entry
            .get_authenticode_signature()
            .map_err(|e| anyhow::anyhow!("embedded signature: {e}"))?;
        out.push((
            signature.digest_algorithm().oid,
            signature.digest().to_vec(),
        ));
    }
    Ok(out)
}

/// The SHA-256 digest an embedded signature records must equal the image's own (what a
/// catalog entry made from the image will record). Returns how many signatures were checked.
///
/// # Errors
/// A signature records another digest, or uses another algorithm.
pub fn check_embedded(bytes: &[u8], hashes: &FileHashes) -> Result<usize> {
    let digests = embedded_digests(bytes)?;
    for (algorithm, digest) in &digests {
        if *algorithm != oid::SHA256 {
            bail!("embedded signature uses digest algorithm {algorithm}, not SHA-256");
        }
        if digest.as_slice() != hashes.sha256 {
            bail!(
                "embedded signature records Authenticode digest {} but the image hashes to {}",
                crate::hex(digest),
                crate::hex(&hashes.sha256)
            );
        }
    }
    Ok(digests.len())
}
