//! EXIF orientation applied to a reduced buffer (never to a full-size
//! decode): flips, 180° and the four transposing orientations.

use crate::decode::Raster;

/// Side of the square tiles walked when transposing, to stay in cache.
const TILE: usize = 64;

/// Returns the raster as displayed under EXIF `orientation` (1..=8; any
/// other value is treated as 1).
pub(crate) fn orient(raster: Raster, orientation: u8) -> Raster {
    if !(2..=8).contains(&orientation) {
        return raster;
    }
    let channels = raster.layout.channels();
    let (w, h) = (raster.width as usize, raster.height as usize);
    let (out_w, out_h) = if orientation >= 5 { (h, w) } else { (w, h) };
    // Source pixel index of output (x, y) is base + x * dx + y * dy.
    let (wi, hi) = (w as isize, h as isize);
    let (base, dx, dy) = match orientation {
        2 => (wi - 1, -1, wi),
        3 => (wi * hi - 1, -1, -wi),
        4 => ((hi - 1) * wi, 1, -wi),
        5 => (0, wi, 1),
        6 => ((hi - 1) * wi, -wi, 1),
        7 => (wi * hi - 1, -wi, -1),
        _ => (wi - 1, wi, -1),
    };
    let pixels = match channels {
        1 => remap::<1>(&raster.pixels, out_w, out_h, base, dx, dy),
        3 => remap::<3>(&raster.pixels, out_w, out_h, base, dx, dy),
        _ => remap::<4>(&raster.pixels, out_w, out_h, base, dx, dy),
    };
    Raster { width: out_w as u32, height: out_h as u32, layout: raster.layout, pixels }
}

fn remap<const C: usize>(src: &[u8], out_w: usize, out_h: usize, base: isize, dx: isize, dy: isize) -> Vec<u8> {
    let mut dst = vec![0u8; out_w * out_h * C];
    for tile_y in (0..out_h).step_by(TILE) {
        for tile_x in (0..out_w).step_by(TILE) {
            for y in tile_y..(tile_y + TILE).min(out_h) {
                let row_start = base + y as isize * dy;
                let out_row = &mut dst[y * out_w * C..(y + 1) * out_w * C];
                for x in tile_x..(tile_x + TILE).min(out_w) {
                    let from = (row_start + x as isize * dx) as usize * C;
                    out_row[x * C..x * C + C].copy_from_slice(&src[from..from + C]);
                }
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PixelLayout;

    /// 3x2 grey image:
    /// 1 2 3
    /// 4 5 6
    fn sample() -> Raster {
        Raster::new(3, 2, PixelLayout::Gray, vec![1, 2, 3, 4, 5, 6]).expect("3x2 raster")
    }

    #[test]
    fn each_orientation_maps_pixels_as_exif_defines() {
        let expected: [(u8, u32, &[u8]); 8] = [
            (1, 3, &[1, 2, 3, 4, 5, 6]),
            (2, 3, &[3, 2, 1, 6, 5, 4]),
            (3, 3, &[6, 5, 4, 3, 2, 1]),
            (4, 3, &[4, 5, 6, 1, 2, 3]),
            (5, 2, &[1, 4, 2, 5, 3, 6]),
            (6, 2, &[4, 1, 5, 2, 6, 3]),
            (7, 2, &[6, 3, 5, 2, 4, 1]),
            (8, 2, &[3, 6, 2, 5, 1, 4]),
        ];
        for (orientation, width, pixels) in expected {
            let out = orient(sample(), orientation);

            assert_eq!(out.width, width, "orientation {orientation}");
            assert_eq!(out.pixels, pixels, "orientation {orientation}");
        }
    }

    #[test]
    fn rgb_pixels_move_as_whole_triples() {
        let raster = Raster::new(2, 1, PixelLayout::Rgb, vec![1, 2, 3, 4, 5, 6]).expect("2x1");

        let out = orient(raster, 2);

        assert_eq!(out.pixels, vec![4, 5, 6, 1, 2, 3]);
    }
}
