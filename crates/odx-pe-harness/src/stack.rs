//! Stack budget of the request path, measured on the image itself (static analysis).
//!
//! A pre-operation callback runs on whoever's stack sent the request (an application thread, the
//! SMB server's worker, a filter above), and a call odxflt makes out of the image (most of all
//! `FltQueryInformationFile`, which re-enters Filter Manager and the file system) runs on what is
//! left of it. Kernel stacks are 12–24 KiB in all, so odxflt keeps to a budget:
//! [`LIVE_BUDGET`] bytes of its own frames live across any call out of the image, and
//! [`DEEPEST_BUDGET`] bytes on its deepest path.
//!
//! How the figures are made, from the cross-built `odxflt.sys` alone:
//!
//! - **Frames** come from the image's unwind data: every non-leaf x64 function has a
//!   `RUNTIME_FUNCTION` in `.pdata` whose `UNWIND_INFO` (`.xdata`) records each register push and
//!   the fixed allocation of its prologue, exactly (chained entries are followed). A function
//!   without an entry is a leaf that never moves the stack pointer: its frame is its return
//!   address. Each frame counts the return address its caller pushed, the pushes and the
//!   allocation (which includes the 32-byte home area of its callees). The prologue's own `push`
//!   and `sub rsp` instructions are checked against the unwind data, and any other instruction that
//!   grows the stack (a `sub rsp` or `push` after the prologue, an `and rsp` realignment) fails the
//!   analysis rather than being missed.
//! - **Calls** come from a disassembly of `.text` (`llvm-objdump`, the `ODX_OBJDUMP` variable
//!   names another): direct calls and tail jumps to other functions, calls and tail jumps through
//!   the import address table (the calls out of the image), and calls through a register that was
//!   loaded from an IAT slot (how LLVM calls one import several times). Any other indirect call,
//!   a jump into the middle of a function, or recursion fails the analysis: the figure is an upper
//!   bound or nothing.
//! - **Roots** are the pre- and post-operation callbacks the image registered with
//!   `FltRegisterFilter` (the harness captures them: [`request_path_roots`]).
//!
//! Names come from the linker's `/MAP` file when one of the same link (same time stamp) is found
//! next to the image or in the cross build's output directory; otherwise functions are named by
//! RVA.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail, ensure};
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};

use crate::driver::LoadedDriver;

/// Most bytes of odxflt frames that may be live across a call out of the image (issue 12: 1 KiB;
/// docs/performance.md §7 has the figures and what each frame holds).
pub const LIVE_BUDGET: u64 = 1024;
/// Most bytes of odxflt frames on the deepest path of the request path.
pub const DEEPEST_BUDGET: u64 = 2048;

/// `IRP_MJ_FILE_SYSTEM_CONTROL`.
const IRP_MJ_FILE_SYSTEM_CONTROL: u8 = 0x0D;

/// Where the analysis starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// What the root is (`pre-operation IRP_MJ_FILE_SYSTEM_CONTROL`).
    pub name: String,
    /// Its RVA in the image.
    pub rva: u32,
}

/// The pre- and post-operation callbacks `driver` registered, as roots of the request path.
///
/// # Errors
/// A callback address outside the image.
pub fn request_path_roots(driver: &LoadedDriver) -> Result<Vec<Root>> {
    let base = driver.image().base();
    let mut roots = Vec::new();
    for op in &driver.registration().operations {
        let major = if op.major_function == IRP_MJ_FILE_SYSTEM_CONTROL {
            "IRP_MJ_FILE_SYSTEM_CONTROL".to_owned()
        } else {
            format!("major function {:#04x}", op.major_function)
        };
        for (kind, address) in [("pre-operation", op.pre), ("post-operation", op.post)] {
            let Some(address) = address else { continue };
            let rva = address
                .checked_sub(base)
                .and_then(|rva| u32::try_from(rva).ok())
                .filter(|_| driver.image().contains(address))
                .ok_or_else(|| anyhow!("{kind} callback {address:#x} is outside the image"))?;
            roots.push(Root {
                name: format!("{kind} {major}"),
                rva,
            });
        }
    }
    ensure!(
        !roots.is_empty(),
        "the image registered no operation callback"
    );
    Ok(roots)
}

/// A call out of the image and the odxflt frames live at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOut {
    /// `library!symbol`.
    pub import: String,
    /// RVA of the `call`/`jmp` instruction.
    pub site: u32,
    /// Bytes of odxflt frames on the stack when control leaves the image (the worst path).
    pub live: u64,
    /// That path: root first, the function holding the call last.
    pub path: Vec<u32>,
}

/// The stack figures of the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackReport {
    /// Roots analysed.
    pub roots: Vec<Root>,
    /// Functions reachable from the roots.
    pub functions: usize,
    /// Frame bytes of each reachable function (RVA → bytes, return address included).
    pub frames: BTreeMap<u32, u64>,
    /// Every call out of the image reachable from the roots, worst first.
    pub calls_out: Vec<CallOut>,
    /// The deepest path's total frame bytes.
    pub deepest: u64,
    /// That path: root first.
    pub deepest_path: Vec<u32>,
    /// Names known for RVAs (from a matching `/MAP` file).
    pub names: BTreeMap<u32, String>,
}

impl StackReport {
    /// The most odxflt frame bytes live across any call out of the image (0 if none).
    #[must_use]
    pub fn live_across_calls_out(&self) -> u64 {
        self.calls_out.iter().map(|c| c.live).max().unwrap_or(0)
    }

    /// Both figures within budget.
    #[must_use]
    pub fn within_budget(&self) -> bool {
        self.live_across_calls_out() <= LIVE_BUDGET && self.deepest <= DEEPEST_BUDGET
    }

    /// The summary line: `stack: N B of odxflt frames live across calls out of the image
    /// (budget 1024), M B deepest (budget 2048)`, with `OVER BUDGET` when either is exceeded.
    #[must_use]
    pub fn line(&self) -> String {
        let live = self.live_across_calls_out();
        let mut line = format!(
            "stack: {live} B of odxflt frames live across calls out of the image (budget {LIVE_BUDGET}), {} B deepest (budget {DEEPEST_BUDGET})",
            self.deepest
        );
        if !self.within_budget() {
            line.push_str(" — OVER BUDGET");
        }
        line
    }

    /// A name for an RVA: the map's symbol, demangled when `llvm-cxxfilt` is available, or
    /// `fn@RVA`.
    #[must_use]
    pub fn name(&self, rva: u32) -> String {
        self.names
            .get(&rva)
            .cloned()
            .unwrap_or_else(|| format!("fn@{rva:#x}"))
    }

