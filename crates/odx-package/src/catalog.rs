//! A driver catalog (`.cat`): PKCS #7 SignedData whose content is a certificate trust list
//! (`szOID_CTL`) of the package's files.
//!
//! The layout is inf2cat's for Windows 8 and later (catalog version 2, `CRYPTCAT_VERSION_2`):
//!
//! ```text
//! ContentInfo { signedData, SignedData {
//!   version 1, digestAlgorithms {}, encapContentInfo { szOID_CTL, [0] CertificateTrustList {
//!     subjectUsage      { szOID_CATALOG_LIST }
//!     listIdentifier    16 bytes (inf2cat: a fresh GUID; here: derived from the members)
//!     thisUpdate        UTCTime
//!     subjectAlgorithm  { szOID_CATALOG_LIST_MEMBER2, NULL }
//!     trustedSubjects   SEQUENCE OF { subjectIdentifier OCTET STRING, attributes SET OF ... }
//!                       per file: one entry identified by its SHA-256 hash carrying
//!                       CAT_MEMBERINFO2, the File and OSAttr name values and the
//!                       SpcIndirectDataContent with the SHA-256 digest; one identified by its
//!                       SHA-1 hash carrying CAT_MEMBERINFO2, File and OSAttr; sorted by
//!                       identifier
//!     ctlExtensions [0] { OS name value }
//!   } }, signerInfos {} } }
//! ```
//!
//! [`build_unsigned`] writes it with no signer; osslsigncode's `sign` replaces the SignedData by
//! one that carries the same content and a signature (it signs catalogs as signtool does, with
//! `szOID_CTL` as the signed content type). [`parse`] reads either form back.

use anyhow::{Context, Result, bail, ensure};
use authenticode::{DigestInfo, SpcAttributeTypeAndOptionalValue, SpcIndirectDataContent};
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::{BmpString, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, DateTime, Decode, Encode, Sequence, Tag, TagNumber};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::time::Time;

use crate::hash::{FileHashes, Kind};
use crate::oid;

/// `CRYPTCAT_ATTR_AUTHENTICATED | CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_NAMEASCII`
/// (mscat.h), the flags inf2cat gives every name value.
pub const NAME_VALUE_FLAGS: u32 = 0x1001_0001;

/// The `OS` attribute for inf2cat's `/os:8_X64,6_3_X64,10_X64`: Windows 8, 8.1, and 10/11 on
/// x64 (odxflt's INF is for Windows 8 and later).
pub const OS_LIST: &str = "8X64,_v63_X64,_v100_X64";

/// The `OSAttr` of every member for the same list (`2:` then NT versions 6.2, 6.3, 10.0).
pub const OS_ATTR: &str = "2:6.2,2:6.3,2:10.0";

/// `SpcPeImageData { flags '', file [0] SpcLink { file [2] SpcString { unicode [0] "" } } }`:
/// the image data of a PE member (what inf2cat writes for an image it does not take the
/// signature's own content from).
const PE_IMAGE_DATA: [u8; 11] = [
    0x30, 0x09, 0x03, 0x01, 0x00, 0xA0, 0x04, 0xA2, 0x02, 0x80, 0x00,
];

/// `SpcLink { file [2] SpcString { unicode [0] "" } }`: the value of a flat member's
/// `SPC_CAB_DATA_OBJID`.
const FLAT_LINK: [u8; 4] = [0xA2, 0x02, 0x80, 0x00];

/// A certificate trust list (wincrypt's `CTL_INFO`).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertificateTrustList {
    /// `CTLVersion DEFAULT v1`: absent in catalogs.
    #[asn1(optional = "true")]
    pub version: Option<u32>,
    /// `SubjectUsage`: `szOID_CATALOG_LIST`.
    pub subject_usage: Vec<ObjectIdentifier>,
    /// `ListIdentifier`.
    #[asn1(optional = "true")]
    pub list_identifier: Option<OctetString>,
    /// `SequenceNumber`.
    #[asn1(optional = "true")]
    pub sequence_number: Option<der::asn1::Int>,
    /// `ThisUpdate`.
    pub this_update: Time,
    /// `NextUpdate`.
    #[asn1(optional = "true")]
    pub next_update: Option<Time>,
    /// `SubjectAlgorithm`: the catalog version.
    pub subject_algorithm: AlgorithmIdentifierOwned,
    /// The members.
    #[asn1(optional = "true")]
    pub trusted_subjects: Option<Vec<TrustedSubject>>,
    /// Catalog-level attributes (name values such as `OS`).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// One member.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TrustedSubject {
    /// The raw hash the member is looked up by.
    pub subject_identifier: OctetString,
    /// Its attributes.
    #[asn1(optional = "true")]
    pub attributes: Option<SetOfVec<Attribute>>,
}

