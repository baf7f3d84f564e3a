//! The exported functions, with fltuser.h's signatures. Every one returns an `HRESULT`.

use core::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use odx_core::port::PORT_NAME;

use crate::{State, record};

type Hresult = i32;
type Handle = *mut c_void;

const S_OK: Hresult = 0;
/// `E_FAIL`: the scenario could not be loaded (the reason went to stderr).
const E_FAIL: Hresult = 0x8000_4005_u32 as i32;
const E_INVALIDARG: Hresult = 0x8007_0057_u32 as i32;
const E_HANDLE: Hresult = 0x8007_0006_u32 as i32;
const ERROR_FILE_NOT_FOUND: u32 = 2;
const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
const ERROR_NO_MORE_ITEMS: u32 = 259;
/// `InstanceAggregateStandardInformation` (`INSTANCE_INFORMATION_CLASS`).
const INSTANCE_AGGREGATE_STANDARD_INFORMATION: i32 = 3;

const fn hresult_from_win32(code: u32) -> Hresult {
    (0x8007_0000 | (code & 0xFFFF)) as i32
}

/// `HRESULT_FROM_NT`: the facility-N bit over the NTSTATUS (odxctl's `hresult_status` undoes it).
const fn hresult_from_nt(status: u32) -> Hresult {
    (status | 0x1000_0000) as i32
}

#[link(name = "kernel32")]
unsafe extern "system" {
    fn CreateEventW(
        attributes: *const c_void,
        manual: i32,
        initial: i32,
        name: *const u16,
    ) -> Handle;
}

struct Loaded {
    state: Result<State, String>,
    /// Port handles handed out (events, so that the caller's CloseHandle succeeds).
    ports: Vec<usize>,
}

// SAFETY: the simulator's stack is only used under the mutex below, one caller at a time.
unsafe impl Send for Loaded {}

static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();

fn with_state<R>(f: impl FnOnce(&mut State, &mut Vec<usize>) -> R) -> Result<R, Hresult> {
    let lock = LOADED.get_or_init(|| {
        let state = State::from_env();
        if let Err(e) = &state {
            eprintln!("test fltlib.dll: {e}");
        }
        Mutex::new(Loaded {
            state,
            ports: Vec::new(),
        })
    });
    let mut loaded = lock.lock().map_err(|_| E_FAIL)?;
    let Loaded { state, ports } = &mut *loaded;
    match state {
        Ok(s) => Ok(f(s, ports)),
        Err(_) => Err(E_FAIL),
    }
}

/// A NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UTF-16 string.
unsafe fn wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0usize;
    // SAFETY: the string is NUL-terminated (caller), so every unit up to the NUL is readable.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes `bytes` to the caller's buffer, or says how much is needed.
///
/// # Safety
/// `buffer` is valid for `size` bytes; `returned` is NULL or a valid out pointer.
unsafe fn answer(bytes: &[u8], buffer: *mut c_void, size: u32, returned: *mut u32) -> Hresult {
    let needed = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    if !returned.is_null() {
        // SAFETY: a valid out pointer (caller).
        unsafe { *returned = needed };
    }
    if needed > size || buffer.is_null() {
        return hresult_from_win32(ERROR_INSUFFICIENT_BUFFER);
    }
    // SAFETY: `buffer` holds at least `needed` bytes (checked), `bytes` is ours.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), bytes.len()) };
    S_OK
}

/// An enumeration in progress.
struct Find {
    volume: String,
    next: usize,
}

/// # Safety
/// See [`answer`].
unsafe fn next_record(
    find: &mut Find,
    buffer: *mut c_void,
    size: u32,
    returned: *mut u32,
) -> Hresult {
    let record = with_state(|s, _| s.instances.get(find.next).map(|i| record(i, &find.volume)));
    match record {
        Err(hr) => hr,
        Ok(None) => hresult_from_win32(ERROR_NO_MORE_ITEMS),
        Ok(Some(bytes)) => {
            // SAFETY: forwarded from the caller.
            let hr = unsafe { answer(&bytes, buffer, size, returned) };
            if hr == S_OK {
                find.next += 1;
            }
            hr
        }
    }
}

