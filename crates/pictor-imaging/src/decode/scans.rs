//! Scan selection for progressive JPEGs: scans whose bits the chosen decode
//! scale cannot show are cut from the stream before libjpeg entropy-decodes
//! them (the costliest part of a progressive decode).
//!
//! - A 1/8-scale decode reads only each block's DC coefficient: every AC
//!   scan goes, with the same pixels as a result.
//! - A decode at 1/2 scale or less reads only the 4×4 lowest frequencies,
//!   whose quantised values are the largest: the final successive-
//!   approximation refinements (the least significant bit of every
//!   coefficient, often a third to half of the file) change a 2048 px
//!   preview by about 0.3 dB (BENCHMARKS.md, 2026-11-29 and 2026-11-30).

/// Start of frame, progressive, Huffman-coded.
const SOF2: u8 = 0xC2;
/// Start of scan.
const SOS: u8 = 0xDA;
/// End of image.
const EOI: u8 = 0xD9;

/// What a scan header says, as far as selection needs it.
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Spectral selection start (0 for DC scans).
    spectral_start: u8,
    /// Successive approximation: bit position high (0 on a first scan).
    approximation_high: u8,
    /// Successive approximation: bit position low (0 when the scan ends at full precision).
    approximation_low: u8,
}

/// A progressive file without its AC scans, for a 1/8-scale decode.
pub(crate) fn dc_only(data: &[u8]) -> Option<Vec<u8>> {
    select(data, |scan| scan.spectral_start == 0)
}

/// A progressive file without the scans that refine coefficients to their
/// last bit (luma and chroma AC, and DC), for decodes at 1/2 scale or less.
pub(crate) fn without_final_refinements(data: &[u8]) -> Option<Vec<u8>> {
    select(data, |scan| !(scan.approximation_high > 0 && scan.approximation_low == 0))
}

/// Copies a progressive Huffman JPEG with only the scans `keep` accepts.
/// `None` when the data is anything else, when every scan is kept, or when
/// it cannot be walked marker by marker to its EOI (damaged or truncated):
/// the caller then decodes the original and libjpeg reports it.
fn select(data: &[u8], keep: impl Fn(Scan) -> bool) -> Option<Vec<u8>> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..2]);
    let mut progressive_frame = false;
    let mut dropped = false;
    let mut pos = 2;
    loop {
        if *data.get(pos)? != 0xFF {
            return None;
        }
        let marker = *data.get(pos + 1)?;
        match marker {
            // Fill byte before a marker.
            0xFF => pos += 1,
            EOI => {
                out.extend_from_slice(&data[pos..pos + 2]);
                return (progressive_frame && dropped).then_some(out);
            }
            // Markers without a length have no place between segments.
            0x01 | 0xD0..=0xD8 => return None,
            _ => {
                let length = usize::from(u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]));
                let segment_end = pos + 2 + length;
                if length < 2 || segment_end > data.len() {
                    return None;
                }
                let body = &data[pos + 4..segment_end];
                if is_frame_header(marker) {
                    // Only the progressive Huffman process is rewritten.
                    if marker != SOF2 {
                        return None;
                    }
                    progressive_frame = true;
                }
                if marker == SOS {
                    let count = usize::from(*body.first()?);
                    let approximation = *body.get(3 + 2 * count)?;
                    if !progressive_frame {
                        return None;
                    }
                    let scan = Scan {
                        spectral_start: *body.get(1 + 2 * count)?,
                        approximation_high: approximation >> 4,
                        approximation_low: approximation & 0x0F,
                    };
                    let scan_end = entropy_end(data, segment_end)?;
                    if keep(scan) {
                        out.extend_from_slice(&data[pos..scan_end]);
                    } else {
                        dropped = true;
                    }
                    pos = scan_end;
                } else {
                    out.extend_from_slice(&data[pos..segment_end]);
                    pos = segment_end;
                }
            }
        }
    }
}

/// SOF0..SOF15, which share the 0xC0..0xCF range with DHT, JPG and DAC.
fn is_frame_header(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Where the entropy-coded data starting at `from` ends: the first 0xFF that
/// is neither a stuffed zero nor a restart marker.
fn entropy_end(data: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        match *data.get(pos + 1)? {
            0x00 | 0xD0..=0xD7 => pos += 2,
            // A fill byte: the marker starts at the next 0xFF.
            0xFF => pos += 1,
            _ => return Some(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, a progressive frame header, a DC scan, an AC scan whose data
    /// holds a stuffed 0xFF and a restart marker, EOI.
    fn progressive_stream() -> Vec<u8> {
        let mut data = vec![0xFF, 0xD8];
        data.extend([0xFF, SOF2, 0x00, 0x0B, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        data.extend([0xFF, SOS, 0x00, 0x08, 1, 1, 0x00, 0, 0, 0]);
        data.extend([0x12, 0x34]);
        data.extend([0xFF, SOS, 0x00, 0x08, 1, 1, 0x00, 1, 63, 0]);
        data.extend([0x56, 0xFF, 0x00, 0x78, 0xFF, 0xD0, 0x9A]);
        data.extend([0xFF, EOI]);
        data
    }

    #[test]
    fn ac_scans_are_dropped_and_everything_else_is_kept() {
        let data = progressive_stream();

        let kept = dc_only(&data).expect("a progressive stream");

        let mut expected = data[..2 + 13 + 10 + 2].to_vec();
        expected.extend([0xFF, EOI]);
        assert_eq!(kept, expected);
    }

    #[test]
    fn only_final_refinements_are_dropped_and_a_stream_without_one_is_left_alone() {
        let mut data = progressive_stream();
        assert_eq!(without_final_refinements(&data), None, "no refinement scan: nothing to drop");
        let eoi = data.len() - 2;
        // An AC refinement to bit 1 (kept), then a DC and an AC refinement to bit 0 (dropped).
        let refinements = [
            vec![0xFF, SOS, 0x00, 0x08, 1, 1, 0x00, 1, 63, 0x21, 0x44],
            vec![0xFF, SOS, 0x00, 0x08, 1, 1, 0x00, 0, 0, 0x10, 0x11],
            vec![0xFF, SOS, 0x00, 0x08, 1, 1, 0x00, 1, 63, 0x10, 0x22, 0x33],
        ];
        data.splice(eoi..eoi, refinements.concat());

        let kept = without_final_refinements(&data).expect("two scans to drop");

        let mut expected = data[..eoi].to_vec();
        expected.extend(&refinements[0]);
        expected.extend([0xFF, EOI]);
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_truncated_stream_is_left_to_libjpeg() {
        let data = progressive_stream();

        assert_eq!(dc_only(&data[..data.len() - 4]), None);
    }

    #[test]
    fn a_baseline_stream_is_left_alone() {
        let mut data = progressive_stream();
        data[3] = 0xC0;

        assert_eq!(dc_only(&data), None);
    }
}