/// `CAT_NAMEVALUE`: a name, flags, and a NUL-terminated UTF-16LE value.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct NameValue {
    /// `File`, `OSAttr`, `OS`, …
    pub tag: BmpString,
    /// [`NAME_VALUE_FLAGS`].
    pub flags: u32,
    /// UTF-16LE, NUL-terminated.
    pub value: OctetString,
}

impl NameValue {
    /// A name value with inf2cat's flags.
    ///
    /// # Errors
    /// The name cannot be a BMP string.
    pub fn new(tag: &str, value: &str) -> Result<Self> {
        let mut bytes: Vec<u8> = value.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.extend([0, 0]);
        Ok(Self {
            tag: BmpString::from_utf8(tag)?,
            flags: NAME_VALUE_FLAGS,
            value: OctetString::new(bytes)?,
        })
    }

    /// The value as text (without its NUL).
    #[must_use]
    pub fn text(&self) -> String {
        let units: Vec<u16> = self
            .value
            .as_bytes()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }
}

/// One file of the package.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its name in the package (as the INF names it).
    pub file: String,
    /// Its hashes.
    pub hashes: FileHashes,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn name_value_attribute(tag: &str, value: &str) -> Result<Attribute> {
    attribute(
        oid::CAT_NAMEVALUE,
        Any::encode_from(&NameValue::new(tag, value)?)?,
    )
}

fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::null()),
    }
}

fn indirect_data(member: &Member) -> Result<Attribute> {
    let (value_type, value) = match member.hashes.kind {
        Kind::PeImage => (oid::SPC_PE_IMAGE_DATA, Any::from_der(&PE_IMAGE_DATA)?),
        Kind::Flat => (oid::SPC_CAB_DATA, Any::from_der(&FLAT_LINK)?),
    };
    let content = SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue { value_type, value },
        message_digest: DigestInfo {
            digest_algorithm: algorithm(oid::SHA256),
            digest: OctetString::new(member.hashes.sha256.to_vec())?,
        },
    };
    attribute(oid::SPC_INDIRECT_DATA, Any::encode_from(&content)?)
}

fn entries(member: &Member) -> Result<[TrustedSubject; 2]> {
    let info2 = || -> Result<Attribute> {
        let marker = Any::new(
            Tag::ContextSpecific {
                constructed: false,
                number: TagNumber::N2,
            },
            Vec::new(),
        )?;
        attribute(oid::CAT_MEMBERINFO2, marker)
    };
    let common = || -> Result<Vec<Attribute>> {
        Ok(vec![
            info2()?,
            name_value_attribute("File", &member.file)?,
            name_value_attribute("OSAttr", OS_ATTR)?,
        ])
    };
    let mut sha256 = common()?;
    sha256.push(indirect_data(member)?);
    Ok([
        TrustedSubject {
            subject_identifier: OctetString::new(member.hashes.sha256.to_vec())?,
            attributes: Some(SetOfVec::try_from(sha256)?),
        },
        TrustedSubject {
            subject_identifier: OctetString::new(member.hashes.sha1.to_vec())?,
            attributes: Some(SetOfVec::try_from(common()?)?),
        },
    ])
}

/// The certificate trust list of `members`, dated `this_update`.
///
/// # Errors
/// Two members with one name, or a value DER cannot hold.
pub fn trust_list(members: &[Member], this_update: DateTime) -> Result<CertificateTrustList> {
    for (i, m) in members.iter().enumerate() {
        ensure!(
            !members
                .iter()
                .skip(i + 1)
                .any(|o| o.file.eq_ignore_ascii_case(&m.file)),
            "{} is listed twice",
            m.file
        );
    }
    let mut subjects = Vec::with_capacity(members.len() * 2);
    for m in members {
        subjects.extend(entries(m)?);
    }
    subjects.sort_by(|a, b| {
        a.subject_identifier
            .as_bytes()
            .cmp(b.subject_identifier.as_bytes())
    });
    let mut id = Sha256::new();
    for s in &subjects {
        id.update(s.subject_identifier.as_bytes());
    }
    let id = id.finalize();
    let os = Extension {
        extn_id: oid::CAT_NAMEVALUE,
        critical: false,
        extn_value: OctetString::new(NameValue::new("OS", OS_LIST)?.to_der()?)?,
    };
    Ok(CertificateTrustList {
        version: None,
        subject_usage: vec![oid::CATALOG_LIST],
        list_identifier: Some(OctetString::new(id.get(..16).unwrap_or_default().to_vec())?),
        sequence_number: None,
        this_update: Time::UtcTime(UtcTime::from_date_time(this_update)?),
        next_update: None,
        subject_algorithm: algorithm(oid::CATALOG_LIST_MEMBER2),
        trusted_subjects: Some(subjects),
        extensions: Some(vec![os]),
    })
}

