//! A package folder parsed back and compared with its files.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::catalog::{self, Entry, Member, OS_ATTR, OS_LIST};
use crate::hash::{self, Kind};
use crate::{hex, inf, oid};

/// The members a package's catalog must list: the INF and every file its
/// `[SourceDisksFiles]` names, hashed from the folder.
///
/// # Errors
/// A file is missing or cannot be hashed.
pub fn members(dir: &Path, inf_name: &str) -> Result<Vec<Member>> {
    let inf_path = dir.join(inf_name);
    let text = std::fs::read_to_string(&inf_path)
        .with_context(|| format!("cannot read {}", inf_path.display()))?;
    let mut names = vec![inf_name.to_owned()];
    names.extend(inf::source_disks_files(&text));
    names
        .into_iter()
        .map(|file| {
            let path = dir.join(&file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Member {
                hashes: hash::file_hashes(&bytes)
                    .with_context(|| format!("cannot hash {}", path.display()))?,
                file,
            })
        })
        .collect()
}

/// What [`check`] found.
#[derive(Debug)]
pub struct Report {
    /// The catalog's file name (from the INF's `CatalogFile`).
    pub catalog: String,
    /// Signer infos of the catalog.
    pub signers: usize,
    /// One line per member: name, kind, both hashes.
    pub lines: Vec<String>,
}

fn find<'a>(entries: &'a [Entry], id: &[u8]) -> Option<&'a Entry> {
    entries.iter().find(|e| e.identifier == id)
}

/// Parses the catalog the INF in `dir` names and compares it with the files: each member has an
/// entry identified by its SHA-256 hash (File, OSAttr, CAT_MEMBERINFO2 and the SHA-256 digest in
/// its SpcIndirectDataContent, with the data type of its kind) and one identified by its SHA-1
/// hash (File, OSAttr, CAT_MEMBERINFO2); there are no other entries; the catalog is version 2
/// with the `OS` list, and signed unless `allow_unsigned`. A signed PE member's embedded
/// signature must record the same SHA-256 digest.
///
/// # Errors
/// The first difference found.
pub fn check(dir: &Path, inf_name: &str, allow_unsigned: bool) -> Result<Report> {
    let inf_text = std::fs::read_to_string(dir.join(inf_name))
        .with_context(|| format!("cannot read {}", dir.join(inf_name).display()))?;
    let catalog_name = inf::directive(&inf_text, "Version", "CatalogFile")
        .context("the INF names no CatalogFile")?;
    let cat_path = dir.join(&catalog_name);
    let bytes =
        std::fs::read(&cat_path).with_context(|| format!("cannot read {}", cat_path.display()))?;
    let parsed = catalog::parse(&bytes).with_context(|| format!("{}", cat_path.display()))?;
    ensure!(
        allow_unsigned || parsed.signers > 0,
        "{catalog_name} is not signed"
    );
    ensure!(
        parsed.ctl.subject_usage == [oid::CATALOG_LIST],
        "{catalog_name}: subject usage is not szOID_CATALOG_LIST"
    );
    ensure!(
        parsed.ctl.subject_algorithm.oid == oid::CATALOG_LIST_MEMBER2,
        "{catalog_name}: not a version 2 catalog (member algorithm {})",
        parsed.ctl.subject_algorithm.oid
    );
    ensure!(
        parsed.names.iter().any(|(k, v)| k == "OS" && v == OS_LIST),
        "{catalog_name}: no OS = {OS_LIST} attribute (found {:?})",
        parsed.names
    );
    let members = members(dir, inf_name)?;
    let mut lines = Vec::new();
    let mut matched = 0usize;
    for m in &members {
        let name = m.file.as_str();
        let long = find(&parsed.entries, &m.hashes.sha256).with_context(|| {
            format!(
                "{catalog_name} has no entry for {name}'s SHA-256 {}",
                hex(&m.hashes.sha256)
            )
        })?;
        let short = find(&parsed.entries, &m.hashes.sha1).with_context(|| {
            format!(
                "{catalog_name} has no entry for {name}'s SHA-1 {}",
                hex(&m.hashes.sha1)
            )
        })?;
        for (entry, which) in [(long, "SHA-256"), (short, "SHA-1")] {
            ensure!(
                entry.file.as_deref() == Some(name),
                "{catalog_name}: the {which} entry of {name} is named {:?}",
                entry.file
            );
            ensure!(
                entry.os_attr.as_deref() == Some(OS_ATTR) && entry.member_info2,
                "{catalog_name}: the {which} entry of {name} lacks OSAttr {OS_ATTR} or CAT_MEMBERINFO2"
            );
        }
        let expected_type = match m.hashes.kind {
            Kind::PeImage => oid::SPC_PE_IMAGE_DATA,
            Kind::Flat => oid::SPC_CAB_DATA,
        };
        ensure!(
            long.indirect.as_ref() == Some(&(expected_type, oid::SHA256, m.hashes.sha256.to_vec())),
            "{catalog_name}: the SHA-256 entry of {name} records {:?}, expected its SHA-256 digest as {expected_type}",
            long.indirect
        );
        ensure!(
            short.indirect.is_none(),
            "{catalog_name}: the SHA-1 entry of {name} carries an SpcIndirectDataContent"
        );
        let embedded = if m.hashes.kind == Kind::PeImage {
            let bytes = std::fs::read(dir.join(name))?;
            let n = hash::check_embedded(&bytes, &m.hashes).with_context(|| name.to_owned())?;
            format!(", {n} embedded signature(s) with the same SHA-256")
        } else {
            String::new()
        };
        matched += 2;
        lines.push(format!(
            "{name}: {} SHA-1 {} SHA-256 {}{embedded}",
            match m.hashes.kind {
                Kind::PeImage => "PE Authenticode",
                Kind::Flat => "file",
            },
            hex(&m.hashes.sha1),
            hex(&m.hashes.sha256)
        ));
    }
    ensure!(
        parsed.entries.len() == matched,
        "{catalog_name} has {} entries, expected {matched} (two per file)",
        parsed.entries.len()
    );
    Ok(Report {
        catalog: catalog_name,
        signers: parsed.signers,
        lines,
    })
}