/// `FilterVolumeInstanceFindFirst`.
///
/// # Safety
/// fltuser.h's contract: a NUL-terminated volume name, a buffer of `size` bytes, valid out
/// pointers.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FilterVolumeInstanceFindFirst(
    volume: *const u16,
    class: i32,
    buffer: *mut c_void,
    size: u32,
    returned: *mut u32,
    find: *mut Handle,
) -> Hresult {
    if class != INSTANCE_AGGREGATE_STANDARD_INFORMATION || find.is_null() {
        return E_INVALIDARG;
    }
    let mut state = Box::new(Find {
        // SAFETY: NUL-terminated (caller).
        volume: unsafe { wide(volume) },
        next: 0,
    });
    // SAFETY: forwarded from the caller.
    let hr = unsafe { next_record(&mut state, buffer, size, returned) };
    if hr == S_OK {
        // SAFETY: a valid out pointer (caller); the box is freed by FindClose.
        unsafe { *find = Box::into_raw(state).cast() };
    }
    hr
}

/// `FilterVolumeInstanceFindNext`.
///
/// # Safety
/// `find` came from [`FilterVolumeInstanceFindFirst`] and is not closed; as there otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FilterVolumeInstanceFindNext(
    find: Handle,
    class: i32,
    buffer: *mut c_void,
    size: u32,
    returned: *mut u32,
) -> Hresult {
    if class != INSTANCE_AGGREGATE_STANDARD_INFORMATION || find.is_null() {
        return E_INVALIDARG;
    }
    // SAFETY: an open enumeration handle (caller), only used by this thread.
    let state = unsafe { &mut *find.cast::<Find>() };
    // SAFETY: forwarded from the caller.
    unsafe { next_record(state, buffer, size, returned) }
}

/// `FilterVolumeInstanceFindClose`.
///
/// # Safety
/// `find` came from [`FilterVolumeInstanceFindFirst`] and is closed once.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FilterVolumeInstanceFindClose(find: Handle) -> Hresult {
    if find.is_null() {
        return E_HANDLE;
    }
    // SAFETY: the box handed out by FindFirst, freed once (caller).
    drop(unsafe { Box::from_raw(find.cast::<Find>()) });
    S_OK
}

/// `FilterConnectCommunicationPort`: `\OdxfltPort` when the scenario loaded odxflt.
///
/// # Safety
/// A NUL-terminated port name and a valid out pointer.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FilterConnectCommunicationPort(
    name: *const u16,
    _options: u32,
    _context: *const c_void,
    _context_size: u16,
    _security: *const c_void,
    port: *mut Handle,
) -> Hresult {
    if port.is_null() {
        return E_INVALIDARG;
    }
    // SAFETY: NUL-terminated (caller).
    let name = unsafe { wide(name) };
    let result = with_state(|s, ports| {
        if name != PORT_NAME || s.stack.is_none() {
            return hresult_from_win32(ERROR_FILE_NOT_FOUND);
        }
        // SAFETY: no attributes, no name: an anonymous manual-reset event.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return E_FAIL;
        }
        ports.push(event as usize);
        // SAFETY: a valid out pointer (caller).
        unsafe { *port = event };
        S_OK
    });
    result.unwrap_or_else(|hr| hr)
}

/// `FilterSendMessage`: one request to odxflt's port, answered by odx-core's serve.
///
/// # Safety
/// fltuser.h's contract: buffers valid for their sizes, a valid out pointer.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn FilterSendMessage(
    port: Handle,
    in_buffer: *const c_void,
    in_size: u32,
    out_buffer: *mut c_void,
    out_size: u32,
    returned: *mut u32,
) -> Hresult {
    let request: Vec<u8> = if in_buffer.is_null() || in_size == 0 {
        Vec::new()
    } else {
        // SAFETY: `in_buffer` holds `in_size` bytes (caller).
        unsafe { std::slice::from_raw_parts(in_buffer.cast::<u8>(), in_size as usize) }.to_vec()
    };
    let result = with_state(|s, ports| {
        if !ports.contains(&(port as usize)) {
            return Err(E_HANDLE);
        }
        let stack = s.stack.as_mut().ok_or(E_HANDLE)?;
        stack
            .port_request(&request, out_size as usize)
            .map_err(|status| hresult_from_nt(status.0))
    });
    match result {
        Err(hr) | Ok(Err(hr)) => hr,
        // SAFETY: forwarded from the caller.
        Ok(Ok(reply)) => unsafe { answer(&reply, out_buffer, out_size, returned) },
    }
}