/// The catalog of `members` without a signature (DER), for osslsigncode to sign.
///
/// # Errors
/// See [`trust_list`].
pub fn build_unsigned(members: &[Member], this_update: DateTime) -> Result<Vec<u8>> {
    let ctl = trust_list(members, this_update)?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::CTL,
            econtent: Some(Any::encode_from(&ctl)?),
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}

/// One member entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hash it is looked up by.
    pub identifier: Vec<u8>,
    /// `File`.
    pub file: Option<String>,
    /// `OSAttr`.
    pub os_attr: Option<String>,
    /// Carries `CAT_MEMBERINFO2`.
    pub member_info2: bool,
    /// From its SpcIndirectDataContent: the data type (PE image / flat), digest algorithm and
    /// digest.
    pub indirect: Option<(ObjectIdentifier, ObjectIdentifier, Vec<u8>)>,
}

/// A catalog as read back.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// Signer infos (0: unsigned).
    pub signers: usize,
    /// Certificates carried.
    pub certificates: usize,
    /// The signers' digest algorithms.
    pub signer_digests: Vec<ObjectIdentifier>,
    /// The trust list.
    pub ctl: CertificateTrustList,
    /// Its members.
    pub entries: Vec<Entry>,
    /// Catalog-level name values (`OS`, …).
    pub names: Vec<(String, String)>,
}

fn decode_entry(subject: &TrustedSubject) -> Result<Entry> {
    let mut entry = Entry {
        identifier: subject.subject_identifier.as_bytes().to_vec(),
        file: None,
        os_attr: None,
        member_info2: false,
        indirect: None,
    };
    for attr in subject.attributes.iter().flat_map(SetOfVec::iter) {
        let value = attr
            .values
            .get(0)
            .with_context(|| format!("attribute {} without a value", attr.oid))?;
        if attr.oid == oid::CAT_MEMBERINFO2 {
            entry.member_info2 = true;
        } else if attr.oid == oid::CAT_NAMEVALUE {
            let nv: NameValue = value.decode_as()?;
            match nv.tag.to_string().as_str() {
                "File" => entry.file = Some(nv.text()),
                "OSAttr" => entry.os_attr = Some(nv.text()),
                _ => {}
            }
        } else if attr.oid == oid::SPC_INDIRECT_DATA {
            let content: SpcIndirectDataContent = value.decode_as()?;
            entry.indirect = Some((
                content.data.value_type,
                content.message_digest.digest_algorithm.oid,
                content.message_digest.digest.as_bytes().to_vec(),
            ));
        }
    }
    Ok(entry)
}

/// Reads a catalog (signed or not).
///
/// # Errors
/// Not DER, not SignedData, or its content is not a certificate trust list.
pub fn parse(bytes: &[u8]) -> Result<Parsed> {
    let info = ContentInfo::from_der(bytes).context("not a DER ContentInfo")?;
    ensure!(
        info.content_type == oid::SIGNED_DATA,
        "content type {} is not SignedData",
        info.content_type
    );
    let signed: SignedData = info.content.decode_as().context("not SignedData")?;
    ensure!(
        signed.encap_content_info.econtent_type == oid::CTL,
        "content type {} is not szOID_CTL",
        signed.encap_content_info.econtent_type
    );
    let Some(content) = signed.encap_content_info.econtent else {
        bail!("the SignedData carries no content");
    };
    let ctl: CertificateTrustList = content
        .decode_as()
        .context("not a certificate trust list")?;
    let entries = ctl
        .trusted_subjects
        .iter()
        .flatten()
        .map(decode_entry)
        .collect::<Result<Vec<_>>>()?;
    let mut names = Vec::new();
    for ext in ctl.extensions.iter().flatten() {
        if ext.extn_id == oid::CAT_NAMEVALUE {
            let nv = NameValue::from_der(ext.extn_value.as_bytes())?;
            names.push((nv.tag.to_string(), nv.text()));
        }
    }
    let certificates = signed.certificates.as_ref().map_or(0, |c| {
        c.0.iter()
            .filter(|c| matches!(c, CertificateChoices::Certificate(_)))
            .count()
    });
    Ok(Parsed {
        signers: signed.signer_infos.0.len(),
        certificates,
        signer_digests: signed
            .signer_infos
            .0
            .iter()
            .map(|s| s.digest_alg.oid)
            .collect(),
        ctl,
        entries,
        names,
    })
}
