//! The image loader every command uses (format sniffing, decode, EXIF orientation, CMYK and
//! 16-bit conversion, the decompression-bomb limit): any bytes give an image or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stabilize_core::image::load::{LoadOptions, decode_image};

fuzz_target!(|data: &[u8]| {
    // A small pixel limit keeps each run fast; the limit itself is part of what is fuzzed.
    let opts = LoadOptions { max_pixels: 4_000_000, ..LoadOptions::default() };
    if let Ok(img) = decode_image(data, &opts) {
        assert!(img.width() > 0 && img.height() > 0);
        assert!((img.width() as u64) * (img.height() as u64) <= opts.max_pixels);
        let _ = img.to_rgb();
    }
});
