//! The processor's IRQL as the image sees it, and structured exception handling.
//!
//! On x64 the WDK's `KeGetCurrentIrql` is an inline read of CR8 (wdm.h), so the image reads the
//! IRQL with `mov r64, cr8`, a privileged instruction: in this user-mode process it raises a
//! general-protection fault (SIGSEGV). The harness installs a SIGSEGV handler that recognises
//! exactly that instruction at the faulting address, puts [`super::Kernel::irql`] into the
//! destination register and steps over it, as the processor would have in ring 0. Any other
//! fault is not handled: the default action runs and the process dies, as a bugcheck would.
//! Under valgrind (scripts/callgrind-image.sh) the same instruction arrives as SIGILL: valgrind
//! cannot decode a control-register move and raises that instead of the fault. The handler serves
//! both signals alike.
//!
//! `__C_specific_handler` (ntoskrnl.exe) is the language handler of the port's SEH shim. On
//! Linux no fault is ever delivered to it (the signal handler above does not dispatch SEH), so
//! reaching it means the image raised an exception the harness cannot model: it is recorded as
//! misuse and the search continues (`ExceptionContinueSearch`). The shim's fault path is shown
//! under Wine instead (tests/wine/, docs/pe-harness.md).

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::OnceLock;

use super::{Call, with};

thread_local! {
    /// The IRQL CR8 reads on this thread (each thread is one processor of the model), mirrored
    /// for the signal handler, which runs on the faulting thread and must not borrow the kernel.
    /// Const-initialised, so reading it from the handler allocates nothing.
    static CR8: Cell<u8> = const { Cell::new(0) };
    /// How many times the image read CR8 on this thread.
    static CR8_READS: Cell<usize> = const { Cell::new(0) };
}

/// Sets the current IRQL (the harness calls this around the image's callbacks).
pub fn set(irql: u8) {
    CR8.with(|cr8| cr8.set(irql));
    with(|k| k.irql = irql);
}

/// The current IRQL.
#[must_use]
pub fn current() -> u8 {
    CR8.with(Cell::get)
}

/// CR8 reads so far on this thread.
#[must_use]
pub fn cr8_reads() -> usize {
    CR8_READS.with(Cell::get)
}

/// Records the CR8 reads since `before` as calls of this thread's kernel.
pub fn note_reads(before: usize) {
    let reads = cr8_reads().saturating_sub(before);
    with(|k| k.calls.extend(std::iter::repeat_n(Call::ReadIrql, reads)));
}

/// Decodes `mov r64, cr8` (REX.W/R 0F 20 /r with reg = 0 and REX.R set: CR8) at `rip`:
/// the destination register number (0 = rax … 15 = r15) and the instruction length.
fn decode_mov_from_cr8(bytes: [u8; 4]) -> Option<(usize, u64)> {
    let [rex, escape, opcode, modrm] = bytes;
    if rex & 0xF0 != 0x40 || rex & 0x04 == 0 || escape != 0x0F || opcode != 0x20 {
        return None;
    }
    // mod = 11 (register), reg = 000 with REX.R = CR8.
    if modrm & 0xC0 != 0xC0 || modrm & 0x38 != 0 {
        return None;
    }
    let register = usize::from(modrm & 0x07) | if rex & 0x01 != 0 { 8 } else { 0 };
    Some((register, 4))
}

/// Linux `ucontext` general-register index for x86-64 register number `n`.
fn greg_index(register: usize) -> Option<usize> {
    let index = match register {
        0 => libc::REG_RAX,
        1 => libc::REG_RCX,
        2 => libc::REG_RDX,
        3 => libc::REG_RBX,
        4 => libc::REG_RSP,
        5 => libc::REG_RBP,
        6 => libc::REG_RSI,
        7 => libc::REG_RDI,
        8 => libc::REG_R8,
        9 => libc::REG_R9,
        10 => libc::REG_R10,
        11 => libc::REG_R11,
        12 => libc::REG_R12,
        13 => libc::REG_R13,
        14 => libc::REG_R14,
        15 => libc::REG_R15,
        _ => return None,
    };
    usize::try_from(index).ok()
}

