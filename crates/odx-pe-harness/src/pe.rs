//! A minimal loader for a 64-bit native PE image (a kernel driver) into this process: map the
//! image, copy headers and sections, apply base relocations, bind every import to a replacement
//! function (or fail listing the ones missing), and set each section's protection.
//!
//! The PE is parsed with `object` (gimli-rs); only the mapping itself is done here.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt::Write as _;
use std::ptr::NonNull;

use anyhow::{Context, Result, anyhow, bail, ensure};
use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ExportTarget, ImageNtHeaders, ImageOptionalHeader, Import, PeFile64};

/// Resolves `(library, symbol)` to the address of a replacement function (`extern "win64"`).
pub trait Resolver {
    /// The address of the replacement for `symbol` of `library`, if implemented.
    fn resolve(&self, library: &str, symbol: &str) -> Option<usize>;
}

/// One bound import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundImport {
    /// The library, as the image names it (`fltmgr.sys`).
    pub library: String,
    /// The symbol.
    pub symbol: String,
    /// The IAT slot's RVA.
    pub iat_rva: u32,
}

/// Page protection of one mapped section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Read only (headers, `.rdata`, `.pdata`, `.reloc`).
    Read,
    /// Read and execute (`.text`).
    ReadExecute,
    /// Read and write (`.data`).
    ReadWrite,
}

impl Protection {
    const fn of(characteristics: u32) -> Self {
        if characteristics & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0 {
            Self::ReadExecute
        } else if characteristics & pe::IMAGE_SCN_MEM_WRITE.0 != 0 {
            Self::ReadWrite
        } else {
            Self::Read
        }
    }

