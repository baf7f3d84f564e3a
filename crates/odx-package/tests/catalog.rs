//! The catalog written for a package, parsed back: its hashes equal the files' hashes, computed
//! here independently of the crate (the PE Authenticode digest by the spec's byte ranges over a
//! hand-built PE32+ image, the INF's by `sha1`/`sha256` over its bytes), and any change to a file
//! makes the check fail.

use std::path::Path;

use odx_package::catalog::{self, OS_ATTR, OS_LIST};
use odx_package::check;
use odx_package::hash::{self, Kind};
use odx_package::{date_time, inf, oid};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// File offsets in the image below: the optional header's CheckSum and the security (certificate
/// table) data directory entry.
const CHECKSUM_AT: usize = 0x58 + 64;
const SECURITY_DIR_AT: usize = 0x58 + 112 + 4 * 8;

fn put(image: &mut [u8], at: usize, bytes: &[u8]) {
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A minimal PE32+ native image: headers (0x200), one `.text` section (0x200 bytes of
/// `fill`), and optionally a certificate table appended after it.
fn pe_image(fill: u8, checksum: u32, certificate: Option<&[u8]>) -> Vec<u8> {
    let mut image = vec![0u8; 0x400];
    put(&mut image, 0, b"MZ");
    put(&mut image, 0x3C, &0x40u32.to_le_bytes());
    put(&mut image, 0x40, b"PE\0\0");
    // COFF header: AMD64, one section, 240-byte optional header, executable | large address aware.
    put(&mut image, 0x44, &0x8664u16.to_le_bytes());
    put(&mut image, 0x46, &1u16.to_le_bytes());
    put(&mut image, 0x54, &240u16.to_le_bytes());
    put(&mut image, 0x56, &0x0022u16.to_le_bytes());
    // Optional header (PE32+).
    let opt = 0x58;
    put(&mut image, opt, &0x20Bu16.to_le_bytes());
    put(&mut image, opt + 4, &0x200u32.to_le_bytes()); // SizeOfCode
    put(&mut image, opt + 16, &0x1000u32.to_le_bytes()); // AddressOfEntryPoint
    put(&mut image, opt + 20, &0x1000u32.to_le_bytes()); // BaseOfCode
    put(&mut image, opt + 24, &0x1_4000_0000u64.to_le_bytes()); // ImageBase
    put(&mut image, opt + 32, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(&mut image, opt + 36, &0x200u32.to_le_bytes()); // FileAlignment
    put(&mut image, opt + 40, &6u16.to_le_bytes()); // MajorOperatingSystemVersion
    put(&mut image, opt + 48, &6u16.to_le_bytes()); // MajorSubsystemVersion
    put(&mut image, opt + 56, &0x2000u32.to_le_bytes()); // SizeOfImage
    put(&mut image, opt + 60, &0x200u32.to_le_bytes()); // SizeOfHeaders
    put(&mut image, CHECKSUM_AT, &checksum.to_le_bytes());
    put(&mut image, opt + 68, &1u16.to_le_bytes()); // Subsystem: native
    put(&mut image, opt + 108, &16u32.to_le_bytes()); // NumberOfRvaAndSizes
    // Section header.
    let sec = opt + 240;
    put(&mut image, sec, b".text\0\0\0");
    put(&mut image, sec + 8, &0x100u32.to_le_bytes()); // VirtualSize
    put(&mut image, sec + 12, &0x1000u32.to_le_bytes()); // VirtualAddress
    put(&mut image, sec + 16, &0x200u32.to_le_bytes()); // SizeOfRawData
    put(&mut image, sec + 20, &0x200u32.to_le_bytes()); // PointerToRawData
    put(&mut image, sec + 36, &0x6000_0020u32.to_le_bytes());
    image[0x200..0x400].fill(fill);
    if let Some(blob) = certificate {
        let length = 8 + blob.len();
        let padded = length.div_ceil(8) * 8;
        let start = image.len();
        image.extend((length as u32).to_le_bytes());
        image.extend(0x0200u16.to_le_bytes());
        image.extend(2u16.to_le_bytes());
        image.extend(blob);
        image.resize(start + padded, 0);
        put(&mut image, SECURITY_DIR_AT, &(start as u32).to_le_bytes());
        put(
            &mut image,
            SECURITY_DIR_AT + 4,
            &(padded as u32).to_le_bytes(),
        );
    }
    image
}

/// The Authenticode digest by the byte ranges of the spec, for an image whose sections follow
/// its headers without gaps: everything but the CheckSum, the security directory entry and the
/// certificate table.
fn authenticode<D: Digest>(image: &[u8]) -> Vec<u8> {
    let cert_start = u32::from_le_bytes(
        image[SECURITY_DIR_AT..SECURITY_DIR_AT + 4]
            .try_into()
            .unwrap(),
    );
    let end = if cert_start == 0 {
        image.len()
    } else {
        cert_start as usize
    };
    let mut d = D::new();
    d.update(&image[..CHECKSUM_AT]);
    d.update(&image[CHECKSUM_AT + 4..SECURITY_DIR_AT]);
    d.update(&image[SECURITY_DIR_AT + 8..end]);
    d.finalize().to_vec()
}

fn package(dir: &Path, image: &[u8]) {
    let stamp = inf::Stamp {
        date: date_time(1_767_225_600).unwrap(),
        version: inf::DriverVersion::from_crate_version("0.1.0").unwrap(),
        arch: "amd64".to_owned(),
        catalog: "odxflt.cat".to_owned(),
    };
    let inf_text = inf::stamp(include_str!("../../../inf/odxflt.inx"), &stamp).unwrap();
    std::fs::write(dir.join("odxflt.inf"), inf_text).unwrap();
    std::fs::write(dir.join("odxflt.sys"), image).unwrap();
    let members = check::members(dir, "odxflt.inf").unwrap();
    let cat = catalog::build_unsigned(&members, date_time(1_767_225_600).unwrap()).unwrap();
    std::fs::write(dir.join("odxflt.cat"), cat).unwrap();
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("odx-package-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pe_digest_is_the_authenticode_digest_and_ignores_checksum_and_certificates() {
    let plain = pe_image(0x90, 0, None);
    let h = hash::file_hashes(&plain).unwrap();
    assert_eq!(h.kind, Kind::PeImage);
    assert_eq!(h.sha256.to_vec(), authenticode::<Sha256>(&plain));
    assert_eq!(h.sha1.to_vec(), authenticode::<Sha1>(&plain));
    assert_ne!(h.sha256.to_vec(), Sha256::digest(&plain).to_vec());
    // The checksum and an appended certificate table are not part of the digest…
    let signed = pe_image(0x90, 0xDEAD_BEEF, Some(&[0x30, 0x03, 0x02, 0x01, 0x01]));
    assert_eq!(hash::file_hashes(&signed).unwrap(), h);
    assert_eq!(authenticode::<Sha256>(&signed), h.sha256.to_vec());
    // …the code is.
    assert_ne!(hash::file_hashes(&pe_image(0x91, 0, None)).unwrap(), h);
    // Anything that is not a PE image is hashed whole.
    let flat = hash::file_hashes(b"[Version]\r\n").unwrap();
    assert_eq!(flat.kind, Kind::Flat);
    assert_eq!(
        flat.sha256.to_vec(),
        Sha256::digest(b"[Version]\r\n").to_vec()
    );
}

#[test]
fn the_catalog_lists_both_hashes_of_every_file_and_nothing_else() {
    let dir = scratch("roundtrip");
    let image = pe_image(0xCC, 0, None);
    package(&dir, &image);
    let inf_bytes = std::fs::read(dir.join("odxflt.inf")).unwrap();
    let parsed = catalog::parse(&std::fs::read(dir.join("odxflt.cat")).unwrap()).unwrap();
    assert_eq!(parsed.signers, 0);
    assert_eq!(parsed.ctl.subject_usage, [oid::CATALOG_LIST]);
    assert_eq!(parsed.ctl.subject_algorithm.oid, oid::CATALOG_LIST_MEMBER2);
    assert_eq!(parsed.names, [("OS".to_owned(), OS_LIST.to_owned())]);
    let expected = [
        (
            "odxflt.sys",
            authenticode::<Sha256>(&image),
            authenticode::<Sha1>(&image),
            oid::SPC_PE_IMAGE_DATA,
        ),
        (
            "odxflt.inf",
            Sha256::digest(&inf_bytes).to_vec(),
            Sha1::digest(&inf_bytes).to_vec(),
            oid::SPC_CAB_DATA,
        ),
    ];
    assert_eq!(parsed.entries.len(), 4);
    for (file, sha256, sha1, data_type) in &expected {
        let long = parsed
            .entries
            .iter()
            .find(|e| &e.identifier == sha256)
            .unwrap();
        assert_eq!(long.file.as_deref(), Some(*file));
        assert_eq!(long.os_attr.as_deref(), Some(OS_ATTR));
        assert!(long.member_info2);
        assert_eq!(
            long.indirect,
            Some((*data_type, oid::SHA256, sha256.clone()))
        );
        let short = parsed
            .entries
            .iter()
            .find(|e| &e.identifier == sha1)
            .unwrap();
        assert_eq!(short.file.as_deref(), Some(*file));
        assert_eq!(short.indirect, None);
    }
    let ids: Vec<&Vec<u8>> = parsed.entries.iter().map(|e| &e.identifier).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "entries are sorted by identifier");

    let report = check::check(&dir, "odxflt.inf", true).unwrap();
    assert_eq!(report.lines.len(), 2);
    let err = check::check(&dir, "odxflt.inf", false).unwrap_err();
    assert!(err.to_string().contains("not signed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_file_fails_the_check() {
    let dir = scratch("tamper");
    package(&dir, &pe_image(0xCC, 0, None));
    std::fs::write(dir.join("odxflt.sys"), pe_image(0xCD, 0, None)).unwrap();
    let err = check::check(&dir, "odxflt.inf", true).unwrap_err();
    assert!(err.to_string().contains("odxflt.sys's SHA-256"), "{err}");

    package(&dir, &pe_image(0xCC, 0, None));
    let mut inf_text = std::fs::read_to_string(dir.join("odxflt.inf")).unwrap();
    inf_text.push_str("; edited after signing\r\n");
    std::fs::write(dir.join("odxflt.inf"), inf_text).unwrap();
    let err = check::check(&dir, "odxflt.inf", true).unwrap_err();
    assert!(err.to_string().contains("odxflt.inf's SHA-256"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_unsigned_catalog_is_what_osslsigncode_takes_as_a_catalog() {
    // osslsigncode recognises a catalog by the signedData OID right after a two-byte outer
    // length (0x30 0x82 LL LL 0x06 0x09 ...), and signs the CTL content it finds inside.
    let dir = scratch("shape");
    package(&dir, &pe_image(0x00, 0, None));
    let cat = std::fs::read(dir.join("odxflt.cat")).unwrap();
    assert_eq!(&cat[..2], &[0x30, 0x82]);
    assert_eq!(
        &cat[4..15],
        &[
            0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
