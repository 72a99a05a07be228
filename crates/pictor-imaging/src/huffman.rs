//! The preview's progressive Huffman coder. With optimised tables libjpeg
//! (jcphuff) walks every block of a scan twice, a statistics pass then an
//! output pass; this coder, put in `cinfo->entropy` after
//! `jpeg_start_compress`, makes a scan's symbols once and replays them, for
//! the same tables (libjpeg's `jpeg_gen_optimal_table`) and the same bytes.

use std::os::raw::{c_int, c_long, c_void};

use mozjpeg_sys::{JBLOCK, JBLOCKROW, JHUFF_TBL, boolean, jpeg_compress_struct, jpeg_scan_info};

unsafe extern "C-unwind" {
    /// jchuff.c (Annex K.2), exported by the static libjpeg mozjpeg-sys links.
    fn jpeg_gen_optimal_table(cinfo: *mut jpeg_compress_struct, htbl: *mut JHUFF_TBL, freq: *mut c_long);
}

/// Zig-zag index → natural (row-major) index of a coefficient (jutils.c).
const NATURAL_ORDER: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];
/// Natural index → zig-zag index: [`NATURAL_ORDER`] inverted.
const ZIGZAG_INDEX: [u8; 64] = {
    let mut inverse = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        inverse[NATURAL_ORDER[k] as usize] = k as u8;
        k += 1;
    }
    inverse
};
/// Longest end-of-band run before it must be written out (jcphuff.c).
const MAX_EOBRUN: u32 = 0x7FFF;
/// Widest DC difference for 8-bit samples: MAX_COEF_BITS + 1 (jchuff.h).
const MAX_DC_BITS: u32 = 11;
/// Widest AC coefficient for 8-bit samples: MAX_COEF_BITS.
const MAX_AC_BITS: u32 = 10;
/// Huffman table slots in libjpeg (NUM_HUFF_TBLS).
const TABLES: usize = 4;
/// Most blocks in an MCU (C_MAX_BLOCKS_IN_MCU).
const MAX_BLOCKS_IN_MCU: usize = 10;

/// libjpeg's `struct jpeg_entropy_encoder` (jpegint.h); mozjpeg-sys keeps it opaque.
#[repr(C)]
struct EntropyMethods {
    start_pass: unsafe extern "C-unwind" fn(&mut jpeg_compress_struct, boolean),
    encode_mcu: unsafe extern "C-unwind" fn(&mut jpeg_compress_struct, *mut JBLOCKROW) -> boolean,
    finish_pass: unsafe extern "C-unwind" fn(&mut jpeg_compress_struct),
}

/// The last fields of `jpeg_compress_struct` (jpeglib.h), private in
/// mozjpeg-sys: the entropy coder, then jpeg_simple_progression's workspace.
#[repr(C)]
struct CompressTail {
    entropy: *mut c_void,
    script_space: *mut jpeg_scan_info,
    script_space_size: c_int,
}

/// One scan of the script, as this coder needs it.
#[derive(Debug, Clone, Copy)]
struct ScanPlan {
    /// Spectral band, zig-zag indices; 0..=0 is the DC scan.
    start: usize,
    end: usize,
    /// For each of the `blocks` blocks of an MCU, its component's place in the scan.
    membership: [usize; MAX_BLOCKS_IN_MCU],
    blocks: usize,
    /// Huffman table of each of the `components` components of the scan.
    tables: [usize; 4],
    components: usize,
}

/// A symbol as made in the statistics pass: bits 0–7 the Huffman symbol,
/// 8–9 its table, 12–15 how many extra bits follow, 16–31 those bits.
type Symbol = u32;

