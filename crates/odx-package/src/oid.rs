//! Object identifiers of catalogs and Authenticode (wincrypt.h / mscat.h / wintrust.h names).

use der::asn1::ObjectIdentifier;

/// `szOID_RSA_signedData`: PKCS #7 SignedData.
pub const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `szOID_CTL`: a certificate trust list, the content of a catalog.
pub const CTL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
/// `szOID_CATALOG_LIST`: the CTL's subject usage for a catalog.
pub const CATALOG_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.1");
/// `szOID_CATALOG_LIST_MEMBER`: catalog version 1 (SHA-1 members, hex tags).
pub const CATALOG_LIST_MEMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.2");
/// `szOID_CATALOG_LIST_MEMBER2`: catalog version 2 (`CRYPTCAT_VERSION_2`, Windows 8 and later):
/// members identified by their raw hash, SHA-256 with SHA-1 beside it.
pub const CATALOG_LIST_MEMBER2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.3");
/// `CAT_NAMEVALUE_OBJID`: a named attribute (`File`, `OSAttr`, `OS`).
pub const CAT_NAMEVALUE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.1");
/// `CAT_MEMBERINFO2_OBJID`: the member-info marker of a version 2 catalog.
pub const CAT_MEMBERINFO2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.3");
/// `SPC_INDIRECT_DATA_OBJID`: Authenticode's SpcIndirectDataContent (what is hashed, the digest).
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATAOBJ`: the member is a PE image (Authenticode digest).
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_CAB_DATA_OBJID`: used by inf2cat for flat files (the digest of the whole file).
pub const SPC_CAB_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");
/// `szOID_OIWSEC_sha1`.
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// `szOID_NIST_sha256`.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
