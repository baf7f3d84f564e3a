//! The INF is checked against the driver: both install variants declare `SupportedFeatures` 0x3,
//! the service and instance values match [`crate::registration`], and the registration table
//! lists only the intended operations. A small INF reader (sections, `key = value` lines,
//! `%string%` substitution, comments) is enough for the subset the INF uses.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::registration::{
    ALTITUDE, IRP_MJ_FILE_SYSTEM_CONTROL, LOAD_ORDER_GROUP, SERVICE_NAME, SUPPORTED_FEATURES,
};

const INX: &str = include_str!("../../inf/odxflt.inx");

/// Sections by lower-cased name; `$ARCH$` resolved to `amd64` as `stampinf -a amd64` does.
struct Inf {
    sections: BTreeMap<String, Vec<String>>,
    strings: BTreeMap<String, String>,
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

impl Inf {
    fn parse(text: &str) -> Self {
        let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = String::new();
        for raw in text.lines() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name.replace("$ARCH$", "amd64").to_lowercase();
                sections.entry(current.clone()).or_default();
            } else {
                sections
                    .entry(current.clone())
                    .or_default()
                    .push(line.to_string());
            }
        }
        let strings = sections
            .get("strings")
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| {
                        (
                            k.trim().to_lowercase(),
                            v.trim().trim_matches('"').to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { sections, strings }
    }

    /// Replaces `%name%` with its string (DIRIDs such as `%13%` stay).
    fn expand(&self, value: &str) -> String {
        let mut out = String::new();
        let mut parts = value.split('%');
        out.push_str(parts.next().unwrap_or_default());
        let mut inside = true;
        for part in parts {
            if inside {
                match self.strings.get(&part.to_lowercase()) {
                    Some(s) => out.push_str(s),
                    None => {
                        out.push('%');
                        out.push_str(part);
                        out.push('%');
                    }
                }
            } else {
                out.push_str(part);
            }
            inside = !inside;
        }
        out
    }

    fn section(&self, name: &str) -> &[String] {
        self.sections
            .get(&name.to_lowercase())
            .unwrap_or_else(|| panic!("INF has no section [{name}]"))
    }

    /// `key = value` of a section (the first one), expanded, quotes removed.
    fn value(&self, section: &str, key: &str) -> String {
        let line = self
            .section(section)
            .iter()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| panic!("[{section}] has no {key}"));
        self.expand(&line).trim_matches('"').to_string()
    }

    /// The service section an install section's `.Services` adds.
    fn service_section(&self, install: &str) -> String {
        let add = self.value(&format!("{install}.Services"), "AddService");
        let fields: Vec<&str> = add.split(',').map(str::trim).collect();
        assert_eq!(
            fields.first().copied(),
            Some(SERVICE_NAME),
            "AddService {add}"
        );
        fields.get(2).unwrap().to_string()
    }

    /// The `AddReg` entries of a service section: (key, value name, type, data), expanded.
    fn registry(&self, service: &str) -> Vec<[String; 4]> {
        let add_reg = self.value(service, "AddReg");
        self.section(&add_reg)
            .iter()
            .map(|line| {
                let fields: Vec<String> = self
                    .expand(line)
                    .split(',')
                    .map(|f| f.trim().replace('"', ""))
                    .collect();
                assert_eq!(fields.len(), 5, "AddReg line {line}");
                assert_eq!(fields[0], "HKR");
                [
                    fields[1].clone(),
                    fields[2].clone(),
                    fields[3].clone(),
                    fields[4].clone(),
                ]
            })
            .collect()
    }
}

const PARAMETERS_INSTALL: &str = "DefaultInstall.NTamd64.10.0...25952";
const DOWNLEVEL_INSTALL: &str = "DefaultInstall.NTamd64";

fn entry(entries: &[[String; 4]], key: &str, name: &str) -> (String, String) {
    entries
        .iter()
        .find(|e| e[0].eq_ignore_ascii_case(key) && e[1].eq_ignore_ascii_case(name))
        .map(|e| (e[2].clone(), e[3].clone()))
        .unwrap_or_else(|| panic!("no AddReg entry {key}\\{name} in {entries:?}"))
}

fn parse_number(text: &str) -> u32 {
    text.strip_prefix("0x").map_or_else(
        || text.parse().unwrap(),
        |hex| u32::from_str_radix(hex, 16).unwrap(),
    )
}

