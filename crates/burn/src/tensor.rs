//! Moving images between the core's [`Image`] and burn tensors.

use burn::tensor::{Device, Tensor, TensorData};
use stabilize_core::{Channels, Image};

/// Stacks same-shaped images into a batch `[N, C, H, W]` of `f32` on the [0,1] scale
/// (channel-planar, as convolutions expect). Panics if the shapes differ or the batch is empty.
pub fn images_to_tensor(images: &[&Image], device: &Device) -> Tensor<4> {
    let first = images.first().expect("an empty batch has no shape");
    let (w, h, c) = (first.width() as usize, first.height() as usize, first.channels().count());
    Tensor::from_data(TensorData::new(planar_pixels(images), [images.len(), c, h, w]), device)
}

/// The values of [`images_to_tensor`] on the host: `[N, C, H, W]` row-major, on [0,1].
pub fn planar_pixels(images: &[&Image]) -> Vec<f32> {
    let first = images.first().expect("an empty batch has no shape");
    let (w, h, c) = (first.width() as usize, first.height() as usize, first.channels().count());
    let mut values = Vec::with_capacity(images.len() * c * h * w);
    for img in images {
        assert_eq!(
            (img.width() as usize, img.height() as usize, img.channels().count()),
            (w, h, c),
            "images in a batch must share one shape"
        );
        let d = img.data();
        for ch in 0..c {
            values.extend(d.iter().skip(ch).step_by(c).map(|&v| v as f32 / 255.0));
        }
    }
    values
}

/// The inverse of [`images_to_tensor`]: `[N, C, H, W]` on [0,1] to 8-bit images (clamped, rounded).
pub fn tensor_to_images(t: Tensor<4>) -> Vec<Image> {
    let [n, c, h, w] = t.dims();
    let channels = match c {
        1 => Channels::Gray,
        3 => Channels::Rgb,
        _ => panic!("{c} channels: only 1 or 3 convert to images"),
    };
    let values: Vec<f32> = t.try_into_vec_as::<f32>().expect("float tensor");
    (0..n)
        .map(|i| {
            let planes = &values[i * c * h * w..(i + 1) * c * h * w];
            let interleaved: Vec<f32> = (0..h * w).flat_map(|p| (0..c).map(move |ch| planes[ch * h * w + p])).collect();
            Image::from_f32(w as u32, h as u32, channels, &interleaved).expect("shape from tensor")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_lossless_and_planar() {
        let device = Device::flex();
        let a = Image::new(2, 1, Channels::Rgb, vec![0, 51, 102, 153, 204, 255]).unwrap();
        let b = Image::new(2, 1, Channels::Rgb, vec![255, 0, 0, 0, 255, 0]).unwrap();
        let t = images_to_tensor(&[&a, &b], &device);
        assert_eq!(t.dims(), [2, 3, 1, 2]);
        let v: Vec<f32> = t.clone().try_into_vec_as::<f32>().unwrap();
        // Image a, red plane: pixels 0 and 153 -> 0.0, 0.6.
        assert!((v[0] - 0.0).abs() < 1e-6 && (v[1] - 0.6).abs() < 1e-6, "{:?}", &v[..6]);
        assert_eq!(tensor_to_images(t), vec![a, b]);
    }
}
