//! Pool: `ExAllocatePoolWithTag` / `ExFreePoolWithTag` (non-paged pool, IRQL <= DISPATCH_LEVEL).

use std::ffi::c_void;

use super::fault::Point;
use super::{Block, Call, allocate, with};

/// `DISPATCH_LEVEL`: the most either pool routine allows for non-paged pool.
const DISPATCH_LEVEL: u8 = 2;

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "ExAllocatePoolWithTag" => ex_allocate_pool_with_tag as *const () as usize,
        "ExFreePoolWithTag" => ex_free_pool_with_tag as *const () as usize,
        _ => return None,
    })
}

/// `ExAllocatePoolWithTag`.
unsafe extern "win64" fn ex_allocate_pool_with_tag(
    _pool_type: i32,
    bytes: usize,
    tag: u32,
) -> *mut c_void {
    with(|k| {
        k.calls.push(Call::AllocatePool(bytes, tag));
        k.require_irql("ExAllocatePoolWithTag", DISPATCH_LEVEL);
        if k.faults.hit(Point::AllocatePool).is_some() {
            return std::ptr::null_mut();
        }
        let Some((address, layout)) = allocate(bytes) else {
            return std::ptr::null_mut();
        };
        k.pool.insert(address, Block { layout, tag });
        k.pool_allocations += 1;
        address as *mut c_void
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `ExFreePoolWithTag`.
unsafe extern "win64" fn ex_free_pool_with_tag(pointer: *mut c_void, tag: u32) {
    with(|k| {
        k.calls.push(Call::FreePool(tag));
        k.require_irql("ExFreePoolWithTag", DISPATCH_LEVEL);
        let address = pointer as usize;
        match k.pool.remove(&address) {
            // Tag 0 is ExFreePool's: no tag check (how odxflt frees SeLocateProcessImageName's block).
            Some(block) if block.tag == tag || tag == 0 => {
                // SAFETY: allocated with this layout by ex_allocate_pool_with_tag, removed from
                // the map so it is freed once.
                unsafe { std::alloc::dealloc(pointer.cast(), block.layout) };
            }
            Some(block) => {
                k.error(format!(
                    "ExFreePoolWithTag({address:#x}, {tag:#x}): allocated with tag {:#x} (BAD_POOL_CALLER)",
                    block.tag
                ));
                k.pool.insert(address, block);
            }
            None => k.error(format!(
                "ExFreePoolWithTag({address:#x}): not an outstanding allocation (double free?)"
            )),
        }
    });
}
