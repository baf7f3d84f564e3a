//! `DriverEntry` and the panic backstop.

use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

/// `DriverEntry`: default policy from the registry → register → open the port → start
/// filtering. The image's entry point in both builds (WDM: no framework stub before it).
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with this driver's object and registry path.
#[cfg_attr(
    all(target_os = "windows", not(test)),
    unsafe(export_name = "DriverEntry")
)]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    super::registration::load(driver.cast_const(), registry_path)
}

/// The backstop: nothing in odxflt is meant to panic (the lints deny every panicking construct),
/// but if something does, stop the system with a recognisable code rather than run on.
#[cfg(all(target_os = "windows", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    super::kernel::bugcheck(info.location().map_or(0, core::panic::Location::line))
}

/// `_fltused`: MSVC-target objects that touch floating point (here only `core`'s and
/// `compiler_builtins`' formatting and conversion code) reference this CRT marker; a driver links
/// no CRT, so the image defines it. In the WDK build `wdk-sys` defines it instead.
#[cfg(all(target_os = "windows", not(feature = "wdk")))]
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;