/// The coder libjpeg calls. `methods` comes first so that libjpeg's
/// `cinfo->entropy` can point at the whole struct.
#[repr(C)]
pub(crate) struct ProgressiveCoder {
    methods: EntropyMethods,
    scans: Vec<ScanPlan>,
    /// Index into `scans` of the scan being coded.
    scan: usize,
    /// `scans[scan]`.
    current: ScanPlan,
    /// True in a statistics pass, false in an output pass.
    gathering: bool,
    symbols: Vec<Symbol>,
    counts: [[c_long; 257]; TABLES],
    /// Code (low 16 bits) and length (high 16) of each symbol of each table.
    codes: [[u32; 256]; TABLES],
    last_dc: [i32; 4],
    eobrun: u32,
    /// The scan's entropy-coded bytes before they go to the destination.
    bytes: Vec<u8>,
}

impl ProgressiveCoder {
    /// Takes over entropy coding from libjpeg for `script`, when it can:
    /// spectral selection only (Ah = Al = 0), no restart markers, and the
    /// compressor's layout as this module expects. Otherwise `None`, and
    /// libjpeg keeps its own coder.
    ///
    /// # Safety
    ///
    /// `cinfo` must be a compressor just past `jpeg_start_compress` with
    /// `optimize_coding`, coding `script` (its `scan_info`), with no
    /// scanline written yet; the returned coder must stay alive, unmoved
    /// (it is boxed), until `jpeg_finish_compress` or the compressor's
    /// destruction.
    pub(crate) unsafe fn install(
        cinfo: &mut jpeg_compress_struct,
        script: &[jpeg_scan_info],
    ) -> Option<Box<ProgressiveCoder>> {
        if cinfo.restart_interval != 0 || cinfo.restart_in_rows != 0 || cinfo.optimize_coding == 0 {
            return None;
        }
        let components = usize::try_from(cinfo.num_components).ok().filter(|&n| (1..=4).contains(&n))?;
        // SAFETY: jpeg_start_compress filled `comp_info` with
        // `num_components` entries.
        let info = unsafe { std::slice::from_raw_parts(cinfo.comp_info, components) };
        let scans = script.iter().map(|scan| plan(scan, info)).collect::<Option<Vec<ScanPlan>>>()?;
        let tail = tail_of(cinfo);
        // SAFETY: `tail` is within `*cinfo` (see `tail_of`).
        let (entropy, script_space, script_space_size) =
            unsafe { ((*tail).entropy, (*tail).script_space, (*tail).script_space_size) };
        // A caller's script leaves jpeg_simple_progression's workspace empty,
        // and jinit_phuff_encoder has set the coder: anything else means the
        // struct is not laid out as assumed, so leave it alone.
        if entropy.is_null() || !script_space.is_null() || script_space_size != 0 {
            return None;
        }
        let mut coder = Box::new(ProgressiveCoder {
            methods: EntropyMethods { start_pass, encode_mcu, finish_pass },
            current: *scans.first()?,
            scans,
            scan: 0,
            gathering: true,
            symbols: Vec::new(),
            counts: [[0; 257]; TABLES],
            codes: [[0; 256]; TABLES],
            last_dc: [0; 4],
            eobrun: 0,
            bytes: Vec::new(),
        });
        // jpeg_start_compress already started scan 0's statistics pass with
        // libjpeg's coder; this one starts it again for itself.
        coder.start_gathering();
        let pointer: *mut ProgressiveCoder = &mut *coder;
        // SAFETY: as above; libjpeg only calls through `methods`, the first
        // field of this #[repr(C)] struct, and the caller keeps it alive.
        unsafe { (*tail).entropy = pointer.cast() };
        Some(coder)
    }

    fn plan(&self) -> ScanPlan {
        match self.scans.get(self.scan) {
            Some(&plan) => plan,
            None => fail("libjpeg ran more scans than the script has"),
        }
    }

    fn start_gathering(&mut self) {
        let plan = self.plan();
        self.current = plan;
        for &table in &plan.tables[..plan.components] {
            self.counts[table] = [0; 257];
        }
        self.gathering = true;
        self.symbols.clear();
        self.last_dc = [0; 4];
        self.eobrun = 0;
    }

