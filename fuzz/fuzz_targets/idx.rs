//! The IDX reader (Fashion-MNIST's format): any bytes give an array or an error, never a panic,
//! and an accepted array's data matches its declared shape.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = stabilize_core::data::idx::parse_idx(data) {
        let n: usize = a.dims.iter().product();
        assert_eq!(a.data.len(), n);
    }
});
