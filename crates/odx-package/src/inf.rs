//! The INF: stamped from the `.inx` template the way the WDK's `stampinf -f INF -d DATE -v
//! VERSION -a ARCH -c CATALOG` stamps it, and read for what the catalog needs.
//!
//! What stampinf does, and so what [`stamp`] does:
//! - `DriverVer = MM/DD/YYYY,w.x.y.z` in `[Version]` (replacing the template's line, or added at
//!   the end of the section);
//! - `CatalogFile = NAME` in `[Version]` (likewise);
//! - every `$ARCH$` becomes the architecture (`amd64`), so `[DefaultInstall.NT$ARCH$]` becomes
//!   `[DefaultInstall.NTamd64]`; `$WINDOWS NT$` (the signature) is not a variable and stays.
//!
//! The result is ASCII with CRLF line ends (SetupAPI reads ASCII or UTF-16 INF files).

use anyhow::{Context, Result, bail, ensure};
use der::DateTime;

/// A driver version, four 16-bit parts (`DriverVer`'s `w.x.y.z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverVersion(pub [u16; 4]);

impl DriverVersion {
    /// From a crate version (`MAJOR.MINOR.PATCH`, no pre-release or build part): the fourth part
    /// is 0, as the WDK's stampinf does for a three-part `-v`.
    ///
    /// # Errors
    /// Not three numbers, a number above 65535, or a pre-release / build suffix.
    pub fn from_crate_version(version: &str) -> Result<Self> {
        ensure!(
            !version.contains(['-', '+']),
            "crate version {version:?}: a pre-release or build suffix has no DriverVer form"
        );
        let parts: Vec<&str> = version.split('.').collect();
        ensure!(
            parts.len() == 3,
            "crate version {version:?} is not MAJOR.MINOR.PATCH"
        );
        let mut out = [0u16; 4];
        for (slot, part) in out.iter_mut().zip(&parts) {
            *slot = part
                .parse()
                .with_context(|| format!("crate version {version:?}: {part:?} is not 0..=65535"))?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// The version of a crate, from its manifest: `package.version`, or with `version.workspace =
/// true` the `workspace.package.version` of the first manifest above it that has a
/// `[workspace]` table.
///
/// # Errors
/// A manifest cannot be read or has no version.
pub fn crate_version(manifest: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", manifest.display()))?;
    let version = doc
        .get("package")
        .and_then(|p| p.get("version"))
        .with_context(|| format!("{}: no package.version", manifest.display()))?;
    if let Some(v) = version.as_str() {
        return Ok(v.to_owned());
    }
    let inherited = version
        .get("workspace")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    ensure!(
        inherited,
        "{}: package.version is neither a string nor {{ workspace = true }}",
        manifest.display()
    );
    let mut dir = manifest
        .canonicalize()?
        .parent()
        .map(std::path::Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join("Cargo.toml");
        if candidate.is_file() && candidate != manifest.canonicalize()? {
            let root: toml::Table = toml::from_str(&std::fs::read_to_string(&candidate)?)
                .with_context(|| format!("{} is not TOML", candidate.display()))?;
            if let Some(ws) = root.get("workspace") {
                return ws
                    .get("package")
                    .and_then(|p| p.get("version"))
                    .and_then(toml::Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| {
                        format!("{}: no workspace.package.version", candidate.display())
                    });
            }
        }
        dir = d.parent().map(std::path::Path::to_path_buf);
    }
    bail!(
        "{}: version.workspace = true but no workspace above it",
        manifest.display()
    )
}

/// What [`stamp`] writes.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// `DriverVer`'s date (its day, UTC).
    pub date: DateTime,
    /// `DriverVer`'s version.
    pub version: DriverVersion,
    /// Replaces `$ARCH$` (`amd64`).
    pub arch: String,
    /// `CatalogFile`.
    pub catalog: String,
}

impl Stamp {
    /// `MM/DD/YYYY,w.x.y.z`.
    #[must_use]
    pub fn driver_ver(&self) -> String {
        format!(
            "{:02}/{:02}/{:04},{}",
            self.date.month(),
            self.date.day(),
            self.date.year(),
            self.version
        )
    }
}

fn section_name(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.split(']').next().map(str::trim)
}

/// `KEY = value` of a line, key trimmed; comments (`;`) are not stripped from the value.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with(';') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim())
}

/// Stamps an `.inx` template into an INF.
///
/// # Errors
/// The template is not ASCII, or has no `[Version]` section.
pub fn stamp(inx: &str, stamp: &Stamp) -> Result<String> {
    ensure!(inx.is_ascii(), "the .inx template is not ASCII");
    ensure!(
        stamp.arch.chars().all(|c| c.is_ascii_alphanumeric()),
        "architecture {:?} is not a plain name",
        stamp.arch
    );
    let lines: Vec<&str> = inx.lines().collect();
    let version_start = lines
        .iter()
        .position(|l| section_name(l).is_some_and(|s| s.eq_ignore_ascii_case("Version")))
        .context("the .inx template has no [Version] section")?;
    let version_end = lines
        .iter()
        .enumerate()
        .skip(version_start + 1)
        .find(|(_, l)| section_name(l).is_some())
        .map_or(lines.len(), |(i, _)| i);
    let directives = [
        ("DriverVer", stamp.driver_ver()),
        ("CatalogFile", stamp.catalog.clone()),
    ];
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 2);
    let mut seen = [false; 2];
    for (i, line) in lines.iter().enumerate() {
        if i == version_end {
            // Directives the template lacks go at the end of [Version], before its trailing
            // blank lines.
            let mut blank = Vec::new();
            while out.last().is_some_and(|l| l.trim().is_empty()) {
                blank.extend(out.pop());
            }
            for ((key, value), done) in directives.iter().zip(&seen) {
                if !done {
                    out.push(format!("{key:<11} = {value}"));
                }
            }
            out.extend(blank);
        }
        let in_version = i > version_start && i < version_end;
        let replaced = if in_version {
            directives
                .iter()
                .zip(seen.iter_mut())
                .find(|((key, _), _)| key_of(line).is_some_and(|k| k.eq_ignore_ascii_case(key)))
                .map(|((key, value), done)| {
                    *done = true;
                    format!("{key:<11} = {value}")
                })
        } else {
            None
        };
        out.push(replaced.unwrap_or_else(|| line.replace("$ARCH$", &stamp.arch)));
    }
    if version_end == lines.len() {
        for ((key, value), done) in directives.iter().zip(&seen) {
            if !done {
                out.push(format!("{key:<11} = {value}"));
            }
        }
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    ensure!(!text.contains("$ARCH$"), "a $ARCH$ was left in the INF");
    Ok(text)
}

/// The value of `KEY` in section `SECTION` (first occurrence; quotes and trailing comment
/// removed).
#[must_use]
pub fn directive(inf: &str, section: &str, key: &str) -> Option<String> {
    let mut current: Option<&str> = None;
    for line in inf.lines() {
        if let Some(s) = section_name(line) {
            current = Some(s);
            continue;
        }
        if !current.is_some_and(|s| s.eq_ignore_ascii_case(section)) {
            continue;
        }
        if key_of(line).is_some_and(|k| k.eq_ignore_ascii_case(key)) {
            let value = line.split_once('=').map_or("", |(_, v)| v);
            let value = value.split(';').next().unwrap_or("").trim();
            return Some(value.trim_matches('"').to_owned());
        }
    }
    None
}

/// The files of every `[SourceDisksFiles]` / `[SourceDisksFiles.arch]` section, in order, once
/// each (the files a catalog must cover besides the INF).
#[must_use]
pub fn source_disks_files(inf: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    let mut in_section = false;
    for line in inf.lines() {
        if let Some(s) = section_name(line) {
            let lower = s.to_ascii_lowercase();
            in_section = lower == "sourcedisksfiles" || lower.starts_with("sourcedisksfiles.");
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(name) = key_of(line).filter(|k| !k.is_empty()) {
            if !files.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                files.push(name.to_owned());
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp_for(date: (u16, u8, u8)) -> Stamp {
        Stamp {
            date: DateTime::new(date.0, date.1, date.2, 0, 0, 0).unwrap(),
            version: DriverVersion::from_crate_version("0.1.0").unwrap(),
            arch: "amd64".to_owned(),
            catalog: "odxflt.cat".to_owned(),
        }
    }

    #[test]
    fn versions_from_crate_versions() {
        assert_eq!(
            DriverVersion::from_crate_version("1.22.333")
                .unwrap()
                .to_string(),
            "1.22.333.0"
        );
        for bad in [
            "1.2",
            "1.2.3.4",
            "1.2.3-rc.1",
            "1.2.3+meta",
            "1.70000.0",
            "a.b.c",
        ] {
            assert!(DriverVersion::from_crate_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stamps_like_stampinf() {
        let inx = "[Version]\nSignature = \"$WINDOWS NT$\"\nDriverVer   =\nCatalogFile = x.cat\n\n\
                   [DefaultInstall.NT$ARCH$]\nCopyFiles = a\n";
        let inf = stamp(inx, &stamp_for((2026, 3, 9))).unwrap();
        assert_eq!(
            inf,
            "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\nDriverVer   = 03/09/2026,0.1.0.0\r\n\
             CatalogFile = odxflt.cat\r\n\r\n[DefaultInstall.NTamd64]\r\nCopyFiles = a\r\n"
        );
        assert_eq!(
            directive(&inf, "version", "driverver").as_deref(),
            Some("03/09/2026,0.1.0.0")
        );
    }

    #[test]
    fn missing_directives_are_added_to_the_version_section() {
        let inx = "[Version]\nSignature = \"$WINDOWS NT$\"\n\n[Strings]\nA = \"b\"\n";
        let inf = stamp(inx, &stamp_for((2026, 12, 31))).unwrap();
        assert!(
            inf.starts_with(
                "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\nDriverVer   = 12/31/2026,0.1.0.0\r\n\
                 CatalogFile = odxflt.cat\r\n\r\n[Strings]"
            ),
            "{inf}"
        );
        let only_version = stamp(
            "[Version]\nSignature = \"$WINDOWS NT$\"\n",
            &stamp_for((2026, 1, 2)),
        );
        assert!(
            only_version
                .unwrap()
                .ends_with("CatalogFile = odxflt.cat\r\n")
        );
    }

    #[test]
    fn refuses_what_stampinf_cannot_stamp() {
        assert!(stamp("[Strings]\n", &stamp_for((2026, 1, 1))).is_err());
        assert!(stamp("[Version]\n; caf\u{e9}\n", &stamp_for((2026, 1, 1))).is_err());
    }

    #[test]
    fn the_shipped_template_names_its_files() {
        let inx = include_str!("../../../inf/odxflt.inx");
        let inf = stamp(inx, &stamp_for((2026, 6, 1))).unwrap();
        assert_eq!(source_disks_files(&inf), ["odxflt.sys"]);
        assert_eq!(
            directive(&inf, "Version", "CatalogFile").as_deref(),
            Some("odxflt.cat")
        );
        assert_eq!(
            directive(&inf, "Version", "DriverVer").as_deref(),
            Some("06/01/2026,0.1.0.0")
        );
        assert!(inf.contains("[DefaultInstall.NTamd64.10.0...25952]"));
        assert!(inf.contains("[DefaultInstall.NTamd64]"));
        assert!(inf.contains("Signature   = \"$WINDOWS NT$\""));
        assert!(!inf.contains("$ARCH$"));
    }
}