/// Checks one install variant; `prefix` is where `SupportedFeatures` and `Instances` live
/// under the service key.
fn check_variant(inf: &Inf, install: &str, prefix: &str) {
    let service = inf.service_section(install);
    assert_eq!(inf.value(&service, "ServiceType"), "2", "{service}");
    // SERVICE_SYSTEM_START: loaded during kernel initialisation, before the SMB server, Hyper-V
    // or any user-mode copy engine can send an offload request; a demand-start filter would
    // leave every request before `fltmc load` ungoverned (docs/driver.md, "Start type").
    assert_eq!(inf.value(&service, "StartType"), "1", "{service}");
    assert_eq!(inf.value(&service, "Dependencies"), "FltMgr", "{service}");
    assert_eq!(
        inf.value(&service, "LoadOrderGroup"),
        LOAD_ORDER_GROUP,
        "{service}"
    );
    let entries = inf.registry(&service);

    let (kind, features) = entry(&entries, prefix, "SupportedFeatures");
    assert_eq!(kind, "0x00010001", "SupportedFeatures must be a REG_DWORD");
    assert_eq!(
        parse_number(&features),
        SUPPORTED_FEATURES,
        "{install}: SupportedFeatures"
    );
    assert_eq!(parse_number(&features), 0x3);

    // The driver reads RegistryPath\Parameters\DefaultPolicy in both variants.
    let (policy_kind, policy) = entry(&entries, "Parameters", "DefaultPolicy");
    assert_eq!(
        policy_kind, "0x00010003",
        "DefaultPolicy: REG_DWORD, not clobbered on reinstall"
    );
    assert_eq!(
        odx_core::policy::PolicyMode::from_u32(parse_number(&policy)),
        Some(odx_core::policy::PolicyMode::Enforce)
    );

    let instances = if prefix.is_empty() {
        "Instances".to_string()
    } else {
        format!("{prefix}\\Instances")
    };
    let (_, default_instance) = entry(&entries, &instances, "DefaultInstance");
    let instance_key = format!("{instances}\\{default_instance}");
    let (_, altitude) = entry(&entries, &instance_key, "Altitude");
    assert_eq!(altitude, ALTITUDE);
    let (flags_kind, flags) = entry(&entries, &instance_key, "Flags");
    assert_eq!(
        (flags_kind.as_str(), parse_number(&flags)),
        ("0x00010001", 0)
    );
}

#[test]
fn supported_features_is_0x3_in_the_parameters_variant() {
    check_variant(&Inf::parse(INX), PARAMETERS_INSTALL, "Parameters");
}

#[test]
fn supported_features_is_0x3_in_the_downlevel_variant() {
    check_variant(&Inf::parse(INX), DOWNLEVEL_INSTALL, "");
}

#[test]
fn both_variants_copy_the_image_and_the_parameters_one_targets_the_driver_store() {
    let inf = Inf::parse(INX);
    let modern = inf.service_section(PARAMETERS_INSTALL);
    assert_eq!(inf.value(&modern, "ServiceBinary"), "%13%\\odxflt.sys");
    let downlevel = inf.service_section(DOWNLEVEL_INSTALL);
    assert_eq!(inf.value(&downlevel, "ServiceBinary"), "%12%\\odxflt.sys");
    assert_eq!(inf.value("Version", "Class"), "ActivityMonitor");
}

#[test]
fn the_reader_sees_a_wrong_value() {
    let broken = INX.replacen(
        r#"HKR,,"SupportedFeatures",0x00010001,0x3"#,
        r#"HKR,,"SupportedFeatures",0x00010001,0x1"#,
        1,
    );
    assert_ne!(broken, INX);
    let result =
        std::panic::catch_unwind(|| check_variant(&Inf::parse(&broken), DOWNLEVEL_INSTALL, ""));
    assert!(
        result.is_err(),
        "a SupportedFeatures of 0x1 must fail the check"
    );
}

#[test]
fn the_registration_table_lists_only_file_system_control() {
    use crate::ffi::registration::{major_functions, operation_table, tests::Probe};
    let table = operation_table::<Probe>();
    let majors: Vec<u8> = major_functions(&table).copied().collect();
    assert_eq!(majors, [IRP_MJ_FILE_SYSTEM_CONTROL]);
}

/// The package is WDM: no KMDF section in the INF, no KMDF metadata, and no code that creates or
/// needs a WDF object (a KMDF driver that creates no WDF object and never calls
/// `WdfDriverMiniportUnload` would leave the framework's driver object behind at unload).
#[test]
fn the_package_is_wdm_with_one_entry_path() {
    let inf = Inf::parse(INX);
    for name in inf.sections.keys() {
        assert!(
            !name.contains("wdf"),
            "INF section [{name}] belongs to KMDF"
        );
    }
    assert!(!INX.to_lowercase().contains("kmdfservice"));
    let manifest = include_str!("../Cargo.toml");
    assert!(
        manifest.contains("driver-type = \"WDM\""),
        "driver/Cargo.toml must declare the WDM driver model"
    );
    assert!(!manifest.contains("kmdf-version"));
    for (file, text) in [
        ("ffi/entry.rs", include_str!("ffi/entry.rs")),
        ("ffi/mod.rs", include_str!("ffi/mod.rs")),
        ("ffi/registration.rs", include_str!("ffi/registration.rs")),
    ] {
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect();
        assert!(!code.contains("Wdf"), "{file} calls into KMDF");
        assert!(!code.contains("kmdf"), "{file} refers to a KMDF module");
    }
}
