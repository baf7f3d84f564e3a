//! Contexts: `FltAllocateContext`, `FltSetInstanceContext`, `FltGetInstanceContext`,
//! `FltReleaseContext`, with reference counts checked. Filter Manager holds one reference on a
//! context set on an instance and drops it when the instance is deleted
//! ([`delete_instance`]).
//!
//! IRQL (docs/pe-harness.md, "IRQL"): allocate, set and get at most APC_LEVEL; release at most
//! DISPATCH_LEVEL.

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::filter::check_filter;
use super::{
    Call, ContextBlock, Kernel, STATUS_FLT_CONTEXT_ALREADY_DEFINED, STATUS_INVALID_PARAMETER,
    STATUS_NOT_FOUND, allocate, nt, with,
};
use crate::layouts::shapes;

const APC_LEVEL: u8 = 1;
const DISPATCH_LEVEL: u8 = 2;

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltAllocateContext" => flt_allocate_context as *const () as usize,
        "FltSetInstanceContext" => flt_set_instance_context as *const () as usize,
        "FltGetInstanceContext" => flt_get_instance_context as *const () as usize,
        "FltReleaseContext" => flt_release_context as *const () as usize,
        _ => return None,
    })
}

impl Kernel {
    fn reference(&mut self, address: usize) {
        if let Some(block) = self.contexts.get_mut(&address) {
            block.references += 1;
            self.context_references += 1;
        }
    }

    fn release(&mut self, address: usize) {
        let Some(block) = self.contexts.get_mut(&address) else {
            self.error(format!(
                "FltReleaseContext({address:#x}): not a live context"
            ));
            return;
        };
        block.references = block.references.saturating_sub(1);
        if block.references > 0 {
            return;
        }
        if let Some(instance) = self
            .instances
            .iter_mut()
            .find(|i| i.context == Some(address))
        {
            instance.context = None;
            self.errors.push(format!(
                "FltReleaseContext({address:#x}): last reference released while set on an instance (over-release)"
            ));
        }
        if let Some(block) = self.contexts.remove(&address) {
            // SAFETY: the context was allocated with this layout in FltAllocateContext and its
            // last reference is gone.
            unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        }
    }
}

/// The instance is deleted (after teardown complete, or at unregister): Filter Manager drops its
/// reference on the instance's context.
pub fn delete_instance(k: &mut Kernel, handle: isize) {
    let context = k.instance_mut(handle).and_then(|i| {
        i.state = super::InstanceState::Detached;
        i.context.take()
    });
    if let Some(address) = context {
        k.release(address);
    }
}