extern "C" fn on_segv(signal: i32, _info: *mut libc::siginfo_t, context: *mut c_void) {
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes the interrupted thread's ucontext to an SA_SIGINFO handler.
    let gregs = unsafe { &mut (*context).uc_mcontext.gregs };
    let Some(rip_index) = usize::try_from(libc::REG_RIP).ok() else {
        return;
    };
    let rip = gregs[rip_index] as usize;
    // SAFETY: a general-protection fault on an instruction fetch-decoded at `rip` means the
    // four bytes there are mapped code of the image (the fault was not on the fetch itself for
    // the instruction this handler emulates; anything else is re-raised below).
    let bytes = unsafe { std::ptr::read_unaligned(rip as *const [u8; 4]) };
    if let Some((register, length)) = decode_mov_from_cr8(bytes) {
        if let Some(index) = greg_index(register) {
            gregs[index] = i64::from(current());
            gregs[rip_index] = (rip as u64 + length) as i64;
            CR8_READS.with(|reads| reads.set(reads.get() + 1));
            return;
        }
    }
    // A touch of an IRP the image already sent: recorded, the page opened, the access retried.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let info = unsafe { &*_info };
    // SAFETY: `si_addr` of a SIGSEGV siginfo is the faulting address.
    let address = unsafe { info.si_addr() } as usize;
    if signal == libc::SIGSEGV && super::storage::fault_on_sent_irp(address) {
        return;
    }
    // Not ours: restore the default action; returning re-executes the faulting instruction,
    // which now kills the process (the bugcheck of this model).
    // SAFETY: resetting a signal disposition to SIG_DFL is always valid.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Installs the SIGSEGV (and, for valgrind, SIGILL) handler once per process.
///
/// # Errors
/// `sigaction` failed.
pub fn install_cr8_emulation() -> anyhow::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            // SAFETY: a zeroed sigaction is a valid starting value; fields are set below.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_segv as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            // SAFETY: `action.sa_mask` is a valid sigset to clear.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            for (signal, name) in [(libc::SIGSEGV, "SIGSEGV"), (libc::SIGILL, "SIGILL")] {
                // SAFETY: installing a handler for SIGSEGV or SIGILL with a valid sigaction.
                let status = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
                if status != 0 {
                    return Err(format!(
                        "sigaction({name}): {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            Ok(())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "__C_specific_handler" => c_specific_handler as *const () as usize,
        _ => return None,
    })
}

/// `EXCEPTION_CONTINUE_SEARCH` as an `EXCEPTION_DISPOSITION` (`ExceptionContinueSearch`).
const EXCEPTION_CONTINUE_SEARCH: i32 = 1;

/// `__C_specific_handler`: never reached on Linux (no SEH dispatch); recorded as misuse.
unsafe extern "win64" fn c_specific_handler(
    _record: *mut c_void,
    _frame: *mut c_void,
    _context: *mut c_void,
    _dispatcher: *mut c_void,
) -> i32 {
    with(|k| {
        k.error(
            "__C_specific_handler called: the image raised an exception the harness cannot dispatch"
                .to_owned(),
        );
    });
    EXCEPTION_CONTINUE_SEARCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_mov_from_cr8_and_nothing_else() {
        // mov rax, cr8 = 44 0F 20 C0; mov r9, cr8 = 45 0F 20 C1; mov rcx, cr8 = 44 0F 20 C1.
        assert_eq!(decode_mov_from_cr8([0x44, 0x0F, 0x20, 0xC0]), Some((0, 4)));
        assert_eq!(decode_mov_from_cr8([0x44, 0x0F, 0x20, 0xC1]), Some((1, 4)));
        assert_eq!(decode_mov_from_cr8([0x45, 0x0F, 0x20, 0xC1]), Some((9, 4)));
        // mov rax, cr0 (no REX.R) and mov cr8, rax (0F 22) are not emulated.
        assert_eq!(decode_mov_from_cr8([0x48, 0x0F, 0x20, 0xC0]), None);
        assert_eq!(decode_mov_from_cr8([0x44, 0x0F, 0x22, 0xC0]), None);
        // mov rax, cr11 (reg = 3 with REX.R) is not CR8.
        assert_eq!(decode_mov_from_cr8([0x44, 0x0F, 0x20, 0xD8]), None);
    }
}
