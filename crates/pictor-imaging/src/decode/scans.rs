//! Scan selection for progressive JPEGs: a 1/8-scale decode reads only each
//! block's DC coefficient, so the AC scans (most of the entropy-coded data)
//! are dropped from the stream before libjpeg decodes it, with the same
//! pixels as a result.

/// Start of frame, progressive, Huffman-coded.
const SOF2: u8 = 0xC2;
/// Start of scan.
const SOS: u8 = 0xDA;
/// End of image.
const EOI: u8 = 0xD9;

/// Copies a progressive Huffman JPEG without its AC scans (those whose
/// spectral selection starts above 0). `None` when the data is anything
/// else, or cannot be walked marker by marker to its EOI (damaged or
/// truncated): the caller then decodes the original and libjpeg reports it.
pub(crate) fn dc_only(data: &[u8]) -> Option<Vec<u8>> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    // The DC scans are a small part of a progressive file.
    let mut out = Vec::with_capacity(data.len() / 4);
    out.extend_from_slice(&data[..2]);
    let mut progressive = false;
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
                return progressive.then_some(out);
            }
            // Markers without a length have no place between segments.
            0x01 | 0xD0..=0xD8 => return None,
            _ => {
                let length = usize::from(u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]));
                let segment_end = pos + 2 + length;
                if length < 2 || segment_end > data.len() {
                    return None;
                }
                if is_frame_header(marker) {
                    // Only the progressive Huffman process is rewritten.
                    if marker != SOF2 {
                        return None;
                    }
                    progressive = true;
                }
                if marker == SOS {
                    let header = &data[pos + 4..segment_end];
                    let components = usize::from(*header.first()?);
                    let spectral_start = *header.get(1 + 2 * components)?;
                    let scan_end = entropy_end(data, segment_end)?;
                    if spectral_start == 0 {
                        out.extend_from_slice(&data[pos..scan_end]);
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
