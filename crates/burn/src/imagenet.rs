//! ImageNet-style inference inputs for the pretrained network: torchvision's evaluation transform
//! (resize the short side to 256 with a bilinear filter, centre-crop 224), as `[N, 3, 224, 224]`
//! on the [0,1] scale (the model normalises itself).

use burn::prelude::*;
use stabilize_core::image::resize::{Filter, resize_region};
use stabilize_core::{Image, Result};

use crate::tensor::images_to_tensor;

/// Side of the evaluation crop.
pub const CROP: u32 = 224;
/// Short side after the resize, before the crop.
pub const RESIZE: u32 = 256;

/// torchvision's `Resize(256)` + `CenterCrop(224)` of one image, done as one resampling of the
/// centre region (the same pixels up to rounding). Gray images become RGB.
pub fn center_crop(img: &Image) -> Result<Image> {
    let img = img.to_rgb();
    let (w, h) = (img.width() as f64, img.height() as f64);
    let scale = RESIZE as f64 / w.min(h);
    let side = CROP as f64 / scale;
    let region = ((w - side) / 2.0, (h - side) / 2.0, side, side);
    resize_region(&img, Some(region), CROP, CROP, Filter::Bilinear)
}

/// The batch `[N, 3, 224, 224]` on [0,1] of [`center_crop`]s.
pub fn imagenet_input(images: &[Image], device: &Device) -> Result<Tensor<4>> {
    let crops: Vec<Image> = images.iter().map(center_crop).collect::<Result<_>>()?;
    Ok(images_to_tensor(&crops.iter().collect::<Vec<_>>(), device))
}

/// Indices of the five largest values of one logit row, largest first.
pub fn top5(row: &[f32]) -> [usize; 5] {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    [idx[0], idx[1], idx[2], idx[3], idx[4]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use stabilize_core::Channels;

    #[test]
    fn centre_crop_keeps_the_centre_and_top5_orders() {
        // Left half black, right half white, 512×256: the centre crop straddles the edge.
        let (w, h) = (512u32, 256u32);
        let data: Vec<u8> = (0..w * h).map(|i| if i % w < w / 2 { 0 } else { 255 }).collect();
        let img = Image::new(w, h, Channels::Gray, data).unwrap();
        let c = center_crop(&img).unwrap();
        assert_eq!((c.width(), c.height(), c.channels()), (224, 224, Channels::Rgb));
        assert!(c.get(5, 100, 0) < 10 && c.get(218, 100, 0) > 245);
        assert_eq!(top5(&[0.1, 3.0, -1.0, 2.0, 2.0, 0.5]), [1, 3, 4, 5, 0]);
    }
}
