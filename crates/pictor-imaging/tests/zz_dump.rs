use pictor_imaging::*;
#[test]
fn dump() {
    let dir = std::path::Path::new("/tmp/pictor-dump");
    std::fs::create_dir_all(dir).unwrap();
    let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/images");
    for name in [
        "cmyk-icc-chelsea.jpg",
        "skimage-chelsea.png",
        "cmyk-noicc-flower.jpg",
        "tiff-lzw-flower.tif",
        "orient6-garden.jpg",
        "png-rgba-mpl-logo2.png",
        "png16-bridge.png",
        "p3-twowings.jpg",
        "gif-animated-skimage.gif",
        "png-grey-alpha-stripes.png",
        "webp-lossless-alpha-logo2.webp",
    ] {
        let data = std::fs::read(base.join(name)).unwrap();
        let a = render_preview(&data, 640, &RenderOptions::default()).unwrap();
        let img = image::load_from_memory(&a.jpeg).unwrap();
        img.save(dir.join(format!("{name}.png"))).unwrap();
    }
}