/// `FltAllocateContext`.
unsafe extern "win64" fn flt_allocate_context(
    filter: isize,
    context_type: u16,
    size: usize,
    _pool_type: i32,
    returned: *mut *mut c_void,
) -> i32 {
    let result = with(|k| {
        k.calls.push(Call::AllocateContext(context_type));
        k.require_irql("FltAllocateContext", APC_LEVEL);
        if let Some(status) = k.faults.hit(Point::AllocateContext) {
            return Err(status);
        }
        if !check_filter(k, "FltAllocateContext", filter) || returned.is_null() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let registered = k
            .registration
            .as_ref()
            .and_then(|r| r.contexts.iter().find(|c| c.context_type == context_type))
            .copied();
        let Some(row) = registered else {
            k.error(format!(
                "FltAllocateContext: context type {context_type:#x} not registered"
            ));
            return Err(STATUS_INVALID_PARAMETER);
        };
        if row.size != size {
            k.error(format!(
                "FltAllocateContext: size {size} differs from the registered {}",
                row.size
            ));
            return Err(STATUS_INVALID_PARAMETER);
        }
        let (address, layout) = allocate(size).ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)?;
        k.contexts.insert(
            address,
            ContextBlock {
                layout,
                context_type,
                references: 1,
            },
        );
        k.context_references += 1;
        Ok(address)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    match result {
        Ok(address) => {
            // SAFETY: `returned` is the image's non-NULL out pointer (checked above).
            unsafe { returned.write(address as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// `FltSetInstanceContext`.
unsafe extern "win64" fn flt_set_instance_context(
    instance: isize,
    operation: i32,
    new_context: *mut c_void,
    old_context: *mut *mut c_void,
) -> i32 {
    let constants = shapes().constants;
    let result = with(|k| {
        k.calls.push(Call::SetInstanceContext(operation));
        k.require_irql("FltSetInstanceContext", APC_LEVEL);
        if let Some(status) = k.faults.hit(Point::SetInstanceContext) {
            return (Err(status), None);
        }
        let address = new_context as usize;
        let type_ok = k
            .contexts
            .get(&address)
            .is_some_and(|c| c.context_type == constants.flt_instance_context);
        let Some(existing) = k.instance_mut(instance).map(|i| i.context) else {
            k.error(format!(
                "FltSetInstanceContext: unknown instance {instance:#x}"
            ));
            return (Err(STATUS_INVALID_PARAMETER), None);
        };
        if !type_ok {
            k.error(format!(
                "FltSetInstanceContext: {address:#x} is not a live FLT_INSTANCE_CONTEXT"
            ));
            return (Err(STATUS_INVALID_PARAMETER), None);
        }
        let keep = operation == constants.flt_set_context_keep_if_exists;
        let replace = operation == constants.flt_set_context_replace_if_exists;
        match existing {
            Some(old) if keep => {
                let returned = (!old_context.is_null()).then(|| {
                    k.reference(old);
                    old
                });
                (Err(STATUS_FLT_CONTEXT_ALREADY_DEFINED), returned)
            }
            _ if keep || replace => {
                k.reference(address);
                if let Some(i) = k.instance_mut(instance) {
                    i.context = Some(address);
                }
                let returned = existing.and_then(|old| {
                    if old_context.is_null() {
                        k.release(old);
                        None
                    } else {
                        Some(old)
                    }
                });
                (Ok(()), returned)
            }
            _ => {
                k.error(format!("FltSetInstanceContext: operation {operation}"));
                (Err(STATUS_INVALID_PARAMETER), None)
            }
        }
    })
    .unwrap_or((Err(STATUS_INVALID_PARAMETER), None));
    if !old_context.is_null() {
        let value = result.1.map_or(std::ptr::null_mut(), |a| a as *mut c_void);
        // SAFETY: `old_context` is the image's non-NULL out pointer.
        unsafe { old_context.write(value) };
    }
    nt(match result.0 {
        Ok(()) => NtStatus::STATUS_SUCCESS,
        Err(status) => status,
    })
}

/// `FltGetInstanceContext`.
unsafe extern "win64" fn flt_get_instance_context(
    instance: isize,
    context: *mut *mut c_void,
) -> i32 {
    let result = with(|k| {
        k.calls.push(Call::GetInstanceContext);
        k.require_irql("FltGetInstanceContext", APC_LEVEL);
        if let Some(status) = k.faults.hit(Point::GetInstanceContext) {
            return Err(status);
        }
        if context.is_null() {
            k.error("FltGetInstanceContext: NULL out pointer".to_owned());
            return Err(STATUS_INVALID_PARAMETER);
        }
        let Some(found) = k.instance_mut(instance).map(|i| i.context) else {
            k.error(format!(
                "FltGetInstanceContext: unknown instance {instance:#x}"
            ));
            return Err(STATUS_INVALID_PARAMETER);
        };
        let address = found.ok_or(STATUS_NOT_FOUND)?;
        k.reference(address);
        Ok(address)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    let value = result.map_or(std::ptr::null_mut(), |a| a as *mut c_void);
    if !context.is_null() {
        // SAFETY: `context` is the image's non-NULL out pointer (NULL_CONTEXT on failure, as
        // the documentation says).
        unsafe { context.write(value) };
    }
    nt(match result {
        Ok(_) => NtStatus::STATUS_SUCCESS,
        Err(status) => status,
    })
}

/// `FltReleaseContext`.
unsafe extern "win64" fn flt_release_context(context: *mut c_void) {
    with(|k| {
        k.calls.push(Call::ReleaseContext);
        k.require_irql("FltReleaseContext", DISPATCH_LEVEL);
        k.release(context as usize);
    });
}