    fn push(&mut self, table: usize, symbol: u32, extra_len: u32, extra: u32) {
        self.counts[table][symbol as usize] += 1;
        self.symbols.push(symbol | (table as u32) << 8 | extra_len << 12 | extra << 16);
    }

    fn push_eobrun(&mut self, table: usize) {
        if self.eobrun > 0 {
            let bits = 31 - self.eobrun.leading_zeros();
            self.push(table, bits << 4, bits, self.eobrun & ((1 << bits) - 1));
            self.eobrun = 0;
        }
    }

    /// A block whose band ends in zeros: one more in the end-of-band run,
    /// written out once it is as long as a run can be.
    fn end_band(&mut self, table: usize) {
        self.eobrun += 1;
        if self.eobrun == MAX_EOBRUN {
            self.push_eobrun(table);
        }
    }

    fn gather_dc(&mut self, blocks: &[&JBLOCK]) {
        for (b, block) in blocks.iter().enumerate() {
            let component = self.current.membership[b];
            let value = i32::from(block[0]);
            let diff = value - self.last_dc[component];
            self.last_dc[component] = value;
            let (bits, extra) = magnitude(diff);
            if bits > MAX_DC_BITS {
                fail("a DC difference out of range");
            }
            self.push(self.current.tables[component], bits, bits, extra);
        }
    }

    fn gather_ac(&mut self, block: &JBLOCK) {
        let (start, end, table) = (self.current.start, self.current.end, self.current.tables[0]);
        // A bit per nonzero coefficient of the band, in zig-zag order: only
        // the nonzero ones (a handful a block at q80) are looked at one by one.
        let mut natural = nonzero_mask(block);
        let mut zigzag = 0u64;
        while natural != 0 {
            zigzag |= 1 << ZIGZAG_INDEX[natural.trailing_zeros() as usize];
            natural &= natural - 1;
        }
        let width = end - start + 1;
        let mut nonzero = (zigzag >> start) & (u64::MAX >> (64 - width));
        if nonzero == 0 {
            self.end_band(table);
            return;
        }
        self.push_eobrun(table);
        let mut next = 0u32;
        while nonzero != 0 {
            let at = nonzero.trailing_zeros();
            let mut run = at - next;
            while run > 15 {
                self.push(table, 0xF0, 0, 0);
                run -= 16;
            }
            let (bits, extra) = magnitude(i32::from(block[usize::from(NATURAL_ORDER[start + at as usize])]));
            if bits > MAX_AC_BITS {
                fail("an AC coefficient out of range");
            }
            self.push(table, run << 4 | bits, bits, extra);
            next = at + 1;
            nonzero &= nonzero - 1;
        }
        if (next as usize) <= end - start {
            self.end_band(table);
        }
    }

    /// End of a statistics pass: libjpeg's optimal table for each table the
    /// scan uses, stored in `cinfo` (where the scan header writes it from),
    /// and its codes.
    fn finish_gathering(&mut self, cinfo: &mut jpeg_compress_struct) {
        let plan = self.current;
        let dc = plan.start == 0;
        if !dc {
            self.push_eobrun(plan.tables[0]);
        }
        let mut done = [false; TABLES];
        for &table in &plan.tables[..plan.components] {
            if std::mem::replace(&mut done[table], true) {
                continue;
            }
            let used: Vec<bool> = self.counts[table][..256].iter().map(|&count| count > 0).collect();
            let slot = if dc { &mut cinfo.dc_huff_tbl_ptrs[table] } else { &mut cinfo.ac_huff_tbl_ptrs[table] };
            if slot.is_null() {
                // SAFETY: a live compressor; the table is in its permanent pool.
                *slot = unsafe { mozjpeg_sys::jpeg_alloc_huff_table(&mut cinfo.common) };
            }
            let htbl = *slot;
            // SAFETY: `htbl` is a live table of this compressor; `counts` has
            // the 257 entries the function expects (it overwrites them).
            unsafe { jpeg_gen_optimal_table(cinfo, htbl, self.counts[table].as_mut_ptr()) };
            // SAFETY: as above.
            self.codes[table] = derive_codes(unsafe { &*htbl });
            if used.iter().zip(&self.codes[table]).any(|(&used, &code)| used && code >> 16 == 0) {
                fail("a symbol got no Huffman code");
            }
        }
    }