    fn describe_path(&self, path: &[u32]) -> String {
        path.iter()
            .map(|rva| {
                format!(
                    "{} ({} B)",
                    self.name(*rva),
                    self.frames.get(rva).copied().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// The paths behind both figures and every call out, one per line.
    #[must_use]
    pub fn details(&self) -> String {
        let mut out = String::new();
        let roots = self
            .roots
            .iter()
            .map(|r| format!("{} {}", r.name, self.name(r.rva)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "stack: {} functions reachable from {roots}",
            self.functions
        );
        let frames = self
            .frames
            .iter()
            .map(|(rva, bytes)| format!("{} {bytes} B", self.name(*rva)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "stack: frames: {frames}");
        let _ = writeln!(
            out,
            "stack: deepest {} B: {}",
            self.deepest,
            self.describe_path(&self.deepest_path)
        );
        for call in &self.calls_out {
            let _ = writeln!(
                out,
                "stack: {} B live at {} (call at {:#x}): {}",
                call.live,
                call.import,
                call.site,
                self.describe_path(&call.path)
            );
        }
        out
    }
}

/// Analyses the request path of the image in `image` (the bytes of odxflt.sys) from `roots`.
/// `image_path`, if given, is where to look for the link's `/MAP` file (names only).
///
/// # Errors
/// A malformed image, no disassembler, or anything the analysis cannot bound (an unresolved
/// indirect call, a dynamic stack allocation, recursion, a jump into a function's middle).
pub fn analyze(image: &[u8], roots: &[Root], image_path: Option<&Path>) -> Result<StackReport> {
    let layout = ImageLayout::parse(image)?;
    let instructions = disassemble(image, &layout)?;
    let program = Program::build(&layout, &instructions)?;
    let names = image_path
        .map(|path| map_names(path, &layout))
        .unwrap_or_default();
    program.report(roots, names)
}

/// [`analyze`] for a loaded driver: its registered callbacks are the roots.
///
/// # Errors
/// As [`analyze`].
pub fn analyze_loaded(
    image: &[u8],
    driver: &LoadedDriver,
    image_path: Option<&Path>,
) -> Result<StackReport> {
    analyze(image, &request_path_roots(driver)?, image_path)
}

// --- the image: sections, unwind data, imports ---------------------------------------------

/// One `RUNTIME_FUNCTION`.
#[derive(Clone, Copy, Debug)]
struct RuntimeFunction {
    begin: u32,
    end: u32,
    unwind: u32,
}

/// What the unwind data says about one `.pdata` entry.
#[derive(Clone, Copy, Debug)]
struct Unwind {
    /// The primary entry's begin (itself unless chained).
    owner: u32,
    /// Bytes pushed and allocated by the prologue(s) in effect, return address excluded.
    frame: u64,
    /// Bytes of this entry's own prologue.
    prolog: u32,
    /// Bytes this entry's own unwind codes push and allocate.
    own: u64,
    /// The exception or termination handler named by the entry, if any.
    handler: Option<u32>,
}

#[derive(Debug)]
struct ImageLayout {
    image_base: u64,
    time_date_stamp: u32,
    text: (u32, u32),
    functions: Vec<(RuntimeFunction, Unwind)>,
    /// IAT slot RVA → `library!symbol`.
    iat: BTreeMap<u32, String>,
    /// Code the image names without calling it: exports and the language handlers of the
    /// unwind data (function starts for the leaf analysis).
    entries: BTreeSet<u32>,
    /// Each section's RVA and bytes (jump tables are read from them).
    sections: Vec<(u32, Vec<u8>)>,
    /// The read-only data sections' RVA ranges (a jump index loaded from one is a constant).
    read_only: Vec<(u32, u32)>,
}

impl ImageLayout {
    /// A little-endian `i32` at `rva`.
    fn i32_at(&self, rva: u32) -> Option<i32> {
        let (start, data) = self.sections.iter().find(|(start, data)| {
            rva >= *start && rva - start < u32::try_from(data.len()).unwrap_or(0)
        })?;
        let at = usize::try_from(rva - start).ok()?;
        let b = data.get(at..at + 4)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| anyhow!("read past the end of a section at offset {at:#x}"))
}

fn read_u16(bytes: &[u8], at: usize) -> Result<u16> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| anyhow!("read past the end of a section at offset {at:#x}"))
}

/// `UNW_FLAG_EHANDLER`: the entry names an exception handler.
const UNW_FLAG_EHANDLER: u8 = 0x1;
/// `UNW_FLAG_UHANDLER`: the entry names a termination handler.
const UNW_FLAG_UHANDLER: u8 = 0x2;
/// `UNW_FLAG_CHAININFO`: the entry continues another one's unwind data.
const UNW_FLAG_CHAININFO: u8 = 0x4;

impl ImageLayout {
    fn parse(file: &[u8]) -> Result<Self> {
        let pe = PeFile64::parse(file).context("not a PE32+ image")?;
        let nt = pe.nt_headers();
        ensure!(
            nt.file_header().machine.get(LE) == pe::IMAGE_FILE_MACHINE_AMD64,
            "not an x86-64 image"
        );
        let sections = pe.section_table();
        let at = |rva: u32| -> Result<&[u8]> {
            sections
                .pe_data_at(file, rva)
                .ok_or_else(|| anyhow!("RVA {rva:#x} is not in any section"))
        };
        let text = sections
            .iter()
            .find(|s| s.raw_name().starts_with(b".text"))
            .map(|s| {
                let rva = s.virtual_address.get(LE);
                (rva, rva + s.virtual_size.get(LE))
            })
            .ok_or_else(|| anyhow!("no .text section"))?;

        let directories = pe.data_directories();
        let exception = directories
            .get(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION)
            .filter(|d| d.virtual_address.get(LE) != 0)
            .ok_or_else(|| anyhow!("the image has no exception directory (.pdata)"))?;
        let pdata = exception
            .data(file, &sections)
            .map_err(|e| anyhow!(".pdata: {e}"))?;
        let mut entries = Vec::new();
        for chunk in pdata.chunks_exact(12) {
            let entry = RuntimeFunction {
                begin: read_u32(chunk, 0)?,
                end: read_u32(chunk, 4)?,
                unwind: read_u32(chunk, 8)?,
            };
            if entry.begin != 0 {
                entries.push(entry);
            }
        }
        let mut functions = Vec::new();
        for entry in &entries {
            functions.push((*entry, unwind_of(entry, &at, 0)?));
        }
        functions.sort_by_key(|(f, _)| f.begin);

        let iat: BTreeMap<u32, String> = crate::pe::import_slots(&pe)?
            .into_iter()
            .map(|(library, symbol, slot)| (slot, format!("{library}!{symbol}")))
            .collect();
        let mut entries: BTreeSet<u32> = functions.iter().filter_map(|(_, u)| u.handler).collect();
        if let Some(exports) = pe.export_table().map_err(|e| anyhow!("exports: {e}"))? {
            for export in exports.exports().map_err(|e| anyhow!("exports: {e}"))? {
                if let object::read::pe::ExportTarget::Address(rva) = export.target {
                    entries.insert(rva);
                }
            }
        }
        let mut data = Vec::new();
        let mut read_only = Vec::new();
        for section in sections.iter() {
            let bytes = section
                .pe_data(file)
                .map_err(|e| anyhow!("section data: {e}"))?;
            let start = section.virtual_address.get(LE);
            // Read-only initialised data (LLVM's `.rdata`; the loader maps it Read).
            if section.name.starts_with(b".rdata") {
                read_only.push((start, start.saturating_add(section.virtual_size.get(LE))));
            }
            data.push((start, bytes.to_vec()));
        }
        Ok(Self {
            image_base: nt.optional_header().image_base(),
            time_date_stamp: nt.file_header().time_date_stamp.get(LE),
            text,
            functions,
            iat,
            entries: entries
                .into_iter()
                .filter(|rva| (text.0..text.1).contains(rva))
                .collect(),
            sections: data,
            read_only,
        })
    }
}

/// Decodes the `UNWIND_INFO` of `entry`, following chained entries to the primary one.
fn unwind_of<'a>(
    entry: &RuntimeFunction,
    at: &impl Fn(u32) -> Result<&'a [u8]>,
    depth: u32,
) -> Result<Unwind> {
    ensure!(
        depth < 32,
        "unwind chain at {:#x} does not end",
        entry.begin
    );
    let info = at(entry.unwind)?;
    let head = info
        .get(..4)
        .ok_or_else(|| anyhow!("UNWIND_INFO at {:#x} is cut short", entry.unwind))?;
    let (version, flags) = (head[0] & 7, head[0] >> 3);
    ensure!(
        version == 1 || version == 2,
        "UNWIND_INFO at {:#x}: version {version} is not known",
        entry.unwind
    );
    let prolog = u32::from(head[1]);
    let count = usize::from(head[2]);
    let mut own = 0_u64;
    let mut i = 0;
    while i < count {
        let code = read_u16(info, 4 + 2 * i)?;
        let (op, op_info) = ((code >> 8) & 0xF, code >> 12);
        let slot = |k: usize| read_u16(info, 4 + 2 * (i + k));
        let slots = match op {
            // UWOP_PUSH_NONVOL
            0 => {
                own += 8;
                1
            }
            // UWOP_ALLOC_LARGE
            1 => match op_info {
                0 => {
                    own += u64::from(slot(1)?) * 8;
                    2
                }
                1 => {
                    own += u64::from(slot(1)?) | (u64::from(slot(2)?) << 16);
                    3
                }
                other => bail!(
                    "UWOP_ALLOC_LARGE with OpInfo {other} at {:#x}",
                    entry.unwind
                ),
            },
            // UWOP_ALLOC_SMALL
            2 => {
                own += u64::from(op_info) * 8 + 8;
                1
            }
            // UWOP_SET_FPREG: no allocation of its own.
            3 => 1,
            // UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128: into space already allocated.
            4 | 8 => 2,
            // UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR.
            5 | 9 => 3,
            // UWOP_EPILOG (version 2): describes an epilogue, allocates nothing.
            6 if version == 2 => 2,
            // UWOP_PUSH_MACHFRAME: the processor's interrupt frame (with an error code or not).
            10 => {
                own += if op_info == 0 { 40 } else { 48 };
                1
            }
            other => bail!(
                "unknown unwind code {other} in UNWIND_INFO at {:#x}",
                entry.unwind
            ),
        };
        i += slots;
    }
    let after_codes = 4 + 2 * (count + (count & 1));
    let handler = if flags & (UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER) != 0
        && flags & UNW_FLAG_CHAININFO == 0
    {
        Some(read_u32(info, after_codes)?)
    } else {
        None
    };
    let mut unwind = Unwind {
        owner: entry.begin,
        frame: own,
        prolog,
        own,
        handler,
    };
    if flags & UNW_FLAG_CHAININFO != 0 {
        let parent = RuntimeFunction {
            begin: read_u32(info, after_codes)?,
            end: read_u32(info, after_codes + 4)?,
            unwind: read_u32(info, after_codes + 8)?,
        };
        let up = unwind_of(&parent, at, depth + 1)?;
        unwind.owner = up.owner;
        unwind.frame += up.frame;
    }
    Ok(unwind)
}

// --- the disassembly -----------------------------------------------------------------------

/// One decoded instruction.
#[derive(Clone, Debug)]
struct Instruction {
    rva: u32,
    bytes: Vec<u8>,
    mnemonic: String,
    operands: String,
    /// The address llvm-objdump resolved in a `# 0x…` comment (RIP-relative operands).
    target: Option<u64>,
}

impl Instruction {
    /// The destination operand in AT&T syntax (the last one).
    fn destination(&self) -> &str {
        self.operands.rsplit(',').next().map_or("", str::trim)
    }

    fn has_rex_w(&self) -> bool {
        self.bytes
            .iter()
            .take_while(|b| {
                matches!(
                    **b,
                    0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF2 | 0xF3 | 0x40
                        ..=0x4F
                )
            })
            .any(|b| (0x48..=0x4F).contains(b))
    }
}

fn objdump() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ODX_OBJDUMP") {
        return Ok(PathBuf::from(path));
    }
    for candidate in ["llvm-objdump-16", "llvm-objdump"] {
        for dir in std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let path = dir.join(candidate);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    bail!("no llvm-objdump found (install llvm-16, or set ODX_OBJDUMP)")
}

fn disassemble(image: &[u8], layout: &ImageLayout) -> Result<Vec<Instruction>> {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let tool = objdump()?;
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("odx-stack-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("odxflt.sys");
    std::fs::write(&file, image).with_context(|| format!("writing {}", file.display()))?;
    let output = Command::new(&tool)
        .args(["--disassemble", "--disassemble-zeroes", "--section=.text"])
        .arg(&file)
        .output()
        .with_context(|| format!("running {}", tool.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    ensure!(
        output.status.success(),
        "{} failed: {}",
        tool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut instructions = Vec::new();
    for line in text.lines() {
        // "180001010: 41 57                        \tpushq\t%r15  # comment"
        let Some((address, rest)) = line.split_once(':') else {
            continue;
        };
        let Ok(va) = u64::from_str_radix(address.trim(), 16) else {
            continue;
        };
        let mut fields = rest.split('\t');
        let bytes: Vec<u8> = fields
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read the bytes of {line:?}"))?;
        if bytes.is_empty() {
            continue;
        }
        let mnemonic = fields.next().unwrap_or_default().trim().to_owned();
        let rest = fields.collect::<Vec<_>>().join("\t");
        let (operands, comment) = match rest.split_once('#') {
            Some((operands, comment)) => (operands.trim().to_owned(), Some(comment.trim())),
            None => (rest.trim().to_owned(), None),
        };
        let target = comment
            .and_then(|c| c.split_whitespace().next())
            .and_then(|c| c.strip_prefix("0x"))
            .and_then(|c| u64::from_str_radix(c, 16).ok());
        let rva = va
            .checked_sub(layout.image_base)
            .and_then(|rva| u32::try_from(rva).ok())
            .ok_or_else(|| anyhow!("address {va:#x} is below the image base"))?;
        instructions.push(Instruction {
            rva,
            bytes,
            mnemonic,
            operands,
            target,
        });
    }
    ensure!(
        !instructions.is_empty(),
        "{} printed no instruction for .text",
        tool.display()
    );
    // The sweep must start at .text and be contiguous: a gap or an overlap means it lost the
    // instruction boundaries.
    ensure!(
        instructions[0].rva == layout.text.0,
        "the disassembly starts at {:#x}, not at .text ({:#x})",
        instructions[0].rva,
        layout.text.0
    );
    for pair in instructions.windows(2) {
        let end = pair[0].rva + u32::try_from(pair[0].bytes.len()).unwrap_or(u32::MAX);
        ensure!(
            end == pair[1].rva,
            "the disassembly is not contiguous at {:#x}",
            pair[1].rva
        );
    }
    Ok(instructions)
}

// --- the call graph ------------------------------------------------------------------------

/// A call, tail call or call out of the image found in a function.
#[derive(Clone, Debug)]
enum Edge {
    /// `call` of a function in the image.
    Call(u32),
    /// A jump to another function after the epilogue: the callee's frame replaces the caller's.
    Tail(u32),
    /// A `call` leaving the image.
    Out { import: String, site: u32 },
    /// A jump leaving the image after the epilogue.
    OutTail { import: String, site: u32 },
    /// A call through a trait object's vtable (`call *disp(%reg)`): any of the functions in
    /// slot `disp` of a vtable in the read-only data.
    Dyn(Vec<u32>),
}

#[derive(Debug)]
struct Function {
    /// Frame bytes, return address included.
    frame: u64,
    edges: Vec<Edge>,
}

#[derive(Debug)]
struct Program<'a> {
    layout: &'a ImageLayout,
    instructions: &'a [Instruction],
    /// Index of each instruction by RVA.
    index: HashMap<u32, usize>,
    /// Start RVA of every known function region (`.pdata` entries and leaves), sorted.
    starts: Vec<u32>,
    /// Read-only data addresses (RVAs) the analysed functions load with `lea X(%rip)`: the
    /// vtables a trait object made on the request path can point to (a call through a vtable
    /// resolves only to vtables in this set; `report` iterates until it stops growing).
    materialised: std::cell::RefCell<BTreeSet<u32>>,
}

impl<'a> Program<'a> {
    fn build(layout: &'a ImageLayout, instructions: &'a [Instruction]) -> Result<Self> {
        let index = instructions
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.rva, i))
            .collect();
        let mut starts: BTreeSet<u32> = layout.functions.iter().map(|(f, _)| f.begin).collect();
        starts.extend(layout.entries.iter().copied());
        // Leaf functions (no .pdata entry) are known by the direct calls and jumps into them.
        for ins in instructions {
            if let Some(target) = direct_target(ins, layout) {
                if ins.mnemonic.starts_with("call") && unwind_at(layout, target).is_none() {
                    starts.insert(target);
                }
            }
        }
        Ok(Self {
            layout,
            instructions,
            index,
            starts: starts.into_iter().collect(),
            materialised: std::cell::RefCell::new(BTreeSet::new()),
        })
    }

    /// The `.pdata` ranges of the function starting at `entry` (chained fragments included);
    /// empty for a leaf.
    fn ranges(&self, entry: u32) -> Vec<(u32, u32)> {
        self.layout
            .functions
            .iter()
            .filter(|(_, u)| u.owner == entry)
            .map(|(f, _)| (f.begin, f.end))
            .collect()
    }

    fn instruction_at(&self, rva: u32) -> Result<usize> {
        self.index
            .get(&rva)
            .copied()
            .ok_or_else(|| anyhow!("no instruction starts at {rva:#x}"))
    }

    /// The instructions of a leaf (a function without unwind data, so without known bounds),
    /// by following its control flow from `entry`: fall-through and jumps to targets that are not
    /// another function's start. Returns their indices.
    fn leaf_body(&self, entry: u32) -> Result<Vec<usize>> {
        let mut seen = BTreeSet::new();
        let mut blocks = vec![entry];
        while let Some(start) = blocks.pop() {
            let mut i = self.instruction_at(start)?;
            loop {
                let ins = self
                    .instructions
                    .get(i)
                    .ok_or_else(|| anyhow!("leaf function {entry:#x} runs off the end of .text"))?;
                if ins.rva != entry && self.starts.binary_search(&ins.rva).is_ok() {
                    bail!(
                        "leaf function {entry:#x} falls through into the function at {:#x}",
                        ins.rva
                    );
                }
                if !seen.insert(i) {
                    break;
                }
                let m = ins.mnemonic.as_str();
                if m.starts_with('j') {
                    if ins.operands.starts_with('*') {
                        if !ins.has_rex_w() && !ins.operands.contains("(%rip)") {
                            let targets = self.jump_table(i).ok_or_else(|| {
                                anyhow!(
                                    "leaf function {entry:#x}: indirect {m} {} at {:#x} is not a jump table this analysis can read",
                                    ins.operands,
                                    ins.rva
                                )
                            })?;
                            blocks.extend(targets);
                        }
                    } else if let Some(target) = direct_target(ins, self.layout) {
                        if self.starts.binary_search(&target).is_err() {
                            blocks.push(target);
                        }
                    }
                }
                let ends = m.starts_with("jmp")
                    || m.starts_with("ret")
                    || m.starts_with("int3")
                    || m.starts_with("ud2");
                if ends {
                    break;
                }
                i += 1;
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// The targets of the jump table dispatched by the `jmp *%reg` at `position`, in LLVM's
    /// x86-64 COFF form: `cmp $N, %idx; ja default; lea TABLE(%rip), %base;
    /// movslq (%base,%idx,4), %reg; add %base, %reg; jmp *%reg` — N + 1 32-bit offsets from
    /// TABLE. `None` when the instructions before the jump do not have that shape.
    fn jump_table(&self, position: usize) -> Option<Vec<u32>> {
        let window = &self.instructions[position.saturating_sub(8)..position];
        let table = window
            .iter()
            .rev()
            .find(|ins| ins.mnemonic.starts_with("lea") && ins.operands.contains("(%rip)"))?
            .target?;
        let table = u32::try_from(table.checked_sub(self.layout.image_base)?).ok()?;
        if let Some(target) = self.constant_index_jump(window, table) {
            return Some(vec![target]);
        }
        let immediate = |cmp: &Instruction| {
            cmp.operands
                .strip_prefix('$')?
                .split(',')
                .next()
                .and_then(|n| parse_immediate(n.trim()))
        };
        let bound = window
            .windows(2)
            .rev()
            .find_map(|pair| {
                let (cmp, ja) = (&pair[0], &pair[1]);
                (cmp.mnemonic.starts_with("cmp") && ja.mnemonic == "ja")
                    .then(|| immediate(cmp))
                    .flatten()
            })
            .or_else(|| self.branch_bound(position, &immediate))?;
        ensure_small(bound)?;
        let mut targets = Vec::new();
        for k in 0..=bound {
            let offset = self.layout.i32_at(table + 4 * u32::try_from(k).ok()?)?;
            let target = table.checked_add_signed(offset)?;
            if !(self.layout.text.0..self.layout.text.1).contains(&target) {
                return None;
            }
            targets.push(target);
        }
        Some(targets)
    }

    /// The bound of a table dispatch block reached by a branch elsewhere: `cmp $N, %idx;
    /// jbe BLOCK` where BLOCK starts the `lea TABLE(%rip)` that precedes the `jmp` at `position`
    /// (the completion mapping's layout: the bound check sits before another block).
    fn branch_bound(
        &self,
        position: usize,
        immediate: &dyn Fn(&Instruction) -> Option<u64>,
    ) -> Option<u64> {
        let block = self.instructions[position.saturating_sub(4)..position]
            .iter()
            .rev()
            .find(|ins| ins.mnemonic.starts_with("lea") && ins.operands.contains("(%rip)"))?
            .rva;
        let near = &self.instructions[position.saturating_sub(64)..position];
        near.windows(2).find_map(|pair| {
            let (cmp, jump) = (&pair[0], &pair[1]);
            let reaches = direct_target(jump, self.layout) == Some(block);
            if !(cmp.mnemonic.starts_with("cmp") && reaches) {
                return None;
            }
            match jump.mnemonic.as_str() {
                "jbe" => immediate(cmp),
                "jb" => immediate(cmp)?.checked_sub(1),
                _ => None,
            }
        })
    }

    /// The one target of a table dispatch whose index is loaded from read-only data (an unrolled
    /// loop over a constant table, e.g. the core's check order: `lea X(%rip), %a; mov (%a), %i;
    /// lea TABLE(%rip), %b; movslq (%b,%i,4), %r; add %b, %r; jmp *%r`, no bound check because
    /// the value is known): the index is the 32-bit value at X.
    fn constant_index_jump(&self, window: &[Instruction], table: u32) -> Option<u32> {
        let leas: Vec<&Instruction> = window
            .iter()
            .filter(|ins| ins.mnemonic.starts_with("lea") && ins.operands.contains("(%rip)"))
            .collect();
        let [.., source, _table] = leas.as_slice() else {
            return None;
        };
        let base = source.operands.rsplit(',').next()?.trim().to_owned();
        let loads = window.iter().any(|ins| {
            ins.mnemonic.starts_with("mov") && ins.operands.starts_with(&format!("({base})"))
        });
        let source = u32::try_from(source.target?.checked_sub(self.layout.image_base)?).ok()?;
        let constant = self
            .layout
            .read_only
            .iter()
            .any(|(start, end)| (*start..*end).contains(&source));
        if !loads || !constant {
            return None;
        }
        let index = u32::try_from(self.layout.i32_at(source)?).ok()?;
        ensure_small(u64::from(index))?;
        let offset = self
            .layout
            .i32_at(table.checked_add(index.checked_mul(4)?)?)?;
        let target = table.checked_add_signed(offset)?;
        (self.layout.text.0..self.layout.text.1)
            .contains(&target)
            .then_some(target)
    }

    fn function(&self, entry: u32) -> Result<Function> {
        let ranges = self.ranges(entry);
        let primary = unwind_at(self.layout, entry);
        if let Some(u) = primary {
            ensure!(
                u.owner == entry,
                "{entry:#x} is called but is a fragment of the function at {:#x}",
                u.owner
            );
        } else {
            ensure!(
                self.layout
                    .functions
                    .iter()
                    .all(|(f, _)| !(f.begin..f.end).contains(&entry)),
                "{entry:#x} is called but lies inside a function"
            );
        }
        let frame = 8 + primary.map_or(0, |u| u.frame);
        let mut edges = Vec::new();
        if ranges.is_empty() {
            // A leaf never moves the stack pointer (no unwind data): every push or allocation
            // fails `stack_op`. A jump leaves it when its target is another function's start.
            let starts = &self.starts;
            let inside = |rva: u32| rva == entry || starts.binary_search(&rva).is_err();
            let mut none = 0_u64;
            for i in self.leaf_body(entry)? {
                let ins = &self.instructions[i];
                self.stack_op(ins, false, entry, &mut none)?;
                if let Some(edge) = self.edge(ins, i, &inside, entry)? {
                    edges.push(edge);
                }
            }
            return Ok(Function { frame, edges });
        }
        let inside = |rva: u32| ranges.iter().any(|(b, e)| (*b..*e).contains(&rva));
        for (begin, end) in &ranges {
            let first = self.instruction_at(*begin)?;
            let region_unwind = unwind_at(self.layout, *begin);
            let prolog_end = begin + region_unwind.map_or(0, |u| u.prolog);
            let mut prolog_bytes = 0_u64;
            for (k, ins) in self.instructions[first..].iter().enumerate() {
                if ins.rva >= *end {
                    break;
                }
                let in_prolog = ins.rva < prolog_end;
                self.stack_op(ins, in_prolog, entry, &mut prolog_bytes)?;
                if let Some(edge) = self.edge(ins, first + k, &inside, entry)? {
                    edges.push(edge);
                }
            }
            if let Some(u) = region_unwind {
                ensure!(
                    prolog_bytes == u.own,
                    "function {entry:#x}: the prologue at {begin:#x} pushes and allocates {prolog_bytes} B, its unwind data says {} B",
                    u.own
                );
            }
        }
        Ok(Function { frame, edges })
    }

    /// Checks an instruction that moves the stack pointer; counts prologue pushes/allocations.
    fn stack_op(
        &self,
        ins: &Instruction,
        in_prolog: bool,
        entry: u32,
        prolog: &mut u64,
    ) -> Result<()> {
        let m = ins.mnemonic.as_str();
        let writes_rsp = matches!(ins.destination(), "%rsp" | "%esp" | "%sp");
        if m.starts_with("push") {
            ensure!(
                in_prolog,
                "function {entry:#x}: {m} at {:#x} outside the prologue (a dynamic stack adjustment)",
                ins.rva
            );
            *prolog += 8;
        } else if writes_rsp && m.starts_with("sub") {
            ensure!(
                in_prolog,
                "function {entry:#x}: {m} {} at {:#x} outside the prologue (a dynamic allocation)",
                ins.operands,
                ins.rva
            );
            let amount = ins
                .operands
                .strip_prefix('$')
                .and_then(|o| o.split(',').next())
                .and_then(|o| parse_immediate(o.trim()))
                .ok_or_else(|| {
                    anyhow!(
                        "function {entry:#x}: {m} {} at {:#x}: not a constant allocation",
                        ins.operands,
                        ins.rva
                    )
                })?;
            *prolog += amount;
        } else if writes_rsp
            && (m.starts_with("and") || m.starts_with("mov") || m.starts_with("xchg"))
        {
            bail!(
                "function {entry:#x}: {m} {} at {:#x} sets the stack pointer (realignment or a dynamic frame)",
                ins.operands,
                ins.rva
            );
        }
        Ok(())
    }

    /// The edge an instruction makes, if any.
    fn edge(
        &self,
        ins: &Instruction,
        position: usize,
        inside: &impl Fn(u32) -> bool,
        entry: u32,
    ) -> Result<Option<Edge>> {
        let m = ins.mnemonic.as_str();
        if m.starts_with("lea") && ins.operands.contains("(%rip)") {
            if let Some(rva) = ins
                .target
                .and_then(|t| t.checked_sub(self.layout.image_base))
                .and_then(|r| u32::try_from(r).ok())
            {
                if self
                    .layout
                    .read_only
                    .iter()
                    .any(|(b, e)| (*b..*e).contains(&rva))
                {
                    self.materialised.borrow_mut().insert(rva);
                }
            }
        }
        let call = m.starts_with("call");
        let jump = m.starts_with('j') || m.contains(" j");
        if !call && !jump {
            return Ok(None);
        }
        let site = ins.rva;
        let operand = ins.operands.as_str();
        if let Some(indirect) = operand.strip_prefix('*') {
            if indirect.contains("(%rip)") {
                let slot = self.iat_slot(ins.target);
                return match slot {
                    Some(import) if call => Ok(Some(Edge::Out { import, site })),
                    Some(import) => Ok(Some(Edge::OutTail { import, site })),
                    None => bail!(
                        "function {entry:#x}: indirect {m} {operand} at {site:#x} through memory that is not an import slot"
                    ),
                };
            }
            if indirect.starts_with('%') && !indirect.contains('(') {
                if jump && !ins.has_rex_w() {
                    // A jump table inside the function (an indirect tail call carries REX.W).
                    return Ok(None);
                }
                let import = self.register_import(indirect, position).ok_or_else(|| {
                    anyhow!(
                        "function {entry:#x}: {m} {operand} at {site:#x}: the register was not loaded from an import slot"
                    )
                })?;
                return Ok(Some(if call {
                    Edge::Out { import, site }
                } else {
                    Edge::OutTail { import, site }
                }));
            }
            if call {
                if let Some(candidates) = self.vtable_slot_targets(indirect) {
                    return Ok(Some(Edge::Dyn(candidates)));
                }
            }
            bail!("function {entry:#x}: indirect {m} {operand} at {site:#x} cannot be resolved");
        }
        let Some(target) = direct_target(ins, self.layout) else {
            bail!("function {entry:#x}: {m} {operand} at {site:#x}: unreadable target");
        };
        if call {
            ensure!(
                !inside(target) || target == entry,
                "function {entry:#x}: call into its own body at {target:#x}"
            );
            return Ok(Some(Edge::Call(target)));
        }
        if inside(target) {
            return Ok(None);
        }
        ensure!(
            self.starts.binary_search(&target).is_ok()
                || self
                    .layout
                    .functions
                    .iter()
                    .all(|(f, _)| !(f.begin..f.end).contains(&target)),
            "function {entry:#x}: {m} at {site:#x} jumps into the middle of another function ({target:#x})"
        );
        Ok(Some(Edge::Tail(target)))
    }

    /// `call *disp(%reg)` through a Rust vtable: the functions at `disp` in every vtable of the
    /// read-only data. A vtable is recognised by its shape (`[drop_in_place or 0, size, align,
    /// method…]`: a size below 2^32, a power-of-two alignment up to 4096, and a function start
    /// of `.text` in every method slot up to `disp`). An upper bound: the call goes to one of
    /// them, whichever trait object it is; `None` for any other operand, or no such vtable.
    fn vtable_slot_targets(&self, operand: &str) -> Option<Vec<u32>> {
        let (disp, rest) = operand.split_once('(')?;
        let register = rest.strip_suffix(')')?;
        if !register.starts_with('%') || register.contains(',') {
            return None;
        }
        let disp = usize::try_from(parse_immediate(disp)?).ok()?;
        if disp < 24 || disp % 8 != 0 {
            return None;
        }
        let text_fn = |value: u64| -> Option<u32> {
            let rva = u32::try_from(value.checked_sub(self.layout.image_base)?).ok()?;
            (rva >= self.layout.text.0 && rva < self.layout.text.1)
                .then_some(rva)
                .filter(|r| self.starts.binary_search(r).is_ok())
        };
        let mut out = BTreeSet::new();
        for (start, data) in &self.layout.sections {
            let read_only = self
                .layout
                .read_only
                .iter()
                .any(|(b, e)| *start >= *b && *start < *e);
            if !read_only {
                continue;
            }
            let word = |at: usize| -> Option<u64> {
                let b = data.get(at..at + 8)?;
                Some(u64::from_le_bytes(b.try_into().ok()?))
            };
            let materialised = self.materialised.borrow();
            let mut v = 0usize;
            while v + disp + 8 <= data.len() {
                let vtable = u32::try_from(v).ok().map(|v| start + v);
                if !vtable.is_some_and(|rva| materialised.contains(&rva)) {
                    v += 8;
                    continue;
                }
                let shaped = (|| {
                    let drop = word(v)?;
                    if drop != 0 {
                        text_fn(drop)?;
                    }
                    let size = word(v + 8)?;
                    let align = word(v + 16)?;
                    if size >= 1 << 32 || !align.is_power_of_two() || align > 4096 {
                        return None;
                    }
                    let mut slot = 24;
                    while slot < disp {
                        text_fn(word(v + slot)?)?;
                        slot += 8;
                    }
                    text_fn(word(v + disp)?)
                })();
                if let Some(target) = shaped {
                    out.insert(target);
                }
                v += 8;
            }
        }
        Some(out.into_iter().collect())
    }

    fn iat_slot(&self, target: Option<u64>) -> Option<String> {
        let rva = target?.checked_sub(self.layout.image_base)?;
        self.layout.iat.get(&u32::try_from(rva).ok()?).cloned()
    }

    /// The import a register holds at `position`: the nearest instruction before it (in this
    /// function's straight-line order) that writes the register must load an IAT slot.
    fn register_import(&self, register: &str, position: usize) -> Option<String> {
        let family = register_family(register)?;
        for ins in self.instructions[..position].iter().rev() {
            let writes = register_family(ins.destination()) == Some(family)
                || (ins.mnemonic.starts_with("xchg")
                    && ins
                        .operands
                        .split(',')
                        .any(|o| register_family(o.trim()) == Some(family)));
            if writes {
                if ins.mnemonic.starts_with("mov") && ins.operands.contains("(%rip)") {
                    return self.iat_slot(ins.target);
                }
                return None;
            }
            if self.starts.binary_search(&ins.rva).is_ok() {
                // Reached the start of the function without a write.
                return None;
            }
        }
        None
    }

    fn report(&self, roots: &[Root], names: BTreeMap<u32, String>) -> Result<StackReport> {
        ensure!(!roots.is_empty(), "no roots to analyse");
        let mut functions: BTreeMap<u32, Function> = BTreeMap::new();
        // Until the vtables the reached functions materialise stop growing: a function analysed
        // before a vtable was seen may call through it.
        let mut seen_vtables = usize::MAX;
        while seen_vtables != self.materialised.borrow().len() {
            seen_vtables = self.materialised.borrow().len();
            functions.clear();
            self.collect(roots, &mut functions)?;
        }
        self.finish_report(roots, names, functions)
    }

    fn collect(&self, roots: &[Root], functions: &mut BTreeMap<u32, Function>) -> Result<()> {
        let mut pending: Vec<u32> = roots.iter().map(|r| r.rva).collect();
        while let Some(entry) = pending.pop() {
            if functions.contains_key(&entry) {
                continue;
            }
            let f = self
                .function(entry)
                .with_context(|| format!("analysing the function at {entry:#x}"))?;
            for edge in &f.edges {
                match edge {
                    Edge::Call(t) | Edge::Tail(t) => pending.push(*t),
                    Edge::Dyn(ts) => pending.extend(ts.iter().copied()),
                    Edge::Out { .. } | Edge::OutTail { .. } => {}
                }
            }
            functions.insert(entry, f);
        }
        Ok(())
    }

    fn finish_report(
        &self,
        roots: &[Root],
        names: BTreeMap<u32, String>,
        functions: BTreeMap<u32, Function>,
    ) -> Result<StackReport> {
        let mut memo = Memo::default();
        let mut deepest = (0, Vec::new());
        let mut calls_out: BTreeMap<(u32, String), CallOut> = BTreeMap::new();
        for root in roots {
            let d = memo.deepest(root.rva, &functions, &mut Vec::new())?;
            if d.0 > deepest.0 {
                deepest = d;
            }
            memo.calls_out(
                root.rva,
                &functions,
                &mut Vec::new(),
                0,
                &mut Vec::new(),
                &mut calls_out,
            )?;
        }
        let mut calls_out: Vec<CallOut> = calls_out.into_values().collect();
        calls_out.sort_by(|a, b| b.live.cmp(&a.live).then(a.site.cmp(&b.site)));
        Ok(StackReport {
            roots: roots.to_vec(),
            functions: functions.len(),
            frames: functions.iter().map(|(rva, f)| (*rva, f.frame)).collect(),
            calls_out,
            deepest: deepest.0,
            deepest_path: deepest.1,
            names,
        })
    }
}

#[derive(Debug, Default)]
struct Memo {
    deepest: HashMap<u32, (u64, Vec<u32>)>,
}

impl Memo {
    /// The deepest total of frames from `entry` down (its own frame included) and that path.
    fn deepest(
        &mut self,
        entry: u32,
        functions: &BTreeMap<u32, Function>,
        active: &mut Vec<u32>,
    ) -> Result<(u64, Vec<u32>)> {
        if let Some(known) = self.deepest.get(&entry) {
            return Ok(known.clone());
        }
        ensure!(
            !active.contains(&entry),
            "recursion through {entry:#x}: the stack depth has no bound"
        );
        let f = functions
            .get(&entry)
            .ok_or_else(|| anyhow!("function {entry:#x} was not analysed"))?;
        active.push(entry);
        let mut best = (f.frame, vec![entry]);
        for edge in &f.edges {
            match edge {
                Edge::Call(callee) => {
                    let (depth, path) = self.deepest(*callee, functions, active)?;
                    if f.frame + depth > best.0 {
                        let mut p = vec![entry];
                        p.extend(path);
                        best = (f.frame + depth, p);
                    }
                }
                Edge::Tail(callee) => {
                    // The callee's frame takes the place of this one.
                    let (depth, path) = self.deepest(*callee, functions, active)?;
                    if depth > best.0 {
                        best = (depth, path);
                    }
                }
                Edge::Dyn(callees) => {
                    for callee in callees {
                        let (depth, path) = self.deepest(*callee, functions, active)?;
                        if f.frame + depth > best.0 {
                            let mut p = vec![entry];
                            p.extend(path);
                            best = (f.frame + depth, p);
                        }
                    }
                }
                Edge::Out { .. } | Edge::OutTail { .. } => {}
            }
        }
        active.pop();
        self.deepest.insert(entry, best.clone());
        Ok(best)
    }

    /// Every call out reachable from `entry`, with the frames live at it (`below`: the bytes of
    /// the callers' frames), keeping the worst per call site.
    fn calls_out(
        &mut self,
        entry: u32,
        functions: &BTreeMap<u32, Function>,
        path: &mut Vec<u32>,
        below: u64,
        active: &mut Vec<u32>,
        out: &mut BTreeMap<(u32, String), CallOut>,
    ) -> Result<()> {
        ensure!(
            !active.contains(&entry),
            "recursion through {entry:#x}: the stack depth has no bound"
        );
        let f = functions
            .get(&entry)
            .ok_or_else(|| anyhow!("function {entry:#x} was not analysed"))?;
        active.push(entry);
        path.push(entry);
        let here = below + f.frame;
        for edge in &f.edges {
            match edge {
                Edge::Call(callee) => {
                    self.calls_out(*callee, functions, path, here, active, out)?;
                }
                Edge::Tail(callee) => {
                    let mut tail_path: Vec<u32> = path[..path.len() - 1].to_vec();
                    self.calls_out(*callee, functions, &mut tail_path, below, active, out)?;
                }
                Edge::Dyn(callees) => {
                    for callee in callees {
                        self.calls_out(*callee, functions, path, here, active, out)?;
                    }
                }
                Edge::Out { import, site } | Edge::OutTail { import, site } => {
                    let (live, at) = match edge {
                        Edge::Out { .. } => (here, path.clone()),
                        _ => (below, path[..path.len() - 1].to_vec()),
                    };
                    let key = (*site, import.clone());
                    if out.get(&key).is_none_or(|c| c.live < live) {
                        out.insert(
                            key,
                            CallOut {
                                import: import.clone(),
                                site: *site,
                                live,
                                path: at,
                            },
                        );
                    }
                }
            }
        }
        path.pop();
        active.pop();
        Ok(())
    }
}

/// The target of a direct `call`/`jmp`/`jcc` (`call 0x180001234 <…>`), as an RVA in `.text`.
fn direct_target(ins: &Instruction, layout: &ImageLayout) -> Option<u32> {
    let m = ins.mnemonic.as_str();
    if !(m.starts_with("call") || m.starts_with('j')) || ins.operands.starts_with('*') {
        return None;
    }
    let hex = ins.operands.split_whitespace().next()?.strip_prefix("0x")?;
    let va = u64::from_str_radix(hex, 16).ok()?;
    let rva = u32::try_from(va.checked_sub(layout.image_base)?).ok()?;
    (layout.text.0..layout.text.1).contains(&rva).then_some(rva)
}

/// A jump table bound small enough to be one (LLVM emits tables up to a few hundred entries).
fn ensure_small(bound: u64) -> Option<()> {
    (bound < 4096).then_some(())
}

fn unwind_at(layout: &ImageLayout, rva: u32) -> Option<Unwind> {
    layout
        .functions
        .iter()
        .find(|(f, _)| f.begin == rva)
        .map(|(_, u)| *u)
}

fn parse_immediate(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The 64-bit register a register name belongs to (`%r14d` → `r14`, `%eax` → `rax`).
fn register_family(name: &str) -> Option<&'static str> {
    const FAMILIES: &[(&str, &[&str])] = &[
        ("rax", &["%rax", "%eax", "%ax", "%al", "%ah"]),
        ("rbx", &["%rbx", "%ebx", "%bx", "%bl", "%bh"]),
        ("rcx", &["%rcx", "%ecx", "%cx", "%cl", "%ch"]),
        ("rdx", &["%rdx", "%edx", "%dx", "%dl", "%dh"]),
        ("rsi", &["%rsi", "%esi", "%si", "%sil"]),
        ("rdi", &["%rdi", "%edi", "%di", "%dil"]),
        ("rbp", &["%rbp", "%ebp", "%bp", "%bpl"]),
        ("r8", &["%r8", "%r8d", "%r8w", "%r8b"]),
        ("r9", &["%r9", "%r9d", "%r9w", "%r9b"]),
        ("r10", &["%r10", "%r10d", "%r10w", "%r10b"]),
        ("r11", &["%r11", "%r11d", "%r11w", "%r11b"]),
        ("r12", &["%r12", "%r12d", "%r12w", "%r12b"]),
        ("r13", &["%r13", "%r13d", "%r13w", "%r13b"]),
        ("r14", &["%r14", "%r14d", "%r14w", "%r14b"]),
        ("r15", &["%r15", "%r15d", "%r15w", "%r15b"]),
    ];
    FAMILIES
        .iter()
        .find(|(_, names)| names.contains(&name))
        .map(|(family, _)| *family)
}

// --- names from the linker map -------------------------------------------------------------

/// Symbols of the `/MAP` file of the same link as the image (matched by time stamp), by RVA.
fn map_names(image_path: &Path, layout: &ImageLayout) -> BTreeMap<u32, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = image_path.parent() {
        candidates.push(dir.join("odxflt.map"));
        // scripts/cross-build-driver.sh links in target/cross/<target>/release/deps.
        if let Some(target) = dir.parent().and_then(Path::parent) {
            candidates.push(target.join("cross/x86_64-pc-windows-msvc/release/deps/odxflt.map"));
        }
    }
    let stamp = format!("Timestamp is {:08x}", layout.time_date_stamp);
    for candidate in candidates {
        let Ok(text) = std::fs::read_to_string(&candidate) else {
            continue;
        };
        if !text.lines().any(|l| l.trim().starts_with(&stamp)) {
            continue;
        }
        let mut names = BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [section, name, va, ..] = fields[..] else {
                continue;
            };
            if !section.starts_with("0001:") {
                continue;
            }
            let Some(rva) = u64::from_str_radix(va, 16)
                .ok()
                .and_then(|va| va.checked_sub(layout.image_base))
                .and_then(|rva| u32::try_from(rva).ok())
            else {
                continue;
            };
            names.entry(rva).or_insert_with(|| name.to_owned());
        }
        demangle(&mut names);
        return names;
    }
    BTreeMap::new()
}

/// Demangles the names with `llvm-cxxfilt` when it is installed (names stay mangled otherwise).
fn demangle(names: &mut BTreeMap<u32, String>) {
    use std::io::Write as _;
    let Ok(mut child) = Command::new("llvm-cxxfilt-16")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .or_else(|_| {
            Command::new("llvm-cxxfilt")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
        })
    else {
        return;
    };
    let input: String = names.values().map(|n| format!("{n}\n")).collect();
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let Ok(output) = child.wait_with_output() else {
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let demangled: Vec<&str> = text.lines().collect();
    if demangled.len() == names.len() {
        for (name, plain) in names.values_mut().zip(demangled) {
            *name = plain.to_owned();
        }
    }
}
