//! The one KMDF-specific step, compiled only in the WDK build (feature `wdk`): create the
//! framework driver object without taking over the dispatch table, which stays Filter Manager's.

use wdk_sys::{
    WDF_DRIVER_CONFIG, WDF_NO_OBJECT_ATTRIBUTES, WDFDRIVER, call_unsafe_wdf_function_binding,
};
use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

/// `WdfDriverCreate` with `WdfDriverInitNonPnpDriver | WdfDriverInitNoDispatchOverride`.
pub fn create_driver(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> NTSTATUS {
    let flags = wdk_sys::_WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver as u32
        | wdk_sys::_WDF_DRIVER_INIT_FLAGS::WdfDriverInitNoDispatchOverride as u32;
    let mut config = WDF_DRIVER_CONFIG {
        Size: core::mem::size_of::<WDF_DRIVER_CONFIG>() as u32,
        DriverInitFlags: flags,
        ..WDF_DRIVER_CONFIG::default()
    };
    let mut handle: WDFDRIVER = core::ptr::null_mut();
    // SAFETY: `driver` and `registry_path` are DriverEntry's arguments (windows-sys and wdk-sys
    // declare the same C structures); no object attributes; `config` and `handle` are valid
    // for the call. FxDriverEntry has bound the framework before DriverEntry runs.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver.cast::<wdk_sys::DRIVER_OBJECT>(),
            registry_path.cast::<wdk_sys::UNICODE_STRING>(),
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut config,
            &mut handle,
        )
    }
}