    const fn prot(self) -> i32 {
        match self {
            Self::Read => libc::PROT_READ,
            Self::ReadExecute => libc::PROT_READ | libc::PROT_EXEC,
            Self::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// A mapped section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedSection {
    /// Name (`.text`).
    pub name: String,
    /// RVA.
    pub rva: u32,
    /// Bytes mapped (virtual size rounded up to a page).
    pub size: usize,
    /// Protection set.
    pub protection: Protection,
}

/// A loaded image. Unmapped on drop.
#[derive(Debug)]
pub struct Image {
    base: NonNull<u8>,
    size: usize,
    preferred_base: u64,
    exports: BTreeMap<String, u32>,
    imports: Vec<BoundImport>,
    sections: Vec<MappedSection>,
    relocations: usize,
}

const PAGE: usize = 4096;

fn round_up(value: usize, to: usize) -> Option<usize> {
    value.checked_add(to - 1).map(|v| v / to * to)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Image {
    /// Loads `file` (the bytes of a PE32+ image), binding imports through `resolver`.
    ///
    /// # Errors
    /// A malformed image, an unsupported relocation, imports the resolver does not implement
    /// (all of them listed), or a failed `mmap`/`mprotect`.
    pub fn load(file: &[u8], resolver: &dyn Resolver) -> Result<Self> {
        let pe = PeFile64::parse(file).context("not a PE32+ image")?;
        let nt = pe.nt_headers();
        ensure!(
            nt.file_header().machine.get(LE) == pe::IMAGE_FILE_MACHINE_AMD64,
            "not an x86-64 image"
        );
        let optional = nt.optional_header();
        ensure!(
            optional.section_alignment() as usize >= PAGE,
            "section alignment {:#x} is below the page size: sections cannot get their own protection",
            optional.section_alignment()
        );
        let size = round_up(optional.size_of_image() as usize, PAGE)
            .ok_or_else(|| anyhow!("SizeOfImage overflows"))?;
        let headers = optional.size_of_headers() as usize;
        ensure!(
            headers <= size && headers <= file.len(),
            "SizeOfHeaders out of range"
        );

        // Map everything read-write first; protections are set once the image is complete.
        // SAFETY: an anonymous private mapping at an address the kernel chooses touches no
        // existing memory; the result is checked against MAP_FAILED below.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            bail!("mmap of {size} bytes failed");
        }
        let base = NonNull::new(raw.cast::<u8>()).ok_or_else(|| anyhow!("mmap returned NULL"))?;
        let mut image = Self {
            base,
            size,
            preferred_base: optional.image_base(),
            exports: BTreeMap::new(),
            imports: Vec::new(),
            sections: Vec::new(),
            relocations: 0,
        };
        image.copy_in(0, file.get(..headers).unwrap_or_default())?;

        let sections = pe.section_table();
        for section in sections.iter() {
            let rva = section.virtual_address.get(LE);
            let virtual_size = section.virtual_size.get(LE) as usize;
            let data = section
                .pe_data(file)
                .map_err(|e| anyhow!("section data: {e}"))?;
            let data = data.get(..data.len().min(virtual_size)).unwrap_or_default();
            image.copy_in(rva as usize, data)?;
            let name = text(section.raw_name()).trim_end_matches('\0').to_owned();
            image.sections.push(MappedSection {
                name,
                rva,
                size: round_up(virtual_size.max(1), PAGE)
                    .ok_or_else(|| anyhow!("section size overflows"))?,
                protection: Protection::of(section.characteristics.get(LE).0),
            });
        }

        // Base relocations: the image is not at its preferred base.
        let delta = (image.base.as_ptr() as u64).wrapping_sub(image.preferred_base);
        let directories = pe.data_directories();
        if let Some(mut blocks) = directories
            .relocation_blocks(file, &sections)
            .map_err(|e| anyhow!("relocations: {e}"))?
        {
            while let Some(block) = blocks.next().map_err(|e| anyhow!("relocations: {e}"))? {
                for relocation in block {
                    if relocation.typ == pe::IMAGE_REL_BASED_DIR64 {
                        let rva = relocation.virtual_address as usize;
                        let value = image.read_u64(rva)?;
                        image.write_u64(rva, value.wrapping_add(delta))?;
                        image.relocations += 1;
                    } else if relocation.typ != pe::IMAGE_REL_BASED_ABSOLUTE {
                        bail!(
                            "unsupported base relocation type {} at RVA {:#x}",
                            relocation.typ.0,
                            relocation.virtual_address
                        );
                    }
                }
            }
        }

        // Imports: collect all, fail listing every missing one, then bind.
        let mut missing = Vec::new();
        let mut bindings = Vec::new();
        for (library, symbol, slot) in import_slots(&pe)? {
            match resolver.resolve(&library, &symbol) {
                Some(address) => bindings.push((
                    BoundImport {
                        library,
                        symbol,
                        iat_rva: slot,
                    },
                    address,
                )),
                None => missing.push(format!("{library}!{symbol}")),
            }
        }
        if !missing.is_empty() {
            bail!(
                "the image imports {} function(s) the harness does not implement: {}",
                missing.len(),
                missing.join(", ")
            );
        }
        for (import, address) in bindings {
            image.write_u64(import.iat_rva as usize, address as u64)?;
            image.imports.push(import);
        }

        if let Some(exports) = pe.export_table().map_err(|e| anyhow!("exports: {e}"))? {
            for export in exports.exports().map_err(|e| anyhow!("exports: {e}"))? {
                if let (Some(name), ExportTarget::Address(rva)) = (export.name, export.target) {
                    image.exports.insert(text(name), rva);
                }
            }
        }

        image.protect(0, round_up(headers, PAGE).unwrap_or(PAGE), Protection::Read)?;
        let mapped: Vec<(usize, usize, Protection)> = image
            .sections
            .iter()
            .map(|s| (s.rva as usize, s.size, s.protection))
            .collect();
        for (rva, len, protection) in mapped {
            image.protect(rva, len, protection)?;
        }
        Ok(image)
    }

    fn check_range(&self, rva: usize, len: usize) -> Result<()> {
        match rva.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => bail!("RVA range {rva:#x}+{len:#x} is outside the image"),
        }
    }

    fn copy_in(&mut self, rva: usize, bytes: &[u8]) -> Result<()> {
        self.check_range(rva, bytes.len())?;
        let destination = self.base.as_ptr().wrapping_add(rva);
        // SAFETY: the range was checked to lie inside the writable mapping; `bytes` is a
        // different allocation (the file), so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), destination, bytes.len()) };
        Ok(())
    }

    fn read_u64(&self, rva: usize) -> Result<u64> {
        self.check_range(rva, 8)?;
        let source = self.base.as_ptr().wrapping_add(rva).cast::<u64>();
        // SAFETY: 8 bytes inside the mapping (checked); unaligned read.
        Ok(unsafe { source.read_unaligned() })
    }

    fn write_u64(&mut self, rva: usize, value: u64) -> Result<()> {
        self.copy_in(rva, &value.to_le_bytes())
    }

    fn protect(&self, rva: usize, len: usize, protection: Protection) -> Result<()> {
        self.check_range(rva, len)?;
        let start = self.base.as_ptr().wrapping_add(rva).cast::<c_void>();
        // SAFETY: the page-aligned range lies inside this image's own mapping (checked).
        let rc = unsafe { libc::mprotect(start, len, protection.prot()) };
        ensure!(rc == 0, "mprotect({rva:#x}, {len:#x}) failed");
        Ok(())
    }

    /// Address of an exported symbol.
    #[must_use]
    pub fn export(&self, name: &str) -> Option<usize> {
        self.exports
            .get(name)
            .map(|&rva| self.base.as_ptr() as usize + rva as usize)
    }

    /// Exported names.
    pub fn export_names(&self) -> impl Iterator<Item = &str> {
        self.exports.keys().map(String::as_str)
    }

    /// Where the image was mapped.
    #[must_use]
    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// `OptionalHeader.ImageBase`.
    #[must_use]
    pub const fn preferred_base(&self) -> u64 {
        self.preferred_base
    }

    /// Whether `address` lies inside the image.
    #[must_use]
    pub fn contains(&self, address: usize) -> bool {
        address >= self.base() && address - self.base() < self.size
    }

    /// Bound imports.
    #[must_use]
    pub fn imports(&self) -> &[BoundImport] {
        &self.imports
    }

    /// Mapped sections.
    #[must_use]
    pub fn sections(&self) -> &[MappedSection] {
        &self.sections
    }

    /// DIR64 relocations applied.
    #[must_use]
    pub const fn relocations(&self) -> usize {
        self.relocations
    }

    /// One line describing the mapping.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = format!(
            "mapped at {:#x} (preferred {:#x}), {} bytes, {} DIR64 relocations, {} imports bound;",
            self.base(),
            self.preferred_base,
            self.size,
            self.relocations,
            self.imports.len()
        );
        for s in &self.sections {
            let _ = write!(out, " {} {:?}", s.name, s.protection);
        }
        out
    }
}

