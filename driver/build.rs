//! Linker settings of the driver image.
//!
//! - WDK build (feature `wdk`, Windows host): `wdk_build::configure_wdk_binary_build()` emits
//!   windows-drivers-rs' WDM settings (library paths, `/ENTRY:DriverEntry`, WDK libraries).
//! - Linux cross build (`scripts/cross-build-driver.sh`, target `x86_64-pc-windows-msvc`,
//!   lld-link): the same kernel-driver flags, minus what needs the WDK, are emitted here.
//!   [`KERNEL_LINK_ARGS`] lists them next to the wdk-build flag each one mirrors; docs/driver.md
//!   has the table, including the flags lld-link does not take.
//! - Host builds (tests, clippy): nothing.
//!
//! Both Windows builds also compile the C shim `shim/seh_copy.c` (the port's guarded copies of
//! caller buffers, [`seh_shim`]) with the `cc` crate into the static library `odx_seh`.

/// The flags wdk-build 0.6 (`Config::configure_binary_build`, WDM) passes to `link.exe`,
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
    // wdk-build (WDM): /ENTRY:DriverEntry; both builds enter at DriverEntry (docs/driver.md,
    // "WDM: one entry path").
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
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    seh_shim(&target_os);
    if std::env::var_os("CARGO_FEATURE_WDK").is_some() {
        wdk();
        return;
    }
    if target_os == "windows" {
        for arg in KERNEL_LINK_ARGS {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    }
}

/// The SEH shim, for Windows targets only (WDK build and Linux cross build alike; host builds
/// need no C compiler). cc picks the compiler: cl.exe in the WDK build, the `CC_<target>` /
/// `AR_<target>` / `CFLAGS_<target>` that `scripts/cross-build-driver.sh` sets (clang-16,
/// llvm-ar-16) in the Linux build. The flags below make a kernel-mode object of either: no C
/// library, no stack probe (`__chkstk`), no `/GS` cookie. The only external symbol the object
/// needs is `__C_specific_handler` (the SEH language handler, from `ntoskrnl.exe`).
fn seh_shim(target_os: &str) {
    const SOURCE: &str = "shim/seh_copy.c";
    println!("cargo::rerun-if-changed={SOURCE}");
    if target_os != "windows" {
        return;
    }
    let mut build = cc::Build::new();
    build.file(SOURCE).warnings(true);
    if build.get_compiler().is_like_msvc() {
        // cl.exe (and clang-cl): kernel-mode code, no /GS cookie, no default-library records.
        // Warnings stay warnings: this compiler does not run in CI.
        build.flag("/kernel").flag("/GS-").flag("/Zl");
    } else {
        build.warnings_into_errors(true);
        // clang for x86_64-pc-windows-msvc: SEH keywords, no hosted C assumptions (no memcpy
        // calls), no stack protector, no __chkstk probes, no red zone (kernel stacks).
        for flag in [
            "-fms-extensions",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-mno-stack-arg-probe",
            "-mno-red-zone",
        ] {
            build.flag(flag);
        }
    }
    build.compile("odx_seh");
}

#[cfg(feature = "wdk")]
fn wdk() {
    if let Err(error) = wdk_build::configure_wdk_binary_build() {
        println!("cargo::error=wdk-build could not configure the driver build: {error}");
    }
}

#[cfg(not(feature = "wdk"))]
fn wdk() {}