    /// End of an output pass: the scan's symbols as bits, stuffed, padded
    /// with ones to a byte, written to libjpeg's destination.
    fn finish_output(&mut self, cinfo: &mut jpeg_compress_struct) {
        self.bytes.clear();
        let mut writer = BitWriter { acc: 0, filled: 0, bytes: std::mem::take(&mut self.bytes) };
        for &symbol in &self.symbols {
            let code = self.codes[(symbol >> 8 & 3) as usize][(symbol & 0xFF) as usize];
            let extra_len = symbol >> 12 & 15;
            writer.put(u64::from(code & 0xFFFF) << extra_len | u64::from(symbol >> 16), (code >> 16) + extra_len);
        }
        self.bytes = writer.finish();
        write_to_destination(cinfo, &self.bytes);
        self.symbols.clear();
        self.scan += 1;
    }
}

/// Where `cinfo`'s last fields start: `CompressTail` ends the struct.
fn tail_of(cinfo: &mut jpeg_compress_struct) -> *mut CompressTail {
    let offset = std::mem::size_of::<jpeg_compress_struct>() - std::mem::size_of::<CompressTail>();
    let base: *mut jpeg_compress_struct = cinfo;
    // SAFETY: the offset is within the struct, whose alignment (8) the tail
    // shares, as its first field is a pointer.
    unsafe { base.cast::<u8>().add(offset).cast() }
}

/// The plan of one scan of the script, or `None` for what this coder does
/// not code (successive approximation, more than 4 components or 10 blocks
/// in an MCU, a band out of 0..=63).
fn plan(scan: &jpeg_scan_info, info: &[mozjpeg_sys::jpeg_component_info]) -> Option<ScanPlan> {
    if scan.Ah != 0 || scan.Al != 0 {
        return None;
    }
    let start = usize::try_from(scan.Ss).ok()?;
    let end = usize::try_from(scan.Se).ok()?;
    let count = usize::try_from(scan.comps_in_scan).ok().filter(|&n| (1..=4).contains(&n))?;
    if end > 63 || start > end || (start == 0) != (end == 0) || (start > 0 && count != 1) {
        return None;
    }
    let mut plan =
        ScanPlan { start, end, membership: [0; MAX_BLOCKS_IN_MCU], blocks: 0, tables: [0; 4], components: count };
    for (place, &index) in scan.component_index[..count].iter().enumerate() {
        let component = info.get(usize::try_from(index).ok()?)?;
        let table = if start == 0 { component.dc_tbl_no } else { component.ac_tbl_no };
        plan.tables[place] = usize::try_from(table).ok().filter(|&t| t < TABLES)?;
        // An interleaved scan's MCU holds h × v blocks of each component
        // (jcmaster.c, per_scan_setup); a single component's, one block.
        let blocks =
            if count == 1 { 1 } else { usize::try_from(component.h_samp_factor * component.v_samp_factor).ok()? };
        let end = plan.blocks + blocks;
        plan.membership.get_mut(plan.blocks..end)?.fill(place);
        plan.blocks = end;
    }
    Some(plan)
}

/// A bit per nonzero coefficient of `block`, in natural order (bit i for
/// coefficient i): SSE2 compares, 16 coefficients a mask move.
#[cfg(target_arch = "x86_64")]
fn nonzero_mask(block: &JBLOCK) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_setzero_si128,
    };
    let mut mask = 0u64;
    for (i, sixteen) in block.chunks_exact(16).enumerate() {
        let (low, high) = sixteen.split_at(8);
        // SAFETY: SSE2 is part of the x86_64 baseline; `low` and `high` are
        // 8 i16s each, i.e. 16 readable bytes, and `_mm_loadu_si128`
        // accepts any alignment.
        let zero_bits = unsafe {
            let low = _mm_loadu_si128(low.as_ptr().cast::<__m128i>());
            let high = _mm_loadu_si128(high.as_ptr().cast::<__m128i>());
            let zero = _mm_setzero_si128();
            // 0xFF bytes where a coefficient is zero, packed to one byte each.
            _mm_movemask_epi8(_mm_packs_epi16(_mm_cmpeq_epi16(low, zero), _mm_cmpeq_epi16(high, zero)))
        } as u32 as u64;
        mask |= (!zero_bits & 0xFFFF) << (16 * i);
    }
    mask
}