/// Every import of `pe`: (library, symbol or `#ordinal`, RVA of its IAT slot), in table order.
///
/// # Errors
/// The import table is malformed.
pub fn import_slots(pe: &PeFile64<'_>) -> Result<Vec<(String, String, u32)>> {
    let mut out = Vec::new();
    let Some(table) = pe.import_table().map_err(|e| anyhow!("imports: {e}"))? else {
        return Ok(out);
    };
    let mut descriptors = table.descriptors().map_err(|e| anyhow!("imports: {e}"))?;
    while let Some(descriptor) = descriptors.next().map_err(|e| anyhow!("imports: {e}"))? {
        let library = text(
            table
                .name(descriptor.name.get(LE))
                .map_err(|e| anyhow!("import name: {e}"))?,
        );
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            rva => rva,
        };
        let mut thunks = table
            .thunks(lookup)
            .map_err(|e| anyhow!("import thunks: {e}"))?;
        let mut slot = descriptor.first_thunk.get(LE);
        while let Some(thunk) = thunks
            .next::<pe::ImageNtHeaders64>()
            .map_err(|e| anyhow!("import thunks: {e}"))?
        {
            let symbol = match table
                .import::<pe::ImageNtHeaders64>(thunk)
                .map_err(|e| anyhow!("import: {e}"))?
            {
                Import::Name(_, name) => text(name),
                Import::Ordinal(ordinal) => format!("#{ordinal}"),
            };
            out.push((library.clone(), symbol, slot));
            slot = slot
                .checked_add(8)
                .ok_or_else(|| anyhow!("IAT overflows"))?;
        }
    }
    Ok(out)
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are exactly the mapping made in `load`, unmapped once here; no
        // function of the image runs after the image is dropped (the harness owns both).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size) };
    }
}
