//! Linker settings of the driver image.
//!
//! - WDK build (feature `wdk`, Windows host): `wdk_build::configure_wdk_binary_build()` emits
//!   windows-drivers-rs' KMDF settings (library paths, `/ENTRY:FxDriverEntry`, WDK libraries).
//! - Linux cross build (`scripts/cross-build-driver.sh`, target `x86_64-pc-windows-msvc`,
//!   lld-link): the same kernel-driver flags, minus what needs the WDK, are emitted here.
//!   [`KERNEL_LINK_ARGS`] lists them next to the wdk-build flag each one mirrors; docs/driver.md
//!   has the table, including the flags lld-link does not take.
//! - Host builds (tests, clippy): nothing.

/// The flags wdk-build 0.6 (`Config::configure_binary_build`, KMDF) passes to `link.exe`,
/// as given to lld-link for the Linux-built image.
const KERNEL_LINK_ARGS: &[&str] = &[
    // wdk-build: /DRIVER /NODEFAULTLIB /SUBSYSTEM:NATIVE /KERNEL (WindowsDriver.KernelMode.props).
    // lld-link 16 accepts /KERNEL and /IGNORE:4257 without effect: /KERNEL only makes link.exe
    // check that objects were compiled with /kernel, which rustc cannot do (hence 4257).
    "/DRIVER",
    "/NODEFAULTLIB",
    "/SUBSYSTEM:NATIVE",
    "/KERNEL",
    "/IGNORE:4257",
    // wdk-build: /ENTRY:FxDriverEntry (KMDF stub from WdfDriverEntry.lib, absent on Linux):
    // the Linux image enters DriverEntry directly (docs/driver.md, "KMDF and the Linux build").
    "/ENTRY:DriverEntry",
    // wdk-build: /NXCOMPAT /DYNAMICBASE (Microsoft.Link.Common.props)
    "/NXCOMPAT",
    "/DYNAMICBASE",
    // wdk-build: /MAP /MAPINFO:EXPORTS
    "/MAP",
    "/MAPINFO:EXPORTS",
    // wdk-build: /OPT:REF,ICF
    "/OPT:REF,ICF",
    // wdk-build: /INTEGRITYCHECK (the image loads only with a valid signature)
    "/INTEGRITYCHECK",
    // wdk-build: /MANIFEST:NO
    "/MANIFEST:NO",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_WDK").is_some() {
        wdk();
        return;
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "windows" {
        for arg in KERNEL_LINK_ARGS {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    }
}

#[cfg(feature = "wdk")]
fn wdk() {
    if let Err(error) = wdk_build::configure_wdk_binary_build() {
        println!("cargo::error=wdk-build could not configure the driver build: {error}");
    }
}

#[cfg(not(feature = "wdk"))]
fn wdk() {}