/// [`nonzero_mask`] elsewhere.
#[cfg(not(target_arch = "x86_64"))]
fn nonzero_mask(block: &JBLOCK) -> u64 {
    block.iter().enumerate().fold(0, |mask, (i, &c)| mask | u64::from(c != 0) << i)
}

/// Bits needed for `value`'s magnitude, and the bits written for it: the
/// value if positive, its one's complement (value − 1) if negative.
fn magnitude(value: i32) -> (u32, u32) {
    let bits = 32 - value.unsigned_abs().leading_zeros();
    let extra = if value < 0 { (value - 1) as u32 } else { value as u32 };
    (bits, extra & ((1u32 << bits) - 1))
}

/// Code and length of each symbol of `table` (Annex C), as `code | length << 16`.
fn derive_codes(table: &JHUFF_TBL) -> [u32; 256] {
    let mut codes = [0u32; 256];
    let mut code = 0u32;
    let mut next = 0usize;
    for length in 1..=16u32 {
        for _ in 0..table.bits[length as usize] {
            let Some(&symbol) = table.huffval.get(next) else { fail("a Huffman table with too many codes") };
            codes[usize::from(symbol)] = code | length << 16;
            code += 1;
            next += 1;
        }
        code <<= 1;
    }
    codes
}

/// Big-endian bit packing with JPEG's 0xFF byte stuffing.
struct BitWriter {
    acc: u64,
    filled: u32,
    bytes: Vec<u8>,
}

impl BitWriter {
    /// Appends the low `len` (≤ 31) bits of `bits`.
    fn put(&mut self, bits: u64, len: u32) {
        self.acc = self.acc << len | bits;
        self.filled += len;
        if self.filled >= 32 {
            self.filled -= 32;
            let word = (self.acc >> self.filled) as u32;
            let inverted = !word;
            if inverted.wrapping_sub(0x0101_0101) & !inverted & 0x8080_8080 == 0 {
                self.bytes.extend_from_slice(&word.to_be_bytes());
            } else {
                word.to_be_bytes().into_iter().for_each(|byte| self.byte(byte));
            }
        }
    }

    fn byte(&mut self, byte: u8) {
        self.bytes.push(byte);
        if byte == 0xFF {
            self.bytes.push(0);
        }
    }

    /// Pads the last byte with ones (jcphuff.c's flush_bits) and returns the bytes.
    fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.filled % 8) % 8;
        self.acc = self.acc << pad | ((1 << pad) - 1);
        self.filled += pad;
        while self.filled >= 8 {
            self.filled -= 8;
            self.byte((self.acc >> self.filled) as u8);
        }
        self.bytes
    }
}

/// Copies `bytes` into libjpeg's destination manager, emptying it as it fills.
fn write_to_destination(cinfo: &mut jpeg_compress_struct, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: libjpeg only runs a pass with a destination set up.
        let destination = unsafe { &mut *cinfo.dest };
        if destination.free_in_buffer == 0 {
            let Some(empty) = destination.empty_output_buffer else { fail("a destination without a buffer") };
            // SAFETY: the destination's own callback, called as libjpeg does.
            if unsafe { empty(cinfo) } == 0 {
                fail("a suspending destination");
            }
            continue;
        }
        let count = bytes.len().min(destination.free_in_buffer);
        // SAFETY: the destination offers `free_in_buffer` writable bytes at
        // `next_output_byte`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), destination.next_output_byte, count);
            destination.next_output_byte = destination.next_output_byte.add(count);
        }
        destination.free_in_buffer -= count;
        bytes = &bytes[count..];
    }
}

