//! `odx-package`: the Linux half of `cargo make package` (scripts/package.sh runs it; openssl
//! and osslsigncode do the signing). See docs/driver.md, "Building, signing and deploying on
//! Windows".

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use odx_package::{catalog, check, date_time, hash, hex, inf};

/// odxflt's driver package on Linux: stamp the INF, write the catalog, check a package.
#[derive(Debug, Parser)]
#[command(name = "odx-package", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stamp an .inx template into an INF (DriverVer, CatalogFile, $ARCH$), as stampinf does.
    StampInf {
        /// The template (inf/odxflt.inx).
        inx: PathBuf,
        /// The INF to write.
        out: PathBuf,
        /// The crate whose version DriverVer carries (driver/Cargo.toml).
        #[arg(long)]
        manifest: PathBuf,
        /// DriverVer's date: seconds since 1970 (SOURCE_DATE_EPOCH, or the commit's time).
        #[arg(long)]
        epoch: u64,
        /// The architecture $ARCH$ stands for.
        #[arg(long, default_value = "amd64")]
        arch: String,
        /// CatalogFile.
        #[arg(long, default_value = "odxflt.cat")]
        catalog: String,
    },
    /// Write the unsigned catalog of the INF and the files its [SourceDisksFiles] name (all in
    /// the INF's folder), as inf2cat /os:8_X64,6_3_X64,10_X64 lays it out.
    Catalog {
        /// The stamped INF.
        inf: PathBuf,
        /// The catalog to write.
        out: PathBuf,
        /// The catalog's time: seconds since 1970.
        #[arg(long)]
        epoch: u64,
    },
    /// Parse a package folder's catalog back and compare it with the files.
    Check {
        /// The package folder.
        dir: PathBuf,
        /// The INF in it.
        #[arg(long, default_value = "odxflt.inf")]
        inf: String,
        /// Accept an unsigned catalog.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Print the catalog hashes of files (PE Authenticode for images, plain otherwise).
    Hash {
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List a catalog's entries.
    List {
        /// The catalog.
        cat: PathBuf,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::StampInf {
            inx,
            out,
            manifest,
            epoch,
            arch,
            catalog,
        } => {
            let text = std::fs::read_to_string(&inx)
                .with_context(|| format!("cannot read {}", inx.display()))?;
            let version = inf::crate_version(&manifest)?;
            let stamp = inf::Stamp {
                date: date_time(epoch)?,
                version: inf::DriverVersion::from_crate_version(&version)?,
                arch,
                catalog,
            };
            let stamped =
                inf::stamp(&text, &stamp).with_context(|| format!("{}", inx.display()))?;
            std::fs::write(&out, stamped)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "{}: DriverVer = {}, CatalogFile = {}, $ARCH$ = {}",
                out.display(),
                stamp.driver_ver(),
                stamp.catalog,
                stamp.arch
            );
        }
        Command::Catalog { inf, out, epoch } => {
            let dir = inf.parent().map(PathBuf::from).unwrap_or_default();
            let name = inf
                .file_name()
                .and_then(|n| n.to_str())
                .context("the INF path has no file name")?;
            let members = check::members(&dir, name)?;
            let bytes = catalog::build_unsigned(&members, date_time(epoch)?)?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "{}: {} members, {} entries, {} bytes (unsigned)",
                out.display(),
                members.len(),
                members.len() * 2,
                bytes.len()
            );
        }
        Command::Check {
            dir,
            inf,
            allow_unsigned,
        } => {
            let report = check::check(&dir, &inf, allow_unsigned)?;
            println!(
                "{}: {} signer(s); every file under both hashes, nothing else",
                report.catalog, report.signers
            );
            for line in &report.lines {
                println!("  {line}");
            }
        }
        Command::Hash { files } => {
            for f in files {
                let bytes =
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
                let h = hash::file_hashes(&bytes)?;
                println!(
                    "{} {:?} sha1 {} sha256 {}",
                    f.display(),
                    h.kind,
                    hex(&h.sha1),
                    hex(&h.sha256)
                );
            }
        }
        Command::List { cat } => {
            let bytes =
                std::fs::read(&cat).with_context(|| format!("cannot read {}", cat.display()))?;
            let parsed = catalog::parse(&bytes)?;
            println!(
                "{}: {} signer(s) ({:?}), {} certificate(s), member algorithm {}, names {:?}",
                cat.display(),
                parsed.signers,
                parsed
                    .signer_digests
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                parsed.certificates,
                parsed.ctl.subject_algorithm.oid,
                parsed.names
            );
            for e in &parsed.entries {
                println!(
                    "  {} {:?} {:?}{}",
                    hex(&e.identifier),
                    e.file.as_deref().unwrap_or("?"),
                    e.os_attr.as_deref().unwrap_or("?"),
                    e.indirect
                        .as_ref()
                        .map(|(t, a, d)| format!(" {t} {a} {}", hex(d)))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odx-package: {e:#}");
            ExitCode::FAILURE
        }
    }
}
