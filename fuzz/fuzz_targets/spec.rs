//! The distortion-spec parser (`jpeg:50,thumb:30,…`): any string parses or is an error; a parsed
//! spec prints back to a spec that parses to the same distortion, and applies to a tiny image.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stabilize_core::distort::parse_list;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(list) = parse_list(s) {
        for d in list {
            let again = parse_list(&d.to_string()).expect("a printed spec parses");
            assert_eq!(again, vec![d]);
            let img = stabilize_core::Image::new(16, 12, stabilize_core::Channels::Rgb, vec![128; 16 * 12 * 3]).expect("valid");
            let _ = d.apply(&img, 0);
        }
    }
});