/// A broken assumption: unwinds to `encode`'s guard, as libjpeg's own
/// errors do (the error manager's `error_exit`).
fn fail(message: &str) -> ! {
    std::panic::panic_any(format!("progressive coder: {message}"))
}

/// The installed coder, borrowed apart from `cinfo` (it is not inside it).
///
/// # Safety
///
/// Only called by libjpeg, with `cinfo->entropy` pointing at a live coder.
unsafe fn coder_of<'a>(cinfo: &mut jpeg_compress_struct) -> &'a mut ProgressiveCoder {
    // SAFETY: guaranteed by the caller; the coder is a separate allocation.
    unsafe { &mut *(*tail_of(cinfo)).entropy.cast::<ProgressiveCoder>() }
}

unsafe extern "C-unwind" fn start_pass(cinfo: &mut jpeg_compress_struct, gather_statistics: boolean) {
    // SAFETY: libjpeg calls this through the installed coder.
    let coder = unsafe { coder_of(cinfo) };
    if gather_statistics != 0 {
        coder.start_gathering();
    } else {
        coder.gathering = false;
    }
}

unsafe extern "C-unwind" fn encode_mcu(cinfo: &mut jpeg_compress_struct, mcu: *mut JBLOCKROW) -> boolean {
    // SAFETY: libjpeg calls this through the installed coder.
    let coder = unsafe { coder_of(cinfo) };
    if !coder.gathering {
        // The symbols were made in the statistics pass.
        return 1;
    }
    if coder.current.start == 0 {
        let mut blocks: [&JBLOCK; MAX_BLOCKS_IN_MCU] = [&[0; 64]; MAX_BLOCKS_IN_MCU];
        let count = coder.current.blocks;
        for (b, slot) in blocks[..count].iter_mut().enumerate() {
            // SAFETY: libjpeg hands over blocks_in_MCU block pointers, which
            // is the plan's membership length (per_scan_setup).
            *slot = unsafe { &**mcu.add(b) };
        }
        coder.gather_dc(&blocks[..count]);
    } else {
        // SAFETY: an AC scan's MCU is one block.
        coder.gather_ac(unsafe { &**mcu });
    }
    1
}

unsafe extern "C-unwind" fn finish_pass(cinfo: &mut jpeg_compress_struct) {
    // SAFETY: libjpeg calls this through the installed coder.
    let coder = unsafe { coder_of(cinfo) };
    if coder.gathering {
        coder.finish_gathering(cinfo);
    } else {
        coder.finish_output(cinfo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonzero_mask_has_a_bit_for_each_nonzero_coefficient() {
        let mut state = 0x9E37_79B9_u32;
        for round in 0..200 {
            let block: JBLOCK = std::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // Mostly zeros, some of every sign and size, -32768 included.
                if state % 5 < round % 5 { state as i16 } else { 0 }
            });

            let expected = block.iter().enumerate().fold(0u64, |mask, (i, &c)| mask | u64::from(c != 0) << i);

            assert_eq!(nonzero_mask(&block), expected, "{block:?}");
        }
    }

    #[test]
    fn the_zigzag_index_inverts_the_natural_order() {
        for (k, &natural) in NATURAL_ORDER.iter().enumerate() {
            assert_eq!(usize::from(ZIGZAG_INDEX[usize::from(natural)]), k);
        }
    }

    #[test]
    fn magnitudes_are_coded_as_jpeg_says() {
        assert_eq!(magnitude(0), (0, 0));
        assert_eq!(magnitude(1), (1, 1));
        assert_eq!(magnitude(-1), (1, 0));
        assert_eq!(magnitude(-3), (2, 0));
        assert_eq!(magnitude(5), (3, 5));
        assert_eq!(magnitude(-1023), (10, 0));
    }
}
